"""Reference networks (multi-step: input ``(T, B, P, H, W)``, output ``(T, B, n_classes)``).

``plif_net`` builds the convolutional networks of Fang et al. 2021 ("Incorporating Learnable
Membrane Time Constant to Enhance Learning of Spiking Neural Networks", the PLIF paper):
``{Conv3×3(C) - BN - PLIF - MaxPool2}×k - Dropout - FC(h) - PLIF - Dropout - FC(n·10) - PLIF - Voting(10)``
with ``k``, ``h`` per dataset (``PLIF_CONFIGS``); ``width`` scales the channel count down for
CPU runs. ``small_conv_net`` is the two-block network the demo trains.
"""
from __future__ import annotations

from torch import nn

from . import layer, surrogate
from .neuron import LIFNode, ParametricLIFNode

__all__ = ["plif_net", "small_conv_net", "PLIF_CONFIGS", "for_dataset"]

# dataset -> (conv blocks, FC hidden units, classes, input pooling)
PLIF_CONFIGS = {
    "nmnist": dict(blocks=2, hidden=2048, n_classes=10, pool_input=1),
    "dvsgesture": dict(blocks=5, hidden=512, n_classes=11, pool_input=1),
    "cifar10dvs": dict(blocks=4, hidden=512, n_classes=10, pool_input=1),
    "ncaltech101": dict(blocks=5, hidden=512, n_classes=100, pool_input=2),
    "saccade-digits": dict(blocks=2, hidden=256, n_classes=10, pool_input=1),
}


def _neuron(kind: str):
    sg = surrogate.ATan()
    if kind == "plif":
        return ParametricLIFNode(init_tau=2.0, detach_reset=True, surrogate_function=sg, step_mode="m")
    if kind == "lif":
        return LIFNode(tau=2.0, detach_reset=True, surrogate_function=sg, step_mode="m")
    raise ValueError(f"neuron must be 'plif' or 'lif', got {kind!r}")


def plif_net(in_channels: int, height: int, width_px: int, *, blocks: int, hidden: int, n_classes: int,
             channels: int = 128, voting: int = 10, dropout: float = 0.5, pool_input: int = 1,
             neuron: str = "plif") -> nn.Sequential:
    """The PLIF paper's network for an input of ``in_channels × height × width_px`` pixels:
    multi-step, input ``(T, B, in_channels, height, width_px)``, output ``(T, B, n_classes)``."""
    mods = []
    if pool_input > 1:
        mods.append(layer.AvgPool2d(pool_input, pool_input, step_mode="m"))
        height, width_px = height // pool_input, width_px // pool_input
    c = in_channels
    for _ in range(blocks):
        mods += [layer.Conv2d(c, channels, 3, padding=1, bias=False, step_mode="m"),
                 layer.BatchNorm2d(channels, step_mode="m"), _neuron(neuron),
                 layer.MaxPool2d(2, 2, step_mode="m")]
        c = channels
        height, width_px = height // 2, width_px // 2
    if height < 1 or width_px < 1:
        raise ValueError("input too small for this many pooling blocks")
    mods += [layer.Flatten(step_mode="m"), layer.Dropout(dropout, step_mode="m"),
             layer.Linear(c * height * width_px, hidden, step_mode="m"), _neuron(neuron),
             layer.Dropout(dropout, step_mode="m"),
             layer.Linear(hidden, n_classes * voting, step_mode="m"), _neuron(neuron),
             layer.VotingLayer(voting, step_mode="m")]
    return nn.Sequential(*mods)


def small_conv_net(in_channels: int = 2, size: int = 34, n_classes: int = 10, channels: int = 16) -> nn.Sequential:
    """``Conv(C)-BN-LIF-MaxPool2 → Conv(2C)-BN-LIF-MaxPool2 → FC(n·10)-LIF → Voting(10)`` (multi-step):
    input ``(T, B, in_channels, size, size)``, output ``(T, B, n_classes)``."""
    s = size // 4
    return nn.Sequential(
        layer.Conv2d(in_channels, channels, 3, padding=1, bias=False, step_mode="m"),
        layer.BatchNorm2d(channels, step_mode="m"), _neuron("lif"), layer.MaxPool2d(2, 2, step_mode="m"),
        layer.Conv2d(channels, 2 * channels, 3, padding=1, bias=False, step_mode="m"),
        layer.BatchNorm2d(2 * channels, step_mode="m"), _neuron("lif"), layer.MaxPool2d(2, 2, step_mode="m"),
        layer.Flatten(step_mode="m"),
        layer.Linear(2 * channels * s * s, n_classes * 10, step_mode="m"), _neuron("lif"),
        layer.VotingLayer(10, step_mode="m"),
    )


def for_dataset(name: str, sensor_size, *, channels: int = 128, neuron: str = "plif") -> nn.Sequential:
    """The reference network for registry dataset ``name`` and its ``sensor_size`` (W, H, P):
    ``plif_net`` with the dataset's configuration, input ``(T, B, P, H, W)``, output ``(T, B, classes)``."""
    if name not in PLIF_CONFIGS:
        raise ValueError(f"no reference model for {name!r}; known: {', '.join(PLIF_CONFIGS)}")
    W, H, P = sensor_size
    return plif_net(P, H, W, channels=channels, neuron=neuron, **PLIF_CONFIGS[name])
