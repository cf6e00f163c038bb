"""``neurodata mirror build|verify``: lay out fetched archives as a lab mirror, and check one."""
from __future__ import annotations

import click

from . import fail


@click.group("mirror")
def command():
    """A mirror folder <DIR>/<name>/<file> with MANIFEST.json, to serve with `neurodata serve`."""


@command.command("build", short_help="Add fetched archives to a mirror folder and its manifest.")
@click.argument("directory", type=click.Path(file_okay=False))
@click.argument("names", nargs=-1)
@click.option("--root", default=None, help="Cache root holding fetched archives in <root>/<name>/ "
                                           "(default $NEURODATA_HOME or the user cache dir).")
@click.option("--from", "source", default=None, type=click.Path(exists=True),
              help="A folder holding archives (also as <name>/<file>, aliases accepted) or one archive.")
@click.option("--copy", is_flag=True, help="Always copy (default: hard-link when on the same filesystem).")
def build(directory, names, root, source, copy):
    """Add the archives of NAMES (default: every downloadable dataset found) to the mirror DIRECTORY.

    Each file is hashed and checked against its recipe; files the recipe rejects are not added.
    Exit code 0 when at least one file is in place and none was rejected, 1 otherwise, 2 for an
    unknown dataset name.
    """
    from ..mirror import build_mirror

    try:
        report = build_mirror(directory, list(names) or None, root=root, source=source, link=not copy)
    except ValueError as e:
        fail(str(e), 2)
    for entry in report.added:
        flag = "verified" if entry["verified"] else "NOT verified: the recipe has no checksum"
        click.echo(f"added     {entry['path']}  {entry['size']} bytes, {flag}")
    for rel in report.unchanged:
        click.echo(f"unchanged {rel}")
    missing: dict = {}
    for dataset, name in report.missing:
        missing.setdefault(dataset, []).append(name)
    for dataset, files in missing.items():
        click.echo(f"missing   {dataset}: {', '.join(files)} (neither in --from nor in the cache root)")
    for dataset, name, path, reason in report.rejected:
        click.echo(f"REJECTED  {dataset}/{name} from {path}: {reason}")
    placed = len(report.added) + len(report.unchanged)
    click.echo(f"manifest  {report.manifest} ({placed} files placed now)")
    if report.rejected:
        fail(f"{len(report.rejected)} file(s) do not match their recipe and were not added", 1)
    if not placed:
        fail("nothing was added: fetch the datasets first (`neurodata fetch NAME`) or pass --from PATH", 1)


@command.command("verify", short_help="Re-hash a mirror against its manifest and the recipes.")
@click.argument("directory", type=click.Path(file_okay=False))
def verify(directory):
    """Re-hash every file of the mirror DIRECTORY against MANIFEST.json and the recipes.

    Exit code 0 when the mirror is sound (nothing missing, corrupt, rejected by its recipe or
    unknown), 1 otherwise.
    """
    from ..mirror import verify_mirror

    try:
        report = verify_mirror(directory)
    except (FileNotFoundError, ValueError) as e:
        fail(str(e), 1)
    for rel in report.ok:
        click.echo(f"ok        {rel}")
    for rel in report.missing:
        click.echo(f"MISSING   {rel}")
    for rel, reason in report.corrupt:
        click.echo(f"CORRUPT   {rel}: {reason}")
    for rel, reason in report.rejected:
        click.echo(f"REJECTED  {rel}: {reason} (a fetch would refuse it)")
    for rel in report.unknown:
        click.echo(f"UNKNOWN   {rel} (not in the manifest: remove it or add it with `neurodata mirror build`)")
    for rel, reason in report.unchecked:
        click.echo(f"note      {rel}: {reason}")
    if not report.sound:
        bad = len(report.missing) + len(report.corrupt) + len(report.rejected) + len(report.unknown)
        fail(f"the mirror is not sound: {bad} problem(s)", 1)
    click.echo(f"sound     {len(report.ok)} files")
