"""One ``torch.autograd.Function`` per neuron type around a fused backend (``cpu`` or ``triton``).

Forward runs the backend's time loop and keeps only what that backend's BPTT recurrence needs
(the backend decides): the CPU backend keeps the float32 input and the initial potential and
recomputes ``H`` block by block; the Triton backend keeps the hidden potentials ``h_seq`` (float32;
spikes are recomputed as ``h - V_th >= 0``) and, for PLIF, the initial potential and (with
``decay_input=True``) the input, since ``dH/dk`` needs ``X[t] - (V[t-1] - V_reset)``. Backward
returns gradients for the input sequence, the initial potential and (PLIF) ``k``; autograd carries
``dL/dk`` on to ``w`` through ``sigmoid``.
"""
from __future__ import annotations

import torch

from ._config import IF, LIF, PLIF

__all__ = ["IFMultiStep", "LIFMultiStep", "PLIFMultiStep", "FUNCTIONS"]


class _MultiStep(torch.autograd.Function):
    """Shared body; subclasses fix the neuron kind (checked against the config)."""

    kind = -1

    @staticmethod
    def forward(ctx, x_seq, v0, k, impl, cfg, spec, store_v):
        T = x_seq.shape[0]
        rest = x_seq.shape[1:]
        spikes, v_out, saved = impl.forward(cfg, x_seq.reshape(T, -1), v0.reshape(-1),
                                            cfg.k if k is None else k, save=True, store_v=store_v)
        ctx.impl, ctx.cfg, ctx.spec, ctx.store_v = impl, cfg, spec, store_v
        ctx.x_dtype, ctx.x_shape, ctx.v_shape = x_seq.dtype, x_seq.shape, v0.shape
        ctx.n_saved = len(saved)
        ctx.save_for_backward(*saved, k)
        v_out = v_out.view((T, *rest) if store_v else rest)
        return spikes.view(x_seq.shape), v_out

    @staticmethod
    def backward(ctx, g_spikes, g_v):
        if torch.is_grad_enabled():  # create_graph=True: the fused backward has no graph to differentiate
            raise RuntimeError(
                "a second derivative (create_graph=True, e.g. a gradient penalty) through the fused multi-step "
                "kernel is not supported: its backward is not differentiable, so the result would be wrong. "
                "Run with SNNCORE_BACKEND=reference or step_mode='s', which autograd differentiates twice.")
        cfg = ctx.cfg
        tensors = ctx.saved_tensors
        saved, k = tensors[:ctx.n_saved], tensors[ctx.n_saved]
        T = ctx.x_shape[0]
        gs = g_spikes.reshape(T, -1)
        gv = g_v.reshape(T if ctx.store_v else 1, -1)
        gx, gv0, gk = ctx.impl.backward(cfg, ctx.spec, saved, gs, gv, cfg.k if k is None else k,
                                        store_v=ctx.store_v)
        gx = gx.view(ctx.x_shape).to(ctx.x_dtype)
        gv0 = gv0.view(ctx.v_shape)
        if gk is not None:
            gk = torch.as_tensor(gk, dtype=torch.float32, device=k.device).reshape(k.shape)
        return gx, gv0, gk, None, None, None, None


class IFMultiStep(_MultiStep):
    """IF over ``[T, N, *]``: ``apply(x_seq, v0, None, impl, cfg, spec, store_v)``."""

    kind = IF


class LIFMultiStep(_MultiStep):
    """LIF over ``[T, N, *]``: ``apply(x_seq, v0, None, impl, cfg, spec, store_v)``."""

    kind = LIF


class PLIFMultiStep(_MultiStep):
    """PLIF over ``[T, N, *]``: ``apply(x_seq, v0, k, impl, cfg, spec, store_v)``, ``k = sigmoid(w)``."""

    kind = PLIF


FUNCTIONS = {IF: IFMultiStep, LIF: LIFMultiStep, PLIF: PLIFMultiStep}
