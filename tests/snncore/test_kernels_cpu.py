"""CPU fused kernels (numba) against the pure-torch reference; dispatch and fallback rules."""
import warnings

import numpy as np
import pytest
import torch

from snncore import surrogate as S
from snncore.functional import dynamics as D
from snncore.kernels import KernelFallbackWarning, backend_for, cpu, multi_step
from tests.snncore.kernel_cases import (SURROGATE_IDS, SURROGATES, compare_with_reference,
                                        config_id, neuron_configs)

CONFIGS = neuron_configs()


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
@pytest.mark.parametrize("sg", SURROGATES, ids=SURROGATE_IDS)
def test_cpu_equals_reference_every_config_and_surrogate(cfg, sg):
    compare_with_reference("cpu", cfg, sg, torch.float32, T=5)


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("T", [1, 7])
def test_cpu_equals_reference_dtypes_and_lengths(cfg, dtype, T):
    sg = SURROGATES[(CONFIGS.index(cfg) + T) % len(SURROGATES)]
    compare_with_reference("cpu", cfg, sg, dtype, T=T, store_v_seq=T == 7, transpose=T == 1)


@pytest.mark.parametrize("kind", ["if", "lif", "plif"])
def test_cpu_many_blocks_and_long_sequences(kind):
    # M spans several parallel blocks (block = 1024 neurons at T = 64): per-block state and dL/dk
    compare_with_reference("cpu", (kind, True, False, True), S.Sigmoid(), torch.float32, T=64,
                           M=(2, 1100), store_v_seq=False)


def test_no_grad_path_equals_grad_path_and_skips_saving():
    params = D.LIFParameters()
    x = torch.randn(6, 4, 10) + 0.5
    v = torch.zeros(4, 10)
    with torch.no_grad():
        a = multi_step(x, v, params, S.Sigmoid(), backend="cpu")
    b = multi_step(x.clone().requires_grad_(True), v, params, S.Sigmoid(), backend="cpu")
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and b[0].requires_grad


def test_empty_sequences():
    params = D.IFParameters()
    for shape in ((0, 3), (4, 0)):
        x = torch.zeros(shape)
        s, v, _ = multi_step(x, torch.zeros(shape[1:]), params, S.Sigmoid(), backend="cpu")
        assert s.shape == shape and v.shape == shape[1:]
    # T = 0 with store_v_seq raised 'stack expects a non-empty TensorList', and the output was cut
    # from the graph (its backward raised); an N = 0 batch already worked
    x = torch.zeros(0, 3, 5, requires_grad=True)
    s, v, v_seq = multi_step(x, torch.zeros(3, 5), params, S.Sigmoid(), store_v_seq=True, backend="cpu")
    assert s.shape == (0, 3, 5) and v_seq.shape == (0, 3, 5) and v_seq.dtype == torch.float32
    s.sum().backward()
    assert x.grad.shape == (0, 3, 5)


def test_fast_exp_accuracy():
    x = np.linspace(-87, 88, 200_001).astype(np.float32)
    got = np.array([cpu._exp_f32(v) for v in x[::97]], dtype=np.float64)
    ref = np.exp(x[::97].astype(np.float64))
    assert np.max(np.abs(got - ref) / ref) < 1e-6


@pytest.mark.parametrize("sg", SURROGATES, ids=SURROGATE_IDS)
def test_kernel_surrogate_derivative_matches_torch(sg):
    h = (np.random.default_rng(0).standard_normal(5000) * 3).astype(np.float32)
    out = np.empty_like(h)
    sg_id, p0, p1 = S.kernel_spec(sg)
    cpu._surrogate_grad_kernel(h, out, np.float32(0.7), sg_id, np.float32(p0), np.float32(p1))
    ref = sg.derivative(torch.from_numpy(h).double() - float(np.float32(0.7))).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-7)  # float32 rounding of h - v_th


def test_backend_for_rules(monkeypatch):
    monkeypatch.delenv("SNNCORE_BACKEND", raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    x = torch.zeros(2, 3)
    assert backend_for(x) == "cpu"
    assert backend_for(x.half()) == "cpu"
    assert backend_for(x.double()) == "reference"
    monkeypatch.setenv("SNNCORE_BACKEND", "reference")
    assert backend_for(x) == "reference"
    monkeypatch.setenv("SNNCORE_BACKEND", "CPU")
    assert backend_for(x) == "cpu"
    monkeypatch.setenv("SNNCORE_BACKEND", "cpu")
    with pytest.raises(RuntimeError, match="float32/float16/bfloat16"):
        backend_for(x.double())
    monkeypatch.setenv("SNNCORE_BACKEND", "triton")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET|not installed"):
        backend_for(x)
    monkeypatch.setenv("SNNCORE_BACKEND", "gpu")
    with pytest.raises(ValueError, match="SNNCORE_BACKEND"):
        backend_for(x)


def test_env_var_really_selects_the_path(monkeypatch):
    calls = []
    real = cpu.forward
    monkeypatch.setattr(cpu, "forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = torch.rand(3, 4)
    monkeypatch.setenv("SNNCORE_BACKEND", "reference")
    multi_step(x, torch.zeros(4), D.IFParameters(), S.Sigmoid())
    assert calls == []
    monkeypatch.setenv("SNNCORE_BACKEND", "cpu")
    multi_step(x, torch.zeros(4), D.IFParameters(), S.Sigmoid())
    assert calls == [1]


def test_custom_surrogate_falls_back_with_warning_and_same_result(monkeypatch):
    monkeypatch.delenv("SNNCORE_BACKEND", raising=False)

    class Triangle(S.SurrogateFunction):
        def derivative(self, x):
            return (1 - x.abs()).clamp(min=0)

    class LoudSigmoid(S.Sigmoid):  # a subclass of a built-in is custom too
        def derivative(self, x):
            return super().derivative(x) * 3

    x = torch.rand(5, 8, requires_grad=True) * 2
    for sg in (Triangle(), LoudSigmoid()):
        assert backend_for(x, sg) == "reference"
        with pytest.warns(KernelFallbackWarning, match="reference path"):
            s, v, _ = multi_step(x, torch.zeros(8), D.LIFParameters(), sg)
        ref = D.multi_step_reference(x, torch.zeros(8), D.LIFParameters(), sg)
        assert torch.equal(s, ref[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        multi_step(x, torch.zeros(8), D.LIFParameters(), S.Sigmoid())  # built-in: no warning


def test_validation_errors():
    p = D.LIFParameters()
    with pytest.raises(ValueError, match="one time step"):
        multi_step(torch.zeros(3, 4), torch.zeros(5), p, S.Sigmoid())
    with pytest.raises(ValueError, match="float32"):
        multi_step(torch.zeros(3, 4), torch.zeros(4, dtype=torch.float64), p, S.Sigmoid())
    with pytest.raises(ValueError, match="PLIF needs k"):
        multi_step(torch.zeros(3, 4), torch.zeros(4), D.PLIFParameters(), S.Sigmoid())
    with pytest.raises(ValueError, match="only for PLIF"):
        multi_step(torch.zeros(3, 4), torch.zeros(4), p, S.Sigmoid(), k=torch.tensor(0.5))
    with pytest.raises(TypeError, match="floating-point"):
        multi_step(torch.zeros(3, 4, dtype=torch.int32), torch.zeros(4), p, S.Sigmoid())


def test_plif_gradient_reaches_w_through_module():
    from snncore.neuron import ParametricLIFNode

    torch.manual_seed(5)
    x = torch.randn(6, 3, 20) + 0.5
    grads = []
    for mode in ("cpu", "reference"):
        node = ParametricLIFNode(init_tau=2, step_mode="m")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SNNCORE_BACKEND", mode)
            node(x).sum().backward()
        grads.append(node.w.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)
    assert grads[0].abs() > 0


def test_second_derivative_through_the_fused_kernel_raises(monkeypatch):
    """A gradient penalty (create_graph=True) lost the surrogate's second-order term without a
    word (the weight gradient differed from step_mode='s' by up to 1.1); now it raises, and the
    reference backend the message names gives the single-step loop's result."""
    from snncore.neuron import LIFNode

    def penalty_grad(step_mode):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(6, 5), LIFNode(step_mode=step_mode))
        x = torch.rand(4, 3, 6, requires_grad=True)
        out = net(x) if step_mode == "m" else torch.stack([net(xt) for xt in x])
        gx, = torch.autograd.grad(out.sum(), x, create_graph=True)
        gx.pow(2).sum().backward()
        return net[0].weight.grad

    with pytest.raises(RuntimeError, match="second derivative.*SNNCORE_BACKEND=reference"):
        penalty_grad("m")
    monkeypatch.setenv("SNNCORE_BACKEND", "reference")
    torch.testing.assert_close(penalty_grad("m"), penalty_grad("s"))


def test_torch_compile_before_any_eager_call():
    """``torch.compile`` of a multi-step neuron crashed ('exception table entry ...') when the numba
    kernel's first call in the process came inside the compiled region: a fresh process."""
    import subprocess
    import sys

    code = """
import torch
from snncore.neuron import LIFNode
torch.manual_seed(0)
x = (torch.rand(5, 2, 8) * 2)
xc, xe = x.clone().requires_grad_(), x.clone().requires_grad_()
out = torch.compile(LIFNode(step_mode="m"), backend="aot_eager")(xc)
out.sum().backward()
ref = LIFNode(step_mode="m")(xe)
ref.sum().backward()
assert torch.equal(out, ref) and torch.equal(xc.grad, xe.grad)
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
