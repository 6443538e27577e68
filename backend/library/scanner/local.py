"""A folder on the server: walked with os.scandir (no file opened), new and changed files
read in a worker thread."""

from __future__ import annotations

import asyncio
import operator
import os
from collections.abc import Iterator
from pathlib import Path

from backend.library.scanner.found import FoundFile, SourceUnreachable, Walk, WalkError
from backend.library.scanner.inspect import Inspected, NotAudio, inspect_file


def walk(root: Path) -> Iterator[FoundFile | WalkError]:
    """Every visible file below root; an unreadable folder or file is reported and the
    walk goes on. Symlinks are not followed (they could lead outside the allowed roots).

    A folder's files come in name order, then its sub-folders', each in name order. The
    loop is lean on purpose (a re-scan is mostly this walk): a hidden folder is never
    entered, so only each entry's own name is checked, and names are checked for broken
    encoding only when they are not plain ASCII."""
    top = os.fspath(root)
    stack = [""]
    while stack:
        relative_dir = stack.pop()
        prefix = relative_dir + "/" if relative_dir else ""
        try:
            with os.scandir(os.path.join(top, relative_dir) if relative_dir else top) as it:
                entries = list(it)
        except OSError as error:
            yield WalkError(relative_dir or ".", _reason(error))
            continue
        entries.sort(key=_name)
        subdirs = []
        for entry in entries:
            name = entry.name
            if name[0] == ".":  # hidden ('.DS_Store', '._take1.wav', '.git')
                continue
            if not name.isascii() and _decoded(name) is None:
                yield WalkError(
                    f"{relative_dir}/{name!r}".lstrip("/"),
                    "The name is not valid text (broken encoding).",
                )
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(prefix + name)
                elif entry.is_file(follow_symlinks=False):
                    stat = entry.stat(follow_symlinks=False)
                    size = stat.st_size
                    yield FoundFile(
                        prefix + name, size, f"{size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}"
                    )
            except OSError as error:  # vanished or unreadable between listing and stat
                yield WalkError(prefix + name, _reason(error))
        stack.extend(reversed(subdirs))


_name = operator.attrgetter("name")


def _decoded(name: str) -> str | None:
    # Undecodable bytes arrive as lone surrogates; such a name cannot be stored or shown.
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return name


def _reason(error: OSError) -> str:
    if isinstance(error, PermissionError):
        return "Permission denied."
    if isinstance(error, FileNotFoundError):
        return "It disappeared during the scan."
    return error.strerror or str(error)


class LocalReader:
    def __init__(self, root: Path) -> None:
        self.root = root

    async def walk(self, known_folders: dict[str, str]) -> Walk:
        if not await asyncio.to_thread(self.root.is_dir):
            raise SourceUnreachable(f"The folder {self.root} is not there (any more).")
        return await asyncio.to_thread(self._walk)

    def _walk(self) -> Walk:
        result = Walk()
        files, errors = result.files.append, result.errors.append
        for item in walk(self.root):
            if type(item) is FoundFile:
                files(item)
            else:
                errors(item)
        return result

    async def inspect(self, files: list[FoundFile]) -> list[Inspected | Exception]:
        return await asyncio.to_thread(self._inspect, files)

    def _inspect(self, files: list[FoundFile]) -> list[Inspected | Exception]:
        results: list[Inspected | Exception] = []
        for file in files:
            try:
                results.append(inspect_file(self.root, file.path))
            except (NotAudio, OSError) as error:
                results.append(error)
        return results
