"""``neurodata list``: the registry."""
from __future__ import annotations

import click


def human(n) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


@click.command("list")
def command():
    """List every dataset with its download size, licence and download mode."""
    from ..datasets import available

    rows = available()
    click.echo(f"{'name':<16} {'title':<28} {'download':<10} {'size':>9} {'classes':>7}  licence")
    for r in rows:
        click.echo(f"{r['name']:<16} {r['title']:<28} {r['download']:<10} {human(r['size_bytes']):>9} "
                   f"{r['classes']:>7}  {r['licence']}")
