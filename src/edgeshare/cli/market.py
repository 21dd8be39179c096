"""``edgeshare market``: the price board."""

from __future__ import annotations

from typing import Annotated

import typer

from edgeshare.cli import console
from edgeshare.cli.common import (
    DbUrl,
    Json,
    ManifestPath,
    Network,
    RpcUrl,
    get_index_depth,
    open_suite,
)
from edgeshare.indexer import open_db, sync_index
from edgeshare.market import build_board
from edgeshare.reports import format_bps


def market(
    region: Annotated[str | None, typer.Option(help="Only nodes in this region.")] = None,
    max_price: Annotated[int | None, typer.Option(help="Highest price per 1k, base units.")] = None,
    max_latency: Annotated[
        int | None, typer.Option(help="Highest attested p50 latency, ms.")
    ] = None,
    top: Annotated[int | None, typer.Option(help="Show the N best.")] = None,
    recent: Annotated[int, typer.Option(help="Epochs of attested usage to rank by.")] = 12,
    rpc_url: RpcUrl = None,
    network: Network = None,
    manifest: ManifestPath = None,
    db: DbUrl = None,
    json_output: Json = False,
) -> None:
    """Active nodes, cheapest first, then lowest attested latency, then highest uptime."""
    for name, value in (("--max-price", max_price), ("--max-latency", max_latency), ("--top", top)):
        if value is not None and value < (1 if name == "--top" else 0):
            raise typer.BadParameter(
                f"{name} must not be {'below 1' if name == '--top' else 'negative'}"
            )
    with open_suite(rpc_url, network, manifest) as suite:
        url, _ = sync_index(suite, db, confirmations=get_index_depth(network))
        with open_db(url) as conn:
            board = build_board(
                conn,
                suite,
                region=region,
                max_price=max_price,
                max_latency=max_latency,
                top=top,
                recent=recent,
            )
    if json_output:
        console.print_json([row.__dict__ for row in board])
        return
    console.print_table(
        "EdgeShare price board",
        ["node", "region", "price/1k", "next price/1k", "p50 latency ms", "uptime", "epochs"],
        [
            [
                r.node_id,
                r.region,
                r.price_per_1k,
                r.next_price_per_1k,
                "-" if r.latency_ms is None else r.latency_ms,
                "-" if r.uptime_bps is None else format_bps(r.uptime_bps),
                r.epochs_attested,
            ]
            for r in board
        ],
    )
