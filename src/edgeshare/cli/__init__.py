"""The ``edgeshare`` command. One module per command; errors map to exit codes here."""

from __future__ import annotations

import logging
import sys
from typing import Annotated, NoReturn

import requests
import typer

from edgeshare.cli import (
    agent,
    attest,
    basket,
    call,
    channel,
    console,
    gateway,
    holders,
    nodes,
    offering,
    roles,
    trade,
)
from edgeshare.cli.demo import demo
from edgeshare.cli.deploy import deploy
from edgeshare.cli.index import index, report_app
from edgeshare.cli.market import market
from edgeshare.cli.serve import serve
from edgeshare.cli.status import status
from edgeshare.errors import EdgeShareError, InputError
from edgeshare.rpc import redact_urls

app = typer.Typer(
    name="edgeshare",
    help="Tokenized revenue shares for edge AI-inference nodes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More log lines (-vv: debug).")
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors.")] = False,
) -> None:
    """Tokenized revenue shares for edge AI-inference nodes."""
    if verbose and quiet:
        raise InputError("give -v or -q, not both")
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO)[min(verbose, 1)]
    level = logging.DEBUG if verbose >= 2 else level
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    for noisy in ("urllib3", "web3", "asyncio"):  # their debug lines can carry request URLs
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


app.command()(deploy)
app.command()(demo)
app.add_typer(attest.app, name="attest")
app.add_typer(channel.app, name="channel")
app.add_typer(trade.app, name="trade")
app.add_typer(basket.app, name="basket")
app.add_typer(offering.app, name="offering")
app.add_typer(nodes.app, name="nodes")
app.add_typer(holders.shares_app, name="shares")
app.add_typer(report_app, name="report")
app.command()(market)
app.command()(holders.portfolio)
app.command()(holders.claim)
app.command()(index)
app.add_typer(roles.operator_app, name="operator")
app.add_typer(roles.guardian_app, name="guardian")
app.add_typer(roles.registrar_app, name="registrar")
app.add_typer(roles.owner_app, name="owner")
roles.withdraw_command(app)
app.add_typer(roles.dev_app, name="dev")
app.command()(status)
app.add_typer(agent.app, name="agent")
app.command()(gateway.gateway)
app.command()(serve)
app.command()(call.call)


def main() -> None:
    """Entry point: run the app; EdgeShare errors print one clear line and set the exit code.

    Exit codes: 0 done, 2 bad input (nothing was sent), 1 an operation failed. With
    ``--json`` an error is JSON on stdout too: ``{"error": "...", "exit": 2}``.
    """
    as_json = "--json" in sys.argv[1:] or "--format=json" in sys.argv[1:]
    try:
        app(standalone_mode=False)
    except EdgeShareError as exc:
        _fail(str(exc), exc.exit_code, as_json)
    except requests.RequestException as exc:  # web3 gave up after its retries
        _fail(f"the chain's RPC endpoint kept failing: {type(exc).__name__}: {exc}", 1, as_json)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _fail("aborted", 1, as_json)
    except typer.TyperException as exc:  # usage errors (typer vendors click)
        code = int(getattr(exc, "exit_code", 2))
        show = getattr(exc, "show", None)
        if as_json:
            _fail(exc.format_message() if hasattr(exc, "format_message") else str(exc), code, True)
        if callable(show):
            show()
        else:
            console.error(str(exc))
        sys.exit(code)


def _fail(message: str, code: int, as_json: bool) -> NoReturn:
    console.error(message)
    if as_json:
        console.print_json({"error": redact_urls(message), "exit": code})
    sys.exit(code)
