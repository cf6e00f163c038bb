import pytest
import torch
from torch import nn

from snncore.base import MemoryModule, StepModule
from snncore.functional import detach_net, multi_step_forward, reset_net, seq_to_ann_forward, set_step_mode
from snncore import layer


class Accumulator(MemoryModule):
    """Minimal stateful module: v <- v + x, outputs v (both step modes)."""

    def __init__(self, step_mode="s"):
        super().__init__(step_mode)
        self.register_memory("v", 0.0)

    def forward(self, x):
        if self.step_mode == "m":
            return multi_step_forward(x, self.single)
        return self.single(x)

    def single(self, x):
        self.v = self.v + x
        return self.v


def test_all_exported():
    import snncore.functional as F
    for name in ("reset_net", "set_step_mode", "detach_net", "multi_step_forward", "seq_to_ann_forward"):
        assert hasattr(F, name)


def test_reset_net_restores_every_memory():
    net = nn.Sequential(Accumulator(), nn.Sequential(nn.Identity(), Accumulator()))
    net(torch.ones(3))
    assert torch.equal(net[0].v, torch.ones(3))
    reset_net(net)
    assert net[0].v == 0.0 and net[1][1].v == 0.0


def test_detach_net_cuts_graph_but_keeps_values():
    acc = Accumulator()
    x = torch.ones(2, requires_grad=True)
    acc(x)
    assert acc.v.requires_grad
    detach_net(nn.Sequential(acc))
    assert not acc.v.requires_grad and torch.equal(acc.v, torch.ones(2))


def test_set_step_mode_visits_step_modules_but_not_container_children():
    inner = layer.Linear(3, 3)
    net = nn.Sequential(layer.Conv2d(1, 1, 1), Accumulator(), layer.MultiStepContainer(inner), nn.ReLU())
    assert set_step_mode(net, "m") is net
    assert net[0].step_mode == "m" and net[1].step_mode == "m"
    assert inner.step_mode == "s"  # stepped by the container
    with pytest.raises(ValueError, match="step_mode"):
        set_step_mode(net, "x")
    with pytest.raises(TypeError, match="nn.Module"):
        set_step_mode([net], "m")


def test_set_step_mode_propagates_refusal_of_tdbn():
    net = nn.Sequential(layer.ThresholdDependentBatchNorm2d(2))
    with pytest.raises(ValueError, match="only runs in step_mode='m'"):
        set_step_mode(net, "s")


def test_multi_step_forward_equals_manual_loop_and_chains_modules():
    torch.manual_seed(0)
    x = torch.randn(5, 2, 3)
    lin = nn.Linear(3, 4)
    a, b = Accumulator(), Accumulator()
    y = multi_step_forward(x, [lin, a])
    manual, v = [], 0
    for t in range(5):
        v = v + lin(x[t])
        manual.append(v)
    assert torch.allclose(y, torch.stack(manual))
    y2 = multi_step_forward(x, nn.Sequential(lin, b))
    assert torch.allclose(y2, y)
    assert multi_step_forward(x[:1], lin).shape == (1, 2, 4)


def test_seq_to_ann_forward_folds_time():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 2, 6, 6)
    conv, pool = nn.Conv2d(2, 5, 3), nn.AvgPool2d(2)
    y = seq_to_ann_forward(x, [conv, pool])
    assert y.shape == (4, 3, 5, 2, 2)
    ref = torch.stack([pool(conv(x[t])) for t in range(4)])
    assert torch.allclose(y, ref, atol=1e-6)
    assert torch.allclose(seq_to_ann_forward(x, nn.Sequential(conv, pool)), ref, atol=1e-6)


@pytest.mark.parametrize("bad, err, match", [
    (torch.zeros(0, 2), ValueError, "T = 0"),
    (torch.zeros(3), ValueError, r"\(T, N, \.\.\.\)"),
    ([1, 2], TypeError, "torch.Tensor"),
])
def test_seq_to_ann_forward_rejects_bad_input(bad, err, match):
    with pytest.raises(err, match=match):
        seq_to_ann_forward(bad, nn.Identity())


def test_seq_to_ann_forward_rejects_modules_that_change_batch_axis():
    with pytest.raises(ValueError, match="folded batch axis"):
        seq_to_ann_forward(torch.zeros(2, 3, 4), lambda x: x.sum(0))


def test_bad_module_lists():
    with pytest.raises(TypeError, match="callable"):
        multi_step_forward(torch.zeros(2, 1), [])
    with pytest.raises(TypeError, match="callable"):
        multi_step_forward(torch.zeros(2, 1), 3)


def test_reset_between_batches_of_different_size_with_memory_module():
    acc = Accumulator(step_mode="m")
    acc(torch.ones(2, 4))
    reset_net(acc)
    assert torch.equal(acc(torch.ones(3, 5)), torch.arange(1, 4.0)[:, None].expand(3, 5))


def test_step_module_default_and_repr():
    m = layer.Linear(2, 2)
    assert isinstance(m, StepModule) and m.step_mode == "s"
    assert "step_mode='s'" in repr(m)
