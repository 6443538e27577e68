"""Joining by invite, roles, leaving; a band always keeps an admin."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from backend.bands.models import BandInvite
from backend.core.database import utcnow
from tests.graphql_client import gql, register

CREATE = 'mutation { createBand(input: {name: "Hum", slug: "hum"}) { id } }'
INVITE = "mutation($b: ID!, $r: BandRole) { createInvite(bandId: $b, role: $r) }"
ACCEPT = "mutation($t: String!) { acceptInvite(token: $t) { id slug viewerRole } }"
MEMBERS = (
    "query($b: ID!) { band(id: $b) { members { totalCount nodes { role user { id handle } } } } }"
)
SET_ROLE = "mutation($b: ID!, $u: ID!, $r: BandRole!) { setMemberRole(bandId: $b, userId: $u, role: $r) { id } }"
REMOVE = "mutation($b: ID!, $u: ID!) { removeMember(bandId: $b, userId: $u) }"


async def test_one_invite_admits_several_people_once_each(client):
    admin, _ = await register(client, "ada")
    band_id = (await gql(client, CREATE, token=admin)).ok()["createBand"]["id"]
    token = (await gql(client, INVITE, {"b": band_id}, token=admin)).ok()["createInvite"]
    for handle in ("ben", "cy"):
        member, _ = await register(client, handle)
        joined = (await gql(client, ACCEPT, {"t": token}, token=member)).ok()["acceptInvite"]
        assert joined == {"id": band_id, "slug": "hum", "viewerRole": "MEMBER"}
        # Accepting again changes nothing.
        assert (await gql(client, ACCEPT, {"t": token}, token=member)).ok()
    members = (await gql(client, MEMBERS, {"b": band_id}, token=admin)).ok()["band"]["members"]
    assert members["totalCount"] == 3
    assert [m["user"]["handle"] for m in members["nodes"]] == ["ada", "ben", "cy"]


async def test_admin_invite_and_expiry(client, session_factory):
    admin, _ = await register(client, "ada")
    band_id = (await gql(client, CREATE, token=admin)).ok()["createBand"]["id"]
    token = (await gql(client, INVITE, {"b": band_id, "r": "ADMIN"}, token=admin)).ok()[
        "createInvite"
    ]
    newcomer, _ = await register(client, "dee")
    async with session_factory() as db:
        await db.execute(update(BandInvite).values(expires_at=utcnow() - timedelta(seconds=1)))
        await db.commit()
    expired = await gql(client, ACCEPT, {"t": token}, token=newcomer)
    assert expired.codes == ["BAD_USER_INPUT"] and "expired" in expired.errors[0]["message"]
    fresh = (await gql(client, INVITE, {"b": band_id, "r": "ADMIN"}, token=admin)).ok()
    joined = await gql(client, ACCEPT, {"t": fresh["createInvite"]}, token=newcomer)
    assert joined.ok()["acceptInvite"]["viewerRole"] == "ADMIN"


async def test_the_last_admin_cannot_leave_or_step_down(client):
    admin, admin_id = await register(client, "ada")
    band_id = (await gql(client, CREATE, token=admin)).ok()["createBand"]["id"]
    token = (await gql(client, INVITE, {"b": band_id}, token=admin)).ok()["createInvite"]
    member, member_id = await register(client, "ben")
    await gql(client, ACCEPT, {"t": token}, token=member)

    leave = await gql(client, REMOVE, {"b": band_id, "u": admin_id}, token=admin)
    assert leave.codes == ["BAD_USER_INPUT"] and "admin" in leave.errors[0]["message"]
    demote = await gql(client, SET_ROLE, {"b": band_id, "u": admin_id, "r": "MEMBER"}, token=admin)
    assert demote.codes == ["BAD_USER_INPUT"]

    # With a second admin, the first may go.
    assert (
        await gql(client, SET_ROLE, {"b": band_id, "u": member_id, "r": "ADMIN"}, token=admin)
    ).ok()
    assert (await gql(client, REMOVE, {"b": band_id, "u": admin_id}, token=admin)).ok()[
        "removeMember"
    ]
    gone = await gql(
        client, "query($b: ID!) { band(id: $b) { name } }", {"b": band_id}, token=admin
    )
    assert gone.codes == ["NOT_FOUND"]
    left = (await gql(client, MEMBERS, {"b": band_id}, token=member)).ok()["band"]["members"]
    assert [(m["user"]["handle"], m["role"]) for m in left["nodes"]] == [("ben", "ADMIN")]


async def test_a_member_may_leave_and_an_admin_may_remove(client):
    admin, _ = await register(client, "ada")
    band_id = (await gql(client, CREATE, token=admin)).ok()["createBand"]["id"]
    token = (await gql(client, INVITE, {"b": band_id}, token=admin)).ok()["createInvite"]
    ben, ben_id = await register(client, "ben")
    cy, cy_id = await register(client, "cy")
    for member in (ben, cy):
        await gql(client, ACCEPT, {"t": token}, token=member)
    assert (await gql(client, REMOVE, {"b": band_id, "u": ben_id}, token=ben)).ok()
    assert (await gql(client, REMOVE, {"b": band_id, "u": cy_id}, token=admin)).ok()
    members = (await gql(client, MEMBERS, {"b": band_id}, token=admin)).ok()["band"]["members"]
    assert members["totalCount"] == 1
    viewer_bands = "{ viewer { bands { totalCount } } }"
    assert (await gql(client, viewer_bands, token=ben)).ok()["viewer"]["bands"]["totalCount"] == 0
