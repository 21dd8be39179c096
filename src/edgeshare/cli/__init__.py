"""The ``edgeshare`` command. One module per command; errors map to exit codes here."""

from __future__ import annotations

import sys

import typer

from edgeshare.cli import attest, console
from edgeshare.cli.demo import demo
from edgeshare.cli.deploy import deploy
from edgeshare.errors import EdgeShareError

app = typer.Typer(
    name="edgeshare",
    help="Tokenized revenue shares for edge AI-inference nodes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(deploy)
app.command()(demo)
app.add_typer(attest.app, name="attest")


def main() -> None:
    """Entry point: run the app; EdgeShare errors print one clear line and set the exit code."""
    try:
        app(standalone_mode=False)
    except EdgeShareError as exc:
        console.error(str(exc))
        sys.exit(exc.exit_code)
    except typer.Abort:
        console.error("aborted")
        sys.exit(1)
    except (typer.BadParameter, typer.Exit) as exc:
        if isinstance(exc, typer.Exit):
            sys.exit(exc.exit_code)
        console.error(exc.format_message())
        sys.exit(2)
    except Exception as exc:  # click's usage errors and anything unforeseen
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
