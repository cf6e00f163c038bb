"""Fused multi-step neuron kernels and their dispatch.

Backends, each in a file named after it: ``reference`` (pure torch loop, the specification),
``cpu`` (numba time loop), ``triton`` (CUDA; CPU through ``TRITON_INTERPRET=1``). The choice is made
per call by :func:`backend_for` (device, dtype, surrogate) and can be forced with the environment
variable ``SNNCORE_BACKEND`` (see :mod:`snncore.kernels._dispatch`).
"""
from __future__ import annotations

import math

import torch

from ._dispatch import BACKENDS, ENV_VAR, KernelFallbackWarning, backend_for, resolve_backend

__all__ = ["multi_step", "backend_for", "BACKENDS", "ENV_VAR", "KernelFallbackWarning"]


def _impl(name: str):
    if name == "cpu":
        from . import cpu

        return cpu
    from . import triton as triton_backend

    return triton_backend


def _validate(x_seq, v, params, k):
    from snncore.functional.dynamics import PLIFParameters, LIFParameters

    if not torch.is_tensor(x_seq) or x_seq.dim() < 1:
        raise TypeError("x_seq must be a tensor of shape [T, N, *] (time first), got "
                        f"{type(x_seq).__name__}{'' if not torch.is_tensor(x_seq) else ' of dim 0'}")
    if not x_seq.is_floating_point():
        raise TypeError(f"x_seq must be a floating-point tensor, got {x_seq.dtype}")
    if not torch.is_tensor(v) or v.shape != x_seq.shape[1:]:
        raise ValueError(f"v must be a tensor shaped like one time step {tuple(x_seq.shape[1:])}, "
                         f"got {tuple(v.shape) if torch.is_tensor(v) else type(v).__name__}")
    states = (torch.float32, torch.float64) if x_seq.dtype == torch.float64 else (torch.float32,)
    if v.dtype not in states or v.device != x_seq.device:
        raise ValueError(f"v must be float32 (or float64 with float64 x_seq) on {x_seq.device} (the neuron "
                         f"state), got {v.dtype} on {v.device}")
    is_plif = isinstance(params, PLIFParameters) and not isinstance(params, LIFParameters)
    if is_plif and (not torch.is_tensor(k) or k.numel() != 1 or k.dtype != torch.float32):
        raise ValueError("PLIF needs k = sigmoid(w) as a float32 tensor with one element")
    if not is_plif and k is not None:
        raise ValueError(f"k is only for PLIFParameters, got it with {type(params).__name__}")


# eager inside torch.compile: dynamo tracing into a numba dispatcher that had not compiled yet crashed
@torch.compiler.disable
def multi_step(x_seq: torch.Tensor, v: torch.Tensor, params, surrogate, *, k=None,
               store_v_seq: bool = False, backend: str | None = None):
    """Run a neuron over a whole sequence with the chosen backend.

    Inside ``torch.compile`` this call runs eagerly (a graph break): the kernels are compiled
    code of their own.

    Parameters
    ----------
    x_seq : Tensor, shape (T, N, *), float32 / float16 / bfloat16 (others use the reference)
        Input; any strides (copied to contiguous when needed).
    v : Tensor, shape (N, *), float32 (or float64 when ``x_seq`` is float64)
        Membrane potential before step 0.
    params : IFParameters | LIFParameters | PLIFParameters
    surrogate : SurrogateFunction
    k : Tensor, 0-dim float32, keyword-only
        PLIF only: the decay ``sigmoid(w)``.
    store_v_seq : bool
        Also return the potential after every step.
    backend : {"auto", "triton", "cpu", "reference"}, optional
        Overrides ``SNNCORE_BACKEND`` for this call.

    Returns
    -------
    spike_seq : Tensor, shape (T, N, *), x dtype
    v_last : Tensor, shape (N, *), float32
    v_seq : Tensor, shape (T, N, *), float32, or None
    """
    from snncore.functional.dynamics import multi_step_reference
    from snncore.surrogate import kernel_spec

    from ._config import KernelConfig
    from .autograd import FUNCTIONS

    _validate(x_seq, v, params, k)
    cfg = KernelConfig.from_params(params)
    name = resolve_backend(x_seq, surrogate, backend=backend)
    T = x_seq.shape[0]
    if name == "reference" or T == 0 or math.prod(x_seq.shape[1:]) == 0:
        return multi_step_reference(x_seq, v, params, surrogate, k, store_v_seq)
    impl = _impl(name)
    tensors = (x_seq, v) if k is None else (x_seq, v, k)
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        spec = kernel_spec(surrogate)
        spike_seq, v_out = FUNCTIONS[cfg.kind].apply(x_seq, v, k, impl, cfg, spec, store_v_seq)
    else:
        spikes, v_out, _ = impl.forward(cfg, x_seq.reshape(T, -1), v.reshape(-1),
                                        cfg.k if k is None else k, save=False, store_v=store_v_seq)
        spike_seq = spikes.view(x_seq.shape)
        v_out = v_out.view(x_seq.shape if store_v_seq else x_seq.shape[1:])
    if store_v_seq:
        return spike_seq, v_out[-1], v_out
    return spike_seq, v_out, None
