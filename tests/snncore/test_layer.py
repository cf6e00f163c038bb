import copy

import pytest
import torch
from torch import nn

from snncore import layer
from snncore.functional import reset_net, set_step_mode

T, N = 4, 3

STATELESS = [
    (lambda: layer.Conv1d(2, 3, 3, padding=1), (N, 2, 7)),
    (lambda: layer.Conv2d(2, 3, 3, stride=2), (N, 2, 9, 9)),
    (lambda: layer.Linear(5, 4), (N, 5)),
    (lambda: layer.BatchNorm1d(5), (N, 5)),
    (lambda: layer.BatchNorm1d(2), (N, 2, 6)),
    (lambda: layer.BatchNorm2d(2), (N, 2, 5, 5)),
    (lambda: layer.MaxPool2d(2), (N, 2, 6, 6)),
    (lambda: layer.AvgPool2d(3, stride=2, padding=1), (N, 2, 7, 7)),
    (lambda: layer.AdaptiveAvgPool2d((2, 3)), (N, 2, 7, 8)),
    (lambda: layer.Flatten(), (N, 2, 3, 4)),
    (lambda: layer.VotingLayer(3), (N, 12)),
]


@pytest.mark.parametrize("make, step_shape", STATELESS)
def test_multi_step_equals_single_step_loop(make, step_shape):
    torch.manual_seed(0)
    m = make()
    if isinstance(m, nn.modules.batchnorm._BatchNorm):  # eval statistics: per-sample map
        m.running_mean.uniform_(-1, 1)
        m.running_var.uniform_(0.5, 2)
        m.eval()
    x = torch.randn(T, *step_shape)
    loop = torch.stack([m(x[t]) for t in range(T)])
    m.step_mode = "m"
    y = m(x)
    assert y.shape == loop.shape
    assert torch.allclose(y, loop, atol=1e-6)
    assert "step_mode='m'" in repr(m)


def test_single_step_is_the_torch_layer():
    torch.manual_seed(0)
    ours = layer.Conv2d(2, 4, 3, padding=1, bias=False)
    ref = nn.Conv2d(2, 4, 3, padding=1, bias=False)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 2, 5, 5)
    assert torch.equal(ours(x), ref(x))
    assert isinstance(ours, nn.Conv2d)


def test_batchnorm_multi_step_training_normalises_over_time_and_batch():
    torch.manual_seed(0)
    bn = layer.BatchNorm2d(2, step_mode="m")
    x = torch.randn(T, N, 2, 3, 3) * 3 + 1
    y = bn(x)
    mean = y.transpose(0, 2).reshape(2, -1).mean(1)
    var = y.transpose(0, 2).reshape(2, -1).var(1, unbiased=False)
    assert torch.allclose(mean, torch.zeros(2), atol=1e-5)
    assert torch.allclose(var, torch.ones(2), atol=1e-3)


def test_m_mode_rejects_a_single_step():
    with pytest.raises(ValueError, match=r"\(T, N, \.\.\.\)"):
        layer.Linear(3, 2, step_mode="m")(torch.zeros(3))
    with pytest.raises(ValueError, match="step_mode"):
        layer.Linear(3, 2, step_mode="q")


def test_containers():
    torch.manual_seed(0)
    x = torch.randn(T, N, 2, 6, 6)
    conv, pool = nn.Conv2d(2, 3, 3), nn.AvgPool2d(2)
    ref = torch.stack([pool(conv(x[t])) for t in range(T)])
    assert torch.allclose(layer.SeqToANNContainer(conv, pool)(x), ref, atol=1e-6)
    assert torch.allclose(layer.MultiStepContainer(conv, pool)(x), ref, atol=1e-6)


def _dropout_net(cls, mode, rng):
    return cls(0.5, rng=rng, step_mode=mode).train()


@pytest.mark.parametrize("cls", [layer.Dropout, layer.Dropout2d])
def test_dropout_keeps_one_mask_per_sequence_and_reset_draws_a_new_one(cls):
    x = torch.ones(8, 16, 6, 5, 5)
    d = _dropout_net(cls, "m", rng=1)
    y = d(x)
    assert all(torch.equal(y[t], y[0]) for t in range(8))  # same mask at every step
    assert set(y.unique().tolist()) <= {0.0, 2.0}  # kept values scaled by 1/(1-p)
    if cls is layer.Dropout2d:  # whole channels
        assert torch.equal(y[0].amax((2, 3)), y[0].amin((2, 3)))
    assert torch.equal(d(x), y)  # same sequence continues: same mask
    reset_net(d)
    assert not torch.equal(d(x), y)
    # single-step loop with the same seed gives the same masks as the multi-step call
    s = _dropout_net(cls, "s", rng=1)
    loop = torch.stack([s(x[t]) for t in range(8)])
    assert torch.equal(loop, y)


def test_dropout_rate_eval_and_edge_probabilities():
    x = torch.ones(2, 200, 100)
    d = layer.Dropout(0.3, rng=0, step_mode="m")
    kept = (d(x) != 0).float().mean().item()
    assert abs(kept - 0.7) < 0.02
    assert torch.equal(d.eval()(x), x)
    assert torch.equal(layer.Dropout(0.0)(x[0]), x[0])
    assert torch.equal(layer.Dropout(1.0)(x[0]), torch.zeros_like(x[0]))
    with pytest.raises(ValueError, match="p"):
        layer.Dropout(1.5)
    with pytest.raises(TypeError, match="rng"):
        layer.Dropout(0.5, rng="seed")


def test_dropout_shape_change_without_reset_says_reset_net():
    d = layer.Dropout(0.5)
    d(torch.ones(4, 3))
    with pytest.raises(RuntimeError, match="reset_net"):
        d(torch.ones(5, 3))
    reset_net(d)
    assert d(torch.ones(5, 3)).shape == (5, 3)


def test_dropout_gradient_uses_the_mask():
    d = layer.Dropout(0.5, rng=3, step_mode="m")
    x = torch.ones(3, 4, 10, requires_grad=True)
    d(x).sum().backward()
    assert torch.equal(x.grad, d.mask.expand(3, 4, 10))


def _tdbn_reference(x_seq, weight, bias, alpha, v_th, eps):
    # per channel over (T, N, spatial) jointly, biased variance
    dims = [0, 1] + list(range(3, x_seq.ndim))
    mean = x_seq.mean(dims, keepdim=True)
    var = x_seq.var(dims, unbiased=False, keepdim=True)
    shape = [1, 1, -1] + [1] * (x_seq.ndim - 3)
    return weight.view(shape) * alpha * v_th * (x_seq - mean) / torch.sqrt(var + eps) + bias.view(shape)


@pytest.mark.parametrize("cls, shape", [(layer.ThresholdDependentBatchNorm2d, (T, N, 3, 4, 4)),
                                        (layer.ThresholdDependentBatchNorm1d, (T, N, 3)),
                                        (layer.ThresholdDependentBatchNorm1d, (T, N, 3, 5))])
def test_tdbn_matches_formula_forward_backward_and_running_stats(cls, shape):
    torch.manual_seed(0)
    bn = cls(3, alpha=0.5, v_threshold=2.0)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    x = (torch.randn(shape, dtype=torch.float64) * 2 + 0.5).requires_grad_()
    bn = bn.double()
    y = bn(x)
    w = bn.weight.detach().clone().requires_grad_()
    b = bn.bias.detach().clone().requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    ref = _tdbn_reference(x2, w, b, 0.5, 2.0, bn.eps)
    assert torch.allclose(y, ref, atol=1e-10)
    g = torch.randn_like(y)
    y.backward(g)
    ref.backward(g)
    assert torch.allclose(x.grad, x2.grad, atol=1e-10)
    assert torch.allclose(bn.weight.grad, w.grad, atol=1e-10)
    assert torch.allclose(bn.bias.grad, b.grad, atol=1e-10)
    # running statistics as torch's BatchNorm on the folded input
    plain = (nn.BatchNorm2d if cls is layer.ThresholdDependentBatchNorm2d else nn.BatchNorm1d)(3).double()
    plain(x.detach().flatten(0, 1))
    assert torch.allclose(bn.running_mean, plain.running_mean)
    assert torch.allclose(bn.running_var, plain.running_var)
    # eval: uses running statistics
    bn.eval()
    ye = bn(x.detach())
    shape_c = [1, 1, -1] + [1] * (x.ndim - 3)
    expect = (bn.weight.view(shape_c) * 1.0 * (x.detach() - bn.running_mean.view(shape_c))
              / torch.sqrt(bn.running_var.view(shape_c) + bn.eps) + bn.bias.view(shape_c))
    assert torch.allclose(ye, expect, atol=1e-10)


def test_tdbn_without_affine_and_cumulative_momentum():
    torch.manual_seed(0)
    bn = layer.ThresholdDependentBatchNorm2d(2, alpha=2.0, affine=False, momentum=None)
    x = torch.randn(T, N, 2, 3, 3, dtype=torch.float64)
    y = bn.double()(x)
    ref = _tdbn_reference(x, torch.ones(2, dtype=x.dtype), torch.zeros(2, dtype=x.dtype), 2.0, 1.0, bn.eps)
    assert torch.allclose(y, ref, atol=1e-10)
    assert int(bn.num_batches_tracked) == 1
    with pytest.raises(ValueError, match="alpha"):
        layer.ThresholdDependentBatchNorm2d(2, alpha=0)


def test_voting_layer():
    x = torch.arange(12.0).view(1, 12)
    assert torch.equal(layer.VotingLayer(4)(x), torch.tensor([[1.5, 5.5, 9.5]]))
    with pytest.raises(ValueError, match="multiple of voting_size"):
        layer.VotingLayer(5)(x)
    with pytest.raises(ValueError, match="voting_size"):
        layer.VotingLayer(0)


def test_set_step_mode_on_a_layer_stack_and_deepcopy():
    torch.manual_seed(0)
    net = nn.Sequential(layer.Conv2d(1, 2, 3), layer.AvgPool2d(2), layer.Flatten(), layer.Linear(8, 3))
    x = torch.randn(T, N, 1, 6, 6)
    loop = torch.stack([net(x[t]) for t in range(T)])
    net2 = copy.deepcopy(net)
    set_step_mode(net2, "m")
    assert torch.allclose(net2(x), loop, atol=1e-6)
    assert net[0].step_mode == "s"


def test_snn_stack_with_if_neurons_and_dropout_multi_step_equals_single_step():
    from snncore.neuron import IFNode

    torch.manual_seed(0)
    net = nn.Sequential(layer.Conv2d(1, 4, 3, padding=1), layer.BatchNorm2d(4), IFNode(),
                        layer.Dropout2d(0.3, rng=2), layer.MaxPool2d(2), layer.Flatten(),
                        layer.Linear(4 * 3 * 3, 20), IFNode(v_reset=None), layer.Dropout(0.2, rng=3),
                        layer.Linear(20, 20), IFNode(), layer.VotingLayer(2))
    net[1].eval()
    x = torch.rand(T, N, 1, 6, 6) * 2
    net_m = set_step_mode(copy.deepcopy(net), "m")  # same seeds: same dropout masks
    single = torch.stack([net(x[t]) for t in range(T)])
    net = net_m
    multi = net(x)
    assert multi.shape == (T, N, 10)
    assert torch.equal(multi, single)
    # a second batch of another size needs reset_net (neurons and dropout masks)
    with pytest.raises(Exception, match="reset_net"):
        net(torch.rand(T, N + 1, 1, 6, 6))
    reset_net(net)
    assert net(torch.rand(T, N + 1, 1, 6, 6)).shape == (T, N + 1, 10)


def test_maxpool_indices_in_multi_step_and_voting_size_numpy_int():
    """``MaxPool2d(return_indices=True)`` in 'm' mode gives both outputs per step (it raised
    AttributeError on the tuple); VotingLayer takes any integer type."""
    import numpy as np

    x = torch.rand(3, 2, 1, 4, 4)
    pool = layer.MaxPool2d(2, return_indices=True, step_mode="m")
    out, idx = pool(x)
    for t in range(3):
        ref, ref_idx = torch.nn.functional.max_pool2d(x[t], 2, return_indices=True)
        assert torch.equal(out[t], ref) and torch.equal(idx[t], ref_idx)
    assert layer.VotingLayer(np.int64(2))(torch.ones(3, 4)).shape == (3, 2)
