"""Documents of the tests that are pages of a front-end, deeper than an arbitrary client's
document may be (depth 6): the session app trusts them, as a server trusts the documents
of frontend-contract/ (trusted documents may nest 12 deep; see backend/graphql/limits)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

# The band page: tracks, their versions, comments and replies (9 deep).
BAND_PAGE = """
query BandPage($id: ID!) {
  band(id: $id) {
    name viewerRole
    members(first: 10) { totalCount nodes { role user { handle } } }
    sessions(first: 5) { totalCount nodes { date trackCount versionCount } }
    tracks(first: 50, orderBy: TITLE) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes {
        id title status bpm key tags commentCount
        reactions { total counts { kind count viewerReacted } }
        latestVersion {
          id label durationMs status
          analysis { bpm key scale loudnessLufs }
          waveform { length samplesPerPixel url }
          streams { original mp3 hls cover }
          session { id date }
          reactions { total }
        }
        versions(first: 3) {
          totalCount
          nodes {
            id number label session { date }
            streams { original mp3 hls }
            comments(first: 5) {
              totalCount
              nodes { body atMs author { handle } replies(first: 2) { totalCount } }
            }
          }
        }
        sessions { id date }
      }
    }
  }
}
"""

# A version's comment threads (7 deep).
THREADS = """
query($v: ID!) {
  node(id: $v) {
    ... on TrackVersion {
      comments {
        totalCount
        nodes { body atMs deletedAt replies { totalCount nodes { body author { handle } } } }
      }
    }
  }
}
"""

# A band's tracks with each version's session (7 deep).
TRACK_VERSIONS = """query($b: ID!) { band(id: $b) { tracks { nodes { title
    versions { nodes { number label session { date } } } sessions { date } } } } }"""

DOCUMENTS = (BAND_PAGE, THREADS, TRACK_VERSIONS)


def write_manifest(path: Path) -> Path:
    """The manifest (sha256 -> document), as frontend-contract/ makes it."""
    # The library pages of the scan tests (tracks, versions, their session: 7 deep).
    from tests.library.test_scan import LIBRARY
    from tests.library.test_webdav_scan import VERSIONS
    from tests.media.test_scanned_takes import TAKES

    documents = (*DOCUMENTS, LIBRARY, VERSIONS, TAKES)
    manifest = {hashlib.sha256(text.encode()).hexdigest(): text for text in documents}
    path.write_text(json.dumps(manifest, indent=2))
    return path
