#!/usr/bin/env python
"""Plot every built-in surrogate (primitive and derivative, default parameters) to
``docs/img/surrogates.png``: ``python scripts/plot_surrogates.py [--out FILE]`` (needs matplotlib)."""
from __future__ import annotations

import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from snncore import surrogate as S  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "img", "surrogates.png"))
    args = ap.parse_args(argv)
    x = torch.linspace(-2, 2, 801, dtype=torch.float64)
    fig, axes = plt.subplots(3, 3, figsize=(11, 9), sharex=True)
    for ax, cls in zip(axes.flat, S.BUILTINS):
        sg = cls()
        ax.plot(x, (x >= 0).double(), color="0.7", lw=1, label="Heaviside (forward)")
        ax.plot(x, sg.primitive(x), lw=1.6, label="primitive g(x)")
        ax.plot(x, sg.derivative(x), lw=1.6, label="derivative g'(x) (backward)")
        ax.set_title(repr(sg).replace(", spiking=True", ""), fontsize=10)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8, loc="upper left")
    for ax in axes[-1]:
        ax.set_xlabel("x = H - V_th")
    fig.suptitle("snncore.surrogate built-ins (default parameters)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
