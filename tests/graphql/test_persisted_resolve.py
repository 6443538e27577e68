"""The resolver alone (no app, no database): what it keeps, what it trusts, and what it
tells the context."""

from __future__ import annotations

from backend.graphql.persisted.resolve import PersistedQueries
from backend.graphql.persisted.store import CachedStore
from backend.graphql.persisted.trusted import TrustedDocuments
from tests.graphql.test_persisted_queries import ME, apq, sha256
from tests.graphql.test_persisted_store import CountingStore

OTHER = "query Other { __typename }"


def resolver(*, trusted: dict[str, str] | None = None, **options: object) -> PersistedQueries:
    return PersistedQueries(
        trusted=TrustedDocuments(trusted), store=CachedStore(CountingStore()), **options
    )


async def test_a_document_over_the_size_bound_runs_but_is_not_kept():
    persisted = resolver(max_document_bytes=len(ME) - 1)
    inner = persisted.store.store
    resolved = await persisted.resolve(query=ME, extensions=apq(ME))
    assert resolved.query == ME
    assert inner.calls == []
    persisted.max_document_bytes = len(ME)
    await persisted.resolve(query=ME, extensions=apq(ME))
    assert inner.documents == {sha256(ME): ME}


def test_is_trusted_compares_the_exact_text():
    persisted = resolver(trusted={sha256(ME): ME})
    assert persisted.is_trusted(ME)
    assert not persisted.is_trusted(ME + "\n")
    assert not resolver().is_trusted(ME)


async def test_the_caller_is_asked_only_about_documents_that_are_not_trusted():
    asked: list[bool] = []

    def persisted_only() -> bool:
        asked.append(True)
        return False

    persisted = resolver(trusted={sha256(ME): ME})
    await persisted.resolve(query=ME, extensions=None, caller_persisted_only=persisted_only)
    await persisted.resolve(query=None, extensions=apq(ME), caller_persisted_only=persisted_only)
    assert asked == []
    await persisted.resolve(query=OTHER, extensions=None, caller_persisted_only=persisted_only)
    assert asked == [True]
