"""`backline scan PATH --band BAND`: a folder indexed from the command line, with the
embedded workers, the job's progress events drawn as a progress bar and a summary.

The session's app already runs this process's one set of embedded workers, so the
command runs in a child interpreter: ``backend.cli.main`` called directly there (several
runs, one process: the command also cleans up after itself), and once as the installed
``backline`` entry point."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.accounts import service as accounts_service
from backend.bands import service as bands_service
from backend.bands.access import BandAccess
from backend.core.database import create_engine, create_session_factory, utcnow
from backend.core.migrations import upgrade_to_head
from backend.jobs.models import Job, JobKind, JobStatus
from backend.jobs.progress_bar import ProgressBar
from backend.library.models import RehearsalSession, Source, SourceKind, Track, TrackVersion
from tests import services
from tests.audio_fixtures import write_wav

ROOT = Path(__file__).resolve().parents[1]
TAKES = [
    "231015/groove/take1.wav",
    "231015/groove/take2.wav",
    "231022/groove/take1.wav",
    "231022/new_song.wav",
]


@dataclass
class Ran:
    code: int
    out: str
    err: str


# What runs in the child interpreter (module level, so the child can import it).


def _cli_in_child(args: list[str], env: dict[str, str], cwd: str, ctrl_c: bool, remove: str) -> Ran:
    for name in [name for name in os.environ if name.startswith("BACKLINE_")]:
        del os.environ[name]
    os.environ.update(env)
    os.chdir(cwd)
    from backend import cli, scan_cli

    with contextlib.ExitStack() as patches:
        if ctrl_c:
            # Ctrl-C as soon as the scan has listed its files.
            update = ProgressBar.update

            def press_ctrl_c(bar: ProgressBar, snapshot: dict) -> None:
                update(bar, snapshot)
                if snapshot.get("total") and not getattr(bar, "pressed", False):
                    bar.pressed = True  # type: ignore[attr-defined]
                    os.kill(os.getpid(), signal.SIGINT)

            patches.enter_context(_patched(ProgressBar, "update", press_ctrl_c))
        if remove:
            # The folder goes away between the source check and the scan.
            request = scan_cli.request_scan

            async def remove_then_request(**kwargs):
                os.rename(remove, remove + ".gone")
                return await request(**kwargs)

            patches.enter_context(_patched(scan_cli, "request_scan", remove_then_request))
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(args)
    return Ran(code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def _patched(owner: object, name: str, value: object) -> Iterator[None]:
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


# Fixtures and helpers (in the test process).


@pytest.fixture(scope="module")
def child() -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        yield pool


@dataclass
class Place:
    """A data dir with a migrated SQLite database (or the given one), a library folder
    inside the allowed roots and a band 'fuzz' (plus 'other')."""

    data_dir: Path
    library: Path
    env: dict[str, str]
    session_factory: async_sessionmaker[AsyncSession]
    band_id: int


@pytest.fixture
async def place(tmp_path: Path) -> AsyncIterator[Place]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    url = f"sqlite+aiosqlite:///{data_dir / 'backline.db'}"
    async with _place(data_dir, url, {"BACKLINE_DATA_DIR": str(data_dir)}) as made:
        yield made


@contextlib.asynccontextmanager
async def _place(data_dir: Path, url: str, env: dict[str, str]) -> AsyncIterator[Place]:
    library = data_dir / "library"
    library.mkdir()
    engine = create_engine(url)
    try:
        await upgrade_to_head(engine)
        session_factory = create_session_factory(engine)
        async with session_factory() as db_session:
            user = await accounts_service.register(
                db_session=db_session,
                email="kim@example.org",
                password="a passphrase",
                handle="kim",
            )
            access = BandAccess(user_id=user.id)
            band = await bands_service.create(db_session=db_session, access=access, name="Fuzz")
            await bands_service.create(db_session=db_session, access=access, name="Other")
            await db_session.commit()
        env = {"BACKLINE_SECRET_KEY": "test-secret-key-that-is-long-enough", **env}
        yield Place(data_dir, library, env, session_factory, band.id)
    finally:
        await engine.dispose()


async def backline(
    child: ProcessPoolExecutor,
    env: dict[str, str],
    *args: str,
    cwd: Path = ROOT,
    ctrl_c: bool = False,
    remove: str = "",
) -> Ran:
    """``backend.cli.main(args)`` in the child, with these BACKLINE_ settings."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        child, _cli_in_child, list(args), env, str(cwd), ctrl_c, remove
    )


def rehearsals(place: Place, takes: list[str] = TAKES) -> Path:
    folder = place.library / "fuzz"
    for relative in takes:
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        write_wav(path, seconds=0.2, tone_hz=200 + sum(map(ord, relative)) % 800)
    (folder / "notes.txt").write_text("setlist")
    return folder


def badly_named(folder: Path, how_many: int) -> None:
    """Files whose names are not valid text: each one fails alone."""
    for number in range(how_many):
        name = os.path.join(os.fsencode(folder), b"bad-\xff-%02d.wav" % number)
        with open(name, "wb") as file:
            file.write(b"RIFF")


async def count(place: Place, model: type) -> int:
    async with place.session_factory() as db_session:
        return await db_session.scalar(select(func.count()).select_from(model))


async def jobs(place: Place, kind: JobKind = JobKind.SCAN) -> list[Job]:
    async with place.session_factory() as db_session:
        return list(await db_session.scalars(select(Job).where(Job.kind == kind).order_by(Job.id)))


# The command.


async def test_scan_indexes_the_folder_then_a_rerun_adds_nothing(child, place):
    folder = rehearsals(place)
    first = await backline(child, place.env, "scan", str(folder), "--band", "fuzz")
    assert first.code == 0, first
    assert first.out == (
        f"Scan of {folder} for band 'fuzz' succeeded: 4 added, 0 updated, 1 skipped, 0 failed.\n"
    )
    assert f"Scanning {folder} for band 'fuzz' (a new source 'fuzz')" in first.err
    # Not a terminal: a line per stage, the last one from the job's final event.
    last = first.err.splitlines()[-1]
    assert last.startswith(
        "Scanning fuzz [########################]  5/5 100%  4 added, 0 updated, 1 skipped, 0 failed"
    )
    assert last.endswith("succeeded")
    assert "\r" not in first.err

    assert await count(place, TrackVersion) == 4
    async with place.session_factory() as db_session:
        dates = await db_session.scalars(select(RehearsalSession.date).order_by("date"))
        assert [f"{day:%y%m%d}" for day in dates] == ["231015", "231022"]
        titles = await db_session.scalars(select(Track.title).order_by(Track.title))
        assert list(titles) == ["groove", "new song"]
        source = await db_session.scalar(select(Source))
        assert (source.band_id, source.name, source.root) == (place.band_id, "fuzz", str(folder))
    [job] = await jobs(place)
    assert (job.status, job.source_id, job.created_by_id) == (JobStatus.SUCCEEDED, source.id, None)
    # Each take's media work is queued and left unsent, for the server's workers (its
    # sweeper sends it): this command's threads end with it.
    probes = await jobs(place, JobKind.PROBE)
    assert [(p.status, p.enqueued_at) for p in probes] == [(JobStatus.QUEUED, None)] * 4

    again = await backline(child, place.env, "scan", str(folder), "--band", "fuzz", "--name", "x")
    assert again.code == 0, again
    assert "succeeded: 0 added, 0 updated, 1 skipped, 0 failed." in again.out
    assert "(its source 'fuzz')" in again.err
    assert "5/5" in again.err
    assert (await count(place, TrackVersion), await count(place, Source)) == (4, 1)
    assert [job.status for job in await jobs(place)] == [JobStatus.SUCCEEDED] * 2


async def test_band_by_id_name_watch_and_a_relative_path(child, place):
    folder = rehearsals(place, TAKES[:1])
    ran = await backline(
        child,
        place.env,
        *("scan", "fuzz", "--band", str(place.band_id), "--name", "Proberaum", "--watch"),
        cwd=place.library,
    )
    assert ran.code == 0, ran
    assert "succeeded: 1 added" in ran.out
    async with place.session_factory() as db_session:
        source = await db_session.scalar(select(Source))
    assert (source.name, source.root, source.watch) == ("Proberaum", str(folder), True)


async def test_errors_are_listed_twenty_at_most(child, place):
    folder = rehearsals(place, TAKES[:1])
    badly_named(folder, 23)
    ran = await backline(child, place.env, "scan", str(folder), "--band", "fuzz")
    assert ran.code == 0, ran  # the scan succeeded; these files did not
    lines = ran.out.splitlines()
    assert lines[0].endswith("succeeded: 1 added, 0 updated, 1 skipped, 23 failed.")
    assert lines[1] == "23 errors:"
    assert len(lines) == 2 + 20 + 1
    assert all("broken encoding" in line for line in lines[2:22])
    assert lines[-1] == "  ... and 3 more."


async def test_a_failed_scan_exits_1(child, place):
    folder = rehearsals(place, TAKES[:1])
    ran = await backline(
        child, place.env, "scan", str(folder), "--band", "fuzz", remove=str(folder)
    )
    assert ran.code == 1, ran
    assert f"Scan of {folder} for band 'fuzz' failed: " in ran.out
    assert [job.status for job in await jobs(place)] == [JobStatus.FAILED]


async def test_ctrl_c_cancels_the_scan_and_keeps_what_was_indexed(child, place):
    folder = place.library / "many" / "231015"
    folder.mkdir(parents=True)
    take = write_wav(folder / "take.wav", seconds=0.05).read_bytes()
    # Enough files that the scan is still running when Ctrl-C's cancel lands.
    for number in range(4000):  # distinct bytes, so distinct takes
        (folder / f"take{number:03d}.wav").write_bytes(take[:-4] + number.to_bytes(4, "little"))
    ran = await backline(
        child, place.env, "scan", str(folder.parent), "--band", "fuzz", ctrl_c=True
    )
    assert ran.code == 130, ran
    assert "Cancelling the scan; what was indexed stays" in ran.err
    [job] = await jobs(place)
    assert job.status == JobStatus.CANCELLED, ran
    assert "cancelled: Cancelled; what was indexed stays." in ran.out
    assert job.added < 4001
    assert await count(place, TrackVersion) == job.added
    # The next scan picks up where this one stopped.
    rest = await backline(child, place.env, "scan", str(folder.parent), "--band", "fuzz")
    assert rest.code == 0, rest
    assert await count(place, TrackVersion) == 4001


async def test_a_scan_already_under_way_is_followed_not_cancelled(child, place):
    folder = rehearsals(place, TAKES[:1])
    async with place.session_factory() as db_session:
        source = Source(
            band_id=place.band_id, kind=SourceKind.LOCAL_FOLDER, name="f", root=str(folder)
        )
        db_session.add(source)
        await db_session.flush()
        # Another process's scan of the folder, half way through.
        running = Job(
            band_id=place.band_id,
            kind=JobKind.SCAN,
            status=JobStatus.RUNNING,
            source_id=source.id,
            total=10,
            processed=3,
            errors=[],
            payload={},
            started_at=utcnow(),
            heartbeat_at=utcnow(),
        )
        db_session.add(running)
        await db_session.commit()
    ran = await backline(child, place.env, "scan", str(folder), "--band", "fuzz", ctrl_c=True)
    assert ran.code == 130, ran
    assert f"A scan of this folder is under way (job {running.id})." in ran.err
    assert "3/10" in ran.err
    assert f"Stopped following job {running.id}; the scan goes on where it runs." in ran.err
    [job] = await jobs(place)
    assert (job.status, job.cancel_requested_at) == (JobStatus.RUNNING, None)


async def test_unknown_band_is_refused_listing_the_bands(child, place):
    folder = rehearsals(place, TAKES[:1])
    ran = await backline(child, place.env, "scan", str(folder), "--band", "nope")
    assert ran.code == 2
    assert ran.err == "backline scan: There is no band 'nope'. Bands: fuzz, other.\n"
    assert (await count(place, Source), await jobs(place)) == (0, [])


async def test_folder_outside_the_allowed_roots_is_refused(child, place, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    ran = await backline(child, place.env, "scan", str(outside), "--band", "fuzz")
    assert ran.code == 2
    assert ran.err == (
        f"backline scan: Backline may only index folders inside {place.library} "
        f"(BACKLINE_ALLOWED_ROOTS). ({outside})\n"
    )
    missing = await backline(
        child, place.env, "scan", str(place.library / "nothing"), "--band", "fuzz"
    )
    assert (missing.code, missing.err.split(":", 1)[1].strip()) == (
        2,
        f"There is no folder at that path. ({place.library / 'nothing'})",
    )
    assert await count(place, Source) == 0


async def test_unmigrated_database_is_refused(child, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {"BACKLINE_DATA_DIR": str(empty)}
    ran = await backline(child, env, "scan", str(empty), "--band", "fuzz")
    assert ran.code == 2
    assert "There is no database at" in ran.err
    assert "Run `backline migrate` first" in ran.err
    assert not (empty / "backline.db").exists()  # nothing was created

    (empty / "backline.db").write_bytes(b"")  # a database, at no migration
    ran = await backline(child, env, "scan", str(empty), "--band", "fuzz")
    assert ran.code == 2
    assert "The database is at migration (none)" in ran.err
    assert "Run `backline migrate` first." in ran.err


async def test_the_installed_command(place):
    folder = rehearsals(place)
    env = {name: value for name, value in os.environ.items() if not name.startswith("BACKLINE_")}
    command = [str(Path(sys.executable).parent / "backline"), "scan", str(folder), "--band", "fuzz"]
    ran = await asyncio.to_thread(
        subprocess.run,
        command,
        env={**env, **place.env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    assert "succeeded: 4 added, 0 updated, 1 skipped, 0 failed." in ran.stdout
    assert "5/5 100%" in ran.stderr
    assert await count(place, TrackVersion) == 4


@pytest.mark.postgres
async def test_on_postgresql(child, tmp_path):
    try:
        url, name = await services.create_postgres_database()
    except (OSError, Exception) as error:  # any connection failure
        services.missing("PostgreSQL on 127.0.0.1:5432", error)
    try:
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        env = {"BACKLINE_DATA_DIR": str(data_dir), "BACKLINE_DATABASE_URL": url}
        async with _place(data_dir, url, env) as place:
            folder = rehearsals(place)
            ran = await backline(child, place.env, "scan", str(folder), "--band", "fuzz")
            assert ran.code == 0, ran
            assert "succeeded: 4 added, 0 updated, 1 skipped, 0 failed." in ran.out
            again = await backline(child, place.env, "scan", str(folder), "--band", "fuzz")
            assert "succeeded: 0 added" in again.out
            assert await count(place, TrackVersion) == 4
            assert await count(place, RehearsalSession) == 2
    finally:
        await services.drop_postgres_database(name)


@pytest.mark.redis
async def test_scaled_out_the_scan_runs_in_a_backline_worker(child, place):
    try:
        await services.redis_available()
    except Exception as error:  # connection refused, timeout, ...
        services.missing("Redis on 127.0.0.1:6379", error)
    folder = rehearsals(place)
    redis = {
        "BACKLINE_REDIS_URL": services.REDIS_URL,
        "BACKLINE_REDIS_PREFIX": f"test-cli-{uuid.uuid4().hex[:8]}",
    }
    env = {name: value for name, value in os.environ.items() if not name.startswith("BACKLINE_")}
    worker = await asyncio.to_thread(
        subprocess.Popen,
        [str(Path(sys.executable).parent / "backline"), "worker", "--processes", "1"],
        env={**env, **place.env, **redis},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ran = await backline(child, {**place.env, **redis}, "scan", str(folder), "--band", "fuzz")
    finally:
        worker.terminate()
        await asyncio.to_thread(worker.wait, 30)
    assert ran.code == 0, ran
    assert "jobs run in `backline worker` processes (Redis)" in ran.err
    assert "succeeded: 4 added, 0 updated, 1 skipped, 0 failed." in ran.out
    assert await count(place, TrackVersion) == 4


# The progress bar on its own.


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def snapshot(status: str = "RUNNING", **counts) -> dict:
    return {"status": status, "finished": status in {"SUCCEEDED", "FAILED", "CANCELLED"}, **counts}


def test_progress_bar_on_a_terminal_redraws_one_line(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    stream, clock = io.StringIO(), Clock()
    bar = ProgressBar(stream, label="Scanning x", tty=True, clock=clock)
    bar.update(snapshot("QUEUED"))
    bar.update(snapshot(total=None))
    clock.now += 2
    bar.update(snapshot(total=10, processed=4, added=3, skipped=1))
    clock.now += 2
    bar.update(snapshot("SUCCEEDED", total=10, processed=10, added=9, skipped=1))
    assert stream.getvalue().split("\r")[1:] == [
        "Scanning x: queued, waiting for a worker\x1b[K",
        "Scanning x: listing files\x1b[K",
        "Scanning x [##########--------------]  4/10  40%  3 added, 0 updated, 1 skipped, "
        "0 failed  2.0 files/s  ~3s left\x1b[K",
        "Scanning x [########################]  10/10 100%  9 added, 0 updated, 1 skipped, "
        "0 failed  2.5 files/s  succeeded\x1b[K\n",
    ]


def test_progress_bar_in_a_log_writes_a_line_now_and_then():
    stream, clock = io.StringIO(), Clock()
    bar = ProgressBar(stream, label="s", tty=False, every=5.0, clock=clock)
    bar.update(snapshot(total=None))
    for processed in range(1, 10):
        clock.now += 1
        bar.update(snapshot(total=10, processed=processed, added=processed))
    clock.now += 1
    bar.update(snapshot("SUCCEEDED", total=10, processed=10, added=10))
    lines = stream.getvalue().splitlines()
    # A line per stage (listing, then counting), one after 5 s, and the end.
    assert lines[0] == "s: listing files"
    assert [re.search(r"\d+/10", line)[0] for line in lines[1:]] == ["1/10", "6/10", "10/10"]
    assert lines[-1].endswith("succeeded")
    assert "\r" not in stream.getvalue()


def test_progress_bar_fits_a_narrow_terminal():
    bar = ProgressBar(io.StringIO(), label="Scanning rehearsals", tty=True, clock=time.monotonic)
    line = bar.render(snapshot(total=1000, processed=10, added=10), width=79)
    assert len(line) <= 79
    assert "10/1000" in line
