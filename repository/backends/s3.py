"""S3 object store (``s3://bucket/prefix``) for AWS S3, MinIO, SeaweedFS and other S3 servers.

* **Integrity end to end** (RELIABILITY.md 1.1): each object carries its SHA-256 as metadata
  (``x-amz-meta-sha256``, returned by ``head``); the server also gets ``x-amz-checksum-sha256``
  (per part for multipart), refuses damaged bytes, and any checksum it echoes is compared.
* **Bounded memory, all or nothing**: up to ``multipart_threshold`` bytes go in one PutObject;
  above, multipart with parts of ``max(threshold, 5 MiB)``, one in memory at a time. Any failure
  aborts the upload (2.12), so nothing partial is ever visible.
* **Digest before multipart**, as CreateMultipartUpload fixes the metadata: a seekable source is
  hashed, rewound and hashed again while uploading (a changed source is refused); a stream is
  first spooled to an anonymous file in ``spool_dir``. A CopyObject afterwards instead would show
  the object without its digest, cannot carry If-None-Match, and needs UploadPartCopy > 5 GiB.
* **Create-if-absent** sends ``If-None-Match: *`` after a once-per-store probe. Servers that
  answer 501 or ignore it get HEAD-then-PUT: a race window *between processes*, logged. In one
  process, conditional writers of a key queue on a striped lock. A botocore retry of a PUT whose
  answer was lost meets our own object and raises ``AlreadyExists``: callers compare digests.
* **Buckets are never created implicitly** (``ensure_bucket()`` is for tests and set-up): ``ping``
  and the first write check it, as SeaweedFS creates buckets on PutObject for admin users.
* **Vendor errors are translated at the boundary** by one table (as s3fs ``errors.py``); no
  botocore exception escapes, and the original stays as ``__cause__``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import logging
import os
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from stat import S_ISREG
from typing import Any, BinaryIO, cast
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from urllib3.exceptions import HTTPError as URLLib3Error

from repository import errors
from repository.errors import AlreadyExists, InvalidInput, NotFound, StoreUnavailable
from repository.hashing import CHUNK, as_stream, sha256_of_stream
from repository.settings import Settings
from repository.store import DICOM_MEDIA_TYPE, StoredObject

log = logging.getLogger(__name__)

MIN_PART, MAX_PARTS = 5 * 1024 * 1024, 10_000  # S3's smallest part (bar the last), most parts
INTERNAL_PREFIX = ".ologies-"  # our own keys (capability probes); never listed by iter_keys
_SAFE_KEY = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")  # as the filesystem adapter
_VENDOR_ERRORS = (ClientError, BotoCoreError, URLLib3Error)

_FALLBACK = (StoreUnavailable, "the object store failed on {key} ({code})")
_DENIED = "AccessDenied 403 InvalidAccessKeyId SignatureDoesNotMatch ExpiredToken InvalidToken"
#: vendor error codes (or the bare HTTP status, as HEAD answers have no body) -> domain error
_TABLE: list[tuple[str, type[errors.OlogiesError], str]] = [
    ("NoSuchKey NotFound 404", NotFound, "object {key} not found"),
    ("PreconditionFailed 412 ConditionalRequestConflict", AlreadyExists, "object {key} exists"),
    ("NoSuchBucket", StoreUnavailable, "bucket {bucket} does not exist (a configuration problem)"),
    (_DENIED, StoreUnavailable, ("the object store refused access to bucket {bucket} ({code}): "
     "check the S3 credentials and bucket policy (configuration, not the request)")),
    ("EntityTooLarge 413", errors.PayloadTooLarge, "object {key} is larger than the store accepts"),
    ("XMinioStorageFull QuotaExceeded XMinioAdminBucketQuotaExceeded 507", errors.StorageFull,
     "the object store is full; {key} was not stored"),
    ("BadDigest InvalidDigest XAmzContentSHA256Mismatch XAmzContentChecksumMismatch",
     StoreUnavailable, "the object store received damaged bytes for {key} ({code}); retry"),
    ("NotImplemented 501", StoreUnavailable, ("the object store lacks a feature this needs ({code})"
     ", e.g. server-side encryption without a KMS: check the s3_* settings")),
    ("KeyTooLongError XMinioInvalidObjectName", InvalidInput, "the store refuses the key {key!r}"),
    ("NoSuchUpload SlowDown ServiceUnavailable InternalError", *_FALLBACK),  # and unknown codes
]
_ERRORS = {code: (cls, text) for codes, cls, text in _TABLE for code in codes.split()}


def _code(exc: ClientError) -> tuple[str, int]:
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return str(exc.response.get("Error", {}).get("Code") or status), status


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _read_up_to(source: BinaryIO, size: int) -> bytes:
    """``size`` bytes unless the source ends first (a raw read may return fewer)."""
    buffer = bytearray()
    while len(buffer) < size and (chunk := source.read(min(CHUNK, size - len(buffer)))):
        buffer += chunk
    return bytes(buffer)


def _remaining_in_file(source: BinaryIO, start: int | None) -> int | None:
    """Bytes from ``start`` to the end of ``source`` if it is a regular file, else None."""
    if start is None:
        return None
    try:
        stat = os.fstat(source.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return stat.st_size - start if S_ISREG(stat.st_mode) else None


def _tell(source: BinaryIO) -> int | None:  # where to rewind to, if the source can
    try:
        return source.tell() if source.seekable() else None
    except (AttributeError, OSError, ValueError):
        return None


class _Body(io.RawIOBase):
    """botocore's StreamingBody as a raw stream: in ``io.BufferedReader`` it offers ``read(n)``,
    ``close`` and ``with``, and read failures (timeouts, checksum) become ``StoreUnavailable``."""

    def __init__(self, body: Any, store: S3ObjectStore, key: str) -> None:
        self._body, self._store, self._key = body, store, key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with self._store._errors(self._key):
            data = self._body.read(len(buffer))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:  # the default reads 8 KiB at a time
        chunks = []
        while chunk := self.read(CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        if not self.closed:
            try:
                self._body.close()
            finally:
                super().close()


class S3ObjectStore:
    supports_range = True

    def __init__(
        self, client: Any, bucket: str, prefix: str = "", *, multipart_threshold: int = 16 << 20,
        server_side_encryption: str | None = None, spool_dir: Path | None = None,
        object_lock: bool = False, lock_mode: str = "GOVERNANCE", retain: dict[str, int] | None = None,
    ) -> None:
        self._client, self.bucket, self.spool_dir = client, bucket, spool_dir
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.multipart_threshold = multipart_threshold
        self.part_size = max(MIN_PART, multipart_threshold)
        self.server_side_encryption = server_side_encryption
        self._native_conditional: bool | None = None  # unknown until probed
        self._bucket_checked, self._probe_lock = False, threading.Lock()
        self._key_locks = [threading.Lock() for _ in range(64)]
        # S3 Object Lock: asked for in settings, and used only if the bucket has it enabled
        self._object_lock_wanted, self.lock_mode = object_lock, lock_mode
        self.retain = dict(retain or {})  # key prefix -> days each new object there is retained
        self._object_lock: bool | None = None  # unknown until asked

    @classmethod
    def from_settings(cls, settings: Settings, *, retain: dict[str, int] | None = None) -> S3ObjectStore:
        """Build the client once. Without ``s3_access_key`` boto3's default chain applies
        (environment, instance role). Timeouts and bounded retries turn an outage into a quick
        ``StoreUnavailable``, not a hang; path-style addressing suits MinIO and SeaweedFS."""
        config = Config(
            connect_timeout=settings.s3_connect_timeout, read_timeout=settings.s3_read_timeout,
            # total_max_attempts counts the first try; botocore's max_attempts does not.
            retries={"total_max_attempts": settings.s3_max_attempts, "mode": "standard"},
            s3={"addressing_style": "path", "payload_signing_enabled": settings.s3_payload_signing},
        )
        client = boto3.session.Session(
            settings.s3_access_key, settings.s3_secret_key, region_name=settings.s3_region
        ).client("s3", endpoint_url=settings.s3_endpoint_url, config=config)
        url = urlparse(settings.store_url)
        return cls(
            client, url.netloc, url.path, multipart_threshold=settings.s3_multipart_threshold,
            server_side_encryption=settings.s3_server_side_encryption, spool_dir=settings.spool_dir,
            object_lock=settings.s3_object_lock, lock_mode=settings.s3_object_lock_mode, retain=retain,
        )

    def _quietly(self, call: Any, **params: Any) -> None:  # clean-up: log, never mask the cause
        try:
            call(**params)
        except _VENDOR_ERRORS:
            log.warning("%s %s failed", call.__name__, params, exc_info=True)

    def _translate(self, exc: BaseException, key: str) -> errors.OlogiesError:
        if isinstance(exc, ClientError):
            code, status = _code(exc)
            cls, text = _ERRORS.get(code) or _ERRORS.get(str(status)) or _FALLBACK
            return cls(text.format(key=key, bucket=self.bucket, code=code))
        # The endpoint goes to the log, not into the message: a 503's body reaches any client,
        # and the store's internal address is none of its business.
        log.warning("the store at %s failed on %s: %r", self._client.meta.endpoint_url, key, exc)
        return StoreUnavailable(f"the object store failed on {key}: {type(exc).__name__}")

    @contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        try:
            yield
        except _VENDOR_ERRORS as exc:
            raise self._translate(exc, key) from exc

    def _key(self, key: str) -> str:
        if not _SAFE_KEY.match(key) or any(part in {".", ".."} for part in key.split("/")):
            raise InvalidInput(f"invalid object key {key!r}")
        return self.prefix + key

    def put(
        self, key: str, source: BinaryIO | bytes, *, media_type: str = DICOM_MEDIA_TYPE,
        if_none_match: bool = False,
    ) -> StoredObject:
        return self._put(key, as_stream(source), media_type, if_none_match, None)

    def put_file(
        self, key: str, path: Path, *, sha256: str, media_type: str = DICOM_MEDIA_TYPE,
        if_none_match: bool = False,
    ) -> StoredObject:
        """Upload the file with the digest its writer computed (not hashed again here); S3
        checks it against the bytes it receives, end to end."""
        with path.open("rb") as handle:
            return self._put(key, handle, media_type, if_none_match, sha256)

    def _put(self, key: str, stream: BinaryIO, media: str, if_none_match: bool, digest: str | None) -> StoredObject:
        full = self._key(key)
        if not self._bucket_checked:
            self.ping()
            self._bucket_checked = True
        if not if_none_match:
            return self._write(full, key, stream, media, False, digest)
        with self._key_locks[hash(full) % len(self._key_locks)]:
            native = self.conditional_writes_native()
            if not native and self.exists(key):
                raise AlreadyExists(f"object {key} exists")
            return self._write(full, key, stream, media, native, digest)

    def _write(self, full: str, key: str, stream: BinaryIO, media: str, cond: bool, known: str | None = None) -> StoredObject:
        start = _tell(stream)
        file_size = _remaining_in_file(stream, start)
        if known and file_size is not None and file_size <= self.multipart_threshold:
            # A file whose digest is known goes as it is: botocore reads it as it sends (and
            # rewinds it to retry), where reading it into memory first held two copies of it.
            return self._put_single(full, key, stream, file_size, bytes.fromhex(known), media, cond)
        head = _read_up_to(stream, self.multipart_threshold + 1)
        if len(head) <= self.multipart_threshold:
            digest = bytes.fromhex(known) if known else hashlib.sha256(head).digest()
            return self._put_single(full, key, head, len(head), digest, media, cond)
        spooled = start is None
        with tempfile.TemporaryFile(dir=self.spool_dir) if spooled else nullcontext(stream) as body:
            if spooled:  # a stream goes to disk, so that it can be hashed and then read again
                body.write(head)
                shutil.copyfileobj(stream, body, CHUNK)
            del head
            body.seek(start or 0)
            size, digest = sha256_of_stream(cast(BinaryIO, body))
            body.seek(start or 0)
            return self._put_multipart(full, key, cast(BinaryIO, body), size, digest, media, cond)

    def _params(self, full: str, media: str, digest: str) -> dict[str, Any]:
        params: dict[str, Any] = {
            "Bucket": self.bucket, "Key": full, "ContentType": media,
            "Metadata": {"sha256": digest}, "ChecksumAlgorithm": "SHA256",
        }
        if self.server_side_encryption:
            params["ServerSideEncryption"] = self.server_side_encryption
        days = next((d for prefix, d in self.retain.items() if full[len(self.prefix):].startswith(prefix)), 0)
        if days and self.supports_object_lock:
            params["ObjectLockMode"] = self.lock_mode
            params["ObjectLockRetainUntilDate"] = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)
        return params

    # -- S3 Object Lock (write once, read many) -----------------------------------------------
    @property
    def supports_object_lock(self) -> bool:
        """Whether objects can be locked: Object Lock asked for and enabled on the bucket."""
        if not self._object_lock_wanted:
            return False
        if self._object_lock is None:
            try:
                config = self._client.get_object_lock_configuration(Bucket=self.bucket)
                self._object_lock = config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
            except ClientError as exc:
                if _code(exc)[1] >= 500:
                    raise self._translate(exc, self.bucket) from exc
                self._object_lock = False  # ObjectLockConfigurationNotFoundError, or not implemented
            except _VENDOR_ERRORS as exc:
                raise self._translate(exc, self.bucket) from exc
            if not self._object_lock:
                log.warning("S3 Object Lock is configured but bucket %s does not have it: not used", self.bucket)
        return self._object_lock

    def set_legal_hold(self, key: str, on: bool) -> None:
        """Put the object's current version under a legal hold (no one can delete or overwrite
        that version until it is released), or release it."""
        with self._errors(key):
            self._client.put_object_legal_hold(
                Bucket=self.bucket, Key=self._key(key), LegalHold={"Status": "ON" if on else "OFF"}
            )

    def _put_single(self, full: str, key: str, body: bytes | BinaryIO, size: int, digest: bytes, media: str,
                    cond: bool) -> StoredObject:  # fmt: skip
        """One PutObject of ``body`` (bytes, or an open file botocore reads as it sends)."""
        params = self._params(full, media, digest.hex())
        params.update(Body=body, ChecksumSHA256=_b64(digest))
        if cond:
            params["IfNoneMatch"] = "*"
        with self._errors(key):
            response = self._client.put_object(**params)
        self._check_echo(response, {_b64(digest)}, full, key)
        return StoredObject(key, size, digest.hex(), media)

    def _put_multipart(self, full: str, key: str, body: BinaryIO, size: int, digest: str,
                       media: str, cond: bool) -> StoredObject:
        part_size = max(self.part_size, -(-size // MAX_PARTS))
        with self._errors(key):
            upload = self._client.create_multipart_upload(**self._params(full, media, digest))
        ids = {"Bucket": self.bucket, "Key": full, "UploadId": upload["UploadId"]}
        parts: list[dict[str, Any]] = []
        part_digests, hasher = [], hashlib.sha256()
        try:
            while chunk := _read_up_to(body, part_size):
                hasher.update(chunk)
                part_digests.append(hashlib.sha256(chunk).digest())
                part = {"PartNumber": len(parts) + 1, "ChecksumSHA256": _b64(part_digests[-1])}
                with self._errors(key):
                    sent = self._client.upload_part(
                        **ids, **part, Body=chunk, ChecksumAlgorithm="SHA256")
                parts.append({**part, "ETag": sent["ETag"]})
            if hasher.hexdigest() != digest:
                raise StoreUnavailable(f"the source of {key} changed while it was uploaded")
            extra = {"IfNoneMatch": "*"} if cond else {}
            with self._errors(key):
                response = self._client.complete_multipart_upload(
                    **ids, MultipartUpload={"Parts": parts}, **extra
                )
        except BaseException:  # if the abort fails too, ensure_bucket's lifecycle rule collects it
            self._quietly(self._client.abort_multipart_upload, **ids)
            raise
        composite = _b64(hashlib.sha256(b"".join(part_digests)).digest())
        self._check_echo(response, {composite, _b64(bytes.fromhex(digest))}, full, key)
        return StoredObject(key, size, digest, media)

    def _check_echo(self, response: Any, expected: set[str], full: str, key: str) -> None:
        """A checksum echoed by the server that is not ours means it stored other bytes."""
        echoed = response.get("ChecksumSHA256")
        if echoed and echoed.split("-")[0] not in expected:
            self._quietly(self._client.delete_object, Bucket=self.bucket, Key=full)
            raise StoreUnavailable(f"the object store's checksum for {key} does not match; retry")

    def conditional_writes_native(self) -> bool:
        """Whether the server honours ``If-None-Match: *``; probed once, then cached."""
        with self._probe_lock:
            if self._native_conditional is None:
                self._native_conditional = self._probe_conditional()
                if not self._native_conditional:
                    log.warning("%s ignores If-None-Match: create-if-absent is emulated, atomic "
                                "only within this process", self._client.meta.endpoint_url)
            return self._native_conditional

    def _probe_conditional(self) -> bool:
        probe = {"Bucket": self.bucket, "Key": f"{self.prefix}{INTERNAL_PREFIX}{uuid.uuid4().hex}"}
        try:
            with self._errors(probe["Key"]):
                for _ in range(2):
                    try:
                        self._client.put_object(**probe, Body=b"", IfNoneMatch="*")
                    except ClientError as exc:
                        code, status = _code(exc)
                        if code == "NotImplemented" or status == 501:
                            return False
                        if code == "PreconditionFailed" or status == 412:
                            return True
                        raise
            return False  # the second create was accepted: the header is ignored
        finally:
            self._quietly(self._client.delete_object, **probe)

    def delete(self, key: str) -> None:
        try:
            with self._errors(key):
                self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except NotFound:  # deleting a missing key is not an error
            pass

    def open(self, key: str) -> BinaryIO:
        with self._errors(key):
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
        return cast(BinaryIO, io.BufferedReader(_Body(response["Body"], self, key), CHUNK))

    def read_range(self, key: str, start: int, end: int) -> bytes:
        full = self._key(key)
        if start < 0 or end < start:
            return b""
        try:
            span = f"bytes={start}-{end}"
            response = self._client.get_object(Bucket=self.bucket, Key=full, Range=span)
        except _VENDOR_ERRORS as exc:
            if isinstance(exc, ClientError) and _code(exc)[0] in {"InvalidRange", "416"}:
                return b""  # start lies beyond the end
            raise self._translate(exc, key) from exc
        with _Body(response["Body"], self, key) as body:
            return _read_up_to(cast(BinaryIO, body), end - start + 1)

    def head(self, key: str) -> StoredObject:
        with self._errors(key):
            response = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        return self._described(key, response)

    def open_stored(self, key: str) -> tuple[StoredObject, BinaryIO]:
        """``head`` and ``open`` in one request: a GET answer carries the metadata too (reindex
        reads every object this way, one request each instead of two)."""
        with self._errors(key):
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
        body = cast(BinaryIO, io.BufferedReader(_Body(response["Body"], self, key), CHUNK))
        return self._described(key, response), body

    @staticmethod
    def _described(key: str, response: Any) -> StoredObject:
        metadata = {name.lower(): value for name, value in response.get("Metadata", {}).items()}
        media = response.get("ContentType") or "application/octet-stream"
        return StoredObject(key, int(response["ContentLength"]), metadata.get("sha256"), media)

    def exists(self, key: str) -> bool:
        try:
            return bool(self.head(key))
        except NotFound:
            return False

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        with self._errors(prefix or "/"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    key = item["Key"][len(self.prefix) :]
                    if not key.startswith(INTERNAL_PREFIX):
                        yield key

    def _bucket_missing(self) -> bool:
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return False
        except _VENDOR_ERRORS as exc:
            if isinstance(exc, ClientError) and _code(exc)[1] == 404:
                return True
            raise self._translate(exc, self.bucket) from exc

    def ping(self) -> None:
        if self._bucket_missing():
            raise StoreUnavailable(f"bucket {self.bucket} does not exist (a configuration problem)")

    def ensure_bucket(self) -> bool:
        """Create the bucket if missing (True if created), for tests and explicit set-up. A new
        bucket gets a rule aborting uploads abandoned for a day where supported (SeaweedFS; MinIO
        refuses it and expires stale uploads itself); existing lifecycles are never replaced."""
        if not self._bucket_missing():
            return False
        params: dict[str, Any] = {"Bucket": self.bucket}
        if self._object_lock_wanted:  # only at creation: S3 cannot add it to a bucket later
            params["ObjectLockEnabledForBucket"] = True
        region = self._client.meta.region_name
        if region and region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._client.create_bucket(**params)
        except _VENDOR_ERRORS as exc:
            if isinstance(exc, ClientError) and _code(exc)[0] == "BucketAlreadyOwnedByYou":
                return False
            raise self._translate(exc, self.bucket) from exc
        rule = {"ID": "ologies-abort-abandoned-uploads", "Status": "Enabled",
                "Filter": {"Prefix": self.prefix},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}
        try:
            self._client.put_bucket_lifecycle_configuration(Bucket=self.bucket, LifecycleConfiguration={"Rules": [rule]})
        except _VENDOR_ERRORS as exc:
            # MinIO refuses this rule (it expires stale multipart uploads by itself, after 24 h);
            # one line, not a traceback: nothing is wrong with the bucket
            log.info("the store keeps its own policy for abandoned multipart uploads (%s)", _code(exc)[0] if isinstance(exc, ClientError) else type(exc).__name__)
        return True

    def close(self) -> None:
        self._client.close()
