"""Layers with a step mode, containers, sequence-wise dropout, threshold-dependent BatchNorm, voting.

Stateless layers (``Conv1d``, ``Conv2d``, ``Linear``, ``BatchNorm1d``/``2d``, ``MaxPool2d``,
``AvgPool2d``, ``AdaptiveAvgPool2d``, ``Flatten``) take the same arguments as their ``torch.nn``
namesakes plus ``step_mode``: in ``'s'`` mode they are exactly the torch layer on one step
``(N, *)``; in ``'m'`` mode they take ``(T, N, *)``, fold time into the batch (``(T*N, *)``), apply
the torch layer once and unfold. For every layer except BatchNorm in training mode the result equals
the per-step loop; training-mode BatchNorm in ``'m'`` mode normalises over time and batch jointly.
"""
from __future__ import annotations

from numbers import Integral, Real

import torch
import torch.nn.functional as F
from torch import nn

from .base import MemoryModule, StepModule, check_step_mode
from .encoding import RandomSource
from .functional.net import multi_step_forward, seq_to_ann_forward

__all__ = [
    "Conv1d", "Conv2d", "Linear", "BatchNorm1d", "BatchNorm2d", "MaxPool2d", "AvgPool2d",
    "AdaptiveAvgPool2d", "Flatten", "SeqToANNContainer", "MultiStepContainer", "Dropout", "Dropout2d",
    "ThresholdDependentBatchNorm1d", "ThresholdDependentBatchNorm2d", "VotingLayer",
]


def _check_m_input(x, layer) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim < 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{type(layer).__name__} in step_mode='m' takes a sequence of shape (T, N, ...), "
                         f"got {shape}; use step_mode='s' for a single step")


class _FoldTime:
    """Mixin over a torch layer: ``'s'`` = the torch layer, ``'m'`` = the torch layer on (T*N, *)."""

    def __init__(self, *args, step_mode: str = "s", **kwargs):
        super().__init__(*args, **kwargs)
        self.step_mode = step_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.step_mode == "s":
            return super().forward(x)
        _check_m_input(x, self)
        return seq_to_ann_forward(x, super().forward)

    def extra_repr(self) -> str:
        base = super().extra_repr()
        return f"{base}, step_mode={self.step_mode!r}" if base else f"step_mode={self.step_mode!r}"


class Conv1d(_FoldTime, nn.Conv1d, StepModule):
    """``torch.nn.Conv1d`` with ``step_mode``: (N, C, L) per step, (T, N, C, L) in ``'m'``."""


class Conv2d(_FoldTime, nn.Conv2d, StepModule):
    """``torch.nn.Conv2d`` with ``step_mode``: (N, C, H, W) per step, (T, N, C, H, W) in ``'m'``."""


class Linear(_FoldTime, nn.Linear, StepModule):
    """``torch.nn.Linear`` with ``step_mode``: (N, F) per step, (T, N, F) in ``'m'``."""


class BatchNorm1d(_FoldTime, nn.BatchNorm1d, StepModule):
    """``torch.nn.BatchNorm1d`` with ``step_mode``; ``'m'`` training statistics span time and batch."""


class BatchNorm2d(_FoldTime, nn.BatchNorm2d, StepModule):
    """``torch.nn.BatchNorm2d`` with ``step_mode``; ``'m'`` training statistics span time and batch."""


class MaxPool2d(_FoldTime, nn.MaxPool2d, StepModule):
    """``torch.nn.MaxPool2d`` with ``step_mode`` (``return_indices=True``: both outputs ``(T, N, ...)``
    in ``'m'``)."""

    def forward(self, x: torch.Tensor):
        if self.step_mode == "m" and self.return_indices:
            _check_m_input(x, self)
            out, indices = nn.MaxPool2d.forward(self, x.flatten(0, 1))
            return out.unflatten(0, x.shape[:2]), indices.unflatten(0, x.shape[:2])
        return super().forward(x)


class AvgPool2d(_FoldTime, nn.AvgPool2d, StepModule):
    """``torch.nn.AvgPool2d`` with ``step_mode``."""


class AdaptiveAvgPool2d(_FoldTime, nn.AdaptiveAvgPool2d, StepModule):
    """``torch.nn.AdaptiveAvgPool2d`` with ``step_mode``."""


class Flatten(_FoldTime, nn.Flatten, StepModule):
    """``torch.nn.Flatten`` with ``step_mode``; ``start_dim`` counts from the step's batch axis."""


class SeqToANNContainer(nn.Sequential):
    """Stateless torch modules applied to a whole sequence ``(T, N, *)`` at once (time folded into
    the batch). Always multi-step; ``set_step_mode`` does not touch its children, which must be plain
    (single-step) modules."""

    _fixes_child_step_mode = True

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        return seq_to_ann_forward(x_seq, list(self))


class MultiStepContainer(nn.Sequential):
    """Single-step modules (stateful ones included) looped over a sequence ``(T, N, *)`` step by step.
    Always multi-step; ``set_step_mode`` does not touch its children."""

    _fixes_child_step_mode = True

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        return multi_step_forward(x_seq, list(self))


# ---------------------------------------------------------------------------------------------
# Dropout with one mask per sequence

class _SequenceDropout(MemoryModule):
    def __init__(self, p: float = 0.5, *, rng=None, step_mode: str = "s"):
        super().__init__(step_mode)
        if isinstance(p, bool) or not isinstance(p, Real) or not 0.0 <= p <= 1.0:
            raise ValueError(f"p (drop probability) must be a number in [0, 1], got {p!r}")
        self.p = float(p)
        self.random = RandomSource(rng)
        self.register_memory("mask", None)

    def _mask_shape(self, step_shape):  # pragma: no cover - overridden
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.step_mode == "m":
            _check_m_input(x, self)
        shape = self._mask_shape(tuple(x.shape[1:] if self.step_mode == "m" else x.shape))
        if self.mask is None:
            keep = self.random.rand(shape, x.device) >= self.p
            self.mask = keep.to(x.dtype) / (1.0 - self.p) if self.p < 1.0 else torch.zeros(shape, dtype=x.dtype,
                                                                                            device=x.device)
        elif tuple(self.mask.shape) != shape:
            raise RuntimeError(f"{type(self).__name__}: the mask of this sequence has shape {tuple(self.mask.shape)} "
                               f"but the input needs {shape}; call snncore.functional.reset_net(net) "
                               "before each new batch")
        return x * self.mask

    def extra_repr(self):
        return f"p={self.p}, step_mode={self.step_mode!r}"


class Dropout(_SequenceDropout):
    """Dropout whose mask is drawn once per sequence and reused at every time step.

    Each element of a step ``(N, *)`` is zeroed with probability ``p`` and the rest scaled by
    ``1 / (1 - p)``; the mask is a memory, so it stays the same until ``reset_net``. Identity in
    eval mode. ``rng``: None (torch's global generator), an int seed or a ``torch.Generator``.
    """

    def _mask_shape(self, step_shape):
        return step_shape


class Dropout2d(_SequenceDropout):
    """Channel dropout (whole feature maps of a step ``(N, C, *)``) with one mask per sequence."""

    def _mask_shape(self, step_shape):
        if len(step_shape) < 2:
            raise ValueError(f"Dropout2d needs steps of shape (N, C, ...), got {step_shape}")
        return step_shape[:2] + (1,) * (len(step_shape) - 2)


# ---------------------------------------------------------------------------------------------
# Threshold-dependent BatchNorm (Zheng et al. 2021)

class _ThresholdDependentBN:
    """Mixin over ``nn.BatchNorm{1,2}d``: statistics over (T, N, spatial) jointly, output scaled by
    ``alpha * v_threshold`` before the learnable affine map. Multi-step only."""

    def __init__(self, num_features: int, alpha: float = 1.0, v_threshold: float = 1.0, eps: float = 1e-5,
                 momentum: float | None = 0.1, affine: bool = True, track_running_stats: bool = True,
                 *, step_mode: str = "m"):
        for name, v in (("alpha", alpha), ("v_threshold", v_threshold)):
            if isinstance(v, bool) or not isinstance(v, Real) or not v > 0:
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=track_running_stats)
        self.alpha, self.v_threshold = float(alpha), float(v_threshold)
        self._built = True
        self.step_mode = step_mode

    @property
    def step_mode(self) -> str:
        return "m"

    @step_mode.setter
    def step_mode(self, value: str) -> None:
        if check_step_mode(value) != "m" and self.__dict__.get("_built"):
            raise ValueError(f"{type(self).__name__} only runs in step_mode='m': its statistics span the "
                             "time steps of a whole sequence")

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        _check_m_input(x_seq, self)
        return seq_to_ann_forward(x_seq, self._forward_folded)

    def _forward_folded(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        else:
            factor = 0.0 if self.momentum is None else self.momentum
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        scale = self.alpha * self.v_threshold
        weight = self.weight * scale if self.affine else None
        y = F.batch_norm(x, self.running_mean if track else None, self.running_var if track else None,
                         weight, self.bias, use_batch, factor, self.eps)
        return y if self.affine else y * scale

    def extra_repr(self):
        return f"{super().extra_repr()}, alpha={self.alpha}, v_threshold={self.v_threshold}, step_mode='m'"


class ThresholdDependentBatchNorm1d(_ThresholdDependentBN, nn.BatchNorm1d, StepModule):
    """tdBN for sequences ``(T, N, C)`` or ``(T, N, C, L)``:
    ``y = lambda * alpha * V_th * (x - mean) / sqrt(var + eps) + beta`` with mean and (biased) variance
    per channel over T, N (and L) jointly; ``lambda`` (``weight``, init 1) and ``beta`` (``bias``,
    init 0) are learnable. Running statistics as in ``torch.nn.BatchNorm1d``."""


class ThresholdDependentBatchNorm2d(_ThresholdDependentBN, nn.BatchNorm2d, StepModule):
    """tdBN for sequences ``(T, N, C, H, W)``: statistics per channel over T, N, H, W jointly; see
    :class:`ThresholdDependentBatchNorm1d`."""


# ---------------------------------------------------------------------------------------------

class VotingLayer(StepModule):
    """Average each group of ``voting_size`` consecutive features: (..., C * v) -> (..., C).

    Used to read class scores from populations of output neurons. Acts on the last axis only, so
    both step modes give the same result.
    """

    def __init__(self, voting_size: int = 10, *, step_mode: str = "s"):
        super().__init__(step_mode)
        if isinstance(voting_size, bool) or not isinstance(voting_size, Integral) or voting_size < 1:
            raise ValueError(f"voting_size must be a positive integer, got {voting_size!r}")
        self.voting_size = int(voting_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 1 or x.shape[-1] % self.voting_size:
            raise ValueError(f"VotingLayer: the last axis ({x.shape[-1] if x.ndim else 'none'}) must be a "
                             f"multiple of voting_size={self.voting_size}")
        return x.unflatten(-1, (x.shape[-1] // self.voting_size, self.voting_size)).mean(-1)

    def extra_repr(self):
        return f"voting_size={self.voting_size}, step_mode={self.step_mode!r}"
