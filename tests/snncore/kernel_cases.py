"""Shared cases and the comparison against the reference for the fused-kernel tests (CPU, Triton)."""
import itertools

import torch

from snncore import surrogate as S
from snncore.functional import dynamics as D
from snncore.kernels import multi_step

KINDS = ("if", "lif", "plif")


def neuron_configs():
    """Every (kind, hard reset, detach_reset, decay_input) the kernels distinguish (20 configs)."""
    out = []
    for kind, hard, detach, decay in itertools.product(KINDS, (True, False), (False, True),
                                                       (True, False)):
        if kind == "if" and not decay:
            continue
        out.append((kind, hard, detach, decay))
    return out


def config_id(cfg):
    kind, hard, detach, decay = cfg
    return f"{kind}-{'hard' if hard else 'soft'}-det{int(detach)}-dec{int(decay)}"


def make_params(kind, hard, detach, decay):
    v_reset = -0.1 if hard else None
    if kind == "if":
        return D.IFParameters(v_threshold=1.0, v_reset=v_reset, detach_reset=detach), None
    if kind == "lif":
        return D.LIFParameters(tau=3, decay_input=decay, v_threshold=0.8, v_reset=v_reset,
                               detach_reset=detach), None
    return (D.PLIFParameters(decay_input=decay, v_threshold=0.8, v_reset=v_reset, detach_reset=detach),
            torch.tensor(0.35))


TOL = {torch.float32: dict(rtol=2e-4, atol=2e-5), torch.float16: dict(rtol=2e-3, atol=2e-3),
       torch.bfloat16: dict(rtol=2e-2, atol=2e-2)}


def run(backend, x, v0, params, sg, k, store_v_seq, gs, gv):
    """Forward + backward of one backend; returns outputs and the input/state/k gradients."""
    x = x.detach().clone().requires_grad_(True)
    v0 = v0.detach().clone().requires_grad_(True)
    k = None if k is None else k.detach().clone().requires_grad_(True)
    spikes, v_last, v_seq = multi_step(x, v0, params, sg, k=k, store_v_seq=store_v_seq,
                                       backend=backend)
    loss = (spikes.float() * gs).sum() + (v_last * gv).sum()
    if store_v_seq:
        loss = loss + (v_seq * v_seq).sum() * 0.1
    loss.backward()
    return dict(spikes=spikes, v_last=v_last, v_seq=v_seq, gx=x.grad, gv0=v0.grad,
                gk=None if k is None else k.grad)


def compare_with_reference(backend, cfg, sg, dtype, T, *, M=(3, 29), device="cpu", store_v_seq=True,
                           exact_forward=True, seed=0, transpose=False):
    """Assert ``backend`` equals the reference: spikes exactly, potentials and gradients closely."""
    params, k = make_params(*cfg)
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(T, *M, generator=g) * 0.9 + 0.45)
    if transpose:  # non-contiguous input
        x = x.transpose(1, 2).contiguous().transpose(1, 2)
    x = x.to(device=device, dtype=dtype)
    v0 = (torch.randn(*M, generator=g) * 0.3).to(device)
    gs = torch.randn(T, *M, generator=g).to(device)
    gv = torch.randn(*M, generator=g).to(device)
    k = None if k is None else k.to(device)
    ref = run("reference", x, v0, params, sg, k, store_v_seq, gs, gv)
    got = run(backend, x, v0, params, sg, k, store_v_seq, gs, gv)
    assert got["spikes"].dtype == dtype and got["v_last"].dtype == torch.float32
    if exact_forward:
        assert torch.equal(got["spikes"], ref["spikes"])
        assert torch.equal(got["v_last"], ref["v_last"])
        if store_v_seq:
            assert torch.equal(got["v_seq"], ref["v_seq"])
    else:
        assert (got["spikes"] != ref["spikes"]).float().mean() < 1e-3
        torch.testing.assert_close(got["v_last"], ref["v_last"], rtol=1e-5, atol=1e-5)
    tol = TOL[dtype]
    torch.testing.assert_close(got["gx"].float(), ref["gx"].float(), **tol)
    torch.testing.assert_close(got["gv0"], ref["gv0"], **tol)
    if k is not None:
        torch.testing.assert_close(got["gk"], ref["gk"], rtol=max(tol["rtol"], 1e-4), atol=tol["atol"])
    return ref, got


SURROGATES = [cls() for cls in S.BUILTINS] + [S.Sigmoid(2), S.PiecewiseLeakyReLU(0.5, 0.1)]
SURROGATE_IDS = [repr(s) for s in SURROGATES]
