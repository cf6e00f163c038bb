"""Triton kernels against the pure-torch reference: the gradient-equivalence matrix.

Runs on CUDA when a GPU is present, otherwise on CPU through Triton's interpreter, which must be
switched on before triton is imported, so run this file in its own process:

    TRITON_INTERPRET=1 python -m pytest tests/snncore/test_triton_kernels.py -q

Without CUDA and without the variable (or without triton) the tests skip. Matrix: every neuron
config (IF/LIF/PLIF x hard/soft reset x detach_reset x decay_input) x dtype (fp32/fp16/bf16) x
T in {1, 6} with the surrogates rotated through, plus every surrogate x neuron kind x dtype.
"""
import os

import pytest
import torch

triton = pytest.importorskip("triton", reason="triton is not installed")

from snncore import surrogate as S  # noqa: E402
from snncore.functional import dynamics as D  # noqa: E402
from snncore.kernels import KernelFallbackWarning, multi_step  # noqa: E402
from tests.snncore.kernel_cases import (SURROGATE_IDS, SURROGATES, compare_with_reference,  # noqa: E402
                                        config_id, neuron_configs)

INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
if INTERPRETED:
    from triton.runtime.interpreter import InterpretedFunction

    from snncore.kernels import triton as triton_backend

    if not isinstance(triton_backend._lif_forward_kernel, InterpretedFunction):
        pytest.skip("TRITON_INTERPRET=1 was set after triton was imported; run this file in its own "
                    "process", allow_module_level=True)
    DEVICE = "cpu"
elif torch.cuda.is_available():
    DEVICE = "cuda"
else:
    pytest.skip("no CUDA device; run with TRITON_INTERPRET=1 (set before triton is imported) to "
                "test the Triton kernels on CPU", allow_module_level=True)

# the interpreter computes in numpy float32 like torch on CPU: bit-identical forward; compiled GPU
# code may contract a*b+c into FMA, so there only (almost) all spikes must agree
EXACT = INTERPRETED
CONFIGS = neuron_configs()
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
MATRIX = [(cfg, dtype, T) for cfg in CONFIGS for dtype in DTYPES for T in (1, 6)]


@pytest.mark.parametrize("cfg,dtype,T", MATRIX,
                         ids=[f"{config_id(c)}-{str(d)[6:]}-T{T}" for c, d, T in MATRIX])
def test_triton_matrix(cfg, dtype, T):
    sg = SURROGATES[MATRIX.index((cfg, dtype, T)) % len(SURROGATES)]
    compare_with_reference("triton", cfg, sg, dtype, T, device=DEVICE, exact_forward=EXACT,
                           store_v_seq=T == 6, transpose=T == 1)


@pytest.mark.parametrize("kind", ["if", "lif", "plif"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("sg", SURROGATES, ids=SURROGATE_IDS)
def test_triton_every_surrogate(kind, dtype, sg):
    compare_with_reference("triton", (kind, True, False, True), sg, dtype, 4, device=DEVICE,
                           exact_forward=EXACT)


@pytest.mark.parametrize("kind", ["lif", "plif"])
def test_triton_several_programs(kind):
    # 600 neurons = 3 programs of 256: masking at the tail and the per-program dL/dk partial sums
    compare_with_reference("triton", (kind, False, False, True), S.ATan(), torch.float32, 5,
                           M=(2, 300), device=DEVICE, exact_forward=EXACT, store_v_seq=False)


def test_triton_custom_surrogate_falls_back_with_warning():
    class Triangle(S.SurrogateFunction):
        def derivative(self, x):
            return (1 - x.abs()).clamp(min=0)

    x = torch.rand(4, 6, device=DEVICE, requires_grad=True) * 2
    v = torch.zeros(6, device=DEVICE)
    with pytest.warns(KernelFallbackWarning, match="fused triton kernel cannot run it"):
        s, _, _ = multi_step(x, v, D.LIFParameters(), Triangle(), backend="triton")
    assert torch.equal(s, D.multi_step_reference(x, v, D.LIFParameters(), Triangle())[0])


def test_triton_module_multi_step_matches_single_step(monkeypatch):
    from snncore.neuron import LIFNode

    monkeypatch.setenv("SNNCORE_BACKEND", "triton")
    torch.manual_seed(0)
    x = torch.randn(7, 3, 40, device=DEVICE) + 0.5
    m, s = LIFNode(tau=2, step_mode="m"), LIFNode(tau=2, step_mode="s")
    ym = m(x)
    ys = torch.stack([s(xt) for xt in x])
    if EXACT:
        assert torch.equal(ym, ys) and torch.equal(m.v, s.v)
    else:
        assert (ym != ys).float().mean() < 1e-3
