"""A request's document: its ``query``, or the one its ``documentId`` (GraphQL over HTTP)
or ``extensions.persistedQuery`` (Apollo's automatic persisted queries) names, under the
persisted-only rule. Knows nothing of HTTP or websockets: both transports call it.

    documentId "sha256:<hex>"       trusted manifest, then the APQ store; else NOT_FOUND
    persistedQuery hash, no query   the same
    persistedQuery hash + query     sha256(query) must equal the hash (else HASH_MISMATCH);
                                    kept in the APQ store unless it is a trusted document
    query alone                     run as sent

Persisted-only (globally, or for the caller's API token): only trusted documents run; a
full query whose sha256 is in the manifest counts as one. An id nobody knows is still
NOT_FOUND (the client may be older than the manifest); a document that is known but not
trusted, or sent in full, is PERSISTED_QUERY_REQUIRED, and nothing is registered."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.core.errors import (
    PersistedQueryBadRequest,
    PersistedQueryHashMismatch,
    PersistedQueryNotFound,
    PersistedQueryRequired,
)
from backend.core.settings import Settings
from backend.graphql.persisted.ids import PREFIX, is_sha256_hex, sha256_hex
from backend.graphql.persisted.store import CachedStore, DatabaseStore, PersistedQueryStore
from backend.graphql.persisted.trusted import TrustedDocuments, load_trusted_documents

logger = logging.getLogger("backline.graphql.persisted")

APQ_VERSION = 1


@dataclass(frozen=True)
class Resolved:
    query: str | None  # None: the request has no document (the caller says so)


class PersistedQueries:
    def __init__(
        self,
        *,
        trusted: TrustedDocuments,
        store: PersistedQueryStore,
        persisted_only: bool = False,
        max_document_bytes: int = 100_000,
    ) -> None:
        self.trusted = trusted
        self.store = store
        self.persisted_only = persisted_only
        self.max_document_bytes = max_document_bytes

    async def resolve(
        self,
        *,
        query: object,
        extensions: Mapping[str, Any] | None,
        document_id: object = None,
        caller_persisted_only: Callable[[], bool] = lambda: False,
    ) -> Resolved:
        """The document to execute; a BacklineError (coded) when there is none to run.
        ``caller_persisted_only`` is asked only for a document that is not trusted."""
        apq_hash = _apq_hash(extensions)
        if document_id is not None:
            if query is not None or apq_hash is not None:
                raise PersistedQueryBadRequest(
                    "Send a documentId or a query (with or without a persistedQuery "
                    "extension), not both.",
                    reason="AMBIGUOUS_DOCUMENT",
                )
            return await self._by_id(_document_id_hash(document_id), caller_persisted_only)
        if apq_hash is not None and query is None:
            return await self._by_id(apq_hash, caller_persisted_only)
        if not isinstance(query, str):
            return Resolved(None)
        if apq_hash is None and not len(self.trusted) and not self.persisted_only:
            # Nothing to compare it with: skip hashing, unless this caller is restricted.
            if caller_persisted_only():
                raise self._required()
            return Resolved(query)
        actual = sha256_hex(query)
        if apq_hash is not None and apq_hash != actual:
            raise PersistedQueryHashMismatch(
                f"The query's sha256 is {actual}, not the persistedQuery.sha256Hash sent "
                f"({apq_hash}); hash the exact text sent as query (UTF-8).",
            )
        if actual in self.trusted:
            return Resolved(query)
        if self.persisted_only or caller_persisted_only():
            raise self._required()
        if apq_hash is not None:
            await self._register(actual, query)
        return Resolved(query)

    def is_trusted(self, document: str) -> bool:
        """Whether this exact text is a trusted document (for per-operation checks where a
        context flag cannot say it: a websocket's context serves many operations)."""
        return bool(len(self.trusted)) and sha256_hex(document) in self.trusted

    async def _by_id(self, sha256: str, caller_persisted_only: Callable[[], bool]) -> Resolved:
        document = self.trusted.get(sha256)
        if document is not None:
            return Resolved(document)
        document = await self.store.get(sha256)
        if document is None:
            raise PersistedQueryNotFound()
        if self.persisted_only or caller_persisted_only():
            raise self._required()
        return Resolved(document)

    async def _register(self, sha256: str, query: str) -> None:
        if len(query.encode()) > self.max_document_bytes:
            # Still runs; only not kept (the store's bound is in documents, not bytes).
            logger.info("persisted query %s not kept: over %d bytes", sha256, len(query))
            return
        await self.store.put(sha256, query)

    def _required(self) -> PersistedQueryRequired:
        who = "This API" if self.persisted_only else "This API token"
        return PersistedQueryRequired(
            f"{who} runs only trusted documents: send the documentId (or the "
            "persistedQuery sha256Hash) of an operation from the client's manifest."
        )

    async def aclose(self) -> None:
        await self.store.aclose()


def _apq_hash(extensions: Mapping[str, Any] | None) -> str | None:
    persisted = extensions.get("persistedQuery") if isinstance(extensions, Mapping) else None
    if persisted is None:
        return None
    if not isinstance(persisted, Mapping):
        raise PersistedQueryBadRequest(
            "extensions.persistedQuery is an object: {version: 1, sha256Hash: <hex>}.",
            reason="MALFORMED_PERSISTED_QUERY",
        )
    version = persisted.get("version")
    if type(version) is not int or version != APQ_VERSION:
        raise PersistedQueryBadRequest(
            f"Unsupported persisted query version {version!r}: this server speaks "
            f"version {APQ_VERSION}.",
            reason="UNSUPPORTED_VERSION",
        )
    sha256 = persisted.get("sha256Hash")
    if not isinstance(sha256, str) or not is_sha256_hex(sha256.lower()):
        raise PersistedQueryBadRequest(
            "extensions.persistedQuery.sha256Hash is the 64 hex digits of the query's sha256.",
            reason="MALFORMED_HASH",
        )
    return sha256.lower()


def _document_id_hash(document_id: object) -> str:
    if isinstance(document_id, str) and document_id.startswith(PREFIX):
        sha256 = document_id.removeprefix(PREFIX)
        if is_sha256_hex(sha256):
            return sha256
    raise PersistedQueryBadRequest(
        "documentId is 'sha256:' followed by the 64 lower-case hex digits of the "
        "document's sha256.",
        reason="MALFORMED_DOCUMENT_ID",
    )


def create_persisted_queries(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> PersistedQueries:
    """Once per app: the manifest is read (TrustedDocumentsInvalid refuses the start) and
    the APQ store chosen: Redis when configured, else the database."""
    trusted = load_trusted_documents(settings)
    if trusted.source:
        logger.info("%d trusted documents from %s", len(trusted), trusted.source)
    if settings.persisted_only and not len(trusted):
        logger.warning(
            "BACKLINE_PERSISTED_ONLY is on without trusted documents: every request is refused"
        )
    store: PersistedQueryStore
    if settings.redis_url:
        from redis.asyncio import Redis

        from backend.graphql.persisted.redis_store import RedisStore

        store = RedisStore(
            Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2),
            prefix=settings.redis_prefix,
            max_entries=settings.persisted_queries_max,
            ttl_seconds=settings.persisted_queries_ttl_seconds,
        )
    else:
        store = DatabaseStore(session_factory, max_entries=settings.persisted_queries_max)
    return PersistedQueries(
        trusted=trusted,
        store=CachedStore(store),
        persisted_only=settings.persisted_only,
        max_document_bytes=settings.persisted_query_max_bytes,
    )
