"""Surrogate spike functions: Heaviside forward, documented derivatives, custom subclasses."""
import math

import pytest
import torch

from snncore import surrogate as S

ALL = [cls() for cls in S.BUILTINS]
IDS = [cls.__name__ for cls in S.BUILTINS]


def _points(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g, dtype=torch.float64) * 1.5


@pytest.mark.parametrize("sg", ALL, ids=IDS)
def test_forward_is_heaviside_with_zero_firing(sg):
    x = torch.tensor([-2.0, -1e-7, 0.0, 1e-7, 3.0])
    assert sg(x).tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert sg(x.half()).dtype == torch.float16


@pytest.mark.parametrize("sg", ALL, ids=IDS)
def test_derivative_equals_autograd_of_primitive(sg):
    # exactly 0 too: PiecewiseExp's primitive through |x| had autograd derivative 0 there
    x = torch.cat([_points(), torch.tensor([0.0, -40.0, 40.0], dtype=torch.float64)]).requires_grad_(True)
    (auto,) = torch.autograd.grad(sg.primitive(x).sum(), x)
    torch.testing.assert_close(sg.derivative(x.detach()), auto, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("sg", ALL, ids=IDS)
def test_spike_gradient_is_derivative(sg):
    x = _points(seed=1).float().requires_grad_(True)
    sg(x).backward(torch.full_like(x, 2.0))
    torch.testing.assert_close(x.grad, 2.0 * sg.derivative(x.detach()))


@pytest.mark.parametrize("sg", ALL, ids=IDS)
def test_non_spiking_mode_returns_primitive(sg):
    sg = type(sg)(spiking=False)
    x = _points(seed=2)
    torch.testing.assert_close(sg(x), sg.primitive(x))


# the formulas as written in the docs, evaluated independently of the classes
DOC_FORMULAS = {
    "Sigmoid": lambda x, a=4.0: a * torch.sigmoid(a * x) * (1 - torch.sigmoid(a * x)),
    "ATan": lambda x, a=2.0: (a / 2) / (1 + (math.pi / 2 * a * x) ** 2),
    "PiecewiseQuadratic": lambda x, a=1.0: torch.where(x.abs() > 1 / a, 0.0 * x, a - a * a * x.abs()),
    "PiecewiseExp": lambda x, a=1.0: a / 2 * torch.exp(-a * x.abs()),
    "SoftSign": lambda x, a=2.0: a / (2 * (1 + a * x.abs()) ** 2),
    "SuperSpike": lambda x, a=100.0: 1 / (1 + a * x.abs()) ** 2,
    "Erf": lambda x, a=2.0: a / math.sqrt(math.pi) * torch.exp(-(a * x) ** 2),
    "FastSigmoid": lambda x, a=4.0: (a / 4) / (1 + a / 2 * x.abs()) ** 2,
    "PiecewiseLeakyReLU": lambda x, w=1.0, c=0.01: torch.where(x.abs() <= w, 0 * x + 1 / (2 * w), 0 * x + c),
}


@pytest.mark.parametrize("sg", ALL, ids=IDS)
def test_derivative_matches_documented_formula_and_defaults(sg):
    x = _points(seed=3)
    torch.testing.assert_close(sg.derivative(x), DOC_FORMULAS[type(sg).__name__](x))


@pytest.mark.parametrize("sg", [s for s in ALL if not isinstance(s, S.SuperSpike)],
                         ids=[i for i in IDS if i != "SuperSpike"])
def test_primitive_is_a_smoothed_step(sg):
    x = torch.cat([torch.tensor([-1e9]), torch.linspace(-60, 60, 2001), torch.tensor([1e9])]).double()
    g = sg.primitive(x)
    assert torch.all(g[1:] >= g[:-1] - 1e-12)  # monotone
    if not isinstance(sg, S.PiecewiseLeakyReLU):  # leaky tails grow without bound
        assert g[0] == pytest.approx(0.0, abs=1e-6) and g[-1] == pytest.approx(1.0, abs=1e-6)
    assert sg.primitive(torch.zeros(1, dtype=torch.float64)).item() == pytest.approx(0.5)


def test_fast_sigmoid_matches_sigmoid_at_zero_and_has_unit_area():
    for a in (1, 4, 10):
        fs, sig = S.FastSigmoid(a), S.Sigmoid(a)
        z = torch.zeros(1, dtype=torch.float64)
        assert fs.derivative(z).item() == pytest.approx(sig.derivative(z).item())
        assert fs.derivative(z).item() == pytest.approx(a / 4)
    fs = S.FastSigmoid(4)
    assert (fs.primitive(torch.tensor(1e9, dtype=torch.float64)) - fs.primitive(torch.tensor(-1e9, dtype=torch.float64))).item() == pytest.approx(1.0)


def test_ints_accepted_and_bad_parameters_rejected():
    assert S.Sigmoid(4).alpha == 4.0 and isinstance(S.Sigmoid(4).alpha, float)
    assert S.PiecewiseLeakyReLU(w=2, c=0).kernel_params() == (2.0, 0.0)
    with pytest.raises(ValueError, match="alpha"):
        S.ATan(0)
    with pytest.raises(TypeError, match="alpha"):
        S.ATan(True)
    with pytest.raises(ValueError, match="alpha"):
        S.Erf(float("nan"))
    with pytest.raises(ValueError, match="c must"):
        S.PiecewiseLeakyReLU(c=-1)
    with pytest.raises(TypeError, match="spiking"):
        S.Sigmoid(spiking=1)


def test_custom_surrogate_with_only_primitive_or_only_derivative():
    class Tanh(S.SurrogateFunction):
        def primitive(self, x):
            return (torch.tanh(2 * x) + 1) / 2

    class Triangle(S.SurrogateFunction):
        def derivative(self, x):
            return (1 - x.abs()).clamp(min=0)

    x = _points(seed=4).requires_grad_(True)
    Tanh()(x).sum().backward()
    torch.testing.assert_close(x.grad, 1 - torch.tanh(2 * x.detach()) ** 2)
    x.grad = None
    Triangle()(x).sum().backward()
    torch.testing.assert_close(x.grad, (1 - x.detach().abs()).clamp(min=0))
    with pytest.raises(NotImplementedError, match="primitive"):
        Triangle(spiking=False)(x)

    class Nothing(S.SurrogateFunction):
        pass

    with pytest.raises(NotImplementedError, match="neither"):
        Nothing().derivative(x)


def test_kernel_spec_only_for_exact_builtins():
    assert [S.kernel_spec(s)[0] for s in ALL] == list(range(len(S.BUILTINS)))
    assert S.kernel_spec(S.Sigmoid(3)) == (0, 3.0, 0.0)
    assert S.kernel_spec(S.PiecewiseLeakyReLU(2, 0.1)) == (8, 2.0, 0.1)

    class MySigmoid(S.Sigmoid):  # may change the formula: never trusted to the kernels
        def derivative(self, x):
            return super().derivative(x) * 2

    assert S.kernel_spec(MySigmoid()) is None
    assert S.kernel_spec(S.Sigmoid(spiking=False)) is None
