"""The flat, validated configuration every fused backend receives (built once per call)."""
from __future__ import annotations

from dataclasses import dataclass

from snncore.functional.dynamics import IFParameters, LIFParameters, PLIFParameters

IF, LIF, PLIF = 0, 1, 2
KIND_NAMES = {IF: "IF", LIF: "LIF", PLIF: "PLIF"}


@dataclass(frozen=True)
class KernelConfig:
    """Neuron kind and constants as the kernels see them (floats already rounded to float32).

    ``v_reset`` is 0.0 for a soft reset (``hard=False``): that is the V_reset used in the charge.
    ``k`` is the LIF decay 1/tau (1.0 for IF; for PLIF the decay comes as a tensor instead).
    """

    kind: int
    decay_input: bool
    k: float
    v_threshold: float
    hard: bool
    v_reset: float
    detach_reset: bool

    @classmethod
    def from_params(cls, params: IFParameters) -> "KernelConfig":
        if isinstance(params, LIFParameters):
            kind, decay_input, k = LIF, params.decay_input, params.decay
        elif isinstance(params, PLIFParameters):
            kind, decay_input, k = PLIF, params.decay_input, 1.0
        elif isinstance(params, IFParameters):
            kind, decay_input, k = IF, False, 1.0
        else:
            raise TypeError(f"params must be IFParameters, LIFParameters or PLIFParameters, got "
                            f"{type(params).__name__}")
        hard = params.v_reset is not None
        return cls(kind, decay_input, k, params.v_threshold, hard,
                   params.v_reset if hard else 0.0, params.detach_reset)
