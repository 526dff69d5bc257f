"""Choose backends from URLs. Adapters are imported lazily, so an embedded install needs
neither boto3 nor elasticsearch, and a missing optional package names its extra."""

from __future__ import annotations

import importlib
from urllib.parse import unquote, urlparse

from repository.errors import ConfigurationError
from repository.settings import Settings
from repository.store import ObjectStore


def _load(module: str, name: str, extra: str | None):  # type: ignore[no-untyped-def]
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        hint = f"; install ologies[{extra}]" if extra else ""
        raise ConfigurationError(f"backend {name} is unavailable: {exc}{hint}") from exc


def open_store(settings: Settings) -> ObjectStore:
    url = urlparse(settings.store_url)
    if url.scheme == "file":
        cls = _load("repository.backends.filesystem", "FilesystemObjectStore", None)
        return cls(unquote(url.path))  # type: ignore[no-any-return]
    if url.scheme == "memory":
        return _load("repository.backends.memory", "MemoryObjectStore", None)()  # type: ignore[no-any-return]
    if url.scheme == "s3":
        cls = _load("repository.backends.s3", "S3ObjectStore", "s3")
        from repository.audit import ANCHORS, RECORDS

        days = settings.s3_audit_retention_days  # the audit trail is the record that must outlast
        return cls.from_settings(settings, retain={RECORDS: days, ANCHORS: days} if days else {})  # type: ignore[no-any-return]
    raise ConfigurationError(f"no object store for {settings.store_url!r}")


def open_index(settings: Settings):  # type: ignore[no-untyped-def]
    url = urlparse(settings.index_url)
    if url.scheme == "sqlite":
        cls = _load("search.backends.sqlite", "SQLiteIndex", None)
        # sqlite:///relative or sqlite:////absolute, and sqlite:///:memory:
        path = settings.index_url[len("sqlite:///") :] or ":memory:"
        return cls(path)
    if url.scheme in {"http", "https"}:
        cls = _load("search.backends.elasticsearch", "ElasticsearchIndex", "elasticsearch")
        return cls.from_settings(settings)
    raise ConfigurationError(f"no search index for {settings.index_url!r}")
