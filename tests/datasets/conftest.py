"""Fixtures for dataset tests: a local HTTP server with scriptable faults (no network needed).

``http_server`` serves registered byte strings from ``http://127.0.0.1:<port>/<path>`` and can be
told, per path, to drop the connection mid-file, to answer HTTP errors a number of times, to serve
wrong bytes, or to ignore ``Range`` headers. Every request is logged in ``server.log``.

    server.add("nmnist/train.zip", data)
    server.drop_after("nmnist/train.zip", 1000)      # the next GET sends 1000 bytes, then hangs up
    server.fail("nmnist/train.zip", status=500, times=2)
    url = server.url("nmnist/train.zip")
"""
from __future__ import annotations

import re
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class _Entry:
    data: bytes
    drop_after: list = field(default_factory=list)  # one (byte count, reset) per planned drop
    failures: list = field(default_factory=list)    # one status per planned failure
    wrong_bytes: int = 0                            # how many more GETs serve corrupted bytes
    wrong_on_range: int = 0                         # how many more GETs with Range serve them
    ignore_range: bool = False


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    status: int


class FaultyServer:
    """State of the test server; see the module docstring."""

    def __init__(self):
        self.files: dict[str, _Entry] = {}
        self.log: list[Request] = []
        self.lock = threading.Lock()
        self.httpd = None

    # --- configuration -----------------------------------------------------------------------
    def add(self, path: str, data: bytes, *, ignore_range: bool = False) -> str:
        self.files[path.lstrip("/")] = _Entry(bytes(data), ignore_range=ignore_range)
        return self.url(path)

    def drop_after(self, path: str, nbytes: int, times: int = 1, reset: bool = False) -> None:
        """The next ``times`` GETs of ``path`` send ``nbytes`` of the body, then close the socket
        (``reset``: abort it with a TCP RST, as a dropped connection often ends, instead of FIN)."""
        self.files[path.lstrip("/")].drop_after.extend([(int(nbytes), reset)] * times)

    def fail(self, path: str, status: int = 500, times: int = 1) -> None:
        """The next ``times`` requests for ``path`` get ``status`` (and no body)."""
        self.files[path.lstrip("/")].failures.extend([int(status)] * times)

    def serve_wrong(self, path: str, times: int = 1, on_range: bool = False) -> None:
        """The next ``times`` GETs of ``path`` (``on_range``: that carry a ``Range`` header) serve
        the right length with every byte inverted: another version of the file."""
        entry = self.files[path.lstrip("/")]
        if on_range:
            entry.wrong_on_range += times
        else:
            entry.wrong_bytes += times

    # --- inspection ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def requests_for(self, path: str) -> list[Request]:
        return [r for r in self.log if r.path == path.lstrip("/")]


def _handler(state: FaultyServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output clean
            pass

        def _record(self, status):
            with state.lock:
                state.log.append(Request(self.command, self.path.lstrip("/"), self.headers.get("Range"), status))

        def _reply(self, status, headers=(), body=b""):
            self._record(status)
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            if not any(k == "Content-Length" for k, _ in headers):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body and self.command == "GET":
                self.wfile.write(body)

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            entry = state.files.get(self.path.lstrip("/"))
            if entry is None:
                return self._reply(404, body=b"not found")
            with state.lock:
                status = entry.failures.pop(0) if entry.failures else None
                drop = entry.drop_after.pop(0) if entry.drop_after and self.command == "GET" else None
                wrong = entry.wrong_bytes > 0 and self.command == "GET"
                if wrong:
                    entry.wrong_bytes -= 1
                elif entry.wrong_on_range > 0 and self.command == "GET" and self.headers.get("Range"):
                    wrong = True
                    entry.wrong_on_range -= 1
            if status is not None:
                return self._reply(status, body=b"error")
            data = bytes(b ^ 0xFF for b in entry.data) if wrong else entry.data
            total = len(data)
            start, code, headers = 0, 200, [("Accept-Ranges", "bytes")]
            m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if m and not entry.ignore_range:
                start = int(m.group(1))
                if start >= total:
                    return self._reply(416, [("Content-Range", f"bytes */{total}")])
                code = 206
                headers.append(("Content-Range", f"bytes {start}-{total - 1}/{total}"))
            body = data[start:]
            headers.append(("Content-Length", str(len(body))))
            if drop is None:
                return self._reply(code, headers, body)
            self._record(code)
            self.send_response(code)
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            nbytes, reset = drop
            self.wfile.write(body[:nbytes])
            self.wfile.flush()
            self.close_connection = True
            if reset:  # linger 0: close sends RST, and the client's read fails instead of ending
                threading.Event().wait(0.05)  # the bytes reach the client first (not time.sleep: tests patch it)
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                return
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    return Handler


@pytest.fixture
def http_server():
    """A ``FaultyServer`` listening on 127.0.0.1 (random port) for the duration of one test."""
    state = FaultyServer()
    state.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.httpd.daemon_threads = True
    thread = threading.Thread(target=state.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.httpd.shutdown()
        state.httpd.server_close()
        thread.join(5)


@pytest.fixture
def no_env(monkeypatch):
    """Clear ``NEURODATA_*`` variables that change download and cache behaviour."""
    for name in ("NEURODATA_OFFLINE", "NEURODATA_MIRROR", "NEURODATA_HOME"):
        monkeypatch.delenv(name, raising=False)
