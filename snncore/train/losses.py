"""Losses for spiking outputs of shape ``(T, B, C)`` (time first, as multi-step networks return).

- ``rate_cross_entropy``: cross-entropy of the firing rate ``mean_t out[t]`` used as logits.
- ``rate_mse``: mean squared error between the firing rate and the one-hot target.
- ``tet_loss``: Temporal Efficient Training (Deng et al. 2022):
  ``(1 - lamb) · mean_t CE(out[t], y) + lamb · MSE(out, phi)``, the MSE regularising every step's
  output toward ``phi``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["rate_cross_entropy", "rate_mse", "tet_loss", "firing_rate"]


def _check(out_seq: torch.Tensor) -> None:
    if out_seq.dim() != 3:
        raise ValueError(f"spiking outputs must have shape (T, B, C), got {tuple(out_seq.shape)}")


def firing_rate(out_seq: torch.Tensor) -> torch.Tensor:
    """Mean over time of a ``(T, B, C)`` output: ``(B, C)``."""
    _check(out_seq)
    return out_seq.mean(0)


def rate_cross_entropy(out_seq: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``CE(mean_t out[t], target)``; ``target`` holds class indices, shape ``(B,)``."""
    return F.cross_entropy(firing_rate(out_seq), target)


def rate_mse(out_seq: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``MSE(mean_t out[t], one_hot(target))`` (SpikingJelly's usual loss for spike counts)."""
    rate = firing_rate(out_seq)
    return F.mse_loss(rate, F.one_hot(target, rate.shape[-1]).to(rate.dtype))


def tet_loss(out_seq: torch.Tensor, target: torch.Tensor, lamb: float = 0.0, phi: float = 1.0) -> torch.Tensor:
    """TET: ``(1 - lamb) · mean_t CE(out[t], target) + lamb · mean((out - phi)^2)``."""
    _check(out_seq)
    T, B, C = out_seq.shape
    ce = F.cross_entropy(out_seq.reshape(T * B, C), target.repeat(T))
    if lamb == 0:
        return ce
    return (1 - lamb) * ce + lamb * F.mse_loss(out_seq, torch.full_like(out_seq, phi))
