"""A real WebDAV server on loopback for tests: wsgidav serving a folder, behind basic auth,
mounted under a Nextcloud-like multi-segment path so that root-path handling is exercised.

    with running_webdav_server(tmp_path) as url:   # "http://127.0.0.1:<port>/remote.php/dav/files/kim/"
        ...

Plain (sync) context manager, so it works from sync and async tests and from fixtures of
any scope. The server runs in a daemon thread and is stopped (bounded wait) on exit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cheroot import wsgi
from wsgidav.error_printer import ErrorPrinter
from wsgidav.http_authenticator import HTTPAuthenticator
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

DEFAULT_MOUNT = "/remote.php/dav/files/kim"
DEFAULT_USER = "kim"
DEFAULT_PASSWORD = "rehearsal-room-42"


@contextmanager
def running_webdav_server(
    root: Path,
    *,
    mount: str = DEFAULT_MOUNT,
    user: str = DEFAULT_USER,
    password: str = DEFAULT_PASSWORD,
) -> Iterator[str]:
    """Serve ``root`` read-write at ``http://127.0.0.1:<free port><mount>/``; yield that URL."""
    mount = "/" + mount.strip("/")
    config: dict[str, Any] = {
        # A multi-segment share is how Nextcloud's root looks; wsgidav puts it in every href.
        "provider_mapping": {mount: str(root)},
        "simple_dc": {"user_mapping": {"*": {user: {"password": password}}}},
        "http_authenticator": {
            "domain_controller": None,  # SimpleDomainController with simple_dc's users
            "accept_basic": True,
            "accept_digest": False,
            "default_to_digest": False,
        },
        # No HTML directory browser: it would add an anonymous "/:dir_browser" asset share.
        "middleware_stack": [ErrorPrinter, HTTPAuthenticator, RequestResolver],
        "verbose": 1,
        "logging": {"enable": False},
    }
    app = WsgiDAVApp(config)
    server = wsgi.Server(("127.0.0.1", 0), app, numthreads=8)
    # Idle keep-alive connections would otherwise hold stop() for the default 5 s.
    server.shutdown_timeout = 1
    server.prepare()  # binds the socket, so the real port is known before serving
    port = server.bind_addr[1]
    thread = threading.Thread(target=server.serve, name=f"webdav-{port}", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}{mount}/"
    finally:
        server.stop()
        thread.join(timeout=5)
        if thread.is_alive():  # pragma: no cover - only when cheroot hangs
            logging.getLogger(__name__).warning("WebDAV test server thread did not stop")
