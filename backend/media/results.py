"""Writing what the media steps found onto the version, its analysis and its track."""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.database import utcnow
from backend.library.models import Track, TrackVersion
from backend.media import assets
from backend.media.analysis import AnalysisResult, Waveform
from backend.media.models import Analysis, Rendition
from backend.media.probe import ProbeResult, ProbeTags
from backend.media.storage import Storage, StoredObject


def apply_probe(version: TrackVersion, found: ProbeResult, *, cover_asset_id: int | None) -> None:
    """The probe's findings on the version; a date the path gave is kept over a tag's."""
    version.format = found.format
    version.codec = found.codec
    version.duration_ms = found.duration_ms
    version.sample_rate = found.sample_rate
    version.channels = found.channels
    version.bitrate = found.bitrate
    version.embedded_tags = tags_as_json(found.tags) or None
    version.cover_asset_id = cover_asset_id
    if version.recorded_at is None and found.tags.recorded is not None:
        version.recorded_at = _as_utc_datetime(found.tags.recorded)


def tags_as_json(tags: ProbeTags) -> dict[str, str]:
    values = {"title": tags.title, "artist": tags.artist, "album": tags.album}
    if tags.recorded is not None:
        values["recorded"] = tags.recorded.isoformat()
    return {name: value for name, value in values.items() if value}


def probe_summary(found: ProbeResult) -> str:
    seconds = found.duration_ms / 1000
    return (
        f"{found.format}/{found.codec}, {seconds:.1f} s, {found.sample_rate} Hz, "
        f"{found.channels} channel{'s' if found.channels != 1 else ''}."
    )


def _as_utc_datetime(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


async def store_waveforms(storage: Storage, waveforms: tuple[Waveform, ...]) -> list[StoredObject]:
    """Each zoom level as an audiowaveform JSON file in storage (content-addressed),
    written through a scratch file: 3 hours at the finest level is ~16 MB of JSON."""
    stored = []
    with tempfile.TemporaryDirectory(prefix="waveform-") as scratch:
        for waveform in waveforms:
            path = Path(scratch) / waveform.file_name
            with path.open("w", encoding="ascii") as out:
                waveform.write_json(out)
            stored.append(await storage.put_file(path, content_type="application/json"))
    return stored


async def save_analysis(
    *,
    db_session: AsyncSession,
    version: TrackVersion,
    result: AnalysisResult,
    waveform_files: list[StoredObject],
) -> Analysis:
    """The version's analysis (replaced when analysed again) and the track's bpm and key
    from it, unless a person set them or an earlier analysis did."""
    levels: list[dict[str, Any]] = []
    for waveform, stored in zip(result.waveforms, waveform_files, strict=True):
        asset = await assets.record(db_session=db_session, stored=stored, mime="application/json")
        levels.append(
            {
                "samples_per_pixel": waveform.samples_per_pixel,
                "length": waveform.length,
                "key": stored.key,
                "asset_id": asset.id,
            }
        )
    values: dict[str, Any] = {
        "bpm": result.bpm,
        "bpm_confidence": result.bpm_confidence,
        "key": result.key,
        "scale": result.scale,
        "key_strength": result.key_strength,
        "loudness_lufs": result.loudness_lufs,
        "loudness_range_lu": result.loudness_range_lu,
        "true_peak_dbtp": result.true_peak_dbtp,
        "waveform_meta": {
            "sample_rate": result.waveforms[0].sample_rate if result.waveforms else 0,
            "channels": 1,
            "bits": 8,
            "levels": levels,
        },
        "waveform_asset_id": levels[0]["asset_id"] if levels else None,
        "analyzed_at": utcnow(),
    }
    # The caller holds the version's lock (pipeline.lock_version): nobody else writes its
    # analysis or renditions meanwhile, so read, then insert or update, is safe.
    analysis = await db_session.scalar(select(Analysis).where(Analysis.version_id == version.id))
    if analysis is None:
        analysis = Analysis(version_id=version.id)
        db_session.add(analysis)
    for name, value in values.items():
        setattr(analysis, name, value)
    if version.duration_ms is None:
        version.duration_ms = result.duration_ms
    track = await db_session.get(Track, version.track_id)
    if track is not None:
        _fill_track(track, result)
    return analysis


def _fill_track(track: Track, result: AnalysisResult) -> None:
    if track.bpm is None and not track.bpm_set_by_person and result.bpm is not None:
        track.bpm = round(result.bpm, 1)
    if track.key is None and not track.key_set_by_person and result.key and result.scale:
        track.key = f"{result.key} {result.scale}"


async def save_rendition(
    *, db_session: AsyncSession, version_id: int, format: str, storage_key: str
) -> None:
    """The version's rendition in this format, replaced when transcoded again (hold
    pipeline.lock_version)."""
    existing = await db_session.scalar(
        select(Rendition).where(Rendition.version_id == version_id, Rendition.format == format)
    )
    if existing is None:
        db_session.add(Rendition(version_id=version_id, format=format, storage_key=storage_key))
        return
    existing.storage_key = storage_key
    existing.created_at = utcnow()
