"""``edgeshare serve``: the web app and its read-only JSON API (docs/WEB.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from edgeshare.cli import console
from edgeshare.cli.common import (
    DbUrl,
    ManifestPath,
    Network,
    RpcUrl,
    build_target,
    get_index_depth,
    get_option_error,
    open_suite,
)
from edgeshare.indexer import get_default_db_url, get_display_url, parse_db_url

_OPTIONS = {"db_url": "--db", "sync_every": "--sync-every"}


def serve(
    db: DbUrl = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65_535, help="Port to listen on (0: any free).")
    ] = 8000,
    sync_every: Annotated[
        float,
        typer.Option("--sync-every", help="Seconds between runs of the indexer in the background."),
    ] = 5.0,
    no_sync: Annotated[
        bool,
        typer.Option(
            "--no-sync",
            help="Do not index: another `edgeshare serve` (or `edgeshare index`) keeps the "
            "shared PostgreSQL index up to date.",
        ),
    ] = False,
    rpc_url: RpcUrl = None,
    network: Network = None,
    manifest: ManifestPath = None,
) -> None:
    """Serve the web app (board, nodes, portfolio, offerings, trade, channels, operator)
    and its read-only JSON API from the index (kept up to date in the background) and the
    chain. The browser's wallet signs and sends; the server holds no key. Runs until
    Ctrl-C or SIGTERM."""
    from edgeshare.web import WebConfig, serve_web  # the server libraries: only when serving

    if db is not None:
        parse_db_url(db)  # InputError names what is wrong
    target = build_target(rpc_url, network, start_local=False)
    with open_suite(rpc_url, network, manifest) as suite:
        url = db or get_default_db_url(suite.manifest.chain_id)
        try:
            config = WebConfig(
                db_url=url,
                host=host,
                port=port,
                sync_every=sync_every,
                sync=not no_sync,
                confirmations=get_index_depth(network),
                rpc_url=target.url,
            )
        except ValidationError as exc:
            raise get_option_error(exc, _OPTIONS) from None

        def listening(address: str) -> None:
            console.note(
                f"serving the EdgeShare web app for chain {suite.manifest.chain_id} at "
                f"{address} (index {get_display_url(url)}"
                + (", not synced here" if no_sync else f", synced every {sync_every:g} s")
                + "); Ctrl-C stops"
            )
            console.out.print(address)

        serve_web(config, suite, on_listen=listening)
