"""The WebDAV share for the scan benchmark, in a process of its own so that the server's
Python does not share a GIL with the scan it serves:

    python -m bench.scan_dav ROOT [--folder-etags]

prints the share's URL on one line, then serves (tests/webdav_server.py: wsgidav on
cheroot, 8 threads, basic auth) until its stdin closes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.webdav_server import running_webdav_server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("--folder-etags", action="store_true")
    args = parser.parse_args()
    with running_webdav_server(args.root, folder_etags=args.folder_etags) as url:
        print(url, flush=True)
        sys.stdin.read()  # until the parent closes the pipe (or dies)


if __name__ == "__main__":
    main()
