"""Scanning a rehearsal folder through GraphQL, with the embedded workers doing the work."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from tests.audio_fixtures import write_wav
from tests.graphql_client import gql

ADD_SOURCE = """
mutation($band: ID!, $root: String!) {
  addSource(input: {bandId: $band, kind: LOCAL_FOLDER, name: "Rehearsals", root: $root}) { id root }
}
"""
SCAN = "mutation($s: ID!) { scanSource(sourceId: $s) { id status } }"
JOB = """query($id: ID!) { job(id: $id) { status progress processed total added updated skipped
  failed message errors { path message } } }"""
LIBRARY = """query($b: ID!) { band(id: $b) {
  sessions { nodes { date versionCount } }
  tracks { nodes { title versions { nodes { label path status session { date } } } } } } }"""


async def scan(client, token, source_id) -> dict:
    job = (await gql(client, SCAN, {"s": source_id}, token=token)).ok()["scanSource"]
    for _ in range(300):
        state = (await gql(client, JOB, {"id": job["id"]}, token=token)).ok()["job"]
        if state["status"] in {"SUCCEEDED", "FAILED", "CANCELLED"}:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"scan did not finish: {state}")


def tree(folder: Path, files: list[str]) -> None:
    for relative in files:
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        # A tone of its own per file: real takes differ, and moves are told by content.
        write_wav(path, seconds=0.2, tone_hz=200 + sum(map(ord, relative)) % 800)


async def test_first_scan_follows_the_path_rules(client, band_with_folder):
    token, band_id, source_id, folder = band_with_folder
    tree(
        folder,
        [
            "231015/groove/take1.wav",
            "231015/groove/take2.wav",
            "231022/new_song.wav",
            "231022/Groove/take1.wav",
            "20231399/idea.wav",
            "jam.wav",
        ],
    )
    (folder / "231015" / "notes.txt").write_text("setlist")
    (folder / ".DS_Store").write_bytes(b"\0\0")
    result = await scan(client, token, source_id)
    assert result["status"] == "SUCCEEDED", result
    assert (result["added"], result["skipped"], result["failed"]) == (6, 1, 0)
    assert result["progress"] == 1.0

    library = (await gql(client, LIBRARY, {"b": band_id}, token=token)).ok()["band"]
    assert {s["date"]: s["versionCount"] for s in library["sessions"]["nodes"]} == {
        "2023-10-22": 2,
        "2023-10-15": 2,
    }
    tracks = {t["title"]: t["versions"]["nodes"] for t in library["tracks"]["nodes"]}
    # 20231399 is no date, so it is an ordinary folder, and a folder names its track.
    assert sorted(tracks) == ["20231399", "groove", "jam", "new song"]
    # The same song in two sessions: one track, three versions, newest first.
    assert [(v["label"], v["session"]["date"]) for v in tracks["groove"]] == [
        ("take1", "2023-10-22"),
        ("take2", "2023-10-15"),
        ("take1", "2023-10-15"),
    ]
    assert (tracks["20231399"][0]["label"], tracks["20231399"][0]["session"]) == ("idea", None)


async def test_rescan_is_idempotent_and_follows_changes(client, band_with_folder, session_factory):
    token, band_id, source_id, folder = band_with_folder
    tree(folder, ["231015/groove/take1.wav", "231015/groove/take2.wav", "231015/solo.wav"])
    assert (await scan(client, token, source_id))["added"] == 3

    unchanged = await scan(client, token, source_id)
    assert (unchanged["added"], unchanged["updated"], unchanged["processed"]) == (0, 0, 3)

    # Changed content, a removal, a rename (same bytes, new path) and a new take.
    write_wav(folder / "231015/groove/take1.wav", seconds=0.3)
    (folder / "231015/solo.wav").unlink()
    os.rename(folder / "231015/groove/take2.wav", folder / "231015/groove/take2-keeper.wav")
    tree(folder, ["231022/groove/take1.wav"])
    changed = await scan(client, token, source_id)
    assert (changed["added"], changed["updated"]) == (1, 2), changed

    library = (await gql(client, LIBRARY, {"b": band_id}, token=token)).ok()["band"]
    tracks = {t["title"]: t["versions"]["nodes"] for t in library["tracks"]["nodes"]}
    assert [v["path"] for v in tracks["groove"]] == [
        "231022/groove/take1.wav",
        "231015/groove/take2-keeper.wav",
        "231015/groove/take1.wav",
    ]
    assert tracks["solo"][0]["status"] == "MISSING"

    # The removed file comes back: the same version, no longer missing.
    tree(folder, ["231015/solo.wav"])
    back = await scan(client, token, source_id)
    library = (await gql(client, LIBRARY, {"b": band_id}, token=token)).ok()["band"]
    tracks = {t["title"]: t["versions"]["nodes"] for t in library["tracks"]["nodes"]}
    assert len(tracks["solo"]) == 1 and tracks["solo"][0]["status"] != "MISSING", back


async def test_bad_files_fail_alone_and_the_scan_goes_on(client, band_with_folder, monkeypatch):
    from backend.library.scanner import local as local_scanner

    token, _, source_id, folder = band_with_folder
    tree(folder, ["a.wav", "b.wav", "c.wav"])
    # A name that is not valid UTF-8 (a disk written by another system).
    write_wav(Path(os.fsdecode(bytes(folder) + b"/bad-\xff-name.wav")), seconds=0.1)
    real_inspect = local_scanner.inspect_file

    def flaky_inspect(root, path):
        # Tests run as root, which reads any file: inject what an unreadable file does.
        if path == "b.wav":
            raise PermissionError(13, "Permission denied")
        return real_inspect(root, path)

    monkeypatch.setattr(local_scanner, "inspect_file", flaky_inspect)
    result = await scan(client, token, source_id)
    assert result["status"] == "SUCCEEDED"
    assert (result["added"], result["failed"]) == (2, 2), result
    problems = {error["path"]: error["message"] for error in result["errors"]}
    assert problems["b.wav"] == "Permission denied."
    assert any("not valid text" in message for message in problems.values())


async def test_add_source_outside_allowed_roots_is_refused(client, band_with_folder):
    token, band_id, _, folder = band_with_folder
    for root in ("/etc", "relative/path", str(folder / "missing")):
        refused = await gql(client, ADD_SOURCE, {"band": band_id, "root": root}, token=token)
        assert refused.codes == ["BAD_USER_INPUT"], root
        assert refused.errors[0]["extensions"]["field"] == "root"
    link = folder / "escape"
    link.symlink_to("/etc")
    refused = await gql(client, ADD_SOURCE, {"band": band_id, "root": str(link)}, token=token)
    assert refused.codes == ["BAD_USER_INPUT"]


async def test_a_folder_path_the_file_system_cannot_hold_is_refused(client, band_with_folder):
    """Found by bench/fuzz.py: these were INTERNAL_SERVER_ERRORs (ENAMETOOLONG from
    is_dir, a symlink loop from resolve, a path too long for sources.root)."""
    token, band_id, _, folder = band_with_folder
    (folder / "loop").symlink_to(folder / "loop")
    for root in (
        str(folder / ("a" * 300)),  # one name longer than any file system allows
        str(folder) + "/c" * 1100,  # longer than sources.root holds
        str(folder / "loop"),
        str(folder / "loop" / "deeper"),
    ):
        refused = await gql(client, ADD_SOURCE, {"band": band_id, "root": root}, token=token)
        assert refused.codes == ["BAD_USER_INPUT"], (root[-40:], refused.errors)
        assert refused.errors[0]["extensions"]["field"] == "root"


async def _job(client, token, job_id) -> dict:
    for _ in range(400):
        state = (await gql(client, JOB, {"id": job_id}, token=token)).ok()["job"]
        if state["status"] in {"SUCCEEDED", "FAILED", "CANCELLED"}:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(state)


async def test_two_scans_at_once_are_one_scan(client, band_with_folder):
    token, band_id, source_id, folder = band_with_folder
    tree(folder, [f"240101/song{n % 7}/take{n}.wav" for n in range(150)])
    first, second = await asyncio.gather(
        gql(client, SCAN, {"s": source_id}, token=token),
        gql(client, SCAN, {"s": source_id}, token=token),
    )
    assert first.ok()["scanSource"]["id"] == second.ok()["scanSource"]["id"]
    result = await _job(client, token, first.ok()["scanSource"]["id"])
    assert result["added"] == 150
    count = "query($b: ID!) { band(id: $b) { sessions { nodes { versionCount } } tracks { totalCount } } }"
    totals = (await gql(client, count, {"b": band_id}, token=token)).ok()["band"]
    assert totals["tracks"]["totalCount"] == 7
    assert totals["sessions"]["nodes"] == [{"versionCount": 150}]


async def test_cancel_stops_a_running_scan_and_keeps_what_it_indexed(client, band_with_folder):
    token, band_id, source_id, folder = band_with_folder
    tree(folder, [f"240102/jam/take{n}.wav" for n in range(1500)])
    job_id = (await gql(client, SCAN, {"s": source_id}, token=token)).ok()["scanSource"]["id"]
    cancel = "mutation($id: ID!) { cancelJob(id: $id) { id } }"
    assert (await gql(client, cancel, {"id": job_id}, token=token)).ok()
    result = await _job(client, token, job_id)
    assert result["status"] == "CANCELLED", result
    assert result["added"] < 1500
    count = "query($b: ID!) { band(id: $b) { sessions { nodes { versionCount } } } }"
    sessions = (await gql(client, count, {"b": band_id}, token=token)).ok()["band"]["sessions"]
    indexed = sessions["nodes"][0]["versionCount"] if sessions["nodes"] else 0
    assert indexed == result["added"]
    # Cancelling an ended job says so.
    again = await gql(client, cancel, {"id": job_id}, token=token)
    assert again.codes == ["BAD_USER_INPUT"]


async def test_removing_a_source_stops_its_scan(client, band_with_folder):
    token, band_id, source_id, folder = band_with_folder
    tree(folder, [f"240103/jam/take{n}.wav" for n in range(1500)])
    job_id = (await gql(client, SCAN, {"s": source_id}, token=token)).ok()["scanSource"]["id"]
    removed = await gql(
        client, "mutation($id: ID!) { removeSource(id: $id) }", {"id": source_id}, token=token
    )
    assert removed.ok()
    result = await _job(client, token, job_id)
    assert result["status"] == "CANCELLED", result
    # Nothing the scan indexed is live: the source's takes are all MISSING.
    library = (await gql(client, LIBRARY, {"b": band_id}, token=token)).ok()["band"]
    statuses = {v["status"] for t in library["tracks"]["nodes"] for v in t["versions"]["nodes"]}
    assert statuses <= {"MISSING"}, statuses


async def test_a_folder_that_cannot_name_a_track_fails_alone(client, band_with_folder):
    token, _, source_id, folder = band_with_folder
    # A folder named with a control character only: no track can have that title.
    tree(folder, ["231015/groove/take1.wav", "231015/\x01/take1.wav"])
    result = await scan(client, token, source_id)
    assert result["status"] == "SUCCEEDED", result
    assert (result["added"], result["failed"]) == (1, 1), result
    assert result["errors"] == [
        {"path": "231015/\x01/take1.wav", "message": "Its folder or name cannot be a track title."}
    ]


FREEZING = """
import gc
from backend.library.scanner.scan import _young_objects_only as scanning

with scanning():  # a worker process: what was there is frozen while the scan runs
    assert gc.get_freeze_count() > 0
    with scanning():  # a second scan at once changes nothing
        pass
    assert gc.get_freeze_count() > 0
assert gc.get_freeze_count() == 0  # and back to normal after it
gc.freeze()  # the api process freezes what it loaded, for good (backend/app.py)
frozen = gc.get_freeze_count()
with scanning():
    pass
assert gc.get_freeze_count() >= frozen, "a scan undid the api's freeze"
gc.unfreeze()
with scanning():
    started = [[] for _ in range(1000)]
    gc.freeze()  # the api starting up while a scan runs
assert gc.get_freeze_count() > 0, "a scan undid a freeze made meanwhile"
"""


def test_a_scan_freezes_the_heap_only_where_nothing_is_frozen():
    ran = subprocess.run(
        [sys.executable, "-c", FREEZING], capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
