"""CPU backend: numba kernels that run the whole time loop, parallel over blocks of neurons.

Forward writes the spikes and the final (or every) membrane potential, and saves nothing but the
float32 input: the arithmetic is the same float32 operations in the same order as
:mod:`snncore.functional.dynamics`, so the results equal the single-step loop bit for bit, and
backward recomputes ``H`` per block of neurons into a cache-sized scratch instead of writing and
re-reading a ``[T, M]`` tensor. Backward evaluates the built-in surrogate derivative inside the
kernel (exp-free or with a vectorisable float32 ``exp``, relative error < 1e-6) and runs the BPTT
recurrence. Only built-in surrogates run here (``snncore.surrogate.kernel_spec``); dispatch sends
custom ones to the reference path. Threads: ``torch.get_num_threads()`` Python threads run the
GIL-free kernels on contiguous ranges of neuron blocks (results do not depend on the split).
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ._config import IF, PLIF, KernelConfig

__all__ = ["forward", "backward"]


if numba.config.DISABLE_JIT:  # NUMBA_DISABLE_JIT=1 runs the kernels as Python: no intrinsics
    def _int_bits_to_float32(bits):
        """Reinterpret an int32's bits as a float32."""
        return np.array(bits, dtype=np.int32).view(np.float32)[()]
else:
    @intrinsic
    def _int_bits_to_float32(typingctx, bits):
        """Reinterpret an int32's bits as a float32 (vectorisable, unlike a libm call)."""
        sig = types.float32(types.int32)

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.FloatType())

        return sig, codegen


@njit(cache=True, inline="always", error_model="numpy")
def _exp_f32(x):
    """float32 exp: 2**n * poly(r), |r| <= ln2/2, relative error < 3e-7; input clamped to [-87, 88]."""
    x = min(max(x, np.float32(-87.0)), np.float32(88.0))
    n = np.floor(x * np.float32(1.4426950408889634) + np.float32(0.5))
    r = x - n * np.float32(0.693145751953125) - n * np.float32(1.4286068203094173e-06)
    p = np.float32(1.0 / 720.0)
    p = p * r + np.float32(1.0 / 120.0)
    p = p * r + np.float32(1.0 / 24.0)
    p = p * r + np.float32(1.0 / 6.0)
    p = p * r + np.float32(0.5)
    p = p * r + np.float32(1.0)
    p = p * r + np.float32(1.0)
    return p * _int_bits_to_float32((np.int32(n) + np.int32(127)) << np.int32(23))


@njit(cache=True, error_model="numpy")
def _surrogate_grad_kernel(h, out, v_th, sg_id, p0, p1):
    """out[i] = g'(h[i] - v_th) for the built-in surrogate ``sg_id`` (ids as in snncore.surrogate)."""
    one = np.float32(1.0)
    n = h.size
    if sg_id == 0:  # Sigmoid
        for i in range(n):  # p0 * s * (1 - s) without cancellation: p0 * e / (1 + e)^2
            e = _exp_f32(-p0 * abs(h[i] - v_th))
            d = one + e
            out[i] = p0 * e / (d * d)
    elif sg_id == 1:  # ATan
        c = np.float32(math.pi / 2) * p0
        half = p0 / np.float32(2.0)
        for i in range(n):
            u = c * (h[i] - v_th)
            out[i] = half / (one + u * u)
    elif sg_id == 2:  # PiecewiseQuadratic
        for i in range(n):
            out[i] = max(p0 - p0 * p0 * abs(h[i] - v_th), np.float32(0.0))
    elif sg_id == 3:  # PiecewiseExp
        half = p0 / np.float32(2.0)
        for i in range(n):
            out[i] = half * _exp_f32(-p0 * abs(h[i] - v_th))
    elif sg_id == 4:  # SoftSign
        half = p0 / np.float32(2.0)
        for i in range(n):
            d = one + p0 * abs(h[i] - v_th)
            out[i] = half / (d * d)
    elif sg_id == 5:  # SuperSpike
        for i in range(n):
            d = one + p0 * abs(h[i] - v_th)
            out[i] = one / (d * d)
    elif sg_id == 6:  # Erf
        c = p0 / np.float32(math.sqrt(math.pi))
        for i in range(n):
            u = p0 * (h[i] - v_th)
            out[i] = c * _exp_f32(-u * u)
    elif sg_id == 7:  # FastSigmoid
        half = p0 / np.float32(2.0)
        quarter = p0 / np.float32(4.0)
        for i in range(n):
            d = one + half * abs(h[i] - v_th)
            out[i] = quarter / (d * d)
    else:  # 8: PiecewiseLeakyReLU, p0 = w, p1 = c
        inside = one / (np.float32(2.0) * p0)
        for i in range(n):
            out[i] = inside if abs(h[i] - v_th) <= p0 else p1


@njit(cache=True, inline="always", error_model="numpy")
def _fire_reset(h, v_th, hard, v_reset):
    """(spike, V) from H: the float32 ops of snncore.functional.dynamics.fire/reset."""
    one = np.float32(1.0)
    s = one if h - v_th >= np.float32(0.0) else np.float32(0.0)
    if hard:
        return s, h * (one - s) + v_reset * s
    return s, h - s * v_th


@njit(cache=True, inline="always", error_model="numpy")
def _charge_fire_reset(x, v, kind, decay_input, k, v_th, hard, v_reset):
    """One step for one neuron, the float32 ops of snncore.functional.dynamics; returns (h, s, v)."""
    if kind == 0:  # IF
        h = v + x
    elif decay_input:
        h = v + (x - (v - v_reset)) * k
    else:
        h = v - (v - v_reset) * k + x
    s, v = _fire_reset(h, v_th, hard, v_reset)
    return h, s, v


# Row helpers: one time step over a contiguous run of neurons. Kept as separate (1-D array)
# functions because LLVM vectorises them; the same loops written inline over 2-D indexing do not.
@njit(cache=True, nogil=True, error_model="numpy")
def _step_row(xt, v, out, out_is_h, kind, decay_input, k, v_th, hard, v_reset):
    """Advance ``v`` by one step; write the spikes (or, with ``out_is_h``, H) to ``out``."""
    for j in range(v.size):
        h, s, v[j] = _charge_fire_reset(xt[j], v[j], kind, decay_input, k, v_th, hard, v_reset)
        out[j] = h if out_is_h else s


@njit(cache=True, nogil=True, error_model="numpy")
def _bptt_row(ht, gt, gst, gvt, gxt, acc, ghb, kind, decay_input, k, v_th, hard, v_reset,
              detach_reset, store_v):
    """One step of BPTT: ``acc`` holds dL/dV[t] on entry (before ``gvt``) and dL/dV[t-1] on exit."""
    one = np.float32(1.0)
    zero = np.float32(0.0)
    keep = one - k  # dH[t]/dV[t-1]
    for j in range(ht.size):
        a = acc[j] + gvt[j] if store_v else acc[j]
        h = ht[j]
        g = gt[j]
        if hard:
            dvdh = zero if h - v_th >= zero else one
            if not detach_reset:
                dvdh += (v_reset - h) * g
        else:
            dvdh = one
            if not detach_reset:
                dvdh -= v_th * g
        gh = gst[j] * g + a * dvdh  # dL/dH[t]
        if kind == 2:
            ghb[j] = gh
        if kind == 0:  # IF
            gxt[j] = gh
            acc[j] = gh
        else:
            gxt[j] = gh * k if decay_input else gh
            acc[j] = gh * keep


@njit(cache=True, nogil=True, error_model="numpy")
def _plif_dk_row(ghb, h_prev, v_first, xt, first, decay_input, v_th, hard, v_reset):
    """sum_j dL/dH[t] * dH[t]/dk, with V[t-1] from H[t-1] (or ``v_first`` at t = 0)."""
    total = 0.0
    for j in range(ghb.size):
        if first:
            vp = v_first[j]
        else:
            _, vp = _fire_reset(h_prev[j], v_th, hard, v_reset)
        dhdk = xt[j] - (vp - v_reset) if decay_input else v_reset - vp
        total += ghb[j] * dhdk
    return total


@njit(cache=True, nogil=True, error_model="numpy")
def _neuron_forward_kernel(x, v0, spikes, v_out, kind, decay_input, k, v_th, hard, v_reset,
                           store_v, block, b_lo, b_hi):
    T, M = x.shape
    for b in range(b_lo, b_hi):
        lo = b * block
        hi = min(lo + block, M)
        v = v0[lo:hi].copy()
        for t in range(T):
            _step_row(x[t, lo:hi], v, spikes[t, lo:hi], False, kind, decay_input, k, v_th, hard,
                      v_reset)
            if store_v:
                v_out[t, lo:hi] = v
        if not store_v:
            v_out[0, lo:hi] = v
    return 0


@njit(cache=True, nogil=True, error_model="numpy")
def _neuron_backward_kernel(x, v0, gs, gv, gx, gv0, gk_part, kind, decay_input, k, v_th, hard,
                            v_reset, detach_reset, store_v, sg_id, p0, p1, block, b_lo, b_hi):
    T, M = x.shape
    for b in range(b_lo, b_hi):
        lo = b * block
        hi = min(lo + block, M)
        n = hi - lo
        hs = np.empty((T, n), np.float32)  # H of this block, recomputed
        sg = np.empty((T, n), np.float32)  # g'(H - V_th)
        v = v0[lo:hi].copy()
        for t in range(T):
            _step_row(x[t, lo:hi], v, hs[t], True, kind, decay_input, k, v_th, hard, v_reset)
        _surrogate_grad_kernel(hs.reshape(-1), sg.reshape(-1), v_th, sg_id, p0, p1)
        acc = np.zeros(n, np.float32)  # dL/dV[t], carried backwards in time
        if not store_v:
            acc[:] = gv[0, lo:hi]
        ghb = np.empty(n, np.float32)  # dL/dH[t] (PLIF)
        gk = 0.0
        for tt in range(T):
            t = T - 1 - tt
            _bptt_row(hs[t], sg[t], gs[t, lo:hi], gv[t if store_v else 0, lo:hi], gx[t, lo:hi], acc,
                      ghb, kind, decay_input, k, v_th, hard, v_reset, detach_reset, store_v)
            if kind == 2:  # PLIF
                gk += _plif_dk_row(ghb, hs[max(t - 1, 0)], v0[lo:hi], x[t, lo:hi], t == 0,
                                   decay_input, v_th, hard, v_reset)
        gv0[lo:hi] = acc
        gk_part[b] = gk
    return 0


_POOL: list = []  # the worker threads, created on first parallel use


def _run_blocks(kernel, args, nblocks: int) -> None:
    """Run ``kernel(*args, b_lo, b_hi)`` over blocks ``[0, nblocks)`` split across threads.

    The kernels release the GIL (``nogil=True``); ``torch.get_num_threads()`` threads run contiguous
    ranges of blocks. Plain Python threads that sleep when idle: no second OpenMP runtime spinning
    next to torch's.
    """
    n = max(1, min(torch.get_num_threads(), nblocks))
    if n == 1:
        kernel(*args, 0, nblocks)
        return
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(max_workers=os.cpu_count() or 1,
                                        thread_name_prefix="snncore-cpu"))
    edges = [nblocks * i // n for i in range(n + 1)]
    futures = [_POOL[0].submit(kernel, *args, edges[i], edges[i + 1]) for i in range(1, n)]
    kernel(*args, edges[0], edges[1])  # this thread takes the first range
    for f in futures:
        f.result()


def _block(T: int) -> int:
    """Neurons per work item: two [T, block] float32 scratch arrays stay within ~512 KiB."""
    return int(min(4096, max(256, (65536 // max(T, 1)) // 64 * 64)))


def _empty(*shape: int) -> torch.Tensor:
    """Uninitialised float32 tensor from numpy's allocator, which asks the kernel for transparent
    huge pages on large blocks (``madvise``): far fewer page faults on fresh [T, M] outputs."""
    return torch.from_numpy(np.empty(shape, np.float32))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def _scalar(k) -> np.float32:
    return np.float32(k.item() if torch.is_tensor(k) else k)


def forward(cfg: KernelConfig, x2d: torch.Tensor, v0: torch.Tensor, k, *, save: bool,
            store_v: bool):
    """Run the forward time loop.

    ``x2d``: ``[T, M]`` any float dtype; ``v0``: ``[M]`` float32; ``k``: float or 0-dim tensor.
    Returns ``(spikes [T, M] x dtype, v_out [T or 1, M] float32, saved)`` where ``saved`` is the
    tuple of tensors :func:`backward` needs (empty unless ``save``).
    """
    T, M = x2d.shape
    xf = x2d.detach().to(torch.float32).contiguous()
    v0 = v0.detach().contiguous()
    spikes = _empty(T, M)
    v_out = _empty(T if store_v else 1, M)
    block = _block(T)
    args = (_np(xf), _np(v0), _np(spikes), _np(v_out), cfg.kind, cfg.decay_input, _scalar(k),
            np.float32(cfg.v_threshold), cfg.hard, np.float32(cfg.v_reset), store_v, block)
    _run_blocks(_neuron_forward_kernel, args, (M + block - 1) // block)
    return spikes.to(x2d.dtype), v_out, ((xf, v0) if save else ())


def backward(cfg: KernelConfig, spec, saved, gs: torch.Tensor, gv: torch.Tensor, k, *,
             store_v: bool):
    """BPTT through :func:`forward`.

    ``spec``: ``(sg_id, p0, p1)`` of the surrogate; ``saved``: what forward returned; ``gs``:
    dL/dspikes ``[T, M]``; ``gv``: dL/dv_out ``[T or 1, M]``.
    Returns ``(gx [T, M] float32, gv0 [M] float32, gk float or None)``.
    """
    xf, v0 = saved
    T, M = xf.shape
    block = _block(T)
    gs = gs.to(torch.float32).contiguous()
    gv = gv.to(torch.float32).contiguous()
    gx = _empty(T, M)
    gv0 = _empty(M)
    gk_part = np.zeros((M + block - 1) // block, np.float64)
    sg_id, p0, p1 = spec
    kk = np.float32(1.0) if cfg.kind == IF else _scalar(k)
    args = (_np(xf), _np(v0), _np(gs), _np(gv), _np(gx), _np(gv0), gk_part, cfg.kind,
            cfg.decay_input, kk, np.float32(cfg.v_threshold), cfg.hard, np.float32(cfg.v_reset),
            cfg.detach_reset, store_v, sg_id, np.float32(p0), np.float32(p1), block)
    _run_blocks(_neuron_backward_kernel, args, len(gk_part))
    return gx, gv0, (float(gk_part.sum()) if cfg.kind == PLIF else None)
