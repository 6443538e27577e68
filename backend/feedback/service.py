"""Comments on a moment of a take, threads of replies, and reactions."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.bands.access import BandAccess
from backend.core import validation
from backend.core.database import utcnow
from backend.core.errors import BadUserInput, NotFound
from backend.feedback.models import Comment, Reaction, ReactionKind, ReactionTarget
from backend.library import service as library_service
from backend.library.models import Track, TrackVersion

MAX_BODY = 10_000
# A comment may point a little past the end: durations are only known after probing.
MAX_AT_MS = 24 * 3600 * 1000


async def add_comment(
    *,
    db_session: AsyncSession,
    access: BandAccess,
    version_id: int,
    body: str,
    at_ms: int | None = None,
    end_ms: int | None = None,
    parent_id: int | None = None,
) -> Comment:
    """Comment on a take, at a moment or a span of it, or reply to a comment."""
    author_id = access.require_user()
    version = await access.fetch(
        db_session=db_session,
        model=TrackVersion,
        object_id=version_id,
        what="version",
    )
    clean_body = validation.text(body, field="body", max_length=MAX_BODY)
    _check_span(at_ms, end_ms, version.duration_ms)
    if parent_id is not None:
        parent = await db_session.get(Comment, parent_id)
        if parent is None or parent.version_id != version.id or parent.deleted_at is not None:
            raise BadUserInput("The comment to reply to is not on this version.", field="parentId")
        # Threads are one level deep: a reply to a reply joins the same thread.
        parent_id = parent.parent_id or parent.id
    comment = Comment(
        band_id=version.band_id,
        version_id=version.id,
        author_id=author_id,
        parent_id=parent_id,
        body=clean_body,
        at_ms=at_ms,
        end_ms=end_ms,
    )
    db_session.add(comment)
    track = await db_session.get(Track, version.track_id)
    assert track is not None
    library_service.touch_commented(track)
    await db_session.flush()
    return comment


async def edit_comment(
    *, db_session: AsyncSession, access: BandAccess, comment_id: int, body: str
) -> Comment:
    """Change a comment's text (its author, or a band admin)."""
    comment = await _live_comment(db_session=db_session, access=access, comment_id=comment_id)
    access.require_author_or_admin(
        comment.band_id, author_id=comment.author_id, what="comment", action="edit this comment"
    )
    comment.body = validation.text(body, field="body", max_length=MAX_BODY)
    comment.edited_at = utcnow()
    await db_session.flush()
    return comment


async def delete_comment(*, db_session: AsyncSession, access: BandAccess, comment_id: int) -> None:
    """Soft-delete a comment (its author, or a band admin); replies stay readable."""
    comment = await _live_comment(db_session=db_session, access=access, comment_id=comment_id)
    access.require_author_or_admin(
        comment.band_id,
        author_id=comment.author_id,
        what="comment",
        action="delete this comment",
    )
    comment.deleted_at = utcnow()
    await db_session.flush()


async def resolve_comment(
    *, db_session: AsyncSession, access: BandAccess, comment_id: int, resolved: bool
) -> Comment:
    """Mark a comment as dealt with, or open it again (its author, or a band admin)."""
    comment = await _live_comment(db_session=db_session, access=access, comment_id=comment_id)
    access.require_author_or_admin(
        comment.band_id,
        author_id=comment.author_id,
        what="comment",
        action="resolve this comment",
    )
    comment.resolved = resolved
    await db_session.flush()
    return comment


async def react(
    *,
    db_session: AsyncSession,
    access: BandAccess,
    target_type: ReactionTarget,
    target_id: int,
    kind: ReactionKind,
) -> None:
    """Add the viewer's reaction of this kind; reacting twice is the same as once."""
    user_id = access.require_user()
    band_id = await _target_band(
        db_session=db_session, access=access, target_type=target_type, target_id=target_id
    )
    exists = await db_session.scalar(
        select(Reaction.id).where(
            Reaction.user_id == user_id,
            Reaction.target_type == target_type,
            Reaction.target_id == target_id,
            Reaction.kind == kind,
        )
    )
    if exists:
        return
    try:
        async with db_session.begin_nested():
            db_session.add(
                Reaction(
                    band_id=band_id,
                    user_id=user_id,
                    target_type=target_type,
                    target_id=target_id,
                    kind=kind,
                )
            )
    except IntegrityError:
        pass  # the same reaction arrived concurrently; one row is what we want


async def unreact(
    *,
    db_session: AsyncSession,
    access: BandAccess,
    target_type: ReactionTarget,
    target_id: int,
    kind: ReactionKind,
) -> None:
    """Take the viewer's reaction of this kind back (nothing happens if there was none)."""
    user_id = access.require_user()
    await _target_band(
        db_session=db_session, access=access, target_type=target_type, target_id=target_id
    )
    await db_session.execute(
        delete(Reaction).where(
            Reaction.user_id == user_id,
            Reaction.target_type == target_type,
            Reaction.target_id == target_id,
            Reaction.kind == kind,
        )
    )


def _check_span(at_ms: int | None, end_ms: int | None, duration_ms: int | None) -> None:
    validation.non_negative(at_ms, field="atMs")
    validation.non_negative(end_ms, field="endMs")
    if end_ms is not None and at_ms is None:
        raise BadUserInput("endMs needs atMs: a span has a start.", field="endMs")
    if at_ms is not None and end_ms is not None and end_ms <= at_ms:
        raise BadUserInput("endMs must come after atMs.", field="endMs")
    limit = duration_ms if duration_ms else MAX_AT_MS
    for value, field in ((at_ms, "atMs"), (end_ms, "endMs")):
        if value is not None and value > limit:
            raise BadUserInput(f"{field} is past the end of the recording.", field=field)


async def _live_comment(
    *, db_session: AsyncSession, access: BandAccess, comment_id: int
) -> Comment:
    comment = await access.fetch(
        db_session=db_session,
        model=Comment,
        object_id=comment_id,
        what="comment",
    )
    if comment.deleted_at is not None:
        raise NotFound("comment")
    return comment


_TARGET_MODELS = {
    ReactionTarget.TRACK: (Track, "track"),
    ReactionTarget.VERSION: (TrackVersion, "version"),
    ReactionTarget.COMMENT: (Comment, "comment"),
}


async def _target_band(
    *, db_session: AsyncSession, access: BandAccess, target_type: ReactionTarget, target_id: int
) -> int:
    model, what = _TARGET_MODELS[target_type]
    row = await access.fetch(db_session=db_session, model=model, object_id=target_id, what=what)
    if isinstance(row, Comment) and row.deleted_at is not None:
        raise NotFound("comment")
    return row.band_id


async def band_of_target(
    *, db_session: AsyncSession, target_type: ReactionTarget, target_id: int
) -> int | None:
    """The band a reaction target belongs to (None when it is gone)."""
    model, _ = _TARGET_MODELS[target_type]
    return await db_session.scalar(select(model.band_id).where(model.id == target_id))
