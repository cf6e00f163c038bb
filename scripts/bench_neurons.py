"""Benchmark area ``neurons``: LIF forward + backward over a whole sequence.

Cases (``[T, N, F]`` float input, loss = sum of the output spikes, time = forward + backward):

* CPU, 2 threads (``torch.set_num_threads(2)``; our numba kernels follow it), float32,
  ``[16, 32, 8192]`` and ``[64, 32, 8192]``: ``neurodata`` (``snncore.neuron.LIFNode(tau=2,
  step_mode='m')``, fused CPU kernel), SpikingJelly ``LIFNode(step_mode='m')`` (same dynamics and
  surrogate), snntorch ``Leaky(beta=0.5)`` stepped over T, norse ``LIF()`` (sequence module; it also
  integrates a synaptic current, so it does more work per step).
* CUDA (when present), ``[16, 32, 8192]`` in float32 and float16: ours (Triton), SpikingJelly's
  Triton path, and a plain PyTorch loop (our reference backend: the same equations step by step).

Allocator: CPU rows use glibc malloc as configured by the environment (``MALLOC_*`` variables are
listed in the note when set); CUDA rows use PyTorch's caching allocator (``PYTORCH_CUDA_ALLOC_CONF``
listed when set). ``--quick`` shrinks F to 1024 and the repeats to 3.
"""
from __future__ import annotations

import os

import torch

from _benchutil import median_time

OURS = "neurodata"


def _alloc_note(device: str) -> str:
    if device == "cpu":
        env = [f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_")]
        return "glibc malloc " + (", ".join(env) if env else "defaults")
    conf = os.environ.get("PYTORCH_CUDA_ALLOC_CONF")
    return "torch caching allocator" + (f" {conf}" if conf else " defaults")


def _ours(device, backend=None):
    from snncore.neuron import LIFNode

    node = LIFNode(tau=2, step_mode="m").to(device)

    def step(x):
        node.reset()
        if backend is None:
            return node(x)
        old = os.environ.get("SNNCORE_BACKEND")
        os.environ["SNNCORE_BACKEND"] = backend
        try:
            return node(x)
        finally:
            if old is None:
                del os.environ["SNNCORE_BACKEND"]
            else:
                os.environ["SNNCORE_BACKEND"] = old
    return step


def _spikingjelly(device):
    from spikingjelly.activation_based import neuron

    node = neuron.LIFNode(tau=2.0, step_mode="m").to(device)

    def step(x):
        node.reset()
        return node(x)
    return step


def _snntorch(device):
    import snntorch

    node = snntorch.Leaky(beta=0.5).to(device)

    def step(x):
        mem = node.init_leaky()
        out = []
        for xt in x:
            spk, mem = node(xt, mem)
            out.append(spk)
        return torch.stack(out)
    return step


def _norse(device):
    import norse.torch as norse

    node = norse.LIF().to(device)

    def step(x):
        return node(x)[0]
    return step


def _time(make, shape, dtype, device, repeats):
    step = make(device)
    x = (torch.randn(shape, device=device) * 0.5 + 0.6).to(dtype).requires_grad_(True)

    def once():
        x.grad = None
        step(x).sum().backward()
        if device == "cuda":
            torch.cuda.synchronize()
    return median_time(once, repeats=repeats, warmup=2)


def _row(case, impl, make, shape, dtype, device, repeats, note):
    try:
        med = _time(make, shape, dtype, device, repeats)
    except ImportError as e:
        return dict(case=case, impl=impl, median_s=None, note=f"not installed ({e.name})")
    except Exception as e:  # a peer failing must not hide the other rows
        return dict(case=case, impl=impl, median_s=None, note=f"failed: {type(e).__name__}: {e}")
    numel = 1
    for s in shape:
        numel *= s
    return dict(case=case, impl=impl, median_s=med, rate=numel / med / 1e6, rate_unit="Mneuron-steps/s",
                note=note)


def run(args) -> list[dict]:
    repeats = args.repeats or (3 if args.quick else 10)
    feat = 1024 if args.quick else 8192
    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        note = f"2 threads, {_alloc_note('cpu')}"
        for T in (16, 64):
            shape = (T, 32, feat)
            case = f"LIF fwd+bwd [{T},32,{feat}] fp32 cpu"
            for impl, make, extra in ((OURS, _ours, ""), ("spikingjelly", _spikingjelly, ""),
                                      ("snntorch", _snntorch, ", Leaky loop"),
                                      ("norse", _norse, ", LIF with synaptic current")):
                rows.append(_row(case, impl, make, shape, torch.float32, "cpu", repeats, note + extra))
    finally:
        torch.set_num_threads(threads)
    if torch.cuda.is_available():
        note = _alloc_note("cuda")
        for dtype, name in ((torch.float32, "fp32"), (torch.float16, "fp16")):
            shape = (16, 32, feat)
            case = f"LIF fwd+bwd [16,32,{feat}] {name} cuda"
            rows.append(_row(case, OURS, _ours, shape, dtype, "cuda", repeats, note + ", triton"))
            rows.append(_row(case, "spikingjelly", _spikingjelly, shape, dtype, "cuda", repeats,
                             note + ", its triton path"))
            rows.append(_row(case, "torch", lambda d: _ours(d, "reference"), shape, dtype, "cuda",
                             repeats, note + ", plain PyTorch step loop"))
    from bench_neurons_sparse import sparse_cases

    return rows + sparse_cases(args)
