"""``neurodata inspect FILE``: what a file holds, from its header and a full decode."""
from __future__ import annotations

import click
import numpy as np

from . import fail


@click.command("inspect")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", default=None, help="Format name; detected from the content when omitted.")
@click.option("--no-decode", is_flag=True, help="Only read the header (fast for huge files).")
def command(path, fmt, no_decode):
    """Describe PATH: format, sensor size, event count, time span, polarity balance and header."""
    from .. import FormatError
    from ..formats import inspect, read

    try:
        info = inspect(path, format=fmt)
        click.echo(f"file:        {path}")
        click.echo(f"format:      {info.format}")
        click.echo(f"sensor_size: {info.sensor_size if info.sensor_size else 'not stored in the file'}")
        if not no_decode:
            ev = read(path, format=info.format)
            click.echo(f"events:      {ev.size}")
            if ev.size:
                t0, t1 = int(ev["t"].min()), int(ev["t"].max())
                order = "" if bool(np.all(ev["t"][1:] >= ev["t"][:-1])) else ", NOT sorted by t"
                click.echo(f"time:        {t0} .. {t1} µs ({(t1 - t0) / 1e6:.3f} s{order})")
                click.echo(f"x range:     {ev['x'].min()} .. {ev['x'].max()}")
                click.echo(f"y range:     {ev['y'].min()} .. {ev['y'].max()}")
                on = int(np.count_nonzero(ev["p"]))
                click.echo(f"polarity:    {on} ON, {ev.size - on} OFF")
        elif info.event_count is not None:
            click.echo(f"events:      {info.event_count}")
        for k, v in info.metadata.items():
            click.echo(f"  {k}: {v}")
    except FormatError as e:
        fail(str(e), 2)
