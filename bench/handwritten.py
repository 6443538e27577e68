"""The band page without GraphQL: a few hand-written SQL statements and a JSON response of
the same shape as the GraphQL ``BandPage`` query, as a baseline to compare GraphQL with.

Served next to the real app: ``python -m uvicorn --factory bench.handwritten:app_factory``
(settings from the usual ``BACKLINE_*`` environment variables)."""

from __future__ import annotations

import base64
from collections import defaultdict
from datetime import date
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backend.accounts import tokens
from backend.app import create_app
from backend.core.errors import BadUserInput, Unauthenticated
from backend.core.settings import Settings, get_settings
from backend.feedback.models import ReactionKind
from backend.graphql.relay import MAX_PAGE_SIZE, parse_global_id, to_global_id

# The order GraphQL lists reaction kinds in (the enum's order).
_KIND_ORDER = {kind.value: index for index, kind in enumerate(ReactionKind)}

# Membership and band in one statement: a non-member gets nothing, as with GraphQL.
_BAND = text(
    "SELECT b.name FROM bands b "
    "JOIN band_members m ON m.band_id = b.id AND m.user_id = :user_id "
    "WHERE b.id = :band_id"
)
# The page plus one row (tells whether there is a next page); the count rides along as a
# scalar subquery so that the page itself can still walk the (band_id, normalized_title) index.
_TRACKS = text(
    "SELECT t.id, t.title, t.status, t.bpm, t.key, "
    "(SELECT count(*) FROM tracks c WHERE c.band_id = :band_id) AS total "
    "FROM tracks t WHERE t.band_id = :band_id "
    "ORDER BY t.normalized_title, t.id LIMIT :limit"
)
# The three newest takes of each track; the newest is also the track's latestVersion.
_VERSIONS = text(
    "SELECT v.id, v.track_id, v.number, v.label, v.duration_ms, v.status, v.rn, "
    "s.id AS session_id, s.date AS session_date "
    "FROM (SELECT id, track_id, number, label, duration_ms, status, session_id, "
    "      row_number() OVER (PARTITION BY track_id ORDER BY number DESC) AS rn "
    "      FROM track_versions WHERE track_id IN :track_ids) v "
    "LEFT JOIN rehearsal_sessions s ON s.id = v.session_id "
    "WHERE v.rn <= :versions "
    "ORDER BY v.track_id, v.rn"
).bindparams(bindparam("track_ids", expanding=True))
# A statement of its own: joined into the one above, PostgreSQL's planner prefers to hash
# all 30,000 analyses (~3 ms) over 150 probes of the version_id index.
_ANALYSES = text(
    "SELECT version_id, bpm, key, scale, loudness_lufs FROM analyses "
    "WHERE version_id IN :version_ids"
).bindparams(bindparam("version_ids", expanding=True))
_SESSIONS = text(
    "SELECT DISTINCT v.track_id, s.id, s.date "
    "FROM track_versions v JOIN rehearsal_sessions s ON s.id = v.session_id "
    "WHERE v.track_id IN :track_ids "
    "ORDER BY s.date DESC, s.id"
).bindparams(bindparam("track_ids", expanding=True))
_COMMENT_COUNTS = text(
    "SELECT v.track_id, count(c.id) "
    "FROM track_versions v JOIN comments c ON c.version_id = v.id "
    "WHERE c.deleted_at IS NULL AND v.track_id IN :track_ids "
    "GROUP BY v.track_id"
).bindparams(bindparam("track_ids", expanding=True))
_REACTIONS = text(
    "SELECT target_id, kind, count(*), "
    "max(CASE WHEN user_id = :viewer_id THEN 1 ELSE 0 END) "
    "FROM reactions WHERE target_type = 'TRACK' AND target_id IN :track_ids "
    "GROUP BY target_id, kind"
).bindparams(bindparam("track_ids", expanding=True))


def _cursor(position: int) -> str:
    # Same opaque cursor as backend.graphql.relay (a position in the list).
    return base64.urlsafe_b64encode(f"cursor:{position}".encode()).decode()


def _iso(value: date | str) -> str:
    # text() does no type processing: SQLite hands back the stored string, asyncpg a date.
    return value if isinstance(value, str) else value.isoformat()


async def band_page(
    connection: AsyncConnection, *, band_id: int, viewer_id: int, first: int = 50
) -> dict[str, Any] | None:
    """The BandPage query's ``data``, or None when the band is not the viewer's."""
    name = (await connection.execute(_BAND, {"band_id": band_id, "user_id": viewer_id})).scalar()
    if name is None:
        return None
    rows = (await connection.execute(_TRACKS, {"band_id": band_id, "limit": first + 1})).all()
    visible = rows[:first]
    total = rows[0].total if rows else 0
    ids = [row.id for row in visible]

    versions: dict[int, list[Any]] = defaultdict(list)
    analyses: dict[int, dict[str, Any]] = {}
    sessions: dict[int, list[dict[str, Any]]] = defaultdict(list)
    comment_counts: dict[int, int] = {}
    reactions: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if ids:
        for row in await connection.execute(_VERSIONS, {"track_ids": ids, "versions": 3}):
            versions[row.track_id].append(row)
        latest_ids = [takes[0].id for takes in versions.values()]
        if latest_ids:
            for version_id, bpm, key, scale, loudness in await connection.execute(
                _ANALYSES, {"version_ids": latest_ids}
            ):
                analyses[version_id] = {
                    "bpm": bpm,
                    "key": key,
                    "scale": scale,
                    "loudnessLufs": loudness,
                }
        for track_id, session_id, session_date in await connection.execute(
            _SESSIONS, {"track_ids": ids}
        ):
            sessions[track_id].append(
                {"id": to_global_id("RehearsalSession", session_id), "date": _iso(session_date)}
            )
        for track_id, count in await connection.execute(_COMMENT_COUNTS, {"track_ids": ids}):
            comment_counts[track_id] = count
        for target_id, kind, count, mine in await connection.execute(
            _REACTIONS, {"track_ids": ids, "viewer_id": viewer_id}
        ):
            reactions[target_id].append({"kind": kind, "count": count, "viewerReacted": bool(mine)})

    nodes = []
    for track in visible:
        counts = sorted(reactions.get(track.id, []), key=lambda c: _KIND_ORDER[c["kind"]])
        takes = versions.get(track.id, [])
        nodes.append(
            {
                "id": to_global_id("Track", track.id),
                "title": track.title,
                "status": track.status,
                "bpm": track.bpm,
                "key": track.key,
                "commentCount": comment_counts.get(track.id, 0),
                "reactions": {"total": sum(c["count"] for c in counts), "counts": counts},
                "latestVersion": _latest(takes[0], analyses) if takes else None,
                "versions": {
                    "nodes": [
                        {
                            "id": to_global_id("TrackVersion", take.id),
                            "number": take.number,
                            "label": take.label,
                            "durationMs": take.duration_ms,
                            "session": (
                                {"date": _iso(take.session_date)}
                                if take.session_id is not None
                                else None
                            ),
                        }
                        for take in takes
                    ]
                },
                "sessions": sessions.get(track.id, []),
            }
        )
    return {
        "band": {
            "name": name,
            "tracks": {
                "totalCount": total,
                "pageInfo": {
                    "hasNextPage": len(rows) > first,
                    "endCursor": _cursor(len(visible) - 1) if visible else None,
                },
                "nodes": nodes,
            },
        }
    }


def _latest(take: Any, analyses: dict[int, dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": to_global_id("TrackVersion", take.id),
        "label": take.label,
        "durationMs": take.duration_ms,
        "status": take.status,
        "analysis": analyses.get(take.id),
        "session": (
            {
                "id": to_global_id("RehearsalSession", take.session_id),
                "date": _iso(take.session_date),
            }
            if take.session_id is not None
            else None
        ),
    }


def add_band_page_route(app: FastAPI, engine: AsyncEngine, settings: Settings) -> None:
    @app.get("/bench/band-page")
    async def band_page_endpoint(request: Request, band: str, first: int = 50) -> JSONResponse:
        """GET /bench/band-page?band=<global band id> with the same bearer token as GraphQL."""
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        try:
            if scheme.lower() != "bearer":
                raise Unauthenticated()
            viewer_id = tokens.decode_access_token(token.strip(), settings=settings)
        except Unauthenticated:
            return JSONResponse({"error": "UNAUTHENTICATED"}, status_code=401)
        try:
            type_name, band_id = parse_global_id(band, field="band")
        except BadUserInput:
            type_name, band_id = "", 0
        if type_name != "Band" or not 0 <= first <= MAX_PAGE_SIZE:
            return JSONResponse({"error": "BAD_USER_INPUT"}, status_code=400)
        # One connection (and, as for a GraphQL request, one transaction) per request.
        async with engine.connect() as connection:
            data = await band_page(connection, band_id=band_id, viewer_id=viewer_id, first=first)
        if data is None:
            return JSONResponse({"error": "NOT_FOUND"}, status_code=404)
        return JSONResponse({"data": data})


def create_bench_app(settings: Settings) -> FastAPI:
    """The real app (GraphQL and all) plus the hand-written band page route."""
    app = create_app(settings)
    add_band_page_route(app, app.state.engine, settings)
    return app


def app_factory() -> FastAPI:
    """For ``uvicorn --factory``: settings come from the BACKLINE_* environment."""
    return create_bench_app(get_settings())
