"""A real WebDAV server on loopback for tests: wsgidav serving a folder, behind basic auth,
mounted under a Nextcloud-like multi-segment path so that root-path handling is exercised.

    with running_webdav_server(tmp_path) as url:   # "http://127.0.0.1:<port>/remote.php/dav/files/kim/"
        ...

``folder_etags=True`` gives folders an etag that changes whenever anything below them
changes, as Nextcloud's do (wsgidav's own folders have none); ``requests`` collects
``(method, path)`` of every request, to see what a client asked for.

Plain (sync) context manager, so it works from sync and async tests and from fixtures of
any scope. The server runs in a daemon thread and is stopped (bounded wait) on exit.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cheroot import wsgi
from wsgidav.error_printer import ErrorPrinter
from wsgidav.fs_dav_provider import FilesystemProvider, FolderResource
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
    folder_etags: bool = False,
    requests: list[tuple[str, str]] | None = None,
) -> Iterator[str]:
    """Serve ``root`` read-write at ``http://127.0.0.1:<free port><mount>/``; yield that URL."""
    mount = "/" + mount.strip("/")
    config: dict[str, Any] = {
        # A multi-segment share is how Nextcloud's root looks; wsgidav puts it in every href.
        "provider_mapping": {
            mount: PropagatingEtagProvider(str(root)) if folder_etags else str(root)
        },
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
    app: Callable[..., Any] = WsgiDAVApp(config)
    if requests is not None:
        app = _logging(app, requests)
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


class PropagatingFolder(FolderResource):
    def get_etag(self) -> str:
        # Like Nextcloud: a folder's etag changes when anything below it changes.
        digest = hashlib.sha256()
        for folder, dirs, files in os.walk(self._file_path):
            dirs.sort()
            for name in sorted(files):
                stat = os.stat(os.path.join(folder, name))
                digest.update(f"{folder}/{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
            digest.update(f"{folder}:{dirs}".encode())
        return digest.hexdigest()[:20]


class PropagatingEtagProvider(FilesystemProvider):
    def get_resource_inst(self, path: str, environ: dict[str, Any]) -> Any:
        resource = super().get_resource_inst(path, environ)
        if isinstance(resource, FolderResource):
            return PropagatingFolder(path, environ, resource._file_path)
        return resource


def _logging(app: Callable[..., Any], log: list[tuple[str, str]]) -> Callable[..., Any]:
    def logged(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        log.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")))
        return app(environ, start_response)

    return logged
