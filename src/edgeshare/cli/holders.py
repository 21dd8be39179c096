"""What investors do: ``shares transfer``, ``portfolio``, ``claim``."""

from __future__ import annotations

from typing import Annotated

import typer

from edgeshare.cli import console
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
from edgeshare.market import fetch_portfolio, send_claims
from edgeshare.models import parse_address
from edgeshare.suite import get_share_token, send_transfer_shares
from edgeshare.units import format_bps

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
    rpc_url: RpcUrl = None,
    network: Network = None,
    manifest: ManifestPath = None,
    json_output: Json = False,
) -> None:
    """An investor's shares across all nodes, with claimable and vesting revenue (usage
    reports' and channels') per node and in total."""
    holder = parse_address(address, "ADDRESS")
    with open_suite(rpc_url, network, manifest) as suite:
        holdings = fetch_portfolio(suite, holder)
        coin = suite.fetch_stablecoin_token()
    total = sum(h.claimable for h in holdings)
    vesting = sum(h.vesting for h in holdings)
    if json_output:
        data = {"holder": holder, "total_claimable": total, "total_vesting": vesting,
                "decimals": coin.decimals, "symbol": coin.symbol,
                "holdings": [h.__dict__ for h in holdings]}  # fmt: skip
        amounts = {"shares", "supply", "claimable", "total_claimable", "vesting", "total_vesting"}
        console.print_json(console.amounts_as_strings(data, amounts))
        return
    if not holdings:
        console.note(f"{holder} holds no shares and has nothing to claim on any node")
        return
    console.print_table(
        f"Portfolio of {holder}",
        ["node", "shares", "of supply", "claimable", "vesting"],
        [
            [h.node_id, get_share_token(h.node_id).format(h.shares),
             format_bps(h.shares * 10_000 // h.supply), coin.format(h.claimable),
             coin.format(h.vesting)]
            for h in holdings
        ]
        + [["total", "", "", coin.format(total), coin.format(vesting)]],
    )  # fmt: skip


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
    """Claim every node with revenue to claim (or the named ones), one transaction per node."""
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
        ["node", "amount", "receiver", "transaction"],
        [[r.node_id, coin.format(r.amount), r.receiver, r.transaction] for r in results]
        + [["total", coin.format(total), "", ""]],
    )
