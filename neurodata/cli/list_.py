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
    wn = max(len(r["name"]) for r in rows)
    wt = max(len(r["title"]) for r in rows)
    click.echo(f"{'name':<{wn}}  {'title':<{wt}}  {'download':<9} {'size':>9} {'classes':>7}  licence")
    for r in rows:
        licence = r["licence"] if len(r["licence"]) <= 40 else r["licence"][:39] + "…"
        click.echo(f"{r['name']:<{wn}}  {r['title']:<{wt}}  {r['download']:<9} {human(r['size_bytes']):>9} "
                   f"{r['classes']:>7}  {licence}")
    click.echo("size ? = not pinned in the recipe; `neurodata info NAME` shows files, checksums and instructions")
