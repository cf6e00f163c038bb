"""Network-wide helpers: reset / detach hidden state, switch step modes, run modules over time.

Shapes: a *sequence* is a tensor ``x_seq`` of shape ``(T, N, *)`` (time first); one *step* is
``x_seq[t]`` of shape ``(N, *)``.
"""
from __future__ import annotations

from typing import Callable, Iterable, Union

import torch
from torch import nn

from ..base import MemoryModule, StepModule, check_step_mode

__all__ = ["reset_net", "set_step_mode", "detach_net", "multi_step_forward", "seq_to_ann_forward"]

Modules = Union[nn.Module, Callable, Iterable[Callable]]


def reset_net(net: nn.Module) -> None:
    """Restore the hidden state of every stateful module in ``net`` to its initial value.

    Calls ``reset()`` on every :class:`~snncore.base.MemoryModule` in ``net.modules()`` (``net``
    itself included): membrane potentials, dropout masks, encoder step counters. Call it between
    two independent input sequences (two batches), otherwise state flows from one into the other.
    """
    _check_module(net, "net")
    for m in net.modules():
        if isinstance(m, MemoryModule):
            m.reset()


def detach_net(net: nn.Module) -> None:
    """Cut the autograd graph of the hidden state of every stateful module (truncated BPTT).

    Calls ``detach()`` on every :class:`~snncore.base.MemoryModule` in ``net.modules()``; the
    values are kept, only the history behind them is dropped.
    """
    _check_module(net, "net")
    for m in net.modules():
        if isinstance(m, MemoryModule):
            m.detach()


def set_step_mode(net: nn.Module, step_mode: str) -> nn.Module:
    """Set ``step_mode`` (``'s'`` or ``'m'``) of every :class:`~snncore.base.StepModule` in ``net``.

    Modules inside a container that fixes the stepping of its children (``SeqToANNContainer``,
    ``MultiStepContainer``: any module with the class attribute ``_fixes_child_step_mode = True``)
    are left alone: such a container always takes a sequence and steps its children itself.
    A module that cannot run in the requested mode (e.g. tdBN, which needs the whole sequence)
    raises ``ValueError``. Returns ``net``.
    """
    _check_module(net, "net")
    check_step_mode(step_mode)

    def visit(m: nn.Module) -> None:
        if isinstance(m, StepModule):
            m.step_mode = step_mode
        if getattr(m, "_fixes_child_step_mode", False):
            return
        for child in m.children():
            visit(child)

    visit(net)
    return net


def multi_step_forward(x_seq: torch.Tensor, module_or_modules: Modules) -> torch.Tensor:
    """Run single-step module(s) over a sequence, one time step after the other.

    Parameters
    ----------
    x_seq : Tensor, shape (T, N, *)
        Input sequence, time first; ``T >= 1``.
    module_or_modules : callable or iterable of callables
        A single-step module (or any callable), or several applied in order at each step
        (a list, tuple or ``nn.Sequential``).

    Returns
    -------
    Tensor, shape (T, N, *out)
        ``stack([f(x_seq[0]), ..., f(x_seq[T-1])])``; stateful modules carry state from step
        ``t`` to ``t + 1``.
    """
    _check_seq(x_seq, 1)
    fns = _as_callables(module_or_modules)
    out = []
    for t in range(x_seq.shape[0]):
        y = x_seq[t]
        for f in fns:
            y = f(y)
        out.append(y)
    return torch.stack(out)


def seq_to_ann_forward(x_seq: torch.Tensor, modules: Modules) -> torch.Tensor:
    """Apply stateless module(s) to every time step at once by folding T into the batch.

    ``x_seq`` of shape ``(T, N, *)`` is reshaped to ``(T * N, *)``, passed through ``modules`` (one
    callable, or several in order) and reshaped back to ``(T, N, *out)``. Equal to calling the
    modules on each step for any module whose output for one sample does not depend on the other
    samples of the batch (convolutions, linear maps, pooling, BatchNorm in eval mode); BatchNorm in
    training mode then normalises over time and batch jointly.
    """
    _check_seq(x_seq, 2)
    T, N = x_seq.shape[:2]
    y = x_seq.flatten(0, 1)
    for f in _as_callables(modules):
        y = f(y)
    if y.ndim == 0 or y.shape[0] != T * N:
        raise ValueError(f"seq_to_ann_forward: the modules changed the folded batch axis from "
                         f"T*N = {T * N} to {tuple(y.shape)}; they must keep the first axis")
    return y.unflatten(0, (T, N))


def _check_module(net, name: str) -> None:
    if not isinstance(net, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(net).__name__}")


def _check_seq(x_seq, min_ndim: int) -> None:
    if not isinstance(x_seq, torch.Tensor):
        raise TypeError(f"x_seq must be a torch.Tensor of shape (T, N, ...), got {type(x_seq).__name__}")
    if x_seq.ndim < min_ndim:
        want = "(T, N, ...)" if min_ndim >= 2 else "(T, ...)"
        raise ValueError(f"x_seq must have shape {want} (time first), got shape {tuple(x_seq.shape)}")
    if x_seq.shape[0] == 0:
        raise ValueError("x_seq has T = 0 time steps; a sequence needs at least one step")


def _as_callables(modules) -> list:
    if isinstance(modules, (list, tuple, nn.ModuleList)):
        fns = list(modules)
        bad = [type(f).__name__ for f in fns if not callable(f)]
        if bad or not fns:
            raise TypeError("modules must be a callable or a non-empty list of callables, got "
                            f"{bad or 'an empty list'}")
        return fns
    if callable(modules):
        return [modules]
    raise TypeError(f"modules must be a module, a callable or a list/tuple of them, got {type(modules).__name__}")
