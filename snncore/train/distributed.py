"""Multi-GPU / multi-node training through PyTorch's own engine: torchrun + DDP + DistributedSampler.

Launch with ``torchrun --nproc_per_node=N script.py``; ``init_distributed()`` reads the variables
torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), picks
NCCL on CUDA and gloo on CPU, and is a no-op in a plain single-process run.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = ["init_distributed", "is_distributed", "rank", "world_size", "is_main_process",
           "barrier", "wrap_ddp", "distributed_loader", "cleanup"]


def is_distributed() -> bool:
    """True inside an initialised process group (torchrun with more than one process)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank in the group (0 in a single-process run)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes in the group (1 in a single-process run)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on rank 0 (and in single-process runs): log and save checkpoints only there."""
    return rank() == 0


def init_distributed(backend: str | None = None) -> torch.device:
    """Join the process group torchrun describes (if any) and return this process's device."""
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1 and not is_distributed():
        cuda = torch.cuda.is_available()
        backend = backend or ("nccl" if cuda else "gloo")
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend=backend)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def barrier() -> None:
    """Wait for every rank (a no-op in a single-process run)."""
    if is_distributed():
        dist.barrier()


def wrap_ddp(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move ``model`` to ``device`` and wrap it in DDP when a process group is active."""
    model = model.to(device)
    if not is_distributed():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def distributed_loader(dataset, batch_size: int, *, shuffle: bool = True, seed: int = 0, **loader_kwargs):
    """A DataLoader whose sampler shards ``dataset`` across ranks (``DistributedSampler``; one
    shard in a single-process run).

    ``batch_size`` is per process. The order depends on ``seed`` and the epoch only: call
    ``loader.sampler.set_epoch(epoch)`` each epoch (the ``Trainer`` does) so shuffling differs
    between epochs, agrees across ranks and is the same again in a resumed run.
    """
    from torch.utils.data import DataLoader, DistributedSampler

    sampler = DistributedSampler(dataset, num_replicas=world_size(), rank=rank(), shuffle=shuffle, seed=seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, **loader_kwargs)


def cleanup() -> None:
    """Leave the process group (after a barrier, so no rank tears down while others communicate)."""
    if is_distributed():
        dist.barrier()
        dist.destroy_process_group()
