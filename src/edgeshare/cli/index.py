"""``edgeshare index`` and ``edgeshare report``."""

from __future__ import annotations

from pathlib import Path
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
    parse_address,
)
from edgeshare.errors import InputError
from edgeshare.indexer import DEFAULT_CHUNK, get_display_url, open_db, sync_index
from edgeshare.reports import Report, build_report, render_csv, render_html, render_json

report_app = typer.Typer(help="Operator and investor reports.", no_args_is_help=True)
FORMATS = ("table", "csv", "json", "html")


def index(
    rpc_url: RpcUrl = None,
    network: Network = None,
    manifest: ManifestPath = None,
    db: DbUrl = None,
    chunk: Annotated[
        int, typer.Option(help="Blocks per eth_getLogs request at most.")
    ] = DEFAULT_CHUNK,
    confirmations: Annotated[
        int | None,
        typer.Option(
            "--confirmations",
            help="Index up to this many blocks behind the head "
            "[default: 0 on a local chain, 2 elsewhere].",
            show_default=False,
        ),
    ] = None,
    json_output: Json = False,
) -> None:
    """Read the suite's events into the index database, from where the last run stopped.

    After a chain reorganisation the blocks it replaced are undone and indexed again.
    """
    if chunk < 1:
        raise InputError("--chunk must be at least 1")
    if confirmations is not None and confirmations < 0:
        raise InputError("--confirmations must not be negative")
    with open_suite(rpc_url, network, manifest) as suite, console.progress(json_output) as progress:
        url, result = sync_index(
            suite, db, chunk, progress, get_index_depth(network, confirmations)
        )
    shown = get_display_url(url)
    data = {"db": shown, **result.__dict__}
    if json_output:
        console.print_json(data)
    else:
        console.out.print(
            f"indexed blocks {result.from_block}..{result.to_block}: "
            f"{result.events} events into {shown}"
        )


def _emit(report: Report, fmt: str, output: Path | None) -> None:
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}")
    if fmt == "table":
        console.print_table(
            f"{report.kind} report: {report.subject}",
            [
                "node",
                "epoch",
                "inferences",
                "revenue",
                "operator cut",
                "fee",
                "to holders",
                "latency ms",
                "uptime bps",
                "state",
            ],
            [
                [
                    r.node_id,
                    r.epoch,
                    r.inferences,
                    r.revenue,
                    r.operator_cut,
                    r.protocol_fee,
                    r.holders,
                    r.latency_ms,
                    r.uptime_bps,
                    r.state,
                ]
                for r in report.rows
            ],
        )
        console.print_table(
            "Totals per node (base units)",
            [
                "node",
                "region",
                "inferences",
                "revenue",
                "operator cut",
                "fee",
                "to holders",
                "disputes",
            ],
            [
                [
                    t.node_id,
                    t.region,
                    t.inferences,
                    t.revenue,
                    t.operator_cut,
                    t.protocol_fee,
                    t.holders,
                    t.disputes,
                ]
                for t in report.nodes
            ],
        )
        return
    text = {"csv": render_csv, "json": render_json, "html": render_html}[fmt](report)
    if output is None:
        console.print_text(text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        console.note(f"wrote {output}")


Format = Annotated[str, typer.Option("--format", help="table, csv, json or html.")]
Output = Annotated[Path | None, typer.Option("-o", "--output", help="Write to this file.")]


@report_app.command("operator")
def operator_report(
    address: Annotated[str | None, typer.Argument(help="The operator (all their nodes).")] = None,
    node: Annotated[
        list[int] | None, typer.Option("--node", help="Report these nodes instead.")
    ] = None,
    from_epoch: Annotated[int | None, typer.Option(help="First epoch.")] = None,
    to_epoch: Annotated[int | None, typer.Option(help="Last epoch.")] = None,
    fmt: Format = "table",
    output: Output = None,
    rpc_url: RpcUrl = None,
    network: Network = None,
    manifest: ManifestPath = None,
    db: DbUrl = None,
) -> None:
    """Per epoch and node: inferences, revenue, cut, fee, holders, latency, uptime, disputes."""
    if (address is None) == (not node):
        raise InputError("give an operator ADDRESS or --node ID (not both)")
    if address is not None:
        address = parse_address(address, "ADDRESS")
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}")
    with open_suite(rpc_url, network, manifest) as suite:
        url, _ = sync_index(suite, db, confirmations=get_index_depth(network))
        with open_db(url) as conn:
            report = build_report(
                conn,
                suite,
                operator=address,
                node_ids=node,
                from_epoch=from_epoch,
                to_epoch=to_epoch,
            )
    _emit(report, fmt, output)


@report_app.command("investor")
def investor_report(
    address: Annotated[str, typer.Argument(help="The investor.")],
    fmt: Format = "table",
    output: Output = None,
    rpc_url: RpcUrl = None,
    network: Network = None,
    manifest: ManifestPath = None,
    db: DbUrl = None,
) -> None:
    """The investor's positions, and per epoch the usage and revenue of the nodes they hold."""
    address = parse_address(address, "ADDRESS")
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}")
    with open_suite(rpc_url, network, manifest) as suite:
        url, _ = sync_index(suite, db, confirmations=get_index_depth(network))
        with open_db(url) as conn:
            report = build_report(conn, suite, investor=address)
    _emit(report, fmt, output)
