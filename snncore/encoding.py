"""Encoders: turn analog values into spike trains (Poisson, latency, weighted phase, delta, population).

Each encoder is a pure function (``poisson_encode``, ``latency_encode``, ...) plus a thin module.
Encoders that *generate* the time axis (latency, phase) take a static input ``x`` of shape
``(N, *)``: in ``step_mode='m'`` they return the whole train ``(T, N, *)``, in ``step_mode='s'``
each call returns the next step (a step counter that ``reset_net`` rewinds). Encoders that map a
sequence to a sequence (delta) take ``(T, N, *)`` in ``'m'`` and one step ``(N, *)`` per call in
``'s'``. Elementwise encoders (Poisson, population) behave the same in both modes.
"""
from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
import torch

from .base import MemoryModule, StepModule

__all__ = [
    "poisson_encode", "latency_encode", "weighted_phase_encode", "delta_encode", "population_encode",
    "PoissonEncoder", "LatencyEncoder", "WeightedPhaseEncoder", "DeltaEncoder", "PopulationEncoder",
]


class RandomSource:
    """Where random numbers come from: ``rng`` is None (torch's global generator), an int seed or a
    ``torch.Generator``. A seed creates one generator per device on first use, seeded with it."""

    def __init__(self, rng=None):
        if rng is not None and not isinstance(rng, torch.Generator) and not (
                isinstance(rng, Integral) and not isinstance(rng, bool)):
            raise TypeError(f"rng must be None, an int seed or a torch.Generator, got {type(rng).__name__}")
        self.rng = rng
        self._by_device: dict = {}

    def rand(self, shape, device) -> torch.Tensor:
        """Uniform float32 samples in [0, 1) of ``shape`` on ``device``."""
        device = torch.device(device)
        if self.rng is None:
            return torch.rand(shape, device=device)
        if isinstance(self.rng, torch.Generator):
            g = self.rng
        else:
            key = str(device)
            g = self._by_device.get(key)
            if g is None:
                g = self._by_device[key] = torch.Generator(device=device).manual_seed(int(self.rng))
        return torch.rand(shape, generator=g, device=g.device).to(device)


def _check_unit_interval(x, name: str = "x", high: float = 1.0, high_text: str = "1") -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor of intensities, got "
                        f"{type(x).__name__ if not isinstance(x, torch.Tensor) else x.dtype}")
    if not x.numel():
        return
    lo, hi = torch.aminmax(x)  # one pass; NaN fails both tests; .item() is exact, so is the test
    if not (lo.item() >= 0 and hi.item() <= high):
        bad = x[~((x >= 0) & (x.double() <= high))].flatten()[0].item()
        raise ValueError(f"{name} must lie in [0, {high_text}] (normalise it first), found {bad!r}")


def _check_int(value, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low or (high is not None and value > high):
        rng = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an integer {rng}, got {value!r}")
    return int(value)


def _check_positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------------------
# Poisson (Bernoulli per step)

def poisson_encode(x: torch.Tensor, T: int, *, rng=None) -> torch.Tensor:
    """Rate coding: ``s[t] = 1 if u[t] < x else 0`` with ``u[t] ~ U[0, 1)`` i.i.d.

    Parameters
    ----------
    x : Tensor, float, shape (*), values in [0, 1]
        Firing probability per step (intensity).
    T : int >= 1
        Number of steps.
    rng : None, int or torch.Generator
        Random source (None: torch's global generator).

    Returns
    -------
    Tensor, shape (T, *x.shape), dtype of x, values in {0, 1}
        ``E[s[t]] = x``; 0 never fires, 1 fires at every step.
    """
    T = _check_int(T, "T", 1)
    _check_unit_interval(x)
    u = RandomSource(rng).rand((T, *x.shape), x.device)
    return (u < x.float()).to(x.dtype)


class PoissonEncoder(StepModule):
    """Rate coding module: each call returns ``(u < x)`` with fresh ``u ~ U[0, 1)``, same shape as x.

    ``rng`` (None, int seed or ``torch.Generator``) is kept for the module's life: two encoders built
    with the same seed emit the same spike trains. In ``'m'`` mode pass the intensities already
    repeated over time, e.g. ``x.expand(T, *x.shape)``.
    """

    def __init__(self, *, rng=None, step_mode: str = "s"):
        super().__init__(step_mode)
        self.random = RandomSource(rng)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_unit_interval(x)
        return (self.random.rand(x.shape, x.device) < x.float()).to(x.dtype)


# ---------------------------------------------------------------------------------------------
# Latency (time to first spike)

def _latency_times(x: torch.Tensor, T: int, method: str) -> torch.Tensor:
    x64 = x.double()
    if method == "linear":
        tf = (T - 1) * (1.0 - x64)
    elif method == "log":
        # (T-1) - ln(alpha*x + 1) with alpha = e^(T-1) - 1, written without the overflowing alpha
        tf = -torch.log(x64 + (1.0 - x64) * math.exp(-(T - 1)))
    else:
        raise ValueError(f"method must be 'linear' or 'log', got {method!r}")
    return torch.round(tf).clamp_(0, T - 1).long()


def latency_encode(x: torch.Tensor, T: int, *, method: str = "linear") -> torch.Tensor:
    """Time-to-first-spike coding: every element fires exactly once, brighter ones earlier.

    Spike time ``t_f`` (rounded to the nearest step, ties to even, clamped to [0, T-1]):

    - ``'linear'``: ``t_f = (T - 1) * (1 - x)``
    - ``'log'``: ``t_f = (T - 1) - ln(alpha * x + 1)`` with ``alpha = e^(T-1) - 1`` (so x = 1 fires at
      0 and x = 0 at T - 1; computed as ``-ln(x + (1 - x) e^-(T-1))`` in float64, no overflow).

    Parameters
    ----------
    x : Tensor, float, shape (*), values in [0, 1]
    T : int >= 1
    method : {'linear', 'log'}

    Returns
    -------
    Tensor, shape (T, *x.shape), dtype of x: one-hot over time, ``s[t] = 1`` iff ``t == t_f``.
    """
    T = _check_int(T, "T", 1)
    _check_unit_interval(x)
    tf = _latency_times(x, T, method)
    steps = torch.arange(T, device=x.device).view(T, *([1] * x.ndim))
    return (steps == tf).to(x.dtype)


class _ClockedEncoder(MemoryModule):
    """Encoders that generate a train of ``period`` steps: ``'m'`` returns it whole, ``'s'`` returns
    step ``t`` (memory, advanced modulo ``period`` after each call, rewound by ``reset_net``)."""

    period: int

    def __init__(self, step_mode: str):
        super().__init__(step_mode)
        self.register_memory("t", 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.step_mode == "m":
            return self._encode(x)
        out = self._encode_step(x, self.t)
        self.t = (self.t + 1) % self.period
        return out


class LatencyEncoder(_ClockedEncoder):
    """Module form of :func:`latency_encode` (``T`` steps, ``method`` 'linear' or 'log')."""

    def __init__(self, T: int, *, method: str = "linear", step_mode: str = "s"):
        super().__init__(step_mode)
        self.period = self.T = _check_int(T, "T", 1)
        if method not in ("linear", "log"):
            raise ValueError(f"method must be 'linear' or 'log', got {method!r}")
        self.method = method

    def _encode(self, x):
        return latency_encode(x, self.T, method=self.method)

    def _encode_step(self, x, t):
        _check_unit_interval(x)
        return (_latency_times(x, self.T, self.method) == t).to(x.dtype)

    def extra_repr(self):
        return f"T={self.T}, method={self.method!r}, step_mode={self.step_mode!r}"


# ---------------------------------------------------------------------------------------------
# Weighted phase (Kim et al. 2018)

def _phase_bits(x: torch.Tensor, K: int) -> torch.Tensor:
    K = _check_int(K, "K", 1, 32)
    _check_unit_interval(x, high=1.0 - 2.0 ** -K, high_text=f"1 - 2^-{K}")
    # x * 2^K is exact in x's own float32/float64 (a power of two); half types go through float32,
    # whose range holds it. Then q < 2^K fits int32 up to K = 31.
    xf = x if x.dtype in (torch.float32, torch.float64) else x.float()
    return torch.floor(xf * 2.0 ** K).to(torch.int32 if K < 32 else torch.int64)


def weighted_phase_encode(x: torch.Tensor, K: int) -> torch.Tensor:
    """Weighted phase coding: phase ``k`` (k = 0..K-1) carries weight ``2^-(k+1)``.

    The spikes are the binary digits of ``x``: ``s[k] = floor(x * 2^(k+1)) mod 2``, so
    ``sum_k 2^-(k+1) s[k] = floor(x * 2^K) / 2^K`` (x truncated to K bits). Repeat the train with
    period K for longer simulations.

    Parameters
    ----------
    x : Tensor, float, shape (*), values in [0, 1 - 2^-K]
    K : int in [1, 32]
        Number of phases.

    Returns
    -------
    Tensor, shape (K, *x.shape), dtype of x, values in {0, 1}.
    """
    q = _phase_bits(x, K)
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):  # numpy's allocator: huge pages
        out = torch.from_numpy(np.empty((K, *x.shape), np.float32 if x.dtype == torch.float32 else np.float64))
    else:
        out = torch.empty((K, *x.shape), dtype=x.dtype, device=x.device)
    for k in range(K):  # one phase at a time (a broadcast (K, *) int tensor of shifts took 10-20x longer)
        out[k] = (q >> (K - 1 - k)) & 1
    return out


class WeightedPhaseEncoder(_ClockedEncoder):
    """Module form of :func:`weighted_phase_encode`; in ``'s'`` mode phase k repeats every K calls."""

    def __init__(self, K: int, *, step_mode: str = "s"):
        super().__init__(step_mode)
        self.period = self.K = _check_int(K, "K", 1, 32)

    def _encode(self, x):
        return weighted_phase_encode(x, self.K)

    def _encode_step(self, x, t):
        return ((_phase_bits(x, self.K) >> (self.K - 1 - t)) & 1).to(x.dtype)

    def extra_repr(self):
        return f"K={self.K}, step_mode={self.step_mode!r}"


# ---------------------------------------------------------------------------------------------
# Delta (temporal difference of a sequence)

def _delta_spikes(x, prev, on: float, off: float, split_dim: int | None):
    """ON/OFF spikes of ``x - prev``: signed (``split_dim`` None) or stacked [OFF, ON] on ``split_dim``."""
    d = x - prev
    on_s = (d >= on).to(x.dtype)
    off_s = (d <= -off).to(x.dtype)
    return on_s - off_s if split_dim is None else torch.stack([off_s, on_s], dim=split_dim)


def _delta_params(threshold_on, threshold_off, initial):
    on = _check_positive(threshold_on, "threshold_on")
    off = on if threshold_off is None else _check_positive(threshold_off, "threshold_off")
    if initial not in ("zero", "first"):
        raise ValueError(f"initial must be 'zero' (x[-1] = 0) or 'first' (x[-1] = x[0]), got {initial!r}")
    return on, off


def delta_encode(x_seq: torch.Tensor, threshold_on: float, threshold_off: float | None = None, *,
                 initial: str = "zero", split_polarity: bool = False) -> torch.Tensor:
    """Delta modulation: spike where the signal changed by at least a threshold since the last step.

    ``d[t] = x[t] - x[t-1]`` with ``x[-1] = 0`` (``initial='zero'``) or ``x[-1] = x[0]``
    (``initial='first'``: no spikes at t = 0). ON where ``d[t] >= threshold_on``, OFF where
    ``d[t] <= -threshold_off`` (``threshold_off`` defaults to ``threshold_on``; both > 0).

    Parameters
    ----------
    x_seq : Tensor, float, shape (T, N, *)
    threshold_on, threshold_off : float > 0
    initial : {'zero', 'first'}
    split_polarity : bool
        False: one signed train (+1 ON, -1 OFF, 0). True: two binary channels on a new axis after
        the batch axis, index 0 = OFF and 1 = ON (the ``p`` convention of neurodata).

    Returns
    -------
    Tensor, dtype of x_seq, shape (T, N, *) or (T, N, 2, *) when ``split_polarity``.
    """
    on, off = _delta_params(threshold_on, threshold_off, initial)
    if not isinstance(x_seq, torch.Tensor) or x_seq.ndim < 2 or not x_seq.is_floating_point():
        raise ValueError("x_seq must be a floating-point tensor of shape (T, N, ...)")
    prev = torch.cat([(torch.zeros_like(x_seq[:1]) if initial == "zero" else x_seq[:1]), x_seq[:-1]])
    return _delta_spikes(x_seq, prev, on, off, 2 if split_polarity else None)


class DeltaEncoder(MemoryModule):
    """Module form of :func:`delta_encode`; in ``'s'`` mode the previous step is a memory."""

    def __init__(self, threshold_on: float, threshold_off: float | None = None, *, initial: str = "zero",
                 split_polarity: bool = False, step_mode: str = "s"):
        super().__init__(step_mode)
        self.threshold_on, self.threshold_off = _delta_params(threshold_on, threshold_off, initial)
        self.initial = initial
        self.split_polarity = bool(split_polarity)
        self.register_memory("prev", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.step_mode == "m":
            return delta_encode(x, self.threshold_on, self.threshold_off, initial=self.initial,
                                split_polarity=self.split_polarity)
        if not isinstance(x, torch.Tensor) or x.ndim < 1 or not x.is_floating_point():
            raise ValueError("x must be a floating-point tensor of shape (N, ...) (one step)")
        prev = self.prev
        if prev is None:
            prev = torch.zeros_like(x) if self.initial == "zero" else x
        elif prev.shape != x.shape:
            raise RuntimeError(f"DeltaEncoder got a step of shape {tuple(x.shape)} after one of shape "
                               f"{tuple(prev.shape)}; call snncore.functional.reset_net(net) between sequences")
        self.prev = x
        return _delta_spikes(x, prev, self.threshold_on, self.threshold_off, 1 if self.split_polarity else None)

    def extra_repr(self):
        return (f"threshold_on={self.threshold_on}, threshold_off={self.threshold_off}, "
                f"initial={self.initial!r}, split_polarity={self.split_polarity}, step_mode={self.step_mode!r}")


# ---------------------------------------------------------------------------------------------
# Population coding with Gaussian receptive fields (Bohte et al. 2002)

def _population_centers(n_neurons, low, high, beta):
    n = _check_int(n_neurons, "n_neurons", 3)
    if not (isinstance(low, Real) and isinstance(high, Real) and math.isfinite(low) and math.isfinite(high)
            and high > low):
        raise ValueError(f"low and high must be finite numbers with low < high, got low={low!r}, high={high!r}")
    beta = _check_positive(beta, "beta")
    step = (high - low) / (n - 2)
    centers = [low + (2 * i - 3) / 2 * step for i in range(1, n + 1)]
    return centers, step / beta


def population_encode(x: torch.Tensor, n_neurons: int, low: float, high: float, *, beta: float = 1.5) -> torch.Tensor:
    """Gaussian receptive fields: each value excites ``n_neurons`` neurons with responses in (0, 1].

    Neuron ``i = 1..m`` (m = ``n_neurons`` >= 3) has centre ``mu_i = low + (2i - 3)/2 * (high - low)/(m - 2)``
    and width ``sigma = (high - low) / (beta * (m - 2))``; its response is
    ``exp(-(x - mu_i)^2 / (2 sigma^2))``. Feed the responses to :class:`PoissonEncoder` or
    :func:`latency_encode` to get spikes.

    Returns
    -------
    Tensor, shape (*x.shape, n_neurons), dtype of x.
    """
    centers, sigma = _population_centers(n_neurons, low, high, beta)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("x must be a floating-point torch.Tensor")
    mu = torch.tensor(centers, dtype=x.dtype, device=x.device)
    return torch.exp(-((x.unsqueeze(-1) - mu) ** 2) / (2 * sigma ** 2))


class PopulationEncoder(StepModule):
    """Module form of :func:`population_encode` (elementwise: same result in both step modes)."""

    def __init__(self, n_neurons: int, low: float, high: float, *, beta: float = 1.5, step_mode: str = "s"):
        super().__init__(step_mode)
        _population_centers(n_neurons, low, high, beta)
        self.n_neurons, self.low, self.high, self.beta = int(n_neurons), float(low), float(high), float(beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return population_encode(x, self.n_neurons, self.low, self.high, beta=self.beta)

    def extra_repr(self):
        return (f"n_neurons={self.n_neurons}, low={self.low}, high={self.high}, beta={self.beta}, "
                f"step_mode={self.step_mode!r}")
