"""Unaligned stores of packed events from numba kernels, and the LLVM IR pieces of the readers'
8-event vector decoders.

``EVENT_DTYPE`` is packed (13 bytes per event), so its fields sit at any alignment. A kernel
writes an event assembled in registers with one or two ``_store`` calls (one unaligned machine
store each, on x86 and ARM64) instead of four field stores.

The vector decoders (N-MNIST ``_decode8``, AEDAT 3.1 ``_decode8``) are numba intrinsics that
load the bytes of 8 records at once (``load_bytes``), gather each field into the lanes of an
``<8 x i64>`` vector with one byte shuffle (``shuffle_lanes``), compute on all 8 lanes, and write
the 8 events (104 bytes) with one more shuffle and one unaligned store (``events8_codegen``).
With AVX-512 VBMI the shuffles are single ``vpermb``/``vpermt2b`` instructions; on other CPUs
LLVM picks other instruction sequences with the same result (LLVM's ``shufflevector`` semantics).

Nothing here checks bounds: the kernels guarantee that every access lies inside its array.
Numba caches a kernel by its own module's source: after changing this file, clear the
``__pycache__`` ``*.nbi``/``*.nbc`` files of the modules that use it.
"""
from __future__ import annotations

import sys

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["_store", "put_event", "I64", "ZERO", "events8_codegen", "load_bytes", "shuffle_lanes", "splat", "vector_arg"]

_LE = sys.byteorder == "little"
I8, I32, I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
V8I64 = ir.VectorType(I64, 8)
ZERO = -1  # in a byte-shuffle table: a zero byte

if numba.config.DISABLE_JIT:  # NUMBA_DISABLE_JIT=1 runs the kernels as Python: no intrinsics
    def _store(buf, offset, value, nbytes):
        """Store the low ``nbytes`` bytes of ``value`` (two's complement) little-endian at ``buf[offset:]``."""
        offset = int(offset)
        word = (int(value) & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")
        buf[offset:offset + nbytes] = np.frombuffer(word[:nbytes], np.uint8)
else:
    @intrinsic
    def _store(typingctx, buf, offset, value, nbytes):
        """Unaligned little-endian store of the low ``nbytes`` (literal 4 or 8) bytes of ``value``
        at byte ``offset`` of a contiguous ``uint8`` array: one machine store (x86 and ARM64)."""
        if not isinstance(nbytes, types.IntegerLiteral) or nbytes.literal_value not in (4, 8):
            return None
        bits = 8 * nbytes.literal_value

        def codegen(context, builder, signature, args):
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), ir.IntType(bits).as_pointer())
            word = context.cast(builder, args[2], signature.args[2], types.uint64)
            if bits < 64:
                word = builder.trunc(word, ir.IntType(bits))
            if sys.byteorder == "big":
                word = builder.call(builder.module.declare_intrinsic("llvm.bswap", [word.type]), [word])
            builder.store(word, ptr).align = 1
            return context.get_dummy_value()
        return types.void(buf, offset, value, nbytes), codegen


@numba.njit(cache=True, nogil=True, inline="always")
def put_event(out8, offset, t, xy, p):
    """Write one packed ``EVENT_DTYPE`` event at byte ``offset`` of the uint8 array ``out8``:
    ``t`` (8 bytes), ``xy = x | y << 16`` (4 bytes), ``p`` (1 byte); nothing past its 13 bytes."""
    _store(out8, offset, t, 8)
    _store(out8, offset + 8, xy, 4)
    out8[offset + 12] = p


# ------------------------------------------------------------------ LLVM IR helpers for vector decoders
def _pos(s):
    """Position in memory of the byte of significance ``s`` of a 64-bit lane."""
    return s if _LE else 7 - s


def splat(ty, n, value):
    """A constant LLVM vector of ``n`` copies of ``value``."""
    return ir.Constant(ir.VectorType(ty, n), [value] * n)


def vector_arg(builder, value, n=8):
    """The scalar LLVM ``value`` broadcast to an ``n``-lane vector of its type."""
    vt = ir.VectorType(value.type, n)
    v = builder.insert_element(ir.Constant(vt, None), value, ir.Constant(I32, 0))
    return builder.shuffle_vector(v, ir.Constant(vt, None), ir.Constant(ir.VectorType(I32, n), [0] * n))


def load_bytes(context, builder, aryty, ary, offset, nbytes):
    """Unaligned load of ``<nbytes x i8>`` at byte ``offset`` of a contiguous uint8 array."""
    a = context.make_array(aryty)(context, builder, ary)
    vt = ir.VectorType(I8, nbytes)
    return builder.load(builder.bitcast(builder.gep(a.data, [offset]), vt.as_pointer()), align=1)


def shuffle_lanes(builder, v, tables):
    """``<8 x i64>`` whose lane k has ``v[tables[k][s]]`` as its byte of significance ``s`` (0 where
    the table says ``ZERO``); ``v`` is a byte vector."""
    n = v.type.count
    mask = [n if tab[_pos(b)] == ZERO else tab[_pos(b)] for tab in tables for b in range(8)]
    out = builder.shuffle_vector(v, ir.Constant(v.type, None), ir.Constant(ir.VectorType(I32, len(mask)), mask))
    return builder.bitcast(out, V8I64)


def events8_codegen(context, builder, aryty, ary, offset, t, w):
    """Store 8 packed ``EVENT_DTYPE`` events at byte ``offset`` of the uint8 array ``ary``:
    event k = the 8 bytes of ``t[k]`` then the low 5 bytes of ``w[k]`` (``x | y << 16 | p << 32``),
    little-endian; 104 bytes, one shuffle and one unaligned store."""
    vb = ir.VectorType(I8, 64)
    mask = []
    for k in range(8):
        mask += [8 * k + _pos(s) for s in range(8)] + [64 + 8 * k + _pos(s) for s in range(5)]
    v = builder.shuffle_vector(builder.bitcast(t, vb), builder.bitcast(w, vb),
                               ir.Constant(ir.VectorType(I32, 104), mask))
    a = context.make_array(aryty)(context, builder, ary)
    ptr = builder.bitcast(builder.gep(a.data, [offset]), ir.VectorType(I8, 104).as_pointer())
    builder.store(v, ptr).align = 1
