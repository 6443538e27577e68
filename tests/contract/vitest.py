"""Running a vitest configuration of frontend-contract/ against the seeded Backline."""

from __future__ import annotations

import os
import signal
import subprocess

from tests.contract.conftest import FRONTEND


def run_vitest(config: str, seed_file: str, *, timeout: float, **env: str) -> tuple[int, str]:
    """vitest's exit code (-1: cut off after ``timeout`` seconds) and output. It runs in
    a process group of its own, so a hung run is ended with all it started (workers,
    Vite, Chromium)."""
    environment = {**os.environ, "BACKLINE_CONTRACT_SEED": seed_file, "NO_COLOR": "1", **env}
    environment.pop("FORCE_COLOR", None)
    process = subprocess.Popen(
        ["npx", "vitest", "run", "--config", config],
        cwd=FRONTEND,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return -1, f"vitest did not finish within {timeout:.0f} s\n{output}"
    return process.returncode, output
