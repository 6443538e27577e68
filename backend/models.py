"""Every table, imported in one place so that Alembic and tests see the whole metadata."""

from backend.accounts.models import ApiToken, LoginCode, OAuthIdentity, RefreshToken, User
from backend.bands.models import Band, BandInvite, BandMember
from backend.core.database import Base
from backend.feedback.models import Comment, Reaction
from backend.graphql.persisted.models import PersistedQuery
from backend.jobs.models import Job
from backend.library.models import (
    RehearsalSession,
    Source,
    SourceFolder,
    Track,
    TrackTag,
    TrackVersion,
)
from backend.media.models import Analysis, Asset, PendingUpload, Rendition

__all__ = [
    "Analysis",
    "ApiToken",
    "Asset",
    "Band",
    "BandInvite",
    "BandMember",
    "Base",
    "Comment",
    "Job",
    "LoginCode",
    "OAuthIdentity",
    "PendingUpload",
    "PersistedQuery",
    "Reaction",
    "RefreshToken",
    "RehearsalSession",
    "Rendition",
    "Source",
    "SourceFolder",
    "Track",
    "TrackTag",
    "TrackVersion",
    "User",
]
