"""Every table, imported in one place so that Alembic and tests see the whole metadata."""

from backend.accounts.models import ApiToken, OAuthIdentity, RefreshToken, User
from backend.bands.models import Band, BandInvite, BandMember
from backend.core.database import Base
from backend.feedback.models import Comment, Reaction
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
    "OAuthIdentity",
    "PendingUpload",
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
