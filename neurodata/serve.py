"""A small read-only HTTP service for a mirror folder (see ``neurodata.mirror``).

The fetcher consumes it directly as ``--mirror http://host:port`` / ``NEURODATA_MIRROR``. Built on
the standard library's ``ThreadingHTTPServer``. What it answers:

- ``GET``/``HEAD /<dataset>/<file>`` for files listed in ``MANIFEST.json``: ``200`` with
  ``Content-Length``, ``Accept-Ranges: bytes`` and ``ETag: "<sha256 from the manifest>"`` (omitted
  when the file's size no longer matches the manifest); one ``Range: bytes=a-b`` / ``a-`` / ``-n``
  gives ``206`` with ``Content-Range``, an unsatisfiable one ``416`` with ``Content-Range: bytes
  */<size>``; a malformed or multi-part ``Range``, or an ``If-Range`` that is not the ETag, gives
  the whole file (``200``); ``If-None-Match`` with the ETag gives ``304``.
- ``GET``/``HEAD /MANIFEST.json``: the manifest the service currently uses (re-read when the file
  changes), ``/healthz``: ``{"status": "ok", "files": N, "datasets": M, "bytes": B}``.
- Everything else is ``404`` (no directory listing; ``..``, ``.``, hidden names, encoded ``/``,
  ``\\`` or NUL, absolute or double-slash paths, files not in the manifest, and files whose real
  path lies outside the mirror folder); other methods get ``405``.
- With a token, every request except ``/healthz`` needs ``Authorization: Bearer <token>`` or
  ``X-Neurodata-Token: <token>`` (compared in constant time), else ``401``.
- One access-log line per request on the logger ``neurodata.serve`` (INFO).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import socket
import stat
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .mirror import MANIFEST, _plain_name, parse_manifest, read_manifest

__all__ = ["serve", "serve_in_background", "make_server", "MirrorServer", "RunningMirror", "DEFAULT_PORT"]

DEFAULT_PORT = 8765
log = logging.getLogger("neurodata.serve")
_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")
_BAD_ESCAPES = re.compile(r"%(2f|5c|00)", re.IGNORECASE)


class _Index:
    """The manifest as served: reloaded when ``MANIFEST.json`` changes; the last good one is kept
    when a new one cannot be read (logged)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.top = os.path.realpath(directory)
        self.lock = threading.Lock()
        self.stamp = None
        self.files: dict = {}
        self.raw = b""
        self.raw_etag = ""
        read_manifest(directory)  # clear errors when there is none, or it is not a manifest
        self.refresh(strict=True)

    def refresh(self, strict: bool = False) -> None:
        path = self.directory / MANIFEST
        try:
            st = os.stat(path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp == self.stamp:
                return
            with self.lock:
                if stamp == self.stamp:
                    return
                raw = path.read_bytes()
                data = parse_manifest(raw, path)
                self.files = {e["path"]: e for e in data["files"]}
                self.raw, self.raw_etag = raw, f'"{hashlib.sha256(raw).hexdigest()}"'
                self.stamp = stamp
        except (OSError, ValueError) as e:
            if strict:
                raise
            if self.stamp != "failed":
                log.error("cannot re-read %s (%s); still serving the last good manifest", path, e)
                self.stamp = "failed"

    def open(self, rel: str):
        """``(file object, size, etag)`` for manifest path ``rel``, or None (→ 404)."""
        entry = self.files.get(rel)
        if entry is None:
            return None
        real = os.path.realpath(self.directory / rel)
        if not real.startswith(self.top + os.sep):
            log.warning("refusing %s: its real path %s is outside the mirror", rel, real)
            return None
        try:  # O_NOFOLLOW: a link swapped in after the check is not followed
            f = os.fdopen(os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb")
        except OSError:
            return None
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            f.close()
            return None
        etag = f'"{entry["sha256"]}"' if entry.get("size") == st.st_size else None
        return f, st.st_size, etag


def parse_range(header: str | None, size: int):
    """``(start, end)`` inclusive for one ``bytes=`` range; None to serve the whole file
    (no header, malformed, multi-part); ``"unsatisfiable"`` for 416."""
    m = _RANGE.fullmatch(header or "")
    if not m or not (m.group(1) or m.group(2)) or max(len(m.group(1) or ""), len(m.group(2) or "")) > 30:
        return None  # (more digits than any file size: int() would refuse beyond 4300)
    if m.group(1):
        start = int(m.group(1))
        if m.group(2) and int(m.group(2)) < start:
            return None
        if start >= size:
            return "unsatisfiable"
        return start, min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
    n = int(m.group(2))
    if n == 0 or size == 0:
        return "unsatisfiable"
    return max(size - n, 0), size - 1


def _etag_matches(header: str, etag: str | None) -> bool:
    if etag is None:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "neurodata-mirror"
    sys_version = ""
    timeout = 60  # seconds a client may stay silent (idle keep-alive, slow headers)

    # -- plumbing ------------------------------------------------------------------------------
    def log_request(self, code="-", size="-"):  # one line per request is written by _access_log
        pass

    def log_message(self, fmt, *args):  # protocol errors found by http.server (400, 414, ...)
        log.warning("%s %s", self.client_address[0], fmt % args)

    def _access_log(self, status, sent, t0):
        rng = self.headers.get("Range") if self.headers else None
        log.info('%s "%s %s %s" %s %d%s %.1fms', self.client_address[0], self.command, ascii(self.path)[1:-1],
                 self.request_version, status, sent, f" range={ascii(rng)[1:-1]}" if rng else "",
                 1000 * (time.monotonic() - t0))

    def _head(self, status, headers):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()

    def _reply(self, status, body: bytes = b"", ctype="text/plain; charset=utf-8", headers=()):
        self._head(status, [("Content-Type", ctype), ("Content-Length", str(len(body))), *headers])
        if self.command == "GET" and body:
            self.wfile.write(body)
            return len(body)
        return 0

    # -- methods -------------------------------------------------------------------------------
    def do_GET(self):
        self._handle()

    def do_HEAD(self):
        self._handle()

    def _not_allowed(self):
        t0 = time.monotonic()
        self.close_connection = True
        self._reply(405, b"method not allowed: this mirror is read-only\n", headers=[("Allow", "GET, HEAD")])
        self._access_log(405, 0, t0)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed

    def _handle(self):
        t0, status, sent = time.monotonic(), 500, 0
        if self.headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in self.headers:
            self.close_connection = True  # an unread request body would spoil the next request
        try:
            status, sent = self._dispatch()
        except (ConnectionError, TimeoutError, socket.timeout) as e:
            self.close_connection = True
            status = f"{status}(client gone: {type(e).__name__})"
        finally:
            self._access_log(status, sent, t0)

    def _dispatch(self):
        index = self.server.index
        target = _target(self.path)
        if target == "healthz":
            index.refresh()
            body = json.dumps({"status": "ok", "files": len(index.files),
                               "datasets": len({e["dataset"] for e in index.files.values()}),
                               "bytes": sum(int(e["size"]) for e in index.files.values())}).encode()
            return 200, self._reply(200, body, "application/json")
        if not self._authorized():
            return 401, self._reply(401, b"a token is required (Authorization: Bearer <token>)\n",
                                    headers=[("WWW-Authenticate", 'Bearer realm="neurodata-mirror"')])
        index.refresh()
        if target == MANIFEST:
            return self._send(index.raw, len(index.raw), index.raw_etag, "application/json")
        opened = index.open(target) if target else None
        if opened is None:
            return 404, self._reply(404, b"not found\n")
        f, size, etag = opened
        with f:
            return self._send(f, size, etag, "application/octet-stream")

    def _authorized(self) -> bool:
        token = self.server.token
        if token is None:
            return True
        scheme, _, value = self.headers.get("Authorization", "").partition(" ")
        given = [value.strip()] if scheme.lower() == "bearer" else []
        given.append(self.headers.get("X-Neurodata-Token", ""))
        want = token.encode()
        return any(hmac.compare_digest(g.encode("utf-8", "replace"), want) for g in given if g)

    def _send(self, body, size: int, etag, ctype):
        """Headers and (for GET) bytes of ``body`` (bytes or an open file) honouring Range."""
        headers = [("Accept-Ranges", "bytes"), ("X-Content-Type-Options", "nosniff")]
        if etag:
            headers.append(("ETag", etag))
        inm = self.headers.get("If-None-Match")
        if inm is not None and _etag_matches(inm, etag):
            self._head(304, headers)
            return 304, 0
        wanted = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if if_range is not None and (etag is None or if_range.strip() != etag):
            wanted = None  # the client's partial copy is of another version: send it all
        rng = parse_range(wanted, size)
        if rng == "unsatisfiable":
            return 416, self._reply(416, b"range not satisfiable\n",
                                    headers=[("Content-Range", f"bytes */{size}"), *headers])
        start, end = rng if rng else (0, size - 1)
        status = 206 if rng else 200
        if rng:
            headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
        length = end - start + 1
        self._head(status, [("Content-Type", ctype), ("Content-Length", str(length)), *headers])
        if self.command != "GET" or length <= 0:
            return status, 0
        if isinstance(body, bytes):
            self.wfile.write(body[start:end + 1])
            return status, length
        sent = self.connection.sendfile(body, offset=start, count=length)
        if sent < length:  # the file shrank while being served: the client must not trust this body
            self.close_connection = True
        return status, sent


def _target(raw: str) -> str | None:
    """``"healthz"``, ``MANIFEST`` or ``"<dataset>/<file>"`` for a request path; None (→ 404)
    for anything else, including every form of path traversal."""
    if not raw.startswith("/") or raw.startswith("//"):
        return None
    path = raw.split("?", 1)[0].split("#", 1)[0]
    if _BAD_ESCAPES.search(path):
        return None
    try:
        path = urllib.parse.unquote(path, errors="strict")
    except UnicodeDecodeError:
        return None
    parts = path[1:].split("/")
    if parts in (["healthz"], [MANIFEST]):
        return parts[0]
    if len(parts) != 2 or not all(_plain_name(p) for p in parts):
        return None
    return "/".join(parts)


class MirrorServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` for one mirror folder (``.index``) with an optional ``.token``."""

    daemon_threads = True

    def __init__(self, directory, host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: str | None = None):
        if token is not None and (not token or not token.isascii() or not token.isprintable() or " " in token):
            raise ValueError("token must be a non-empty string of printable ASCII without spaces")
        directory = Path(directory).expanduser()
        self.index = _Index(directory)
        self.token = token
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def handle_error(self, request, client_address):
        err = sys.exc_info()[1]
        if isinstance(err, (ConnectionError, TimeoutError)):
            log.debug("%s: connection ended (%s)", client_address[0], type(err).__name__)
        else:
            log.exception("error while answering %s", client_address[0])


def make_server(directory, host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: str | None = None) -> MirrorServer:
    """A bound, not yet running ``MirrorServer`` (``port=0`` picks a free port).

    Raises ``FileNotFoundError``/``ValueError`` when ``directory`` has no readable manifest, and
    ``ValueError`` for an unusable token. Warns (logger) when listening beyond loopback without one.
    """
    server = MirrorServer(directory, host, port, token)
    if token is None and host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("serving %s on %s without a token: anyone who can reach it can download the mirror",
                    directory, host)
    return server


def serve(directory, host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: str | None = None,
          *, access_log=sys.stderr) -> None:
    """Serve mirror ``directory`` until interrupted (Ctrl-C / SIGINT returns normally).

    ``access_log`` (a text stream, default stderr) receives the access-log lines and the start
    banner; None leaves them to the application's logging configuration (logger ``neurodata.serve``).
    """
    server = make_server(directory, host, port, token)
    handler, level = None, log.level
    if access_log is not None:
        handler = logging.StreamHandler(access_log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    try:
        log.info("serving %s (%d files) at %s/%s", directory, len(server.index.files), server.url,
                 " (token required)" if token else "")
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        log.info("stopped")
    finally:
        server.server_close()
        if handler is not None:
            log.removeHandler(handler)
            log.setLevel(level)


@dataclass
class RunningMirror:
    """A ``MirrorServer`` running in a background thread: ``.port``, ``.url``, ``.stop()``; also a
    context manager that stops it on exit."""

    server: MirrorServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def serve_in_background(directory, host: str = "127.0.0.1", port: int = 0, token: str | None = None) -> RunningMirror:
    """Start serving ``directory`` in a daemon thread (tests, notebooks); the bound port is ``.port``."""
    server = make_server(directory, host, port, token)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name=f"neurodata-mirror-{server.server_address[1]}", daemon=True)
    thread.start()
    return RunningMirror(server, thread)
