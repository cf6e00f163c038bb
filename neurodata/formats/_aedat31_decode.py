"""AEDAT 3.1 kernels (numba, GIL released): the packet walk and the polarity-event decoder.

``_walk_kernel`` validates every packet header and lists the polarity packets; ``_decode_kernel``
writes the valid events of a range of those packets straight into the output, 8 events at a time
with vector byte shuffles (``_decode8``) wherever 8 consecutive events are all valid and fit the
packet's room, one by one otherwise. ``neurodata.formats.aedat31`` drives them (rules there and in
``docs/formats.md``). A kernel and its helpers live in this one module (numba caches per module).
"""
from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ..events import EVENT_DTYPE
from ._unaligned import I64, ZERO, events8_codegen, load_bytes, put_event, shuffle_lanes, splat, vector_arg


ANY_SOURCE = 1 << 16
"""The ``source`` argument of the kernels meaning every source (event sources are int16, negative ones too)."""


@njit(cache=True, nogil=True, inline="always")
def _i32(buf, q):
    v = np.int64(buf[q]) | (np.int64(buf[q + 1]) << 8) | (np.int64(buf[q + 2]) << 16) | (np.int64(buf[q + 3]) << 24)
    return v - (np.int64(1) << 32) if v >= (np.int64(1) << 31) else v


@njit(cache=True, nogil=True, inline="always")
def _u32(buf, q):
    return np.int64(buf[q]) | (np.int64(buf[q + 1]) << 8) | (np.int64(buf[q + 2]) << 16) | (np.int64(buf[q + 3]) << 24)


@njit(cache=True, nogil=True)
def _walk_kernel(buf, pos, source, allow_truncated, pk_pos, pk_num, pk_valid, sources_seen, info):
    """Validate packet headers from ``pos`` to the end of ``buf``; list the polarity packets.

    Polarity packets of ``source`` (any source when ``ANY_SOURCE``, outside int16) are recorded in ``pk_*`` when those arrays
    are non-empty (they must then be long enough). ``info`` receives ``[status, offset, value,
    n_packets, n_polarity_recorded, sum_number]``.
    """
    end = buf.size
    record = pk_pos.size > 0
    npk = 0
    nrec = 0
    total = 0
    status = 0
    value = 0
    while pos < end:
        if end - pos < 28:
            status = 1
            value = end - pos
            break
        etype = _i32(buf, pos) & 0xFFFF
        etype = etype - 65536 if etype >= 32768 else etype
        esrc = (_i32(buf, pos) >> 16)
        esize = _i32(buf, pos + 4)
        ovf = _i32(buf, pos + 12)
        cap = _i32(buf, pos + 16)
        num = _i32(buf, pos + 20)
        val = _i32(buf, pos + 24)
        if esize <= 0:
            status = 2
            value = esize
            break
        if cap < 0:
            status = 3
            value = cap
            break
        if num < 0 or num > cap:
            status = 4
            value = num
            break
        if ovf < 0:
            status = 5
            value = ovf
            break
        if etype == 1 and esize != 8:
            status = 7
            value = esize
            break
        body = cap * esize
        if body > end - pos - 28:
            status = 6
            value = body
            if not (allow_truncated and etype == 1):
                break
            num = min(num, (end - pos - 28) // 8)
        npk += 1
        if etype == 1:
            sources_seen[esrc + 32768] = 1
            if source == ANY_SOURCE or esrc == source:
                if record:
                    pk_pos[nrec] = pos
                    pk_num[nrec] = num
                    pk_valid[nrec] = min(max(val, 0), num)
                nrec += 1
                total += num
        if status == 6:
            break
        pos += 28 + body
    info[0] = status
    info[1] = pos
    info[2] = value
    info[3] = npk
    info[4] = nrec
    info[5] = total


if numba.config.DISABLE_JIT:  # NUMBA_DISABLE_JIT=1 runs the kernels as Python: no intrinsics
    def _decode8(buf, q, out8, j, ovf):
        """Numpy stand-in for the intrinsic below (same results)."""
        r = buf[int(q):int(q) + 64].view(np.uint32).astype(np.int64).reshape(8, 2)
        d, ts = r[:, 0], r[:, 1]
        ev = out8[int(j):int(j) + 104].view(EVENT_DTYPE)
        ev["t"] = np.int64(ovf) | (ts - ((ts >> 31) << 32))
        ev["x"], ev["y"], ev["p"] = (d >> 17) & 0x7FFF, (d >> 2) & 0x7FFF, (d >> 1) & 1
        return np.uint64(np.packbits((d & 1) == 0, bitorder="little")[0])
else:
    @intrinsic
    def _decode8(typingctx, buf, q, out8, j, ovf):
        """Decode the 8 polarity events at byte ``q`` of ``buf`` as events at byte ``j`` of ``out8``
        (``t = ovf | timestamp``), invalid ones included; return a ``uint64`` that is non-zero
        when one of them is invalid. Byte shuffles on 8 events at once (see ``_unaligned``); the
        caller guarantees ``q + 64 <= buf.size`` and ``j + 104 <= out8.size``."""
        def codegen(context, builder, sig, args):
            v = load_bytes(context, builder, sig.args[0], args[0], args[1], 64)
            d = shuffle_lanes(builder, v, [(8 * k, 8 * k + 1, 8 * k + 2, 8 * k + 3) + (ZERO,) * 4 for k in range(8)])
            ts = shuffle_lanes(builder, v, [(8 * k + 4, 8 * k + 5, 8 * k + 6, 8 * k + 7) + (ZERO,) * 4
                                            for k in range(8)])
            ts = builder.ashr(builder.shl(ts, splat(I64, 8, 32)), splat(I64, 8, 32))  # int32 -> int64
            t = builder.or_(ts, vector_arg(builder, context.cast(builder, args[4], sig.args[4], types.int64)))

            def field(shift, mask, to):
                f = builder.and_(builder.lshr(d, splat(I64, 8, shift)), splat(I64, 8, mask))
                return builder.shl(f, splat(I64, 8, to))
            w = builder.or_(builder.or_(field(17, 0x7FFF, 0), field(2, 0x7FFF, 16)), field(1, 1, 32))
            invalid = builder.icmp_unsigned("==", builder.and_(d, splat(I64, 8, 1)), splat(I64, 8, 0))
            events8_codegen(context, builder, sig.args[2], args[2], args[3], t, w)
            return builder.zext(builder.bitcast(invalid, ir.IntType(8)), I64)
        return types.uint64(buf, q, out8, j, ovf), codegen


@njit(cache=True, nogil=True)
def _events_kernel(buf, q, a, b, out8, k, stop, ovf, v):
    """Events ``a..b-1`` of the packet body at byte ``q`` one by one: each valid one is written
    at event ``k`` while ``k < stop`` (``k`` then advances) and counted in ``v``; returns ``(k, v)``."""
    for i in range(a, b):
        d = _u32(buf, q + 8 * i)
        if d & 1:
            if k < stop:
                e = 13 * k
                put_event(out8, e, ovf | _i32(buf, q + 8 * i + 4), ((d >> 17) & 0x7FFF) | (((d >> 2) & 0x7FFF) << 16),
                          (d >> 1) & 1)
                k += 1
            v += 1
    return k, v


@njit(cache=True, nogil=True)
def _decode_kernel(buf, pk_pos, pk_num, pk_off, pk_cap, lo, hi, out8, got):
    """Decode polarity packets ``lo..hi-1`` into the bytes ``out8`` of an ``EVENT_DTYPE`` array:
    the valid ones among the first ``pk_num[j]`` events go to events ``pk_off[j]`` ... at most
    ``pk_cap[j]`` of them (extra valid events are counted, not written); ``got[j]`` receives the
    number of valid events found.

    Events go 8 at a time through ``_decode8`` while the packet has room for 8 more; a group
    holding an invalid event is decoded again one by one over the same output, and so are a
    packet's last events.
    """
    for j in range(lo, hi):
        q = pk_pos[j] + 28
        ovf = np.int64(_i32(buf, pk_pos[j] + 12)) << 31
        k = pk_off[j]
        stop = k + pk_cap[j]
        n = pk_num[j]
        v = 0
        i = 0
        while i + 8 <= n and k + 8 <= stop:
            if _decode8(buf, q + 8 * i, out8, 13 * k, ovf) == 0:
                k += 8
                v += 8
            else:
                k, v = _events_kernel(buf, q, i, i + 8, out8, k, stop, ovf, v)
            i += 8
        got[j] = _events_kernel(buf, q, i, n, out8, k, stop, ovf, v)[1]
