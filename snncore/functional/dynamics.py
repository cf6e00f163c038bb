r"""Pure spiking dynamics: charge, fire, reset, one step and whole sequences.

Every neuron runs the same three stages per time step ``t`` (state :math:`V` in float32):

* **charge**: the hidden potential :math:`H[t]` from the input :math:`X[t]` and :math:`V[t-1]`

  - IF: :math:`H[t] = V[t-1] + X[t]`
  - LIF, ``decay_input=True``:  :math:`H[t] = V[t-1] + (X[t] - (V[t-1] - V_{reset}))\,k`
  - LIF, ``decay_input=False``: :math:`H[t] = V[t-1] - (V[t-1] - V_{reset})\,k + X[t]`

  with the decay :math:`k = 1/\tau` (rounded once to float32) for LIF, :math:`k = \mathrm{sigmoid}(w)`
  (a learnable scalar tensor) for PLIF, and :math:`V_{reset} = 0` in the charge when the reset is
  soft (``v_reset=None``);
* **fire**: :math:`S[t] = \Theta(H[t] - V_{th})`, i.e. a spike when :math:`H[t] - V_{th} \ge 0`,
  with the surrogate's derivative :math:`g'(H[t] - V_{th})` as its gradient;
* **reset**: hard (``v_reset`` a number) :math:`V[t] = H[t](1 - S[t]) + V_{reset}S[t]`; soft
  (``v_reset=None``) :math:`V[t] = H[t] - V_{th}S[t]`. With ``detach_reset=True`` the :math:`S[t]`
  in the reset carries no gradient.

The gradients follow from these formulas by the chain rule (backpropagation through time); the
fused kernels in :mod:`snncore.kernels` implement exactly that recurrence and are tested against
:func:`multi_step_reference`, which loops :func:`neuron_step` over time with autograd.

Parameters are small frozen dataclasses (:class:`IFParameters`, :class:`LIFParameters`,
:class:`PLIFParameters`); numbers may be ints (``tau=2``). The state ``v`` is a float32 tensor
shaped like one time step of the input; spikes come out in the input's dtype.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "IFParameters", "LIFParameters", "PLIFParameters", "charge_if", "charge_lif", "fire",
    "reset", "neuron_step", "if_step", "lif_step", "plif_step", "multi_step_reference",
    "if_multi_step", "lif_multi_step", "plif_multi_step", "plif_decay",
]


def _real(name: str, value, *, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        accepted = "a real number (int or float)" + (" or None" if allow_none else "")
        raise TypeError(f"{name} must be {accepted}, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _f32(value: float) -> float:
    """``value`` rounded to the nearest float32 (all backends then use the same constant)."""
    return float(np.float32(value))


@dataclass(frozen=True)
class IFParameters:
    """Integrate-and-fire: threshold, reset (``None`` = soft reset by subtraction), detach_reset."""

    v_threshold: float = 1.0
    v_reset: float | None = 0.0
    detach_reset: bool = False

    def __post_init__(self):
        object.__setattr__(self, "v_threshold", _f32(_real("v_threshold", self.v_threshold)))
        v_reset = _real("v_reset", self.v_reset, allow_none=True)
        object.__setattr__(self, "v_reset", None if v_reset is None else _f32(v_reset))
        object.__setattr__(self, "detach_reset", _flag("detach_reset", self.detach_reset))

    @property
    def hard_reset(self) -> bool:
        return self.v_reset is not None


@dataclass(frozen=True)
class PLIFParameters(IFParameters):
    """Parametric LIF: as IF plus ``decay_input``; the decay k = sigmoid(w) is passed as a tensor."""

    decay_input: bool = True

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "decay_input", _flag("decay_input", self.decay_input))


@dataclass(frozen=True)
class LIFParameters(PLIFParameters):
    """Leaky integrate-and-fire: as PLIF plus the membrane time constant ``tau`` (>= 1, in steps)."""

    tau: float = 2.0

    def __post_init__(self):
        super().__post_init__()
        tau = _real("tau", self.tau)
        if tau < 1.0:
            raise ValueError(f"tau must be >= 1 (time steps), got {tau}; tau < 1 makes the decay "
                             "factor 1 - 1/tau negative")
        object.__setattr__(self, "tau", tau)

    @property
    def decay(self) -> float:
        """k = 1/tau rounded to float32."""
        return _f32(1.0 / self.tau)


def plif_decay(w: torch.Tensor) -> torch.Tensor:
    """PLIF decay ``k = sigmoid(w)`` in float32 (differentiable in ``w``)."""
    return torch.sigmoid(w.float())


def charge_if(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    r""":math:`H = V + X`."""
    return v + x


def charge_lif(x: torch.Tensor, v: torch.Tensor, k, decay_input: bool, v_reset: float | None):
    r""":math:`H = V + (X - (V - V_r))k` (decay_input) or :math:`H = V - (V - V_r)k + X`.

    ``k`` is a float (LIF) or a 0-dim tensor (PLIF); ``V_r`` is 0 when ``v_reset`` is None.
    """
    vr = 0.0 if v_reset is None else v_reset
    if decay_input:
        return v + (x - (v - vr)) * k
    return v - (v - vr) * k + x


def fire(h: torch.Tensor, v_threshold: float, surrogate) -> torch.Tensor:
    r""":math:`S = \Theta(H - V_{th})` (float32, 1 where ``H - V_th >= 0``) with surrogate gradient."""
    return surrogate(h - v_threshold)


def reset(h: torch.Tensor, spike: torch.Tensor, v_threshold: float, v_reset: float | None,
          detach_reset: bool) -> torch.Tensor:
    r"""Hard :math:`V = H(1-S) + V_rS` (``v_reset`` a number) or soft :math:`V = H - V_{th}S`."""
    if detach_reset:
        spike = spike.detach()
    if v_reset is None:
        return h - spike * v_threshold
    return h * (1.0 - spike) + v_reset * spike


def neuron_step(x: torch.Tensor, v: torch.Tensor, params: IFParameters, surrogate, k=None):
    """One time step of the neuron ``params`` describes; returns ``(spike, v_next)``.

    Parameters
    ----------
    x : Tensor, shape (N, *), float32/float16/bfloat16
        Input of this step.
    v : Tensor, shape (N, *), float32
        Membrane potential after the previous step.
    params : IFParameters | LIFParameters | PLIFParameters
    surrogate : snncore.surrogate.SurrogateFunction
    k : Tensor, 0-dim, float32
        PLIF only: the decay ``sigmoid(w)``.

    Returns
    -------
    spike : Tensor, shape (N, *), ``x.dtype``
    v_next : Tensor, shape (N, *), float32
    """
    if isinstance(params, LIFParameters):
        h = charge_lif(x, v, params.decay, params.decay_input, params.v_reset)
    elif isinstance(params, PLIFParameters):
        if k is None:
            raise ValueError("a PLIF step needs k = sigmoid(w) (a 0-dim float32 tensor)")
        h = charge_lif(x, v, k, params.decay_input, params.v_reset)
    elif isinstance(params, IFParameters):
        h = charge_if(x, v)
    else:
        raise TypeError(f"params must be IFParameters, LIFParameters or PLIFParameters, got "
                        f"{type(params).__name__}")
    spike = fire(h, params.v_threshold, surrogate)
    v_next = reset(h, spike, params.v_threshold, params.v_reset, params.detach_reset)
    return spike.to(x.dtype), v_next


def if_step(x, v, params: IFParameters, surrogate):
    """One IF step, see :func:`neuron_step`."""
    return neuron_step(x, v, params, surrogate)


def lif_step(x, v, params: LIFParameters, surrogate):
    """One LIF step, see :func:`neuron_step`."""
    return neuron_step(x, v, params, surrogate)


def plif_step(x, v, k, params: PLIFParameters, surrogate):
    """One PLIF step with decay ``k = sigmoid(w)``, see :func:`neuron_step`."""
    return neuron_step(x, v, params, surrogate, k)


def multi_step_reference(x_seq: torch.Tensor, v: torch.Tensor, params: IFParameters, surrogate,
                         k=None, store_v_seq: bool = False):
    """The specification of every multi-step backend: :func:`neuron_step` looped over ``T``.

    Returns ``(spike_seq [T, N, *] in x dtype, v_last [N, *] float32, v_seq [T, N, *] or None)``.
    Autograd differentiates it step by step.
    """
    spikes, vs = [], []
    for x in x_seq:
        spike, v = neuron_step(x, v, params, surrogate, k)
        spikes.append(spike)
        if store_v_seq:
            vs.append(v)
    if not spikes:  # T = 0: empty results that stay in the graph (x_seq * 0 and v[None][:0])
        return x_seq * 0, v, (v[None][:0] if store_v_seq else None)
    return torch.stack(spikes), v, (torch.stack(vs) if store_v_seq else None)


def _multi_step(x_seq, v, params, surrogate, k, store_v_seq, backend):
    from snncore.kernels import multi_step

    return multi_step(x_seq, v, params, surrogate, k=k, store_v_seq=store_v_seq, backend=backend)


def if_multi_step(x_seq, v, params: IFParameters, surrogate, *, store_v_seq=False, backend=None):
    """IF over a sequence ``[T, N, *]`` with the fastest backend (see :mod:`snncore.kernels`).

    Same results as :func:`multi_step_reference`; returns ``(spike_seq, v_last, v_seq | None)``.
    """
    return _multi_step(x_seq, v, params, surrogate, None, store_v_seq, backend)


def lif_multi_step(x_seq, v, params: LIFParameters, surrogate, *, store_v_seq=False, backend=None):
    """LIF over a sequence ``[T, N, *]``; see :func:`if_multi_step`."""
    return _multi_step(x_seq, v, params, surrogate, None, store_v_seq, backend)


def plif_multi_step(x_seq, v, k, params: PLIFParameters, surrogate, *, store_v_seq=False,
                    backend=None):
    """PLIF over a sequence ``[T, N, *]`` with decay ``k = sigmoid(w)``; see :func:`if_multi_step`."""
    return _multi_step(x_seq, v, params, surrogate, k, store_v_seq, backend)
