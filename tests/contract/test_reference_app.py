"""The reference page (frontend-contract/reference-app/) in headless Chromium against a real,
seeded Backline: frontend-contract/browser/reference-app.test.ts, run by vitest with
playwright-core. It signs in, lists the band's tracks, scans with a live progress bar,
plays a take's HLS through hls.js and draws its waveform; the screenshot it takes
(frontend-contract/artifacts/reference-app.png) is kept by CI.

Needs Debian's Chromium (``apt-get install -y --no-install-recommends chromium``; another
binary through CHROMIUM_PATH) besides what the other contract tests need (Node.js and
frontend-contract/node_modules, checked by the ``seeded_backline`` fixture). Without it
the test skips, saying why; with CI=true a missing Chromium fails the run instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.contract.conftest import FRONTEND
from tests.contract.seeded_backline import SeededBackline
from tests.contract.vitest import run_vitest
from tests.services import IN_CI

SCREENSHOT = FRONTEND / "artifacts" / "reference-app.png"
# Building the page, starting Chromium, a scan and a few seconds of playback: ~10 s on a
# 2-vCPU machine; vitest's own bounds (90 s a step) fire well before this one.
VITEST_TIMEOUT = 300.0


def chromium_path() -> str:
    """The browser to drive: CHROMIUM_PATH, else Debian's; skip (CI: fail) without one."""
    path = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        message = f"Chromium is missing ({path} is not an executable)"
        hint = "apt-get install -y --no-install-recommends chromium, or set CHROMIUM_PATH"
        if IN_CI:
            pytest.fail(f"{message}; CI requires it ({hint}).", pytrace=False)
        pytest.skip(f"{message}; {hint} to run the browser test.")
    return path


def test_reference_app_in_headless_chromium(request: pytest.FixtureRequest) -> None:
    chromium = chromium_path()
    # Asked for only now: no server is started for a test that skips.
    backline: SeededBackline = request.getfixturevalue("seeded_backline")
    SCREENSHOT.unlink(missing_ok=True)
    code, output = run_vitest(
        "vitest.browser.config.ts",
        str(backline.seed_file),
        timeout=VITEST_TIMEOUT,
        CHROMIUM_PATH=chromium,
    )
    if code != 0:
        pytest.fail(
            f"the browser test (vitest.browser.config.ts) exited {code}:\n{output}\n"
            f"--- the server's log (last lines) ---\n{backline.server.log_tail()}",
            pytrace=False,
        )
    assert SCREENSHOT.is_file(), f"the browser test passed but left no {SCREENSHOT}\n{output}"
