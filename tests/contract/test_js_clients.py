"""The front-end contract proven by real JavaScript clients: Apollo Client, urql and
graphql-ws (frontend-contract/tests/*.test.ts, run by vitest) against a real Backline."""

from __future__ import annotations

import os
import signal
import subprocess

from tests.contract.conftest import FRONTEND
from tests.contract.seeded_backline import SeededBackline

# The whole vitest run takes ~10 s; a hang is cut off well before CI's own limit.
VITEST_TIMEOUT = 180.0


def run_vitest(seed_file: str) -> tuple[int, str]:
    """vitest's exit code and output. It runs in a process group of its own, so a hung
    run is ended with all its workers."""
    env = {**os.environ, "BACKLINE_CONTRACT_SEED": seed_file, "NO_COLOR": "1"}
    env.pop("FORCE_COLOR", None)
    process = subprocess.Popen(
        ["npx", "vitest", "run", "--config", "vitest.config.ts"],
        cwd=FRONTEND,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=VITEST_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return -1, f"vitest did not finish within {VITEST_TIMEOUT:.0f} s\n{output}"
    return process.returncode, output


def test_javascript_clients(seeded_backline: SeededBackline) -> None:
    code, output = run_vitest(str(seeded_backline.seed_file))
    assert code == 0, (
        f"vitest exited with {code}:\n{output}\n"
        f"--- the server's log (last lines) ---\n{seeded_backline.server.log_tail()}"
    )
