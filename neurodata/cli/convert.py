"""``neurodata convert IN OUT --format F``: re-encode an event file."""
from __future__ import annotations

import click

from . import fail


@click.command("convert")
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", required=True,
              help="Output format: nmnist, aedat2, aedat31, aedat4, dat, evt2, evt3.")
@click.option("--in-format", default=None, help="Input format; detected when omitted.")
@click.option("--sensor-size", default=None, metavar="W,H[,P]",
              help="Sensor size for the output header (taken from the input when stored there).")
@click.option("--force", is_flag=True, help="Replace DST when it exists (never SRC itself).")
def command(src, dst, fmt, in_format, sensor_size, force):
    """Read SRC and write its events to DST in another format. An existing DST is kept unless
    --force is given."""
    import os

    from .. import FormatError
    from ..formats import inspect, read, write

    if os.path.exists(dst):
        if os.path.samefile(src, dst):
            fail(f"{dst} is the input file: write the conversion to another path", 2)
        if not force:
            fail(f"{dst} exists: pass --force to replace it", 2)
    try:
        size = None
        if sensor_size:
            try:
                parts = [int(v) for v in sensor_size.split(",")]
            except ValueError:
                parts = []
            if len(parts) not in (2, 3):
                fail(f"--sensor-size takes W,H or W,H,P (integers), got {sensor_size!r}", 2)
            size = tuple(parts) if len(parts) == 3 else (parts[0], parts[1], 2)
        else:
            size = inspect(src, format=in_format).sensor_size
        events = read(src, format=in_format)
        write(dst, events, fmt, sensor_size=size)
    except (FormatError, ValueError) as e:
        fail(str(e), 2)
    click.echo(f"wrote {events.size} events to {dst} ({fmt})")
