"""Which backend runs a multi-step neuron: ``"triton"``, ``"cpu"`` or ``"reference"``.

Automatic choice (``SNNCORE_BACKEND`` unset or ``auto``): CUDA tensors use the Triton kernels when
triton imports, CPU tensors use the CPU kernels (numba time loop). Everything else (other devices,
float64 input, a missing triton) uses the pure-torch reference loop. The environment variable
``SNNCORE_BACKEND`` = ``triton`` | ``cpu`` | ``reference`` forces a backend (``triton`` on CPU tensors
needs ``TRITON_INTERPRET=1``, set before triton is first imported); a forced backend that cannot
run the input raises. A custom surrogate (not one of the built-ins, see
``snncore.surrogate.kernel_spec``) cannot run inside the fused kernels: the reference path runs
instead, with a :class:`KernelFallbackWarning` (never silently).
"""
from __future__ import annotations

import functools
import os
import warnings

import torch

__all__ = ["backend_for", "BACKENDS", "ENV_VAR", "KernelFallbackWarning"]

BACKENDS = ("triton", "cpu", "reference")
ENV_VAR = "SNNCORE_BACKEND"
_FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


class KernelFallbackWarning(UserWarning):
    """A fused kernel was wanted but the pure-torch reference path runs instead."""


@functools.lru_cache(maxsize=1)
def triton_available() -> bool:
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # ImportError, or a broken install
        return False
    return True


def triton_interpreter() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _requested() -> str:
    value = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in ("auto",) + BACKENDS:
        raise ValueError(f"environment variable {ENV_VAR}={value!r}: expected one of auto, "
                         f"{', '.join(BACKENDS)}")
    return value


def _check_forced(name: str, x: torch.Tensor) -> None:
    if x.dtype not in _FUSED_DTYPES and name != "reference":
        raise RuntimeError(f"{ENV_VAR}={name}: the fused kernels take float32/float16/bfloat16 "
                           f"input, got {x.dtype}; unset {ENV_VAR} or use 'reference'")
    if name == "cpu" and x.device.type != "cpu":
        raise RuntimeError(f"{ENV_VAR}=cpu but the input is on {x.device}; unset {ENV_VAR} or move "
                           "the tensors to the CPU")
    if name == "triton":
        if not triton_available():
            raise RuntimeError(f"{ENV_VAR}=triton but triton is not installed; pip install triton "
                               "or unset the variable")
        if x.device.type == "cpu" and not triton_interpreter():
            raise RuntimeError(f"{ENV_VAR}=triton with a CPU tensor needs TRITON_INTERPRET=1 (set "
                               "before triton is imported), or a CUDA tensor")
        if x.device.type not in ("cpu", "cuda"):
            raise RuntimeError(f"{ENV_VAR}=triton cannot run tensors on {x.device}")


def backend_for(x: torch.Tensor, surrogate=None) -> str:
    """The backend a multi-step neuron uses for input ``x`` (and surrogate function).

    Parameters
    ----------
    x : Tensor
        The input sequence (its device and dtype decide).
    surrogate : SurrogateFunction, optional
        With a custom surrogate a fused choice becomes ``"reference"`` (and a multi-step
        neuron warns when it runs).

    Returns
    -------
    str
        ``"triton"``, ``"cpu"`` or ``"reference"``.
    """
    return resolve_backend(x, surrogate, warn=False)


def resolve_backend(x: torch.Tensor, surrogate=None, *, backend: str | None = None,
                    warn: bool = True) -> str:
    """As :func:`backend_for`, with an explicit ``backend`` taking precedence over the env var."""
    name = _requested() if backend is None else backend
    if name not in ("auto",) + BACKENDS:
        raise ValueError(f"backend must be one of auto, {', '.join(BACKENDS)}; got {name!r}")
    if name == "auto":
        if x.dtype not in _FUSED_DTYPES:
            name = "reference"
        elif x.device.type == "cuda" and triton_available():
            name = "triton"
        elif x.device.type == "cpu":
            name = "cpu"
        else:
            name = "reference"
    else:
        _check_forced(name, x)
    if name != "reference" and surrogate is not None:
        from snncore.surrogate import kernel_spec

        if kernel_spec(surrogate) is None:
            if warn:
                warnings.warn(
                    f"{type(surrogate).__name__} is not a built-in surrogate, so the fused {name} "
                    "kernel cannot run it; using the pure-torch reference path (slower, same "
                    "results). Use a built-in surrogate from snncore.surrogate for the fused kernel.",
                    KernelFallbackWarning, stacklevel=4)
            name = "reference"
    return name
