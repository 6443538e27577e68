"""The aioboto3 side of the S3 backend: one client per storage (and event loop), opened on
first use, and S3's errors turned into Backline's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import aioboto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    HTTPClientError,
    NoCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from backend.core.errors import BadUserInput, NotFound
from backend.media.storage.errors import StorageUnavailable

_MISSING = {"404", "NoSuchKey", "NotFound"}
_REFUSED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}
_BAD_PARTS = {"InvalidPart", "InvalidPartOrder", "EntityTooSmall", "MalformedXML"}


@dataclass(frozen=True, slots=True)
class S3Endpoint:
    bucket: str
    endpoint_url: str | None = None  # None: AWS
    region: str = "us-east-1"
    access_key: str | None = None  # None: boto's own lookup (env, profile, instance role)
    secret_key: str | None = None
    max_attempts: int = 3  # per request, with backoff (botocore's "standard" retries)

    def config(self) -> Config:
        return Config(
            signature_version="s3v4",
            # MinIO and most S3-compatibles want /bucket/key; AWS picks for itself.
            s3={"addressing_style": "path" if self.endpoint_url else "auto"},
            # Newer botocore adds CRC checksums to every upload by default, which several
            # S3-compatible servers reject, and which presigned part URLs would then need.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"mode": "standard", "max_attempts": self.max_attempts},
        )


class S3Client:
    """Opens the aioboto3 client lazily; it belongs to the event loop that opened it.
    A session may be shared (it caches the parsed S3 API model, ~10 MiB)."""

    def __init__(self, endpoint: S3Endpoint, *, session: aioboto3.Session | None = None) -> None:
        self.endpoint = endpoint
        self._session = session or aioboto3.Session()
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    stack = AsyncExitStack()
                    client = self._session.client(
                        "s3",
                        endpoint_url=self.endpoint.endpoint_url,
                        region_name=self.endpoint.region,
                        aws_access_key_id=self.endpoint.access_key,
                        aws_secret_access_key=self.endpoint.secret_key,
                        config=self.endpoint.config(),
                    )
                    self._client = await stack.enter_async_context(client)
                    self._stack, self._loop = stack, loop
        if self._loop is not loop:
            raise RuntimeError("An S3 storage is used on one event loop only; make one per loop.")
        return self._client

    async def aclose(self) -> None:
        stack, self._stack, self._client, self._loop = self._stack, None, None, None
        if stack is not None:
            await stack.aclose()


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@contextmanager
def translated(bucket: str, *, missing: str = "stored file") -> Iterator[None]:
    """S3 and connection errors as Backline errors: a missing key is ``NotFound``, an
    unreachable or refusing endpoint ``StorageUnavailable``."""
    try:
        yield
    except ClientError as error:
        code = error_code(error)
        if code in _MISSING:
            raise NotFound(missing) from error
        if code == "NoSuchUpload":
            raise NotFound("upload") from error
        if code == "NoSuchBucket":
            raise StorageUnavailable(f"The storage bucket {bucket!r} does not exist.") from error
        if code in _REFUSED:
            raise StorageUnavailable(
                "The storage refused Backline's credentials (BACKLINE_S3_ACCESS_KEY)."
            ) from error
        if code in _BAD_PARTS:
            raise BadUserInput(
                "The upload's parts do not fit together: every part but the last needs "
                "at least 5 MiB, in order, as uploaded.",
                field="parts",
            ) from error
        raise
    except (BotoConnectionError, HTTPClientError, NoCredentialsError) as error:
        raise StorageUnavailable(f"The storage cannot be reached ({error}).") from error
