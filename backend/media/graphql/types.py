"""GraphQL types of media: a take's waveform, its signed stream links, its tags."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy import Select, select
from strawberry.dataloader import DataLoader

from backend.core.errors import BadUserInput
from backend.graphql.context import Context, Info
from backend.graphql.dataloaders import groups_by_key, rows_by_key
from backend.library.graphql import loaders
from backend.library.models import TrackVersion, VersionStatus
from backend.media import originals_http
from backend.media.models import Asset, Rendition
from backend.media.signing import MediaSigner, stream_expiry
from backend.media.storage import Storage

UPLOAD_CHUNK = 1 << 20
# Without samplesPerPixel, the finest level that draws a whole take in this many pixels
# (a song at 1024 samples a pixel; a 3-hour rehearsal at the coarsest).
DEFAULT_MAX_PIXELS = 20_000


def storage_of(ctx: Context) -> Storage:
    if ctx.storage is None:
        raise RuntimeError("This context was made without storage (see backend/app.py).")
    return ctx.storage


def _renditions_by_version(ctx: Context) -> DataLoader[int, list[Rendition]]:
    def statement(keys: Sequence[int]) -> Select[Any]:
        return select(Rendition).where(Rendition.version_id.in_(keys))

    return ctx.loaders.get(
        "renditions_by_version",
        lambda: groups_by_key(ctx.db, statement, lambda row: row.version_id),
    )


def _asset(ctx: Context) -> DataLoader[int, Asset | None]:
    return ctx.loaders.get("asset", lambda: rows_by_key(ctx.db, Asset))


@strawberry.type(description="Peaks in the audiowaveform JSON format, version 2.")
class Waveform:
    sample_rate: int
    samples_per_pixel: int
    bits: int
    channels: int
    length: int
    url: str = strawberry.field(description="The same document as a JSON file (signed link).")
    zoom_levels: list[int] = strawberry.field(description="Every samplesPerPixel there is.")
    storage_key: strawberry.Private[str]

    @strawberry.field(description="(min, max) pairs, one per pixel, 8-bit.")
    async def data(self, info: Info) -> list[int]:
        document = json.loads(await storage_of(info.context).read_bytes(self.storage_key))
        return document["data"]


@strawberry.type(description="What the file's own tags say.")
class EmbeddedTags:
    title: str | None
    artist: str | None
    album: str | None
    recorded: str | None = strawberry.field(description="As the tag gives it (ISO 8601).")


def embedded_tags(version: TrackVersion) -> EmbeddedTags | None:
    tags = version.embedded_tags
    if not tags:
        return None
    return EmbeddedTags(
        title=tags.get("title"),
        artist=tags.get("artist"),
        album=tags.get("album"),
        recorded=tags.get("recorded"),
    )


@strawberry.type(description="Signed links that play without extra headers, until expiresAt.")
class Streams:
    original: str
    mp3: str | None
    hls: str | None
    hls_normalized: str | None = strawberry.field(
        description="HLS at a common loudness (when the server makes it)."
    )
    cover: str | None = strawberry.field(description="The cover art the file carries.")
    expires_at: datetime


async def waveform_of(
    info: Info, version: TrackVersion, samples_per_pixel: int | None
) -> Waveform | None:
    analysis = await loaders.analysis_by_version(info.context).load(version.id)
    meta = analysis.waveform_meta if analysis else None
    if not meta or not meta.get("levels"):
        return None
    levels = meta["levels"]
    if samples_per_pixel is None:
        fitting = [level for level in levels if level["length"] <= DEFAULT_MAX_PIXELS]
        level = fitting[0] if fitting else levels[-1]
    else:
        matching = [level for level in levels if level["samples_per_pixel"] == samples_per_pixel]
        if not matching:
            choices = ", ".join(str(level["samples_per_pixel"]) for level in levels)
            raise BadUserInput(
                f"No waveform at {samples_per_pixel} samples per pixel; there are {choices}.",
                field="samplesPerPixel",
            )
        level = matching[0]
    signer = MediaSigner.from_settings(info.context.settings)
    return Waveform(
        sample_rate=meta["sample_rate"],
        samples_per_pixel=level["samples_per_pixel"],
        bits=meta.get("bits", 8),
        channels=meta.get("channels", 1),
        length=level["length"],
        url=signer.sign_url(
            key=level["key"],
            expires_at=stream_expiry(info.context.settings),
            content_type="application/json",
            base_url=info.context.media_base_url,
        ),
        zoom_levels=[item["samples_per_pixel"] for item in levels],
        storage_key=level["key"],
    )


async def streams_of(info: Info, version: TrackVersion) -> Streams | None:
    """Links to what the take has; None when its file is gone (MISSING)."""
    ctx = info.context
    if version.status == VersionStatus.MISSING:
        return None
    loaded = await _renditions_by_version(ctx).load(version.id)
    renditions = {row.format: row.storage_key for row in loaded}
    original = await _asset(ctx).load(version.asset_id) if version.asset_id else None
    cover = await _asset(ctx).load(version.cover_asset_id) if version.cover_asset_id else None
    signer = MediaSigner.from_settings(ctx.settings)
    expires_at = stream_expiry(ctx.settings)
    base_url = ctx.media_base_url

    def link(key: str | None, **options: Any) -> str | None:
        if key is None:
            return None
        return signer.sign_url(key=key, expires_at=expires_at, base_url=base_url, **options)

    # An upload's original is in storage; a scanned file is served from its source.
    original_key = original.storage_key if original else originals_http.original_key(version.id)
    return Streams(
        original=link(
            original_key,
            content_type=original.mime if original else None,
            filename=version.original_filename,
        )
        or "",
        mp3=link(renditions.get("mp3")),
        hls=link(renditions.get("hls")),
        hls_normalized=link(renditions.get("hls_normalized")),
        cover=link(cover.storage_key, content_type=cover.mime) if cover else None,
        expires_at=expires_at,
    )
