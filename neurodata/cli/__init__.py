"""The ``neurodata`` command line: a click group whose subcommands load lazily (fast ``--help``).

Each subcommand lives in its own module ``neurodata/cli/<name>.py`` exposing a click command
named ``command``.
"""
from __future__ import annotations

import importlib

import click

# subcommand name -> (module, one-line help shown by ``neurodata --help``)
COMMANDS = {
    "list": ("list_", "List the datasets: size, licence, download mode."),
    "info": ("info", "Everything about one dataset: source, split rule, citation, local state."),
    "fetch": ("fetch", "Download, verify and cache datasets (events, optionally frames)."),
    "verify": ("verify", "Re-check downloaded files and caches of a dataset."),
    "cache": ("cache", "Where the cache lives, what it holds, and removing it."),
    "inspect": ("inspect_", "Describe an event file: format, sensor size, events, header."),
    "convert": ("convert", "Convert an event file to another format."),
    "show": ("show", "Render a file or a dataset sample as PNG/GIF (needs the viz extra)."),
    "demo": ("demo", "The whole pipeline offline: data, cache, frames, a trained SNN, a figure."),
    "mirror": ("mirror", "Build or verify a lab mirror folder of dataset archives."),
    "serve": ("serve", "Serve a mirror folder over HTTP for other machines' fetches."),
}


class LazyGroup(click.Group):
    """The ``neurodata`` group: a subcommand's module is imported only when it runs (``COMMANDS``)."""

    def invoke(self, ctx):
        """Run the subcommand; the library's errors about what a person can fix (bad files, paths,
        parameters, downloads, damaged caches) end as one ``error:`` line and exit code 1, never a
        traceback."""
        try:
            return super().invoke(ctx)
        except user_errors() as e:
            fail(str(e) or type(e).__name__, 1)

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module = importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")
        return module.command

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="neurodata")
def main():
    """neurodata: event-camera datasets and files, fast and exact."""


def _value(text: str):
    """A --frames value: int, float, true/false/none, a comma-separated tuple of those, else text."""
    if "," in text:
        return tuple(_value(part) for part in text.split(","))
    for conv in (int, float):
        try:
            value = conv(text)
        except ValueError:
            continue
        return int(value) if isinstance(value, float) and value.is_integer() else value  # 1e5 is 100000
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def parse_frames(items) -> dict | None:
    """``("frames_number=16", "split_by=number")`` -> ``{"frames_number": 16, "split_by": "number"}``,
    checked by ``ToFrame`` (exit 2 naming the problem) before anything is downloaded or built."""
    if not items:
        return None
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            fail(f"--frames takes KEY=VALUE (a ToFrame parameter), got {item!r}", 2)
        if k.strip() in out:
            fail(f"--frames {k.strip()} is given twice", 2)
        out[k.strip()] = _value(v.strip())
    from ..transforms import ToFrame

    try:
        ToFrame((1, 1, 2), **{k: v for k, v in out.items() if k != "sensor_size"})
    except (TypeError, ValueError) as e:
        fail(f"--frames: {e}", 2)
    return out


def user_errors() -> tuple:
    """The library's exceptions about what a person can fix: bad files, paths and parameters
    (``OSError``, ``ValueError``: ``FormatError``, ``DownloadError`` among them) and damaged
    caches (``CacheError``)."""
    from ..errors import CacheError

    return OSError, ValueError, CacheError


def fail(message: str, code: int = 1):
    """Print ``message`` to stderr as an error a person can act on, and exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)
