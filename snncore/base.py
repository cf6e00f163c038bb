"""Base classes: modules with a step mode, and modules with state that ``reset_net`` clears.

``step_mode='s'`` (single step): ``forward`` takes one time step ``x[t]`` of shape ``(N, *)``.
``step_mode='m'`` (multi step): ``forward`` takes a whole sequence of shape ``(T, N, *)``.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["StepModule", "MemoryModule", "check_step_mode"]


def check_step_mode(step_mode) -> str:
    """``step_mode`` itself when it is ``'s'`` (one step ``(N, *)`` per call) or ``'m'`` (a whole
    sequence ``(T, N, *)``), else ``ValueError``."""
    if step_mode not in ("s", "m"):
        raise ValueError(f"step_mode must be 's' (single step) or 'm' (multi step), got {step_mode!r}")
    return step_mode


class StepModule(nn.Module):
    """A module whose ``forward`` works on one step (``'s'``) or a whole sequence (``'m'``)."""

    def __init__(self, step_mode: str = "s"):
        super().__init__()
        self.step_mode = step_mode

    @property
    def step_mode(self) -> str:
        return self._step_mode

    @step_mode.setter
    def step_mode(self, value: str) -> None:
        self._step_mode = check_step_mode(value)

    def extra_repr(self) -> str:
        return f"step_mode={self.step_mode!r}"


class MemoryModule(StepModule):
    """A step module with hidden state (``memories``) that persists between calls.

    State is registered with ``register_memory(name, initial)``; ``reset()`` restores every memory to
    a copy of its initial value and ``detach()`` cuts the autograd graph of tensor memories.
    """

    def __init__(self, step_mode: str = "s"):
        super().__init__(step_mode)
        object.__setattr__(self, "_memories", {})
        object.__setattr__(self, "_memory_init", {})

    def register_memory(self, name: str, value) -> None:
        if hasattr(self, name) and name not in self._memories:
            raise AttributeError(f"{name!r} is already an attribute of {type(self).__name__}")
        self._memories[name] = value
        self._memory_init[name] = copy.deepcopy(value)

    def __getattr__(self, name):
        memories = self.__dict__.get("_memories")
        if memories is not None and name in memories:
            return memories[name]
        return super().__getattr__(name)

    def __setattr__(self, name, value):
        memories = self.__dict__.get("_memories")
        if memories is not None and name in memories:
            memories[name] = value
        else:
            super().__setattr__(name, value)

    def memories(self):
        """Iterate over ``(name, value)`` of the hidden state."""
        return iter(self._memories.items())

    def reset(self) -> None:
        """Restore every memory to its initial value."""
        for name, value in self._memory_init.items():
            self._memories[name] = copy.deepcopy(value)

    def detach(self) -> None:
        """Detach tensor memories from the autograd graph (truncated BPTT)."""
        for name, value in self._memories.items():
            if isinstance(value, torch.Tensor):
                self._memories[name] = value.detach()

    def __deepcopy__(self, memo):
        """Copy the module; tensor memories are detached first (a tensor that is part of an
        autograd graph cannot be deep-copied)."""
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            if k == "_memories":
                v = {name: m.detach() if isinstance(m, torch.Tensor) else m for name, m in v.items()}
            object.__setattr__(new, k, copy.deepcopy(v, memo))
        return new
