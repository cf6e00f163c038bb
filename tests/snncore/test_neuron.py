"""Neuron modules: equations, multi-step == single-step loop exactly, state handling, errors."""
import copy
import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from snncore import neuron, surrogate
from snncore.functional import dynamics as D


def _make(cls, mode, **kw):
    return cls(step_mode=mode, **kw)


CONFIGS = []
for cls in (neuron.IFNode, neuron.LIFNode, neuron.ParametricLIFNode):
    for v_reset, detach, decay in itertools.product((0.0, None), (False, True), (True, False)):
        if cls is neuron.IFNode and not decay:
            continue
        kw = dict(v_reset=v_reset, detach_reset=detach)
        if cls is not neuron.IFNode:
            kw["decay_input"] = decay
        if cls is neuron.LIFNode:
            kw["tau"] = 3
        if cls is neuron.ParametricLIFNode:
            kw["init_tau"] = 2.5
        CONFIGS.append((cls, kw))
CONFIG_IDS = [f"{c.__name__}-{'hard' if k['v_reset'] is not None else 'soft'}-det{int(k['detach_reset'])}"
              f"-dec{int(k.get('decay_input', True))}" for c, k in CONFIGS]


def _single_loop(node, x_seq):
    return torch.stack([node(x) for x in x_seq])


@pytest.mark.parametrize("cls,kw", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_multi_step_equals_single_step_loop_exactly(cls, kw, dtype):
    torch.manual_seed(0)
    x = (torch.randn(9, 3, 37) * 0.8 + 0.4).to(dtype)
    m, s = _make(cls, "m", store_v_seq=True, **kw), _make(cls, "s", **kw)
    ym = m(x)
    vs = []
    ys = []
    for xt in x:
        ys.append(s(xt))
        vs.append(s.v)
    assert ym.dtype == dtype
    assert torch.equal(ym, torch.stack(ys))
    assert torch.equal(m.v, s.v) and m.v.dtype == torch.float32
    assert torch.equal(m.v_seq, torch.stack(vs))
    assert 0 < ym.float().mean() < 1  # the case exercises firing and not firing


@pytest.mark.parametrize("cls,kw", CONFIGS, ids=CONFIG_IDS)
def test_multi_step_gradients_equal_single_step_loop(cls, kw):
    torch.manual_seed(1)
    x = torch.randn(6, 2, 19) * 0.8 + 0.4
    grads = []
    for mode in ("m", "s"):
        node = _make(cls, mode, surrogate_function=surrogate.ATan(), **kw)
        xs = x.clone().requires_grad_(True)
        y = node(xs) if mode == "m" else _single_loop(node, xs)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().add(node.v.square().sum()).backward()
        grads.append([xs.grad] + [p.grad for p in node.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["if", "lif", "plif"]),
       T=st.integers(1, 5), shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       v_th=st.one_of(st.integers(-2, 3), st.floats(-2, 3, allow_nan=False)),
       v_reset=st.one_of(st.none(), st.integers(-1, 1), st.floats(-1, 0.5, allow_nan=False)),
       tau=st.one_of(st.integers(1, 10), st.floats(1, 100)),
       decay=st.booleans(), scale=st.sampled_from([1e-3, 1.0, 1e3, 1e6]), seed=st.integers(0, 2**16))
def test_multi_equals_single_property(kind, T, shape, v_th, v_reset, tau, decay, scale, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, *shape, generator=g) * scale
    kw = dict(v_threshold=v_th, v_reset=v_reset)
    if kind == "if":
        cls = neuron.IFNode
    elif kind == "lif":
        cls, kw = neuron.LIFNode, dict(kw, tau=tau, decay_input=decay)
    else:
        cls, kw = neuron.ParametricLIFNode, dict(kw, init_tau=tau + 0.5, decay_input=decay)
    m, s = _make(cls, "m", **kw), _make(cls, "s", **kw)
    assert torch.equal(m(x), _single_loop(s, x))
    assert torch.equal(m.v, s.v)


def test_hand_computed_if_and_lif():
    node = neuron.IFNode(step_mode="m", v_reset=None)  # soft reset keeps the overshoot
    # H: 0.7, 1.4 (fire, V = 0.4), 1.1 (fire, V = 0.1)
    assert node(torch.tensor([[0.7], [0.7], [0.7]])).flatten().tolist() == [0.0, 1.0, 1.0]
    assert node.v.item() == pytest.approx(0.1)
    node = neuron.LIFNode(tau=2, decay_input=False, v_threshold=1.2, step_mode="s")
    # H = V - V / 2 + X: 1 (V = 1), 1.5 (fire, V = 0), 1
    assert [node(torch.tensor([1.0])).item() for _ in range(3)] == [0.0, 1.0, 0.0]
    node = neuron.LIFNode(tau=4, decay_input=True, v_reset=-0.5, v_threshold=0.2, step_mode="s")
    # V starts at Vr = -0.5; H = V + (X - (V - Vr)) / tau = -0.5 + (1 - 0) / 4 = -0.25 : no spike
    assert node(torch.tensor([1.0])).item() == 0.0
    assert node.v.item() == pytest.approx(-0.25)


def test_threshold_equality_fires():
    node = neuron.IFNode(v_threshold=1, step_mode="s")
    assert node(torch.tensor([1.0])).item() == 1.0 and node.v.item() == 0.0


def test_state_carries_across_calls_and_chunks():
    torch.manual_seed(2)
    x = torch.randn(10, 4, 5) + 0.5
    whole = neuron.LIFNode(step_mode="m")
    parts = neuron.LIFNode(step_mode="m")
    assert torch.equal(whole(x), torch.cat([parts(x[:3]), parts(x[3:])]))
    assert torch.equal(whole.v, parts.v)


def test_float64_chunks_keep_a_float64_state():
    """A float64 input runs the reference path with a float64 state; chunks equal one call (the
    second chunk raised 'v must be float32' before), and a float32 chunk after casts it back."""
    torch.manual_seed(3)
    x = torch.rand(6, 2, 3, dtype=torch.float64) * 2
    for mode in ("m", "s"):
        whole, parts = neuron.LIFNode(step_mode=mode), neuron.LIFNode(step_mode=mode)
        run = (lambda n, xs: n(xs)) if mode == "m" else (lambda n, xs: torch.stack([n(xt) for xt in xs]))
        assert torch.equal(run(whole, x), torch.cat([run(parts, x[:2]), run(parts, x[2:])]))
        assert parts.v.dtype == torch.float64 and torch.equal(whole.v, parts.v)
        run(parts, x[:2].float())
        assert parts.v.dtype == torch.float32


def test_v_reset_changed_before_the_first_call_is_the_initial_state():
    node = neuron.IFNode()
    node.v_reset = 0.5
    assert node.v == 0.5
    assert node(torch.tensor([0.6])).item() == 1.0  # 0.5 + 0.6 >= 1 (it started from 0 before the fix)
    node.v_reset = 0.25  # after the first call the state is kept until reset()
    assert node.v.item() == 0.5
    node.reset()
    assert node.v == 0.25


def test_changed_batch_shape_raises_with_reset_net_hint_or_auto_resets():
    for mode, shape_a, shape_b in (("s", (4, 3), (5, 3)), ("m", (2, 4, 3), (2, 5, 3))):
        node = neuron.LIFNode(step_mode=mode)
        node(torch.rand(shape_a))
        with pytest.raises(RuntimeError, match=r"snncore\.functional\.reset_net\(net\)"):
            node(torch.rand(shape_b))
        node.reset()
        node(torch.rand(shape_b))
        auto = neuron.IFNode(step_mode=mode, auto_reset=True)
        auto(torch.rand(shape_a) * 0.9)
        ref = neuron.IFNode(step_mode=mode)
        xb = torch.rand(shape_b)
        assert torch.equal(auto(xb), ref(xb))


def test_reset_restores_initial_state_and_v_seq():
    node = neuron.LIFNode(v_reset=-0.25, step_mode="m", store_v_seq=True)
    node(torch.rand(3, 2))
    assert node.v_seq.shape == (3, 2) and torch.equal(node.v_seq[-1], node.v)
    node.reset()
    assert node.v == -0.25 and node.v_seq is None
    node.v_reset = None
    node.reset()
    assert node.v == 0.0
    s = neuron.LIFNode(step_mode="s", store_v_seq=True)
    s(torch.rand(2))
    assert s.v_seq is None  # single-step mode keeps only v


def test_parameters_validate_and_accept_ints():
    node = neuron.LIFNode(tau=2, v_threshold=1, v_reset=0)
    assert node.tau == 2.0 and node.v_threshold == 1.0 and node.params.decay == 0.5
    node.v_threshold = 2
    assert node.params.v_threshold == 2.0
    with pytest.raises(ValueError, match="tau"):
        neuron.LIFNode(tau=0.5)
    with pytest.raises(TypeError, match="v_threshold"):
        neuron.IFNode(v_threshold="1")
    with pytest.raises(TypeError, match="detach_reset"):
        neuron.IFNode(detach_reset=1)
    with pytest.raises(ValueError, match="init_tau"):
        neuron.ParametricLIFNode(init_tau=1)
    with pytest.raises(TypeError, match="surrogate_function"):
        neuron.IFNode(surrogate_function=torch.sigmoid)
    with pytest.raises(ValueError, match="step_mode"):
        neuron.IFNode(step_mode="x")
    with pytest.raises(ValueError, match=r"\(T, N, \*\)"):
        neuron.IFNode(step_mode="m")(torch.rand(3))
    with pytest.raises(TypeError, match="floating-point"):
        neuron.IFNode()(torch.ones(3, dtype=torch.int64))


def test_plif_tau_and_w_gradient_matches_finite_difference():
    node = neuron.ParametricLIFNode(init_tau=3, step_mode="m", surrogate_function=surrogate.Erf())
    assert node.tau == pytest.approx(3.0)
    assert torch.sigmoid(node.w).item() == pytest.approx(1 / 3)
    x = torch.randn(8, 50, dtype=torch.float32, generator=torch.Generator().manual_seed(3)) + 0.6

    def loss(w):  # v_seq is smooth in w as long as no spike flips: compare on the membrane trace
        n = neuron.ParametricLIFNode(init_tau=3, step_mode="m", surrogate_function=surrogate.Erf(),
                                     store_v_seq=True, detach_reset=True)
        with torch.no_grad():
            n.w.fill_(w)
        n(x)
        return n.v_seq.double().sum(), n

    val, n = loss(node.w.item())
    val.backward()
    eps = 1e-3
    fd = (loss(node.w.item() + eps)[0] - loss(node.w.item() - eps)[0]).item() / (2 * eps)
    assert n.w.grad.item() == pytest.approx(fd, rel=2e-2)


def test_stacks_in_sequential_and_deepcopies():
    net = nn.Sequential(nn.Linear(5, 6), neuron.LIFNode(step_mode="s"), nn.Linear(6, 2),
                        neuron.IFNode(step_mode="s"))
    x = torch.rand(4, 5)
    with torch.no_grad():  # a state holding an autograd graph cannot be deep-copied (torch rule)
        for _ in range(3):
            y = net(x)
    assert y.shape == (4, 2)
    twin = copy.deepcopy(net)
    assert torch.equal(twin[1].v, net[1].v) and twin[1].v is not net[1].v


def test_detach_cuts_graph_between_chunks():
    node = neuron.LIFNode(step_mode="m")
    x = torch.rand(3, 4, requires_grad=True)
    node(x).sum().backward()
    assert node.v.requires_grad
    node.detach()
    assert not node.v.requires_grad
    node(torch.rand(3, 4, requires_grad=True)).sum().backward()  # no second backward through chunk 1


def test_custom_surrogate_runs_and_warns_in_multi_step():
    class Triangle(surrogate.SurrogateFunction):
        def derivative(self, x):
            return (1 - x.abs()).clamp(min=0)

    x = torch.rand(4, 3, requires_grad=True) * 2
    m = neuron.LIFNode(step_mode="m", surrogate_function=Triangle())
    with pytest.warns(UserWarning, match="reference path"):
        y = m(x)
    s = neuron.LIFNode(step_mode="s", surrogate_function=Triangle())
    assert torch.equal(y, _single_loop(s, x))


def test_dynamics_functions_match_documented_equations():
    x, v = torch.tensor([0.5, 2.0]), torch.tensor([0.2, 0.4])
    assert torch.equal(D.charge_if(x, v), v + x)
    torch.testing.assert_close(D.charge_lif(x, v, 0.25, True, -0.1), v + (x - (v + 0.1)) * 0.25)
    torch.testing.assert_close(D.charge_lif(x, v, 0.25, False, None), v - v * 0.25 + x)
    h = torch.tensor([0.5, 1.0, 1.5])
    s = D.fire(h, 1.0, surrogate.Sigmoid())
    assert s.tolist() == [0.0, 1.0, 1.0]
    assert D.reset(h, s, 1.0, -0.3, False).tolist() == pytest.approx([0.5, -0.3, -0.3])
    assert D.reset(h, s, 1.0, None, False).tolist() == pytest.approx([0.5, 0.0, 0.5])
    assert D.LIFParameters(tau=3).decay == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="PLIF"):
        D.neuron_step(x, v, D.PLIFParameters(), surrogate.Sigmoid())
