"""A real S3 server on loopback for tests: moto's ThreadedMotoServer on a free port.

    with running_s3_server() as endpoint_url:   # "http://127.0.0.1:<port>"
        ...

The server runs in a child process of its own (``python -m tests.s3_server``), not in a
thread of the tests' process: moto keeps every object in memory, and the storage tests
measure the memory the client side uses while streaming 50 MB; in-process, moto's copies
would count too. It also keeps moto's global state and its CPU work out of the tests' GIL.
The child prints its port on stdout and stops when its stdin closes, so it cannot outlive
the tests even if they are killed.

Any access key and secret work (moto does not check signatures by default).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ACCESS_KEY = "backline-test"
SECRET_KEY = "backline-test-secret"
REGION = "us-east-1"

_ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def running_s3_server(*, start_timeout: float = 30.0) -> Iterator[str]:
    """Start moto in server mode on 127.0.0.1:<free port>; yield its endpoint URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.s3_server"],
        cwd=_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = _read_line(process, start_timeout)
        yield f"http://127.0.0.1:{int(line)}"
    finally:
        if process.stdin is not None:
            process.stdin.close()  # the child's signal to stop
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - only when moto hangs
            process.kill()
            process.wait(timeout=5)


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The child's first line (its port), or an error if it says nothing in time."""
    assert process.stdout is not None
    stdout = process.stdout
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not result or not result[0].strip():
        process.kill()
        raise RuntimeError(f"moto server did not start within {timeout:g} s")
    return result[0].strip()


def _serve() -> None:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin (or dies)
    finally:
        server.stop()


if __name__ == "__main__":
    _serve()
