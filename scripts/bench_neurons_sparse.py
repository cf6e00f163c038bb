"""Benchmark case for ``snncore.sparse.SpikeLinear`` against the dense ``torch.nn.Linear``.

``sparse_cases(args)`` returns rows in the ``scripts/bench.py`` format (``bench_neurons.py`` adds them
to the ``neurons`` area). Input: Bernoulli spikes ``(T*N, in_features)`` at several densities
(fraction of ones) into a large layer; three workloads per density: forward only (inference),
forward + backward with the weight gradient only (first layer: the input needs no gradient), and
forward + backward with input and weight gradients (a hidden layer; the input gradient ``g W`` is a
dense product in both implementations). Run alone: ``python scripts/bench_neurons_sparse.py [--quick]``.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _benchutil import median_time  # noqa: E402

DENSE = "torch nn.Linear (dense)"


def _workload(layer, x, kind):
    if kind == "fwd":
        def run():
            with torch.no_grad():
                layer(x)
        return run

    def run():
        xin = x.requires_grad_(kind == "fwd+bwd (x, W grads)")
        layer.zero_grad(set_to_none=True)
        layer(xin).sum().backward()
        x.requires_grad_(False)
        x.grad = None
    return run


def sparse_cases(args) -> list[dict]:
    from snncore.sparse import SpikeLinear

    quick = getattr(args, "quick", False)
    repeats = getattr(args, "repeats", None) or (2 if quick else 5)
    T, N, n_in, n_out = (4, 16, 1024, 1024) if quick else (16, 32, 4096, 4096)
    densities = (0.01, 0.05) if quick else (0.01, 0.02, 0.05, 0.10)
    gen = torch.Generator().manual_seed(0)
    dense = torch.nn.Linear(n_in, n_out)
    ours = SpikeLinear.from_linear(dense, max_density=1.0)  # always the sparse path: measure it
    rows = []
    for d in densities:
        x = (torch.rand(T * N, n_in, generator=gen) < d).float()
        for kind in ("fwd", "fwd+bwd (W grad)", "fwd+bwd (x, W grads)"):
            case = f"spike linear {T * N}x{n_in}->{n_out} density {d:.0%} {kind}"
            note = f"torch threads {torch.get_num_threads()}"
            for impl, layer in (("neurodata", ours), (DENSE, dense)):
                t = median_time(_workload(layer, x, kind), repeats=repeats)
                rows.append({"case": case, "impl": impl, "median_s": t,
                             "rate": T * N / t, "rate_unit": "rows/s", "note": note})
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=None)
    a = ap.parse_args()
    from bench import format_table
    print(format_table(sparse_cases(a)))
