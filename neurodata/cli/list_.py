"""``neurodata list``: the registry."""
from __future__ import annotations

import click


@click.command("list")
def command():
    """List every dataset with its download size, licence and download mode."""
    from ..datasets import available, get

    rows = available()
    sizes = [get(r["name"]).recipe.size_text(source=False) for r in rows]
    wn = max(len(r["name"]) for r in rows)
    wt = max(len(r["title"]) for r in rows)
    ws = max(4, *(len(s) for s in sizes))
    click.echo(f"{'name':<{wn}}  {'title':<{wt}}  {'download':<9} {'size':>{ws}} {'classes':>7}  licence")
    for r, size in zip(rows, sizes):
        licence = r["licence"] if len(r["licence"]) <= 40 else r["licence"][:39] + "…"
        click.echo(f"{r['name']:<{wn}}  {r['title']:<{wt}}  {r['download']:<9} {size:>{ws}} "
                   f"{r['classes']:>7}  {licence}")
    click.echo("size: exact when every file's byte count is pinned in the recipe; '≈' = approximate size "
               "published by the host or paper (source in docs/datasets.md); unknown = not published")
