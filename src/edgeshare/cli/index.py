"""``edgeshare index`` and ``edgeshare report``."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

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
from edgeshare.errors import InputError
from edgeshare.indexer import DEFAULT_CHUNK, get_display_url, open_db, sync_index
from edgeshare.models import parse_address
from edgeshare.report_html import render_html
from edgeshare.reports import (
    Report,
    Section,
    build_report,
    build_sections,
    render_csv,
    render_json,
)
from edgeshare.suite import Suite

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
            "(default: 0 on a local chain, 2 elsewhere).",
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


SUFFIX_FORMATS = {".html": "html", ".htm": "html", ".csv": "csv", ".json": "json", ".txt": "table"}


def get_format(fmt: str | None, json_output: bool, output: Path | None) -> str:
    """The format asked for: ``--format``, ``--json``, else the output file's extension
    (``.html``, ``.csv``, ``.json``, ``.txt`` for the table), else the table."""
    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if json_output:
        if fmt not in (None, "json"):
            raise InputError(f"--json and --format {fmt} contradict each other; give one")
        return "json"
    if fmt is not None:
        return fmt
    if output is None:
        return "table"
    inferred = SUFFIX_FORMATS.get(output.suffix.lower())
    if inferred is None:
        raise InputError(
            f"cannot tell the format of {output} from its extension: name it .html, .csv, "
            ".json or .txt, or give --format"
        )
    return inferred


def check_output(output: Path | None, force: bool) -> None:
    """Refuse, before any work, an output that exists (unless ``force``) or is a directory."""
    if output is None:
        return
    if output.is_dir():
        raise InputError(f"{output} is a directory; give a file name to write the report to")
    if output.exists() and not force:
        raise InputError(f"{output} exists; give --force to overwrite it")


def check_epochs(from_epoch: int | None, to_epoch: int | None) -> None:
    """An epoch range must be non-negative and in order."""
    for name, value in (("--from-epoch", from_epoch), ("--to-epoch", to_epoch)):
        if value is not None and value < 0:
            raise InputError(f"{name} must not be negative, got {value}")
    if from_epoch is not None and to_epoch is not None and from_epoch > to_epoch:
        raise InputError(f"--from-epoch {from_epoch} is after --to-epoch {to_epoch}")


def render_table(report: Report, width: int | None = None) -> str:
    """The report's sections as text tables, whole units (the ``table`` format in a file)."""
    buffer = io.StringIO()
    text = Console(file=buffer, width=width or 200, highlight=False, color_system=None)
    for section in build_sections(report):
        text.print(_rich_table(section))
    return buffer.getvalue()


def _rich_table(section: Section) -> Table:
    table = Table(title=section.title, title_justify="left")
    for column in section.columns:
        table.add_column(column, overflow="fold")
    for row in section.rows:
        table.add_row(*row)
    return table


def _emit(report: Report, fmt: str, output: Path | None) -> None:
    """Print or write the report; say on stderr why it is empty, when it is."""
    if report.empty_reason:
        console.note(f"nothing to report: {report.empty_reason}")
    if fmt == "table" and output is None:
        for section in build_sections(report):
            console.print_table(section.title, section.columns, list(map(list, section.rows)))
        return
    renderers = {"csv": render_csv, "json": render_json, "html": render_html,
                 "table": render_table}  # fmt: skip
    text = renderers[fmt](report)
    if output is None:
        console.print_text(text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        console.note(f"wrote {output} ({fmt})")


Format = Annotated[
    str | None,
    typer.Option(
        "--format",
        help="table, csv, json or html (default: from -o's extension, else table).",
        show_default=False,
    ),
]
Output = Annotated[
    Path | None,
    typer.Option(
        "-o",
        "--output",
        help="Write to this file (.html, .csv, .json or .txt).",
        show_default=False,
    ),
]
Force = Annotated[bool, typer.Option("--force", help="Overwrite the output file if it exists.")]
FromEpoch = Annotated[int | None, typer.Option(help="First epoch (default: the first settled).")]
ToEpoch = Annotated[int | None, typer.Option(help="Last epoch (default: the last settled).")]


@report_app.command("operator")
def operator_report(
    address: Annotated[str | None, typer.Argument(help="The operator (all their nodes).")] = None,
    node: Annotated[
        list[int] | None, typer.Option("--node", help="Report these nodes instead.")
    ] = None,
    from_epoch: FromEpoch = None,
    to_epoch: ToEpoch = None,
    fmt: Format = None,
    output: Output = None,
    force: Force = False,
    json_output: Json = False,
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
    chosen = get_format(fmt, json_output, output)
    check_epochs(from_epoch, to_epoch)
    check_output(output, force)
    with open_suite(rpc_url, network, manifest) as suite:
        report = _build(suite, db, network, operator=address, node_ids=node,
                        from_epoch=from_epoch, to_epoch=to_epoch)  # fmt: skip
    _emit(report, chosen, output)


@report_app.command("investor")
def investor_report(
    address: Annotated[str, typer.Argument(help="The investor.")],
    from_epoch: FromEpoch = None,
    to_epoch: ToEpoch = None,
    cost_basis: Annotated[
        str | None,
        typer.Option(
            "--cost-basis",
            help="What the shares cost, in whole stablecoin units (e.g. 1500.25): the "
            "trailing yield is then also shown as a percentage.",
            show_default=False,
        ),
    ] = None,
    orders: Annotated[
        list[Path] | None,
        typer.Option(
            "--orders",
            help="Orders files or folders: list the investor's open orders among them "
            "(repeatable).",
            show_default=False,
        ),
    ] = None,
    fmt: Format = None,
    output: Output = None,
    force: Force = False,
    json_output: Json = False,
    rpc_url: RpcUrl = None,
    network: Network = None,
    manifest: ManifestPath = None,
    db: DbUrl = None,
) -> None:
    """The investor's own claimed, claimable, vesting and earned revenue; its positions
    (every node with shares or revenue to claim), basket units, offering commitments and
    (with --orders) open orders; per epoch its share of each node's holders' revenue;
    the trailing yield, annualised from the epochs shown."""
    address = parse_address(address, "ADDRESS")
    chosen = get_format(fmt, json_output, output)
    check_epochs(from_epoch, to_epoch)
    check_output(output, force)
    with open_suite(rpc_url, network, manifest) as suite:
        cost = None
        if cost_basis is not None:
            cost = suite.fetch_stablecoin_token().parse(cost_basis, "--cost-basis")
            if cost == 0:
                raise InputError("--cost-basis must be more than 0")
        report = _build(suite, db, network, investor=address, from_epoch=from_epoch,
                        to_epoch=to_epoch, cost_basis=cost, orders=orders or [])  # fmt: skip
    _emit(report, chosen, output)


def _build(suite: Suite, db: str | None, network: str | None, **query: Any) -> Report:
    """Bring the index up to date, then build the report of ``query`` from it."""
    url, _ = sync_index(suite, db, confirmations=get_index_depth(network))
    with open_db(url) as conn:
        return build_report(conn, suite, **query)
