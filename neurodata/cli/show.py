"""``neurodata show FILE|NAME:INDEX --out F.png|F.gif``."""
from __future__ import annotations

import click
import numpy as np

from . import fail


def _load_events(target, root, verify=True, split="train"):
    """Events and sensor size of a file path or a ``NAME:INDEX`` dataset sample."""
    import os

    if os.path.exists(target):
        from ..formats import inspect, read

        events = read(target)
        size = inspect(target).sensor_size
        if size is None:
            size = (int(events["x"].max()) + 1 if events.size else 1, int(events["y"].max()) + 1 if events.size else 1, 2)
        return events, tuple(size), os.path.basename(target)
    if ":" not in target:
        fail(f"{target!r} is neither a file nor NAME:INDEX (e.g. nmnist:0)", 2)
    name, index = target.rsplit(":", 1)
    try:
        i = int(index)
    except ValueError:
        fail(f"INDEX in {target!r} must be an integer", 2)
    from ..datasets import load

    ds = load(name, split=split, root=root, download=False, verify=verify)
    if not -len(ds) <= i < len(ds):
        fail(f"{name}'s {split} split has {len(ds)} samples: index {i} is out of range", 2)
    events, label = ds[i]
    return events, ds.sensor_size, f"{name}[{index}] label {label} ({ds.classes[label]})"


def render(events, sensor_size, title, out, n_frames=1):
    """Write a PNG (one accumulated image) or GIF (``n_frames`` time bins): ON red, OFF blue."""
    from ..transforms import ToFrame

    W, H, _ = sensor_size
    frames = ToFrame((W, H, 2), n_time_bins=n_frames, dtype=np.float32)(events)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def rgb(f):
        img = np.zeros((H, W, 3), np.float32)
        scale = max(float(f.max()), 1.0)
        img[..., 0] = f[1] / scale
        img[..., 2] = f[0] / scale
        return img

    fig, ax = plt.subplots(figsize=(4, max(4 * H / W, 1)))  # >= 1 inch: a 1-pixel-high audio "sensor" too
    ax.set_axis_off()
    ax.set_title(title, fontsize=8)
    im = ax.imshow(rgb(frames[0]), interpolation="nearest", aspect="auto" if 4 * H < W else "equal")
    if str(out).lower().endswith(".gif"):
        from matplotlib.animation import FuncAnimation

        anim = FuncAnimation(fig, lambda k: [im.set_data(rgb(frames[k]))], frames=len(frames))
        anim.save(out, writer="pillow", fps=10)
    else:
        fig.savefig(out, dpi=150, bbox_inches="tight")
    plt.close(fig)


@click.command("show")
@click.argument("target")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output .png or .gif.")
@click.option("--bins", default=20, show_default=True, type=click.IntRange(min=1), help="Time bins of a GIF.")
@click.option("--root", default=None, help="Cache root for NAME:INDEX.")
@click.option("--split", default="train", show_default=True, help="Split of NAME:INDEX.")
@click.option("--no-verify", is_flag=True, help="NAME:INDEX fetched with --no-verify (its cache is kept apart).")
def command(target, out, bins, root, split, no_verify):
    """Render TARGET (an event file, or NAME:INDEX of a cached dataset) to OUT."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        fail("`neurodata show` needs matplotlib: pip install 'neurodata[viz]'", 1)
    if not out.lower().endswith((".png", ".gif")):
        fail("--out must end in .png or .gif", 2)
    events, size, title = _load_events(target, root, verify=not no_verify, split=split)
    render(events, size, title, out, n_frames=bins if out.lower().endswith(".gif") else 1)
    click.echo(f"wrote {out}")
