"""What a walk of a source finds, whichever kind of source it is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from backend.library.scanner.inspect import Inspected


class FoundFile(NamedTuple):
    """A file a walk found (a tuple: a walk makes tens of thousands of them)."""

    path: str  # relative to the source root, '/'-separated
    size: int
    # What tells a changed file from an unchanged one: size + mtime_ns + ctime_ns for a
    # local file (a copy keeps its mtime, not its ctime), the etag on WebDAV.
    marker: str


@dataclass(frozen=True)
class WalkError:
    path: str
    message: str


@dataclass
class Walk:
    files: list[FoundFile] = field(default_factory=list)
    errors: list[WalkError] = field(default_factory=list)
    # Folders whose change marker is what it was at the last scan, so they were not
    # listed: the files indexed below them are as they were.
    unchanged_folders: set[str] = field(default_factory=set)
    # Every folder's change marker seen now ('' is the root); empty for local folders.
    folder_markers: dict[str, str] = field(default_factory=dict)


class SourceUnreachable(Exception):
    """The whole source cannot be read now (share down, password wrong, folder gone);
    the message is for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SourceReader(Protocol):
    async def walk(self, known_folders: dict[str, str]) -> Walk:
        """Every visible file; ``known_folders`` are the folder markers of the last scan."""
        ...

    async def inspect(self, files: list[FoundFile]) -> list[Inspected | Exception]:
        """For each file: what is inside, NotAudio, or an OSError saying why it could not
        be read. Raises SourceUnreachable when the source itself went away."""
        ...


def below_any(path: str, folders: set[str]) -> bool:
    """Whether path lies inside one of the folders ('' and '.' are the root)."""
    if not folders:
        return False
    if "" in folders or "." in folders:
        return True
    head = path
    while "/" in head:
        head = head.rpartition("/")[0]
        if head in folders:
            return True
    return False
