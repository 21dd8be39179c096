"""``edgeshare market``: the price board."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgeshare.cli import console
from edgeshare.cli.common import (
    BaseUnits,
    DbUrl,
    Json,
    ManifestPath,
    Network,
    RpcUrl,
    get_index_depth,
    open_suite,
)
from edgeshare.indexer import open_db, sync_index
from edgeshare.market import Board, BoardRow, build_board
from edgeshare.units import format_bps, format_price
from edgeshare.web.views import build_board_row_json

if TYPE_CHECKING:
    from edgeshare.client import SeenLatency


def market(
    region: Annotated[str | None, typer.Option(help="Only nodes in this region.")] = None,
    max_price: Annotated[
        str | None,
        typer.Option(
            help="Highest price per 1k inferences, in whole units of the stablecoin (0.35).",
            show_default=False,
        ),
    ] = None,
    max_latency: Annotated[
        int | None, typer.Option(help="Highest attested p50 latency, ms.")
    ] = None,
    top: Annotated[int | None, typer.Option(help="Show the N best.")] = None,
    recent: Annotated[int, typer.Option(help="Epochs of attested usage to rank by.")] = 12,
    base_units: BaseUnits = False,
    rpc_url: RpcUrl = None,
    network: Network = None,
    manifest: ManifestPath = None,
    db: DbUrl = None,
    client_db: Annotated[
        Path | None,
        typer.Option(
            "--client-db",
            help="The client database whose calls give the 'seen p50' column "
            "(default: $EDGESHARE_CLIENT_DB or ~/.edgeshare/client.db).",
            show_default=False,
        ),
    ] = None,
    json_output: Json = False,
) -> None:
    """Active nodes, cheapest first, then lowest attested latency, then highest uptime;
    nodes with no attested usage yet come last, marked new. When this machine has called
    nodes (`edgeshare call`, `edgeshare.client`), the p50 latency it saw is shown next to
    the attested one."""
    for name, value in (("--max-latency", max_latency), ("--top", top)):
        if value is not None and value < (1 if name == "--top" else 0):
            raise typer.BadParameter(
                f"{name} must not be {'below 1' if name == '--top' else 'negative'}"
            )
    with open_suite(rpc_url, network, manifest) as suite:
        token = suite.fetch_stablecoin_token()
        cap = (
            None
            if max_price is None
            else token.parse(max_price, "--max-price", base_units=base_units)
        )
        url, _ = sync_index(suite, db, confirmations=get_index_depth(network))
        with open_db(url) as conn:
            board = build_board(
                conn,
                suite,
                region=region,
                max_price=cap,
                max_latency=max_latency,
                top=top,
                recent=recent,
                token=token,
            )
        from edgeshare.client import fetch_seen_latency  # HTTP libraries: only when used

        seen = fetch_seen_latency(client_db, suite)
    if board.empty_reason:
        console.note(board.empty_reason)
    if json_output:
        console.print_json(
            [build_board_row_json(row, board, seen.get(row.node_id)) for row in board.rows]
        )
        return
    if not board.rows:
        return
    seen_column = ["seen p50"] if any(r.node_id in seen for r in board.rows) else []
    console.print_table(
        "EdgeShare price board",
        ["node", "region", "price", "p50 latency", *seen_column, "uptime", "epochs", "GPU",
         "capacity"],
        [
            [
                r.node_id,
                r.region,
                _price_text(r, board),
                "-" if r.latency_ms is None else f"{r.latency_ms} ms",
                *([_seen_text(seen.get(r.node_id))] if seen_column else []),
                "-" if r.uptime_bps is None else format_bps(r.uptime_bps),
                "new" if r.is_new else r.epochs_attested,
                _meta(r, "gpu"),
                f"{r.metadata.capacity_rps:,} rps"
                if r.metadata and r.metadata.capacity_rps else "-",
            ]
            for r in board.rows
        ],
    )  # fmt: skip
    console.print_table(
        "How to reach them",
        ["node", "operator", "endpoint", "models"],
        [
            [r.node_id, r.operator, _meta(r, "endpoint"),
             ", ".join(r.metadata.models) if r.metadata and r.metadata.models else "-"]
            for r in board.rows
        ],
    )  # fmt: skip
    unread = [r for r in board.rows if r.metadata_status not in ("verified", "none")]
    for r in unread:
        console.note(f"node {r.node_id}: metadata {r.metadata_status} ({r.metadata_uri[:80]})")


def _price_text(row: BoardRow, board: Board) -> str:
    text = format_price(row.price_per_1k, board.token)
    if row.next_price_per_1k != row.price_per_1k:
        text += f" (next epoch {board.token.format(row.next_price_per_1k)})"
    return text


def _seen_text(seen: SeenLatency | None) -> str:
    if seen is None:
        return "-"
    return f"{seen.p50_ms} ms ({seen.count:,} call{'s' if seen.count != 1 else ''})"


def _meta(row: BoardRow, name: str) -> str:
    value = getattr(row.metadata, name, None) if row.metadata else None
    return "-" if value is None else str(value)
