"""Fetch one resource file safely: mirrors, HTTP Range resume, retries, checksum, atomic rename.

``fetch_resource`` is the single entry point; ``file_digest`` and ``parse_checksum`` are the hash
helpers. The rules a user can observe are written down in ``docs/downloads.md``.

Life of a download of ``dest``:

1. ``<dest>.lock`` is locked (``fcntl.flock``): a second process fetching the same file waits,
   then finds the finished file.
2. An existing ``dest`` is checked (size and digests) and returned when it matches.
3. Sources are tried in order: each mirror as ``<mirror>/<dataset>/<file name>``, then the URLs.
   HTTP(S) bytes stream into ``<dest>.part``; a ``.part`` left by an interrupted run is resumed
   with ``Range: bytes=<size>-``. ``file://`` URLs and plain paths are hard-linked (or copied).
4. The ``.part`` is verified (size, md5/sha256) and only then renamed to ``dest`` (``os.replace``).
"""
from __future__ import annotations

import hashlib
import os
import re
import socket
import sys
import time
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

from ._filelock import FileLock
from .errors import ChecksumError, DownloadError

__all__ = ["fetch_resource", "file_digest", "parse_checksum", "verify_file", "is_offline", "env_mirrors",
           "mirror_token"]

CHUNK = 1 << 16  # a read returns once it has this much: bytes before a reset or stall are kept
ALGORITHMS = ("md5", "sha256")
_RETRY_STATUS = {408, 429}
_USER_AGENT = "neurodata (https://github.com/neurodata; python-requests)"


def is_offline(offline: bool | None = None) -> bool:
    """``offline`` when given, else whether ``NEURODATA_OFFLINE`` is 1/true/yes/on."""
    if offline is not None:
        return bool(offline)
    return os.environ.get("NEURODATA_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def env_mirrors() -> list[str]:
    """Mirror base URLs or folders from ``NEURODATA_MIRROR`` (separated by whitespace or commas)."""
    return [m for m in re.split(r"[\s,]+", os.environ.get("NEURODATA_MIRROR", "")) if m]


def mirror_token() -> str | None:
    """The mirror access token from ``NEURODATA_MIRROR_TOKEN`` (None when unset or blank).

    It is sent as ``Authorization: Bearer <token>`` to HTTP(S) mirrors only, never to a resource's
    own URLs (``requests`` also drops it when a mirror redirects to another host)."""
    return os.environ.get("NEURODATA_MIRROR_TOKEN", "").strip() or None


def parse_checksum(value: str, algorithm: str | None = None) -> tuple[str, str]:
    """Split ``"sha256:<hex>"`` / ``"md5:<hex>"`` (pooch's notation) or a bare hex digest.

    A bare digest takes ``algorithm`` when given, else is inferred from its length (32 hex digits:
    md5, 64: sha256). Returns ``(algorithm, lower-case hex)``; raises ``ValueError`` otherwise.
    """
    text = str(value).strip()
    algo, sep, digest = text.partition(":")
    if not sep:
        algo, digest = algorithm, text
        if algo is None:
            algo = {32: "md5", 64: "sha256"}.get(len(digest))
    algo = (algo or "").lower()
    digest = digest.lower()
    if algorithm is not None and algo != algorithm:
        raise ValueError(f"checksum {value!r} is not a {algorithm} digest")
    lengths = {"md5": 32, "sha256": 64}
    if algo not in lengths or len(digest) != lengths[algo] or not re.fullmatch(r"[0-9a-f]+", digest):
        raise ValueError(f"checksum {value!r} is not 'md5:<32 hex>' or 'sha256:<64 hex>'")
    return algo, digest


def file_digest(path, algorithm: str = "sha256", chunk_size: int = CHUNK) -> str:
    """Hex digest (``"md5"`` or ``"sha256"``) of the file at ``path``, read in ``chunk_size`` blocks."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()


def _expected(md5, sha256, checksum) -> dict[str, str]:
    out: dict[str, str] = {}
    for value, algo in ((md5, "md5"), (sha256, "sha256"), (checksum, None)):
        if value is not None:
            a, d = parse_checksum(value, algo)
            if out.get(a, d) != d:
                raise ValueError(f"two different {a} checksums given: {out[a]} and {d}")
            out[a] = d
    return out


def _options_hint(dest: Path, sources, checksum: bool) -> str:
    """What the user can do about a file that failed its check (``checksum``) or that no source
    delivered (skipping verification would not help there); names the first web source."""
    urls = [s for s in sources if _local_path(s) is None]
    where = f" from {urls[0]}" if urls else ""
    retry = ("retry (a host may serve an error page or a changed file)" if checksum else
             "retry later (a host may be down or unreachable from here)")
    skip = "; or skip verification with --no-verify / verify=False (not recommended)" if checksum else ""
    return (f"What you can do: {retry}; use a mirror (--mirror URL or NEURODATA_MIRROR); download the file "
            f"yourself{where} and pass --from PATH (or put it at {dest}){skip}.")


def _checksum_error(message: str, path, expected: str, actual: str) -> ChecksumError:
    """A ``ChecksumError`` carrying ``.path``, ``.expected`` and ``.actual`` (``"<algo>:<hex>"``)."""
    err = ChecksumError(message.rstrip())
    err.path, err.expected, err.actual = Path(path), expected, actual
    return err


def verify_file(path, *, md5=None, sha256=None, checksum=None, size=None, source=None, hint="") -> None:
    """Raise ``ChecksumError`` unless ``path`` has ``size`` bytes and the given digests.

    The error names the file, the expected and the actual value, ``source`` (where it came from)
    and ``hint`` (what the user can do). Nothing is deleted here.
    """
    path = Path(path)
    expected = _expected(md5, sha256, checksum)
    origin = f" (from {source})" if source else ""
    if size is not None:
        actual = path.stat().st_size
        if actual != int(size):
            raise _checksum_error(f"{path.name}{origin}: expected {int(size)} bytes, got {actual}. {hint}",
                                  path, f"size:{int(size)}", f"size:{actual}")
    for algo, digest in expected.items():
        actual = file_digest(path, algo)
        if actual != digest:
            raise _checksum_error(f"{path.name}{origin}: {algo} mismatch, expected {digest}, got {actual}. {hint}",
                                  path, f"{algo}:{digest}", f"{algo}:{actual}")


class _ProgressBar:
    """``name  12.0 MiB / 40.0 MiB  30%  5.1 MiB/s  ETA 0:05`` redrawn on one line of ``stream``."""

    def __init__(self, name: str, stream=None, min_interval: float = 0.1):
        self.name, self.stream, self.min_interval = name, stream or sys.stderr, min_interval
        self.t0 = time.monotonic()
        self.start_bytes = None
        self.last = 0.0
        self.drawn = False

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if self.start_bytes is None or done < self.start_bytes:  # first call, or restarted from zero
            self.start_bytes, self.t0 = done, now
        if now - self.last < self.min_interval and done != total:
            return
        self.last = now
        mib = 1 << 20
        rate = (done - self.start_bytes) / max(now - self.t0, 1e-9)
        text = f"{self.name}  {done / mib:.1f} MiB"
        if total:
            eta = (total - done) / rate if rate > 0 else 0
            text += f" / {total / mib:.1f} MiB  {100 * done / total:3.0f}%"
        text += f"  {rate / mib:.1f} MiB/s"
        if total and rate > 0:
            text += f"  ETA {int(eta) // 60}:{int(eta) % 60:02d}"
        self.stream.write("\r" + text.ljust(78))
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def _progress_callback(progress, name: str):
    if callable(progress):
        return progress, None
    if progress is None:
        progress = sys.stderr is not None and sys.stderr.isatty()
    if progress:
        bar = _ProgressBar(name)
        return bar, bar
    return None, None


def _local_path(source: str) -> Path | None:
    """The file path of a ``file://`` URL or plain path, or None for http(s) URLs."""
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter: a Windows drive
        raise ValueError(f"unsupported URL scheme in {source!r}; use http(s)://, file:// or a path")
    return Path(source).expanduser()


def _sources(urls, mirrors, dataset, filename) -> list[str]:
    out = []
    for m in mirrors:
        m = str(m)
        parts = [p for p in (dataset, filename) if p]
        local = _local_path(m)
        out.append(str(local.joinpath(*parts)) if local is not None
                   else "/".join([m.rstrip("/"), *(urllib.parse.quote(p) for p in parts)]))  # "a#b.zip" is a path, not a fragment
    out.extend(str(u) for u in urls)
    return out


class _SourceFailed(Exception):
    """This source cannot deliver the file (reason in the message); try the next one."""


class _Retryable(Exception):
    """A transient failure (timeout, dropped connection, 5xx): retry the same source."""


def _copy_local(src: Path, part: Path, report) -> None:
    if not src.is_file():
        raise _SourceFailed("no such file")
    part.unlink(missing_ok=True)
    try:
        os.link(src, part)
        if report:
            n = part.stat().st_size
            report(n, n)
        return
    except OSError:
        pass
    total = src.stat().st_size
    done = 0
    with open(src, "rb") as fin, open(part, "wb") as fout:
        for block in iter(lambda: fin.read(CHUNK), b""):
            fout.write(block)
            done += len(block)
            if report:
                report(done, total)


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _http_attempt(session, url: str, part: Path, timeout, report, headers=None) -> bool:
    """One GET into ``part``, resumed with ``Range`` when it exists; True when it appended to an
    existing part (a resumed download) and completed.

    Raises ``_Retryable`` (transient: retry) or ``_SourceFailed`` (give up on this URL)."""
    import requests
    import urllib3

    have = part.stat().st_size if part.exists() else 0
    headers = {**(headers or {}), **({"Range": f"bytes={have}-"} if have else {})}
    try:
        resp = session.get(url, headers=headers, stream=True, timeout=timeout)
    except (requests.Timeout, requests.ConnectionError) as e:
        raise _Retryable(f"{type(e).__name__}: {e}") from None
    except requests.RequestException as e:  # invalid URL, too many redirects, ...
        raise _SourceFailed(f"{type(e).__name__}: {e}") from None
    with resp:
        status = resp.status_code
        if status == 416 and have:
            m = re.match(r"bytes\s+\*/(\d+)", resp.headers.get("Content-Range", ""))
            if m and int(m.group(1)) == have:
                return True  # the part file is already complete
            part.unlink()
            raise _Retryable(f"HTTP 416 for bytes={have}-: restarting from zero")
        if status >= 500 or status in _RETRY_STATUS:
            raise _Retryable(f"HTTP {status}")
        if status == 401:
            raise _SourceFailed("HTTP 401 (this server wants a token: set NEURODATA_MIRROR_TOKEN)")
        if status >= 400:
            raise _SourceFailed(f"HTTP {status}")
        total = None
        mode = "wb"
        if status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:
                part.unlink(missing_ok=True)  # unusable partial answer: start again from zero
                raise _Retryable(f"bad Content-Range {resp.headers.get('Content-Range')!r} for bytes={have}-")
            mode = "ab"
            total = None if m.group(3) == "*" else int(m.group(3))
        else:  # 200: the server ignored Range (or none was sent): the body is the whole file
            have = 0
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        done = have
        with open(part, mode) as f:
            try:
                for block in resp.raw.stream(CHUNK, decode_content=False):
                    f.write(block)
                    done += len(block)
                    if report:
                        report(done, total)
            except (requests.RequestException, urllib3.exceptions.HTTPError, socket.timeout, ConnectionError) as e:
                raise _Retryable(f"connection lost after {done} bytes ({type(e).__name__})") from None
        if total is not None and done < total:
            raise _Retryable(f"connection closed after {done} of {total} bytes")
        if total is not None and done > total:
            part.unlink()
            raise _Retryable(f"received {done} bytes, more than the announced {total}")
        return mode == "ab"


def _fetch_http(session, url, part, *, retries, timeout, backoff, report, headers=None) -> bool:
    """``part`` completed from ``url``; True when some bytes of it came from a resumed request."""
    failures, resumed = 0, False
    while True:
        before = part.stat().st_size if part.exists() else 0
        try:
            return _http_attempt(session, url, part, timeout, report, headers) or resumed
        except _Retryable as e:
            after = part.stat().st_size if part.exists() else 0
            failures = 0 if after > before else failures + 1
            if failures > retries:
                raise _SourceFailed(f"{e} (gave up after {retries} retries)") from None
            if failures:  # an attempt that added bytes is resumed at once
                time.sleep(min(backoff * 2 ** (failures - 1), 60.0))
            else:
                resumed = True


def fetch_resource(urls, dest, *, md5=None, sha256=None, checksum=None, size=None, dataset=None,
                   mirrors=(), offline=None, verify=True, progress=None, retries=4, timeout=(15, 60),
                   backoff=1.0, session=None) -> Path:
    """Make sure the verified file ``dest`` exists, fetching it if needed; return ``dest``.

    Parameters
    ----------
    urls : str or sequence of str
        Where the file lives, tried in order after the mirrors: ``http(s)://`` URLs, ``file://``
        URLs or plain local paths (hard-linked into place, copied across devices).
    dest : str or os.PathLike
        Final path. Its folder is created. Helper files next to it: ``<dest>.part`` (the
        download in progress, kept on interruption for resume) and ``<dest>.lock`` (while running).
    md5, sha256, checksum : str, optional
        Expected digests: hex, or pooch's ``"md5:<hex>"`` / ``"sha256:<hex>"`` (``checksum`` takes
        either algorithm). Every digest given is checked.
    size : int, optional
        Expected size in bytes (checked before hashing).
    dataset : str, optional
        Registry name: mirrors hold the file as ``<mirror>/<dataset>/<dest name>``.
    mirrors : sequence of str
        Mirror base URLs or folders, tried before ``urls``; ``NEURODATA_MIRROR`` adds more after them.
        ``NEURODATA_MIRROR_TOKEN`` (see ``mirror_token``) is sent to HTTP(S) mirrors only.
    offline : bool, optional
        Never touch the network (default: ``NEURODATA_OFFLINE``); local sources are still used.
    verify : bool
        False skips the digest and size checks (with a warning); only on explicit request.
    progress : None, bool or callable
        None: a bar on stderr when it is a terminal; False: quiet; True: always a bar;
        a callable is called as ``progress(bytes_done, bytes_total_or_None)`` after each block.
    retries : int
        Retries per source after transient failures (timeouts, connection errors, HTTP 5xx, 408,
        429) that made no progress, with exponential backoff ``backoff * 2**k`` s (at most 60 s).
        A dropped connection that delivered bytes is resumed without using up a retry.
        Other 4xx answers move on to the next source at once.
    timeout : float or (connect, read) tuple
        Seconds, passed to ``requests``.
    session : requests.Session, optional

    Raises
    ------
    ChecksumError
        Every source delivered a file that failed verification (the bad ``.part`` is deleted).
    DownloadError
        No source could deliver the file, or offline mode and no local source has it.
    KeyboardInterrupt
        Re-raised after closing files; ``<dest>.part`` stays for resume, nothing else is left.
    """
    dest = Path(dest)
    urls = [urls] if isinstance(urls, (str, os.PathLike)) else list(urls)
    expected = _expected(md5, sha256, checksum)
    if not verify:
        warnings.warn(f"checksum verification of {dest.name} is disabled (verify=False / --no-verify): "
                      "a truncated, changed or tampered file would be used", UserWarning, stacklevel=2)
    check = dict(size=size, **expected) if verify else {}
    offline = is_offline(offline)
    all_mirrors = [*mirrors, *env_mirrors()]
    sources = _sources([str(u) for u in urls], all_mirrors, dataset, dest.name)
    token = mirror_token()
    auth = {s: {"Authorization": f"Bearer {token}"} for s in sources[:len(all_mirrors)]} if token else {}
    hint = _options_hint(dest, sources, checksum=True)
    part = dest.with_name(dest.name + ".part")
    if dest.exists():  # a sound file needs no lock (a read-only folder could not hold one)
        try:
            verify_file(dest, source="existing file", hint=hint, **check)
            return dest
        except ChecksumError:
            pass  # dealt with under the lock: another process may be replacing it right now
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(dest.with_name(dest.name + ".lock"), waiting=f"waiting for another process fetching {dest}"):
        if dest.exists():
            try:
                verify_file(dest, source="existing file", hint=hint, **check)
                return dest
            except ChecksumError as e:
                rejected = dest.with_name(dest.name + ".rejected")
                os.replace(dest, rejected)
                warnings.warn(f"{e}; moved it to {rejected} and fetching again", UserWarning, stacklevel=2)
        return _fetch_locked(sources, dest, part, check, hint, offline, progress,
                             dict(retries=retries, timeout=timeout, backoff=backoff), session, auth)


def _fetch_locked(sources, dest, part, check, hint, offline, progress, http_opts, session, auth=None) -> Path:
    report, bar = _progress_callback(progress, dest.name)
    failures: list[str] = []
    checksum_error = None
    try:
        for source in sources:
            local = _local_path(source)
            if local is None and offline:
                failures.append(f"{source}: skipped (offline mode)")
                continue
            resumed = local is None and part.exists() and part.stat().st_size > 0
            for from_zero in (False, True):
                try:
                    if local is not None:
                        _copy_local(local, part, report)
                    else:
                        if session is None:
                            import requests

                            session = requests.Session()
                            session.headers.update({"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"})
                        if from_zero:
                            part.unlink(missing_ok=True)
                        resumed = _fetch_http(session, source, part, report=report,
                                              headers=(auth or {}).get(source), **http_opts) or resumed
                    verify_file(part, source=source, hint=hint, **check)
                    os.replace(part, dest)
                    return dest
                except _SourceFailed as e:
                    failures.append(f"{source}: {e}")
                    break
                except ChecksumError as e:
                    part.unlink(missing_ok=True)
                    checksum_error = e
                    failures.append(f"{source}: {e.expected} expected, got {e.actual} (file deleted)")
                    if not resumed:
                        break  # a retry from zero only helps a download that was resumed
    finally:
        if bar is not None:
            bar.close()
    if offline and checksum_error is None:
        first = next((s for s in sources if _local_path(s) is None), None)
        raise DownloadError(
            f"offline mode (NEURODATA_OFFLINE=1 or offline=True): {dest.name} is missing; expected it at {dest}. "
            f"Download it{f' from {first}' if first else ''} on a machine with network access and put it "
            f"there, or pass --from PATH / source= pointing at it, or unset NEURODATA_OFFLINE.")
    if checksum_error is not None:
        raise _checksum_error("\n  ".join([f"{dest.name} failed verification from every source:", *failures])
                              + f"\n{hint}", dest, checksum_error.expected, checksum_error.actual)
    raise DownloadError("\n  ".join([f"could not fetch {dest.name}:", *failures])
                        + f"\n{_options_hint(dest, sources, checksum=False)}")
