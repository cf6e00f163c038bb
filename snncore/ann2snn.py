"""ANN -> SNN conversion: a trained ReLU network becomes an IF-neuron network with the same weights.

Procedure (Diehl et al. 2015, Rueckauer et al. 2017):

1. **Fuse** every BatchNorm into the Conv/Linear layer right before it (:func:`fuse_conv_bn`).
2. **Measure** the activation scale ``lambda_l`` of every ReLU on calibration data
   (:func:`activation_scales`): the maximum (``normalization='max'``) or the ``percentile`` of the
   positive activations (``'robust'``, default 99.99), which ignores rare outliers.
3. **Rescale** weights so that every ReLU output is divided by its scale: a weight layer between the
   ReLUs ``l-1`` and ``l`` gets ``W <- W * lambda_{l-1} / lambda_l`` and ``b <- b / lambda_l``
   (``lambda`` of the input = 1; a final weight layer with no ReLU after it keeps the output units:
   ``W <- W * lambda_{l-1}``, ``b`` unchanged; of two weight layers in a row the first gets
   ``W * lambda_{l-1}`` and the second ``W / lambda_l``, ``b / lambda_l``).
4. **Replace** each ReLU by an IF neuron (``snncore.neuron.IFNode``, threshold 1, soft reset by
   subtraction, ``v_reset=None``) and each layer by its step-mode twin from :mod:`snncore.layer`.

Fed the same analog input at every step, IF neuron ``l`` fires at a rate ~ ``clip(a_l / lambda_l, 0, 1)``
of the ANN activation ``a_l``; the network output averaged over T steps (:func:`simulate`)
approaches the ANN's output as T grows.
"""
from __future__ import annotations

import copy
import math
from fractions import Fraction
from numbers import Real

import torch
from torch import nn

from . import layer
from .base import StepModule
from .functional.net import reset_net

__all__ = ["fuse_conv_bn", "activation_scales", "convert", "simulate"]

_WEIGHT = (nn.Conv1d, nn.Conv2d, nn.Linear)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)
_SKIP = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Identity)
_PASS = (nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten)


def _flatten(model: nn.Module) -> list[nn.Module]:
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"ann2snn takes an nn.Sequential (nested Sequentials allowed), got "
                        f"{type(model).__name__}; put the layers of your model in order in one nn.Sequential")
    out = []
    for m in model:
        if isinstance(m, nn.Sequential):
            out.extend(_flatten(m))
        elif isinstance(m, _SKIP):
            continue
        elif isinstance(m, _WEIGHT + _BN + _PASS + (nn.ReLU,)):
            out.append(m)
        elif isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.AdaptiveMaxPool2d)):
            raise ValueError(f"{type(m).__name__} cannot be converted to rate-coded spikes; train the ANN "
                             "with nn.AvgPool2d instead")
        else:
            raise ValueError(f"ann2snn cannot convert {type(m).__name__}; supported: Conv1d, Conv2d, Linear, "
                             "BatchNorm1d/2d (right after a Conv/Linear), ReLU, AvgPool2d, AdaptiveAvgPool2d, "
                             "Flatten, Dropout, Identity")
    return out


def fuse_conv_bn(model: nn.Sequential) -> nn.Sequential:
    """Fold each BatchNorm into the Conv/Linear layer just before it (eval-mode statistics).

    With ``s = gamma / sqrt(running_var + eps)`` per output channel: ``W' = W * s`` and
    ``b' = (b - running_mean) * s + beta`` (``b = 0`` without a bias). Returns a new flat
    ``nn.Sequential`` (copies; dropout and identity layers removed) whose eval-mode output equals the
    model's. A BatchNorm that does not directly follow a Conv/Linear layer raises ``ValueError``.
    """
    layers = [copy.deepcopy(m) for m in _flatten(model)]
    fused: list[nn.Module] = []
    for m in layers:
        if isinstance(m, _BN):
            prev = fused[-1] if fused else None
            if not isinstance(prev, _WEIGHT):
                raise ValueError(f"{type(m).__name__} must directly follow a Conv/Linear layer to be fused "
                                 f"(found it after {type(prev).__name__ if prev is not None else 'the input'})")
            fused[-1] = _fuse_pair(prev, m)
        else:
            fused.append(m)
    return nn.Sequential(*fused).eval()


def _fuse_pair(w: nn.Module, bn: nn.Module) -> nn.Module:
    if bn.running_mean is None:
        raise ValueError(f"{type(bn).__name__} has no running statistics (track_running_stats=False); "
                         "it cannot be fused")
    out_ch = w.weight.shape[0]
    if bn.num_features != out_ch:
        raise ValueError(f"{type(bn).__name__}({bn.num_features}) does not match the {out_ch} outputs of "
                         f"the {type(w).__name__} before it")
    with torch.no_grad():
        s = torch.rsqrt(bn.running_var + bn.eps)
        if bn.affine:
            s = s * bn.weight
        beta = bn.bias if bn.affine else torch.zeros_like(s)
        b = w.bias if w.bias is not None else torch.zeros_like(s)
        new_w = w.weight * s.view(-1, *([1] * (w.weight.ndim - 1)))
        new_b = (b - bn.running_mean) * s + beta
    if w.bias is None:
        w.bias = nn.Parameter(new_b.clone())
    with torch.no_grad():
        w.weight.copy_(new_w)
        w.bias.copy_(new_b)
    return w


def _batches(calibration, batch_size: int):
    if isinstance(calibration, torch.Tensor):
        if calibration.ndim < 1 or calibration.shape[0] == 0:
            raise ValueError("calibration must hold at least one sample (a tensor of shape (N, ...))")
        yield from calibration.split(batch_size)
        return
    seen = False
    for item in calibration:
        x = item[0] if isinstance(item, (tuple, list)) else item
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"calibration batches must be tensors or (x, ...) tuples, got {type(x).__name__}")
        seen = True
        yield x
    if not seen:
        raise ValueError("calibration yielded no batches")


def _check_norm(normalization, percentile):
    if normalization == "max":
        if percentile is not None:
            raise ValueError("percentile only applies to normalization='robust'")
        return 100.0
    if normalization != "robust":
        raise ValueError(f"normalization must be 'max' or 'robust', got {normalization!r}")
    p = 99.99 if percentile is None else percentile
    if isinstance(p, bool) or not isinstance(p, Real) or not 0 < p <= 100:
        raise ValueError(f"percentile must be a number in (0, 100], got {percentile!r}")
    return float(p)


@torch.no_grad()
def activation_scales(model: nn.Sequential, calibration, *, normalization: str = "robust",
                      percentile: float | None = None, batch_size: int = 256) -> list[float]:
    """The scale ``lambda`` of every ReLU of ``model`` (in order) on calibration data.

    ``calibration``: a tensor ``(N, *)`` of inputs (split into ``batch_size`` batches) or an iterable
    of input tensors / ``(x, ...)`` tuples. ``'max'``: the largest activation. ``'robust'``: the
    ``percentile`` (default 99.99) of the positive activations, nearest-rank (the k-th smallest with
    ``k = ceil(p / 100 * n)``); all positive activations are kept in memory, so a few hundred samples
    are the right size. A ReLU that never fires gets ``lambda = 1``.
    """
    p = _check_norm(normalization, percentile)
    net = fuse_conv_bn(model)
    relus = [m for m in net if isinstance(m, nn.ReLU)]
    acts: list[list[torch.Tensor]] = [[] for _ in relus]
    handles = [r.register_forward_hook(lambda mod, inp, out, i=i: acts[i].append(out[out > 0].flatten()))
               for i, r in enumerate(relus)]
    try:
        for x in _batches(calibration, batch_size):
            net(x.to(_device_of(net)))
    finally:
        for h in handles:
            h.remove()
    scales = []
    for a in acts:
        v = torch.cat(a) if a else torch.empty(0)
        if v.numel() == 0:
            scales.append(1.0)
        elif p == 100.0:
            scales.append(float(v.max()))
        else:
            k = min(max(math.ceil(Fraction(str(p)) * v.numel() / 100), 1), v.numel())  # exact: 99.9 % of 1000 is 999
            scales.append(float(v.double().kthvalue(k).values))
    return scales


def _device_of(net: nn.Module) -> torch.device:
    p = next(net.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _twin(m: nn.Module, step_mode: str) -> nn.Module:
    """The step-mode layer of snncore.layer equal to ``m`` (with a copy of its parameters)."""
    if isinstance(m, (nn.Conv1d, nn.Conv2d)):
        cls = layer.Conv1d if isinstance(m, nn.Conv1d) else layer.Conv2d
        new = cls(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                  dilation=m.dilation, groups=m.groups, bias=True, padding_mode=m.padding_mode,
                  step_mode=step_mode)
    elif isinstance(m, nn.Linear):
        new = layer.Linear(m.in_features, m.out_features, bias=True, step_mode=step_mode)
    elif isinstance(m, nn.AvgPool2d):
        return layer.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad,
                               m.divisor_override, step_mode=step_mode)
    elif isinstance(m, nn.AdaptiveAvgPool2d):
        return layer.AdaptiveAvgPool2d(m.output_size, step_mode=step_mode)
    else:  # nn.Flatten
        return layer.Flatten(m.start_dim, m.end_dim, step_mode=step_mode)
    new = new.to(device=m.weight.device, dtype=m.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(m.weight)
        new.bias.copy_(m.bias if m.bias is not None else torch.zeros_like(new.bias))
    return new


def convert(model: nn.Sequential, calibration, *, normalization: str = "robust", percentile: float | None = None,
            step_mode: str = "s", batch_size: int = 256) -> nn.Sequential:
    """Convert a trained ReLU ``nn.Sequential`` into an IF-neuron SNN (see the module docstring).

    Parameters
    ----------
    model : nn.Sequential
        Conv1d/Conv2d/Linear, BatchNorm1d/2d right after a Conv/Linear, ReLU, AvgPool2d,
        AdaptiveAvgPool2d, Flatten, Dropout/Identity (dropped); nested Sequentials allowed.
        Not modified.
    calibration : Tensor (N, *) or iterable of batches
        Inputs used to measure the activation scales (training data, a few hundred samples).
    normalization : {'robust', 'max'}
    percentile : float in (0, 100], only with 'robust' (default 99.99)
    step_mode : {'s', 'm'}
        Step mode of the returned network.

    Returns
    -------
    nn.Sequential of snncore.layer layers and ``IFNode(v_threshold=1.0, v_reset=None)`` neurons, in
    eval mode, with the scales in ``snn.activation_scales`` (list of float, one per IF layer).
    Run it with :func:`simulate`.
    """
    from .neuron import IFNode

    fused = fuse_conv_bn(model)
    scales = activation_scales(fused, calibration, normalization=normalization, percentile=percentile,
                               batch_size=batch_size)
    modules, relu_i, prev_scale = list(fused), 0, 1.0
    out: list[nn.Module] = []
    for i, m in enumerate(modules):
        if isinstance(m, nn.ReLU):
            if not any(isinstance(p, _WEIGHT) for p in modules[:i]):
                raise ValueError("a ReLU before the first Conv/Linear layer cannot be converted")
            out.append(IFNode(v_threshold=1.0, v_reset=None, step_mode=step_mode))
            prev_scale = scales[relu_i]
            relu_i += 1
            continue
        new = _twin(m, step_mode)
        if isinstance(m, _WEIGHT):  # input in units of prev_scale, output in units of the next scale
            nxt = _next_relu_scale(modules, i, scales, relu_i) or 1.0
            with torch.no_grad():
                new.weight.mul_(prev_scale / nxt)
                new.bias.div_(nxt)
            prev_scale = nxt
        out.append(new)
    snn = nn.Sequential(*out).eval()
    snn.activation_scales = scales
    return snn


def _next_relu_scale(modules, i, scales, relu_i):
    for m in modules[i + 1:]:
        if isinstance(m, _WEIGHT):
            return None
        if isinstance(m, nn.ReLU):
            return scales[relu_i]
    return None


@torch.no_grad()
def simulate(snn: nn.Module, x: torch.Tensor, T: int) -> torch.Tensor:
    """Feed ``x`` (N, *) as a constant input current for ``T`` steps; return the mean output (N, *out).

    Resets the network first (``reset_net``). Runs one call on ``x`` repeated to (T, N, *) when every
    step module of ``snn`` is in ``'m'`` mode, else T single-step calls; mixed modes raise.
    """
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive integer, got {T!r}")
    modes = {m.step_mode for m in snn.modules() if isinstance(m, StepModule)}
    if len(modes) > 1:
        raise ValueError("simulate: the network mixes step modes 's' and 'm'; use "
                         "snncore.functional.set_step_mode(snn, 's' or 'm') first")
    reset_net(snn)
    if modes == {"m"}:
        out = snn(x.unsqueeze(0).expand(T, *x.shape)).mean(0)
    else:
        acc = None
        for _ in range(T):
            y = snn(x)
            acc = y.clone() if acc is None else acc.add_(y)
        out = acc / T
    reset_net(snn)
    return out
