"""A Linear layer for sparse (spike) inputs: index-based accumulation of the weight rows that fire.

For a spike input ``x`` (mostly zeros) ``y = x W^T + b`` only needs the columns of ``W`` whose input
is non-zero: ``y[r] = b + sum_{c : x[r, c] != 0} x[r, c] * W[:, c]``. :func:`sparse_linear` gathers
those columns with ``torch.nn.functional.embedding_bag`` (a fused gather-and-sum, no ``nnz x out``
intermediate) from a weight stored input-major, so each gathered column is contiguous. The weight
gradient is the same accumulation over the batch: ``dW[:, c] = sum_{r : x[r, c] != 0} x[r, c] * g[r]``.
The input gradient ``g W`` is dense (every input, zero or not, gets one), computed only when needed.
"""
from __future__ import annotations

from numbers import Real

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .base import StepModule

__all__ = ["sparse_linear", "SpikeLinear"]

_SPARSE_DTYPES = (torch.float32, torch.float64)


def _bag_offsets(sorted_keys: torch.Tensor, n_bags: int) -> torch.Tensor:
    return torch.searchsorted(sorted_keys, torch.arange(n_bags, device=sorted_keys.device))


class _SparseLinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x2, weight_t, bias):
        M, out_features = x2.shape[0], weight_t.shape[1]
        rows, cols = x2.nonzero(as_tuple=True)
        vals = x2[rows, cols]
        if rows.numel() == 0:
            y = x2.new_zeros(M, out_features)
        else:
            y = F.embedding_bag(cols, weight_t, _bag_offsets(rows, M), mode="sum", per_sample_weights=vals)
        if bias is not None:
            y = y + bias
        ctx.save_for_backward(rows, cols, vals, weight_t)
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    @once_differentiable  # the saved values have no graph to x: a second derivative would be wrong
    def backward(ctx, g):
        rows, cols, vals, weight_t = ctx.saved_tensors
        g = g.contiguous()
        grad_x = grad_wt = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = g @ weight_t.t()
        if ctx.needs_input_grad[1]:
            if cols.numel() == 0:
                grad_wt = torch.zeros_like(weight_t)
            else:
                order = torch.argsort(cols, stable=True)
                grad_wt = F.embedding_bag(rows[order], g, _bag_offsets(cols[order], weight_t.shape[0]),
                                          mode="sum", per_sample_weights=vals[order])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = g.sum(0)
        return grad_x, grad_wt, grad_b


def sparse_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
                  max_density: float = 0.05) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` computed by index-based accumulation when ``x`` is sparse.

    Parameters
    ----------
    x : Tensor, shape (*, in_features)
        Input, typically spikes in {0, 1} (any values are allowed; zeros are skipped).
    weight : Tensor, shape (out_features, in_features)
        Fastest when stored input-major (``weight.t()`` contiguous), as :class:`SpikeLinear` keeps it;
        otherwise a contiguous copy is made per call.
    bias : Tensor, shape (out_features,), optional
    max_density : float in [0, 1]
        The sparse path runs when the fraction of non-zero entries of ``x`` is at most this (and the
        dtype is float32/float64); otherwise the dense ``F.linear`` runs. 0 forces dense for any input
        with a non-zero entry, 1 forces the sparse path.

    Returns
    -------
    Tensor, shape (*, out_features): equal to the dense result up to float summation order, forward
    and backward (gradients for x, weight and bias). Under ``torch.autocast`` it comes in the
    autocast dtype, as ``F.linear``'s does (the sparse sums are float32, then rounded).
    """
    if isinstance(max_density, bool) or not isinstance(max_density, Real) or not 0.0 <= max_density <= 1.0:
        raise ValueError(f"max_density must be a number in [0, 1], got {max_density!r}")
    if x.ndim < 1 or weight.ndim != 2 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"sparse_linear: x of shape {tuple(x.shape)} does not match weight of shape "
                         f"{tuple(weight.shape)} (need x[..., in_features], weight[out_features, in_features])")
    if x.dtype not in _SPARSE_DTYPES or x.dtype != weight.dtype or x.numel() == 0:
        return F.linear(x, weight, bias)
    nnz = int(torch.count_nonzero(x))
    if nnz > max_density * x.numel():
        return F.linear(x, weight, bias)
    lead = x.shape[:-1]
    y = _SparseLinearFn.apply(x.reshape(-1, x.shape[-1]), weight.t().contiguous(), bias)
    if torch.is_autocast_enabled(x.device.type):  # the dtype F.linear gives under autocast
        y = y.to(torch.get_autocast_dtype(x.device.type))
    return y.reshape(*lead, weight.shape[0])


class SpikeLinear(nn.Linear, StepModule):
    """``nn.Linear`` for spike inputs: uses :func:`sparse_linear` (dense fallback above ``max_density``).

    Same parameters, initialisation and ``state_dict`` as ``torch.nn.Linear``; ``weight`` has shape
    (out_features, in_features) but is stored input-major so that the columns gathered per input
    spike are contiguous. Acts on the last axis, so ``step_mode`` 's' and 'm' compute the same.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, max_density: float = 0.05,
                 step_mode: str = "s", device=None, dtype=None):
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.step_mode = step_mode
        if isinstance(max_density, bool) or not isinstance(max_density, Real) or not 0.0 <= max_density <= 1.0:
            raise ValueError(f"max_density must be a number in [0, 1], got {max_density!r}")
        self.max_density = float(max_density)
        self.weight = nn.Parameter(self.weight.detach().t().contiguous().t())

    @classmethod
    def from_linear(cls, linear: nn.Linear, *, max_density: float = 0.05) -> "SpikeLinear":
        """A SpikeLinear with a copy of ``linear``'s weight and bias."""
        m = cls(linear.in_features, linear.out_features, linear.bias is not None, max_density=max_density,
                device=linear.weight.device, dtype=linear.weight.dtype)
        with torch.no_grad():
            m.weight.copy_(linear.weight)
            if linear.bias is not None:
                m.bias.copy_(linear.bias)
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sparse_linear(x, self.weight, self.bias, max_density=self.max_density)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, max_density={self.max_density}, step_mode={self.step_mode!r}"
