"""snncore: stateful spiking neurons, surrogate gradients, encoders, layers and fused kernels."""
from __future__ import annotations

__version__ = "0.1.0"


def __getattr__(name):  # lazy submodules
    if name in ("neuron", "surrogate", "encoding", "functional", "layer", "monitor", "ann2snn",
                "kernels", "train", "sparse", "models", "base"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'snncore' has no attribute {name!r}")
