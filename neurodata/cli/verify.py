"""``neurodata verify NAME``: re-hash downloaded files and re-check caches."""
from __future__ import annotations

import click

from . import fail


@click.command("verify")
@click.argument("name")
@click.option("--root", default=None, help="Cache root (default $NEURODATA_HOME or the user cache dir).")
def command(name, root):
    """Check NAME's files against the recipe's checksums and its caches for completeness.

    Exit code 0 when everything present is sound, 1 otherwise.
    """
    from ..cache import cache_root, check_cache
    from ..datasets import get
    from ..download import verify_file
    from ..errors import ChecksumError

    try:
        recipe = get(name).recipe
    except ValueError as e:
        fail(str(e), 2)
    folder = cache_root(root) / recipe.name
    bad = 0
    for r in recipe.resources:
        path = folder / r.filename
        if not path.exists():
            click.echo(f"missing   {r.filename}")
            continue
        if not r.checksum:
            click.echo(f"present   {r.filename} (no checksum in the recipe)")
            continue
        try:
            verify_file(path, checksum=r.checksum, size=r.size)
            click.echo(f"ok        {r.filename}")
        except ChecksumError as e:
            bad += 1
            click.echo(f"CORRUPT   {r.filename}: {e}")
    for h5 in sorted(folder.glob("*.h5")) if folder.exists() else []:
        kind = "frames" if h5.name.startswith("frames-") else "events"
        reason = check_cache(h5, None, kind)
        if reason is None:
            click.echo(f"ok        {h5.name}")
        else:
            bad += 1
            click.echo(f"BAD       {h5.name}: {reason} (it will be rebuilt on next use)")
    raise SystemExit(1 if bad else 0)
