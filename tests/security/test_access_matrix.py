"""Every actor against every route and resource: allow or deny, cell by cell (RELIABILITY.md H, I).

The actors are each role at two trusts, plus no credentials, a malformed and a revoked key. The
expected answer of each cell comes from the table below, written from DECISIONS.md 18, not from
the code; a new route that is not in the table fails ``test_every_route_is_in_the_matrix``.
"""

from __future__ import annotations

import pytest

from tests import imagegen
from tests.conftest import NHS_A, patient_fields
from tests.security.conftest import ROLES

ALL = set(ROLES)
# route id -> (method, path template, roles allowed on the caller's own trust's resource,
#              roles allowed on another trust's resource (None: the route has no resource))
MATRIX = {
    "upload": ("POST", "/api/v1/images", {"photographer", "clinician", "device", "admin"}, None),
    "search": ("GET", "/api/v1/search", {"photographer", "clinician", "information-governance", "admin"}, None),
    "history": ("GET", "/api/v1/patients/{nhs}/images", {"photographer", "clinician", "information-governance", "admin"}, None),
    "metadata": ("GET", "/api/v1/instances/{uid}", {"photographer", "clinician", "admin"}, {"admin"}),
    "file": ("GET", "/api/v1/instances/{uid}/file", {"clinician", "admin"}, {"admin"}),
    "rendered": ("GET", "/api/v1/instances/{uid}/rendered", {"photographer", "clinician", "admin"}, {"admin"}),
    "thumbnail": ("GET", "/api/v1/instances/{uid}/thumbnail", {"photographer", "clinician", "admin"}, {"admin"}),
    "grant": ("POST", "/api/v1/patients/{nhs}/access-grants", {"clinician", "admin"}, None),
    "body-sites": ("GET", "/api/v1/body-sites", ALL, None),
    "trusts": ("GET", "/api/v1/trusts", ALL, None),
    "specialties": ("GET", "/api/v1/specialties", ALL, None),
    "audit-events": ("GET", "/api/v1/audit/events", {"information-governance", "admin"}, None),
    "audit-report": ("GET", "/api/v1/audit/patients/{nhs}", {"information-governance", "admin"}, None),
    "audit-verify": ("GET", "/api/v1/audit/verify", {"information-governance", "admin"}, None),
    "consent": ("POST", "/api/v1/instances/{uid}/consent", {"information-governance", "admin"}, {"admin"}),
    # the other trust's image was consented for clinical care only: nobody may export it
    "export": ("POST", "/api/v1/exports", {"clinician", "admin"}, set()),
    "retention": ("GET", "/api/v1/patients/{nhs}/retention", {"information-governance", "admin"}, None),
    "legal-hold": ("PUT", "/api/v1/patients/{nhs}/legal-hold", {"admin"}, None),
    "tracking": ("GET", "/api/v1/patients/{nhs}/tracking/{tracking_id}", {"photographer", "clinician", "information-governance", "admin"}, None),
}
# Routes whose cells need their own kind of resource, covered by their own tests (and by the
# unauthenticated sweep below): video playback needs a video, reconciliation a temporary ID.
COVERED_ELSEWHERE = {
    "/api/v1/instances/{uid}/video": "tests/web/test_media_api.py",
    "/api/v1/patients/{temporary_id}/reconcile": "tests/web/test_patients_api.py",
}
# No patient data behind these: health, sign-in, static files, and the API and DICOMweb
# capability descriptions (what a client may ask for; OpenAPI and the DICOMweb conformance).
PUBLIC = {"/healthz", "/readyz", "/sign-in", "/sign-out", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc",
          "/static/{path:path}", "/dicomweb", "/dicomweb/"}  # fmt: skip


def all_routes(app) -> list[tuple[str, set[str]]]:
    """Every (path, methods) the app serves, through FastAPI's included routers."""
    found = []
    for route in app.routes:
        if hasattr(route, "effective_route_contexts"):
            found += [(ctx.path, set(ctx.methods or {"GET"})) for ctx in route.effective_route_contexts()]
        else:
            found.append((route.path, set(getattr(route, "methods", None) or {"GET"})))
    return found


def call(world, route: str, headers: dict[str, str], uid: str, seed: int = 0):
    method, template, _, _ = MATRIX[route]
    path = template.format(nhs=NHS_A, uid=uid, tracking_id="lesion-1")
    client = world.client
    if route == "upload":
        photo = imagegen.jpeg(imagegen.photo(32, 32, seed=500 + seed))
        return client.post(path, headers=headers, data=patient_fields(), files={"file": ("a.jpg", photo)})
    if route == "grant":
        return client.post(path, headers=headers, json={"reason": "Reviewing wound healing in clinic today"})
    if route == "consent":
        return client.post(path, headers=headers, json={"status": "active"})
    if route == "export":
        return client.post(path, headers=headers, json={"sop_instance_uids": [uid], "purpose": "teaching"})
    if route == "legal-hold":
        return client.put(path, headers=headers, json={"reason": "Inquiry 2026/17"})
    return client.request(method, path, headers=headers)


@pytest.mark.parametrize("route", sorted(MATRIX))
@pytest.mark.parametrize("role", ROLES)
def test_cell_own_trust(world, route, role):
    allowed = role in MATRIX[route][2]
    response = call(world, route, world.as_(role, "REM"), world.own, seed=ROLES.index(role))
    if allowed:
        assert response.status_code in (200, 201), (route, role, response.status_code, response.text[:300])
    else:
        assert response.status_code == 403, (route, role, response.status_code, response.text[:300])


@pytest.mark.parametrize("route", sorted(r for r, spec in MATRIX.items() if spec[3] is not None))
@pytest.mark.parametrize("role", ROLES)
def test_cell_other_trust_resource(world, route, role):
    """Another trust's instance: allowed only as the table says; otherwise 404 where the role
    could act on its own trust's instance (no existence oracle), 403 where it never could."""
    response = call(world, route, world.as_(role, "REM"), world.other)
    if role in MATRIX[route][3]:
        assert response.status_code in (200, 201), (route, role, response.text[:300])
    elif role in MATRIX[route][2]:
        assert response.status_code in (404, 422), (route, role, response.status_code)  # export: 422, nothing exportable
        assert world.other not in response.text or route == "export"
    else:
        assert response.status_code == 403, (route, role, response.status_code)


@pytest.mark.parametrize("route", sorted(MATRIX))
@pytest.mark.parametrize("credentials", ["none", "malformed", "revoked", "basic", "oversized", "unknown-key"])
def test_cell_bad_credentials(world, route, credentials):
    if credentials == "revoked":
        services = world.app.state.services
        record, secret = services.accounts.create_key(name="to revoke", role="admin", trust="REM")
        services.accounts.revoke_key(record.key_id)
        services.accounts._cache.clear()
        headers = {"Authorization": f"Bearer {secret}"}
    else:
        headers = {
            "none": {}, "malformed": {"Authorization": "Bearer olk_zzz"}, "basic": {"Authorization": "Basic YWRtaW46YWRtaW4="},
            "oversized": {"Authorization": "Bearer " + "a" * 20000}, "unknown-key": {"X-API-Key": "olk_" + "0" * 16 + "_" + "x" * 43},
        }[credentials]  # fmt: skip
    response = call(world, route, headers, world.own)
    assert response.status_code == 401, (route, credentials, response.status_code)
    assert response.headers.get("www-authenticate", "").startswith("Bearer")
    body = response.json()["error"]
    assert body["code"] == "unauthenticated" and "revoked" not in body["message"] and "key" not in body["message"]


def test_search_never_shows_another_trusts_images(world):
    for role in ("photographer", "clinician", "information-governance"):
        items = world.client.get("/api/v1/search", headers=world.as_(role, "REM")).json()["items"]
        assert {i["trust"] for i in items} == {"REM"}, role
        asked = world.client.get("/api/v1/search", params={"trust": "RBN"}, headers=world.as_(role, "REM")).json()
        assert asked["total"] == 0  # asking for the other trust by parameter does not widen the scope
    assert world.client.get("/api/v1/search", headers=world.as_("admin")).json()["total"] == 2


def test_clinician_states_a_reason_to_see_another_trusts_images(world):
    headers = world.as_("clinician", "REM")
    history = world.client.get(f"/api/v1/patients/{NHS_A}/images", headers=headers).json()
    assert history["total"] == 1 and history["other_trusts"] == {"RBN": 1}
    assert world.client.get(f"/api/v1/instances/{world.other}", headers=headers).status_code == 404
    short = world.client.post(f"/api/v1/patients/{NHS_A}/access-grants", headers=headers, json={"reason": "need"})
    assert short.status_code == 422
    granted = world.client.post(f"/api/v1/patients/{NHS_A}/access-grants", headers=headers,
                                json={"reason": "Transferred from Whiston burns unit today"})  # fmt: skip
    assert granted.status_code == 201
    assert world.client.get(f"/api/v1/instances/{world.other}", headers=headers).status_code == 200
    assert world.client.get(f"/api/v1/patients/{NHS_A}/images", headers=headers).json()["total"] == 2
    # a photographer of the same trust is not widened by the clinician's grant
    assert world.client.get(f"/api/v1/instances/{world.other}", headers=world.as_("photographer")).status_code == 404
    report = world.client.get(f"/api/v1/audit/patients/{NHS_A}", headers=world.as_("information-governance")).json()
    assert [o["reason"] for o in report["cross_trust_overrides"]] == ["Transferred from Whiston burns unit today"]


def test_uploads_are_filed_under_the_callers_trust_and_department(world):
    photo = imagegen.jpeg(imagegen.photo(32, 32, seed=900))
    for role in ("photographer", "clinician", "device"):
        other = world.client.post("/api/v1/images", headers=world.as_(role), data=patient_fields(trust="RBN"),
                                  files={"file": ("a.jpg", photo)})  # fmt: skip
        assert other.status_code == 403, role
    wrong_department = world.client.post("/api/v1/images", headers=world.as_("device"), data=patient_fields(specialty="emergency"),
                                         files={"file": ("a.jpg", photo)})  # fmt: skip
    assert wrong_department.status_code == 403
    ok = world.client.post("/api/v1/images", headers=world.as_("device"), data=patient_fields(specialty=""),
                           files={"file": ("a.jpg", photo)})  # fmt: skip
    assert ok.status_code == 201, ok.text
    uid = ok.json()["files"][0]["sop_instance_uid"]
    meta = world.client.get(f"/api/v1/instances/{uid}", headers=world.as_("admin")).json()
    assert (meta["trust"], meta["specialty"]) == ("REM", "dermatology")


def test_every_route_is_in_the_matrix(app):
    """A route added without an access decision in this table fails here."""
    covered = {spec[1] for spec in MATRIX.values()}
    extra_known = {
        "/api/v1/patients/{nhs_number}/images", "/api/v1/instances/{uid}/file", "/api/v1/deletion-requests/{request_id}/approval",
        "/api/v1/patients/{nhs_number}/deletion-requests", "/api/v1/patients/{nhs_number}/legal-hold",
    }  # fmt: skip
    normalised = {p.replace("{nhs}", "{nhs_number}") for p in covered} | extra_known | set(COVERED_ELSEWHERE)
    unprotected = []
    paths = [path for path, _ in all_routes(app)]
    assert "/api/v1/images" in paths and "/upload" in paths  # the walk sees the included routers
    for path in paths:
        if path in PUBLIC or not path.startswith("/api/"):
            continue
        if path not in normalised and path.replace("{nhs_number}", "{nhs}") not in covered:
            unprotected.append(path)
    assert unprotected == [], f"routes with no row in the access matrix: {unprotected}"


def test_every_non_public_route_refuses_the_unauthenticated(app, client):
    client.headers.pop("Authorization")
    routes = all_routes(app)
    assert len(routes) > 30
    for path, methods in routes:
        if path in PUBLIC:
            continue
        concrete = path.replace("{path:path}", "x").replace("{nhs_number}", NHS_A).replace("{nhs}", NHS_A)
        for part in ("{uid}", "{request_id}", "{study}", "{series}", "{instance}", "{frame}", "{frames}", "{temporary_id}", "{tracking_id}"):
            concrete = concrete.replace(part, "2.25.1")
        for method in sorted(methods):
            if method == "HEAD":
                continue
            response = client.request(method, concrete, follow_redirects=False)
            if path.startswith("/api/") or path.startswith("/dicomweb"):
                assert response.status_code == 401, (method, path, response.status_code)
            else:  # pages send people to sign in
                assert response.status_code in (303, 401), (method, path, response.status_code)
