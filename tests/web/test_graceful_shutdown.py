"""Graceful shutdown: ``ologies serve`` told to stop (SIGTERM, as systemd, Kubernetes or a deploy
does) while an upload is half sent finishes that upload, answers it 2xx, stores it, and only then
exits; new connections are no longer accepted meanwhile."""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import time
import uuid

import pytest

from tests import imagegen
from tests.conftest import patient_fields
from tests.invariants import Ledger, assert_repository_consistent
from tests.serverproc import ServerProcess


def multipart(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n".encode() + data + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), boundary


def read_response(sock: socket.socket, timeout: float) -> tuple[int, dict[str, str], bytes]:
    sock.settimeout(timeout)
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a response: {raw[:200]!r}")
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_finishes_the_upload_in_flight_then_exits(workers):
    photo = imagegen.camera_jpeg(seed=workers)  # a few MB: sent over about two seconds
    body, boundary = multipart(patient_fields(), "clinic.jpg", photo)
    with ServerProcess(workers=workers) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        request = (
            f"POST /api/v1/images HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.key}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        sock.sendall(request)
        chunks = [body[i : i + 64 * 1024] for i in range(0, len(body), 64 * 1024)]
        half = len(chunks) // 2
        for chunk in chunks[:half]:
            sock.sendall(chunk)
            time.sleep(0.02)
        time.sleep(0.3)  # the request is being served: its body half received
        server.signal(signal.SIGTERM)
        stopped_listening = False
        for chunk in chunks[half:]:
            sock.sendall(chunk)
            time.sleep(0.02)
            stopped_listening = stopped_listening or refuses_connections(server.port)
        status, headers, answer = read_response(sock, timeout=30)
        sock.close()
        assert status == 201, (status, answer[:500], server.log_tail())
        assert headers.get("connection", "").lower() == "close"  # no keep-alive once shutting down
        stored = json.loads(answer)["files"][0]
        # uvicorn re-raises the signal once its graceful shutdown is complete: -SIGTERM is normal
        assert server.wait(timeout=40) in (0, -signal.SIGTERM), server.log_tail()
        assert "Application shutdown complete" in server.log_tail(), server.log_tail()
        assert stopped_listening or refuses_connections(server.port)

    # the acknowledged upload is in the store, whole, findable and indexed (INV-1), and nothing
    # else is (INV-2)
    from repository.settings import Settings
    from web.services import Services

    services = Services.build(Settings(_env_file=None, store_url=server.env["OLOGIES_STORE_URL"],
                                       index_url=server.env["OLOGIES_INDEX_URL"]))  # fmt: skip
    try:
        ledger = Ledger()
        ledger.ack(stored["sop_instance_uid"], hashlib.sha256(photo).hexdigest())
        counts = assert_repository_consistent(services.repository, ledger, strict=True, reconciled=True,
                                              spool=server.data)  # fmt: skip
        assert counts["objects"] == 1 and counts["indexed"] == 1
    finally:
        services.close()
