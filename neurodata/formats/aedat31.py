"""AEDAT 3.1 (cAER / libcaer; DVS128 Gesture ``.aedat``): packetised little-endian events.

Layout: ASCII header lines ``#!AER-DAT3.1``, ``#Format: RAW``, ``#Source <id>: <name>``,
``#Start-Time: ...`` ended by ``#!END-HEADER`` (found by searching, since some real files end a
header line with a bare ``\\r``); then packets. A packet is a 28-byte header (``int16 eventType,
int16 eventSource, int32 eventSize, int32 eventTSOffset, int32 eventTSOverflow, int32
eventCapacity, int32 eventNumber, int32 eventValid``) followed by ``eventCapacity * eventSize``
bytes. Polarity events (type 1, 8 bytes: ``uint32 data, int32 timestamp``) are decoded; other
packet types are skipped by their declared size. See ``docs/formats.md`` for the exact rules.

Decoding is two passes over a memory map (kernels in ``_aedat31_decode``): ``_walk_kernel``
validates every packet header and lists the polarity packets, then ``_decode_kernel`` (GIL
released, one thread per core) writes the valid events straight into the preallocated output,
8 events at a time with vector byte shuffles wherever 8 consecutive events are all valid and fit
the packet's room.
"""
from __future__ import annotations

import mmap
import os
import sys
import warnings

import numpy as np

from ..errors import FormatError
from ..events import EVENT_DTYPE
from ._aedat31_writer import write_aedat31
from ._base import FileInfo
from ._parallel import map_ordered, resolve_threads
from ._aedat31_decode import ANY_SOURCE, _decode_kernel, _walk_kernel

NAME = "aedat31"
SUFFIXES = ()  # its magic line always identifies it: a `.aedat` without one is AEDAT 1.0 (aedat2)

_MAGIC = b"#!AER-DAT3"
_END = b"#!END-HEADER"
_MAX_HEADER = 1 << 20
_PARALLEL_MIN_EVENTS = 1 << 20
_WINDOW_BYTES = 32 << 20
_PAGE = mmap.PAGESIZE

# Known libcaer chip names -> (W, H); matched as prefixes of the ``#Source`` name.
_CHIP_SIZES = (("DVS128", (128, 128)), ("DAVIS128", (128, 128)), ("DAVIS208", (208, 192)),
               ("DAVIS240", (240, 180)), ("DAVIS346", (346, 260)), ("DAVIS640", (640, 480)),
               ("DVXplorer", (640, 480)), ("DVXPLORER", (640, 480)))

# _walk_kernel status codes
_OK, _TRUNC_HEADER, _BAD_SIZE, _BAD_CAPACITY, _BAD_NUMBER, _BAD_OVERFLOW, _TRUNC_BODY, _BAD_POL_SIZE = range(8)


def detect(head: bytes) -> bool:
    """True when the file's first bytes ``head`` start with the AEDAT 3 magic line."""
    return head.startswith(_MAGIC)


# --------------------------------------------------------------------------------------- header
def _parse_header(path, head=None):
    """Return ``(lines, data_offset)``: header lines (without ``#``) and the first packet's offset.

    ``head``: the file's first bytes when already in memory (else they are read from ``path``).
    """
    if head is None:
        with open(path, "rb") as f:
            head = f.read(1 << 16)  # real headers are a few hundred bytes
            i = head.find(_END)
            if len(head) == 1 << 16 and (i < 0 or i + len(_END) + 2 > len(head)):
                head += f.read(_MAX_HEADER - len(head))
    head = bytes(head[:_MAX_HEADER])
    if not head.startswith(_MAGIC):
        raise FormatError(path, 0, f"expected the AEDAT 3 magic {_MAGIC!r}, found {head[:12]!r}")
    i = head.find(_END)
    if i < 0:
        raise FormatError(path, len(head), f"no {_END!r} line within the first {len(head)} bytes; "
                          "the header is truncated or the file is not AEDAT 3.1")
    j = i + len(_END)
    if head[j:j + 2] == b"\r\n":
        j += 2
    elif head[j:j + 1] in (b"\r", b"\n"):
        j += 1
    elif j < len(head) or len(head) == _MAX_HEADER:
        raise FormatError(path, j, f"{_END!r} is not followed by a line end")
    text = head[:i].decode("latin-1").replace("\r\n", "\n").replace("\r", "\n")
    lines = [ln[1:] for ln in text.split("\n") if ln.startswith("#")]
    return lines, j


def _header_metadata(lines):
    meta = {"version": lines[0][len("!AER-DAT"):].strip() if lines else "", "sources": {}}
    for ln in lines[1:]:
        key, sep, value = ln.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key.startswith("Source"):
            try:
                meta["sources"][int(key[len("Source"):])] = value
            except ValueError:
                meta[key] = value
        elif key == "Format":
            meta["format"] = value
        elif key == "Start-Time":
            meta["start_time"] = value
        else:
            meta[key] = value
    if meta["sources"]:
        meta["camera"] = next(iter(meta["sources"].values()))
    return meta


def _chip_size(name):
    for prefix, wh in _CHIP_SIZES:
        if name and name.startswith(prefix):
            return wh
    return None


def inspect(path) -> FileInfo:
    """Header fields (version, format, sources ``{id: name}``, start time, camera) and sensor size.

    ``sensor_size`` comes from the first source's chip name when it is a known libcaer chip
    (DVS128, DAVIS128/208/240/346/640, DVXplorer), else None. ``event_count`` is None: counting
    needs the valid bits of every event.
    """
    lines, offset = _parse_header(path)
    meta = _header_metadata(lines)
    wh = _chip_size(meta.get("camera"))
    return FileInfo(path=os.fspath(path), format=NAME, sensor_size=None if wh is None else (*wh, 2),
                    event_count=None, metadata=meta, data_offset=offset)


# --------------------------------------------------------------------------------------- reading
def _check_source(source):
    if source is None:
        return ANY_SOURCE
    if isinstance(source, (bool, np.bool_)) or not isinstance(source, (int, np.integer)) or not -32768 <= source <= 32767:
        raise ValueError(f"source must be an eventSource id (int16) or None, got {source!r}")
    return int(source)


class _Mapped:
    """The file memory-mapped read-only (or bytes already in memory), with the packet list of
    its polarity events.

    The walk over the packet headers maps the whole file; ``keep_mapped=False`` releases it
    again right after (streaming: each block maps only its own packets). ``read`` keeps it, so
    that decoding does not fault the same pages in a second time; decoding releases each
    window of the file once done, so the mapped input shrinks as the output grows.
    """

    def __init__(self, path, source, allow_truncated, data=None, keep_mapped=True, name=None):
        self.path = path
        self.name = name or ("<buffer>" if path is None else os.fspath(path))
        self._f = self.mm = None
        if data is None:
            _, self.data_offset = _parse_header(path)
            self._f = open(path, "rb")
            self.mm = mmap.mmap(self._f.fileno(), 0, access=mmap.ACCESS_READ)
            self.buf = np.frombuffer(self.mm, dtype=np.uint8)
        else:
            _, self.data_offset = _parse_header(path, data)
            self.buf = np.frombuffer(data, dtype=np.uint8)
        try:
            self._walk(_check_source(source), bool(allow_truncated))
            if not keep_mapped:
                self.drop(0, self.buf.size)
        except BaseException:
            self.close()
            raise

    def _walk(self, source, allow_truncated):
        seen = np.zeros(65536, np.int8)
        info = np.zeros(6, np.int64)
        none = np.empty(0, np.int64)
        _walk_kernel(self.buf, self.data_offset, ANY_SOURCE, allow_truncated, none, none, none, seen, info)
        status, offset, value, _, n_all, _ = (int(v) for v in info)
        self._raise_or_warn(status, offset, value, allow_truncated)
        sources = sorted(int(s) - 32768 for s in np.flatnonzero(seen))
        if source == ANY_SOURCE and len(sources) > 1:
            raise ValueError(f"{self.name}: polarity packets come from several sources {sources}; "
                             "pass source=<id> to choose one")
        if source != ANY_SOURCE and sources and source not in sources:
            raise ValueError(f"{self.name}: no polarity packets from source {source}; sources present: {sources}")
        self.pk_pos = np.empty(n_all, np.int64)
        self.pk_num = np.empty(n_all, np.int64)
        self.pk_valid = np.empty(n_all, np.int64)
        if n_all:
            _walk_kernel(self.buf, self.data_offset, source, allow_truncated,
                         self.pk_pos, self.pk_num, self.pk_valid, seen, info)
            n = int(info[4])
            self.pk_pos, self.pk_num, self.pk_valid = self.pk_pos[:n], self.pk_num[:n], self.pk_valid[:n]

    def _raise_or_warn(self, status, offset, value, allow_truncated):
        if status == _OK:
            return
        msgs = {
            _TRUNC_HEADER: f"file ends inside a packet header ({value} of 28 bytes)",
            _BAD_SIZE: f"packet header has eventSize {value}; it must be > 0",
            _BAD_CAPACITY: f"packet header has eventCapacity {value}; it must be >= 0",
            _BAD_NUMBER: f"packet header has eventNumber {value}, outside 0..eventCapacity",
            _BAD_OVERFLOW: f"packet header has eventTSOverflow {value}; it must be >= 0",
            _TRUNC_BODY: f"packet declares eventCapacity x eventSize = {value} bytes but only "
                         f"{self.buf.size - offset - 28} remain before the end of the file",
            _BAD_POL_SIZE: f"polarity packet (eventType 1) has eventSize {value}, expected 8",
        }
        msg = msgs[status]
        if status in (_TRUNC_HEADER, _TRUNC_BODY) and allow_truncated:
            warnings.warn(f"{self.name} at byte {offset}: {msg}; decoded the complete events before it "
                          "(allow_truncated=True)", stacklevel=4)
            return
        hint = ("; pass allow_truncated=True to keep the events before the truncation"
                if status in (_TRUNC_HEADER, _TRUNC_BODY) else "; the file is corrupt or not AEDAT 3.1")
        raise FormatError(self.path, offset, msg + hint)

    def drop(self, start, stop):
        """Release the pages of ``[start, stop)`` from this process (they stay in the page cache)."""
        if self.mm is not None and hasattr(self.mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
            start -= start % _PAGE
            if stop > start:
                self.mm.madvise(mmap.MADV_DONTNEED, start, stop - start)

    def decode(self, lo, hi, threads):
        """Events of polarity packets ``lo..hi-1`` as one ``EVENT_DTYPE`` array."""
        num, cap = self.pk_num[lo:hi], self.pk_valid[lo:hi]
        out = np.empty(int(num.sum()), EVENT_DTYPE)
        got = self._run(lo, hi, cap, out, threads)
        if not np.array_equal(got, cap):  # eventValid disagrees with the valid bits: redo with true counts
            got = self._run(lo, hi, got, out, threads)
        n = int(got.sum())
        if n < out.size:
            try:
                out.resize(n, refcheck=False)  # shrinks in place, no copy
            except ValueError:
                out = out[:n]
        return out

    def _run(self, lo, hi, cap, out, threads):
        if sys.byteorder != "little":  # the decode kernel views the little-endian words natively
            raise NotImplementedError("reading AEDAT 3.1 needs a little-endian host (x86, ARM)")
        off = np.zeros(hi - lo, np.int64)
        np.cumsum(cap[:-1], out=off[1:])
        got = np.zeros(hi - lo, np.int64)
        out8 = out.view(np.uint8)
        pos, num = self.pk_pos[lo:hi], self.pk_num[lo:hi]
        ranges = _split(pos, num, threads)

        def work(r):
            a, b = r
            while a < b:  # windows of ~_WINDOW_BYTES of file, released after decoding
                c = int(np.searchsorted(pos, pos[a] + _WINDOW_BYTES, side="left"))
                c = min(max(c, a + 1), b)
                _decode_kernel(self.buf, pos, num, off, cap, a, c, out8, got)
                self.drop(int(pos[a]), int(pos[c - 1] + 28 + 8 * num[c - 1]))
                a = c

        for _ in map_ordered(work, ranges, len(ranges)):
            pass
        return got

    def close(self):
        self.buf = None
        try:
            if self.mm is not None:
                self.mm.close()
        finally:
            if self._f is not None:
                self._f.close()


def _split(pos, num, threads):
    """Split packets into at most ``threads`` contiguous ranges of about equal event counts."""
    n = pos.size
    total = int(num.sum())
    if threads <= 1 or total < _PARALLEL_MIN_EVENTS or n < 2:
        return [(0, n)] if n else []
    cuts = np.searchsorted(np.cumsum(num), [total * i // threads for i in range(1, threads)])
    edges = [0, *sorted(set(int(c) for c in cuts if 0 < c < n)), n]
    return list(zip(edges[:-1], edges[1:]))


def read(path, *, source=None, allow_truncated=False, threads=None) -> np.ndarray:
    """Decode the polarity events of an AEDAT 3.1 file.

    Parameters
    ----------
    path : str or os.PathLike
    source : int, optional
        ``eventSource`` id whose polarity packets to decode. Required when polarity packets come
        from more than one source (``ValueError`` otherwise).
    allow_truncated : bool, default False
        When the file ends inside the last packet, keep that packet's complete events and warn
        (``UserWarning``) instead of raising ``FormatError``.
    threads : int, optional
        Decoding threads (default: the usable CPUs, at most 8); files under 1 M events use one.

    Returns
    -------
    ndarray[EVENT_DTYPE], shape (N,)
        Valid events (bit 0 of ``data`` set) among the first ``eventNumber`` events of each
        polarity packet, in file order: ``x = (data >> 17) & 0x7FFF``, ``y = (data >> 2) & 0x7FFF``,
        ``p = (data >> 1) & 1``, ``t = (eventTSOverflow << 31) | timestamp`` (µs). A file without
        polarity packets gives 0 events.

    Raises
    ------
    FormatError
        Wrong magic, no ``#!END-HEADER``, or a packet header with ``eventSize <= 0``, negative
        ``eventCapacity``/``eventTSOverflow``, ``eventNumber`` outside ``0..eventCapacity``, a
        polarity ``eventSize`` other than 8, or a body past the end of the file; the message
        names the file and the packet's byte offset.
    """
    threads = resolve_threads(threads)
    m = _Mapped(path, source, allow_truncated)
    try:
        return m.decode(0, m.pk_pos.size, threads)
    finally:
        m.close()


def decode(data, *, name=None, source=None, allow_truncated=False, threads=None) -> np.ndarray:
    """:func:`read` for a whole file already in memory (bytes-like, e.g. an archive member);
    errors name ``name`` (default ``<buffer>``) and the byte offset."""
    threads = resolve_threads(threads)
    m = _Mapped(None, source, allow_truncated, data=data, name=name)
    try:
        return m.decode(0, m.pk_pos.size, threads)
    finally:
        m.close()


def iter_blocks(path, block_bytes, *, source=None, allow_truncated=False, threads=None):
    """Yield the events of :func:`read` in file order, packet by packet in groups of about
    ``block_bytes`` bytes of file (every header is validated before the first block)."""
    threads = resolve_threads(threads)
    m = _Mapped(path, source, allow_truncated, keep_mapped=False)
    try:
        pos = m.pk_pos
        lo = 0
        while lo < pos.size:
            hi = max(lo + 1, int(np.searchsorted(pos, pos[lo] + max(int(block_bytes), 1), side="left")))
            yield m.decode(lo, hi, threads)
            lo = hi
    finally:
        m.close()


# --------------------------------------------------------------------------------------- writing
def write(path, events, sensor_size=None, *, packet_events=4096, source_id=1, source_name=None,
          start_time=None) -> None:
    """Write ``events`` as an AEDAT 3.1 file of polarity packets.

    Parameters
    ----------
    events : ndarray[EVENT_DTYPE], shape (N,)
        ``t`` in 0 .. 2**62 - 1 µs, ``x`` and ``y`` in 0 .. 32767.
    sensor_size : (W, H, P), optional
        Checked against the events; names the chip in ``#Source`` (128×128 → ``DVS128``,
        240×180 → ``DAVIS240C``, 346×260 → ``DAVIS346``, 640×480 → ``DVXplorer``; else
        ``Unknown``). Default ``DVS128``.
    packet_events : int, default 4096
        Events per packet; a packet also ends where ``t >> 31`` (its ``eventTSOverflow``) changes.
    source_id : int, default 1
        ``eventSource`` of every packet and the id on the ``#Source`` line.
    source_name : str, optional
        Overrides the chip name written on the ``#Source`` line.
    start_time : datetime, optional
        ``#Start-Time`` (default: now, local time).

    Every packet has ``eventType 1, eventSize 8, eventTSOffset 4, eventCapacity = eventNumber =
    eventValid = n``; each event ``data = x << 17 | y << 2 | p << 1 | 1``, ``timestamp = t & (2**31 - 1)``.
    """
    write_aedat31(path, events, sensor_size, packet_events, source_id, source_name, start_time)


__all__ = ["read", "decode", "write", "inspect", "iter_blocks", "detect"]
