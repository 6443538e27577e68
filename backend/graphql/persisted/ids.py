"""Document ids: the sha256 of a document's exact text, as lower-case hex (64 digits).
Apollo's automatic persisted queries send it bare (``sha256Hash``); GraphQL-over-HTTP's
persisted documents prefix it (``documentId: "sha256:<hex>"``)."""

from __future__ import annotations

import hashlib
import re

HEX64 = re.compile(r"[0-9a-f]{64}")
PREFIX = "sha256:"


def sha256_hex(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def is_sha256_hex(value: object) -> bool:
    return isinstance(value, str) and HEX64.fullmatch(value) is not None
