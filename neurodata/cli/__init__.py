"""The ``neurodata`` command line: a click group whose subcommands load lazily (fast ``--help``).

Each subcommand lives in its own module ``neurodata/cli/<name>.py`` exposing a click command
named ``command``.
"""
from __future__ import annotations

import importlib

import click

# subcommand name -> (module, one-line help shown by ``neurodata --help``)
COMMANDS = {
    "inspect": ("inspect_", "Describe an event file: format, sensor size, events, header."),
    "convert": ("convert", "Convert an event file to another format."),
}


class LazyGroup(click.Group):
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


def fail(message: str, code: int = 1):
    """Print ``message`` to stderr as an error a person can act on, and exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)
