"""The `mirror` command line. Each command is a thin wrapper over the module owning its concern.

User mistakes and upstream failures surface as `MirrorError` and are printed as one line
(`Error: ...`) with a non-zero exit code, never as a traceback.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from mirror import __version__
from mirror.config import DATA_DIR_ENV, resolve_data_dir
from mirror.errors import MirrorError


def data_dir_option(func):
    """Adds --data-dir (env MIRROR_DATA_DIR, default ./data); the command receives a resolved Path."""

    @click.option(
        "--data-dir",
        "data_dir",
        envvar=DATA_DIR_ENV,
        default="./data",
        show_default=True,
        type=click.Path(file_okay=False, path_type=Path),
        help=f"Mirror data directory (env {DATA_DIR_ENV}).",
    )
    @functools.wraps(func)
    def wrapper(*args, data_dir: Path, **kwargs):
        return func(*args, data_dir=resolve_data_dir(data_dir), **kwargs)

    return wrapper


class MirrorGroup(click.Group):
    """Turns MirrorError (and Ctrl-C) into a one-line message and an exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MirrorError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)


@click.group(cls=MirrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mirror")
def main():
    """Sirene Mirror: the French company register (Sirene) on your own machine.

    Typical use: `mirror sync` from cron keeps DATA_DIR/sirene.duckdb fresh (monthly stock from
    data.gouv.fr, daily changes from the INSEE API); query it with `mirror get`, `mirror export`,
    or any SQL through `duckdb DATA_DIR/sirene.duckdb`.
    """


# Commands are registered below, one block per concern.
