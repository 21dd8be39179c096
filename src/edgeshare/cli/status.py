"""``edgeshare status``: the chain's clock and epoch; for nodes, an operator or an investor,
what is pending, when it becomes final, what can be withdrawn or claimed, what is vesting;
the nodes' recent channel revenue; a customer's payment channels."""

from __future__ import annotations

from typing import Annotated

import typer

from edgeshare.cli import console
from edgeshare.cli.common import Json, ManifestPath, Network, RpcUrl, open_suite
from edgeshare.models import parse_address
from edgeshare.roles import fetch_owed
from edgeshare.status import (
    ChannelView,
    Clock,
    NodeView,
    Position,
    fetch_clock,
    fetch_customer_channels,
    fetch_node_views,
    fetch_operated,
    fetch_positions,
)
from edgeshare.suite import get_share_token
from edgeshare.units import (
    Token,
    format_bps,
    format_duration,
    format_price,
    format_utc,
)
from edgeshare.web.views import build_status_json


def status(
    node: Annotated[
        list[int] | None, typer.Option("--node", help="Show these nodes (repeatable).")
    ] = None,
    operator: Annotated[
        str | None,
        typer.Option("--operator", help="Show this operator's nodes and what it can withdraw."),
    ] = None,
    investor: Annotated[
        str | None,
        typer.Option("--investor", help="Show what this address can claim and what vests."),
    ] = None,
    customer: Annotated[
        str | None,
        typer.Option("--customer", help="Show this address's payment channels to nodes."),
    ] = None,
    rpc_url: RpcUrl = None,
    network: Network = None,
    manifest: ManifestPath = None,
    json_output: Json = False,
) -> None:
    """Where things stand now: chain time, the current epoch and when it ends; pending
    reports and when each becomes final; what is owed, claimable and vesting; the nodes'
    channel revenue of recent epochs; a customer's channels and their balances."""
    operator_address = parse_address(operator, "--operator") if operator else None
    investor_address = parse_address(investor, "--investor") if investor else None
    customer_address = parse_address(customer, "--customer") if customer else None
    with open_suite(rpc_url, network, manifest) as suite:
        clock = fetch_clock(suite)
        coin = suite.fetch_stablecoin_token()
        node_ids = list(node or [])
        owed = None
        if operator_address:
            node_ids += [n for n in fetch_operated(suite, operator_address) if n not in node_ids]
            owed = fetch_owed(suite, operator_address)
        views = fetch_node_views(suite, clock, node_ids) if node_ids else []
        positions = fetch_positions(suite, investor_address) if investor_address else None
        channels = (
            fetch_customer_channels(suite, clock, customer_address) if customer_address else None
        )
    if json_output:
        console.print_json(build_status_json(clock, coin, views, owed, positions, channels))
        return
    _print_clock(clock)
    if views:
        _print_nodes(clock, coin, views)
    if owed is not None:
        console.out.print(f"{operator_address} can withdraw {coin.format(owed)} now")
    if positions is not None:
        _print_positions(clock, coin, investor_address or "", positions)
    if channels is not None:
        _print_channels(coin, customer_address or "", channels)


def _print_clock(clock: Clock) -> None:
    left = clock.epoch_ends_at - clock.chain_time
    console.out.print(
        f"chain {clock.chain_id}, block {clock.block:,}, chain time {format_utc(clock.chain_time)}"
        f"; epoch {clock.current_epoch} ends {format_utc(clock.epoch_ends_at)} "
        f"(in {format_duration(left)})" + ("; the suite is PAUSED" if clock.paused else "")
    )
    lag = clock.describe_lag()
    if lag:
        console.note(lag)


def _print_nodes(clock: Clock, coin: Token, views: list[NodeView]) -> None:
    rows = []
    for v in views:
        cut = format_bps(v.operator_cut_bps)
        if v.pending_cut_from:
            cut += f" ({format_bps(v.pending_cut_bps)} from {format_utc(v.pending_cut_from)})"
        elif v.next_operator_cut_bps != v.operator_cut_bps:
            cut += f" ({format_bps(v.next_operator_cut_bps)} next epoch)"
        price = format_price(v.price_per_1k, coin)
        if v.next_price_per_1k != v.price_per_1k:
            price += f" ({coin.format(v.next_price_per_1k)} next epoch)"
        vesting = (
            f"{coin.format(v.unvested)} until {format_utc(v.vesting_ends_at)}"
            if v.unvested
            else "-"
        )
        rows.append([v.node_id, v.status, price, cut, len(v.pending), vesting,
                     coin.format(v.operator_owed)])  # fmt: skip
    console.print_table(
        "Nodes",
        ["node", "status", "price", "operator cut", "pending reports", "holders' vesting",
         "operator can withdraw"],
        rows,
    )  # fmt: skip
    _print_channel_revenue(coin, views)
    pending = [p for v in views for p in v.pending]
    if not pending:
        return
    console.print_table(
        "Pending reports (final when the challenge window has passed)",
        ["node", "epoch", "revenue", "final at", "state"],
        [
            [p.node_id, p.epoch, coin.format(p.revenue), format_utc(p.finalizable_at),
             "due: `attest finalize` pays it out" if p.due
             else f"in {format_duration(p.finalizable_at - clock.chain_time)}"]
            for p in pending
        ],
    )  # fmt: skip


def _print_channel_revenue(coin: Token, views: list[NodeView]) -> None:
    rows = [
        [v.node_id, e.epoch, coin.format(e.amount), "in progress" if e.current else "ended"]
        for v in views
        for e in v.channel_revenue
        if e.amount
    ]
    if rows:
        console.print_table(
            "Channel revenue of recent epochs (customers' vouchers, split at once)",
            ["node", "epoch", "channel revenue", "state"],
            rows,
        )


def _print_channels(coin: Token, customer: str, channels: list[ChannelView]) -> None:
    if not channels:
        console.out.print(f"{customer} has no payment channel")
        return
    rows = []
    for c in channels:
        when = "-"
        if c.withdrawable_at:
            verb = "withdrawable since" if c.state == "withdrawable" else "withdrawable from"
            when = f"{verb} {format_utc(c.withdrawable_at)}"
        threshold = coin.format(c.low_balance_threshold) if c.low_balance_threshold else "-"
        rows.append([c.node_id, c.state, coin.format(c.unredeemed), coin.format(c.redeemed),
                     c.generation, when, threshold])  # fmt: skip
    console.print_table(
        f"Payment channels of {customer}",
        ["node", "state", "unredeemed", "redeemed", "generation", "close", "low-balance at"],
        rows,
    )
    for c in channels:
        if c.low_balance:
            console.warn(
                f"the channel to node {c.node_id} holds {coin.format(c.unredeemed)}, below its "
                f"low-balance threshold of {coin.format(c.low_balance_threshold)}: top it up "
                f"(`edgeshare channel deposit {c.node_id} AMOUNT`)"
            )


def _print_positions(clock: Clock, coin: Token, investor: str, positions: list[Position]) -> None:
    if not positions:
        console.out.print(f"{investor} holds no shares and has nothing to claim")
        return
    console.print_table(
        f"Positions of {investor}",
        ["node", "shares", "claimable now", "vesting (at its shares now)", "vesting ends"],
        [
            [p.node_id, get_share_token(p.node_id).format(p.shares), coin.format(p.claimable),
             coin.format(p.vesting),
             format_utc(p.vesting_ends_at) if p.vesting and p.vesting_ends_at > clock.chain_time
             else "-"]
            for p in positions
        ],
    )  # fmt: skip
    console.out.print(
        f"claimable now {coin.format(sum(p.claimable for p in positions))}; vesting "
        f"{coin.format(sum(p.vesting for p in positions))} (`edgeshare claim` claims it all)"
    )
