#!/usr/bin/env python
"""Draw docs/img/transforms.png: the representations of one saccade-digits sample.

    python scripts/plot_transforms.py [--out docs/img/transforms.png]
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "docs", "img", "transforms.png"))
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neurodata import transforms as T
    from neurodata.saccade_digits import SENSOR_SIZE, render_sample

    ev = render_sample(5, 3)
    first = ev[ev["t"] < 100_000]
    panels = []
    frames = T.ToFrame(SENSOR_SIZE, n_time_bins=3)(ev)
    for k in range(3):
        panels.append((f"ToFrame n_time_bins=3, bin {k}\n(ON − OFF)", frames[k, 1] - frames[k, 0], "RdBu_r"))
    panels.append(("ToEventCountImage\n(ON + OFF, first saccade)", T.ToEventCountImage(SENSOR_SIZE)(first).sum(0), "gray"))
    vox = T.ToVoxelGrid(SENSOR_SIZE, n_time_bins=5)(first)
    panels.append(("ToVoxelGrid B=5, bin 2\n(signed, bilinear in time)", vox[2, 0], "RdBu_r"))
    ts = T.ToTimeSurface(SENSOR_SIZE, dt=100_000, tau=20_000)(first)
    panels.append(("ToTimeSurface tau=20 ms\n(ON, end of first saccade)", ts[0, 1], "magma"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.8))
    for ax, (title, img, cmap) in zip(axes, panels):
        lim = np.abs(img).max() or 1
        kw = dict(vmin=-lim, vmax=lim) if cmap == "RdBu_r" else {}
        ax.imshow(img, cmap=cmap, interpolation="nearest", **kw)
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
