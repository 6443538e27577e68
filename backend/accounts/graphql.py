"""GraphQL for accounts: who is signed in, registration, login and tokens."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy import Select, select
from strawberry.dataloader import DataLoader

from backend.accounts import api_tokens, service, tokens
from backend.accounts.models import ApiToken, OAuthIdentity, User
from backend.bands.models import Band, BandMember
from backend.core.errors import NotFound
from backend.graphql.context import Context, Info
from backend.graphql.dataloaders import (
    count_by_parent,
    groups_by_key,
    page_by_parent,
    rows_by_key,
)
from backend.graphql.nodes import RowNode
from backend.graphql.relay import (
    Connection,
    Node,
    build_connection,
    page_request,
    parse_global_id,
)


def user_loader(ctx: Context) -> DataLoader[int, User | None]:
    return ctx.loaders.get("user", lambda: rows_by_key(ctx.db, User))


def _band_ids_of_user(ctx: Context) -> DataLoader[int, list[Any]]:
    def statement(keys: Sequence[int]) -> Select[Any]:
        return select(BandMember.user_id, BandMember.band_id).where(BandMember.user_id.in_(keys))

    return ctx.loaders.get(
        "band_ids_of_user",
        lambda: groups_by_key(ctx.db, statement, lambda row: row[0], scalars=False),
    )


def _owned_by_user(ctx: Context, model: type) -> DataLoader[int, list[Any]]:
    def statement(keys: Sequence[int]) -> Select[Any]:
        return select(model).where(model.user_id.in_(keys)).order_by(model.id)  # type: ignore[attr-defined]

    return ctx.loaders.get(
        ("owned_by_user", model.__name__),
        lambda: groups_by_key(ctx.db, statement, lambda row: row.user_id),
    )


async def user_of(info: Info, user_id: int) -> UserNode:
    """A user the viewer already sees through a shared band (an author, a member)."""
    row = await user_loader(info.context).load(user_id)
    assert row is not None
    return UserNode.from_row(row)


@strawberry.type(name="OAuthIdentity")
class OAuthIdentityType:
    provider: str
    email: str | None
    linked_at: datetime


@strawberry.type(name="ApiToken")
class ApiTokenNode(RowNode, Node):
    id: strawberry.ID
    name: str
    scopes: list[str]
    persisted_only: bool
    last_used_at: datetime | None
    expires_at: datetime | None
    created_at: datetime
    row: strawberry.Private[ApiToken]

    @classmethod
    async def resolve_node(cls, info: Info, pk: int) -> ApiTokenNode | None:
        """Only its owner sees a token, and not once it is revoked."""
        viewer_id = info.context.require_viewer()
        rows = await _owned_by_user(info.context, ApiToken).load(viewer_id)
        row = next((row for row in rows if row.id == pk and row.revoked_at is None), None)
        return cls.from_row(row) if row else None


@strawberry.type
class ApiTokenCreated:
    token: str = strawberry.field(
        description="The secret, shown only here: send it as 'Authorization: Bearer <token>'."
    )
    api_token: ApiTokenNode


@strawberry.type(name="User")
class UserNode(RowNode, Node):
    id: strawberry.ID
    handle: str
    display_name: str | None
    avatar_url: str | None
    row: strawberry.Private[User]
    # Set where the user is known to be the caller before any token says so (sign-in).
    is_caller: strawberry.Private[bool] = False

    @classmethod
    def from_row(cls, row: User, *, is_caller: bool = False) -> UserNode:
        node = super().from_row(row)
        node.is_caller = is_caller
        return node

    @classmethod
    async def resolve_node(cls, info: Info, pk: int) -> UserNode | None:
        """Visible to themselves and to people they share a band with."""
        access = await info.context.access()
        if pk != access.user_id:
            shared = await _band_ids_of_user(info.context).load(pk)
            if not any(access.can_view(band_id) for _, band_id in shared):
                return None
        row = await user_loader(info.context).load(pk)
        return cls.from_row(row) if row else None

    def _is_viewer(self, info: Info) -> bool:
        return self.is_caller or self.row.id == info.context.viewer_id

    @strawberry.field(description="Only on the viewer.")
    def email(self, info: Info) -> str | None:
        return self.row.email if self._is_viewer(info) else None

    @strawberry.field(
        description="The bands the viewer shares with this user (all, for the viewer)."
    )
    async def bands(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[bands_graphql.BandNode]:
        ctx = info.context
        page = page_request(first, after)
        access = await ctx.access()
        visible = tuple(sorted(access.band_ids))
        base = (
            select(Band).join(BandMember, BandMember.band_id == Band.id).where(Band.id.in_(visible))
        )
        rows = ctx.loaders.get(
            ("bands_of_user", page),
            lambda: page_by_parent(
                ctx.db,
                base=base,
                entity=Band,
                parent=BandMember.user_id,
                order_by=[Band.name, Band.id],
                page=page,
            ),
        )
        count = ctx.loaders.get(
            "bands_of_user_count",
            lambda: count_by_parent(ctx.db, base=base, parent=BandMember.user_id),
        )
        return build_connection(
            await rows.load(self.row.id),
            page,
            bands_graphql.BandNode.from_row,
            lambda: count.load(self.row.id),
        )

    @strawberry.field(description="Only on the viewer.")
    async def identities(self, info: Info) -> list[OAuthIdentityType]:
        if not self._is_viewer(info):
            return []
        rows = await _owned_by_user(info.context, OAuthIdentity).load(self.row.id)
        return [
            OAuthIdentityType(provider=row.provider, email=row.email, linked_at=row.linked_at)
            for row in rows
        ]

    @strawberry.field(description="Only on the viewer; revoked tokens are not listed.")
    async def api_tokens(self, info: Info) -> list[ApiTokenNode]:
        if not self._is_viewer(info):
            return []
        rows = await _owned_by_user(info.context, ApiToken).load(self.row.id)
        return [ApiTokenNode.from_row(row) for row in rows if row.revoked_at is None]


@strawberry.type
class AuthPayload:
    access_token: str
    refresh_token: str
    expires_at: datetime = strawberry.field(description="When the access token expires.")
    user: UserNode

    @classmethod
    def from_pair(cls, pair: tokens.TokenPair) -> AuthPayload:
        return cls(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            expires_at=pair.expires_at,
            user=UserNode.from_row(pair.user, is_caller=True),
        )


@strawberry.input
class RegisterInput:
    email: str
    password: str
    handle: str
    display_name: str | None = None


@strawberry.input
class LoginInput:
    email: str
    password: str


@strawberry.type
class AccountQueries:
    @strawberry.field(description="The signed-in user; null when signed out.")
    async def viewer(self, info: Info) -> UserNode | None:
        viewer_id = info.context.viewer_id
        if viewer_id is None:
            return None
        row = await user_loader(info.context).load(viewer_id)
        return UserNode.from_row(row) if row else None


@strawberry.type
class AccountMutations:
    @strawberry.mutation(description="A local account, signed in at once.")
    async def register(self, info: Info, input: RegisterInput) -> AuthPayload:
        settings = info.context.settings
        async with info.context.transaction() as db_session:
            user = await service.register(
                db_session=db_session,
                email=input.email,
                password=input.password,
                handle=input.handle,
                display_name=input.display_name,
            )
            pair = await tokens.issue(db_session=db_session, user=user, settings=settings)
        return AuthPayload.from_pair(pair)

    @strawberry.mutation
    async def login(self, info: Info, input: LoginInput) -> AuthPayload:
        settings = info.context.settings
        async with info.context.transaction() as db_session:
            user = await service.authenticate(
                db_session=db_session, email=input.email, password=input.password
            )
            pair = await tokens.issue(db_session=db_session, user=user, settings=settings)
        return AuthPayload.from_pair(pair)

    @strawberry.mutation(description="A new token pair; the refresh token given is dead after.")
    async def refresh_token(self, info: Info, refresh_token: str) -> AuthPayload:
        settings = info.context.settings
        try:
            async with info.context.transaction() as db_session:
                pair = await tokens.rotate(
                    db_session=db_session, refresh_token=refresh_token, settings=settings
                )
        except tokens.RefreshTokenReused as reused:
            # The failed transaction rolled back the family's revocation; do it for good.
            async with info.context.transaction() as db_session:
                await tokens.revoke(db_session=db_session, refresh_token=refresh_token)
            raise reused from None
        return AuthPayload.from_pair(pair)

    @strawberry.mutation(description="Sign out this login (the refresh token's family).")
    async def logout(self, info: Info, refresh_token: str) -> bool:
        async with info.context.transaction() as db_session:
            return await tokens.revoke(db_session=db_session, refresh_token=refresh_token)

    @strawberry.mutation(
        description="Sign out on every device: every refresh token dies (access tokens "
        "still run out their minutes); API tokens are revoked one by one."
    )
    async def logout_everywhere(self, info: Info) -> bool:
        viewer_id = info.context.require_session_login()
        async with info.context.transaction() as db_session:
            await tokens.revoke_all(db_session=db_session, user_id=viewer_id)
        return True


@strawberry.type
class ApiTokenMutations:
    @strawberry.mutation(
        description="A personal API token for an integration; its secret is shown once. "
        "Scopes: 'read' (always) and 'write' (mutations); persistedOnly limits it to the "
        "server's trusted documents."
    )
    async def create_api_token(
        self,
        info: Info,
        name: str,
        scopes: list[str] | None = None,
        persisted_only: bool | None = None,
        expires_at: datetime | None = None,
    ) -> ApiTokenCreated:
        viewer_id = info.context.require_session_login()
        async with info.context.transaction() as db_session:
            created = await api_tokens.create(
                db_session=db_session,
                user_id=viewer_id,
                name=name,
                scopes=scopes,
                persisted_only=bool(persisted_only),
                expires_at=expires_at,
            )
        return ApiTokenCreated(token=created.secret, api_token=ApiTokenNode.from_row(created.row))

    @strawberry.mutation(description="Revoke one of your API tokens; it stops working at once.")
    async def revoke_api_token(self, info: Info, id: strawberry.ID) -> bool:
        viewer_id = info.context.require_session_login()
        type_name, pk = parse_global_id(id)
        if type_name != "ApiToken":
            raise NotFound("API token")
        async with info.context.transaction() as db_session:
            await api_tokens.revoke(db_session=db_session, user_id=viewer_id, token_id=pk)
        return True


# Imported last: the band module refers back to the types above.
from backend.bands import graphql as bands_graphql  # noqa: E402
