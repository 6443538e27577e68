"""Multiplexed subscriptions: one execution per event for every subscriber of the same
subscription, as Hasura does, instead of one per subscriber.

Subscribers of one channel with the same document, operation and variables form a
group. A group holds one bus subscription; for each event it loads the event's objects
once, executes the selection once with a ``SharedContext`` (which has no viewer),
serialises the result once, and every subscriber sends those bytes in its own frame.

A selection whose result depends on who is asking (``viewerReacted``, ``viewerRole``,
``email``, anything that reads the viewer's memberships) asks the context who the
viewer is; the shared context refuses, and the group executes that event once per
subscriber instead, with each one's own context. Nothing a subscriber receives was
computed for anyone else's eyes: every group member was admitted by the source (a band
member, for bandEvents), and each event goes only to those it still admits.

Only documents this module can serve are taken (one root field of a registered source,
no directives there, valid, variables that fit); anything else, and every refusal, goes
the ordinary Strawberry way, so errors read exactly as before."""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Container, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any, Protocol

import strawberry
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    GraphQLField,
    GraphQLSchema,
    OperationType,
    get_operation_ast,
    parse,
    specified_rules,
)
from graphql.execution import execute_subscription_event
from graphql.execution.executor_throwing_on_incremental import ExecutorThrowingOnIncremental
from graphql.execution.values import get_argument_values
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from backend.core.events import Message
from backend.graphql.context import Context, SharedContext, ViewerDependent
from backend.graphql.database import RequestDatabase
from backend.graphql.errors import code_error
from backend.graphql.subscribers import Subscriber

logger = logging.getLogger("backline.graphql")

DOCUMENTS = 256  # parsed and validated documents kept, by their text
VIEWER_CONCURRENCY = 4  # per-viewer executions of one event at once (each may hold a connection)


class LiveSource(Protocol):
    """A subscription field the multiplexer can serve (see backend/bands/live.py)."""

    field_name: str

    async def admit(self, ctx: Context, arguments: dict[str, Any]) -> str | None:
        """The bus channel for this viewer, or None to let the resolver refuse it."""

    async def audience(self, ctx: Context, channel: str, message: Message) -> Container[int]:
        """The viewer ids that may still receive this message."""

    def refusal(self) -> Exception:
        """The error that ends the subscription of a viewer no longer admitted."""

    async def to_root(self, ctx: Context, message: Message) -> Any:
        """The object the field resolves to for this message, or None to skip it."""


@dataclass(frozen=True, eq=False)
class _Document:
    document: DocumentNode
    field: FieldNode
    definition: GraphQLField
    source: LiveSource


@dataclass(frozen=True, eq=False)
class Plan:
    """A subscription the multiplexer takes: what to execute, and what groups it."""

    key: tuple[str, str | None, str]
    document: DocumentNode
    operation_name: str | None
    variables: dict[str, Any] | None
    arguments: dict[str, Any]
    source: LiveSource


class Multiplexer:
    def __init__(
        self,
        schema: strawberry.Schema,
        sources: Iterable[LiveSource],
        *,
        encode: Callable[[object], str],
    ) -> None:
        self._schema: GraphQLSchema = schema._schema
        self._sources = {source.field_name: source for source in sources}
        self._encode = encode
        self._documents: OrderedDict[tuple[str, str | None], _Document | None] = OrderedDict()
        self._groups: dict[tuple[str, tuple[str, str | None, str]], _Group] = {}
        # Abuse limits (backend/graphql/limits): what is taken here never meets the
        # schema's extensions, so it is measured and charged here, once. A document over
        # a limit or a budget is not taken: the ordinary path refuses it, saying why.
        self._limits = getattr(schema, "limits", None)
        # Extensions that wrap resolvers, and custom directives, run only on Strawberry's
        # own path: with any, everything goes that way.
        self.enabled = not schema.directives and not any(
            type(extension).resolve is not SchemaExtension.resolve
            for extension in schema.get_extensions()
        )

    async def serve(
        self,
        ctx: Context,
        query: object,
        operation_name: object,
        variables: object,
        subscriber: Subscriber,
    ) -> bool:
        """Serve one subscription until it ends; False (at once) when it is not taken.

        Returns when the group ends it (the subscriber says how in ``done``); a cancelled
        caller (the client stopped it, or left) leaves the group on the way out."""
        plan = self.plan(query, operation_name, variables)
        if plan is None:
            return False
        try:
            channel = await plan.source.admit(ctx, plan.arguments)
        except Exception:  # e.g. the database is unreachable: the resolver reports it
            logger.warning("subscription not multiplexed: admission failed", exc_info=True)
            return False
        if channel is None:
            return False
        if self._limits is not None and not await self._limits.admit_subscription(
            ctx, self._schema, query, plan.document, plan.operation_name, plan.variables
        ):
            return False
        subscriber.viewer_id = ctx.viewer_id
        key = (channel, plan.key)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(self, key, channel, plan, ctx)
        group.add(subscriber)
        try:
            try:
                await asyncio.shield(group.ready)
            except Exception:  # e.g. Redis unreachable: the resolver reports it
                return False
            await subscriber.done
            return True
        finally:
            group.remove(subscriber)

    def plan(self, query: object, operation_name: object, variables: object) -> Plan | None:
        if not self.enabled or not isinstance(query, str):
            return None
        if operation_name is not None and not isinstance(operation_name, str):
            return None
        if variables is not None and not isinstance(variables, dict):
            return None
        parsed = self._parse(query, operation_name)
        if parsed is None:
            return None
        executor = ExecutorThrowingOnIncremental.build(
            self._schema,
            parsed.document,
            raw_variable_values=variables,
            operation_name=operation_name,
        )
        if isinstance(executor, list):  # the variables do not fit
            return None
        try:
            arguments = get_argument_values(
                parsed.definition, parsed.field, executor.variable_values
            )
            variables_key = json.dumps(variables, sort_keys=True, separators=(",", ":"))
        except (GraphQLError, TypeError, ValueError):
            return None
        return Plan(
            key=(query, operation_name, variables_key),
            document=parsed.document,
            operation_name=operation_name,
            variables=variables,
            arguments=arguments,
            source=parsed.source,
        )

    def _parse(self, query: str, operation_name: str | None) -> _Document | None:
        key = (query, operation_name)
        if key in self._documents:
            self._documents.move_to_end(key)
            return self._documents[key]
        parsed = self._parse_uncached(query, operation_name)
        self._documents[key] = parsed
        while len(self._documents) > DOCUMENTS:
            self._documents.popitem(last=False)
        return parsed

    def _parse_uncached(self, query: str, operation_name: str | None) -> _Document | None:
        max_tokens = self._limits.documents.tokens if self._limits is not None else None
        try:
            document = parse(query, max_tokens=max_tokens)
        except GraphQLError:
            return None
        if validate_document(self._schema, document, tuple(specified_rules)):
            return None
        operation = get_operation_ast(document, operation_name)
        if operation is None or operation.operation != OperationType.SUBSCRIPTION:
            return None
        selections = operation.selection_set.selections
        if operation.directives or len(selections) != 1:
            return None
        field = selections[0]
        if not isinstance(field, FieldNode) or field.directives:
            return None
        source = self._sources.get(field.name.value)
        root = self._schema.subscription_type
        if source is None or root is None:
            return None
        return _Document(document, field, root.fields[field.name.value], source)

    async def execute(self, plan: Plan, ctx: Context, root: Any) -> ExecutionResult:
        """The plan's selection for one event, ``root`` being what its field resolves to."""
        executor = ExecutorThrowingOnIncremental.build(
            self._schema,
            plan.document,
            context_value=ctx,
            raw_variable_values=plan.variables,
            operation_name=plan.operation_name,
            is_awaitable=optimized_is_awaitable,
        )
        assert not isinstance(executor, list), executor  # the plan checked the variables
        result = execute_subscription_event(executor.build_per_event_executor(root))
        return await result if isawaitable(result) else result

    def payload(self, result: ExecutionResult, *, request_id: str) -> str:
        """A result as Strawberry sends it, every error with its ``extensions.code``."""
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [
                code_error(error, request_id=request_id).formatted for error in result.errors
            ]
        return self._encode(payload)

    def error_payload(self, error: Exception) -> str:
        # The shape Strawberry gives an error raised by a subscription's generator.
        formatted = GraphQLError(str(error), original_error=error).formatted
        return self._encode({"data": None, "errors": [formatted]})

    def _forget(self, group: _Group) -> None:
        if self._groups.get(group.key) is group:
            del self._groups[group.key]


class _Outcome(enum.Enum):
    SKIP = "nothing to send (what the event names is gone)"
    PER_VIEWER = "the selection asks who the viewer is"


class _Group:
    """Subscribers of one channel with one plan, and the one bus subscription they share."""

    def __init__(
        self,
        mux: Multiplexer,
        key: tuple[str, tuple[str, str | None, str]],
        channel: str,
        plan: Plan,
        ctx: Context,
    ) -> None:
        self.mux = mux
        self.key = key
        self.channel = channel
        self.plan = plan
        self.subscribers: dict[Subscriber, None] = {}  # a dict as an ordered set
        self._settings, self._queue, self._bus = ctx.settings, ctx.queue, ctx.bus
        # The group's payload is shared: links in it use the first subscriber's origin.
        self._storage, self._media_base_url = ctx.storage, ctx.media_base_url
        self._session_factory = ctx.session_factory
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.ready.add_done_callback(_retrieve)
        self._task = loop.create_task(self._run(), name=f"subscription-group {channel}")

    def add(self, subscriber: Subscriber) -> None:
        self.subscribers[subscriber] = None

    def remove(self, subscriber: Subscriber) -> None:
        self.subscribers.pop(subscriber, None)
        if not self.subscribers:
            self.mux._forget(self)
            self._task.cancel()

    async def _run(self) -> None:
        try:
            async with self._bus.subscribe(self.channel) as messages:
                self.ready.set_result(None)
                async for message in messages:
                    try:
                        await self._dispatch(message)
                    except Exception:  # one event that cannot be served must not end the group
                        logger.exception(
                            "%s: event %s not delivered", self.channel, message.get("type")
                        )
        except Exception as error:
            if self.ready.done():
                logger.exception("%s: subscription group failed", self.channel)
            else:
                self.ready.set_exception(error)
        finally:
            self.mux._forget(self)
            if not self.ready.done():
                self.ready.cancel()
            for subscriber in list(self.subscribers):
                subscriber.end(None)  # the stream is over (the bus closed)

    async def _dispatch(self, message: Message) -> None:
        async with self._shared_context() as ctx:
            # Who may still receive it, and the result for all: read side by side.
            allowed, shared = await asyncio.gather(
                self.plan.source.audience(ctx, self.channel, message),
                self._shared_payload(ctx, message),
            )
        for subscriber in list(self.subscribers):
            if subscriber.viewer_id not in allowed:
                self._refuse(subscriber)
        if shared is _Outcome.PER_VIEWER:
            await self._each_viewer(message)
        elif shared is not _Outcome.SKIP:
            for subscriber in list(self.subscribers):
                subscriber.deliver(shared)

    async def _shared_payload(self, ctx: SharedContext, message: Message) -> str | _Outcome:
        """The serialised result every subscriber gets, executed once."""
        try:
            root = await self.plan.source.to_root(ctx, message)
            if root is None:
                return _Outcome.SKIP
            result = await self.mux.execute(self.plan, ctx, root)
        except ViewerDependent:
            return _Outcome.PER_VIEWER
        if ctx.viewer_read:  # even if a resolver swallowed the refusal
            return _Outcome.PER_VIEWER
        return self.mux.payload(result, request_id=ctx.request_id)

    def _refuse(self, subscriber: Subscriber) -> None:
        error = self.plan.source.refusal()
        subscriber.deliver(self.mux.error_payload(error))
        subscriber.end(error)
        self.subscribers.pop(subscriber, None)

    async def _each_viewer(self, message: Message) -> None:
        pending = iter(list(self.subscribers))

        async def work() -> None:
            for subscriber in pending:
                if subscriber in self.subscribers:
                    await self._for_viewer(subscriber, message)

        await asyncio.gather(*(work() for _ in range(VIEWER_CONCURRENCY)))

    async def _for_viewer(self, subscriber: Subscriber, message: Message) -> None:
        ctx: Context = subscriber.context
        try:
            root = await self.plan.source.to_root(ctx, message)
            if root is None:
                return
            result = await self.mux.execute(self.plan, ctx, root)
            if subscriber in self.subscribers:
                subscriber.deliver(self.mux.payload(result, request_id=ctx.request_id))
        except Exception:  # this subscriber misses this event; the others do not
            logger.exception("%s: event %s not delivered", self.channel, message.get("type"))
        finally:
            with suppress(Exception):
                await ctx.between_events()

    @asynccontextmanager
    async def _shared_context(self) -> AsyncIterator[SharedContext]:
        db = RequestDatabase(self._session_factory())
        try:
            yield SharedContext(
                settings=self._settings,
                db=db,
                session_factory=self._session_factory,
                queue=self._queue,
                bus=self._bus,
                authorization=None,
                storage=self._storage,
                media_base_url=self._media_base_url,
            )
        finally:
            await db.close()


def _retrieve(future: asyncio.Future[None]) -> None:
    # Joiners may all have left; a failed start is theirs to see, not the loop's to log.
    if not future.cancelled():
        future.exception()
