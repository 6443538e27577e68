"""Storage fixtures: ``storage`` runs a test once on a local folder and once on S3 (moto in
server mode on loopback: real HTTP, real multipart uploads), in a bucket of its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aioboto3
import httpx
import pytest

from backend.media.storage import LocalStorage, Storage
from backend.media.storage.base import MIN_PART_SIZE
from backend.media.storage.s3 import S3Storage
from backend.media.storage.s3_client import S3Endpoint
from tests import services
from tests.graphql_client import gql, register
from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY, running_s3_server


@pytest.fixture(scope="session")
def s3_endpoint_url() -> Iterator[str]:
    with ExitStack() as stack:
        try:
            url = stack.enter_context(running_s3_server())
        except Exception as error:  # moto missing or failing to start
            services.missing("moto S3 server on 127.0.0.1", error)
        yield url


# One session for all tests: each new one would parse the S3 API model again.
_SESSION = aioboto3.Session(
    aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
)


def s3_session() -> aioboto3.Session:
    return _SESSION


@asynccontextmanager
async def fresh_bucket(endpoint_url: str) -> AsyncIterator[S3Endpoint]:
    """A new bucket; emptied and removed afterwards (moto keeps objects in memory)."""
    endpoint = S3Endpoint(
        bucket=f"test-{uuid.uuid4().hex[:12]}",
        endpoint_url=endpoint_url,
        region=REGION,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
    )
    async with s3_session().client("s3", endpoint_url=endpoint_url) as s3:
        await s3.create_bucket(Bucket=endpoint.bucket)
        try:
            yield endpoint
        finally:
            await _remove_bucket(s3, endpoint.bucket)


async def _remove_bucket(s3: Any, bucket: str) -> None:
    uploads = await s3.list_multipart_uploads(Bucket=bucket)
    for upload in uploads.get("Uploads", []):
        await s3.abort_multipart_upload(
            Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
        )
    listed = await s3.list_objects_v2(Bucket=bucket)
    for item in listed.get("Contents", []):
        await s3.delete_object(Bucket=bucket, Key=item["Key"])
    await s3.delete_bucket(Bucket=bucket)


async def pending_uploads(endpoint: S3Endpoint) -> list[str]:
    """Keys of the bucket's unfinished multipart uploads, straight from S3."""
    async with s3_session().client("s3", endpoint_url=endpoint.endpoint_url) as s3:
        listed = await s3.list_multipart_uploads(Bucket=endpoint.bucket)
    return [upload["Key"] for upload in listed.get("Uploads", [])]


@asynccontextmanager
async def s3_storage_in_fresh_bucket(endpoint_url: str, tmp_path: Path) -> AsyncIterator[S3Storage]:
    async with fresh_bucket(endpoint_url) as endpoint:
        # The smallest part S3 allows, so that the tests' streams span many parts.
        storage = S3Storage(
            endpoint,
            part_size=MIN_PART_SIZE,
            scratch_dir=tmp_path / "scratch",
            session=s3_session(),
        )
        async with storage:
            yield storage


@pytest.fixture(params=["local", "s3"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "storage")
        return
    endpoint_url = request.getfixturevalue("s3_endpoint_url")  # started for S3 runs only
    async with s3_storage_in_fresh_bucket(endpoint_url, tmp_path) as s3_storage:
        yield s3_storage


@pytest.fixture
async def s3_storage(s3_endpoint_url: str, tmp_path: Path) -> AsyncIterator[S3Storage]:
    async with s3_storage_in_fresh_bucket(s3_endpoint_url, tmp_path) as storage:
        yield storage


@pytest.fixture
async def member(client: httpx.AsyncClient) -> tuple[str, str]:
    """A signed-in user (access token) and the global id of the band they made."""
    token, _ = await register(client, "uploader")
    created = await gql(
        client, 'mutation { createBand(input: {name: "Fuzz"}) { id } }', token=token
    )
    return token, created.ok()["createBand"]["id"]
