"""Track identity: which spellings of a title are the same song."""

from __future__ import annotations

import re
import unicodedata

_SEPARATORS = re.compile(r"[\s_.\-]+")


def normalize_title(title: str) -> str:
    """'New_Song', 'new song ' and 'NEW-SONG' are one track."""
    folded = unicodedata.normalize("NFKC", title).casefold()
    return _SEPARATORS.sub(" ", folded).strip()


def title_from_name(name: str) -> str:
    """A readable title from a folder name or file stem: 'new_song' -> 'new song'."""
    return re.sub(r"[\s_]+", " ", name).strip() or name
