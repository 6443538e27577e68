"""The schema, assembled from each domain's query and mutation mixins."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from backend.accounts.graphql import (
    AccountMutations,
    AccountQueries,
    ApiTokenMutations,
    ApiTokenNode,
    UserNode,
)
from backend.accounts.oauth.graphql import OAuthMutations, OAuthQueries
from backend.bands.graphql import BandMutations, BandNode, BandQueries
from backend.bands.live import BandSubscriptions
from backend.core.errors import BadUserInput, NotFound, QueryTooComplex, RateLimited
from backend.core.settings import Settings
from backend.feedback.graphql import CommentNode, FeedbackMutations
from backend.graphql.context import Info
from backend.graphql.errors import ErrorCodes
from backend.graphql.limits import ExtensionFactory, Limits, schema_extensions
from backend.graphql.relay import Node, parse_global_id
from backend.graphql.scopes import TokenScopes
from backend.jobs.graphql import JobNode, JobQueries, JobSubscriptions
from backend.library.graphql.mutations import LibraryMutations
from backend.library.graphql.sources import SourceMutations
from backend.library.graphql.types import (
    RehearsalSessionNode,
    SourceNode,
    TrackNode,
    TrackVersionNode,
)
from backend.media.graphql.uploads import MediaMutations, MediaQueries

MAX_NODES = 100

# Global ID type name -> the class that can load and permission-check one.
NODE_TYPES = {
    "User": UserNode,
    "Band": BandNode,
    "Source": SourceNode,
    "RehearsalSession": RehearsalSessionNode,
    "Track": TrackNode,
    "TrackVersion": TrackVersionNode,
    "Comment": CommentNode,
    "Job": JobNode,
    "ApiToken": ApiTokenNode,
}


async def _resolve_node(info: Info, global_id: str, *, field: str = "id") -> Node | None:
    type_name, pk = parse_global_id(global_id, field=field)
    node_type = NODE_TYPES.get(type_name)
    return await node_type.resolve_node(info, pk) if node_type else None


@strawberry.type
class NodeQueries:
    @strawberry.field(description="Any object of the viewer's bands by its global id.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        info.context.require_viewer()
        node = await _resolve_node(info, id)
        if node is None:
            raise NotFound("object")
        return node

    @strawberry.field(description="Several objects at once; null where one is not found.")
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        info.context.require_viewer()
        if len(ids) > MAX_NODES:
            raise BadUserInput(f"Ask for at most {MAX_NODES} ids at once.", field="ids")
        return [await _resolve_node(info, global_id, field="ids") for global_id in ids]


@strawberry.type
class Query(NodeQueries, AccountQueries, OAuthQueries, BandQueries, JobQueries, MediaQueries):
    pass


@strawberry.type
class Mutation(
    AccountMutations,
    ApiTokenMutations,
    OAuthMutations,
    BandMutations,
    LibraryMutations,
    SourceMutations,
    FeedbackMutations,
    MediaMutations,
):
    pass


@strawberry.type
class Subscription(JobSubscriptions, BandSubscriptions):
    pass


_REFUSALS = (QueryTooComplex, RateLimited)


class BacklineSchema(strawberry.Schema):
    """The schema, and the limits it enforces (the multiplexer, which runs subscriptions
    past the extensions, enforces them too)."""

    limits: Limits | None = None

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Strawberry logs every error. A refusal by the limits is the client's doing and
        # comes in floods when someone pushes: logging each would make the flood the log's.
        logged = [error for error in errors if not isinstance(error.original_error, _REFUSALS)]
        super().process_errors(logged, execution_context)


def create_schema(settings: Settings | None = None) -> BacklineSchema:
    """The schema as an app with these settings serves it: with the abuse limits, and in
    production without introspection or "Did you mean ...?" hints. Without settings, the
    contract alone (``schema`` below, exported as schema.graphql). Neither changes a type:
    both export the same SDL."""
    extensions: list[ExtensionFactory] = [ErrorCodes, TokenScopes]
    limits = Limits(settings) if settings is not None else None
    production = settings is not None and settings.is_production
    if limits is not None:
        extensions += schema_extensions(limits, production=production)
    built = BacklineSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=list(NODE_TYPES.values()),
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True, disable_field_suggestions=production),
    )
    built.limits = limits
    return built


schema = create_schema()
