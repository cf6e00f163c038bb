"""AEDAT 4.0 (iniVation DV ``.aedat4``): an IOHeader flatbuffer, then compressed flatbuffer packets.

Layout: ``#!AER-DAT4.0\\r\\n``, ``uint32`` length L, L bytes of IOHeader flatbuffer (identifier
``IOHE``: slot 0 ``compression`` int32 — 0 none, 1/2 LZ4 frame, 3/4 Zstd; slot 1
``file_data_position`` int64, default -1; slot 2 ``description``: XML naming the streams), then
packets ``int32 stream id, uint32 size, size bytes``: each payload is compressed on its own and
holds a size-prefixed flatbuffer (``EVTS``, ``FRME``, ``IMUS``, ``TRIG``). Packets end at
``file_data_position`` when that lies inside the file, else at the end of the file; the file data
table is never needed for reading. Events are 16-byte structs ``{int64 t; int16 x; int16 y; bool on}``.

Reading: ``_walk_kernel`` lists the packets from a memory map. Files stored or LZ4-compressed take
the direct path of ``_aedat4_decode.py`` (event counts from each packet's first bytes, then threads
decode every LZ4 frame with liblz4's block functions into a per-thread scratch buffer and convert the
events straight into their slice of one exactly sized output). Zstd files, and any file with a
packet the direct path does not accept, take the per-packet path here: worker threads ``pread``,
decompress (LZ4/Zstd release the GIL), validate each ``EVTS`` flatbuffer
(``_locate_events_kernel``) and convert its events right away, while they are in cache, into a
batch-local array (``_copy_events_kernel``, GIL released); the calling thread places each batch
into a preallocated output with a byte copy. This path also names every error. Container pieces
live in ``_aedat4_layout.py``, the writer in ``_aedat4_writer.py``.
"""
from __future__ import annotations

import contextlib
import mmap
import os
import queue
import sys
import warnings
from typing import NamedTuple

import numpy as np

from ..errors import FormatError
from ..events import EVENT_DTYPE
from . import _flatbuffers as fb
from ._aedat4_decode import (_copy_events_kernel, _locate_events_kernel, _walk_kernel, direct_available,
                             read_direct, release_pages)
from ._aedat4_layout import (COMPRESSION, DV_EVENT, FTAB_FIELDS, IMU_DTYPE, IMU_FIELDS, MAGIC, MAX_SIDE,
                             TRIGGER_DTYPE, TRIGGER_FIELDS, Header, decompress)
from ._aedat4_writer import write_aedat4
from ._base import FileInfo
from ._parallel import map_ordered, resolve_threads

NAME = "aedat4"
SUFFIXES = (".aedat4",)

_BATCH_BYTES = 1 << 20
_INLINE_BELOW = 4 << 20  # event payload bytes under which threads do not pay off
_DIRECT_INLINE_BELOW = 1 << 20  # the same for the direct path (no per-packet Python to share)
_MAX_TABLE = 256 << 20
_LITTLE = sys.byteorder == "little"  # the copy kernel reads the little-endian structs as native int64

__all__ = ["read", "decode", "write", "inspect", "iter_blocks", "detect", "Aedat4Streams", "IMU_DTYPE",
           "TRIGGER_DTYPE", "DV_EVENT"]


class Aedat4Streams(NamedTuple):
    """What ``read(..., imu=True)`` / ``triggers=True`` return; unrequested members are None."""

    events: np.ndarray
    imu: np.ndarray | None
    triggers: np.ndarray | None


def detect(head: bytes) -> bool:
    """True when the file's first bytes ``head`` start with ``#!AER-DAT4.0\\r\\n``."""
    return head.startswith(MAGIC)


_EVTS_ERRORS = {1: "decompressed packet of {v} bytes is too short for a flatbuffer",
                2: "flatbuffer size prefix {v} exceeds the decompressed packet",
                3: "flatbuffer identifier is not EVTS",
                4: "flatbuffer root table offset {v} lies outside the buffer",
                5: "flatbuffer vtable ({v}) is outside the buffer or has impossible sizes",
                6: "flatbuffer field offset {v} lies outside its table",
                7: "flatbuffer event vector (offset/count {v}) runs past the buffer"}


# --------------------------------------------------------------------------------------- reading
class _Reader:
    """The header and packet list of one file, and per-packet decoding."""

    def __init__(self, path, allow_truncated=False, data=None, keep_map=False, name=None):
        """``keep_map``: when the direct path applies, keep the file's memory map for :meth:`buffer`
        until :meth:`unmap` (the pages the walk touched stay mapped for the direct path, which
        releases them as it goes)."""
        self.path = path
        self.data = None if data is None else memoryview(data).cast("B")
        self.mm = None
        self.h = Header(path, self.data, name)
        self._walk(bool(allow_truncated), keep_map and direct_available(self.h.compression))

    def map(self):
        """Map the file (again) for :meth:`buffer` (no-op for in-memory data or a kept map)."""
        if self.data is None and self.mm is None:
            with open(self.path, "rb") as f:
                self.mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)

    def buffer(self):
        """The whole file as a uint8 array (the in-memory data, or the kept map) and its mmap (or None)."""
        return np.frombuffer(self.data if self.mm is None else self.mm, np.uint8), self.mm

    def unmap(self):
        """Release and close the kept map (see ``keep_map``)."""
        mm, self.mm = self.mm, None
        if mm is not None:
            release_pages(mm, 0, len(mm))
            with contextlib.suppress(BufferError):  # an exception's traceback may still hold a view
                mm.close()

    def _walk(self, allow_truncated, keep_map):
        h = self.h
        info = np.zeros(4, np.int64)
        if self.data is not None:
            self._walk_buffer(np.frombuffer(self.data, np.uint8), info)
        else:
            with open(self.path, "rb") as f:
                self.mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            self._walk_buffer(np.frombuffer(self.mm, np.uint8), info)
            if not keep_map:
                self.unmap()  # the walk touched pages; give them back
        status, offset, value = (int(v) for v in info[:3])
        if status:
            msg = (f"file ends inside a packet header ({value} of 8 bytes)" if status == 1 else
                   f"packet payload of {value} bytes runs past the end of the packet area "
                   f"({h.packets_end - offset - 8} bytes left)")
            if not allow_truncated:
                self.unmap()
                raise FormatError(self.path, offset, msg + "; pass allow_truncated=True to keep the packets before it")
            warnings.warn(f"{h.name} at byte {offset}: {msg}; decoded the packets before it "
                          "(allow_truncated=True)", stacklevel=4)
        declared = np.array([s["id"] for s in h.streams], np.int64)
        bad = ~np.isin(self.pk_id, declared)
        if bad.any():
            i = int(np.argmax(bad))
            self.unmap()
            raise FormatError(self.path, int(self.pk_pos[i]),
                              f"packet of stream id {int(self.pk_id[i])}, which the IOHeader does not declare "
                              f"(declared: {declared.tolist()})")

    def _walk_buffer(self, buf, info):
        h = self.h
        empty = np.empty(0, np.int64)
        _walk_kernel(buf, h.data_offset, h.packets_end, empty, empty, empty, info)
        n = int(info[3])
        self.pk_pos, self.pk_id, self.pk_size = (np.empty(n, np.int64) for _ in range(3))
        if n:
            _walk_kernel(buf, h.data_offset, h.packets_end, self.pk_pos, self.pk_id, self.pk_size, info)

    def payload(self, fd, i, scratch=None):
        """Packet ``i``'s decompressed payload (bytes-like). ``fd``: the open file (unused for
        in-memory data); ``scratch``: a reusable bytearray for the compressed bytes."""
        pos, size = int(self.pk_pos[i]), int(self.pk_size[i])
        if self.data is not None:
            return decompress(self.path, self.h.compression, self.data[pos + 8:pos + 8 + size], pos + 8)
        if scratch is None or len(scratch) < size or self.h.compression == 0:
            data = os.pread(fd, size, pos + 8)
            got = len(data)
        else:
            data = memoryview(scratch)[:size]
            got = os.preadv(fd, [data], pos + 8)
        if got != size:
            raise FormatError(self.path, pos + 8, f"file shrank while reading: {got} of {size} bytes")
        return decompress(self.path, self.h.compression, data, pos + 8)

    def decode_batch(self, fd, idx, size, free):
        """Decompress, validate and convert packets ``idx`` (worker side): ``(idx, buffer, count)``,
        the events in ``buffer[:count]``.

        Each packet is converted right after its decompression, while it is in cache, into one
        batch-local ``EVENT_DTYPE`` buffer, taken from the queue ``free`` when it holds one (a
        recycled buffer's pages are already mapped; None: always a new one). Errors keep the
        precedence of validating the whole batch first: a corrupt packet anywhere in the batch
        wins over an out-of-range event in an earlier packet."""
        info = np.zeros(5, np.int64)
        w, h = size
        scratch = bytearray(int(self.pk_size[idx].max())) if len(idx) and hasattr(os, "preadv") else None
        out, k, bad_xy = np.empty(0, EVENT_DTYPE), 0, None
        if free is not None:
            with contextlib.suppress(queue.Empty):
                out = free.get_nowait()
        for j, i in enumerate(idx):
            dec = np.frombuffer(self.payload(fd, i, scratch), np.uint8)
            status = _locate_events_kernel(dec, info)
            if status:
                raise FormatError(self.path, int(self.pk_pos[i]) + 8, _EVTS_ERRORS[status].format(v=int(info[2]))
                                  + f" (byte {int(info[1])} of the decompressed packet)")
            if bad_xy is not None:
                continue  # only look for a corrupt packet now
            start, count = int(info[3]), int(info[4])
            if k + count > out.size:
                # room for the rest of the batch at this packet's events per payload byte
                rest = int(self.pk_size[idx[j:]].sum())
                est = k + int(count / max(int(self.pk_size[i]), 1) * rest * 1.05) + count
                out = _place(np.empty(max(est, 2 * out.size), EVENT_DTYPE), 0, out[:k])
            words = dec[start:start + 16 * count].view("<i8")
            bad = _copy_events_kernel(words if _LITTLE else words.astype(np.int64), out, k, w, h)
            if bad >= 0:
                bad_xy = FormatError(self.path, int(self.pk_pos[i]) + 8,
                                     f"event {bad} of the packet has x/y outside the stream's sizeX x sizeY {w}x{h} "
                                     f"(byte {start + 16 * bad} of the decompressed packet)")
            k += count
        if bad_xy is not None:
            raise bad_xy
        return idx, out, k

    def table_packets(self, fd, stream, identifier, fields, dtype):
        """All elements of a table-vector stream (``IMUS``/``TRIG``) as a structured array."""
        parts = [np.zeros(0, dtype)]
        for i in ([] if stream is None else np.flatnonzero(self.pk_id == stream["id"])):
            dec = self.payload(fd, i)
            try:
                t = fb.root(dec, size_prefixed=True, identifier=identifier)
                vec = t.vector(0, 4)
                if vec is not None:
                    parts.append(fb.table_vector_columns(dec, vec[0], vec[1], t.end, fields))
            except fb.FlatbufferError as e:
                raise FormatError(self.path, int(self.pk_pos[i]) + 8,
                                  f"{identifier.decode()} flatbuffer: {e}") from None
        return np.concatenate(parts).astype(dtype, copy=False)

    def batches(self, sid, batch_bytes):
        """Consecutive packet indices of stream ``sid`` grouped into about ``batch_bytes`` bytes."""
        idx = np.flatnonzero(self.pk_id == sid)
        cum = np.cumsum(self.pk_size[idx])
        groups = []
        lo = 0
        while lo < idx.size:
            base = cum[lo - 1] if lo else 0
            hi = max(lo + 1, int(np.searchsorted(cum, base + batch_bytes, side="left")))
            groups.append(idx[lo:hi])
            lo = hi
        return groups

    def decoded(self, s, batch_bytes, threads, recycle):
        """Yield ``(packet indices, events)`` of stream ``s`` in file order, batch by batch,
        decoded on ``threads`` threads. ``recycle``: the caller is done with each ``events``
        when it asks for the next, so its buffer is reused (fresh pages cost page faults)."""
        groups = self.batches(s["id"], batch_bytes)
        size = _size(s)
        free = queue.SimpleQueue() if recycle else None
        with self.opened() as fd:
            for idx, buf, k in map_ordered(lambda g: self.decode_batch(fd, g, size, free), groups, threads):
                if recycle:
                    yield idx, buf[:k]
                    free.put(buf)
                else:
                    yield idx, _trimmed(buf, k)

    @contextlib.contextmanager
    def opened(self):
        """A file descriptor for :meth:`payload` (None for in-memory data)."""
        if self.data is not None:
            yield None
            return
        with open(self.path, "rb") as f:
            yield f.fileno()


def read(path, *, stream=None, imu=False, triggers=False, allow_truncated=False, threads=None):
    """Decode the events of one event stream (and optionally IMU samples and triggers).

    Parameters
    ----------
    path : str or os.PathLike
    stream : int or str, optional
        Event stream by id (``0``) or output name (``"events"``); default the lowest-id ``EVTS``
        stream. A file without an ``EVTS`` stream gives 0 events.
    imu, triggers : bool, default False
        Also decode the first ``IMUS`` / ``TRIG`` stream (empty arrays when there is none).
    allow_truncated : bool, default False
        When the file ends inside a packet, keep the packets before it and warn instead of raising.
    threads : int, optional
        Decompression threads (default: usable CPUs, at most 8; one for under 1 MiB of compressed
        events, under 4 MiB for Zstd files).

    Returns
    -------
    ndarray[EVENT_DTYPE], shape (N,)
        Events in file order: ``t`` µs as stored (DV: since the Unix epoch), ``x``, ``y`` as
        stored, ``p = 1`` when ``on`` is non-zero. With ``imu`` or ``triggers``: an
        :class:`Aedat4Streams` ``(events, imu, triggers)``, ``imu`` of ``IMU_DTYPE`` and
        ``triggers`` of ``TRIGGER_DTYPE`` (None when not requested).

    Raises
    ------
    FormatError
        Wrong magic, a bad IOHeader, a packet past the end, a packet of an undeclared stream, an
        empty or corrupt compressed payload, a flatbuffer whose offsets leave its buffer, or an
        event outside the stream's declared ``sizeX`` × ``sizeY``; the message names the file and
        the byte offset (of the packet payload, plus the position inside the decompressed buffer).
    """
    r = _Reader(path, allow_truncated, keep_map=True)
    try:
        return _read(r, stream, imu, triggers, threads)
    finally:
        r.unmap()


def decode(data, *, name=None, stream=None, imu=False, triggers=False, allow_truncated=False, threads=None):
    """:func:`read` for a whole file already in memory (bytes-like, e.g. an archive member);
    errors name ``name`` (default ``<buffer>``) and the byte offset."""
    return _read(_Reader(None, allow_truncated, data=data, name=name), stream, imu, triggers, threads)


def _read(r, stream, imu, triggers, threads):
    threads = resolve_threads(threads)
    events = _read_events(r, r.h.events_stream(stream), threads)
    if not (imu or triggers):
        return events
    with r.opened() as fd:
        i = r.table_packets(fd, r.h.first("IMUS"), b"IMUS", IMU_FIELDS, IMU_DTYPE) if imu else None
        g = r.table_packets(fd, r.h.first("TRIG"), b"TRIG", TRIGGER_FIELDS, TRIGGER_DTYPE) if triggers else None
    return Aedat4Streams(events, i, g)


def _size(s):
    return s["size"] or (MAX_SIDE, MAX_SIDE)


def _trimmed(buf, k):
    """``buf[:k]`` as an array owning exactly its events (shrunk in place; a copy if impossible)."""
    if k < buf.size:
        try:
            buf.resize(k, refcheck=False)
        except ValueError:
            buf = buf[:k].copy()
    return buf


def _place(dst, k, src):
    """Copy ``src`` into ``dst[k:k + src.size]`` as bytes and return ``dst`` (numpy copies the
    13-byte packed records field by field, ~20x slower than this memcpy)."""
    dst[k:k + src.size].view(np.uint8)[:] = src.view(np.uint8)
    return dst


def _read_events(r, s, threads):
    if s is None:
        return np.empty(0, EVENT_DTYPE)
    mine = np.flatnonzero(r.pk_id == s["id"])
    total = int(r.pk_size[mine].sum())
    if (r.mm is not None or r.data is not None) and direct_available(r.h.compression):
        out = _direct(r, mine, s, threads)
        r.unmap()
        if out is not None:
            return out  # else: a packet the direct path does not accept; the generic path names the error
    if total < _INLINE_BELOW:
        threads = 1
    out, k, done = np.empty(0, EVENT_DTYPE), 0, 0
    for idx, ev in r.decoded(s, _BATCH_BYTES, threads, recycle=True):
        m = ev.size
        done += int(r.pk_size[idx].sum())
        if k + m > out.size:
            # First batch: size the output from its events per payload byte (untouched pages
            # cost no memory). Later packets that compress better: grow by copying.
            est = int(m / max(done, 1) * total * 1.02) + m + 1024 if k == 0 else 2 * out.size
            out = _place(np.empty(max(est, k + m), EVENT_DTYPE), 0, out[:k])
        _place(out, k, ev)
        k += m
    return _trimmed(out, k)  # shrinking reallocates in place; no copy


def iter_blocks(path, block_bytes, *, stream=None, allow_truncated=False, threads=None):
    """Yield the events of :func:`read` in file order, in groups of packets of about
    ``block_bytes`` compressed bytes (the packet list is validated first)."""
    threads = resolve_threads(threads)
    r = _Reader(path, allow_truncated)
    s = r.h.events_stream(stream)
    if s is None:
        return
    block = max(1, min(int(block_bytes), 16 * _BATCH_BYTES))
    if not direct_available(r.h.compression):
        for _, out in r.decoded(s, block, threads, recycle=False):
            if out.size:
                yield out
        return
    # direct path group by group; a group it does not accept goes through decode_batch (its error)
    r.map()
    try:
        with r.opened() as fd:
            for g in r.batches(s["id"], block):
                out = _direct(r, g, s, threads)
                if out is None:
                    _, buf, k = r.decode_batch(fd, g, _size(s), None)
                    out = _trimmed(buf, k)
                if out.size:
                    yield out
    finally:
        r.unmap()


def _direct(r, idx, s, threads):
    """Events of packets ``idx`` of stream ``s`` by the direct path (``r`` mapped), or None."""
    buf, mm = r.buffer()
    small = int(r.pk_size[idx].sum()) < _DIRECT_INLINE_BELOW
    return read_direct(buf, mm, r.pk_pos[idx], r.pk_size[idx], r.h.compression, _size(s), 1 if small else threads)


# --------------------------------------------------------------------------------------- inspect
def inspect(path) -> FileInfo:
    """Streams, compression, camera, sensor size; the event count when a valid file data table
    is present (every entry points at a packet whose header matches it), else None."""
    h = Header(path)
    s = next((x for x in h.streams if x["type"] == "EVTS"), None)
    meta = {"version": "4.0", "compression": COMPRESSION[h.compression],
            "file_data_position": h.file_data_position,
            "streams": [dict(x) for x in h.streams],
            "camera": None if s is None else s["source"]}
    count = _table_event_count(h, s) if s is not None else 0
    size = None if s is None or s["size"] is None else (*s["size"], 2)
    return FileInfo(path=os.fspath(path), format=NAME, sensor_size=size, event_count=count,
                    metadata=meta, data_offset=h.data_offset)


def _table_event_count(h, s):
    """Sum of ``elements_count`` of stream ``s`` in the file data table, or None unless the table
    decodes and every entry names a packet header ``(track_id, size)`` found at ``byte_offset - 8``."""
    fdp = h.file_data_position
    if not (h.data_offset <= fdp < h.size) or h.size - fdp > _MAX_TABLE:
        return None
    with open(h.path, "rb") as f:
        f.seek(fdp)
        raw = f.read()
        try:
            dec = decompress(h.path, h.compression, raw, fdp)
            t = fb.root(dec, size_prefixed=True, identifier=b"FTAB")
            vec = t.vector(0, 4)
            table = fb.table_vector_columns(dec, vec[0], vec[1], t.end, FTAB_FIELDS) if vec else None
        except (FormatError, fb.FlatbufferError):
            return None
        if table is None:
            return None
        track = (table["packet_header"] & 0xFFFFFFFF).astype(np.uint32).view(np.int32)
        size = table["packet_header"] >> 32
        pos = table["byte_offset"] - 8
        if ((pos < h.data_offset) | (table["byte_offset"] + size > fdp) | (size < 0)
                | (table["elements_count"] < 0)).any():
            return None
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            buf = np.frombuffer(mm, np.uint8)
            heads = buf[pos[:, None] + np.arange(8)].copy().view("<i4")  # (n, 2): id, size
            del buf
    if not (np.array_equal(heads[:, 0], track) and np.array_equal(heads[:, 1].view("<u4"), size)):
        return None
    return int(table["elements_count"][track == s["id"]].sum())


# --------------------------------------------------------------------------------------- writing
def write(path, events, sensor_size=None, *, compression="lz4", packet_events=4096, source="neurodata",
          imu=None, triggers=None) -> None:
    """Write ``events`` (and optional IMU samples / triggers) as an AEDAT 4.0 file.

    Parameters
    ----------
    events : ndarray[EVENT_DTYPE], shape (N,)
        ``x``/``y`` <= 32767 (int16 in the file); ``t`` any int64 (µs; DV uses Unix time).
    sensor_size : (W, H, P), optional
        ``sizeX``/``sizeY`` of the events stream; default ``(max x + 1, max y + 1)`` (1×1 when empty).
    compression : {"lz4", "zstd", "none"}
        Packet compression (IOHeader codes 1, 3, 0): LZ4 frames / Zstd frames, level defaults.
    packet_events : int, default 4096
        Events per ``EVTS`` packet (IMU samples and triggers: 256 per packet).
    source : str
        Camera name written as the streams' ``source``.
    imu, triggers : structured arrays, optional
        ``IMU_DTYPE`` / ``TRIGGER_DTYPE`` rows written as streams 1 (``imu``) and 2 (``triggers``).

    Packets of different streams are interleaved by their first timestamp; each stream's packets
    keep the order of its rows. A file data table
    (``FTAB``, compressed like the packets) follows them and ``file_data_position`` points at it.
    """
    write_aedat4(path, events, sensor_size, compression, packet_events, source, imu, triggers)
