"""Asset rows: one per distinct stored bytes (sha256), whoever stored them first."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.database import insert_ignore, utcnow
from backend.media.models import Asset
from backend.media.storage import StoredObject


async def record(*, db_session: AsyncSession, stored: StoredObject, mime: str) -> Asset:
    """The asset row of stored bytes, made if needed (two writers at once make one)."""
    await insert_ignore(
        db_session,
        Asset,
        {
            "sha256": stored.sha256,
            "size_bytes": stored.size,
            "mime": mime,
            "storage_key": stored.key,
            "created_at": utcnow(),
        },
        ["sha256"],
    )
    asset = await db_session.scalar(select(Asset).where(Asset.sha256 == stored.sha256))
    assert asset is not None
    return asset
