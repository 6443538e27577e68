"""The front-end contract proven by real JavaScript clients: Apollo Client, urql and
graphql-ws (frontend-contract/tests/*.test.ts, run by vitest) against a real Backline."""

from __future__ import annotations

from tests.contract.seeded_backline import SeededBackline
from tests.contract.vitest import run_vitest

# The whole vitest run takes ~10 s; a hang is cut off well before CI's own limit.
VITEST_TIMEOUT = 180.0


def test_javascript_clients(seeded_backline: SeededBackline) -> None:
    code, output = run_vitest(
        "vitest.config.ts", str(seeded_backline.seed_file), timeout=VITEST_TIMEOUT
    )
    assert code == 0, (
        f"vitest exited with {code}:\n{output}\n"
        f"--- the server's log (last lines) ---\n{seeded_backline.server.log_tail()}"
    )
