"""The reader for a source's kind: a local folder or a WebDAV share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from backend.core.crypto import UndecryptableSecret
from backend.core.settings import Settings
from backend.library import sources
from backend.library.models import Source, SourceKind
from backend.library.scanner.found import SourceReader, SourceUnreachable
from backend.library.scanner.local import LocalReader
from backend.library.scanner.remote import WebDavReader


@asynccontextmanager
async def open_reader(source: Source, settings: Settings) -> AsyncIterator[SourceReader]:
    if source.kind == SourceKind.LOCAL_FOLDER:
        yield LocalReader(Path(source.root))
        return
    try:
        client = sources.webdav_client(source, settings=settings)
    except UndecryptableSecret as error:
        raise SourceUnreachable(
            "The share's password cannot be decrypted (was BACKLINE_SOURCE_KEY changed?); "
            "set it again on the source."
        ) from error
    async with client:
        yield WebDavReader(client)
