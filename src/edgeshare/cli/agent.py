"""`edgeshare agent`: the node's agent (meters, signs and posts each epoch's reports)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgeshare.cli import console
from edgeshare.cli.common import Json
from edgeshare.units import format_duration, format_utc

if TYPE_CHECKING:  # the agent's modules load when a command runs (`edgeshare --help` stays quick)
    from edgeshare.agent import AgentStatusView, NodeStatusView

app = typer.Typer(help="The node agent: meter, sign and post each epoch.", no_args_is_help=True)

ConfigPath = Annotated[
    Path, typer.Option("--config", "-c", help="The agent's config file (agent.toml).")
]


@app.command("run")
def run(
    config: ConfigPath,
    once: Annotated[
        bool,
        typer.Option(
            "--once", help="One iteration (scrape, every due epoch, a redemption), then exit."
        ),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Log debug lines too.")] = False,
) -> None:
    """Run the agent: scrape every node, and at each epoch's end (chain time, plus the
    grace) build, sign and post (or write) its report; redeem the gateways' vouchers.
    Logs one JSON object per line on stderr; SIGTERM stops it after the current step."""
    from edgeshare.agent import configure_json_logging, load_agent_config, open_agent

    parsed = load_agent_config(config)
    configure_json_logging(logging.DEBUG if debug else logging.INFO)
    agent = open_agent(parsed)
    try:
        agent.run(once=once, handle_signals=True)
    finally:
        agent.close()


@app.command("check")
def check(config: ConfigPath, json_output: Json = False) -> None:
    """Check the config, the keys and the chain as `run` does at start, then exit."""
    from edgeshare.agent import load_agent_config, open_agent

    parsed = load_agent_config(config)
    agent = open_agent(parsed)
    try:
        summary = {
            "ok": True,
            "nodes": [n.id for n in parsed.node],
            "attestor": agent.attestor.address,
            "payer": agent.payer_address,
            "mode": parsed.agent.mode,
            "chain_id": agent.suite.manifest.chain_id,
        }
    finally:
        agent.close()
    if json_output:
        console.print_json(summary)
        return
    console.out.print(
        f"config {config} is good: {len(parsed.node)} node(s), attestor {summary['attestor']}, "
        f"payer {summary['payer'] or 'none'}, mode {parsed.agent.mode}"
    )


def _when(at: int | None, now: int | None) -> str:
    if at is None:
        return "never"
    if now is None:
        return format_utc(at)
    ago = now - at
    return f"{format_utc(at)} ({format_duration(ago)} ago)" if ago >= 0 else format_utc(at)


def _node_lines(node: NodeStatusView, view: AgentStatusView) -> list[str]:
    lines = []
    for item in node.pending:
        sent = f", sent {_when(item.sent_at, view.chain_time)}" if item.sent_at else ""
        where = f" -> {item.file}" if item.file else ""
        lines.append(f"  node {node.node_id} epoch {item.epoch}: {item.state}{sent}{where}")
    for held in node.held:
        if held.state != "skipped":
            lines.append(f"  node {node.node_id} epoch {held.epoch}: {held.state}: {held.reason}")
    return lines


@app.command("status")
def status(config: ConfigPath, json_output: Json = False) -> None:
    """What the agent did and what is pending, from its state file (works while it runs):
    per node its last scrape, epochs by state, what waits, when the next epoch ends and
    the last redemption."""
    from edgeshare.agent import load_agent_config, read_status

    view = read_status(load_agent_config(config))
    if json_output:
        data: Any = console.amounts_as_strings(view.model_dump(), {"amount", "redeemed_total"})
        console.print_json(data)
        return
    now = view.chain_time
    console.out.print(
        f"state {view.state}; chain {view.chain_id}, mode {view.mode}; chain time "
        + (f"{format_utc(now)} (epoch {view.current_epoch}, estimated)" if now else "unknown")
    )
    rows = []
    for node in view.nodes:
        r = node.reports
        scrape = (
            "never"
            if node.last_scrape_at is None
            else f"{_when(node.last_scrape_at, now)} {'ok' if node.last_scrape_ok else 'FAILED'}"
        )
        ends = (
            f"{node.next_epoch} ends {format_utc(node.next_epoch_ends_at)}"
            if node.next_epoch is not None and node.next_epoch_ends_at is not None
            else "-"
        )
        redemption = node.last_redemption
        redeemed = (
            f"{redemption.state} {_when(redemption.at, now)}: {redemption.amount} units"
            if redemption
            else "-"
        )
        rows.append(
            [
                node.node_id,
                scrape,
                r["built"],
                r["signed"],
                r["posted"] + r["written"],
                r["settled"],
                r["held"],
                r["skipped"],
                ends,
                redeemed,
            ]
        )
    console.print_table(
        "Agent",
        [
            "node",
            "last scrape",
            "built",
            "signed",
            "posted",
            "settled",
            "held",
            "skipped",
            "next epoch",
            "last redemption",
        ],
        rows,
    )
    details = [line for node in view.nodes for line in _node_lines(node, view)]
    if details:
        console.out.print("pending and held:\n" + "\n".join(details))
