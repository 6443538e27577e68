"""A real Backline for the JavaScript contract tests: `backline migrate` and `backline
serve` as subprocesses in the embedded mode (SQLite, in-process broker and workers) on a
free loopback port, seeded over HTTP GraphQL with a user, a band and a scanned folder of
generated takes whose media work has finished, and described in a seed JSON file.

Used two ways:

- by pytest, through the session fixture ``seeded_backline`` (tests/contract/conftest.py);
- from a shell, while writing front-end code against it::

      .venv/bin/python -m tests.contract.seeded_backline --seed-file /tmp/seed.json

  which starts and seeds it, writes and prints the seed, and serves until Ctrl-C or
  SIGTERM. Everything (database, storage, library) lives in a temporary folder that is
  removed on the way out.

Seeding uses plain ad hoc GraphQL on purpose: the operations under test are the front
end's, and the harness must not depend on them being finished or right.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests import media_fixtures as mf
from tests.live_server import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BACKLINE = PROJECT_ROOT / ".venv" / "bin" / "backline"
MANIFEST = PROJECT_ROOT / "frontend-contract" / "persisted-documents.json"

# Bounded waits (seconds). Media work on three 7 s takes takes a few seconds; the bounds
# are generous so a slow CI machine fails with a message rather than by luck.
START_TIMEOUT = 60.0
SCAN_TIMEOUT = 30.0
MEDIA_TIMEOUT = 120.0
STOP_TIMEOUT = 10.0

EMAIL = "contract@example.org"
PASSWORD = "a long contract passphrase"
HANDLE = "contract"
BAND_NAME = "The Contract"

# The rehearsal folder (relative to the source's root), as a band would record it: two
# takes of "groove" on 15 Oct 2023 and a loose file, its own track, on 22 Oct.
TAKES = ("231015/groove/take1.wav", "231015/groove/take2.wav", "231022/new_song.wav")
# A take kept outside the source, for tests that copy it in and scan again.
LATE_TAKE = "231029/late_idea.wav"
# Long enough for a tempo: the tracker wants 6 s of onsets (backend/media/analysis/tempo.py).
TAKE_SECONDS = 7.0
SAMPLE_RATE = 44100
TEMPO_BPM = 120.0
KEY = ("A", "minor")

# The CLI's access tokens last a working day: the seed's must outlive a coffee break.
DEV_ACCESS_TOKEN_MINUTES = 12 * 60

T = TypeVar("T")


class HarnessError(RuntimeError):
    """The server did not start, or seeding it failed; the message says what and why."""


# --- audio -------------------------------------------------------------------------------


def write_take(path: Path, *, seed: int) -> Path:
    """A short stereo take with a tempo and a key to find: chords (I-iv-V-i in A minor)
    over a click on every beat at 120 BPM. ``seed`` shifts the mix a little so no two
    takes have the same bytes (a scan recognises a file by its content as well)."""
    chords = mf.chord_progression(
        KEY[0], KEY[1], seconds_per_chord=TAKE_SECONDS / 4, repeats=1, sample_rate=SAMPLE_RATE
    )
    beat = mf.clicks(TEMPO_BPM, TAKE_SECONDS, SAMPLE_RATE)[: len(chords)]
    signal_ = 0.8 * chords + (0.3 + 0.01 * seed) * beat
    path.parent.mkdir(parents=True, exist_ok=True)
    return mf.write_wav(path, mf.stereo(signal_), SAMPLE_RATE)


def write_recordings(library_dir: Path, staging_dir: Path) -> Path:
    """The source's takes, and the late one in the staging folder (returned)."""
    for number, relative in enumerate(TAKES):
        write_take(library_dir / relative, seed=number)
    return write_take(staging_dir / LATE_TAKE, seed=len(TAKES))


# --- the server process -----------------------------------------------------------------


@dataclass(frozen=True)
class ServerOptions:
    """What may differ between one use of the harness and another."""

    # The trusted documents manifest the server loads (the client build's, by default).
    trusted_documents: Path = MANIFEST
    # None: the server's default (15 minutes), as in production. The CLI serves for an
    # afternoon of front-end work, and its seed's access token should last as long.
    access_token_minutes: int | None = None


def server_env(
    data_dir: Path, library_root: Path, port: int, options: ServerOptions
) -> dict[str, str]:
    """Only what the server needs: nothing from the developer's shell (a BACKLINE_REDIS_URL
    or BACKLINE_DATABASE_URL there would take the server out of the embedded mode)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),  # ffmpeg, if on PATH
        "HOME": os.environ.get("HOME", str(data_dir)),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "BACKLINE_DATA_DIR": str(data_dir),
        "BACKLINE_HOST": "127.0.0.1",
        "BACKLINE_PORT": str(port),
        "BACKLINE_ALLOWED_ROOTS": str(library_root),
        # The source is scanned when asked: a test that copies a take in decides when it
        # is indexed (and the watcher's thread has nothing to do).
        "BACKLINE_WATCH_SOURCES": "false",
    }
    if options.trusted_documents.is_file():
        # Named explicitly so a broken manifest stops the start with its reason.
        env["BACKLINE_TRUSTED_DOCUMENTS"] = str(options.trusted_documents)
    if options.access_token_minutes is not None:
        env["BACKLINE_ACCESS_TOKEN_MINUTES"] = str(options.access_token_minutes)
    return env


def migrate(env: dict[str, str], log_dir: Path) -> None:
    result = subprocess.run(
        [str(BACKLINE), "migrate"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )
    (log_dir / "migrate.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise HarnessError(f"`backline migrate` failed ({result.returncode}):\n{result.stderr}")


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str  # http://127.0.0.1:PORT
    log: Path  # the server's stdout and stderr

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise HarnessError(f"backline serve exited with {code}. Its output:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM (uvicorn shuts down cleanly, the worker threads with it), then SIGKILL."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)


def spawn_server(env: dict[str, str], log: Path) -> Server:
    with log.open("wb") as out:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [str(BACKLINE), "serve"],
            env=env,
            cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Server(process, f"http://127.0.0.1:{env['BACKLINE_PORT']}", log)


def wait_until_ready(server: Server, timeout: float = START_TIMEOUT) -> None:
    """Poll /readyz (the database answers) until it says 200, the process dies or time
    runs out."""
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            response = httpx.get(f"{server.url}/readyz", timeout=2)
            if response.status_code == 200:
                return
            last_error = f"{response.status_code} {response.text}"
        except httpx.HTTPError as error:
            last_error = f"{type(error).__name__}: {error}"
        time.sleep(0.1)
    server.stop()
    raise HarnessError(
        f"backline serve was not ready after {timeout:.0f} s ({last_error}). "
        f"Its output:\n{server.log_tail()}"
    )


def start_server(
    data_dir: Path, library_root: Path, options: ServerOptions, attempts: int = 3
) -> Server:
    """Migrated and ready. The free port may be taken between asking and binding; a
    server that dies saying so is started again on another one."""
    log = data_dir / "logs" / "serve.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    migrate(server_env(data_dir, library_root, 0, options), log.parent)
    for attempt in range(attempts):
        server = spawn_server(server_env(data_dir, library_root, free_port(), options), log)
        try:
            wait_until_ready(server)
            return server
        except HarnessError:
            taken = "address already in use" in server.log_tail().lower()
            if not taken or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


# --- seeding over GraphQL -----------------------------------------------------------------


class GraphQL:
    """Plain POSTs of ad hoc documents; any error is a HarnessError naming the operation."""

    def __init__(self, url: str, server: Server) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)
        self.server = server
        self.token: str | None = None

    def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = self.http.post(
                "/graphql", json={"query": query, "variables": variables}, headers=headers
            )
            body = response.json()
        except (httpx.HTTPError, ValueError) as error:
            self.server.check_alive()
            raise HarnessError(f"seeding request failed: {error}\n{query}") from error
        if body.get("errors") or body.get("data") is None:
            raise HarnessError(
                f"seeding request answered {response.status_code} with errors "
                f"{json.dumps(body.get('errors'), indent=2)}\n{query}"
            )
        return body["data"]

    def close(self) -> None:
        self.http.close()


def poll(
    what: str, check: Callable[[], T | None], server: Server, timeout: float, interval: float
) -> T:
    """``check()`` until it returns something other than None; HarnessError after
    ``timeout`` seconds (or as soon as the server dies)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        server.check_alive()
        if time.monotonic() > deadline:
            raise HarnessError(
                f"{what}: not done after {timeout:.0f} s. Server output:\n{server.log_tail()}"
            )
        time.sleep(interval)


REGISTER = """mutation($input: RegisterInput!) { register(input: $input) {
  accessToken refreshToken user { id handle } } }"""
CREATE_BAND = """mutation($name: String!) { createBand(input: {name: $name}) { id slug } }"""
ADD_SOURCE = """mutation($input: AddSourceInput!) { addSource(input: $input) { id } }"""
SCAN = """mutation($sourceId: ID!) { scanSource(sourceId: $sourceId) { id status } }"""
JOB = """query($id: ID!) { job(id: $id) { status added failed message errors { path message } } }"""
VERSIONS = """query($id: ID!) { band(id: $id) { tracks(first: 10) { nodes { id title
  versions(first: 10) { nodes { id label path status failureReason } } } } } }"""
CREATE_API_TOKEN = """mutation($name: String!, $scopes: [String!], $persistedOnly: Boolean) {
  createApiToken(name: $name, scopes: $scopes, persistedOnly: $persistedOnly) { token } }"""
LOGIN = """mutation($input: LoginInput!) { login(input: $input) { accessToken refreshToken } }"""


def wait_for_scan(gql: GraphQL, job_id: str) -> None:
    def finished() -> dict[str, Any] | None:
        job = gql(JOB, id=job_id)["job"]
        return job if job["status"] not in {"QUEUED", "RUNNING"} else None

    job = poll("the scan", finished, gql.server, SCAN_TIMEOUT, 0.1)
    if job["status"] != "SUCCEEDED" or job["failed"] or job["added"] != len(TAKES):
        raise HarnessError(f"the scan did not index the {len(TAKES)} takes: {job}")


def wait_for_media(gql: GraphQL, band_id: str) -> list[dict[str, Any]]:
    """Every take READY (probed, analysed, transcoded): the tracks with their versions."""

    def all_ready() -> list[dict[str, Any]] | None:
        tracks = gql(VERSIONS, id=band_id)["band"]["tracks"]["nodes"]
        versions = [v for track in tracks for v in track["versions"]["nodes"]]
        failed = [v for v in versions if v["status"] in {"FAILED", "MISSING"}]
        if failed:
            raise HarnessError(f"media work failed: {failed}")
        ready = len(versions) == len(TAKES) and all(v["status"] == "READY" for v in versions)
        return tracks if ready else None

    return poll("media work on the takes", all_ready, gql.server, MEDIA_TIMEOUT, 0.25)


def seed(server: Server, library_dir: Path, staging_file: Path) -> dict[str, Any]:
    """Register, make the band, index the library, wait for its media work; the seed."""
    gql = GraphQL(server.url, server)
    try:
        account = {"email": EMAIL, "password": PASSWORD, "handle": HANDLE}
        registered = gql(REGISTER, input=account)["register"]
        gql.token = registered["accessToken"]
        band = gql(CREATE_BAND, name=BAND_NAME)["createBand"]
        source = gql(
            ADD_SOURCE,
            input={
                "bandId": band["id"],
                "kind": "LOCAL_FOLDER",
                "name": "Rehearsals",
                "root": str(library_dir),
            },
        )["addSource"]
        wait_for_scan(gql, gql(SCAN, sourceId=source["id"])["scanSource"]["id"])
        tracks = wait_for_media(gql, band["id"])
        persisted_only = gql(
            CREATE_API_TOKEN,
            name="contract tests (persisted only)",
            scopes=["read", "write"],
            persistedOnly=True,
        )["createApiToken"]["token"]
        # The seed's token pair comes from a login, as an SPA's would; made last, so it
        # has all of its lifetime left when the tests start.
        session = gql(LOGIN, input={"email": EMAIL, "password": PASSWORD})["login"]
    finally:
        gql.close()
    ws_url = server.url.replace("http://", "ws://", 1)
    return {
        "url": server.url,
        "graphqlUrl": f"{server.url}/graphql",
        "wsUrl": f"{ws_url}/graphql",
        "email": EMAIL,
        "password": PASSWORD,
        "handle": HANDLE,
        "accessToken": session["accessToken"],
        "refreshToken": session["refreshToken"],
        "persistedOnlyToken": persisted_only,
        "bandId": band["id"],
        "bandSlug": band["slug"],
        "sourceId": source["id"],
        "libraryDir": str(library_dir),
        "stagingFile": str(staging_file),
        "stagingTarget": str(library_dir / LATE_TAKE),
        "trackIds": [track["id"] for track in tracks],
        "versionIds": [v["id"] for track in tracks for v in track["versions"]["nodes"]],
    }


# --- putting it together -----------------------------------------------------------------


@dataclass(frozen=True)
class SeededBackline:
    seed: dict[str, Any]
    seed_file: Path
    server: Server


@contextlib.contextmanager
def seeded_backline(
    seed_file: Path | None = None, options: ServerOptions | None = None
) -> Iterator[SeededBackline]:
    """A started, seeded Backline; stopped and its temporary folder removed on exit.
    ``seed_file`` defaults to a file in that folder."""
    root = Path(tempfile.mkdtemp(prefix="backline-contract-"))
    server: Server | None = None
    try:
        data_dir, library_dir, staging_dir = root / "data", root / "library", root / "staging"
        staging_file = write_recordings(library_dir, staging_dir)
        server = start_server(data_dir, library_dir, options or ServerOptions())
        seed_data = seed(server, library_dir, staging_file)
        seed_file = seed_file or root / "seed.json"
        seed_file.write_text(json.dumps(seed_data, indent=2) + "\n")
        yield SeededBackline(seed_data, seed_file, server)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _stop_on_sigterm() -> None:
    """SIGTERM ends the CLI as Ctrl-C does, so the context manager cleans up."""

    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.contract.seeded_backline",
        description="Start a seeded Backline for front-end work; serve until Ctrl-C.",
    )
    parser.add_argument("--seed-file", type=Path, required=True, help="where to write the seed")
    parser.add_argument(
        "--trusted-documents",
        type=Path,
        default=MANIFEST,
        help="the manifest the server trusts (default: %(default)s)",
    )
    parser.add_argument(
        "--access-token-minutes",
        type=int,
        default=DEV_ACCESS_TOKEN_MINUTES,
        help="lifetime of access tokens, the seed's too (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    _stop_on_sigterm()
    seed_file: Path = args.seed_file.resolve()
    try:
        options = ServerOptions(args.trusted_documents.resolve(), args.access_token_minutes)
        with seeded_backline(seed_file, options) as backline:
            print(json.dumps(backline.seed, indent=2), flush=True)
            print(
                f"Seeded Backline at {backline.seed['graphqlUrl']}; seed in {seed_file}. "
                f"Server log: {backline.server.log}. Ctrl-C stops it.",
                flush=True,
            )
            while backline.server.process.poll() is None:
                time.sleep(0.5)
            backline.server.check_alive()  # it died on its own: say why
    except KeyboardInterrupt:
        pass
    except HarnessError as error:
        print(error, file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(FileNotFoundError):
            seed_file.unlink()  # its tokens and paths are gone with the server
    return 0


if __name__ == "__main__":
    sys.exit(main())
