"""Where a version's original bytes are, as a file on this machine that ffmpeg can read.

A take comes from one of three places: an upload (an asset in storage), a local folder
source (the file itself, read in place) or a WebDAV share (downloaded to a scratch file
for the length of the job, then removed)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from backend.core.crypto import UndecryptableSecret
from backend.core.errors import NotFound as StorageNotFound
from backend.core.settings import Settings
from backend.library import sources
from backend.library.models import Source, SourceKind, TrackVersion
from backend.library.webdav import WebDavError, WebDavUnavailable
from backend.media.models import Asset
from backend.media.storage import Storage


class OriginalUnavailable(Exception):
    """The original cannot be read now; ``retry`` says whether trying later may help
    (a share that is down) or not (the file is gone)."""

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retry = retry


@asynccontextmanager
async def original_file(
    *,
    version: TrackVersion,
    source: Source | None,
    asset: Asset | None,
    storage: Storage,
    settings: Settings,
) -> AsyncIterator[Path]:
    """A readable path holding the version's original, valid inside the ``async with``."""
    if asset is not None:
        try:
            async with storage.local_path(asset.storage_key) as path:
                yield path
        except StorageNotFound as error:
            raise OriginalUnavailable("The uploaded file is no longer in storage.") from error
        return
    if source is None or version.path is None:
        raise OriginalUnavailable("The take has no file: its source was removed.")
    if source.kind == SourceKind.LOCAL_FOLDER:
        path = local_file(Path(source.root), version.path)
        if path is None:
            raise OriginalUnavailable(f"The file is gone: {version.path}")
        yield path
        return
    async with _downloaded(source, version.path, settings) as path:
        yield path


def local_file(root: Path, relative: str) -> Path | None:
    """``root/relative`` if it is a file inside ``root`` once symlinks are resolved."""
    resolved_root = root.resolve()
    path = (resolved_root / relative).resolve()
    return path if path.is_relative_to(resolved_root) and path.is_file() else None


@asynccontextmanager
async def _downloaded(source: Source, relative: str, settings: Settings) -> AsyncIterator[Path]:
    try:
        client = sources.webdav_client(source, settings=settings)
    except UndecryptableSecret as error:
        raise OriginalUnavailable(
            "The share's password cannot be decrypted; set it again on the source."
        ) from error
    scratch = settings.data_dir / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    suffix = Path(relative).suffix[:16]
    handle, name = tempfile.mkstemp(prefix="original-", suffix=suffix, dir=scratch)
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            async with client, contextlib.aclosing(client.stream(relative)) as chunks:
                async for chunk in chunks:
                    out.write(chunk)
        yield path
    except WebDavUnavailable as error:
        raise OriginalUnavailable(f"The share is not reachable: {error}", retry=True) from error
    except WebDavError as error:
        raise OriginalUnavailable(f"The file cannot be read from the share: {error}") from error
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
