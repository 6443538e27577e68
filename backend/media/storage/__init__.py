"""Where uploads and derived files live: a folder on local disk (the embedded default) or
an S3 bucket (MinIO in docker-compose, or any S3 endpoint), behind one interface."""

from __future__ import annotations

from backend.core.settings import Settings
from backend.media.storage.base import MultipartUpload, Storage, StoredObject, UploadedPart
from backend.media.storage.errors import (
    InvalidKey,
    NotSupported,
    RangeNotSatisfiable,
    StorageUnavailable,
    TooLarge,
)
from backend.media.storage.keys import content_key, rendition_prefix
from backend.media.storage.local import LocalStorage

__all__ = [
    "InvalidKey",
    "LocalStorage",
    "MultipartUpload",
    "NotSupported",
    "RangeNotSatisfiable",
    "Storage",
    "StorageUnavailable",
    "StoredObject",
    "TooLarge",
    "UploadedPart",
    "content_key",
    "create_storage",
    "rendition_prefix",
]


def create_storage(settings: Settings) -> Storage:
    """The storage the settings ask for; one per event loop (see ``base.py``)."""
    if settings.storage_backend == "local":
        return LocalStorage(settings.resolved_storage_dir)
    if not settings.s3_bucket:
        raise ValueError("Set BACKLINE_S3_BUCKET when BACKLINE_STORAGE_BACKEND is s3.")
    # Imported here: the embedded default never loads aioboto3.
    from backend.media.storage.s3 import S3Storage
    from backend.media.storage.s3_client import S3Endpoint

    endpoint = S3Endpoint(
        bucket=settings.s3_bucket,
        endpoint_url=settings.s3_endpoint_url or None,
        region=settings.s3_region,
        access_key=settings.s3_access_key or None,
        secret_key=settings.s3_secret_key or None,
    )
    return S3Storage(
        endpoint,
        public_endpoint_url=settings.s3_public_endpoint_url or None,
        scratch_dir=settings.data_dir / "tmp",
    )
