r"""Stateful spiking neurons: thin modules over :mod:`snncore.functional.dynamics`.

The membrane potential ``v`` lives in the module (float32, shaped like one time step of the input),
so neurons stack directly in ``nn.Sequential``. ``step_mode='s'`` takes one step ``x[t]`` of shape
``(N, *)``; ``step_mode='m'`` takes a whole sequence ``(T, N, *)`` and runs the fused multi-step
kernel chosen by :func:`snncore.kernels.backend_for` (same results as the single-step loop).
Call ``snncore.functional.reset_net(net)`` (or ``node.reset()``) between independent sequences;
an input whose shape differs from the stored state raises (or resets, with ``auto_reset=True``).

Equations (see :mod:`snncore.functional.dynamics`): charge
:math:`H = V + X` (IF), :math:`H = V + (X - (V - V_r))/\tau` (LIF, ``decay_input``) or
:math:`H = V - (V - V_r)/\tau + X`; fire :math:`S = \Theta(H - V_{th})`; reset
:math:`V = H(1 - S) + V_rS` (hard) or :math:`V = H - V_{th}S` (``v_reset=None``, soft).
"""
from __future__ import annotations

import dataclasses
import math
import numbers

import torch
from torch import nn

from .base import MemoryModule
from .functional import dynamics
from .surrogate import Sigmoid, SurrogateFunction

__all__ = ["BaseNode", "IFNode", "LIFNode", "ParametricLIFNode"]


class BaseNode(MemoryModule):
    """Common state handling of the spiking neurons (not used directly).

    Parameters
    ----------
    v_threshold : float, default 1.0
        Firing threshold :math:`V_{th}` (ints accepted).
    v_reset : float or None, default 0.0
        Hard-reset potential; ``None`` resets softly by subtracting ``v_threshold``.
    surrogate_function : SurrogateFunction, default ``Sigmoid(alpha=4)``
    detach_reset : bool, default False
        Cut the gradient through the spike in the reset.
    step_mode : {'s', 'm'}, default 's'
    store_v_seq : bool, default False
        In ``'m'`` mode keep the potential after every step in ``self.v_seq`` ``(T, N, *)``.
        In ``'s'`` mode ``v_seq`` stays ``None`` (read ``self.v`` after each step).
    auto_reset : bool, default False
        When the input's shape (or device) no longer matches the stored state, reset instead of
        raising.
    """

    _params_class = dynamics.IFParameters

    def __init__(self, v_threshold: float = 1.0, v_reset: float | None = 0.0,
                 surrogate_function: SurrogateFunction | None = None, detach_reset: bool = False,
                 step_mode: str = "s", store_v_seq: bool = False, auto_reset: bool = False,
                 **extra):
        super().__init__(step_mode)
        self.params = self._params_class(v_threshold=v_threshold, v_reset=v_reset,
                                         detach_reset=detach_reset, **extra)
        if surrogate_function is None:
            surrogate_function = Sigmoid()
        if not isinstance(surrogate_function, SurrogateFunction):
            raise TypeError("surrogate_function must be a snncore.surrogate.SurrogateFunction "
                            f"(e.g. snncore.surrogate.ATan()), got {type(surrogate_function).__name__}")
        self.surrogate_function = surrogate_function
        for name, value in (("store_v_seq", store_v_seq), ("auto_reset", auto_reset)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False, got {value!r}")
        self.store_v_seq = store_v_seq
        self.auto_reset = auto_reset
        self.register_memory("v", 0.0 if self.params.v_reset is None else self.params.v_reset)
        self.register_memory("v_seq", None)

    # parameters: read through, and replaced (validated) on assignment
    def _replace(self, **changes) -> None:
        self.params = dataclasses.replace(self.params, **changes)

    v_threshold = property(lambda self: self.params.v_threshold,
                           lambda self, value: self._replace(v_threshold=value))
    def _set_v_reset(self, value) -> None:
        self._replace(v_reset=value)
        if not torch.is_tensor(self.v):  # before the first call v is v_reset: the new one
            self.v = 0.0 if value is None else value

    v_reset = property(lambda self: self.params.v_reset, _set_v_reset)
    detach_reset = property(lambda self: self.params.detach_reset,
                            lambda self, value: self._replace(detach_reset=value))

    def reset(self) -> None:
        """Forget the state: ``v`` back to ``v_reset`` (0 for a soft reset), ``v_seq`` to None."""
        super().reset()
        self.v = 0.0 if self.params.v_reset is None else self.params.v_reset

    def _decay_tensor(self):
        return None

    def _state(self, shape: torch.Size, x: torch.Tensor) -> torch.Tensor:
        """The stored potential as a tensor of ``shape``, float32 (float64 for float64 ``x``);
        checks a left-over state."""
        v = self.v
        if torch.is_tensor(v) and (v.shape != shape or v.device != x.device):
            if not self.auto_reset:
                raise RuntimeError(
                    f"{type(self).__name__}: the input's neuron shape {tuple(shape)} on {x.device} "
                    f"does not match the stored membrane potential {tuple(v.shape)} on {v.device}, "
                    "left over from a previous batch. Call snncore.functional.reset_net(net) "
                    "between batches (or build the neuron with auto_reset=True).")
            self.reset()
            v = self.v
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        if not torch.is_tensor(v):
            return torch.full(shape, float(v), dtype=dtype, device=x.device)
        return v.to(dtype)

    def _check_input(self, x) -> None:
        if not torch.is_tensor(x) or not x.is_floating_point():
            raise TypeError(f"{type(self).__name__} expects a floating-point tensor, got "
                            f"{x.dtype if torch.is_tensor(x) else type(x).__name__}")
        if self.step_mode == "m" and x.dim() < 2:
            raise ValueError(f"{type(self).__name__} in step_mode='m' expects (T, N, *) input, got "
                             f"shape {tuple(x.shape)}")

    def single_step_forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self._state(x.shape, x)
        spike, self.v = dynamics.neuron_step(x, v, self.params, self.surrogate_function,
                                             self._decay_tensor())
        return spike

    def multi_step_forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        from .kernels import multi_step

        v = self._state(x_seq.shape[1:], x_seq)
        spike_seq, self.v, v_seq = multi_step(x_seq, v, self.params, self.surrogate_function,
                                              k=self._decay_tensor(), store_v_seq=self.store_v_seq)
        if self.store_v_seq:
            self.v_seq = v_seq
        return spike_seq

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        if self.step_mode == "s":
            return self.single_step_forward(x)
        return self.multi_step_forward(x)

    def extra_repr(self) -> str:
        fields = ", ".join(f"{f.name}={getattr(self.params, f.name)!r}"
                           for f in dataclasses.fields(self.params))
        return f"{fields}, step_mode={self.step_mode!r}, store_v_seq={self.store_v_seq}"


class IFNode(BaseNode):
    r"""Integrate-and-fire: :math:`H = V + X`, fire at :math:`H - V_{th} \ge 0`, then reset.

    Parameters as :class:`BaseNode`.

    Examples
    --------
    >>> import torch
    >>> node = IFNode(step_mode="m")
    >>> node(torch.full((3, 1), 0.6)).flatten().tolist()
    [0.0, 1.0, 0.0]
    """


class LIFNode(BaseNode):
    r"""Leaky integrate-and-fire with time constant ``tau`` (in steps, >= 1; ints accepted).

    ``decay_input=True``: :math:`H = V + (X - (V - V_r))/\tau`; ``False``:
    :math:`H = V - (V - V_r)/\tau + X` (:math:`V_r = 0` in the charge when ``v_reset=None``).
    Other parameters as :class:`BaseNode`.

    Examples
    --------
    >>> import torch
    >>> node = LIFNode(tau=2, step_mode="m")
    >>> node(torch.full((4, 1), 1.5)).flatten().tolist()
    [0.0, 1.0, 0.0, 1.0]
    """

    _params_class = dynamics.LIFParameters

    def __init__(self, tau: float = 2.0, decay_input: bool = True, v_threshold: float = 1.0,
                 v_reset: float | None = 0.0, surrogate_function: SurrogateFunction | None = None,
                 detach_reset: bool = False, step_mode: str = "s", store_v_seq: bool = False,
                 auto_reset: bool = False):
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset, step_mode,
                         store_v_seq, auto_reset, tau=tau, decay_input=decay_input)

    tau = property(lambda self: self.params.tau, lambda self, value: self._replace(tau=value))
    decay_input = property(lambda self: self.params.decay_input,
                           lambda self, value: self._replace(decay_input=value))


class ParametricLIFNode(BaseNode):
    r"""LIF with a learnable time constant: :math:`1/\tau = \mathrm{sigmoid}(w)`.

    ``w`` (a scalar ``nn.Parameter``) starts at :math:`-\ln(\tau_0 - 1)` so that
    :math:`\tau = \tau_0` = ``init_tau`` (> 1; ints accepted). The charge is the LIF one with
    :math:`k = \mathrm{sigmoid}(w)` in place of :math:`1/\tau`; the fused kernels return the exact
    gradient of ``w``. Other parameters as :class:`LIFNode`.
    """

    _params_class = dynamics.PLIFParameters

    def __init__(self, init_tau: float = 2.0, decay_input: bool = True, v_threshold: float = 1.0,
                 v_reset: float | None = 0.0, surrogate_function: SurrogateFunction | None = None,
                 detach_reset: bool = False, step_mode: str = "s", store_v_seq: bool = False,
                 auto_reset: bool = False):
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset, step_mode,
                         store_v_seq, auto_reset, decay_input=decay_input)
        if isinstance(init_tau, bool) or not isinstance(init_tau, numbers.Real) \
                or not math.isfinite(init_tau) or init_tau <= 1:
            raise ValueError(f"init_tau must be a finite number > 1 (time steps), got {init_tau!r}")
        self.w = nn.Parameter(torch.tensor(-math.log(float(init_tau) - 1.0), dtype=torch.float32))

    decay_input = property(lambda self: self.params.decay_input,
                           lambda self, value: self._replace(decay_input=value))

    @property
    def tau(self) -> float:
        """Current time constant :math:`1/\\mathrm{sigmoid}(w)`."""
        return 1.0 / torch.sigmoid(self.w.detach().float()).item()

    def _decay_tensor(self):
        return dynamics.plif_decay(self.w)

    def extra_repr(self) -> str:
        return f"tau={self.tau:.4g}, " + super().extra_repr()
