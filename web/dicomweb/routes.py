"""The DICOMweb routes under ``/dicomweb`` (PS3.18): STOW-RS, QIDO-RS, WADO-RS and a capabilities
summary. Every route authenticates the caller and goes through the guard (trust scope, audit)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from converters import dicom as dcm
from repository.access import Action
from repository.guard import Caller
from search import qido
from search.attributes import MAX_LIMIT, AggregateRow
from web.auth import CallerDep
from web.deps import ServicesDep
from web.dicomweb import dicomjson, negotiation
from web.dicomweb.multipart import receive_related
from web.dicomweb.stow import DICOM, Stow, warning_header
from web.dicomweb.wado import Wado, parse_frame

PREFIX = "/dicomweb"
router = APIRouter(prefix=PREFIX, tags=["dicomweb"])
JSON_TYPE = dicomjson.MEDIA_TYPE
MORE_RESULTS = '299 ologies "There are additional results that can be requested"'


def base_url(request: Request) -> str:
    """Where this service is, for RetrieveURL and BulkDataURI. Some clients (dicomweb-client)
    send a Host header without the port; the port the request came in on is used then."""
    url = request.base_url
    host = request.headers.get("host", "")
    server = request.scope.get("server")
    forwarded = "x-forwarded-host" in request.headers or "forwarded" in request.headers
    if server and not forwarded and ":" not in host.rsplit("]", 1)[-1] and server[1] not in (80, 443) and url.port is None:
        url = url.replace(port=server[1])
    return str(url).rstrip("/") + PREFIX


def dicom_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=JSON_TYPE, headers=headers)


# -- capabilities -----------------------------------------------------------------------------------
@router.get("")
@router.get("/")
def capabilities(request: Request) -> JSONResponse:
    """What this DICOMweb service offers (a summary; the conformance statement has the detail)."""
    return JSONResponse({
        "service": "Ologies DICOMweb",
        "base": base_url(request),
        "conformance": "docs/conformance.md",
        "authentication": ["Bearer API key or OpenID Connect token", "HTTP Basic with an API key as the password"],
        "stow-rs": {
            "paths": ["/studies", "/studies/{study}"],
            "request-types": ['multipart/related; type="application/dicom"', 'multipart/related; type="application/dicom+json"', "application/dicom"],
            "bulk-data-types": sorted(["image/jpeg", "image/png"]),
            "sop-classes": dcm.ACCEPTED_SOP_CLASSES,
            "transfer-syntaxes": sorted(dcm.ACCEPTED_TRANSFER_SYNTAXES),
        },
        "qido-rs": {
            "paths": ["/studies", "/series", "/instances", "/studies/{study}/series", "/studies/{study}/instances",
                      "/studies/{study}/series/{series}/instances"],
            "attributes": {level: [a.keyword for a in qido.attributes_at(level) if a.level == level] for level in qido.LEVELS},
            "parameters": sorted(qido.PARAMETERS),
            "fuzzymatching": True,
            "max-limit": MAX_LIMIT,
        },
        "wado-rs": {
            "resources": ["study", "series", "instance", "metadata", "bulkdata", "frames", "rendered", "thumbnail"],
            "instance-types": ['multipart/related; type="application/dicom"; transfer-syntax=* (as stored, no transcoding)'],
            "frame-types": ["as stored (image/jpeg, image/jls, image/jp2)", "application/octet-stream (decoded)"],
            "rendered-types": ["image/jpeg", "image/png"],
            "bulkdata-types": ["application/octet-stream", "video/mp4 (the Pixel Data of a video: its MP4)"],
            "range-requests": "single byte range on bulk data",
        },
    })  # fmt: skip


# -- STOW-RS --------------------------------------------------------------------------------------
@router.post("/studies")
async def stow_studies(request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """Store instances (multipart/related application/dicom, or DICOM JSON with bulk data)."""
    return await _stow(request, services, caller, None)


@router.post("/studies/{study}")
async def stow_study(study: str, request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """Store instances that must belong to ``study``."""
    return await _stow(request, services, caller, study)


async def _stow(request: Request, services: Any, caller: Caller, study: str | None) -> Response:
    services.guard.require(caller, Action.UPLOAD)
    if not negotiation.accepts_any(negotiation.parse_accept(request.headers.get("accept")), JSON_TYPE, "application/json"):
        from repository.errors import NotAcceptable

        raise NotAcceptable("STOW-RS responses are application/dicom+json (XML is not supported)")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        from repository.errors import UnsupportedMediaType

        # Inflating a compressed body is a decompression bomb waiting to happen (RELIABILITY.md 2.9).
        raise UnsupportedMediaType(f"Content-Encoding {encoding[:20]} is not accepted: send the body uncompressed", field="content-encoding")
    settings = services.settings
    spool = Path(tempfile.mkdtemp(prefix="ologies-stow-", dir=settings.spool_dir))
    try:
        received = await receive_related(
            request, spool, max_part_bytes=settings.max_file_bytes, max_parts=settings.dicomweb_max_parts,
            accepted_types=(DICOM,),
        )  # fmt: skip
        stow = Stow(services, caller, base_url=base_url(request), study_uid=study, spool=spool)
        outcome = await run_in_threadpool(stow.run, received)
    finally:
        await run_in_threadpool(shutil.rmtree, spool, True)
    study_url = None
    if len(outcome.studies) == 1:
        study_url = f"{base_url(request)}/studies/{next(iter(outcome.studies))}"
    body = dicomjson.stow_response(outcome.stored, outcome.failed, outcome.other_failures, study_url)
    headers = {}
    messages = list(outcome.messages)
    if outcome.pending:
        messages.append(f"{outcome.pending} stored instance(s) are not yet searchable (the index is unavailable)")
    if messages:
        headers["Warning"] = warning_header(messages)
    return dicom_json(body, outcome.status, headers)


# -- QIDO-RS --------------------------------------------------------------------------------------
def _search(request: Request, services: Any, caller: Caller, level: qido.Level, study: str | None = None, series: str | None = None) -> Response:
    negotiation.require_json(request.headers.get("accept"))
    services.guard.require(caller, Action.SEARCH)
    params = request.query_params.multi_items()
    patient = next((v for k, v in params if k in ("PatientID", "00100020") and v and "*" not in v and "?" not in v), None)
    visible = services.policy.visible_trusts(caller.principal, patient)
    parsed = qido.parse(params, level, study_uid=study, series_uid=series, trusts_visible=visible)
    index = services.repository.index
    base = base_url(request)
    results: list[dict[str, Any]] = []
    shown: list[str] = []
    patients: set[str] = set()
    studies: set[str] = set()
    if level == "instance":
        page = index.search_instances(parsed.query)
        has_more = page.has_more
        for doc in page.items:
            url = f"{base}/studies/{doc['StudyInstanceUID']}/series/{doc['SeriesInstanceUID']}/instances/{doc['SOPInstanceUID']}"
            computed = {"InstanceAvailability": dicomjson.element("CS", ["ONLINE"])}
            results.append(dicomjson.qido_result(doc, parsed.returns, computed, url))
            shown.append(str(doc["SOPInstanceUID"]))
            patients.add(str(doc.get("PatientID") or ""))
            studies.add(str(doc.get("StudyInstanceUID") or ""))
    else:
        rows = (index.search_studies if level == "study" else index.search_series)(parsed.query)
        has_more = rows.has_more
        for row in rows.rows:
            results.append(_row_result(row, level, parsed.returns, base))
            patients.add(str(row.document.get("PatientID") or ""))
            studies.add(str(row.document.get("StudyInstanceUID") or ""))
    services.guard.record(
        caller, "search", detail=f"QIDO-RS {request.url.path[len(PREFIX):]}?{request.url.query}"[:500],
        patient_ids=sorted(p for p in patients if p), study_uids=sorted(studies), sop_instance_uids=shown,
    )  # fmt: skip
    warnings = [f'299 ologies "{w}"' for w in parsed.warnings]
    if has_more:
        warnings.append(MORE_RESULTS)
    return dicom_json(results, headers={"Warning": ", ".join(warnings)} if warnings else None)


def _row_result(row: AggregateRow, level: qido.Level, returns: tuple[str, ...], base: str) -> dict[str, Any]:
    doc = row.document
    if level == "study":
        url = f"{base}/studies/{row.uid}"
        computed = {
            "ModalitiesInStudy": dicomjson.element("CS", list(row.modalities)),
            "NumberOfStudyRelatedSeries": dicomjson.element("IS", [row.series]),
            "NumberOfStudyRelatedInstances": dicomjson.element("IS", [row.instances]),
        }
    else:
        url = f"{base}/studies/{doc['StudyInstanceUID']}/series/{row.uid}"
        computed = {"NumberOfSeriesRelatedInstances": dicomjson.element("IS", [row.instances])}
    return dicomjson.qido_result(doc, returns, computed, url)


# documented as what they answer (schemathesis' content-type check: not FastAPI's default JSON)
QIDO_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"description": "matches", "content": {"application/dicom+json": {}}}}


@router.get("/studies", responses=QIDO_RESPONSES)
def search_studies(request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """QIDO-RS: search for studies."""
    return _search(request, services, caller, "study")


@router.get("/series", responses=QIDO_RESPONSES)
def search_all_series(request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """QIDO-RS: search for series in every study."""
    return _search(request, services, caller, "series")


@router.get("/instances", responses=QIDO_RESPONSES)
def search_all_instances(request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """QIDO-RS: search for instances in every study."""
    return _search(request, services, caller, "instance")


@router.get("/studies/{study}/series", responses=QIDO_RESPONSES)
def search_series(study: str, request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """QIDO-RS: search for series of one study."""
    return _search(request, services, caller, "series", study=study)


@router.get("/studies/{study}/instances", responses=QIDO_RESPONSES)
def search_study_instances(study: str, request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """QIDO-RS: search for instances of one study."""
    return _search(request, services, caller, "instance", study=study)


@router.get("/studies/{study}/series/{series}/instances", responses=QIDO_RESPONSES)
def search_series_instances(study: str, series: str, request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """QIDO-RS: search for instances of one series."""
    return _search(request, services, caller, "instance", study=study, series=series)


# -- WADO-RS --------------------------------------------------------------------------------------
def _wado(request: Request, services: Any, caller: Caller) -> Wado:
    return Wado(services, caller, base_url(request))


@router.get("/studies/{study}")
def retrieve_study(study: str, request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """WADO-RS: every instance of a study (multipart/related; type="application/dicom")."""
    wado = _wado(request, services, caller)
    return wado.retrieve(wado.locate(study), request.headers.get("accept"), "study")


@router.get("/studies/{study}/series/{series}")
def retrieve_series(study: str, series: str, request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """WADO-RS: every instance of a series."""
    wado = _wado(request, services, caller)
    return wado.retrieve(wado.locate(study, series), request.headers.get("accept"), "series")


@router.get("/studies/{study}/series/{series}/instances/{sop}")
def retrieve_instance(study: str, series: str, sop: str, request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """WADO-RS: one instance."""
    wado = _wado(request, services, caller)
    return wado.retrieve(wado.locate(study, series, sop), request.headers.get("accept"), "instance")


@router.get("/studies/{study}/metadata")
def study_metadata(study: str, request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """WADO-RS: the metadata of every instance of a study (application/dicom+json)."""
    wado = _wado(request, services, caller)
    return dicom_json(wado.metadata(wado.locate(study), request.headers.get("accept"), "study metadata"))


@router.get("/studies/{study}/series/{series}/metadata")
def series_metadata(study: str, series: str, request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """WADO-RS: the metadata of every instance of a series."""
    wado = _wado(request, services, caller)
    return dicom_json(wado.metadata(wado.locate(study, series), request.headers.get("accept"), "series metadata"))


@router.get("/studies/{study}/series/{series}/instances/{sop}/metadata")
def instance_metadata(study: str, series: str, sop: str, request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """WADO-RS: the metadata of one instance."""
    wado = _wado(request, services, caller)
    return dicom_json(wado.metadata(wado.locate(study, series, sop), request.headers.get("accept"), "instance metadata"))


@router.get("/studies/{study}/series/{series}/instances/{sop}/bulkdata/{path:path}")
def bulkdata(study: str, series: str, sop: str, path: str, request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """WADO-RS: one bulk data value named by a BulkDataURI (single byte ranges supported); a
    video's Pixel Data is its MP4 (video/mp4), streamed from the store."""
    wado = _wado(request, services, caller)
    (located,) = wado.locate(study, series, sop)
    return wado.bulkdata(located, path, request.headers.get("accept"), request.headers.get("range"))


@router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frames}")
def frames(study: str, series: str, sop: str, frames: str, request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """WADO-RS: frames, as stored (image/jpeg ...) or decoded (application/octet-stream)."""
    wado = _wado(request, services, caller)
    (located,) = wado.locate(study, series, sop)
    return wado.frames(located, frames, request.headers.get("accept"))


@router.get("/studies/{study}/series/{series}/instances/{sop}/rendered")
def rendered(study: str, series: str, sop: str, request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """WADO-RS: the image rendered as JPEG or PNG (``viewport=w,h``, ``quality``)."""
    wado = _wado(request, services, caller)
    (located,) = wado.locate(study, series, sop)
    q = request.query_params
    return wado.rendered(located, request.headers.get("accept"), viewport=q.get("viewport"), quality=q.get("quality"))


@router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frame}/rendered")
def rendered_frame(study: str, series: str, sop: str, frame: str, request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """WADO-RS: one frame rendered."""
    number = parse_frame(frame)  # a str here, so that a bad one is 400 as for /frames, not 422
    wado = _wado(request, services, caller)
    (located,) = wado.locate(study, series, sop)
    q = request.query_params
    return wado.rendered(located, request.headers.get("accept"), frame=number, viewport=q.get("viewport"), quality=q.get("quality"))


@router.get("/studies/{study}/series/{series}/instances/{sop}/thumbnail")
def instance_thumbnail(study: str, series: str, sop: str, request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """WADO-RS: a small JPEG of the instance."""
    wado = _wado(request, services, caller)
    return wado.thumbnail(wado.locate(study, series, sop), request.headers.get("accept"), request.query_params.get("viewport"))


@router.get("/studies/{study}/series/{series}/thumbnail")
def series_thumbnail(study: str, series: str, request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """WADO-RS: a thumbnail that stands for the series (its first instance)."""
    wado = _wado(request, services, caller)
    return wado.thumbnail(wado.locate(study, series), request.headers.get("accept"), request.query_params.get("viewport"))


@router.get("/studies/{study}/thumbnail")
def study_thumbnail(study: str, request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """WADO-RS: a thumbnail that stands for the study."""
    wado = _wado(request, services, caller)
    return wado.thumbnail(wado.locate(study), request.headers.get("accept"), request.query_params.get("viewport"))
