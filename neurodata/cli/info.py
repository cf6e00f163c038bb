"""``neurodata info NAME``: a dataset's recipe and local state."""
from __future__ import annotations

import click

from . import fail


@click.command("info")
@click.argument("name")
@click.option("--root", default=None, help="Cache root (default $NEURODATA_HOME or the user cache dir).")
def command(name, root):
    """Show NAME's source, checksums, classes, splits, orientation, citation and what is on disk."""
    from ..cache import cache_root
    from ..datasets import get

    try:
        recipe = get(name).recipe
    except ValueError as e:
        fail(str(e), 2)
    folder = cache_root(root) / recipe.name
    click.echo(f"{recipe.title} ({recipe.name})")
    click.echo(f"  download:     {recipe.download}")
    click.echo(f"  size:         {recipe.size_text()}")
    if recipe.manual_instructions:
        click.echo(f"  instructions: {recipe.manual_instructions}")
    for r in recipe.resources:
        have = "present" if (folder / r.filename).exists() else "missing"
        click.echo(f"  file:         {r.filename} [{have}] {r.checksum or ''} {' '.join(r.urls)}")
    click.echo(f"  sensor_size:  {recipe.sensor_size}")
    click.echo(f"  classes:      {len(recipe.classes)}: {', '.join(recipe.classes)}")
    click.echo(f"  splits:       {', '.join(recipe.splits)} (and all)")
    click.echo(f"  split rule:   {recipe.split_rule}")
    click.echo(f"  samples:      {recipe.sample_counts}")
    click.echo(f"  orientation:  {recipe.orientation}")
    click.echo(f"  time origin:  {recipe.time_origin}")
    click.echo(f"  licence:      {recipe.licence}")
    click.echo(f"  citation:     {recipe.citation}")
    click.echo(f"  local folder: {folder}")
    for f in sorted(folder.glob("*.h5")) if folder.exists() else []:
        click.echo(f"  cache:        {f.name} ({f.stat().st_size / 1e6:.1f} MB)")
