"""Would a scan find anything to do? A walk and a diff, no file opened, nothing written:
how a watched WebDAV share is polled without a job every 30 seconds."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.core.settings import Settings
from backend.library.models import Source, VersionStatus
from backend.library.scanner.found import below_any
from backend.library.scanner.inspect import worth_opening
from backend.library.scanner.readers import open_reader
from backend.library.scanner.scan import load_folder_markers, load_index

MISSING = VersionStatus.MISSING.value


async def pending_changes(
    *, session_factory: async_sessionmaker[AsyncSession], settings: Settings, source: Source
) -> set[tuple[str, str]]:
    """(path, what) for each file that is new, changed, back or gone; empty when a scan
    would do nothing. Raises SourceUnreachable."""
    known_folders = await load_folder_markers(session_factory, source.id)
    async with open_reader(source, settings) as reader:
        walk = await reader.walk(known_folders)
    index = await load_index(session_factory, source.id)
    changes: set[tuple[str, str]] = set()
    seen = set()
    for file in walk.files:
        seen.add(file.path)
        known = index.get(file.path)
        if known is None:
            if worth_opening(file.path):
                changes.add((file.path, file.marker))
        elif known[1] != file.marker or known[2] == MISSING:
            changes.add((file.path, file.marker))
    skipped = walk.unchanged_folders | {error.path for error in walk.errors}
    changes.update(
        (path, "gone")
        for path, known in index.items()
        if path not in seen and known[2] != MISSING and not below_any(path, skipped)
    )
    return changes
