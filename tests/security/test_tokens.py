"""OpenID Connect bearer tokens against a real JWKS endpoint on loopback: valid tokens sign in,
and every tampering is a 401 (RELIABILITY.md H2); keys rotate without a restart."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from repository.settings import Settings
from tests.bench.common import free_port
from web.app import create_app

ISSUER, AUDIENCE = "https://cis2.example.nhs.uk/openam/oauth2/realms/root/realms/NHSIdentity/realms/Healthcare", "ologies"


class JWKS:
    """A JWKS endpoint whose key set a test can change (a provider rotating its keys)."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        keys = self.keys

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = json.dumps({"keys": [
                    {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(k.public_key())), "kid": kid, "use": "sig", "alg": "RS256"}
                    for kid, k in keys.items()
                ]}).encode()  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, kid: str) -> rsa.RSAPrivateKey:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return self.keys[kid]


@pytest.fixture(scope="module")
def jwks():
    server = JWKS()
    server.add("key-1")
    yield server
    server.server.shutdown()


@pytest.fixture
def oidc_client(tmp_path, jwks):
    settings = Settings(
        store_url=(tmp_path / "s").as_uri(), index_url=f"sqlite:///{tmp_path / 'i.db'}", _env_file=None,
        oidc_issuer=ISSUER, oidc_audience=AUDIENCE, oidc_jwks_url=f"http://127.0.0.1:{jwks.port}/jwks",
        oidc_jwks_cooldown_seconds=0,  # the default 30 s would make the rotation test wait
    )  # fmt: skip
    with TestClient(create_app(settings, reconcile=False)) as client:
        yield client


def token(jwks, kid: str = "key-1", *, alg: str = "RS256", key=None, **overrides) -> str:  # type: ignore[no-untyped-def]
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "555021935107", "name": "Dr Zoë O'Brien-Jones",
              "roles": ["clinician"], "ods_code": "REM", "iat": now, "nbf": now - 5, "exp": now + 300}  # fmt: skip
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key or jwks.keys[kid], algorithm=alg, headers={"kid": kid})


def status(client, bearer: str) -> int:
    return client.get("/api/v1/search", headers={"Authorization": f"Bearer {bearer}"}).status_code


def test_valid_token_signs_in_as_the_claimed_role_and_trust(oidc_client, jwks):
    assert status(oidc_client, token(jwks)) == 200
    response = oidc_client.get("/api/v1/audit/verify", headers={"Authorization": f"Bearer {token(jwks)}"})
    assert response.status_code == 403  # a clinician may not read the audit trail


@pytest.mark.parametrize(
    "make",
    [
        lambda j: token(j, exp=int(time.time()) - 120),  # expired (beyond the 30 s leeway)
        lambda j: token(j, nbf=int(time.time()) + 600),  # not yet valid
        lambda j: token(j, aud="someone-else"),
        lambda j: token(j, iss="https://evil.example"),
        lambda j: token(j, roles=["superuser"]),  # unknown role
        lambda j: token(j, ods_code=None),  # no trust
        lambda j: token(j, sub=None),
        lambda j: token(j, key=rsa.generate_private_key(public_exponent=65537, key_size=2048)),  # wrong key
        lambda j: token(j, kid="no-such-key", key=j.keys["key-1"]),
    ],
    ids=["expired", "not-before", "audience", "issuer", "role", "trust", "subject", "wrong-key", "unknown-kid"],
)
def test_tampered_tokens_are_401(oidc_client, jwks, make):
    assert status(oidc_client, make(jwks)) == 401


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_alg_none_and_hs256_with_the_public_key_are_401(oidc_client, jwks):
    claims = json.loads(base64.urlsafe_b64decode(token(jwks).split(".")[1] + "=="))
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': 'key-1'})}.{_b64(claims)}."
    assert status(oidc_client, unsigned) == 401
    public_pem = jwks.keys["key-1"].public_key().public_bytes(
        encoding=__import__("cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.PEM,
        format=__import__("cryptography.hazmat.primitives.serialization", fromlist=["PublicFormat"]).PublicFormat.SubjectPublicKeyInfo,
    )
    header = _b64({"alg": "HS256", "typ": "JWT", "kid": "key-1"})
    payload = _b64(claims)
    import hashlib
    import hmac

    signature = base64.urlsafe_b64encode(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    assert status(oidc_client, f"{header}.{payload}.{signature}") == 401


def test_a_rotated_key_is_fetched_without_a_restart(oidc_client, jwks):
    assert status(oidc_client, token(jwks)) == 200
    jwks.add("key-2")  # the provider publishes a new key and signs with it
    assert status(oidc_client, token(jwks, kid="key-2")) == 200


def test_failures_are_audited_without_detail_for_the_caller(oidc_client, jwks):
    response = oidc_client.get("/api/v1/search", headers={"Authorization": "Bearer x.y.z"})
    assert response.status_code == 401 and response.json()["error"]["message"] == "invalid credentials"
    events = oidc_client.app.state.services.audit.query(actions=["sign-in"])
    assert events and events[-1].outcome == 4 and events[-1].user == "anonymous"
