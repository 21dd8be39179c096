"""What investors do: ``shares transfer``, ``portfolio``, ``claim``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeshare.baskets import fetch_basket_holdings
from edgeshare.cli import console
from edgeshare.cli.basket import UNITS
from edgeshare.cli.common import (
    BaseUnits,
    Confirmations,
    DryRun,
    Json,
    Keystore,
    ManifestPath,
    Network,
    PrivateKeyEnv,
    RpcUrl,
    open_sender,
    open_suite,
)
from edgeshare.errors import InputError
from edgeshare.market import ClaimResult, fetch_portfolio, send_claims
from edgeshare.models import parse_address
from edgeshare.offerings import Commitment, fetch_commitments
from edgeshare.orders import MakerOrder, fetch_orders_of
from edgeshare.suite import get_share_token, send_transfer_shares
from edgeshare.units import Token, format_bps, format_utc
from edgeshare.web.views import build_open_order_json, build_portfolio_json

shares_app = typer.Typer(help="Move node shares.", no_args_is_help=True)


@shares_app.command("transfer")
def transfer(
    node_id: Annotated[int, typer.Argument(help="The node whose shares move.")],
    receiver: Annotated[str, typer.Argument(help="The new holder.")],
    amount: Annotated[
        str,
        typer.Argument(
            help="Whole shares (250000, 0.5), or 'all' (with --base-units: base units)."
        ),
    ],
    rpc_url: RpcUrl = None,
    network: Network = None,
    private_key_env: PrivateKeyEnv = None,
    keystore: Keystore = None,
    manifest: ManifestPath = None,
    confirmations: Confirmations = 1,
    base_units: BaseUnits = False,
    dry_run: DryRun = False,
    json_output: Json = False,
) -> None:
    """Transfer shares of a node; revenue earned so far stays with the sender."""
    to = parse_address(receiver, "RECEIVER")
    unit = get_share_token(node_id)
    value = None if amount == "all" else unit.parse(amount, "AMOUNT", base_units=base_units)
    if value == 0:
        raise InputError("AMOUNT: 0 shares; nothing to transfer")
    opened = open_sender(
        rpc_url, network, private_key_env, keystore, manifest, confirmations, dry_run=dry_run
    )
    with opened as (suite, tx):
        signer = tx.signer
        balance = int(suite.share(node_id).call("balanceOf", signer.address))
        value = balance if value is None else value
        if value > balance or value == 0:
            raise InputError(
                f"{signer.address} holds {unit.format(balance)} of node {node_id}, "
                f"not {unit.format(value)}"
            )
        send_transfer_shares(tx, suite, node_id, to, value)
    if dry_run:
        console.print_planned(tx.planned, json_output)
        return
    if json_output:
        console.print_json(
            {"node_id": node_id, "from": signer.address, "to": to, "amount": str(value),
             "decimals": unit.decimals}
        )  # fmt: skip
    else:
        console.out.print(f"transferred {unit.format(value)} of node {node_id} to {to}")


def portfolio(
    address: Annotated[str, typer.Argument(help="The investor.")],
    orders: Annotated[
        list[Path] | None,
        typer.Option(
            "--orders",
            help="Orders files or folders: list the investor's open orders among them "
            "(repeatable).",
            show_default=False,
        ),
    ] = None,
    rpc_url: RpcUrl = None,
    network: Network = None,
    manifest: ManifestPath = None,
    json_output: Json = False,
) -> None:
    """An investor's shares across all nodes and its basket units, with claimable and
    vesting revenue per node and basket and in total, and its offering commitments with
    what each is due now; with ``--orders``, its open orders among those files."""
    holder = parse_address(address, "ADDRESS")
    with open_suite(rpc_url, network, manifest) as suite:
        holdings = fetch_portfolio(suite, holder)
        units = fetch_basket_holdings(suite, holder)
        commitments = fetch_commitments(suite, holder)
        open_orders = fetch_orders_of(suite, holder, orders) if orders else []
        coin = suite.fetch_stablecoin_token()
    if json_output:
        rows = [build_open_order_json(o.status, o.label, str(o.filed.path), o.filed.index)
                for o in open_orders]  # fmt: skip
        console.print_json(build_portfolio_json(holder, holdings, units, commitments, rows, coin))
        return
    total = sum(h.claimable for h in holdings) + sum(b.claimable for b in units)
    vesting = sum(h.vesting for h in holdings)
    if not holdings and not units and not commitments and not open_orders:
        console.note(
            f"{holder} holds no shares or basket units, has nothing to claim and no offering "
            "commitments"
        )
        return
    console.print_table(
        f"Portfolio of {holder}",
        ["holding", "amount", "of supply", "claimable", "vesting"],
        [
            [f"node {h.node_id}", get_share_token(h.node_id).format(h.shares),
             format_bps(h.shares * 10_000 // h.supply), coin.format(h.claimable),
             coin.format(h.vesting)]
            for h in holdings
        ]
        + [
            [f"basket {b.symbol}", UNITS.format(b.units),
             format_bps(b.units * 10_000 // b.supply) if b.supply else "-",
             coin.format(b.claimable), "-"]
            for b in units
        ]
        + [["total", "", "", coin.format(total), coin.format(vesting)]],
    )  # fmt: skip
    _print_commitments(commitments, coin)
    _print_orders(open_orders, coin)


def _print_commitments(commitments: list[Commitment], coin: Token) -> None:
    if not commitments:
        return
    console.print_table(
        "Offerings committed to",
        ["offering", "node", "state", "committed", "buys", "due now"],
        [
            [c.offering.address, c.offering.node_id, c.offering.state.lower(),
             coin.format(c.committed), get_share_token(c.offering.node_id).format(c.shares),
             _due(c, coin)]
            for c in commitments
        ],
    )  # fmt: skip


def _print_orders(open_orders: list[MakerOrder], coin: Token) -> None:
    if not open_orders:
        return
    console.print_table(
        "Open orders",
        ["side", "token", "remaining", "price per share", "expires (UTC)", "file"],
        [
            ["sell" if o.status.order.sell else "buy", o.label.symbol,
             o.label.token.format(o.status.remaining), coin.format(o.status.order.price_per_share),
             format_utc(o.status.order.expiry), f"{o.filed.path}#{o.filed.index}"]
            for o in open_orders
        ],
    )  # fmt: skip


def _due(c: Commitment, coin: Token) -> str:
    if c.shares_due:
        return f"{get_share_token(c.offering.node_id).format(c.shares_due)} (offering claim)"
    if c.refund_due:
        return f"{coin.format(c.refund_due)} (offering refund)"
    return (
        "delivered"
        if c.claimed and c.offering.state == "SUCCEEDED"
        else ("refunded" if c.claimed else "-")
    )


def claim(
    node: Annotated[
        list[int] | None, typer.Option("--node", help="Only these nodes (repeatable).")
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Send the revenue to this address.")
    ] = None,
    rpc_url: RpcUrl = None,
    network: Network = None,
    private_key_env: PrivateKeyEnv = None,
    keystore: Keystore = None,
    manifest: ManifestPath = None,
    confirmations: Confirmations = 1,
    dry_run: DryRun = False,
    json_output: Json = False,
) -> None:
    """Claim everything you can claim, from every node and basket (or the named nodes), in
    one transaction per 64 tokens (the PortfolioClaimer)."""
    receiver = parse_address(to, "--to") if to else None
    opened = open_sender(
        rpc_url, network, private_key_env, keystore, manifest, confirmations, dry_run=dry_run
    )
    with opened as (suite, tx):
        signer = tx.signer
        coin = suite.fetch_stablecoin_token()
        with console.progress(disabled=json_output) as progress:
            results = send_claims(tx, suite, node, receiver, progress)
    if dry_run:
        console.print_planned(tx.planned, json_output)
        return
    total = sum(r.amount for r in results)
    if json_output:
        claims = [{**r.__dict__, "amount": str(r.amount)} for r in results]
        console.print_json({"total": str(total), "decimals": coin.decimals, "claims": claims})
        return
    if not results:
        console.out.print(f"nothing to claim for {signer.address}")
        return
    console.print_table(
        "Claimed",
        ["from", "amount", "receiver", "transaction"],
        [[_source(r), coin.format(r.amount), r.receiver, r.transaction] for r in results]
        + [["total", coin.format(total), "", ""]],
    )
    transactions = len({r.transaction for r in results})
    console.note(f"{len(results)} claim(s) in {transactions} transaction(s)")


def _source(result: ClaimResult) -> str:
    return f"node {result.node_id}" if result.basket is None else f"basket {result.basket}"
