"""S3 Object Lock on a real MinIO: with ``s3_object_lock`` the bucket is created with it, every
audit record is retained (GOVERNANCE, ``s3_audit_retention_days``), and a legal hold is also set
on each stored object of the held patient, so that not even someone holding the storage
credentials can delete those versions; releasing the hold releases them. A bucket without Object
Lock is used as before."""

from __future__ import annotations

import datetime as dt
import os
import uuid

import pytest
from botocore.exceptions import ClientError

from ingest.pipeline import IncomingFile
from repository.governance import Governance
from repository.registry import open_store
from repository.settings import Settings
from tests.conftest import NHS_A, patient_fields
from tests.imagegen import jpeg, photo
from tests.integration.conftest import ACCESS_KEY, SECRET_KEY, s3_client, wait_for_s3
from web.services import Services

MINIO = os.environ.get("OLOGIES_TEST_MINIO_URL", "")
pytestmark = pytest.mark.skipif(not MINIO, reason="set OLOGIES_TEST_MINIO_URL: Object Lock is tested on MinIO")


def settings_for(bucket: str, tmp_path, **overrides) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(
        _env_file=None, store_url=f"s3://{bucket}/ologies", s3_endpoint_url=MINIO, s3_access_key=ACCESS_KEY,
        s3_secret_key=SECRET_KEY, index_url=f"sqlite:///{tmp_path / 'index.sqlite3'}", allow_test_nhs_numbers=True,
        spool_dir=tmp_path, **overrides,
    )  # fmt: skip


def remove_locked_bucket(bucket: str) -> None:
    client = s3_client(MINIO)
    try:
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for version in page.get("Versions", []) + page.get("DeleteMarkers", []):
                ids = {"Bucket": bucket, "Key": version["Key"], "VersionId": version["VersionId"]}
                try:
                    client.put_object_legal_hold(**ids, LegalHold={"Status": "OFF"})
                except ClientError:
                    pass  # a delete marker has no hold
                client.delete_object(**ids, BypassGovernanceRetention=True)
        client.delete_bucket(Bucket=bucket)
    except client.exceptions.NoSuchBucket:
        pass


@pytest.fixture
def locked(tmp_path):  # type: ignore[no-untyped-def]
    wait_for_s3(MINIO, "OLOGIES_TEST_MINIO_URL")
    bucket = f"ologies-lock-{uuid.uuid4().hex[:10]}"
    settings = settings_for(bucket, tmp_path, s3_object_lock=True, s3_audit_retention_days=1)
    store = open_store(settings)
    assert store.ensure_bucket()
    store.close()
    services = Services.build(settings)
    try:
        yield services, bucket
    finally:
        services.close()
        remove_locked_bucket(bucket)


def versions(bucket: str, key: str) -> list[str]:
    listed = s3_client(MINIO).list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
    return [v["VersionId"] for v in listed if v["Key"] == key]


def test_audit_records_are_retained_and_cannot_be_deleted(locked):
    services, bucket = locked
    assert services.repository.store.supports_object_lock
    services.ingestor.ingest([IncomingFile(_photo(services), "a.jpg")], patient_fields(), route="api")
    from repository.audit import AuditEvent

    services.audit.record(AuditEvent.by(None, "search", source="10.0.0.1", detail="who looked"))
    client = s3_client(MINIO)
    records = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="ologies/audit/records/")["Contents"]]
    assert records
    retention = client.get_object_retention(Bucket=bucket, Key=records[-1])["Retention"]
    assert retention["Mode"] == "GOVERNANCE"
    assert retention["RetainUntilDate"] > dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=23)
    (version,) = versions(bucket, records[-1])
    with pytest.raises(ClientError):
        client.delete_object(Bucket=bucket, Key=records[-1], VersionId=version)
    assert services.audit.verify().intact


def test_a_legal_hold_locks_the_patients_objects_until_released(locked):
    services, bucket = locked
    result = services.ingestor.ingest([IncomingFile(_photo(services), "a.jpg")], patient_fields(), route="api")
    key = "ologies/" + result.files[0].outcome.key
    client = s3_client(MINIO)
    assert "LegalHold" not in _hold(client, bucket, key)

    Governance(services.repository).set_hold(NHS_A, by="ig-officer", reason="Coroner's inquest ref 2026/117")
    assert _hold(client, bucket, key) == {"Status": "ON"}
    assert _hold(client, bucket, f"ologies/governance/holds/{NHS_A}.json") == {"Status": "ON"}
    (version,) = versions(bucket, key)
    with pytest.raises(ClientError, match="WORM|AccessDenied|InvalidRequest"):
        client.delete_object(Bucket=bucket, Key=key, VersionId=version)
    later = services.ingestor.ingest([IncomingFile(_photo(services), "b.jpg")], patient_fields(), route="api")
    later_key = "ologies/" + later.files[0].outcome.key
    assert later.files[0].outcome.status == "created" and later_key != key
    assert _hold(client, bucket, later_key) == {"Status": "ON"}  # uploaded while held: locked too

    Governance(services.repository).release_hold(NHS_A)
    assert _hold(client, bucket, key) == {"Status": "OFF"}
    assert _hold(client, bucket, later_key) == {"Status": "OFF"}
    client.delete_object(Bucket=bucket, Key=key, VersionId=version)  # an instance is not retained


def test_a_bucket_without_object_lock_is_used_as_before(tmp_path):
    wait_for_s3(MINIO, "OLOGIES_TEST_MINIO_URL")
    bucket = f"ologies-nolock-{uuid.uuid4().hex[:10]}"
    s3_client(MINIO).create_bucket(Bucket=bucket)  # made elsewhere, without Object Lock
    services = Services.build(settings_for(bucket, tmp_path, s3_object_lock=True))
    try:
        assert not services.repository.store.supports_object_lock
        services.ingestor.ingest([IncomingFile(_photo(services), "a.jpg")], patient_fields(), route="api")
        Governance(services.repository).set_hold(NHS_A, by="ig-officer", reason="Coroner's inquest ref 2026/118")
        assert Governance(services.repository).hold(NHS_A)
    finally:
        services.close()
        remove_locked_bucket(bucket)


def _photo(services):  # type: ignore[no-untyped-def]
    """A photograph of its own each time (a repeat would be the same instance)."""
    path = services.settings.spool_dir / f"{uuid.uuid4().hex}.jpg"
    path.write_bytes(jpeg(photo(320, 240, seed=uuid.uuid4().int % 10_000)))
    return path


def _hold(client, bucket: str, key: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    try:
        return client.get_object_legal_hold(Bucket=bucket, Key=key)["LegalHold"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError"):
            return {}
        raise
