"""AEDAT 4.0 packet kernels: the packet walk, ``EVTS`` flatbuffer validation, event conversion, and
the direct path that decodes LZ4 (or stored) packets straight into the output array.

Direct path (:func:`read_direct`, used by ``aedat4.read`` for compression 0, 1 and 2):

1. ``_count_kernel`` reads each packet's event count from the first bytes of its flatbuffer: the
   LZ4 frame's first block is decoded only up to ``_PEEK`` bytes (``LZ4_decompress_safe_partial``);
   the counts give every packet's place in one exactly sized output array.
2. ``_decode_kernel`` runs on ``threads`` threads (the calling thread is one of them; GIL released),
   each over a contiguous run of packets balanced by bytes: it parses each LZ4 frame, decodes its
   blocks with ``LZ4_decompress_safe_usingDict`` into a per-thread scratch buffer that stays in cache
   (linked blocks: the previous 64 KiB as prefix), checks the frame as ``lz4.frame.decompress`` does
   (header checksum, block sizes, block/content checksums, declared content size), validates the
   flatbuffer (``_locate_events_kernel``) and converts the events into their final slice.
   No per-packet Python, no batch buffers, no final copy.
3. Any packet the kernels do not accept (corrupt data, skippable frames, a count
   that differs between the two passes, a coordinate outside the sensor) makes :func:`read_direct`
   return None; the caller then decodes the file with the per-packet ``lz4``/``zstandard`` path,
   which raises the exact error (or returns the events where that path is more lenient).

The LZ4 block functions come from the ``lz4`` package's own extension module (it exports liblz4's
stable C API), else the system liblz4; without either, or on a big-endian machine, or with
``NEURODATA_AEDAT4_DECODER=generic``, the per-packet path is used (a warning says when LZ4 is missing).
A memory-mapped file is read through the map and consumed ranges are released (``MADV_DONTNEED``)
chunk by chunk, so resident memory stays near the output array.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import mmap
import os
import sys
import threading
import warnings

import numpy as np
from numba import njit

from ..events import EVENT_DTYPE

__all__ = ["read_direct", "direct_available", "release_pages"]

_PEEK = 256               # decompressed bytes decoded per packet to find its event count
_CHUNK_BYTES = 4 << 20    # compressed bytes per kernel call (then the mapped pages are released)
_ENV = "NEURODATA_AEDAT4_DECODER"


# --------------------------------------------------------------------------------------- byte helpers
@njit(cache=True, nogil=True, inline="always")
def _u(buf, q, width):
    v = np.int64(0)
    for k in range(width):
        v |= np.int64(buf[q + k]) << (8 * k)
    return v


@njit(cache=True, nogil=True, inline="always")
def _rotl32(x, r):
    return ((x << r) | (x >> (32 - r))) & 0xFFFFFFFF


@njit(cache=True, nogil=True)
def _xxh32(buf, start, n):
    """XXH32 (seed 0) of ``buf[start:start + n]``, as the LZ4 frame format uses it."""
    m = 0xFFFFFFFF
    p1, p2, p3, p4, p5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
    p = start
    end = start + n
    if n >= 16:
        v1, v2, v3, v4 = (p1 + p2) & m, p2, 0, (m + 1 - p1) & m
        while p + 16 <= end:
            v1 = (_rotl32((v1 + int(_u(buf, p, 4)) * p2) & m, 13) * p1) & m
            v2 = (_rotl32((v2 + int(_u(buf, p + 4, 4)) * p2) & m, 13) * p1) & m
            v3 = (_rotl32((v3 + int(_u(buf, p + 8, 4)) * p2) & m, 13) * p1) & m
            v4 = (_rotl32((v4 + int(_u(buf, p + 12, 4)) * p2) & m, 13) * p1) & m
            p += 16
        h = (_rotl32(v1, 1) + _rotl32(v2, 7) + _rotl32(v3, 12) + _rotl32(v4, 18)) & m
    else:
        h = p5
    h = (h + n) & m
    while p + 4 <= end:
        h = (_rotl32((h + int(_u(buf, p, 4)) * p3) & m, 17) * p4) & m
        p += 4
    while p < end:
        h = (_rotl32((h + int(buf[p]) * p5) & m, 11) * p1) & m
        p += 1
    h ^= h >> 15
    h = (h * p2) & m
    h ^= h >> 13
    h = (h * p3) & m
    h ^= h >> 16
    return h


# --------------------------------------------------------------------------------------- generic kernels
@njit(cache=True, nogil=True)
def _walk_kernel(buf, pos, end, pk_pos, pk_id, pk_size, info):
    """List packets ``(int32 id, uint32 size)`` from ``pos`` to ``end``; record them when the
    ``pk_*`` arrays are non-empty. ``info = [status, offset, value, count]``: status 0 ok,
    1 partial packet header, 2 payload past ``end``."""
    record = pk_pos.size > 0
    n = 0
    status = 0
    value = 0
    while pos < end:
        if end - pos < 8:
            status = 1
            value = end - pos
            break
        size = _u(buf, pos + 4, 4)
        if size > end - pos - 8:
            status = 2
            value = size
            break
        if record:
            sid = _u(buf, pos, 4)
            pk_pos[n] = pos
            pk_id[n] = sid - (np.int64(1) << 32) if sid >= (np.int64(1) << 31) else sid
            pk_size[n] = size
        n += 1
        pos += 8 + size
    info[0] = status
    info[1] = pos
    info[2] = value
    info[3] = n


@njit(cache=True, nogil=True)
def _locate_events_kernel(dec, info):
    """Validate the size-prefixed ``EVTS`` flatbuffer in ``dec``; on success ``info[3:5] =
    (start, count)`` of its event vector (count 0 when the field is absent) and return 0, else
    return a status with ``info[1:3] = (position, value)``.

    Status: 1 shorter than 12 bytes, 2 size prefix too large, 3 identifier not EVTS, 4 root table
    outside, 5 vtable outside or bad sizes, 6 field outside its table, 7 vector outside.
    """
    n = dec.size
    info[3] = 0
    info[4] = 0
    if n < 12:
        info[1], info[2] = 0, n
        return 1
    end = 4 + _u(dec, 0, 4)
    if end > n:
        info[1], info[2] = 0, end - 4
        return 2
    if dec[8] != 69 or dec[9] != 86 or dec[10] != 84 or dec[11] != 83:
        info[1], info[2] = 8, 0
        return 3
    tab = 4 + _u(dec, 4, 4)
    if tab > end - 4:
        info[1], info[2] = 4, tab
        return 4
    so = _u(dec, tab, 4)
    vt = tab - (so - (np.int64(1) << 32) if so >= (np.int64(1) << 31) else so)
    if vt < 4 or vt > end - 4:
        info[1], info[2] = tab, vt
        return 5
    vsize = _u(dec, vt, 2)
    tsize = _u(dec, vt + 2, 2)
    if vsize < 4 or vsize % 2 == 1 or vt + vsize > end or tsize < 4 or tab + tsize > end:
        info[1], info[2] = vt, vsize
        return 5
    if vsize < 6:
        return 0
    foff = _u(dec, vt + 4, 2)
    if foff == 0:
        return 0
    if foff < 4 or foff + 4 > tsize:
        info[1], info[2] = vt + 4, foff
        return 6
    fpos = tab + foff
    vec = fpos + _u(dec, fpos, 4)
    if vec > end - 4:
        info[1], info[2] = fpos, vec
        return 7
    cnt = _u(dec, vec, 4)
    if cnt * 16 > end - vec - 4:
        info[1], info[2] = vec, cnt
        return 7
    info[3] = vec + 4
    info[4] = cnt
    return 0


@njit(cache=True, nogil=True)
def _copy_events_kernel(words, out, k, width, height):
    """Copy the 16-byte DV events ``words`` (``int64`` pairs: ``t``, then ``x | y << 16 | on << 32``)
    to ``out[k:k + words.size // 2]`` (both checked by the caller). Return -1, or the index of the
    first event with ``x >= width`` or ``y >= height`` (negative int16 coordinates count as >= 32768)."""
    count = words.size // 2
    for i in range(count):
        w = words[2 * i + 1]
        x = w & 0xFFFF
        y = (w >> 16) & 0xFFFF
        if x >= width or y >= height:
            return i
        r = out[k + i]
        r["t"] = words[2 * i]
        r["x"] = x
        r["y"] = y
        r["p"] = 1 if (w >> 32) & 0xFF else 0
    return -1


# --------------------------------------------------------------------------------------- direct path kernels
@njit(cache=True, nogil=True)
def _lz4_frame_header(buf, p, end, hdr):
    """Parse the LZ4 frame header at ``buf[p:end]``: ``hdr = [first block position, FLG, block
    maximum size, content size or -1]``. Return False for anything but an LZ4 frame (version 01,
    reserved bits clear) with a valid header checksum: skippable and legacy frames go elsewhere. A
    dictionary id is skipped: no dictionary is given, as with ``lz4.frame.decompress``."""
    if end - p < 7 or _u(buf, p, 4) != 0x184D2204:
        return False
    flg = int(buf[p + 4])
    bd = int(buf[p + 5])
    if (flg >> 6) != 1 or flg & 0x02 or bd & 0x8F or (bd >> 4) < 4:
        return False
    desc = 2 + (8 if flg & 0x08 else 0) + (4 if flg & 0x01 else 0)
    if end - p < 5 + desc:
        return False
    size = _u(buf, p + 6, 8) if flg & 0x08 else -1
    if flg & 0x08 and size < 0:
        return False
    if ((_xxh32(buf, p + 4, desc) >> 8) & 0xFF) != buf[p + 4 + desc]:
        return False
    hdr[0] = p + 5 + desc
    hdr[1] = flg
    hdr[2] = 1 << (8 + 2 * (bd >> 4))
    hdr[3] = size
    return True


@njit(cache=True, nogil=True)
def _peek_count(b, n):
    """The event count of the ``EVTS`` flatbuffer whose first ``n`` bytes are ``b[:n]``, or -1 when
    those bytes do not reach it (the full validation happens in ``_decode_kernel``)."""
    if n < 12 or b[8] != 69 or b[9] != 86 or b[10] != 84 or b[11] != 83:
        return -1
    tab = 4 + _u(b, 4, 4)
    if tab + 4 > n:
        return -1
    so = _u(b, tab, 4)
    vt = tab - (so - (np.int64(1) << 32) if so >= (np.int64(1) << 31) else so)
    if vt < 4 or vt + 4 > n:
        return -1
    if _u(b, vt, 2) < 6:
        return 0
    if vt + 6 > n:
        return -1
    foff = _u(b, vt + 4, 2)
    if foff == 0:
        return 0
    fpos = tab + foff
    if fpos + 4 > n:
        return -1
    vec = fpos + _u(b, fpos, 4)
    if vec + 4 > n:
        return -1
    return _u(b, vec, 4)


@njit(cache=True, nogil=True)
def _count_kernel(buf, pos, size, code, partial, pre, counts):
    """Event count of every packet (``pos``: packet header positions, ``size``: payload sizes) into
    ``counts``; return -1, or the index of the first packet whose count cannot be read this way.
    ``partial``: ``LZ4_decompress_safe_partial``; ``pre``: a ``_PEEK``-byte scratch buffer."""
    hdr = np.zeros(4, np.int64)
    for i in range(pos.size):
        p = pos[i] + 8
        end = p + size[i]
        if code == 0:
            c = _peek_count(buf[p:end], size[i])
            bound = size[i]
        else:
            if not _lz4_frame_header(buf, p, end, hdr):
                return i
            q = hdr[0]
            if end - q < 4:
                return i
            bs = _u(buf, q, 4)
            n = min(bs & 0x7FFFFFFF, end - q - 4)
            if bs == 0 or n > hdr[2]:
                return i
            if bs >> 31:
                n = min(n, pre.size)
                pre[:n] = buf[q + 4:q + 4 + n]
            else:
                n = partial(int(buf.ctypes.data + q + 4), int(pre.ctypes.data), int(n), int(pre.size),
                            int(pre.size))
            if n < 0:
                return i
            c = _peek_count(pre, n)
            bound = 255 * size[i] + 65536  # no LZ4 frame expands more
        if c < 0 or 16 * c > bound:
            return i
        counts[i] = c
    return -1


@njit(cache=True, nogil=True)
def _lz4_frame_kernel(buf, p, end, scratch, decode, hdr):
    """Decode the LZ4 frame at ``buf[p:end]`` into ``scratch``: the decoded size, -1 if the frame
    is not accepted, or ``-2 - needed`` when ``scratch`` is too small (``needed`` bytes)."""
    if not _lz4_frame_header(buf, p, end, hdr):
        return -1
    q, flg, bmax, declared = hdr[0], hdr[1], hdr[2], hdr[3]
    linked = (flg & 0x20) == 0
    bsum = 4 if flg & 0x10 else 0
    n = 0
    while True:
        if end - q < 4:
            return -1
        bs = _u(buf, q, 4)
        q += 4
        if bs == 0:
            break
        raw = bs >> 31
        bs &= 0x7FFFFFFF
        if bs > bmax or end - q < bs + bsum:
            return -1
        if bsum and _xxh32(buf, q, bs) != _u(buf, q + bs, 4):
            return -1
        if n + bmax > scratch.size:
            return -2 - (n + bmax)
        if raw:
            scratch[n:n + bs] = buf[q:q + bs]
            got = bs
        else:
            d = min(n, 65536) if linked else 0
            dst = int(scratch.ctypes.data + n)  # int(): plain ints for ctypes when run as Python
            got = decode(int(buf.ctypes.data + q), dst, int(bs), int(bmax), dst - d, int(d))
            if got < 0:
                return -1
        n += got
        q += bs + bsum
    if flg & 0x04 and (end - q < 4 or _xxh32(scratch, 0, n) != _u(buf, q, 4)):
        return -1
    if declared >= 0 and (declared != n or declared > 255 * (end - p) + 65536):
        return -1
    return n


@njit(cache=True, nogil=True)
def _events_into(dec, count, out, k, width, height, scratch, info):
    """Validate the ``EVTS`` flatbuffer ``dec`` and convert its events to ``out[k:k + count]``.
    Return 0; 1 when ``scratch`` must grow to ``info[1]`` bytes; 2 when it is not accepted (invalid,
    not ``count`` events, an x/y outside ``width`` x ``height``)."""
    loc = np.zeros(5, np.int64)
    if _locate_events_kernel(dec, loc) or loc[4] != count:
        return 2
    start = loc[3]
    nbytes = 16 * count
    if (dec.ctypes.data + start) % 8 == 0:
        bad = _copy_events_kernel(dec[start:start + nbytes].view(np.int64), out, k, width, height)
    elif nbytes > scratch.size:
        info[1] = nbytes
        return 1
    else:  # int64 loads need alignment: move the events first (dec may be scratch itself)
        src, dst = dec[start:start + nbytes], scratch[:nbytes]
        for j in range(nbytes):  # a forward copy (dst starts before src); this form vectorises
            dst[j] = src[j]
        bad = _copy_events_kernel(scratch[:nbytes].view(np.int64), out, k, width, height)
    return 2 if bad >= 0 else 0


@njit(cache=True, nogil=True)
def _decode_kernel(buf, pos, size, code, lo, hi, counts, offsets, out, scratch, decode, width, height, info):
    """Decode packets ``lo:hi`` into ``out[offsets[i]:offsets[i] + counts[i]]``. Return 0 when all
    are done; 1 when ``scratch`` must grow to ``info[1]`` bytes before packet ``info[0]``; 2 when
    packet ``info[0]`` is not accepted (corrupt, another count than ``counts``, x/y outside)."""
    hdr = np.zeros(4, np.int64)
    for i in range(lo, hi):
        info[0] = i
        p = pos[i] + 8
        end = p + size[i]
        if code == 0:
            status = _events_into(buf[p:end], counts[i], out, offsets[i], width, height, scratch, info)
        else:
            n = _lz4_frame_kernel(buf, p, end, scratch, decode, hdr)
            if n <= -2:
                info[1] = -2 - n
                return 1
            if n < 0:
                return 2
            status = _events_into(scratch[:n], counts[i], out, offsets[i], width, height, scratch, info)
        if status:
            return status
    return 0


# --------------------------------------------------------------------------------------- orchestration
@functools.cache
def _lz4_functions():
    """``(LZ4_decompress_safe_usingDict, LZ4_decompress_safe_partial)`` as ctypes functions, or None."""
    import lz4.block
    import lz4.frame

    for name in (lz4.block._block.__file__, lz4.frame._frame.__file__, ctypes.util.find_library("lz4")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            decode, partial = lib.LZ4_decompress_safe_usingDict, lib.LZ4_decompress_safe_partial
        except (OSError, AttributeError):
            continue
        p, i = ctypes.c_void_p, ctypes.c_int
        decode.argtypes, decode.restype = [p, p, i, i, p, i], i
        partial.argtypes, partial.restype = [p, p, i, i, i], i
        return decode, partial
    return None


def direct_available(code: int) -> bool:
    """Whether :func:`read_direct` handles compression ``code`` here (warns once when liblz4's
    functions cannot be found)."""
    if os.environ.get(_ENV, "direct") == "generic" or sys.byteorder != "little" or code not in (0, 1, 2):
        return False
    if _lz4_functions() is None:
        _warn_no_lz4()
        return False
    return True


@functools.cache
def _warn_no_lz4():
    warnings.warn("neither the lz4 package's extension nor a system liblz4 exports LZ4_decompress_safe_usingDict; "
                  "AEDAT 4 files are decoded by the slower per-packet path", RuntimeWarning, stacklevel=4)


def release_pages(mm, start, stop):
    """Drop the mapped pages of bytes ``[start, stop)`` from this process (the page cache keeps them)."""
    if mm is not None and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED") and stop > start:
        start -= start % mmap.PAGESIZE
        mm.madvise(mmap.MADV_DONTNEED, start, stop - start)


def _split(weights, parts):
    """Boundaries of ``parts`` contiguous runs of about equal total weight."""
    cum = np.cumsum(weights)
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, parts) / parts, side="left") if cum.size else []
    return np.concatenate([[0], np.asarray(cuts, np.int64), [weights.size]]).astype(np.int64)


def _decode_all(buf, mm, pos, size, code, counts, sensor, threads, decode, partial, failed):
    """:func:`read_direct` on the file's bytes ``buf`` (``mm``: its map, or None); problems go to ``failed``."""
    width, height = sensor
    if _count_kernel(buf, pos, size, code, partial, np.empty(_PEEK, np.uint8), counts) >= 0:
        return None
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    try:
        out = np.empty(int(offsets[-1]), EVENT_DTYPE)
    except MemoryError:
        return None
    bounds = _split(size + 8 * counts, max(1, min(threads, pos.size)))

    def run(lo, hi):
        info = np.zeros(2, np.int64)
        scratch = np.empty(1 << 17, np.uint8)
        while lo < hi and not failed:
            stop = int(np.searchsorted(pos, pos[lo] + _CHUNK_BYTES, side="left"))
            stop = min(hi, max(lo + 1, stop))
            status = _decode_kernel(buf, pos, size, code, lo, stop, counts, offsets, out, scratch,
                                    decode, width, height, info)
            if status == 1:
                scratch = np.empty(max(2 * scratch.size, int(info[1])), np.uint8)
                lo = int(info[0])
                continue
            release_pages(mm, int(pos[lo]), int(pos[stop - 1] + 8 + size[stop - 1]))
            if status:
                failed.append(int(info[0]))
                return
            lo = stop

    def guarded(lo, hi):
        try:
            run(lo, hi)
        except BaseException as e:  # noqa: BLE001 - re-raised by the calling thread
            failed.append(e)

    workers = [threading.Thread(target=guarded, args=(int(bounds[j]), int(bounds[j + 1])))
               for j in range(1, bounds.size - 1)]
    for w in workers:
        w.start()
    guarded(int(bounds[0]), int(bounds[1]))
    for w in workers:
        w.join()
    return out


def read_direct(buf, mm, pos, size, code, sensor, threads):
    """Events of the packets at ``pos`` (header positions in the file's bytes ``buf``; ``mm``: its
    memory map, or None) with payload ``size`` and compression ``code``, decoded by the direct
    path; None when a packet is not accepted (see the module doc). ``sensor``: ``(sizeX, sizeY)``
    bound of the coordinates; ``threads``: threads to use. Mapped pages are released as consumed."""
    decode, partial = _lz4_functions()
    pos = np.ascontiguousarray(pos, np.int64)
    size = np.ascontiguousarray(size, np.int64)
    counts = np.zeros(pos.size, np.int64)
    failed = []
    out = _decode_all(buf, mm, pos, size, code, counts, sensor, threads, decode, partial, failed)
    for f in failed:
        if isinstance(f, BaseException):
            raise f
    return None if failed else out
