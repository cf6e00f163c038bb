"""Triton backend: one forward and one backward kernel per neuron type (IF, LIF, PLIF).

Each program owns a block of ``BLOCK`` neurons and runs the whole time loop for them: forward
reads ``x[t]`` (float32/float16/bfloat16, computed in float32), writes the spikes in the input
dtype, the hidden potentials ``h`` (float32, only when a backward follows) and the final (or
every) potential; backward runs the BPTT recurrence from ``t = T-1`` down to 0 and, for PLIF, sums
``dL/dk`` per program (one float32 partial per program, summed by torch). Every built-in surrogate
is compiled in through the constexpr ``SG`` switch (ids in :mod:`snncore.surrogate`). Inputs are
made contiguous first. Runs on CUDA tensors, or on CPU tensors under ``TRITON_INTERPRET=1``.
"""
from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

from ._config import IF, LIF, PLIF, KernelConfig

__all__ = ["forward", "backward"]

_BLOCK = 256
_NUM_WARPS = 4


@triton.jit
def _surrogate_grad(z, SG: tl.constexpr, p0, p1):
    """g'(z) of built-in surrogate ``SG`` (0 Sigmoid ... 8 PiecewiseLeakyReLU), float32."""
    if SG == 0:  # Sigmoid
        e = tl.exp(-p0 * tl.abs(z))  # p0 * s * (1 - s) = p0 * e / (1 + e)^2, no cancellation
        g = p0 * e / ((1.0 + e) * (1.0 + e))
    elif SG == 1:  # ATan
        u = (1.5707963267948966 * p0) * z
        g = (p0 / 2.0) / (1.0 + u * u)
    elif SG == 2:  # PiecewiseQuadratic
        g = tl.maximum(p0 - p0 * p0 * tl.abs(z), 0.0)
    elif SG == 3:  # PiecewiseExp
        g = (p0 / 2.0) * tl.exp(-p0 * tl.abs(z))
    elif SG == 4:  # SoftSign
        d = 1.0 + p0 * tl.abs(z)
        g = (p0 / 2.0) / (d * d)
    elif SG == 5:  # SuperSpike
        d = 1.0 + p0 * tl.abs(z)
        g = 1.0 / (d * d)
    elif SG == 6:  # Erf
        u = p0 * z
        g = (p0 * 0.5641895835477563) * tl.exp(-u * u)
    elif SG == 7:  # FastSigmoid
        d = 1.0 + (p0 / 2.0) * tl.abs(z)
        g = (p0 / 4.0) / (d * d)
    else:  # PiecewiseLeakyReLU: p0 = w, p1 = c
        g = tl.where(tl.abs(z) <= p0, 1.0 / (2.0 * p0) + 0.0 * z, p1 + 0.0 * z)
    return g


@triton.jit
def _reset(h, v_th, v_reset, HARD: tl.constexpr):
    """(spike, v) after firing from ``h`` (same float32 ops as snncore.functional.dynamics)."""
    s = ((h - v_th) >= 0.0).to(tl.float32)
    if HARD:
        v = h * (1.0 - s) + v_reset * s
    else:
        v = h - s * v_th
    return s, v


@triton.jit
def _forward_body(x_ptr, v0_ptr, s_ptr, h_ptr, v_ptr, T, M, k, v_th, v_reset,
                  KIND: tl.constexpr, DECAY_INPUT: tl.constexpr, HARD: tl.constexpr,
                  SAVE_H: tl.constexpr, STORE_V: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    v = tl.load(v0_ptr + offs, mask=mask, other=0.0)
    row = offs.to(tl.int64)
    for _t in range(T):
        x = tl.load(x_ptr + row, mask=mask, other=0.0).to(tl.float32)
        if KIND == 0:  # IF
            h = v + x
        elif DECAY_INPUT:
            h = v + (x - (v - v_reset)) * k
        else:
            h = v - (v - v_reset) * k + x
        s, v = _reset(h, v_th, v_reset, HARD)
        tl.store(s_ptr + row, s.to(s_ptr.dtype.element_ty), mask=mask)
        if SAVE_H:
            tl.store(h_ptr + row, h, mask=mask)
        if STORE_V:
            tl.store(v_ptr + row, v, mask=mask)
        row += M
    if not STORE_V:
        tl.store(v_ptr + offs, v, mask=mask)


@triton.jit
def _backward_body(h_ptr, gs_ptr, gv_ptr, gx_ptr, gv0_ptr, x_ptr, v0_ptr, gk_ptr, T, M, last_row, k,
                   v_th, v_reset, p0, p1, KIND: tl.constexpr, DECAY_INPUT: tl.constexpr,
                   HARD: tl.constexpr, DETACH: tl.constexpr, STORE_V: tl.constexpr,
                   SG: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    row = offs.to(tl.int64) + last_row  # last_row = (T - 1) * M, computed on the host
    if STORE_V:
        acc = tl.zeros([BLOCK], dtype=tl.float32)
    else:
        acc = tl.load(gv_ptr + offs, mask=mask, other=0.0)
    gk = tl.zeros([BLOCK], dtype=tl.float32)
    h = tl.load(h_ptr + row, mask=mask, other=0.0)
    for i in range(T):
        t = T - 1 - i
        if STORE_V:
            acc += tl.load(gv_ptr + row, mask=mask, other=0.0)
        z = h - v_th
        g = _surrogate_grad(z, SG, p0, p1)
        if HARD:
            dvdh = 1.0 - (z >= 0.0).to(tl.float32)
            if not DETACH:
                dvdh += (v_reset - h) * g
        else:
            dvdh = 1.0 - 0.0 * g
            if not DETACH:
                dvdh = 1.0 - v_th * g
        gh = tl.load(gs_ptr + row, mask=mask, other=0.0).to(tl.float32) * g + acc * dvdh
        if KIND != 0 and DECAY_INPUT:
            gx = gh * k
        else:
            gx = gh
        tl.store(gx_ptr + row, gx.to(gx_ptr.dtype.element_ty), mask=mask)
        not_first = (tl.zeros([BLOCK], dtype=tl.int32) + t) > 0
        has_prev = mask & not_first
        h_prev = tl.load(h_ptr + row - M, mask=has_prev, other=0.0)
        if KIND == 2:  # PLIF: dL/dk += dL/dH[t] * dH[t]/dk with V[t-1] from H[t-1] (or v0)
            _, v_prev = _reset(h_prev, v_th, v_reset, HARD)
            v_prev = tl.where(not_first, v_prev, tl.load(v0_ptr + offs, mask=mask, other=0.0))
            if DECAY_INPUT:
                dhdk = tl.load(x_ptr + row, mask=mask, other=0.0).to(tl.float32) - (v_prev - v_reset)
            else:
                dhdk = v_reset - v_prev
            gk += tl.where(mask, gh * dhdk, 0.0)
        if KIND == 0:
            acc = gh
        else:
            acc = gh * (1.0 - k)
        h = h_prev
        row -= M
    tl.store(gv0_ptr + offs, acc, mask=mask)
    if KIND == 2:
        tl.store(gk_ptr + pid, tl.sum(gk, axis=0))


@triton.jit
def _if_forward_kernel(x_ptr, v0_ptr, s_ptr, h_ptr, v_ptr, T, M, v_th, v_reset,
                       HARD: tl.constexpr, SAVE_H: tl.constexpr, STORE_V: tl.constexpr,
                       BLOCK: tl.constexpr):
    _forward_body(x_ptr, v0_ptr, s_ptr, h_ptr, v_ptr, T, M, 1.0, v_th, v_reset, 0, False, HARD,
                  SAVE_H, STORE_V, BLOCK)


@triton.jit
def _lif_forward_kernel(x_ptr, v0_ptr, s_ptr, h_ptr, v_ptr, T, M, k, v_th, v_reset,
                        DECAY_INPUT: tl.constexpr, HARD: tl.constexpr, SAVE_H: tl.constexpr,
                        STORE_V: tl.constexpr, BLOCK: tl.constexpr):
    _forward_body(x_ptr, v0_ptr, s_ptr, h_ptr, v_ptr, T, M, k, v_th, v_reset, 1, DECAY_INPUT, HARD,
                  SAVE_H, STORE_V, BLOCK)


@triton.jit
def _plif_forward_kernel(x_ptr, v0_ptr, s_ptr, h_ptr, v_ptr, k_ptr, T, M, v_th, v_reset,
                         DECAY_INPUT: tl.constexpr, HARD: tl.constexpr, SAVE_H: tl.constexpr,
                         STORE_V: tl.constexpr, BLOCK: tl.constexpr):
    k = tl.load(k_ptr)
    _forward_body(x_ptr, v0_ptr, s_ptr, h_ptr, v_ptr, T, M, k, v_th, v_reset, 2, DECAY_INPUT, HARD,
                  SAVE_H, STORE_V, BLOCK)


@triton.jit
def _if_backward_kernel(h_ptr, gs_ptr, gv_ptr, gx_ptr, gv0_ptr, T, M, last_row, v_th, v_reset,
                        p0, p1, HARD: tl.constexpr, DETACH: tl.constexpr, STORE_V: tl.constexpr,
                        SG: tl.constexpr, BLOCK: tl.constexpr):
    _backward_body(h_ptr, gs_ptr, gv_ptr, gx_ptr, gv0_ptr, h_ptr, h_ptr, h_ptr, T, M, last_row, 1.0,
                   v_th, v_reset, p0, p1, 0, False, HARD, DETACH, STORE_V, SG, BLOCK)


@triton.jit
def _lif_backward_kernel(h_ptr, gs_ptr, gv_ptr, gx_ptr, gv0_ptr, T, M, last_row, k, v_th, v_reset,
                         p0, p1, DECAY_INPUT: tl.constexpr, HARD: tl.constexpr, DETACH: tl.constexpr,
                         STORE_V: tl.constexpr, SG: tl.constexpr, BLOCK: tl.constexpr):
    _backward_body(h_ptr, gs_ptr, gv_ptr, gx_ptr, gv0_ptr, h_ptr, h_ptr, h_ptr, T, M, last_row, k,
                   v_th, v_reset, p0, p1, 1, DECAY_INPUT, HARD, DETACH, STORE_V, SG, BLOCK)


@triton.jit
def _plif_backward_kernel(h_ptr, gs_ptr, gv_ptr, gx_ptr, gv0_ptr, x_ptr, v0_ptr, k_ptr, gk_ptr, T, M,
                          last_row, v_th, v_reset, p0, p1, DECAY_INPUT: tl.constexpr, HARD: tl.constexpr,
                          DETACH: tl.constexpr, STORE_V: tl.constexpr, SG: tl.constexpr,
                          BLOCK: tl.constexpr):
    k = tl.load(k_ptr)
    _backward_body(h_ptr, gs_ptr, gv_ptr, gx_ptr, gv0_ptr, x_ptr, v0_ptr, gk_ptr, T, M, last_row, k,
                   v_th, v_reset, p0, p1, 2, DECAY_INPUT, HARD, DETACH, STORE_V, SG, BLOCK)


def _device(t: torch.Tensor):
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def forward(cfg: KernelConfig, x2d: torch.Tensor, v0: torch.Tensor, k, *, save: bool,
            store_v: bool):
    """Run the forward kernel of ``cfg.kind``.

    ``x2d``: ``[T, M]`` float32/float16/bfloat16 (made contiguous); ``v0``: ``[M]`` float32;
    ``k``: float (LIF) or 0-dim float32 tensor on the same device (PLIF).
    Returns ``(spikes [T, M] x dtype, v_out [T or 1, M] float32, saved)``; ``saved`` holds ``h``
    (and for PLIF ``v0``, plus ``x2d`` when ``decay_input``) when ``save``.
    """
    T, M = x2d.shape
    x2d = x2d.detach().contiguous()
    v0 = v0.detach().to(torch.float32).contiguous()
    spikes = torch.empty_like(x2d)
    h = torch.empty((T, M) if save else (1,), dtype=torch.float32, device=x2d.device)
    v_out = torch.empty((T if store_v else 1, M), dtype=torch.float32, device=x2d.device)
    grid = (triton.cdiv(M, _BLOCK),)
    common = dict(HARD=cfg.hard, SAVE_H=save, STORE_V=store_v, BLOCK=_BLOCK, num_warps=_NUM_WARPS)
    with _device(x2d):
        if cfg.kind == IF:
            _if_forward_kernel[grid](x2d, v0, spikes, h, v_out, T, M, cfg.v_threshold, cfg.v_reset,
                                     **common)
        elif cfg.kind == LIF:
            _lif_forward_kernel[grid](x2d, v0, spikes, h, v_out, T, M, cfg.k, cfg.v_threshold,
                                      cfg.v_reset, DECAY_INPUT=cfg.decay_input, **common)
        else:
            k1 = k.detach().reshape(1).to(torch.float32).contiguous()
            _plif_forward_kernel[grid](x2d, v0, spikes, h, v_out, k1, T, M, cfg.v_threshold,
                                       cfg.v_reset, DECAY_INPUT=cfg.decay_input, **common)
    if not save:
        saved = ()
    elif cfg.kind == PLIF:
        saved = (h, v0, x2d) if cfg.decay_input else (h, v0)
    else:
        saved = (h,)
    return spikes, v_out, saved


def backward(cfg: KernelConfig, spec, saved, gs: torch.Tensor, gv: torch.Tensor, k, *,
             store_v: bool):
    """Run the backward kernel of ``cfg.kind``.

    ``spec``: ``(sg_id, p0, p1)``; ``saved``: what :func:`forward` returned; ``gs``: dL/dspikes
    ``[T, M]`` (spike dtype); ``gv``: dL/dv_out ``[T or 1, M]``.
    Returns ``(gx [T, M] in gs's dtype, gv0 [M] float32, gk 0-dim tensor or None)``.
    """
    h = saved[0]
    T, M = h.shape
    gs = gs.contiguous()
    gv = gv.to(torch.float32).contiguous()
    gx = torch.empty((T, M), dtype=gs.dtype, device=h.device)
    gv0 = torch.empty(M, dtype=torch.float32, device=h.device)
    sg_id, p0, p1 = spec
    last_row = (T - 1) * M
    grid = (triton.cdiv(M, _BLOCK),)
    common = dict(HARD=cfg.hard, DETACH=cfg.detach_reset, STORE_V=store_v, SG=sg_id, BLOCK=_BLOCK,
                  num_warps=_NUM_WARPS)
    gk = None
    with _device(h):
        if cfg.kind == IF:
            _if_backward_kernel[grid](h, gs, gv, gx, gv0, T, M, last_row, cfg.v_threshold, cfg.v_reset, p0,
                                      p1, **common)
        elif cfg.kind == LIF:
            _lif_backward_kernel[grid](h, gs, gv, gx, gv0, T, M, last_row, cfg.k, cfg.v_threshold,
                                       cfg.v_reset, p0, p1, DECAY_INPUT=cfg.decay_input, **common)
        else:
            v0 = saved[1]
            x2d = saved[2] if cfg.decay_input else h
            k1 = k.detach().reshape(1).to(torch.float32).contiguous()
            partial = torch.empty(grid[0], dtype=torch.float32, device=h.device)
            _plif_backward_kernel[grid](h, gs, gv, gx, gv0, x2d, v0, k1, partial, T, M,
                                        last_row, cfg.v_threshold, cfg.v_reset, p0, p1,
                                        DECAY_INPUT=cfg.decay_input, **common)
            gk = partial.sum()
    return gx, gv0, gk
