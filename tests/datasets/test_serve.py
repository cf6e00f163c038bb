"""The mirror service over real sockets on 127.0.0.1: Range/HEAD/ETag semantics, concurrency,
path traversal, the token, the manifest and health endpoints, the access log, and the CLI."""
import hashlib
import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from neurodata.datasets import get
from neurodata.download import fetch_resource
from neurodata.mirror import MANIFEST, build_mirror
from neurodata.serve import parse_range, serve_in_background
from tests.datasets.mirror_support import OpenRecorder, raw_request, recipe_for

BIG = 3 << 20


@pytest.fixture
def mirror(tmp_path):
    """A mirror holding ``nmnist/train.zip`` (3 MiB of random bytes) and an empty ``test.zip``."""
    data = np.random.default_rng(1).integers(0, 256, BIG, dtype=np.uint8).tobytes()
    src = tmp_path / "downloads"
    src.mkdir()
    (src / "train.zip").write_bytes(data)
    (src / "test.zip").write_bytes(b"")
    recipe = recipe_for(get("nmnist").recipe, {"train.zip": data, "test.zip": b""})
    report = build_mirror(tmp_path / "mirror", [recipe], root=tmp_path / "none", source=src)
    assert len(report.added) == 2
    return tmp_path / "mirror", data


@pytest.fixture
def service(mirror):
    with serve_in_background(mirror[0]) as running:
        yield running


def _get(port, path, method="GET", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_get_head_etag_and_conditional_requests(mirror, service):
    _, data = mirror
    etag = f'"{hashlib.sha256(data).hexdigest()}"'
    status, headers, body = _get(service.port, "/nmnist/train.zip")
    assert status == 200 and body == data
    assert headers["content-length"] == str(BIG) and headers["etag"] == etag
    assert headers["accept-ranges"] == "bytes" and headers["content-type"] == "application/octet-stream"
    status, headers, body = _get(service.port, "/nmnist/train.zip", "HEAD")
    assert status == 200 and body == b"" and headers["content-length"] == str(BIG) and headers["etag"] == etag
    assert _get(service.port, "/nmnist/train.zip", headers={"If-None-Match": etag})[0] == 304
    assert _get(service.port, "/nmnist/train.zip", headers={"If-None-Match": '"other", W/' + etag})[0] == 304
    assert _get(service.port, "/nmnist/train.zip", headers={"If-None-Match": '"other"'})[0] == 200
    # If-Range: the range only applies to the version named by the ETag
    status, headers, body = _get(service.port, "/nmnist/train.zip", headers={"Range": "bytes=5-9", "If-Range": etag})
    assert (status, body, headers["content-range"]) == (206, data[5:10], f"bytes 5-9/{BIG}")
    status, _, body = _get(service.port, "/nmnist/train.zip", headers={"Range": "bytes=5-9", "If-Range": '"stale"'})
    assert status == 200 and body == data
    status, headers, body = _get(service.port, "/nmnist/test.zip")      # an empty file
    assert status == 200 and body == b"" and headers["content-length"] == "0"


def test_ranges(mirror, service):
    _, data = mirror
    cases = {"bytes=0-0": (206, 0, 0), "bytes=100-": (206, 100, BIG - 1), f"bytes=10-{BIG + 50}": (206, 10, BIG - 1),
             "bytes=-7": (206, BIG - 7, BIG - 1), f"bytes=-{BIG * 2}": (206, 0, BIG - 1),
             f"bytes={BIG - 1}-": (206, BIG - 1, BIG - 1)}
    for header, (code, a, b) in cases.items():
        status, headers, body = _get(service.port, "/nmnist/train.zip", headers={"Range": header})
        assert (status, body, headers["content-range"]) == (code, data[a:b + 1], f"bytes {a}-{b}/{BIG}"), header
        assert headers["content-length"] == str(b - a + 1)
    for header in (f"bytes={BIG}-", f"bytes={BIG + 9}-{BIG + 20}", "bytes=-0"):
        status, headers, _ = _get(service.port, "/nmnist/train.zip", headers={"Range": header})
        assert status == 416 and headers["content-range"] == f"bytes */{BIG}", header
    for header in ("bytes=0-1,5-6", "bytes=9-3", "items=0-1", "bytes=x-"):   # ignored: the whole file
        status, headers, body = _get(service.port, "/nmnist/train.zip", headers={"Range": header})
        assert status == 200 and body == data, header
    status, _, _ = _get(service.port, "/nmnist/test.zip", headers={"Range": "bytes=0-"})
    assert status == 416


def _reference_range(header, size):
    """RFC 9110 single byte ranges by brute force: the byte positions selected, as (first, last)."""
    import re

    first, last = re.fullmatch(r"bytes=(\d*)-(\d*)", header).groups()
    if first and last and int(last) < int(first):
        return None                                   # invalid: the header is ignored
    if first:
        chosen = [i for i in range(size) if int(first) <= i <= (int(last) if last else size)]
    else:
        chosen = list(range(size))[-int(last):] if int(last) else []
    return (chosen[0], chosen[-1]) if chosen else "unsatisfiable"


def test_parse_range_against_reference():
    rng = np.random.default_rng(3)
    for _ in range(2000):
        size = int(rng.integers(0, 50))
        a, b = (str(int(v)) if rng.random() < 0.8 else "" for v in rng.integers(0, 60, 2))
        if not a and not b:
            assert parse_range("bytes=-", size) is None
            continue
        header = f"bytes={a}-{b}"
        assert parse_range(header, size) == _reference_range(header, size), (header, size)
    assert parse_range(None, 10) is None and parse_range("bytes=1-2, 4-5", 10) is None
    for huge in ("bytes=" + "9" * 5000 + "-", "bytes=0-" + "9" * 5000, "bytes=-" + "9" * 5000):
        assert parse_range(huge, 10) is None  # int() refuses > 4300 digits: no answer was sent at all


def test_sixteen_concurrent_clients_get_the_right_bytes(mirror, service):
    _, data = mirror
    rng = np.random.default_rng(7)
    ranges = [tuple(sorted(int(v) for v in rng.integers(0, BIG, 2))) for _ in range(16)]
    barrier = threading.Barrier(16)

    def client(ab):
        a, b = ab
        barrier.wait(10)
        status, headers, body = _get(service.port, "/nmnist/train.zip", headers={"Range": f"bytes={a}-{b}"})
        return status, headers["content-range"], body == data[a:b + 1]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(client, ranges))
    assert results == [(206, f"bytes {a}-{b}/{BIG}", True) for a, b in ranges]


def test_keep_alive_connection_serves_several_requests(mirror, service):
    _, data = mirror
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
    try:
        for a in (0, 1000, BIG - 10):
            conn.request("GET", "/nmnist/train.zip", headers={"Range": f"bytes={a}-{a + 9}"})
            resp = conn.getresponse()
            assert resp.status == 206 and resp.read() == data[a:a + 10]
    finally:
        conn.close()


def test_path_traversal_gets_404_and_reads_nothing_outside(mirror, tmp_path):
    folder, data = mirror
    secret = tmp_path / "secret.zip"
    secret.write_bytes(b"TOP SECRET")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.zip").write_bytes(b"TOP SECRET TOO")
    os.symlink(secret, folder / "nmnist" / "escape.zip")       # a file link pointing out
    os.symlink(outside, folder / "evil")                        # a folder link pointing out
    manifest = json.loads((folder / MANIFEST).read_text())
    for ds, name, content in (("nmnist", "escape.zip", b"TOP SECRET"), ("evil", "x.zip", b"TOP SECRET TOO")):
        manifest["files"].append({"path": f"{ds}/{name}", "dataset": ds, "file": name, "size": len(content),
                                  "md5": hashlib.md5(content).hexdigest(),
                                  "sha256": hashlib.sha256(content).hexdigest()})
    (folder / MANIFEST).write_text(json.dumps(manifest))
    targets = ["/../secret.zip", "/nmnist/../../secret.zip", "/%2e%2e/secret.zip", "/%2E%2E/%2e%2e/secret.zip",
               "/nmnist/%2e%2e/%2e%2e/secret.zip", "/nmnist%2f..%2f..%2fsecret.zip", "/nmnist/..%2F..%2Fsecret.zip",
               "/..%5csecret.zip", "/nmnist/..\\..\\secret.zip", "//" + str(secret).lstrip("/"), str(secret),
               "http://127.0.0.1/../secret.zip", "/nmnist/escape.zip", "/evil/x.zip", "/nmnist/./train.zip",
               "/nmnist//train.zip", "/./nmnist/train.zip", "/nmnist/train.zip/", "/nmnist/train.zip%00",
               "/nmnist/train.zip/..", "/MANIFEST.json/../nmnist/train.zip", "/", "/nmnist", "/nmnist/",
               "/evil/", "/nmnist/.hidden", "/nmnist/notlisted.zip", "/%6emnist/../../secret.zip"]
    with serve_in_background(folder) as service, OpenRecorder() as opened:
        for target in targets:
            for method in ("GET", "HEAD"):
                status, _, body = raw_request(service.port, target, method)
                assert status == 404 and b"SECRET" not in body, (target, method, status)
        # the legitimate file, also through harmless percent-encoding, still works
        assert raw_request(service.port, "/nmnist/train%2ezip")[0] == 200
        assert raw_request(service.port, "/%6emnist/train.zip")[2] == data
    touched = [p for p in opened.paths if os.path.realpath(p).startswith(str(tmp_path))]
    assert touched and all(os.path.realpath(p).startswith(os.path.realpath(folder) + os.sep) for p in touched)
    assert not any("secret" in p or "outside" in p for p in opened.paths)


def test_methods_manifest_health_and_reload(mirror, service, tmp_path, caplog):
    folder, data = mirror
    caplog.set_level(logging.INFO, logger="neurodata.serve")
    status, headers, body = _get(service.port, "/MANIFEST.json")
    assert status == 200 and body == (folder / MANIFEST).read_bytes() and headers["content-type"] == "application/json"
    health = json.loads(_get(service.port, "/healthz")[2])
    assert health == {"status": "ok", "files": 2, "datasets": 1, "bytes": BIG}
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        status, headers, _ = raw_request(service.port, "/nmnist/train.zip", method)
        assert status == 405 and headers["allow"] == "GET, HEAD"
    # a file added to the mirror while it is served appears once the manifest lists it
    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "airplane.zip").write_bytes(b"plane")
    assert _get(service.port, "/cifar10dvs/airplane.zip")[0] == 404
    build_mirror(folder, [recipe_for(get("cifar10dvs").recipe, {"airplane.zip": b"plane"})], root=tmp_path,
                 source=extra)
    assert _get(service.port, "/cifar10dvs/airplane.zip")[2] == b"plane"
    assert json.loads(_get(service.port, "/healthz")[2])["files"] == 3
    # a file changed behind the manifest's back loses its ETag (the service does not vouch for it)
    path = folder / "nmnist" / "train.zip"
    path.unlink()
    path.write_bytes(b"short")
    status, headers, body = _get(service.port, "/nmnist/train.zip")
    assert status == 200 and body == b"short" and "etag" not in headers
    lines = [r.getMessage() for r in caplog.records]
    assert any('"GET /MANIFEST.json HTTP/1.1" 200' in m for m in lines)
    assert any('"POST /nmnist/train.zip HTTP/1.1" 405' in m for m in lines)
    assert sum('"GET /cifar10dvs/airplane.zip HTTP/1.1"' in m for m in lines) == 2


def test_token(mirror, tmp_path, monkeypatch, no_env):
    folder, data = mirror
    with serve_in_background(folder, token="s3cret-token") as service:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-Neurodata-Token": "s3cret-tokeN"},
                        {"Authorization": "Basic s3cret-token"}, {"Authorization": "Bearer "}):
            for path in ("/nmnist/train.zip", "/MANIFEST.json", "/nope"):
                status, h, body = _get(service.port, path, headers=headers)
                assert status == 401 and h["www-authenticate"].startswith("Bearer") and data not in body
        assert _get(service.port, "/nmnist/train.zip", "HEAD")[0] == 401
        assert _get(service.port, "/nmnist/train.zip", headers={"Authorization": "Bearer s3cret-token"})[2] == data
        assert _get(service.port, "/nmnist/train.zip", headers={"X-Neurodata-Token": "s3cret-token"})[2] == data
        assert _get(service.port, "/healthz")[0] == 200             # health checks need no token
        # the fetcher sends NEURODATA_MIRROR_TOKEN to the mirror only, never to the original host
        seen = []
        original = _recording_server(seen, data)
        try:
            monkeypatch.setenv("NEURODATA_MIRROR_TOKEN", "s3cret-token")
            url = f"http://127.0.0.1:{original.server_address[1]}/train.zip"
            sha = "sha256:" + hashlib.sha256(data).hexdigest()
            out = fetch_resource([url], tmp_path / "a" / "train.zip", checksum=sha, dataset="nmnist",
                                 mirrors=[service.url], progress=False)
            assert out.read_bytes() == data and not seen          # the mirror served it
            out = fetch_resource([url], tmp_path / "b" / "train.zip", checksum=sha, dataset="cifar10dvs",
                                 mirrors=[service.url], progress=False)
            assert out.read_bytes() == data and seen == [None]    # 404 on the mirror, then the host, no token
        finally:
            original.shutdown()
            original.server_close()
    with pytest.raises(ValueError, match="token"):
        serve_in_background(folder, token="has space")


def _recording_server(seen, data):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def test_serve_refuses_a_folder_without_manifest(tmp_path):
    with pytest.raises(FileNotFoundError, match="mirror build"):
        serve_in_background(tmp_path)


def test_cli_serve_process(mirror, tmp_path):
    folder, data = mirror
    # faulthandler: if the process ever hangs on SIGINT, SIGABRT below dumps every thread's stack
    env = {**os.environ, "NEURODATA_SERVE_TOKEN": "tok-123", "PYTHONFAULTHANDLER": "1"}
    # Ctrl-C as in a terminal: a test run started in the background (`cmd &` in a script) passes
    # SIGINT down as ignored, and Python then never raises KeyboardInterrupt (seen in CI runs)
    code = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); from neurodata.cli import main; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, "serve", str(folder), "--port", "0"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = _read_until(proc, "http://127.0.0.1:", timeout=60)
        assert "(token required)" in line
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        assert _get(port, "/nmnist/train.zip")[0] == 401
        assert _get(port, "/nmnist/train.zip", headers={"X-Neurodata-Token": "tok-123"})[2] == data
        # one access-log line per request, in order (other stderr lines, e.g. warnings, may interleave)
        _read_until(proc, '"GET /nmnist/train.zip HTTP/1.1" 401', timeout=10)
        _read_until(proc, '"GET /nmnist/train.zip HTTP/1.1" 200', timeout=10)
        idle = socket.create_connection(("127.0.0.1", port))  # a client that connects and stays silent
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(20)
        except subprocess.TimeoutExpired:  # keep what it was doing
            proc.send_signal(signal.SIGABRT)
            proc.wait(20)
            pytest.fail("`neurodata serve` ignored SIGINT for 20 s; its stderr ends with:\n"
                        + proc.stderr.read()[-6000:])
        finally:
            proc.stderr.close()
    idle.close()
    assert rc == 0  # promptly, although a silent client is still connected
    result = subprocess.run([sys.executable, "-c", "from neurodata.cli import main; main()", "serve",
                             str(tmp_path / "downloads")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "mirror build" in result.stderr


def _read_until(proc, text, timeout):
    """The first stderr line of ``proc`` containing ``text`` (lines before it are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        line = _readline(proc, max(0.1, deadline - time.monotonic()))
        if text in line:
            return line
        assert time.monotonic() < deadline and line, f"no line with {text!r} from `neurodata serve`"


def _readline(proc, timeout):
    out = []
    reader = threading.Thread(target=lambda: out.append(proc.stderr.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert out, "no output from `neurodata serve`"
    return out[0]
