"""The S3 adapter: the shared object-store contract plus S3-specific behaviour.

Targets: moto's server on a free loopback port (a real HTTP endpoint, as s3fs tests do; always
runs) and, marked ``integration``, real SeaweedFS and MinIO when ``OLOGIES_TEST_SEAWEEDFS_URL`` /
``OLOGIES_TEST_MINIO_URL`` are set (credentials ``ologies`` / ``ologies-secret`` unless
``OLOGIES_TEST_S3_ACCESS_KEY`` / ``OLOGIES_TEST_S3_SECRET_KEY`` say otherwise). A server named by
one of those variables that does not answer is a failure, not a skip: CI must not go green
because a server failed to start. Each session uses a fresh bucket, removed at teardown, and
each test a fresh key prefix inside it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from repository.backends.s3 import INTERNAL_PREFIX, S3ObjectStore
from repository.errors import (
    AlreadyExists,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    StorageFull,
    StoreUnavailable,
)
from repository.settings import Settings
from tests.contract.store_contract import ObjectStoreContract

MiB = 1024 * 1024
REAL_SERVERS = {"seaweedfs": "OLOGIES_TEST_SEAWEEDFS_URL", "minio": "OLOGIES_TEST_MINIO_URL"}


@dataclass(frozen=True)
class S3Target:
    name: str
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str

    def settings(self, prefix: str = "", **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "store_url": f"s3://{self.bucket}/{prefix}",
            "s3_endpoint_url": self.endpoint,
            "s3_access_key": self.access_key,
            "s3_secret_key": self.secret_key,
            "s3_connect_timeout": 2.0,
            "s3_read_timeout": 20.0,
            **overrides,
        }
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    def client(self) -> Any:
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_moto() -> Any:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    return server


def _moto_url(server: Any) -> str:
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Any]:
    server = _start_moto()
    yield server
    server.stop()


def _wait_until_ready(target: S3Target, variable: str) -> None:
    deadline, error = time.monotonic() + 30, None
    while time.monotonic() < deadline:
        try:
            target.client().list_buckets()
            return
        except (BotoCoreError, ClientError) as exc:
            error = exc
            time.sleep(1)
    pytest.fail(f"{variable}={target.endpoint} is set but the server did not answer: {error!r}")


def _remove_bucket(client: Any, bucket: str) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    client.delete_bucket(Bucket=bucket)


@pytest.fixture(
    scope="session",
    params=[
        "moto",
        pytest.param("seaweedfs", marks=pytest.mark.integration),
        pytest.param("minio", marks=pytest.mark.integration),
    ],
)
def s3_target(request: pytest.FixtureRequest) -> Iterator[S3Target]:
    bucket = f"ologies-test-{uuid.uuid4().hex[:12]}"
    if request.param == "moto":
        endpoint = _moto_url(request.getfixturevalue("moto_server"))
        target = S3Target("moto", endpoint, "testing", "testing", bucket)
    else:
        variable = REAL_SERVERS[request.param]
        endpoint = os.environ.get(variable, "")
        if not endpoint:
            pytest.skip(f"{variable} is not set")
        target = S3Target(
            request.param, endpoint,
            os.environ.get("OLOGIES_TEST_S3_ACCESS_KEY", "ologies"),
            os.environ.get("OLOGIES_TEST_S3_SECRET_KEY", "ologies-secret"),
            bucket,
        )
        _wait_until_ready(target, variable)
    store = S3ObjectStore.from_settings(target.settings())
    assert store.ensure_bucket() is True
    assert store.ensure_bucket() is False
    store.close()
    yield target
    _remove_bucket(target.client(), bucket)


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _open_store(target: S3Target, prefix: str, **overrides: Any) -> S3ObjectStore:
    return S3ObjectStore.from_settings(target.settings(prefix, **overrides))


class NonSeekable(io.RawIOBase):
    """A socket-like source: read only, and optionally failing after ``fail_after`` bytes."""

    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        self._data, self._pos, self._fail_after = data, 0, fail_after

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._fail_after is not None and self._pos >= self._fail_after:
            raise OSError("client went away")
        n = len(self._data) - self._pos if n < 0 else min(n, 256 * 1024)  # short reads too
        chunk = self._data[self._pos : self._pos + n]
        self._pos += len(chunk)
        return chunk


class FailsOnSecondPass(io.BytesIO):
    """Seekable: the hash pass succeeds, the upload pass fails after ``fail_at`` bytes."""

    def __init__(self, data: bytes, fail_at: int) -> None:
        super().__init__(data)
        self.fail_at, self.rewinds = fail_at, 0

    def seek(self, pos: int, whence: int = 0) -> int:
        self.rewinds += 1
        return super().seek(pos, whence)

    def read(self, n: int | None = -1) -> bytes:
        if self.rewinds >= 2 and self.tell() >= self.fail_at:
            raise OSError("disk read error")
        return super().read(n)


class ChangesOnSecondPass(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.rewinds = 0

    def seek(self, pos: int, whence: int = 0) -> int:
        self.rewinds += 1
        if self.rewinds == 2:
            self.getbuffer()[-1] ^= 0xFF
        return super().seek(pos, whence)


def _stream(data: bytes, fail_after: int | None = None) -> BinaryIO:
    return cast(BinaryIO, NonSeekable(data, fail_after))


def _big(size: int = 11 * MiB + 7) -> bytes:
    return hashlib.sha256(b"seed").digest() * (size // 32) + b"x" * (size % 32)


def _uploads(client: Any, store: S3ObjectStore) -> list[Any]:
    """Multipart uploads still open under the store's prefix."""
    response = client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix)
    return list(response.get("Uploads", []))


class TestS3ObjectStore(ObjectStoreContract):
    @pytest.fixture
    def store(self, s3_target: S3Target, prefix: str) -> Iterator[S3ObjectStore]:
        store = _open_store(s3_target, prefix)
        yield store
        store.close()

    @pytest.fixture
    def small_parts(
        self, s3_target: S3Target, prefix: str, tmp_path: Any
    ) -> Iterator[S3ObjectStore]:
        store = _open_store(s3_target, prefix, s3_multipart_threshold=5 * MiB, spool_dir=tmp_path)
        yield store
        store.close()

    def test_head_returns_digest_size_and_media_type(self, store: S3ObjectStore) -> None:
        stored = store.put("h/x.json", b"{}", media_type="application/json")
        head = store.head("h/x.json")
        assert (head.size, head.sha256, head.media_type) == (2, stored.sha256, "application/json")

    def test_server_keeps_sha256_checksum(self, store: S3ObjectStore, s3_target: S3Target) -> None:
        data = b"checksum me"
        store.put("c/x", data)
        head = s3_target.client().head_object(
            Bucket=store.bucket, Key=store.prefix + "c/x", ChecksumMode="ENABLED"
        )
        assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
        assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()

    @pytest.mark.parametrize("make_source", [io.BytesIO, NonSeekable], ids=["seekable", "stream"])
    def test_multipart_upload_keeps_whole_object_digest(
        self, small_parts: S3ObjectStore, s3_target: S3Target, make_source: Any, tmp_path: Any
    ) -> None:
        data = _big()
        stored = small_parts.put("m/big.dcm", make_source(data))
        digest = hashlib.sha256(data).hexdigest()
        assert (stored.size, stored.sha256) == (len(data), digest)
        assert small_parts.head("m/big.dcm").sha256 == digest
        raw = s3_target.client().head_object(
            Bucket=small_parts.bucket, Key=small_parts.prefix + "m/big.dcm"
        )
        assert raw["ETag"].strip('"').endswith("-3")  # really multipart: 5 + 5 + 1 MiB
        with small_parts.open("m/big.dcm") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == digest
        across_parts = small_parts.read_range("m/big.dcm", 5 * MiB - 2, 5 * MiB + 1)
        assert across_parts == data[5 * MiB - 2 : 5 * MiB + 2]
        assert _uploads(s3_target.client(), small_parts) == []
        assert list(tmp_path.iterdir()) == []  # the spool file is gone

    def test_multipart_create_if_absent(
        self, small_parts: S3ObjectStore, s3_target: S3Target
    ) -> None:
        small_parts.put("m/claimed", _big(), if_none_match=True)
        with pytest.raises(AlreadyExists):
            small_parts.put("m/claimed", _stream(_big(6 * MiB)), if_none_match=True)
        assert small_parts.head("m/claimed").size == len(_big())
        assert _uploads(s3_target.client(), small_parts) == []

    def test_source_failing_mid_multipart_leaves_nothing(
        self, small_parts: S3ObjectStore, s3_target: S3Target, tmp_path: Any
    ) -> None:
        with pytest.raises(OSError):
            small_parts.put("m/broken", FailsOnSecondPass(_big(), fail_at=7 * MiB))
        with pytest.raises(OSError):  # fails while spooling, before any upload starts
            small_parts.put("m/broken", _stream(_big(), fail_after=7 * MiB))
        assert not small_parts.exists("m/broken")
        assert list(small_parts.iter_keys()) == []
        assert _uploads(s3_target.client(), small_parts) == []
        assert list(tmp_path.iterdir()) == []

    def test_source_changing_during_upload_is_refused(
        self, small_parts: S3ObjectStore, s3_target: S3Target
    ) -> None:
        with pytest.raises(StoreUnavailable, match="changed"):
            small_parts.put("m/moving", ChangesOnSecondPass(_big()))
        assert not small_parts.exists("m/moving")
        assert _uploads(s3_target.client(), small_parts) == []

    def test_damaged_bytes_in_transit_are_refused(
        self, store: S3ObjectStore, s3_target: S3Target
    ) -> None:
        """The body is changed after our checksum header was set but before signing, so only
        the server's check of x-amz-checksum-sha256 can catch it."""
        if s3_target.name == "moto":
            pytest.skip("moto stores x-amz-checksum-sha256 without checking it")

        def damage(request: Any, **_: Any) -> None:
            body = request.data if isinstance(request.data, bytes) else request.data.read()
            request.data = b"Y" + body[1:]

        store._client.meta.events.register("before-sign.s3.PutObject", damage)
        with pytest.raises(StoreUnavailable, match="damaged"):
            store.put("t/damaged", b"X" * 1000)
        store._client.meta.events.unregister("before-sign.s3.PutObject", damage)
        assert not store.exists("t/damaged")

    def test_put_file_with_a_digest_that_is_not_of_its_bytes_is_refused(
        self, store: S3ObjectStore, s3_target: S3Target, tmp_path: Any
    ) -> None:
        """put_file sends its writer's digest rather than hashing again: the server's check of
        it is what catches a file that changed (or a wrong digest)."""
        if s3_target.name == "moto":
            pytest.skip("moto stores x-amz-checksum-sha256 without checking it")
        path = tmp_path / "prepared.dcm"
        path.write_bytes(b"DICM" * 500)
        with pytest.raises(StoreUnavailable):
            store.put_file("t/wrong-digest", path, sha256=hashlib.sha256(b"other bytes").hexdigest())
        assert not store.exists("t/wrong-digest")
        stored = store.put_file("t/right-digest", path, sha256=hashlib.sha256(path.read_bytes()).hexdigest())
        assert stored.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()

    def test_put_file_sends_the_file_without_reading_it_into_memory(
        self, store: S3ObjectStore, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A prepared file under the multipart threshold goes in one PutObject read from the file
        as it is sent (it was read whole first, two copies of it in memory)."""
        from repository.backends import s3 as s3_backend

        def no_buffering(*args: Any) -> bytes:
            raise AssertionError("the file was read into memory")

        monkeypatch.setattr(s3_backend, "_read_up_to", no_buffering)
        data = bytes(range(256)) * 4096  # 1 MiB
        path = tmp_path / "prepared.dcm"
        path.write_bytes(data)
        stored = store.put_file("t/streamed", path, sha256=hashlib.sha256(data).hexdigest())
        assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        with store.open("t/streamed") as handle:
            assert handle.read() == data

    def test_server_side_encryption_is_requested(self, s3_target: S3Target, prefix: str) -> None:
        """The header goes on PutObject and CreateMultipartUpload. A server without SSE set up
        (MinIO without KMS, SeaweedFS without a key) must refuse rather than store plain."""
        store = _open_store(
            s3_target, prefix, s3_server_side_encryption="AES256", s3_multipart_threshold=5 * MiB
        )
        sent: list[str] = []

        def record(request: Any, **_: Any) -> None:
            value = request.headers.get("x-amz-server-side-encryption")
            sent.append(value.decode() if isinstance(value, bytes) else str(value))

        for operation in ("PutObject", "CreateMultipartUpload"):
            store._client.meta.events.register(f"before-send.s3.{operation}", record)
        raw = s3_target.client()
        for key, data in (("e/small", b"secret"), ("e/large", _big())):
            try:
                store.put(key, data)
            except StoreUnavailable:
                assert s3_target.name != "moto"
                assert not store.exists(key)
            else:
                head = raw.head_object(Bucket=store.bucket, Key=store.prefix + key)
                assert head["ServerSideEncryption"] == "AES256"
        assert sent and all(value == "AES256" for value in sent)
        if s3_target.name != "seaweedfs":
            # SeaweedFS 4.48 answers 500 to CreateMultipartUpload with SSE yet keeps the upload,
            # whose id we never learn: the lifecycle rule from ensure_bucket collects it.
            assert _uploads(raw, store) == []
        store.close()

    def test_keys_are_relative_to_the_prefix(
        self, store: S3ObjectStore, s3_target: S3Target
    ) -> None:
        raw = s3_target.client()
        raw.put_object(Bucket=store.bucket, Key="elsewhere/a/1", Body=b"not ours")
        probe = store.prefix + INTERNAL_PREFIX + "probe-x"
        raw.put_object(Bucket=store.bucket, Key=probe, Body=b"")
        store.put("a/1", b"ours")
        assert list(store.iter_keys()) == ["a/1"]
        assert list(store.iter_keys("a/")) == ["a/1"]
        with store.open("a/1") as handle:
            assert handle.read() == b"ours"
        raw.delete_object(Bucket=store.bucket, Key="elsewhere/a/1")

    def test_open_streams(self, store: S3ObjectStore) -> None:
        data = bytes(range(256)) * 4096
        store.put("s/x", data)
        handle = store.open("s/x")
        assert handle.read(3) == data[:3]
        assert handle.read(10) == data[3:13]
        assert handle.read() == data[13:]
        handle.close()
        assert handle.closed

    def test_read_range_beyond_the_end_is_empty(self, store: S3ObjectStore) -> None:
        store.put("r/x", b"0123")
        assert store.read_range("r/x", 10, 20) == b""
        assert store.read_range("r/x", 0, 0) == b"0"
        with pytest.raises(NotFound):
            store.read_range("r/missing", 0, 10)

    def test_unsafe_keys_are_refused(self, store: S3ObjectStore) -> None:
        for bad in ("../outside", "a/../../b", "/etc/passwd", "a//b", "", "a/./b", "a?b=1"):
            with pytest.raises(InvalidInput):
                store.put(bad, b"x")

    def test_conditional_writes_are_native(self, store: S3ObjectStore, s3_target: S3Target) -> None:
        """All three honour If-None-Match: * (moto 5.2, SeaweedFS 4.x, MinIO 2025)."""
        assert store.conditional_writes_native() is True
        assert list(store.iter_keys()) == []  # the probe cleaned up after itself

    def test_conditional_create_is_atomic_between_processes(
        self, s3_target: S3Target, prefix: str
    ) -> None:
        """Separate stores share no lock, so only the server can pick one winner."""
        if s3_target.name == "moto":
            pytest.skip("moto checks If-None-Match and then writes, without a lock")
        stores = [_open_store(s3_target, prefix) for _ in range(8)]
        wins, losses = [], []
        barrier = threading.Barrier(len(stores))

        def claim(i: int) -> None:
            barrier.wait()
            try:
                stores[i].put("locators/contended", str(i).encode(), if_none_match=True)
                wins.append(i)
            except AlreadyExists:
                losses.append(i)

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(stores))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(wins) == 1 and len(losses) == len(stores) - 1
        with stores[0].open("locators/contended") as handle:
            assert handle.read() == str(wins[0]).encode()

    def test_emulated_conditional_create(self, store: S3ObjectStore) -> None:
        store._native_conditional = False  # as on a server that ignores If-None-Match
        self.test_if_none_match_race_has_one_winner(store)
        with pytest.raises(AlreadyExists):
            store.put("locators/race", b"late", if_none_match=True)

    def test_wrong_credentials_are_a_configuration_error(self, s3_target: S3Target) -> None:
        if s3_target.name == "moto":
            pytest.skip("moto accepts any credentials")
        store = S3ObjectStore.from_settings(s3_target.settings(s3_secret_key="not-the-secret"))
        for operation in (store.ping, lambda: store.head("a"), lambda: list(store.iter_keys())):
            with pytest.raises(StoreUnavailable, match="credentials") as raised:
                operation()
            assert isinstance(raised.value.__cause__, ClientError)

    def test_missing_bucket_is_a_configuration_error(self, s3_target: S3Target) -> None:
        """And a write does not create it (SeaweedFS creates buckets on PutObject for admins)."""
        missing = f"ologies-missing-{uuid.uuid4().hex[:10]}"
        settings = s3_target.settings().model_copy(update={"store_url": f"s3://{missing}/p"})
        store = S3ObjectStore.from_settings(settings)
        with pytest.raises(StoreUnavailable, match="does not exist"):
            store.ping()
        with pytest.raises(StoreUnavailable, match="does not exist"):
            store.put("a", b"x")
        with pytest.raises(ClientError):
            s3_target.client().head_bucket(Bucket=missing)


# -- outages: bounded, quick StoreUnavailable, never a hang or a botocore exception ---------


def _outage_store(endpoint: str) -> S3ObjectStore:
    target = S3Target("down", endpoint, "testing", "testing", "ologies-down")
    return _open_store(target, "p", s3_connect_timeout=1.0, s3_read_timeout=1.0, s3_max_attempts=2)


def _every_operation(store: S3ObjectStore) -> list[tuple[str, Any]]:
    return [
        ("ping", store.ping),
        ("put", lambda: store.put("k", b"x")),
        ("put-if-absent", lambda: store.put("k", b"x", if_none_match=True)),
        ("open", lambda: store.open("k")),
        ("read_range", lambda: store.read_range("k", 0, 1)),
        ("head", lambda: store.head("k")),
        ("exists", lambda: store.exists("k")),
        ("delete", lambda: store.delete("k")),
        ("iter_keys", lambda: list(store.iter_keys())),
    ]


def _assert_unavailable_quickly(store: S3ObjectStore, limit: float) -> None:
    for name, operation in _every_operation(store):
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as raised:
            operation()
        assert time.monotonic() - started < limit, name
        assert isinstance(raised.value.__cause__, (BotoCoreError, ClientError)), name


def test_closed_port_is_unavailable_quickly() -> None:
    store = _outage_store(f"http://127.0.0.1:{_free_port()}")
    _assert_unavailable_quickly(store, limit=5)
    with pytest.raises(StoreUnavailable) as raised:
        store.ping()
    assert isinstance(raised.value.__cause__, EndpointConnectionError)


def test_hung_server_times_out() -> None:
    """A server that accepts connections and never answers (SIGSTOP, partition): E3."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # the kernel completes handshakes; nobody ever reads
        store = _outage_store(f"http://127.0.0.1:{listener.getsockname()[1]}")
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.ping()
        assert time.monotonic() - started < 10


def test_server_stopping_mid_test() -> None:
    server = _start_moto()
    store = _outage_store(_moto_url(server))
    store.ensure_bucket()
    store.put("before", b"x")
    server.stop()
    _assert_unavailable_quickly(store, limit=10)


def test_server_stopping_mid_multipart_upload(tmp_path: Any) -> None:
    server = _start_moto()
    bucket = f"ologies-{uuid.uuid4().hex[:8]}"
    target = S3Target("moto", _moto_url(server), "testing", "testing", bucket)
    store = _open_store(target, "p", s3_multipart_threshold=5 * MiB, s3_max_attempts=2,
                        s3_connect_timeout=1.0, s3_read_timeout=2.0)
    store.ensure_bucket()
    data = _big(16 * MiB)

    class StopsServer(io.BytesIO):
        """Stops the server once the upload pass (after the hash pass) has sent a part."""

        seeks, stopped = 0, False

        def read(self, n: int | None = -1) -> bytes:
            if self.seeks >= 2 and self.tell() >= 6 * MiB and not self.stopped:
                server.stop()
                self.stopped = True
            return super().read(n)

        def seek(self, pos: int, whence: int = 0) -> int:
            self.seeks += 1
            return super().seek(pos, whence)

    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.put("big", source := StopsServer(data))
    assert source.stopped and time.monotonic() - started < 20
    # moto keeps its state in-process: a new server shows what the old one held
    replacement = _start_moto()
    try:
        client = S3Target("moto", _moto_url(replacement), "testing", "testing", bucket).client()
        assert "Contents" not in client.list_objects_v2(Bucket=target.bucket, Prefix="p/big")
    finally:
        replacement.stop()


def test_corruption_at_rest_is_detected_on_read(moto_server: Any) -> None:
    """E6: a bit flip inside the store. botocore checks the stored SHA-256 on a full GET of a
    single-part object, so the reader gets StoreUnavailable, never the wrong bytes."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    target = S3Target("moto", _moto_url(moto_server), "testing", "testing", "ologies-bitrot")
    store = _open_store(target, "p")
    store.ensure_bucket()
    store.put("x.dcm", b"A" * 100_000)
    s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[target.bucket].keys["p/x.dcm"].value = (
        b"B" + b"A" * 99_999
    )
    with pytest.raises(StoreUnavailable, match="FlexibleChecksumError"), store.open("x.dcm") as f:
        f.read()
    _remove_bucket(target.client(), target.bucket)


# -- the error table ------------------------------------------------------------------------


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("NoSuchKey", 404, NotFound),
        ("404", 404, NotFound),
        ("PreconditionFailed", 412, AlreadyExists),
        ("ConditionalRequestConflict", 409, AlreadyExists),
        ("BucketNotEmpty", 409, StoreUnavailable),
        ("NoSuchBucket", 404, StoreUnavailable),
        ("AccessDenied", 403, StoreUnavailable),
        ("403", 403, StoreUnavailable),
        ("EntityTooLarge", 400, PayloadTooLarge),
        ("XMinioStorageFull", 507, StorageFull),
        ("SlowDown", 503, StoreUnavailable),
        ("ServiceUnavailable", 503, StoreUnavailable),
        ("InternalError", 500, StoreUnavailable),
        ("BadDigest", 400, StoreUnavailable),
        ("XAmzContentChecksumMismatch", 400, StoreUnavailable),
        ("KeyTooLongError", 400, InvalidInput),
        ("NoSuchUpload", 404, StoreUnavailable),  # not NotFound: the upload, not the key
        ("SomethingNew", 400, StoreUnavailable),
    ],
)
def test_error_table(code: str, status: int, expected: type[Exception]) -> None:
    store = S3ObjectStore(boto3.client("s3", region_name="us-east-1"), "bucket")
    error = store._translate(_client_error(code, status), "k")
    assert type(error) is expected


def test_access_denied_says_it_is_configuration() -> None:
    store = S3ObjectStore(boto3.client("s3", region_name="us-east-1"), "bucket")
    message = str(store._translate(_client_error("AccessDenied", 403), "k"))
    assert "credentials" in message and "configuration" in message


def test_from_settings() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, store_url="s3://clinical/photos/", s3_endpoint_url="http://127.0.0.1:1",
        s3_access_key="a", s3_secret_key="b", s3_max_attempts=4, s3_connect_timeout=1.5,
        s3_read_timeout=7.0, s3_server_side_encryption="aws:kms", s3_multipart_threshold=8 * MiB,
    )
    store = S3ObjectStore.from_settings(settings)
    config = store._client.meta.config
    assert (store.bucket, store.prefix) == ("clinical", "photos/")
    assert (config.connect_timeout, config.read_timeout) == (1.5, 7.0)
    assert config.retries == {"total_max_attempts": 4, "mode": "standard"}  # 4 tries, not 5
    # the payload is not hashed a second time for the signature: its signed x-amz-checksum-sha256
    # is checked by the server (test_damaged_bytes_in_transit_are_refused, on the real servers)
    assert config.s3 == {"addressing_style": "path", "payload_signing_enabled": False}
    assert (store.server_side_encryption, store.part_size) == ("aws:kms", 8 * MiB)
    signing = S3ObjectStore.from_settings(settings.model_copy(update={"s3_payload_signing": True}))
    assert signing._client.meta.config.s3["payload_signing_enabled"] is True
    bare = settings.model_copy(update={"store_url": "s3://b"})
    assert S3ObjectStore.from_settings(bare).prefix == ""
