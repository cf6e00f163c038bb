import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from snncore import encoding as enc
from snncore.functional import reset_net


# ---------------------------------------------------------------- Poisson

def test_poisson_rate_equals_intensity():
    x = torch.linspace(0, 1, 11)
    s = enc.poisson_encode(x, 20000, rng=0)
    assert s.shape == (20000, 11) and s.dtype == x.dtype
    rate = s.mean(0)
    # binomial standard error <= 0.5 / sqrt(20000) = 0.0035; allow 5 sigma
    assert torch.allclose(rate, x, atol=0.018)
    assert rate[0] == 0 and rate[-1] == 1


def test_poisson_seeded_reproducible_and_generator_accepted():
    x = torch.rand(4, 5)
    a = enc.poisson_encode(x, 8, rng=7)
    assert torch.equal(a, enc.poisson_encode(x, 8, rng=7))
    assert not torch.equal(a, enc.poisson_encode(x, 8, rng=8))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(enc.poisson_encode(x, 8, rng=g1), enc.poisson_encode(x, 8, rng=g2))
    m1, m2 = enc.PoissonEncoder(rng=5), enc.PoissonEncoder(rng=5)
    seq1 = torch.stack([m1(x) for _ in range(6)])
    seq2 = torch.stack([m2(x) for _ in range(6)])
    assert torch.equal(seq1, seq2)
    assert not all(torch.equal(seq1[0], seq1[t]) for t in range(1, 6))  # fresh draws per call
    # module and function draw the same stream for the same seed
    assert torch.equal(enc.PoissonEncoder(rng=7, step_mode="m")(x.expand(8, 4, 5)), a)


@pytest.mark.parametrize("bad", [torch.tensor([1.5]), torch.tensor([-0.1]), torch.tensor([float("nan")])])
def test_poisson_rejects_out_of_range(bad):
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        enc.poisson_encode(bad, 3)
    with pytest.raises(TypeError, match="floating"):
        enc.poisson_encode(torch.tensor([1]), 3)
    with pytest.raises(TypeError, match="rng"):
        enc.PoissonEncoder(rng=1.5)
    with pytest.raises(ValueError, match="T must"):
        enc.poisson_encode(torch.tensor([0.5]), 0)


def test_poisson_empty():
    assert enc.poisson_encode(torch.zeros(0), 3).shape == (3, 0)


# ---------------------------------------------------------------- Latency

def _latency_reference(x, T, method):
    out = np.zeros((T,) + x.shape)
    for i, v in np.ndenumerate(x.astype(np.float64)):
        if method == "linear":
            tf = (T - 1) * (1 - v)
        else:
            alpha = math.exp(T - 1) - 1
            tf = (T - 1) - math.log(alpha * v + 1)
        tf = min(max(int(np.round(tf)), 0), T - 1)  # np.round: ties to even, like torch.round
        out[(tf,) + i] = 1
    return out


@settings(max_examples=60, deadline=None)
@given(x=st.lists(st.floats(0, 1, width=32), min_size=1, max_size=20),
       T=st.integers(1, 40), method=st.sampled_from(["linear", "log"]))
def test_latency_matches_reference(x, T, method):
    xt = torch.tensor(x, dtype=torch.float32)
    s = enc.latency_encode(xt, T, method=method)
    ref = _latency_reference(xt.numpy(), T, method)
    assert np.array_equal(s.numpy(), ref)
    assert torch.equal(s.sum(0), torch.ones(len(x)))  # exactly one spike each


def test_latency_extremes_large_T_and_order():
    x = torch.tensor([1.0, 0.75, 0.5, 0.0])
    for method in ("linear", "log"):
        tf = enc.latency_encode(x, 200, method=method).argmax(0)  # e^199 would overflow float32/64 naive forms
        assert tf[0] == 0 and tf[-1] == 199
        assert bool((tf[1:] >= tf[:-1]).all())  # brighter fires earlier
    assert enc.latency_encode(x, 1).shape == (1, 4)


def test_latency_module_single_step_equals_multi_step_and_reset():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 3)
    for method in ("linear", "log"):
        m = enc.LatencyEncoder(6, method=method)
        loop = torch.stack([m(x) for _ in range(6)])
        assert torch.equal(loop, enc.LatencyEncoder(6, method=method, step_mode="m")(x))
        assert m.t == 0  # wrapped around
        m(x)
        reset_net(m)
        assert m.t == 0
    with pytest.raises(ValueError, match="method"):
        enc.LatencyEncoder(4, method="exp")


# ---------------------------------------------------------------- Weighted phase

@settings(max_examples=80, deadline=None)
@given(K=st.integers(1, 12), data=st.data())
def test_weighted_phase_bits_reconstruct_truncated_value(K, data):
    q = data.draw(st.lists(st.integers(0, 2 ** K - 1), min_size=1, max_size=10))
    frac = data.draw(st.floats(0, 0.999))
    x = torch.tensor([(v + frac) / 2 ** K for v in q], dtype=torch.float64)
    x = x.clamp(max=1 - 2.0 ** -K)
    s = enc.weighted_phase_encode(x, K)
    w = torch.tensor([2.0 ** -(k + 1) for k in range(K)], dtype=torch.float64)
    recon = (s * w.view(K, 1)).sum(0)
    assert torch.equal(recon, torch.floor(x * 2 ** K) / 2 ** K)
    m = enc.WeightedPhaseEncoder(K)
    assert torch.equal(torch.stack([m(x) for _ in range(K)]), s)
    assert torch.equal(m(x), s[0])  # period K


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("K", [1, 11, 24, 32])
def test_weighted_phase_every_dtype_and_K_against_integer_digits(dtype, K):
    """The bits come from x * 2^K in x's own precision (float32 for the half types), not float64:
    equal to the binary digits of the exact value, for K up to 32."""
    x = (torch.rand(300, generator=torch.Generator().manual_seed(K)) * (1 - 2.0 ** -K)).to(dtype)
    x = x[x.double() <= 1 - 2.0 ** -K]  # rounding to the dtype may cross the top
    s = enc.weighted_phase_encode(x, K)
    assert s.dtype == dtype and s.shape == (K, x.numel())
    for j, v in enumerate(x.double().tolist()):  # exact: a float is a dyadic rational
        q = int(v * 2 ** K)  # v * 2^K is exact in float64 for these, int() floors a non-negative
        assert s[:, j].tolist() == [float((q >> (K - 1 - k)) & 1) for k in range(K)]
    with pytest.raises(ValueError, match="must lie in"):
        enc.weighted_phase_encode(torch.tensor([float("nan")], dtype=dtype), K)


def test_weighted_phase_known_value_and_range():
    s = enc.weighted_phase_encode(torch.tensor([0.625]), 3)  # 0.101b
    assert s.flatten().tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match=r"1 - 2\^-3"):
        enc.weighted_phase_encode(torch.tensor([0.9]), 3)
    with pytest.raises(ValueError, match="K"):
        enc.WeightedPhaseEncoder(0)


# ---------------------------------------------------------------- Delta

def _delta_reference(x, on, off, initial):
    T = x.shape[0]
    out = np.zeros_like(x)
    prev = np.zeros_like(x[0]) if initial == "zero" else x[0]
    for t in range(T):
        d = x[t] - prev
        out[t] = (d >= on).astype(x.dtype) - (d <= -off).astype(x.dtype)
        prev = x[t]
    return out


@pytest.mark.parametrize("initial", ["zero", "first"])
@pytest.mark.parametrize("split", [False, True])
def test_delta_matches_reference_and_single_step(initial, split):
    torch.manual_seed(0)
    x = torch.randn(9, 2, 3, 4).cumsum(0)
    y = enc.delta_encode(x, 0.5, 0.8, initial=initial, split_polarity=split)
    ref = torch.from_numpy(_delta_reference(x.numpy(), 0.5, 0.8, initial))
    if split:
        assert y.shape == (9, 2, 2, 3, 4)
        assert torch.equal(y[:, :, 1], (ref > 0).float()) and torch.equal(y[:, :, 0], (ref < 0).float())
    else:
        assert torch.equal(y, ref)
    m = enc.DeltaEncoder(0.5, 0.8, initial=initial, split_polarity=split)
    assert torch.equal(torch.stack([m(x[t]) for t in range(9)]), y)
    assert torch.equal(enc.DeltaEncoder(0.5, 0.8, initial=initial, split_polarity=split, step_mode="m")(x), y)
    if initial == "first":
        assert not y[0].any()


def test_delta_threshold_is_inclusive_and_state_resets():
    x = torch.tensor([[0.0], [1.0], [1.0], [0.0]])
    assert enc.delta_encode(x, 1.0).flatten().tolist() == [0, 1, 0, -1]
    m = enc.DeltaEncoder(1.0)
    m(torch.zeros(1))
    with pytest.raises(RuntimeError, match="reset_net"):
        m(torch.zeros(2))
    reset_net(m)
    assert m.prev is None
    with pytest.raises(ValueError, match="threshold_on"):
        enc.DeltaEncoder(0)
    with pytest.raises(ValueError, match="initial"):
        enc.delta_encode(x, 1.0, initial="mean")


# ---------------------------------------------------------------- Population

def test_population_centres_width_and_peak():
    m, low, high, beta = 6, -1.0, 3.0, 1.5
    step = (high - low) / (m - 2)
    centers = [low + (2 * i - 3) / 2 * step for i in range(1, m + 1)]
    sigma = step / beta
    x = torch.tensor(centers + [0.3], dtype=torch.float64)
    r = enc.population_encode(x, m, low, high, beta=beta)
    assert r.shape == (m + 1, m)
    assert torch.allclose(r[:m].diagonal(), torch.ones(m, dtype=torch.float64))  # peak 1 at each centre
    expect = torch.tensor([math.exp(-(0.3 - c) ** 2 / (2 * sigma ** 2)) for c in centers], dtype=torch.float64)
    assert torch.allclose(r[m], expect)
    mod = enc.PopulationEncoder(m, low, high, beta=beta, step_mode="m")
    assert torch.equal(mod(x.view(1, -1)), r.view(1, m + 1, m))
    with pytest.raises(ValueError, match="n_neurons"):
        enc.PopulationEncoder(2, 0, 1)
    with pytest.raises(ValueError, match="low < high"):
        enc.population_encode(x, 4, 1.0, 1.0)
