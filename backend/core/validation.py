"""Input checks shared by services; each failure names the field it is about."""

from __future__ import annotations

import re
import unicodedata

from backend.core.errors import BadUserInput

# No spaces and no control characters (PostgreSQL cannot even store NUL).
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+")
_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,58}[a-z0-9])?")


def text(value: str, *, field: str, max_length: int, required: bool = True) -> str:
    """Trimmed, control-character-free text within a length limit."""
    cleaned = "".join(ch for ch in value if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    cleaned = cleaned.strip()
    if required and not cleaned:
        raise BadUserInput(f"{field} must not be empty.", field=field)
    if len(cleaned) > max_length:
        raise BadUserInput(
            f"{field} is too long ({len(cleaned)} characters, at most {max_length}).",
            field=field,
        )
    return cleaned


def optional_text(value: str | None, *, field: str, max_length: int) -> str | None:
    if value is None:
        return None
    return text(value, field=field, max_length=max_length, required=False) or None


def is_email(value: str) -> bool:
    """Whether ``value``, as given, is an email address; lookups use it to skip the
    database for what no account can have."""
    return len(value) <= 320 and _EMAIL.fullmatch(value) is not None


def email(value: str, *, field: str = "email") -> str:
    cleaned = value.strip().lower()
    if not is_email(cleaned):
        raise BadUserInput("That is not an email address.", field=field)
    return cleaned


def is_slug(value: str) -> bool:
    """Whether ``value``, as given, is a slug (see ``slug``)."""
    return _SLUG.fullmatch(value) is not None


def slug(value: str, *, field: str = "slug") -> str:
    cleaned = value.strip().lower()
    if not is_slug(cleaned):
        raise BadUserInput(
            "A slug is 1 to 60 lower-case letters, digits and dashes, "
            "starting and ending with a letter or digit.",
            field=field,
        )
    return cleaned


# Letters NFKD does not decompose into ASCII, spelled as people would type them.
_TRANSLITERATIONS = str.maketrans(
    {
        "œ": "oe",
        "Œ": "Oe",
        "æ": "ae",
        "Æ": "Ae",
        "ß": "ss",
        "ø": "o",
        "Ø": "O",
        "đ": "d",
        "ł": "l",
        "Ł": "L",
    }
)


def slugify(name: str) -> str:
    spelled = name.translate(_TRANSLITERATIONS)
    ascii_name = unicodedata.normalize("NFKD", spelled).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:60].strip("-")


def non_negative(value: int | None, *, field: str) -> int | None:
    if value is not None and value < 0:
        raise BadUserInput(f"{field} must not be negative.", field=field)
    return value
