"""``neurodata serve DIR``: a read-only HTTP service for a mirror folder."""
from __future__ import annotations

import click

from . import fail


@click.command("serve")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 / :: for every interface: use --token there).")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0 picks a free one; the URL is printed).")
@click.option("--token", default=None, envvar="NEURODATA_SERVE_TOKEN", show_envvar=True,
              help="Require this token (clients: NEURODATA_MIRROR_TOKEN). Prefer the environment "
                   "variable: a command line is visible to other users.")
def command(directory, host, port, token):
    """Serve the mirror DIRECTORY (built with `neurodata mirror build`) until Ctrl-C.

    Clients use it with `neurodata fetch NAME --mirror http://HOST:PORT` or NEURODATA_MIRROR.
    """
    from ..serve import serve

    try:
        serve(directory, host, port, token)
    except (FileNotFoundError, ValueError) as e:
        fail(str(e), 1)
    except OSError as e:
        fail(f"cannot listen on {host}:{port}: {e.strerror or e}", 1)
