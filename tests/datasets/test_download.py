"""neurodata.download: fetch, verify, resume, retries, mirrors, offline mode, local sources, Ctrl-C."""
from __future__ import annotations

import hashlib
import multiprocessing as mp

import pytest

from neurodata.download import fetch_resource, file_digest, parse_checksum, verify_file
from neurodata.errors import ChecksumError, DownloadError

pytestmark = pytest.mark.usefixtures("no_env")

FAST = dict(backoff=0.01, timeout=5, progress=False)


def payload(n=300_000, seed=1):
    import numpy as np

    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def md5(b):
    return hashlib.md5(b).hexdigest()


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def leftovers(folder, keep):
    return sorted(p.name for p in folder.iterdir() if p.name != keep)


# --- hashes -------------------------------------------------------------------------------------
def test_file_digest_and_parse_checksum(tmp_path):
    data = payload(3 * (1 << 20) + 7)
    f = tmp_path / "blob"
    f.write_bytes(data)
    assert file_digest(f, "md5") == md5(data)
    assert file_digest(f, "sha256") == sha256(data)
    assert parse_checksum(f"sha256:{sha256(data).upper()}") == ("sha256", sha256(data))
    assert parse_checksum(md5(data)) == ("md5", md5(data))
    assert parse_checksum(md5(data), "md5") == ("md5", md5(data))
    for bad in ("md5:xyz", "sha1:" + "0" * 40, "0" * 31, "crc:1"):
        with pytest.raises(ValueError):
            parse_checksum(bad)
    with pytest.raises(ValueError):
        parse_checksum("sha256:" + sha256(data), "md5")
    with pytest.raises(ValueError, match="algorithm"):
        file_digest(f, "sha1")
    verify_file(f, md5=md5(data), sha256=f"sha256:{sha256(data)}", size=len(data))
    with pytest.raises(ChecksumError, match="bytes"):
        verify_file(f, size=1)


# --- HTTP ---------------------------------------------------------------------------------------
def test_fetch_and_verify(http_server, tmp_path):
    data = payload()
    url = http_server.add("d/train.zip", data)
    seen = []
    out = fetch_resource(url, tmp_path / "train.zip", md5=md5(data), sha256=f"sha256:{sha256(data)}",
                         size=len(data), **{**FAST, "progress": lambda done, total: seen.append((done, total))})
    assert out == tmp_path / "train.zip" and out.read_bytes() == data
    assert leftovers(tmp_path, "train.zip") == []
    assert seen[-1] == (len(data), len(data))
    # a second call finds the verified file and does not download again
    n = len(http_server.log)
    fetch_resource(url, out, md5=md5(data), **FAST)
    assert len(http_server.log) == n


def test_resume_after_dropped_connection(http_server, tmp_path):
    data = payload(2_000_000)
    url = http_server.add("d/train.zip", data)
    http_server.drop_after("d/train.zip", 700_000)
    out = fetch_resource(url, tmp_path / "train.zip", md5=md5(data), **FAST)
    assert out.read_bytes() == data
    reqs = http_server.requests_for("d/train.zip")
    assert [r.status for r in reqs] == [200, 206]
    assert reqs[0].range is None
    start = int(reqs[1].range.split("=")[1].rstrip("-"))
    assert 0 < start <= 700_000
    assert leftovers(tmp_path, "train.zip") == []


def test_connection_reset_keeps_the_bytes_received(http_server, tmp_path, monkeypatch):
    """A connection reset (RST) after 200 kB, five times: each attempt keeps what arrived, so the
    download completes, and an attempt that added bytes is resumed at once (no backoff sleep).
    Before, a 1 MiB read lost everything before the reset: the part stayed empty and it gave up."""
    data = payload(1_500_000)
    url = http_server.add("d/r.zip", data)
    http_server.drop_after("d/r.zip", 200_000, times=5, reset=True)
    sleeps = []
    monkeypatch.setattr("neurodata.download.time.sleep", sleeps.append)
    out = fetch_resource(url, tmp_path / "r.zip", md5=md5(data), progress=False, retries=1, backoff=5.0)
    assert out.read_bytes() == data and sleeps == []
    starts = [int(r.range.split("=")[1].rstrip("-")) if r.range else 0 for r in http_server.requests_for("d/r.zip")]
    assert starts == sorted(starts) and len(starts) == 6 and starts[-1] >= 5 * 131_072


def test_resumed_in_this_call_then_wrong_is_fetched_again_from_zero(http_server, tmp_path):
    """The first request is cut; the resumed one serves another version of the file: the check
    fails and the file is downloaded once more from zero (that was done only for a part left by an
    earlier call; this one ended in ChecksumError)."""
    data = payload(400_000)
    url = http_server.add("d/v.zip", data)
    http_server.drop_after("d/v.zip", 100_000)
    http_server.serve_wrong("d/v.zip", on_range=True)
    out = fetch_resource(url, tmp_path / "v.zip", md5=md5(data), **FAST)
    assert out.read_bytes() == data
    assert [r.range is None for r in http_server.requests_for("d/v.zip")] == [True, False, True]


def test_resume_from_existing_part_and_server_ignoring_range(http_server, tmp_path):
    data = payload()
    url = http_server.add("a.bin", data)
    (tmp_path / "a.bin.part").write_bytes(data[:1000])
    fetch_resource(url, tmp_path / "a.bin", sha256=sha256(data), **FAST)
    assert http_server.requests_for("a.bin")[-1].range == "bytes=1000-"
    assert (tmp_path / "a.bin").read_bytes() == data
    # a server that ignores Range answers 200: the part restarts from zero
    url = http_server.add("b.bin", data, ignore_range=True)
    (tmp_path / "b.bin.part").write_bytes(b"junk" * 100)
    fetch_resource(url, tmp_path / "b.bin", sha256=sha256(data), **FAST)
    assert (tmp_path / "b.bin").read_bytes() == data
    assert http_server.requests_for("b.bin")[-1].status == 200
    # a complete part file: the server answers 416 and the part is verified and used
    url = http_server.add("c.bin", data)
    (tmp_path / "c.bin.part").write_bytes(data)
    fetch_resource(url, tmp_path / "c.bin", sha256=sha256(data), **FAST)
    assert [r.status for r in http_server.requests_for("c.bin")] == [416]
    assert (tmp_path / "c.bin").read_bytes() == data


def test_stale_part_with_wrong_prefix_is_refetched_from_zero(http_server, tmp_path):
    data = payload()
    url = http_server.add("a.bin", data)
    (tmp_path / "a.bin.part").write_bytes(b"\0" * 5000)
    fetch_resource(url, tmp_path / "a.bin", md5=md5(data), **FAST)
    assert (tmp_path / "a.bin").read_bytes() == data
    assert [r.range for r in http_server.requests_for("a.bin")] == ["bytes=5000-", None]


def test_retries_on_500_then_success(http_server, tmp_path):
    data = payload(1000)
    url = http_server.add("a.bin", data)
    http_server.fail("a.bin", 500, times=2)
    fetch_resource(url, tmp_path / "a.bin", md5=md5(data), retries=2, **FAST)
    assert [r.status for r in http_server.requests_for("a.bin")] == [500, 500, 200]


def test_gives_up_after_retries_and_no_retry_on_404(http_server, tmp_path):
    data = payload(1000)
    url = http_server.add("a.bin", data)
    http_server.fail("a.bin", 503, times=10)
    with pytest.raises(DownloadError, match="HTTP 503") as exc:
        fetch_resource(url, tmp_path / "a.bin", md5=md5(data), retries=2, **FAST)
    assert not isinstance(exc.value, ChecksumError)
    assert "--mirror" in str(exc.value) and "--from" in str(exc.value)
    assert "--no-verify" not in str(exc.value)  # no check failed: skipping checks cannot help
    assert len(http_server.requests_for("a.bin")) == 3
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch_resource(http_server.url("missing.bin"), tmp_path / "m.bin", retries=5, **FAST)
    assert len(http_server.requests_for("missing.bin")) == 1
    assert not (tmp_path / "a.bin").exists() and not (tmp_path / "m.bin").exists()


def test_wrong_checksum_rejected(http_server, tmp_path):
    data = payload()
    url = http_server.add("d/train.zip", data)
    http_server.serve_wrong("d/train.zip", times=5)
    with pytest.raises(ChecksumError) as exc:
        fetch_resource(url, tmp_path / "train.zip", md5=md5(data), **FAST)
    msg = str(exc.value)
    assert "train.zip" in msg and md5(data) in msg and md5(bytes(b ^ 255 for b in data)) in msg
    assert "--mirror" in msg and "--from" in msg and "--no-verify" in msg
    assert exc.value.expected == f"md5:{md5(data)}"
    assert len(http_server.requests_for("d/train.zip")) == 1  # a fresh download is not repeated
    assert list(tmp_path.iterdir()) == []  # nothing under the final name, no part, no lock


def test_no_verify_warns_and_keeps_file(http_server, tmp_path):
    data = payload(1000)
    url = http_server.add("a.bin", data)
    with pytest.warns(UserWarning, match="verification of a.bin is disabled"):
        fetch_resource(url, tmp_path / "a.bin", md5="0" * 32, verify=False, **FAST)
    assert (tmp_path / "a.bin").read_bytes() == data


def test_corrupt_existing_file_is_moved_aside_and_refetched(http_server, tmp_path):
    data = payload(1000)
    url = http_server.add("a.bin", data)
    (tmp_path / "a.bin").write_bytes(b"bad")
    with pytest.warns(UserWarning, match="a.bin.rejected"):
        fetch_resource(url, tmp_path / "a.bin", md5=md5(data), **FAST)
    assert (tmp_path / "a.bin").read_bytes() == data
    assert (tmp_path / "a.bin.rejected").read_bytes() == b"bad"


@pytest.mark.parametrize("first_status", [404, 500])
def test_mirror_fallback(http_server, tmp_path, first_status, monkeypatch):
    data = payload(5000)
    http_server.add("nmnist/train.zip", data)
    http_server.add("up/train.zip", data)
    http_server.fail("nmnist/train.zip", first_status, times=10)
    out = fetch_resource(http_server.url("up/train.zip"), tmp_path / "train.zip", dataset="nmnist",
                         mirrors=[http_server.url("")], md5=md5(data), retries=1, **FAST)
    assert out.read_bytes() == data
    order = [r.path for r in http_server.log]
    assert order[0] == "nmnist/train.zip" and order[-1] == "up/train.zip"
    # NEURODATA_MIRROR is tried after explicit mirrors and before the URLs
    http_server.log.clear()
    http_server.add("nmnist/test.zip", data)
    monkeypatch.setenv("NEURODATA_MIRROR", http_server.url("") + "/")
    fetch_resource([http_server.url("up/nothere.zip")], tmp_path / "test.zip", dataset="nmnist",
                   md5=md5(data), **FAST)
    assert [r.path for r in http_server.log] == ["nmnist/test.zip"]


def test_bad_mirror_bytes_fall_back_to_next_source(http_server, tmp_path):
    data = payload(5000)
    http_server.add("m/ds/a.bin", data)
    http_server.serve_wrong("m/ds/a.bin", times=10)
    up = http_server.add("a.bin", data)
    fetch_resource(up, tmp_path / "a.bin", dataset="ds", mirrors=[http_server.url("m")], md5=md5(data), **FAST)
    assert (tmp_path / "a.bin").read_bytes() == data


def test_offline_mode(http_server, tmp_path, monkeypatch):
    data = payload(1000)
    url = http_server.add("a.bin", data)
    monkeypatch.setenv("NEURODATA_OFFLINE", "1")
    with pytest.raises(DownloadError) as exc:
        fetch_resource(url, tmp_path / "sub" / "a.bin", md5=md5(data), **FAST)
    msg = str(exc.value)
    assert "offline" in msg and "a.bin" in msg and str(tmp_path / "sub" / "a.bin") in msg and url in msg
    assert http_server.log == []
    # local sources still work offline
    local = tmp_path / "mine.bin"
    local.write_bytes(data)
    fetch_resource([url, str(local)], tmp_path / "a.bin", md5=md5(data), **FAST)
    assert http_server.log == []
    monkeypatch.delenv("NEURODATA_OFFLINE")
    with pytest.raises(DownloadError, match="offline"):
        fetch_resource(url, tmp_path / "b.bin", offline=True, **FAST)


def test_file_url_and_plain_path(tmp_path):
    data = payload(50_000)
    src = tmp_path / "src" / "train.zip"
    src.parent.mkdir()
    src.write_bytes(data)
    out = fetch_resource(src.as_uri(), tmp_path / "a" / "train.zip", md5=md5(data), **FAST)
    assert out.read_bytes() == data
    out = fetch_resource(str(src), tmp_path / "b" / "train.zip", sha256=sha256(data), **FAST)
    assert out.read_bytes() == data and src.read_bytes() == data
    # a local mirror folder laid out as <mirror>/<dataset>/<file name>
    out = fetch_resource("https://unreachable.invalid/train.zip", tmp_path / "c" / "train.zip",
                         dataset="src", mirrors=[str(tmp_path)], md5=md5(data), offline=True, **FAST)
    assert out.read_bytes() == data
    # a wrong local file is rejected and the user's file is left alone
    with pytest.raises(ChecksumError):
        fetch_resource(str(src), tmp_path / "d" / "train.zip", md5="0" * 32, **FAST)
    assert list((tmp_path / "d").iterdir()) == [] and src.read_bytes() == data
    with pytest.raises(DownloadError, match="no such file"):
        fetch_resource(str(tmp_path / "nope.zip"), tmp_path / "e" / "x.zip", **FAST)
    with pytest.raises(ValueError, match="scheme"):
        fetch_resource("ftp://host/x.zip", tmp_path / "x.zip", **FAST)


def test_keyboard_interrupt_keeps_only_the_part(http_server, tmp_path):
    data = payload(3_000_000)
    url = http_server.add("a.bin", data)

    def interrupt(done, total):
        if done > 1_000_000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch_resource(url, tmp_path / "a.bin", md5=md5(data), **{**FAST, "progress": interrupt})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin.part"]
    size = (tmp_path / "a.bin.part").stat().st_size
    assert 1_000_000 < size < len(data)
    assert data.startswith((tmp_path / "a.bin.part").read_bytes())
    fetch_resource(url, tmp_path / "a.bin", md5=md5(data), **FAST)
    assert http_server.requests_for("a.bin")[-1].range == f"bytes={size}-"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_progress_bar_draws_on_a_stream():
    import io

    from neurodata.download import _ProgressBar

    buf = io.StringIO()
    bar = _ProgressBar("x.zip", stream=buf, min_interval=0)
    bar(0, 4 << 20)
    bar(2 << 20, 4 << 20)
    bar(4 << 20, 4 << 20)
    bar.close()
    text = buf.getvalue()
    assert "x.zip" in text and "4.0 MiB" in text and "100%" in text and "MiB/s" in text and "ETA" in text
    assert text.endswith("\n")


def _fetch_in_child(url, dest, digest, q):
    try:
        fetch_resource(url, dest, md5=digest, **FAST)
        q.put("ok")
    except BaseException as e:  # pragma: no cover - reported to the parent
        q.put(repr(e))


def test_two_processes_fetch_the_same_file(http_server, tmp_path):
    data = payload(4_000_000)
    url = http_server.add("a.bin", data)
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_fetch_in_child, args=(url, tmp_path / "a.bin", md5(data), q)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [q.get(timeout=5) for _ in procs] == ["ok"] * 3
    assert (tmp_path / "a.bin").read_bytes() == data
    assert len([r for r in http_server.log if r.method == "GET"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_quiet_when_stderr_is_not_a_terminal(http_server, tmp_path, capsys):
    data = payload(3 << 20)
    url = http_server.add("a.bin", data)
    fetch_resource(url, tmp_path / "a.bin", md5=md5(data), backoff=0.01, timeout=5)  # progress=None: auto
    assert capsys.readouterr().err == ""


def test_file_lock_excludes_and_cleans_up(tmp_path):
    from neurodata._filelock import FileLock

    path = tmp_path / "x.lock"
    with FileLock(path) as held:
        assert held.locked and path.exists()
        with pytest.raises(TimeoutError, match="x.lock"):
            FileLock(path, timeout=0.2).acquire()
    assert not path.exists()
    with FileLock(path):  # free again
        pass


def test_a_sound_existing_file_needs_no_lock(tmp_path, monkeypatch):
    """A verified file is returned before any lock is taken (a read-only folder cannot hold the lock
    file: fetch_resource raised OSError there, even offline)."""
    import neurodata.download as dl

    data = payload(1000)
    (tmp_path / "f.bin").write_bytes(data)

    class NoLock:
        def __init__(self, *a, **k):
            raise PermissionError("read-only folder")
    monkeypatch.setattr(dl, "FileLock", NoLock)
    assert fetch_resource([], tmp_path / "f.bin", md5=md5(data), offline=True, progress=False).read_bytes() == data
    with pytest.raises(PermissionError):  # a file that fails its check is dealt with under the lock
        fetch_resource([], tmp_path / "f.bin", md5=md5(b"other"), offline=True, progress=False)
