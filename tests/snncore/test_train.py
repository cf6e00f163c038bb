"""Trainer, checkpoints and the single-process side of distributed_loader (DDP: test_ddp.py)."""
import pytest
import torch
from torch import nn

from snncore import layer
from snncore.neuron import LIFNode
from snncore.train import Trainer, distributed_loader, load_checkpoint, save_checkpoint


def _data(n=48, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 4, 10, generator=g) * 2  # (N, T, features), batch first like the collate
    return torch.utils.data.TensorDataset(x, torch.randint(0, 3, (n,), generator=g))


def _model():
    torch.manual_seed(0)
    return nn.Sequential(layer.Linear(10, 16, step_mode="m"), LIFNode(tau=2, step_mode="m"),
                         layer.Linear(16, 3, step_mode="m"), LIFNode(tau=2, step_mode="m"))


def _fit(model, epochs, ckpt, resume=False, lr=0.5, patience=None, val=None):
    loader = distributed_loader(_data(), 8, shuffle=True, seed=3)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=lr), checkpoint_path=ckpt, log=None,
                      progress=False, patience=patience)
    return trainer.fit(loader, epochs, val_loader=val, resume=resume)


def test_resume_with_distributed_loader_is_exact(tmp_path):
    """The shuffled order depends on the seed and the epoch only, so 2 epochs + resume for 2 more
    train exactly like 4 epochs in one go (the loader's own generator restarted before the fix)."""
    straight = _model()
    _fit(straight, 4, tmp_path / "a.pt")
    resumed = _model()
    _fit(resumed, 2, tmp_path / "b.pt")
    again = _model()  # a fresh process: new objects, state from the checkpoint
    history = _fit(again, 4, tmp_path / "b.pt", resume=True)
    assert [e["epoch"] for e in history] == [0, 1, 2, 3]
    for (k, a), b in zip(straight.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k


def test_early_stopping_state_survives_resume(tmp_path):
    """With lr = 0 validation never improves: patience 2 stops after epoch 2, also when the run was
    interrupted after epoch 1 and resumed (the stale count restarted at 0 before the fix)."""
    val = torch.utils.data.DataLoader(_data(16, seed=5), batch_size=8)
    whole = _fit(_model(), 10, tmp_path / "a.pt", lr=0.0, patience=2, val=val)
    assert [e["epoch"] for e in whole] == [0, 1, 2]
    _fit(_model(), 2, tmp_path / "b.pt", lr=0.0, patience=2, val=val)
    resumed = _fit(_model(), 10, tmp_path / "b.pt", resume=True, lr=0.0, patience=2, val=val)
    assert [e["epoch"] for e in resumed] == [0, 1, 2]
    stopped = _fit(_model(), 10, tmp_path / "b.pt", resume=True, lr=0.0, patience=2, val=val)
    assert [e["epoch"] for e in stopped] == [0, 1, 2]  # the checkpointed run had stopped: nothing more


class _HasModule(nn.Module):
    def __init__(self):
        super().__init__()
        self.module = nn.Linear(3, 3)
        self.head = nn.Linear(3, 2)


def test_checkpoint_keeps_a_submodule_called_module(tmp_path):
    """Only DDP / DataParallel wrappers are unwrapped: a model's own ``module`` attribute is not one
    (its ``head`` was dropped from the checkpoint and left untouched on load before the fix)."""
    torch.manual_seed(0)
    saved = _HasModule()
    save_checkpoint(tmp_path / "c.pt", model=saved)
    assert set(torch.load(tmp_path / "c.pt", weights_only=False)["model"]) == set(saved.state_dict())
    loaded = _HasModule()
    load_checkpoint(tmp_path / "c.pt", model=loaded)
    for (k, a), b in zip(saved.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    wrapped = nn.DataParallel(_HasModule())  # a wrapper is unwrapped: its keys have no "module." prefix
    save_checkpoint(tmp_path / "w.pt", model=wrapped)
    assert set(torch.load(tmp_path / "w.pt", weights_only=False)["model"]) == set(saved.state_dict())


def test_rng_state_restored_whatever_map_location(tmp_path):
    """``map_location`` moves every tensor, the CPU RNG state too; it is set back as a CPU tensor
    (``map_location='cuda'`` made resuming on a GPU fail; 'meta' shows it without one)."""
    torch.manual_seed(7)
    save_checkpoint(tmp_path / "r.pt", model=nn.Identity())
    expected = torch.rand(3)
    torch.manual_seed(8)
    load_checkpoint(tmp_path / "r.pt", model=nn.Identity(), map_location="meta")
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("wrap", [False, True])
def test_firing_rates_named_without_wrapper_prefix(wrap):
    model = _model()
    net = nn.DataParallel(model) if wrap else model
    trainer = Trainer(net, torch.optim.SGD(net.parameters(), lr=0.1), log=None, progress=False)
    rates = trainer.evaluate(torch.utils.data.DataLoader(_data(16), batch_size=8))["firing_rates"]
    assert set(rates) == {"1", "3"} and all(0 <= r <= 1 for r in rates.values())
