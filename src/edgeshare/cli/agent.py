"""`edgeshare agent`: the node's agent (meters, signs and posts each epoch's reports)."""

from __future__ import annotations

import typer

app = typer.Typer(help="The node agent: meter, sign and post each epoch.", no_args_is_help=True)
