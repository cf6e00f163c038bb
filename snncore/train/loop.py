"""A small training loop for spiking networks; no framework lock-in.

``Trainer`` resets neuron state before every batch, runs multi-step networks on time-first input,
uses AMP on CUDA when asked, clips gradients, steps an LR scheduler per epoch, saves and resumes
checkpoints, measures accuracy, loss and the mean firing rate of every spiking layer, and stops
early when the validation accuracy stops improving.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time

import torch

from . import distributed
from .checkpoint import _unwrap, load_checkpoint, save_checkpoint
from .losses import rate_cross_entropy

__all__ = ["Trainer"]


def _spiking_layers(model):
    """Named modules that emit spikes: stateful modules with a firing threshold."""
    from ..base import MemoryModule

    return [(n, m) for n, m in model.named_modules() if isinstance(m, MemoryModule) and hasattr(m, "v_threshold")]


def _progress(best: float, stale: int, acc) -> tuple[float, int]:
    """Early stopping's ``(best validation accuracy, epochs since it improved)`` after an epoch
    whose validation accuracy is ``acc`` (None: not validated, nothing changes)."""
    if acc is None:
        return best, stale
    return (acc, 0) if acc > best else (best, stale + 1)


class Trainer:
    """Train a spiking network whose forward maps ``(T, B, ...)`` inputs to ``(T, B, C)`` outputs.

    Parameters
    ----------
    model : torch.nn.Module
        Multi-step network (``step_mode='m'`` layers) or any module with that signature.
    optimizer : torch.optim.Optimizer
    loss_fn : callable ``(out_seq (T, B, C), target (B,)) -> scalar``
        Default ``rate_cross_entropy``.
    scheduler : LR scheduler stepped once per epoch, optional.
    device : torch.device or str
    amp : bool
        Mixed precision (float16 autocast + GradScaler) on CUDA; ignored on CPU.
    grad_clip : float, optional
        Max gradient norm.
    batch_first : bool
        Inputs arrive as ``(B, T, ...)`` (the dataset collate's layout) and are transposed to
        ``(T, B, ...)``; set False when the loader already yields time-first tensors.
    checkpoint_path : str, optional
        Saved after every epoch (rank 0 only); ``fit(resume=True)`` continues from it.
    patience : int, optional
        Stop when the validation accuracy has not improved for this many epochs.
    log : callable(str), optional
        Per-epoch log lines (rank 0 only); default prints to stdout.
    progress : bool
        Per-batch progress on stderr (only when it is a terminal).
    """

    def __init__(self, model, optimizer, loss_fn=rate_cross_entropy, *, scheduler=None, device="cpu",
                 amp=False, grad_clip=None, batch_first=True, checkpoint_path=None, patience=None,
                 log=print, progress=True):
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.scheduler = scheduler
        self.device = torch.device(device)
        self.amp = bool(amp) and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if self.amp else None
        self.grad_clip = grad_clip
        self.batch_first = batch_first
        self.checkpoint_path = checkpoint_path
        self.patience = patience
        self.log = log
        self.progress = progress and sys.stderr.isatty()
        self.history: list[dict] = []
        self.start_epoch = 0

    # -- one batch -------------------------------------------------------------------------
    def _forward(self, x):
        from ..functional import reset_net

        reset_net(self.model)
        x = x.to(self.device, non_blocking=True).float()
        if self.batch_first:
            x = x.transpose(0, 1)
        ctx = torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext()
        with ctx:
            return self.model(x)

    def _step(self, x, y):
        out = self._forward(x)
        loss = self.loss_fn(out.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return out.detach(), loss.detach()

    @staticmethod
    def _unpack(batch):
        return batch[0], batch[1]

    def _show(self, what, i, n, t0):
        if self.progress and distributed.is_main_process():
            rate = (i + 1) / max(time.perf_counter() - t0, 1e-9)
            eta = (n - i - 1) / rate if n else 0
            print(f"\r{what} {i + 1}/{n} {rate:.1f} batch/s ETA {eta:.0f}s ", end="", file=sys.stderr)

    def _reduce(self, *values):
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if distributed.is_distributed():
            torch.distributed.all_reduce(t)
        return t.tolist()

    # -- epochs ----------------------------------------------------------------------------
    def train_epoch(self, loader) -> dict:
        """One pass over ``loader``; returns ``{"loss", "acc"}`` averaged over all samples (all ranks)."""
        self.model.train()
        total = correct = loss_sum = 0.0
        t0 = time.perf_counter()
        n = len(loader) if hasattr(loader, "__len__") else 0
        for i, batch in enumerate(loader):
            x, y = self._unpack(batch)
            y = y.to(self.device)
            out, loss = self._step(x, y)
            total += y.numel()
            loss_sum += float(loss) * y.numel()
            correct += float((out.mean(0).argmax(-1) == y).sum())
            self._show("train", i, n, t0)
        if self.progress:
            print(file=sys.stderr)
        total, correct, loss_sum = self._reduce(total, correct, loss_sum)
        return {"loss": loss_sum / max(total, 1), "acc": correct / max(total, 1)}

    @torch.no_grad()
    def evaluate(self, loader) -> dict:
        """Loss, accuracy and mean firing rate of every spiking layer over ``loader``."""
        self.model.eval()
        layers = _spiking_layers(_unwrap(self.model))  # names without DDP's "module." prefix
        sums = {name: [0.0, 0] for name, _ in layers}

        def hook(name):
            def fn(_m, _inp, out):
                sums[name][0] += float(out.float().mean()) * out.numel()
                sums[name][1] += out.numel()
            return fn

        handles = [m.register_forward_hook(hook(name)) for name, m in layers]
        total = correct = loss_sum = 0.0
        try:
            for batch in loader:
                x, y = self._unpack(batch)
                y = y.to(self.device)
                out = self._forward(x).float()
                loss_sum += float(self.loss_fn(out, y)) * y.numel()
                correct += float((out.mean(0).argmax(-1) == y).sum())
                total += y.numel()
        finally:
            for h in handles:
                h.remove()
        total, correct, loss_sum, *flat = self._reduce(total, correct, loss_sum,
                                                       *(v for pair in sums.values() for v in pair))
        rates = {name: s / c for name, s, c in zip(sums, flat[::2], flat[1::2]) if c}
        return {"loss": loss_sum / max(total, 1), "acc": correct / max(total, 1), "firing_rates": rates}

    def fit(self, train_loader, epochs: int, val_loader=None, resume: bool = False) -> list[dict]:
        """Train for ``epochs`` epochs (continuing a checkpoint when ``resume``); return the history.

        Each history entry: ``epoch``, ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``,
        ``firing_rates`` (per spiking layer, on the validation set), ``lr``, ``seconds``.
        """
        if resume and self.checkpoint_path and os.path.exists(self.checkpoint_path):
            state = load_checkpoint(self.checkpoint_path, model=self.model, optimizer=self.optimizer,
                                    scheduler=self.scheduler, scaler=self.scaler, map_location=self.device)
            self.start_epoch = state["epoch"] + 1
            self.history = list(state["history"])
        best, stale = -math.inf, 0  # early stopping's state, replayed from a resumed history
        for entry in self.history:
            best, stale = _progress(best, stale, entry.get("val_acc"))
        if self.patience is not None and stale >= self.patience:
            return self.history  # the checkpointed run had stopped early
        for epoch in range(self.start_epoch, epochs):
            sampler = getattr(train_loader, "sampler", None)
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
            t0 = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            tr = self.train_epoch(train_loader)
            ev = self.evaluate(val_loader) if val_loader is not None else {}
            if self.scheduler is not None:
                self.scheduler.step()
            entry = {"epoch": epoch, "train_loss": tr["loss"], "train_acc": tr["acc"],
                     "val_loss": ev.get("loss"), "val_acc": ev.get("acc"),
                     "firing_rates": ev.get("firing_rates", {}), "lr": lr,
                     "seconds": time.perf_counter() - t0}
            self.history.append(entry)
            if distributed.is_main_process():
                if self.log:
                    val = f" val loss {entry['val_loss']:.4f} acc {entry['val_acc']:.4f}" if ev else ""
                    self.log(f"epoch {epoch + 1}/{epochs}: train loss {tr['loss']:.4f} acc {tr['acc']:.4f}"
                             f"{val} ({entry['seconds']:.1f}s)")
                if self.checkpoint_path:
                    save_checkpoint(self.checkpoint_path, model=self.model, optimizer=self.optimizer,
                                    scheduler=self.scheduler, scaler=self.scaler, epoch=epoch,
                                    history=self.history)
            best, stale = _progress(best, stale, ev.get("acc"))
            if self.patience is not None and stale >= self.patience:
                if self.log and distributed.is_main_process():
                    self.log(f"early stop: no validation improvement for {self.patience} epochs")
                break
        return self.history
