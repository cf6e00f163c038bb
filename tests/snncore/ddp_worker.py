"""Run by tests/snncore/test_ddp.py, under torchrun (2 CPU processes, gloo) or alone.

Trains a small multi-step SNN with snncore.train.Trainer on fixed synthetic data for a few steps
and saves this process's final weights to ``<out>/weights-rank<R>-of-<W>.pt`` and its last
validation firing rates to ``<out>/rates-rank<R>-of-<W>.json``.
"""
import json
import os
import sys

import torch
from torch import nn

from snncore import layer
from snncore.neuron import LIFNode
from snncore.train import Trainer, distributed_loader, init_distributed, wrap_ddp
from snncore.train.distributed import cleanup, rank, world_size


def main(out, per_process_batch):
    device = init_distributed()
    torch.manual_seed(0)
    model = nn.Sequential(layer.Linear(20, 32, step_mode="m"), LIFNode(tau=2, step_mode="m"),
                          layer.Linear(32, 4, step_mode="m"), LIFNode(tau=2, step_mode="m"))
    torch.save(model.state_dict(), os.path.join(out, "initial.pt"))
    g = torch.Generator().manual_seed(1)
    x = torch.rand(64, 6, 20, generator=g) * 2          # (N, T, features): batch-first like the collate
    y = torch.randint(0, 4, (64,), generator=g)
    data = torch.utils.data.TensorDataset(x, y)
    loader = distributed_loader(data, per_process_batch, shuffle=False)
    model = wrap_ddp(model, device)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    val = distributed_loader(data, per_process_batch, shuffle=False)
    history = Trainer(model, opt, device=device, log=None, progress=False).fit(loader, epochs=2, val_loader=val)
    state = (model.module if hasattr(model, "module") else model).state_dict()
    torch.save(state, os.path.join(out, f"weights-rank{rank()}-of-{world_size()}.pt"))
    with open(os.path.join(out, f"rates-rank{rank()}-of-{world_size()}.json"), "w") as f:
        json.dump(history[-1]["firing_rates"], f)
    cleanup()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
