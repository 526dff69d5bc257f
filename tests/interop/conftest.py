"""A real Ologies for software nobody here wrote to talk to: the web app under uvicorn and the
DIMSE listener, on free loopback ports, over embedded backends in a temporary folder."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from repository.settings import Settings

#: calling AE titles the interop tests use (dcmtk's defaults, Orthanc's own title)
PEERS = {
    "STORESCU": {"trust": "REM", "department": "dermatology"},
    "FINDSCU": {"trust": "REM", "role": "clinician"},
    "ECHOSCU": {"trust": "REM"},
    "ORTHANC": {"trust": "REM"},
}
AE_TITLE = "OLOGIES"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveOlogies:
    base_url: str  # http://127.0.0.1:port
    dicomweb: str  # .../dicomweb
    dimse_port: int
    api_key: str
    services: object
    root: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@pytest.fixture(scope="module")
def ologies(tmp_path_factory):
    from ingest.dimse import DimseListener
    from web.app import create_app
    from web.services import Services

    root = tmp_path_factory.mktemp("ologies")
    settings = Settings(
        store_url=(root / "store").as_uri(), index_url=f"sqlite:///{root / 'index.sqlite3'}",
        allow_test_nhs_numbers=True, spool_dir=root, _env_file=None, dimse_peers=PEERS, dimse_ae_title=AE_TITLE,
    )  # fmt: skip
    services = Services.build(settings)
    app = create_app(settings, services=services, reconcile=False)
    _, key = services.accounts.create_key(name="interop", role="admin", trust="REM")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            pytest.fail("the Ologies test server did not start")
        time.sleep(0.05)
    listener = DimseListener(services)
    listener.start("127.0.0.1", 0)
    base = f"http://127.0.0.1:{port}"
    yield LiveOlogies(base, base + "/dicomweb", listener.port, key, services, root)
    listener.stop()
    server.should_exit = True
    thread.join(timeout=10)
    services.close()
