"""Checkpoints: model, optimiser, LR scheduler, AMP scaler, epoch, history and every RNG state.

Written to a temporary file and renamed, so an interrupted save never leaves a broken checkpoint.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["save_checkpoint", "load_checkpoint"]


def _unwrap(model):
    """The wrapped model of a ``DistributedDataParallel`` / ``DataParallel``, else ``model`` (a
    model's own submodule called ``module`` is part of it)."""
    wrappers = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    return model.module if isinstance(model, wrappers) else model


def save_checkpoint(path, *, model, optimizer=None, scheduler=None, scaler=None, epoch=0, history=None, extra=None):
    """Save a resumable checkpoint to ``path`` (atomic rename)."""
    state = {
        "model": _unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": int(epoch),
        "history": history or [],
        "extra": extra,
        "rng": {  # numpy arrays: torch.load's map_location moves tensors, and RNG states must stay on the CPU
            "torch": torch.get_rng_state().numpy(),
            "cuda": [s.numpy() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else None,
            "numpy": np.random.get_state(),
            "python": random.getstate(),
        },
    }
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, *, model, optimizer=None, scheduler=None, scaler=None, map_location="cpu", restore_rng=True):
    """Load a checkpoint saved by ``save_checkpoint`` into the given objects; return the state dict.

    The returned dict holds ``epoch`` (the last finished epoch), ``history`` and ``extra``.
    """
    state = torch.load(path, map_location=map_location, weights_only=False)
    _unwrap(model).load_state_dict(state["model"])
    for obj, key in ((optimizer, "optimizer"), (scheduler, "scheduler"), (scaler, "scaler")):
        if obj is not None and state.get(key) is not None:
            obj.load_state_dict(state[key])
    if restore_rng:
        rng = state["rng"]
        torch.set_rng_state(torch.as_tensor(rng["torch"], device="cpu"))
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([torch.as_tensor(s, device="cpu") for s in rng["cuda"]])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
    return state
