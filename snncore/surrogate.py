r"""Surrogate gradients: the forward pass fires, the backward pass pretends it was smooth.

A spiking neuron fires with the Heaviside step :math:`\Theta(x)` of :math:`x = H - V_{th}`
(``x >= 0`` fires, so ``x == 0`` fires). Its derivative is zero almost everywhere, so training uses
the derivative :math:`g'(x)` of a smooth *primitive* :math:`g(x)` in its place. Every class below
implements

* ``forward(x)``: ``Heaviside(x)`` (``(x >= 0)`` in ``x.dtype``) with ``derivative`` as its gradient
  when ``spiking=True`` (the default), or the smooth ``primitive(x)`` itself when ``spiking=False``;
* ``primitive(x)``: the smooth function :math:`g` (torch ops, differentiable);
* ``derivative(x)``: :math:`g'(x)` (elementwise, same shape and dtype as ``x``).

Built-in surrogates (``x = H - V_th``; defaults in brackets):

==================  ======================================================  =================================
class               primitive :math:`g(x)`                                 derivative :math:`g'(x)`
==================  ======================================================  =================================
Sigmoid (α=4)       :math:`\sigma(\alpha x)`                               :math:`\alpha\sigma(\alpha x)(1-\sigma(\alpha x))`
ATan (α=2)          :math:`\tfrac12 + \tfrac1\pi\arctan(\tfrac\pi2\alpha x)`  :math:`\frac{\alpha/2}{1+(\frac\pi2\alpha x)^2}`
PiecewiseQuadratic  0 / :math:`-\tfrac12\alpha^2|x|x+\alpha x+\tfrac12` / 1    :math:`\max(0,\ \alpha-\alpha^2|x|)`
(α=1)               (for x < -1/α, |x| ≤ 1/α, x > 1/α)
PiecewiseExp (α=1)  :math:`\tfrac12e^{\alpha x}` (x<0), :math:`1-\tfrac12e^{-\alpha x}`  :math:`\tfrac\alpha2e^{-\alpha|x|}`
SoftSign (α=2)      :math:`\tfrac12(\frac{\alpha x}{1+\alpha|x|}+1)`         :math:`\frac{\alpha}{2(1+\alpha|x|)^2}`
SuperSpike (α=100)  :math:`\frac{x}{1+\alpha|x|}` (not normalised)          :math:`\frac{1}{(1+\alpha|x|)^2}`
Erf (α=2)           :math:`\tfrac12\operatorname{erfc}(-\alpha x)`          :math:`\frac{\alpha}{\sqrt\pi}e^{-\alpha^2x^2}`
FastSigmoid (α=4)   :math:`\tfrac12(1+\frac{\alpha x/2}{1+\alpha|x|/2})`      :math:`\frac{\alpha/4}{(1+\alpha|x|/2)^2}`
PiecewiseLeakyReLU  :math:`cx+cw` / :math:`\frac{x+w}{2w}` / :math:`cx-cw+1`   :math:`\frac1{2w}` if :math:`|x|\le w`
(w=1, c=0.01)       (for x < -w, |x| ≤ w, x > w)                            else :math:`c`
==================  ======================================================  =================================

FastSigmoid is the exp-free stand-in for ``Sigmoid(α)``: same peak :math:`\alpha/4` at 0, unit area,
rational tails (it equals ``SoftSign(α/2)``). SuperSpike follows Zenke & Ganguli (2018) and norse:
peak 1, area :math:`2/\alpha`.

Custom surrogates subclass :class:`SurrogateFunction` and define ``primitive`` and/or ``derivative``
(``derivative`` defaults to autograd of ``primitive``; it must be elementwise). They work everywhere;
the fused kernels (Triton and CPU) only know the built-ins, so a custom surrogate makes a multi-step
neuron use the pure-torch reference path, with a warning.
"""
from __future__ import annotations

import math
import numbers

import torch
from torch import nn

__all__ = [
    "SurrogateFunction", "heaviside", "Sigmoid", "ATan", "PiecewiseQuadratic", "PiecewiseExp",
    "SoftSign", "SuperSpike", "Erf", "FastSigmoid", "PiecewiseLeakyReLU", "BUILTINS", "kernel_spec",
]


def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number (int or float), got {type(value).__name__}")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


class _Heaviside(torch.autograd.Function):
    """Heaviside step ``x >= 0`` forward, ``grad * surrogate.derivative(x)`` backward."""

    @staticmethod
    def forward(ctx, x, surrogate):
        if x.requires_grad:
            ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * ctx.surrogate.derivative(x), None


def heaviside(x: torch.Tensor, surrogate: "SurrogateFunction") -> torch.Tensor:
    """``(x >= 0)`` as ``x.dtype`` whose gradient is ``surrogate.derivative(x)``."""
    return _Heaviside.apply(x, surrogate)


class SurrogateFunction(nn.Module):
    """Base class of surrogate spike functions.

    Subclasses define ``primitive(x)`` (the smooth stand-in :math:`g` for the Heaviside step) and/or
    ``derivative(x)`` (:math:`g'`, elementwise, same shape and dtype as ``x``). Defining only
    ``primitive`` is enough: ``derivative`` then defaults to autograd of ``primitive``. Defining only
    ``derivative`` is enough for training (``spiking=False`` then raises).

    Parameters
    ----------
    spiking : bool, default True
        ``True``: ``forward`` returns the Heaviside step with the surrogate gradient.
        ``False``: ``forward`` returns ``primitive(x)`` (differentiable), e.g. for ANN pre-training.

    Examples
    --------
    >>> import torch
    >>> class Triangle(SurrogateFunction):
    ...     def derivative(self, x):
    ...         return (1 - x.abs()).clamp(min=0)
    >>> x = torch.tensor([-0.5, 0.0, 2.0], requires_grad=True)
    >>> Triangle()(x).sum().backward()
    >>> x.grad
    tensor([0.5000, 1.0000, 0.0000])
    """

    #: index of the built-in in the fused kernels' switch; ``None`` for custom surrogates
    kernel_id: int | None = None

    def __init__(self, spiking: bool = True):
        super().__init__()
        if not isinstance(spiking, bool):
            raise TypeError(f"spiking must be True or False, got {spiking!r}")
        self.spiking = spiking

    def primitive(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(
            f"{type(self).__name__} defines no primitive(x); define primitive (smooth function) "
            "or derivative (its gradient) in the subclass")

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        if type(self).primitive is SurrogateFunction.primitive:
            raise NotImplementedError(
                f"{type(self).__name__} defines neither primitive(x) nor derivative(x); define one")
        with torch.enable_grad():
            xd = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.primitive(xd).sum(), xd)
        return g

    def kernel_params(self) -> tuple[float, float]:
        """The two float parameters the fused kernels receive (built-ins only)."""
        return (0.0, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spiking:
            return heaviside(x, self)
        return self.primitive(x)

    def extra_repr(self) -> str:
        return f"spiking={self.spiking}"


class _AlphaSurrogate(SurrogateFunction):
    """A built-in surrogate with one shape parameter ``alpha`` (> 0)."""

    default_alpha = 1.0

    def __init__(self, alpha: float | None = None, spiking: bool = True):
        super().__init__(spiking)
        self.alpha = _positive("alpha", self.default_alpha if alpha is None else alpha)

    def kernel_params(self) -> tuple[float, float]:
        return (self.alpha, 0.0)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, spiking={self.spiking}"


class Sigmoid(_AlphaSurrogate):
    r""":math:`g(x)=\sigma(\alpha x)`, :math:`g'(x)=\alpha\sigma(\alpha x)(1-\sigma(\alpha x))`; α=4."""

    kernel_id = 0
    default_alpha = 4.0

    def primitive(self, x):
        return torch.sigmoid(self.alpha * x)

    def derivative(self, x):
        # alpha * s * (1 - s) written as alpha * e / (1 + e)^2 with e = exp(-alpha |x|) <= 1: no
        # cancellation in 1 - s, no overflow
        e = torch.exp(-self.alpha * x.abs())
        d = 1.0 + e
        return e / (d * d) * self.alpha


class ATan(_AlphaSurrogate):
    r""":math:`g(x)=\frac12+\frac1\pi\arctan(\frac\pi2\alpha x)`, :math:`g'=\frac{\alpha/2}{1+(\frac\pi2\alpha x)^2}`; α=2."""

    kernel_id = 1
    default_alpha = 2.0

    def primitive(self, x):
        return torch.atan((math.pi / 2 * self.alpha) * x) / math.pi + 0.5

    def derivative(self, x):
        u = (math.pi / 2 * self.alpha) * x
        return (self.alpha / 2) / (1.0 + u * u)


class PiecewiseQuadratic(_AlphaSurrogate):
    r""":math:`g'(x)=\max(0,\alpha-\alpha^2|x|)` (zero for :math:`|x|>1/\alpha`); α=1."""

    kernel_id = 2
    default_alpha = 1.0

    def primitive(self, x):
        a = self.alpha
        inner = -0.5 * a * a * x.abs() * x + a * x + 0.5
        return torch.where(x > 1 / a, torch.ones_like(x), torch.where(x < -1 / a, torch.zeros_like(x), inner))

    def derivative(self, x):
        return (self.alpha - self.alpha * self.alpha * x.abs()).clamp(min=0)


class PiecewiseExp(_AlphaSurrogate):
    r""":math:`g(x)=\frac12e^{\alpha x}` (x<0) or :math:`1-\frac12e^{-\alpha x}`, :math:`g'=\frac\alpha2e^{-\alpha|x|}`; α=1."""

    kernel_id = 3
    default_alpha = 1.0

    def primitive(self, x):
        # one-sided clamps, not |x|: autograd then gives g'(0) = alpha / 2 (|x|' is 0 at 0), and the
        # branch not taken stays finite (no 0 * inf in its gradient)
        return torch.where(x < 0, 0.5 * torch.exp(self.alpha * x.clamp(max=0)),
                           1.0 - 0.5 * torch.exp(-self.alpha * x.clamp(min=0)))

    def derivative(self, x):
        return torch.exp(-self.alpha * x.abs()) * (self.alpha / 2)


class SoftSign(_AlphaSurrogate):
    r""":math:`g(x)=\frac12(\frac{\alpha x}{1+\alpha|x|}+1)`, :math:`g'=\frac{\alpha}{2(1+\alpha|x|)^2}`; α=2."""

    kernel_id = 4
    default_alpha = 2.0

    def primitive(self, x):
        ax = self.alpha * x
        return 0.5 * ax / (1.0 + ax.abs()) + 0.5

    def derivative(self, x):
        d = 1.0 + self.alpha * x.abs()
        return (self.alpha / 2) / (d * d)


class SuperSpike(_AlphaSurrogate):
    r""":math:`g(x)=\frac{x}{1+\alpha|x|}`, :math:`g'=\frac1{(1+\alpha|x|)^2}` (Zenke & Ganguli 2018); α=100."""

    kernel_id = 5
    default_alpha = 100.0

    def primitive(self, x):
        return x / (1.0 + self.alpha * x.abs())

    def derivative(self, x):
        d = 1.0 + self.alpha * x.abs()
        return 1.0 / (d * d)


class Erf(_AlphaSurrogate):
    r""":math:`g(x)=\frac12\operatorname{erfc}(-\alpha x)`, :math:`g'=\frac{\alpha}{\sqrt\pi}e^{-\alpha^2x^2}`; α=2."""

    kernel_id = 6
    default_alpha = 2.0

    def primitive(self, x):
        return torch.special.erfc(-self.alpha * x) * 0.5

    def derivative(self, x):
        ax = self.alpha * x
        return torch.exp(-ax * ax) * (self.alpha / math.sqrt(math.pi))


class FastSigmoid(_AlphaSurrogate):
    r"""Exp-free :math:`g(x)=\frac12(1+\frac{\alpha x/2}{1+\alpha|x|/2})`, :math:`g'=\frac{\alpha/4}{(1+\alpha|x|/2)^2}`; α=4."""

    kernel_id = 7
    default_alpha = 4.0

    def primitive(self, x):
        u = (self.alpha / 2) * x
        return 0.5 * u / (1.0 + u.abs()) + 0.5

    def derivative(self, x):
        d = 1.0 + (self.alpha / 2) * x.abs()
        return (self.alpha / 4) / (d * d)


class PiecewiseLeakyReLU(SurrogateFunction):
    r""":math:`g'(x)=\frac1{2w}` for :math:`|x|\le w`, else :math:`c`; w=1, c=0.01.

    Primitive: :math:`cx+cw` (x < -w), :math:`\frac{x+w}{2w}` (|x| ≤ w), :math:`cx-cw+1` (x > w).
    """

    kernel_id = 8

    def __init__(self, w: float = 1.0, c: float = 0.01, spiking: bool = True):
        super().__init__(spiking)
        self.w = _positive("w", w)
        if isinstance(c, bool) or not isinstance(c, numbers.Real) or not math.isfinite(c) or c < 0:
            raise ValueError(f"c must be a finite number >= 0, got {c!r}")
        self.c = float(c)

    def kernel_params(self) -> tuple[float, float]:
        return (self.w, self.c)

    def primitive(self, x):
        w, c = self.w, self.c
        return torch.where(x < -w, c * x + c * w,
                           torch.where(x > w, c * x - c * w + 1.0, (x + w) / (2 * w)))

    def derivative(self, x):
        inside = x.abs() <= self.w
        return torch.where(inside, torch.full_like(x, 1 / (2 * self.w)), torch.full_like(x, self.c))

    def extra_repr(self) -> str:
        return f"w={self.w}, c={self.c}, spiking={self.spiking}"


#: built-in surrogates in kernel-id order
BUILTINS = (Sigmoid, ATan, PiecewiseQuadratic, PiecewiseExp, SoftSign, SuperSpike, Erf, FastSigmoid,
            PiecewiseLeakyReLU)


def kernel_spec(surrogate: SurrogateFunction) -> tuple[int, float, float] | None:
    """``(kernel_id, p0, p1)`` for a built-in surrogate the fused kernels support, else ``None``.

    Exact type match only: a subclass of a built-in may change the formula, so it gets ``None``.
    """
    cls = type(surrogate)
    if cls in BUILTINS and surrogate.spiking:
        return (cls.kernel_id, *surrogate.kernel_params())
    return None
