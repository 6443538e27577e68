"""The seeded Backline the JavaScript contract tests run against, once per session.

The tests need Node.js (node and npx on PATH) and frontend-contract/node_modules
(`npm ci` there). Without them they skip, saying why; with CI=true (as .ci/run sets) a
missing piece fails the run instead, the rule tests/services.py applies to PostgreSQL
and Redis."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.contract.seeded_backline import PROJECT_ROOT, HarnessError, SeededBackline
from tests.contract.seeded_backline import seeded_backline as start_seeded_backline
from tests.services import IN_CI

FRONTEND = PROJECT_ROOT / "frontend-contract"


def require(what: str, hint: str) -> None:
    """Skip (or, in CI, fail) for a missing prerequisite."""
    message = f"{what} is missing"
    if IN_CI:
        pytest.fail(f"{message}; CI requires it ({hint}).", pytrace=False)
    pytest.skip(f"{message}; {hint} to run the JavaScript contract tests.")


def check_node_toolchain() -> None:
    for program in ("node", "npx"):
        if shutil.which(program) is None:
            require(f"Node.js ({program} on PATH)", "install Node.js 20.19 or newer")
    if not (FRONTEND / "node_modules" / ".bin" / "vitest").exists():
        require("frontend-contract/node_modules", "run `npm ci` in frontend-contract/")


@pytest.fixture(scope="session")
def seeded_backline() -> Iterator[SeededBackline]:
    """A real Backline (subprocess, embedded mode) with a user, a band and scanned takes;
    ``.seed`` is the seed dict, ``.seed_file`` the JSON file holding it."""
    check_node_toolchain()
    try:
        with start_seeded_backline() as backline:
            yield backline
    except HarnessError as error:
        pytest.fail(f"the seeded Backline did not start: {error}", pytrace=False)
