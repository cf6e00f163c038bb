import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from torch import nn

from snncore.sparse import SpikeLinear, sparse_linear


def _dense_reference(x, w, b, g):
    x = x.detach().clone().requires_grad_()
    w = w.detach().clone().requires_grad_()
    b = None if b is None else b.detach().clone().requires_grad_()
    y = F.linear(x, w, b)
    y.backward(g)
    return y.detach(), x.grad, w.grad, None if b is None else b.grad


def _sparse_run(x, w, b, g, max_density=1.0):
    x = x.detach().clone().requires_grad_()
    w = w.detach().t().contiguous().t().requires_grad_()  # input-major, as SpikeLinear stores it
    b = None if b is None else b.detach().clone().requires_grad_()
    y = sparse_linear(x, w, b, max_density=max_density)
    y.backward(g)
    return y.detach(), x.grad, w.grad, None if b is None else b.grad


@settings(max_examples=60, deadline=None)
@given(lead=st.lists(st.integers(0, 5), min_size=1, max_size=3), n_in=st.integers(1, 40),
       n_out=st.integers(1, 20), density=st.sampled_from([0.0, 0.01, 0.1, 0.5, 1.0]),
       bias=st.booleans(), binary=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_forward_and_backward_equal_dense_float64(lead, n_in, n_out, density, bias, binary, seed):
    gen = torch.Generator().manual_seed(seed)
    shape = (*lead, n_in)
    mask = torch.rand(shape, generator=gen, dtype=torch.float64) < density
    vals = torch.ones(shape, dtype=torch.float64) if binary else torch.randn(shape, generator=gen, dtype=torch.float64)
    x = vals * mask
    w = torch.randn(n_out, n_in, generator=gen, dtype=torch.float64)
    b = torch.randn(n_out, generator=gen, dtype=torch.float64) if bias else None
    g = torch.randn(*lead, n_out, generator=gen, dtype=torch.float64)
    ref = _dense_reference(x, w, b, g)
    got = _sparse_run(x, w, b, g)
    for r, s in zip(ref, got):
        if r is None:
            assert s is None
        else:
            assert s.shape == r.shape
            assert torch.allclose(s, r, atol=1e-12, rtol=1e-12)


def test_float32_large_layer_matches_dense():
    torch.manual_seed(0)
    x = (torch.rand(16, 32, 1024) < 0.03).float()
    m = SpikeLinear(1024, 512)
    ref = nn.Linear(1024, 512)
    ref.load_state_dict(m.state_dict())
    g = torch.randn(16, 32, 512)
    y = m(x)
    y.backward(g)
    y_ref = ref(x)
    y_ref.backward(g)
    assert torch.allclose(y, y_ref, atol=1e-5)
    assert torch.allclose(m.weight.grad, ref.weight.grad, atol=1e-4)
    assert torch.allclose(m.bias.grad, ref.bias.grad, atol=1e-4)


def test_sparse_path_is_taken_below_max_density_only(monkeypatch):
    calls = []
    from snncore import sparse as mod
    orig = mod._SparseLinearFn.apply
    monkeypatch.setattr(mod._SparseLinearFn, "apply", lambda *a: calls.append(1) or orig(*a))
    w = torch.randn(3, 100)
    x = torch.zeros(2, 100)
    x[0, :5] = 1  # density 5 / 200 = 0.025
    sparse_linear(x, w, max_density=0.05)
    assert calls == [1]
    sparse_linear(x, w, max_density=0.02)  # above: dense
    assert calls == [1]
    sparse_linear(x.half(), w.half(), max_density=1.0)  # unsupported dtype: dense
    assert calls == [1]


def test_autocast_gives_the_dtype_of_nn_linear():
    """Under autocast the sparse path returned float32 and the dense fallback bfloat16: the
    output dtype depended on the spike density."""
    m = SpikeLinear(64, 8)
    sparse, dense = torch.zeros(5, 64), torch.ones(5, 64)
    sparse[:, 3] = 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ys, yd, ref = m(sparse), m(dense), torch.nn.functional.linear(sparse, m.weight, m.bias)
    assert ys.dtype == yd.dtype == ref.dtype == torch.bfloat16
    torch.testing.assert_close(ys.float(), torch.nn.functional.linear(sparse, m.weight, m.bias), rtol=1e-2, atol=1e-2)
    assert m(sparse).dtype == torch.float32  # outside autocast


def test_all_zero_and_empty_inputs():
    m = SpikeLinear(10, 4, max_density=1.0)
    x = torch.zeros(3, 10, requires_grad=True)
    y = m(x)
    assert torch.equal(y, m.bias.expand(3, 4))
    y.sum().backward()
    assert torch.equal(m.weight.grad, torch.zeros(4, 10))
    assert torch.allclose(x.grad, m.weight.sum(0).expand(3, 10))
    assert m(torch.zeros(0, 10)).shape == (0, 4)


def test_spike_linear_is_a_linear_and_trains():
    torch.manual_seed(0)
    lin = nn.Linear(20, 5)
    m = SpikeLinear.from_linear(lin, max_density=1.0)
    assert isinstance(m, nn.Linear) and m.weight.shape == (5, 20) and m.weight.t().is_contiguous()
    assert torch.equal(m.weight, lin.weight)
    assert set(m.state_dict()) == set(lin.state_dict())
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    x = (torch.rand(8, 20) < 0.2).float()
    loss0 = m(x).pow(2).sum()
    loss0.backward()
    opt.step()
    assert m(x).pow(2).sum() < loss0
    assert m.weight.t().is_contiguous()
    with pytest.raises(ValueError, match="max_density"):
        SpikeLinear(2, 2, max_density=2)
    with pytest.raises(ValueError, match="does not match"):
        sparse_linear(torch.zeros(2, 3), torch.zeros(4, 5))


def test_second_derivative_through_the_sparse_path_raises():
    """The backward's saved inputs carry no graph to x, so a second derivative would be wrong
    (it silently differed from F.linear's): it raises instead."""
    x = torch.tensor([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]], dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    y = sparse_linear(x, w, max_density=1.0)
    (gw,) = torch.autograd.grad((y ** 2).sum(), w, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|differentiate"):
        torch.autograd.grad(gw.sum(), x)
