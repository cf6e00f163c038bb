#!/usr/bin/env python
"""Train a reference spiking network on a dataset.

    python scripts/train.py --dataset nmnist [--epochs 20] [--time-bins 10] ...
    torchrun --nproc_per_node=4 scripts/train.py --dataset dvsgesture --from ~/Downloads --ddp

Data: ``neurodata.load(NAME, frames=dict(frames_number=T, split_by="number"))`` (SpikingJelly's
integration, as in the PLIF paper), cached once across processes. Model:
``snncore.models.for_dataset`` (the PLIF paper's network; ``--channels`` scales its width; the
embedded saccade-digits use it too). Loss: rate cross-entropy (``--loss mse|tet`` for the others).
Prints one line of metrics per epoch (rank 0 under DDP) and writes a checkpoint each epoch when
``--checkpoint`` is given (``--resume`` continues from it).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

import neurodata  # noqa: E402
from neurodata.collate import pad_frames  # noqa: E402
from snncore.models import PLIF_CONFIGS, for_dataset  # noqa: E402
from snncore.train import Trainer, distributed_loader, init_distributed, is_main_process, wrap_ddp  # noqa: E402
from snncore.train import losses  # noqa: E402
from snncore.train.distributed import barrier, cleanup  # noqa: E402

DEFAULT_T = {"nmnist": 10, "dvsgesture": 16, "cifar10dvs": 10, "ncaltech101": 14, "saccade-digits": 10}
LOSSES = {"ce": losses.rate_cross_entropy, "mse": losses.rate_mse, "tet": losses.tet_loss}


def _positive(text: str) -> int:
    """An argparse type: an int >= 1 (0 used to mean "the default" or "everything")."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _count(text: str) -> int:
    """An argparse type: an int >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, choices=sorted(PLIF_CONFIGS))
    ap.add_argument("--root", default=None, help="cache root")
    ap.add_argument("--from", dest="source", default=None, help="folder with manually downloaded files")
    ap.add_argument("--mirror", default=None)
    ap.add_argument("--no-verify", action="store_true", help="skip checksums (e.g. miniature test archives)")
    ap.add_argument("--epochs", type=_positive, default=20)
    ap.add_argument("--batch-size", type=_positive, default=16, help="per process")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--time-bins", type=_positive, default=None, help="frames per sample (default per dataset)")
    ap.add_argument("--channels", type=_positive, default=128, help="conv width (128 in the paper)")
    ap.add_argument("--neuron", choices=("plif", "lif"), default="plif")
    ap.add_argument("--loss", choices=sorted(LOSSES), default="ce")
    ap.add_argument("--grad-clip", type=float, default=None)
    ap.add_argument("--amp", action="store_true", help="mixed precision on CUDA")
    ap.add_argument("--workers", type=_count, default=2)
    ap.add_argument("--limit", type=_positive, default=None, help="use only the first N samples of each split")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--ddp", action="store_true", help="run under torchrun with DistributedDataParallel")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    device = init_distributed() if args.ddp else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    T = DEFAULT_T[args.dataset] if args.time_bins is None else args.time_bins
    opts = dict(root=args.root, source=args.source, mirror=args.mirror, verify=not args.no_verify,
                frames=dict(frames_number=T, split_by="number"))
    data = {s: neurodata.load(args.dataset, split=s, **opts) for s in ("train", "test")}
    barrier()
    if args.limit is not None:
        data = {s: torch.utils.data.Subset(d, range(min(args.limit, len(d)))) for s, d in data.items()}
    sensor = neurodata.datasets.get(args.dataset).recipe.sensor_size
    model = wrap_ddp(for_dataset(args.dataset, sensor, channels=args.channels, neuron=args.neuron), device)
    kw = dict(num_workers=args.workers, collate_fn=pad_frames, pin_memory=device.type == "cuda")
    train = distributed_loader(data["train"], args.batch_size, shuffle=True, seed=args.seed, **kw)
    test = distributed_loader(data["test"], args.batch_size, shuffle=False, **kw)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    if is_main_process():
        print(f"{args.dataset}: {len(data['train'])} train / {len(data['test'])} test samples, T={T}, "
              f"{sum(p.numel() for p in model.parameters())} parameters, device {device}")
    trainer = Trainer(model, opt, LOSSES[args.loss], scheduler=sched, device=device, amp=args.amp,
                      grad_clip=args.grad_clip, checkpoint_path=args.checkpoint)
    history = trainer.fit(train, args.epochs, val_loader=test, resume=args.resume)
    if is_main_process():
        rates = ", ".join(f"{k}: {v:.3f}" for k, v in history[-1]["firing_rates"].items())
        print(f"final test accuracy {history[-1]['val_acc']:.4f}; firing rates {rates}")
    cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
