"""``neurodata fetch NAME...``: download, verify and build the caches ahead of training."""
from __future__ import annotations

import contextlib
from concurrent.futures import ProcessPoolExecutor

import click

from . import fail, parse_frames, user_errors


def _fetch_one(name, split, options, frames):
    from ..datasets import load

    ds = load(name, split=split, frames=frames, **options)
    return f"{name} {split}: {len(ds)} samples ready ({ds.store.path})"


@click.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.option("--split", "splits", multiple=True, help="Split(s) to prepare (default: every split of the dataset).")
@click.option("--root", default=None, help="Cache root (default $NEURODATA_HOME or the user cache dir).")
@click.option("--mirror", default=None, help="Mirror base URL or folder, tried first as <mirror>/<name>/<file>.")
@click.option("--from", "source", default=None, type=click.Path(exists=True),
              help="A folder holding the dataset's files (or one such file): manual downloads.")
@click.option("--no-verify", is_flag=True, help="Skip checksum verification (not recommended).")
@click.option("--frames", "frames", multiple=True, metavar="K=V",
              help="Also build a frames cache with these ToFrame parameters, e.g. --frames frames_number=16 "
                   "--frames split_by=number.")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=1),
              help="Datasets/splits prepared in parallel processes.")
def command(names, splits, root, mirror, source, no_verify, frames, jobs):
    """Prepare NAMES (see `neurodata list`) so that loading them later is instant."""
    from ..datasets import get

    frames_params = parse_frames(frames)
    tasks = []
    for name in names:
        try:
            recipe = get(name).recipe
        except ValueError as e:
            fail(str(e), 2)
        for split in splits or recipe.splits:
            opts = {"root": root, "mirror": mirror, "source": source, "verify": not no_verify}
            tasks.append((name, split, opts, frames_params))
    failed = 0
    with contextlib.ExitStack() as stack:  # every task is reported, the failed ones too
        pool = stack.enter_context(ProcessPoolExecutor(jobs)) if jobs > 1 and len(tasks) > 1 else None
        pending = [pool.submit(_fetch_one, *task) if pool else task for task in tasks]
        for task, job in zip(tasks, pending):
            try:
                click.echo(job.result() if pool else _fetch_one(*task))
            except user_errors() as e:
                failed += 1
                click.echo(f"error: {task[0]} {task[1]}: {e}", err=True)
    if failed:
        fail(f"{failed} of {len(tasks)} dataset splits could not be prepared (see above)", 1)
