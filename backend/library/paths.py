"""Where a recording sits in a rehearsal folder tree says which session and track it is.

``bands/fuzz/231015/groove/take2.wav`` is take "take2" of the track "groove", recorded in
the session of 15 October 2023 (ARCHITECTURE.md, "Path rules"). Pure functions, no I/O:
paths are POSIX-style and relative to a source's root; the scanner decides what to walk.

Edge cases, decided once here:

- Only '/' separates segments. A backslash is an ordinary character of a name (a WebDAV
  or Linux file may be called ``a\\b.wav``); empty and '.' segments are ignored.
- Names are NFC-normalised first, so a folder written by macOS (NFD) and the same folder
  typed on Linux give one track title.
- A date segment must be the whole folder name: ``231015`` is a session, ``231015 gig``
  is not (it names a track like any other folder).
- Titles and labels are at most ``MAX_TITLE_LENGTH`` characters (the database columns'
  size); a name that is empty or blank once made readable becomes ``UNTITLED``.
- Hidden files and folders are not recordings: callers skip paths for which
  ``is_hidden`` is true; ``place_recording`` itself does not judge.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from backend.library.titles import title_from_name

MAX_TITLE_LENGTH = 200
UNTITLED = "untitled"

# Whole-segment forms only; ASCII digits only ('\d' would accept other scripts' digits).
_DATE_FORMS = (
    re.compile(r"(?P<y>[0-9]{2})(?P<m>[0-9]{2})(?P<d>[0-9]{2})"),  # YYMMDD, always 20YY
    re.compile(r"(?P<y>[0-9]{4})(?P<m>[0-9]{2})(?P<d>[0-9]{2})"),  # YYYYMMDD
    re.compile(r"(?P<y>[0-9]{4})-(?P<m>[0-9]{2})-(?P<d>[0-9]{2})"),  # YYYY-MM-DD
)
# A four-digit year outside this range is a number, not a rehearsal ('10101010').
_YEARS = range(1900, 2100)


@dataclass(frozen=True, slots=True)
class RecordingPlace:
    session_date: date | None  # the nearest date folder above the file, if any
    track_title: str  # readable title of the track the file is a take of
    label: str  # readable label of the take: the file's stem


def parse_session_date(segment: str) -> date | None:
    """The date a folder name stands for: 'YYMMDD' (year 20YY), 'YYYYMMDD', 'YYYY-MM-DD'.

    Anything else is None, including strings of the right shape that are no calendar
    date ('20231399', '231332', '2023-02-30', '000000') and four-digit years before 1900
    or after 2099.
    """
    for form in _DATE_FORMS:
        match = form.fullmatch(segment)
        if match is None:
            continue
        year = int(match["y"]) + (2000 if len(match["y"]) == 2 else 0)
        if year not in _YEARS:
            return None
        try:
            return date(year, int(match["m"]), int(match["d"]))
        except ValueError:  # month 13, 30 February, day 00, ...
            return None
    return None


def place_recording(relative_path: str) -> RecordingPlace:
    """Session, track and label of the file at ``relative_path``.

    - The session is the date folder closest to the file; the file's own name never
      dates it (``231015.wav`` at the root has no session).
    - A file whose parent folder is not a date is a take of the track named after that
      parent, at any depth: ``231015/groove/take2.wav`` and
      ``231015/set1/groove/take2.wav`` are takes of "groove"; ``groove/take1.wav``
      (no date anywhere) too.
    - A loose file, directly in a date folder or at the root, is a track of its own
      named after its stem: ``231022/new_song.m4a`` is track "new song", label
      "new song". Folders above the date folder (``bands/fuzz/231015/x.wav``) never
      name the track.
    - A parent folder whose name is blank once made readable does not name the track.

    Raises ValueError for a path that names no file ('', '/', 'folder/').
    """
    path = unicodedata.normalize("NFC", relative_path)
    folder, _, filename = path.rpartition("/")
    if filename in ("", "."):  # 'folder/', '', 'a/.': the long way, which says why
        return _place_slowly(relative_path, path)
    # What the folders say is worked out once per folder: a scan asks for every file.
    session_date, folder_title = _folder_place(folder)
    label = _readable(_stem(filename)) or UNTITLED
    return RecordingPlace(session_date, folder_title or label, label)


@lru_cache(maxsize=4096)
def _folder_place(folder: str) -> tuple[date | None, str]:
    """The session date and the track title ('' for none) the folders of a path give."""
    folders = [segment for segment in folder.split("/") if segment not in ("", ".")]
    session_date = None
    for name in reversed(folders):
        session_date = parse_session_date(name)
        if session_date is not None:
            break
    track_title = ""
    if folders and parse_session_date(folders[-1]) is None:
        track_title = _readable(folders[-1])
    return session_date, track_title


def _place_slowly(relative_path: str, path: str) -> RecordingPlace:
    segments = [segment for segment in path.split("/") if segment not in ("", ".")]
    if not segments or path.endswith("/"):
        raise ValueError(f"not a file path: {relative_path!r}")
    *folders, filename = segments
    session_date, track_title = _folder_place("/".join(folders))
    label = _readable(_stem(filename)) or UNTITLED
    return RecordingPlace(session_date, track_title or label, label)


def is_hidden(relative_path: str) -> bool:
    """True when the file or any folder on its path starts with '.': '.git/x.wav',
    'a/.DS_Store', '._take1.wav' (macOS resource forks), '../x.wav' (outside the root)."""
    return any(segment.startswith(".") for segment in relative_path.split("/") if segment != ".")


def _stem(filename: str) -> str:
    """The name without its last extension: 'take.2.wav' -> 'take.2'; a name without
    a dot, or only a leading one, is its own stem."""
    head, dot, _ = filename.rpartition(".")
    return head if dot and head else filename


@lru_cache(maxsize=8192)  # labels repeat ('take1', 'jam 03'): a scan asks for each file
def _readable(name: str) -> str:
    """'new_song' -> 'new song', capped; '' for a name of only blanks and underscores
    (which title_from_name would hand back unchanged)."""
    if not name.replace("_", " ").strip():
        return ""
    return title_from_name(name).strip()[:MAX_TITLE_LENGTH].rstrip()
