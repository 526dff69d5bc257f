"""Settings, validated once at start-up and injected (never read at import time).

Every field can be set by an ``OLOGIES_``-prefixed environment variable or a ``.env`` file.
"""

from __future__ import annotations

import difflib
import os
import zoneinfo
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path("ologies-data")
#: OLOGIES_* environment variables that are not settings but the project's own (infra/ scripts,
#: tests, benchmarks, the README's example shell variable): every other unknown OLOGIES_* name is
#: refused, as a mistyped setting (OLOGIES_STORE_ULR) would otherwise silently fall back to a default
NOT_SETTINGS_PREFIXES = ("OLOGIES_TEST_", "OLOGIES_FUZZ_", "OLOGIES_BENCH_", "OLOGIES_CORPUS_")
NOT_SETTINGS = frozenset({
    "OLOGIES_RUN_DIR", "OLOGIES_CACHE", "OLOGIES_VENV", "OLOGIES_START_TIMEOUT",  # infra/*.sh
    "OLOGIES_FAULTS", "OLOGIES_FLOOD_SECONDS", "OLOGIES_LOAD_SECONDS", "OLOGIES_SCHEMATHESIS_EXAMPLES",  # tests
    "OLOGIES_KEY",  # README: the API key in the curl example
})  # fmt: skip
#: secrets whose value contains this (or starts with "change-me") are refused: example placeholders
PLACEHOLDER_MARK = "REPLACE-ME"


class DimsePeer(BaseModel):
    """One calling AE title allowed to associate with the DIMSE listener."""

    model_config = ConfigDict(extra="forbid")

    trust: str = Field(min_length=3, max_length=5)  # ODS code the peer acts for
    role: str = "device"
    department: str = ""
    #: addresses it may call from; empty: any (AE titles are labels, not authentication)
    hosts: list[str] = Field(default_factory=list)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OLOGIES_", env_file=".env", extra="ignore")

    #: where the DICOM objects live: file:///path, s3://bucket/prefix or memory://
    store_url: str = Field(default_factory=lambda: (DEFAULT_DATA_DIR / "store").resolve().as_uri())
    #: the search index: sqlite:///path or http(s)://elasticsearch:9200
    index_url: str = Field(default_factory=lambda: "sqlite:///" + str((DEFAULT_DATA_DIR / "index.sqlite3").resolve()))
    #: accept NHS numbers in the 999 test range (DECISIONS.md 13); defaults to True only on the
    #: embedded backends, so a production deployment must opt in explicitly
    allow_test_nhs_numbers: bool | None = None
    #: local time zone for EXIF times without an offset (DECISIONS.md 12)
    local_timezone: str = "Europe/London"
    #: largest accepted request body, in bytes (413 above it): one largest video and 64 MiB more
    max_upload_bytes: int = 8 * 1024 * 1024 * 1024 + 64 * 1024 * 1024
    #: largest single file, in bytes
    max_file_bytes: int = 512 * 1024 * 1024
    #: largest single video (MP4, MOV), in bytes; a video of a few GB streams to disk and storage
    max_video_bytes: int = 8 * 1024 * 1024 * 1024
    #: most files in one upload
    max_files_per_upload: int = 200
    #: images above this many pixels are refused before decoding (decompression bombs)
    max_image_pixels: int = 150_000_000
    #: folder for spooled uploads; defaults to the system temporary folder
    spool_dir: Path | None = None
    organisations_file: Path | None = None
    rendered_max_size: int = 2048
    thumbnail_size: int = 256
    #: thumbnails kept in each worker's memory (MB; 0: none), so that a timeline or a search
    #: page showing the same thumbnails again does not fetch each from the store again
    thumbnail_cache_mb: int = Field(default=16, ge=0, le=4096)
    #: web worker processes for ``ologies serve``, forked from one parent that imported the
    #: application, so that they share its pages (web/prefork.py): 2 use both cores of a small
    #: machine and stay within 300 MB (PSS) while uploading camera photographs at concurrency 4
    workers: int = Field(default=2, ge=1, le=64)
    #: seconds between passes of the reconciler that drains "index pending" markers
    reconcile_interval_seconds: float = 10.0
    #: after an index write fails, uploads skip the index (202, pending) for this many seconds
    #: instead of each waiting for the index's timeouts. Longer than detecting a hung index takes
    #: (es_timeout x 3, about 30 s; at 5 s every other upload waited that out during a hang).
    #: Recovery is not slowed: a reconcile pass that succeeds ends the pause at once
    #: (Repository.reconcile_pending calls index_recovered), and each web worker's reconciler runs
    #: one every reconcile_interval_seconds (Services.reconcile_once, after ensure_schema, which
    #: asks the index, so a hung index does not end it). DIMSE store workers have no reconciler:
    #: theirs lasts the full time, their instances pending until a web worker's pass.
    index_retry_seconds: float = Field(default=60.0, ge=0)
    #: parallel object reads during ``ologies reindex`` (each one a GET from the store)
    reindex_workers: int = Field(default=8, ge=1, le=64)

    # S3 options (used when store_url is s3://)
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_server_side_encryption: str | None = None  # e.g. AES256 or aws:kms
    s3_connect_timeout: float = 5.0
    s3_read_timeout: float = 30.0
    s3_max_attempts: int = 3
    s3_multipart_threshold: int = 16 * 1024 * 1024
    #: also sign each request's payload (SigV4 x-amz-content-sha256). Every write already sends
    #: its SHA-256 in a signed x-amz-checksum-sha256 header, which the store verifies against the
    #: bytes (AWS, MinIO and SeaweedFS do, and echo it back, which is checked), so signing hashes
    #: every byte a second time; boto3 skips it over HTTPS for the same reason, but not over HTTP.
    #: Turn it on for a store that ignores checksum headers.
    s3_payload_signing: bool = False
    #: use S3 Object Lock (WORM): ``ologies init`` creates the bucket with it, legal holds are
    #: also set on the held patient's objects, audit records are retained (needs a store that
    #: supports it, such as AWS S3 or MinIO; ignored, with a warning, where the bucket lacks it)
    s3_object_lock: bool = False
    #: GOVERNANCE (a user with s3:BypassGovernanceRetention may still delete) or COMPLIANCE (nobody)
    s3_object_lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] = "GOVERNANCE"
    #: with Object Lock, every audit record and anchor is retained for this many days (0: none);
    #: 2,920 is eight years
    s3_audit_retention_days: int = Field(default=2920, ge=0, le=36500)

    # Elasticsearch options (used when index_url is http(s)://)
    es_index_prefix: str = "ologies"
    es_username: str | None = None
    es_password: str | None = None
    #: timeout of index writes and maintenance requests (bulk, rebuild steps), seconds
    es_timeout: float = 10.0
    #: timeout of a search and of the readiness probe, seconds, with no retry: a hung cluster
    #: turns into a quick 503 (RELIABILITY.md F5) rather than a request held for es_timeout x 3
    es_search_timeout: float = Field(default=2.0, gt=0)
    #: an upload is searchable when it is acknowledged (its write waits for the next scheduled
    #: refresh); false: acknowledged once durably indexed, searchable within es_refresh_interval
    es_publish_writes: bool = True
    #: the live index's refresh interval (Elasticsearch time units; never -1, which would hold
    #: every acknowledgement): the most an upload waits to be searchable, and how often the
    #: cluster makes a new segment under a stream of uploads (infra/README.md, benchmarks)
    es_refresh_interval: str = Field(default="250ms", pattern=r"^[1-9][0-9]*(ms|s)$")

    # Security (issue 6). Sign-in is always required; these choose how.
    #: OpenID Connect (NHS CIS2, Entra ID, Keycloak): bearer JWTs are accepted when issuer is set
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    #: the provider's JWKS; default: the issuer's /.well-known/jwks.json
    oidc_jwks_url: str | None = None
    #: claim holding the Ologies role(s), and claim holding the trust's ODS code
    oidc_role_claim: str = "roles"
    oidc_trust_claim: str = "ods_code"
    #: a token signed with a key id not yet seen refetches the JWKS at most this often: a rotated
    #: key is picked up within this many seconds, and bogus key ids cannot hammer the provider
    oidc_jwks_cooldown_seconds: float = Field(default=30.0, ge=0)
    #: key that signs session cookies; default: a random key kept in the object store, so that
    #: every app server shares it
    session_secret: str | None = None
    #: key of the audit trail's HMAC chain (repository/audit.py): kept outside the store (a
    #: secrets manager), so that someone who can write to the store cannot edit a record and
    #: re-chain the rest; without it the chain is plain SHA-256
    audit_key: str | None = Field(default=None, min_length=32)
    session_max_age_seconds: int = Field(default=8 * 3600, ge=300)
    #: mark session cookies Secure (set true behind HTTPS)
    cookie_secure: bool = False
    #: how long a stated reason opens another trust's images of one patient
    cross_trust_grant_hours: float = Field(default=12.0, gt=0, le=72)

    # DICOM (issue 4): DICOMweb under /dicomweb and the DIMSE listener (docs/conformance.md)
    #: most parts (instances, metadata and bulk data) in one STOW-RS request
    dicomweb_max_parts: int = Field(default=1000, ge=1)
    #: the listener's own AE title, and where it listens (``ologies serve --dimse-port``)
    dimse_ae_title: str = Field(default="OLOGIES", min_length=1, max_length=16)
    dimse_host: str = "127.0.0.1"
    dimse_port: int | None = Field(default=None, ge=1, le=65535)
    #: calling AE titles allowed to associate, each with the trust it acts for, e.g.
    #: {"DERMCAM1": {"trust": "REM", "department": "dermatology"},
    #:  "PACS": {"trust": "REM", "role": "clinician", "hosts": ["10.1.2.3"]}}
    #: role "device" (the default) may only store; a role that may search may also C-FIND
    dimse_peers: dict[str, DimsePeer] = Field(default_factory=dict)
    dimse_max_associations: int = Field(default=20, ge=1, le=500)
    dimse_max_associations_per_peer: int = Field(default=4, ge=1, le=500)
    #: seconds: association negotiation (an idle socket is dropped after this), DIMSE
    #: messages, and network silence
    dimse_acse_timeout: float = Field(default=5.0, gt=0)
    dimse_dimse_timeout: float = Field(default=30.0, gt=0)
    dimse_network_timeout: float = Field(default=30.0, gt=0)
    #: largest PDU we receive (bytes; 0 means unlimited, refused here)
    dimse_max_pdu: int = Field(default=262_144, ge=4096, le=16 * 1024 * 1024)
    #: largest data set received by C-STORE (bytes)
    dimse_max_dataset_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)

    # Operations (issue 8; web/observability.py)
    #: log lines as JSON (``json``, the default) or readable text (``console``)
    log_format: str = Field(default="json", pattern="^(json|console)$")
    log_level: str = Field(default="INFO", pattern="(?i)^(debug|info|warning|error)$")
    #: client addresses (comma-separated CIDRs) that may read /metrics without credentials;
    #: empty: administrators only. Prefer ``ologies serve --metrics-port`` (a separate port).
    metrics_allow: str = ""
    #: ``ologies serve`` also exports the metrics of all workers on this port (no sign-in:
    #: bind it to loopback or an internal interface, never behind the public proxy)
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"

    @field_validator("audit_key", mode="before")
    @classmethod
    def _unset_if_empty(cls, value: object) -> object:
        return None if value == "" else value  # OLOGIES_AUDIT_KEY= (a compose file's empty default)

    @field_validator("session_secret", "audit_key", "s3_secret_key", "es_password")
    @classmethod
    def _not_a_placeholder(cls, value: str | None, info: ValidationInfo) -> str | None:
        # the examples' placeholders (infra/k8s/secret.example.yaml, compose) are public: a key
        # anyone can read would let them forge sessions or re-chain the audit trail
        if value is not None and (PLACEHOLDER_MARK in value.upper() or value.lower().startswith("change-me")):
            raise ValueError(f"OLOGIES_{(info.field_name or '').upper()} is still an example's placeholder: set a real secret")
        return value

    @field_validator("store_url")
    @classmethod
    def _store_scheme(cls, value: str) -> str:
        scheme = urlparse(value).scheme
        if scheme not in {"file", "s3", "memory"}:
            raise ValueError(f"OLOGIES_STORE_URL scheme {scheme!r} is not one of file, s3, memory")
        return value

    @field_validator("index_url")
    @classmethod
    def _index_scheme(cls, value: str) -> str:
        scheme = urlparse(value).scheme
        if scheme not in {"sqlite", "http", "https"}:
            raise ValueError(f"OLOGIES_INDEX_URL scheme {scheme!r} is not one of sqlite, http, https")
        return value

    @field_validator("local_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"OLOGIES_LOCAL_TIMEZONE {value!r} is not a known time zone") from None
        return value

    @model_validator(mode="after")
    def _defaults_and_combinations(self) -> "Settings":
        if self.allow_test_nhs_numbers is None:
            self.allow_test_nhs_numbers = self.is_embedded
        if urlparse(self.store_url).scheme == "s3" and not urlparse(self.store_url).netloc:
            raise ValueError("OLOGIES_STORE_URL s3://bucket/prefix needs a bucket name")
        if self.max_file_bytes > self.max_upload_bytes:
            self.max_file_bytes = self.max_upload_bytes
        if self.max_video_bytes > self.max_upload_bytes:
            self.max_video_bytes = self.max_upload_bytes
        return self

    @model_validator(mode="after")
    def _no_unknown_variables(self) -> "Settings":
        known = {f"OLOGIES_{name.upper()}" for name in type(self).model_fields}
        unknown = sorted(
            name for name in (n.upper() for n in os.environ)
            if name.startswith("OLOGIES_") and name not in known and name not in NOT_SETTINGS
            and not name.startswith(NOT_SETTINGS_PREFIXES)
        )  # fmt: skip
        if unknown:
            named = []
            for name in unknown:
                close = difflib.get_close_matches(name, known, n=1)
                named.append(f"{name} (did you mean {close[0]}?)" if close else name)
            raise ValueError(f"unknown setting(s) in the environment: {', '.join(named)}; README, Configuration lists them")
        return self

    @property
    def is_embedded(self) -> bool:
        return urlparse(self.store_url).scheme in {"file", "memory"} and self.index_url.startswith("sqlite:")
