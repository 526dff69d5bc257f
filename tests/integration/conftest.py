"""Fixtures for the production backends: a real S3 server (SeaweedFS and/or MinIO) and a real
Elasticsearch, named by the variables ``infra/test-env.sh`` exports.

A variable that is not set skips the tests that need that server; a variable that is set for a
server that does not answer FAILS them (CI must not go green because a server did not start).
Each test gets its own bucket and its own index prefix, removed afterwards.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from elasticsearch import Elasticsearch

from repository.settings import Settings

S3_SERVERS = {"minio": "OLOGIES_TEST_MINIO_URL", "seaweedfs": "OLOGIES_TEST_SEAWEEDFS_URL"}
ACCESS_KEY = os.environ.get("OLOGIES_TEST_S3_ACCESS_KEY", "ologies")
SECRET_KEY = os.environ.get("OLOGIES_TEST_S3_SECRET_KEY", "ologies-secret")


def es_url_from_env() -> str:
    return os.environ.get("OLOGIES_TEST_ES_URL") or os.environ.get("OLOGIES_TEST_ELASTICSEARCH_URL") or ""


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}, connect_timeout=3, read_timeout=30),
    )  # fmt: skip


def wait_for_s3(endpoint: str, what: str, timeout: float = 30) -> None:
    deadline, error = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            s3_client(endpoint).list_buckets()
            return
        except Exception as exc:  # noqa: BLE001 - reported below
            error = exc
            time.sleep(1)
    pytest.fail(f"{what}={endpoint} is set but the S3 server does not answer: {error!r}", pytrace=False)


def wait_for_es(url: str, what: str, timeout: float = 60) -> None:
    deadline, error = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            with Elasticsearch(url, request_timeout=10) as client:
                client.cluster.health(wait_for_status="yellow", timeout="5s")
            return
        except Exception as exc:  # noqa: BLE001 - reported below
            error = exc
            time.sleep(1)
    pytest.fail(f"{what}={url} is set but Elasticsearch does not answer: {error!r}", pytrace=False)


def remove_bucket(endpoint: str, bucket: str) -> None:
    client = s3_client(endpoint)
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        client.delete_bucket(Bucket=bucket)
    except client.exceptions.NoSuchBucket:
        pass


def remove_indices(url: str, prefix: str) -> None:
    with Elasticsearch(url, request_timeout=30) as client:
        found = client.options(ignore_status=404).indices.get_alias(index=f"{prefix}-*")
        for name in found.body if found.meta.status == 200 else {}:
            client.options(ignore_status=404).indices.delete(index=name)


@dataclass(frozen=True)
class Backends:
    """One S3 server and one Elasticsearch for one test, with a bucket and a prefix of its own."""

    s3_name: str
    s3_endpoint: str
    es_url: str
    bucket: str
    es_prefix: str

    def settings(self, tmp_path: Any, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "store_url": f"s3://{self.bucket}/ologies",
            "s3_endpoint_url": self.s3_endpoint,
            "s3_access_key": ACCESS_KEY,
            "s3_secret_key": SECRET_KEY,
            "s3_server_side_encryption": "AES256",  # on in both infra servers, as a trust would want
            "index_url": self.es_url,
            "es_index_prefix": self.es_prefix,
            "allow_test_nhs_numbers": True,
            "spool_dir": tmp_path,
            **overrides,
        }
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    def environment(self, **overrides: str) -> dict[str, str]:
        """The same configuration as ``OLOGIES_*`` variables, for ``ologies`` subprocesses."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OLOGIES_")}
        env.update({
            "OLOGIES_STORE_URL": f"s3://{self.bucket}/ologies",
            "OLOGIES_S3_ENDPOINT_URL": self.s3_endpoint,
            "OLOGIES_S3_ACCESS_KEY": ACCESS_KEY,
            "OLOGIES_S3_SECRET_KEY": SECRET_KEY,
            "OLOGIES_S3_SERVER_SIDE_ENCRYPTION": "AES256",
            "OLOGIES_INDEX_URL": self.es_url,
            "OLOGIES_ES_INDEX_PREFIX": self.es_prefix,
            "OLOGIES_ALLOW_TEST_NHS_NUMBERS": "true",
        })  # fmt: skip
        env.update(overrides)
        return env


@pytest.fixture(scope="session")
def es_url() -> str:
    url = es_url_from_env()
    if not url:
        pytest.skip("set OLOGIES_TEST_ES_URL (bash infra/elasticsearch.sh start; source infra/test-env.sh)")
    wait_for_es(url, "OLOGIES_TEST_ES_URL")
    return url


@pytest.fixture(scope="session", params=sorted(S3_SERVERS))
def s3_server(request: pytest.FixtureRequest) -> tuple[str, str]:
    variable = S3_SERVERS[request.param]
    endpoint = os.environ.get(variable, "")
    if not endpoint:
        pytest.skip(f"{variable} is not set")
    wait_for_s3(endpoint, variable)
    return request.param, endpoint


@pytest.fixture
def backends(s3_server: tuple[str, str], es_url: str) -> Iterator[Backends]:
    name, endpoint = s3_server
    made = Backends(name, endpoint, es_url, f"ologies-it-{uuid.uuid4().hex[:12]}", f"ologies-it-{uuid.uuid4().hex[:10]}")
    yield made
    remove_indices(es_url, made.es_prefix)
    remove_bucket(endpoint, made.bucket)


def authorised(client: Any) -> Any:
    """Sign ``client`` (a TestClient over an app) in as an administrator with a real API key."""
    from tests.conftest import api_key

    client.headers["Authorization"] = f"Bearer {api_key(client.app)}"
    return client


def poll(condition: Callable[[], Any], *, timeout: float, every: float = 0.5, what: str = "condition") -> Any:
    """Call ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)
