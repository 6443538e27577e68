"""Trusted documents: the operations our own clients send, from a manifest built with
them (GraphQL Code Generator's client preset writes ``persisted-documents.json``: an
object of sha256 hex -> document text). Loaded once, at start-up; a manifest that is not
what it claims to be refuses the start rather than serving a different allow-list."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from backend.core.settings import Settings
from backend.graphql.persisted.ids import PREFIX, is_sha256_hex, sha256_hex

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_MANIFEST = PROJECT_ROOT / "frontend-contract" / "persisted-documents.json"


class TrustedDocumentsInvalid(RuntimeError):
    """The configured manifest is missing or does not hold what it says."""


class TrustedDocuments:
    """sha256 hex -> document text; empty when there is no manifest."""

    def __init__(self, documents: Mapping[str, str] | None = None, *, source: str = "") -> None:
        self._documents = dict(documents or {})
        self.source = source

    def __len__(self) -> int:
        return len(self._documents)

    def get(self, sha256: str) -> str | None:
        return self._documents.get(sha256)

    def __contains__(self, sha256: object) -> bool:
        return sha256 in self._documents


def load_trusted_documents(settings: Settings) -> TrustedDocuments:
    """The manifest of ``BACKLINE_TRUSTED_DOCUMENTS``, else the project's default one if it
    exists (a missing default means no trusted documents)."""
    if settings.trusted_documents:
        path = Path(settings.trusted_documents)
        if not path.is_file():
            raise TrustedDocumentsInvalid(
                f"BACKLINE_TRUSTED_DOCUMENTS names {path}, which is not a file. Point it at "
                "the persisted-documents.json the client build wrote, or unset it."
            )
    elif DEFAULT_MANIFEST.is_file():
        path = DEFAULT_MANIFEST
    else:
        return TrustedDocuments()
    return TrustedDocuments(read_manifest(path), source=str(path))


def read_manifest(path: Path) -> dict[str, str]:
    """Every entry checked: its key must be the sha256 of its document's exact text."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TrustedDocumentsInvalid(f"{path}: cannot read the manifest ({error}).") from error
    if not isinstance(raw, dict):
        raise TrustedDocumentsInvalid(
            f"{path}: a trusted documents manifest is a JSON object of sha256 hex -> document text."
        )
    documents: dict[str, str] = {}
    for key, document in raw.items():
        sha256 = key.removeprefix(PREFIX)  # some tools write the documentId form
        if not is_sha256_hex(sha256) or not isinstance(document, str):
            raise TrustedDocumentsInvalid(
                f"{path}: entry {key!r} is not a sha256 hex key with a document text; is "
                "the client build's hashAlgorithm set to sha256?"
            )
        actual = sha256_hex(document)
        if actual != sha256:
            raise TrustedDocumentsInvalid(
                f"{path}: the document under {key} hashes to {actual}; the manifest was "
                "edited by hand or built from other sources. Rebuild it with the client."
            )
        documents[sha256] = document
    return documents
