"""``neurodata cache path|ls|rm``."""
from __future__ import annotations

import shutil

import click

from . import fail


@click.group("cache")
def command():
    """Inspect or clear the cache (root: --root > $NEURODATA_HOME > the user cache dir)."""


@command.command("path")
@click.option("--root", default=None)
def path(root):
    """Print the cache root."""
    from ..cache import cache_root

    click.echo(str(cache_root(root)))


@command.command("ls")
@click.option("--root", default=None)
def ls(root):
    """List each dataset folder's files and sizes."""
    from ..cache import cache_root

    base = cache_root(root)
    if not base.exists():
        click.echo(f"{base} does not exist (nothing cached yet)")
        return
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        files = sorted(f for f in folder.iterdir() if f.is_file() and not f.name.endswith(".lock"))
        total = sum(f.stat().st_size for f in files)
        click.echo(f"{folder.name}/ ({total / 1e6:.1f} MB)")
        for f in files:
            click.echo(f"  {f.name:<60} {f.stat().st_size / 1e6:10.1f} MB")


@command.command("rm")
@click.argument("name")
@click.option("--root", default=None)
@click.option("--downloads", is_flag=True, help="Also delete the downloaded archives.")
def rm(name, root, downloads):
    """Delete NAME's caches (and with --downloads its downloaded files too)."""
    from ..cache import cache_root
    from ..datasets import get

    try:  # only a dataset's own folder: never a path the name could spell (.., /abs)
        folder = cache_root(root) / get(name).recipe.name
    except ValueError as e:
        fail(str(e), 2)
    if not folder.exists():
        fail(f"nothing cached for {name!r} under {folder.parent}", 1)
    if downloads:
        shutil.rmtree(folder)
        click.echo(f"removed {folder}")
        return
    n = 0
    for f in folder.glob("*.h5"):
        f.unlink()
        n += 1
    click.echo(f"removed {n} cache file(s) from {folder}")
