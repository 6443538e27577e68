"""HTTP byte ranges (RFC 9110 §14): ``bytes=a-b``, ``bytes=a-`` and ``bytes=-n``.

A request for several ranges is answered with the whole object (200), which the RFC
allows (a server may ignore Range); players ask for one range at a time, and a
multipart/byteranges body would be a second response format for no client we serve.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# At most 19 digits: a byte offset fits in 63 bits, and Python refuses to parse
# very long digit strings anyway (int_max_str_digits).
_SPEC = re.compile(r"\s*([0-9]{0,19})\s*-\s*([0-9]{0,19})\s*")


class Unsatisfiable(Exception):
    """A Range header that is malformed or names no byte of the object (HTTP 416)."""


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # inclusive, as in HTTP and ``Storage.open_range``

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range ``header`` asks for in an object of ``size`` bytes, clipped to it;
    ``None`` for the whole object (no header, or several ranges)."""
    if header is None:
        return None
    unit, equals, specs = header.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        raise Unsatisfiable(header)
    parts = specs.split(",")
    ranges = [_parse_one(part, size) for part in parts]
    if len(ranges) > 1:
        return None
    return ranges[0]


def _parse_one(spec: str, size: int) -> ByteRange:
    match = _SPEC.fullmatch(spec)
    if match is None:
        raise Unsatisfiable(spec)
    first, last = match.groups()
    if not first:
        # A suffix: the last n bytes (all of them when n is larger than the object).
        if not last or int(last) == 0 or size == 0:
            raise Unsatisfiable(spec)
        return ByteRange(max(0, size - int(last)), size - 1)
    start = int(first)
    if last and int(last) < start:
        raise Unsatisfiable(spec)
    if start >= size:
        raise Unsatisfiable(spec)
    end = size - 1 if not last else min(int(last), size - 1)
    return ByteRange(start, end)
