"""What investors do: ``shares transfer``, ``portfolio``, ``claim``."""

from __future__ import annotations

from typing import Annotated

import typer

from edgeshare.cli import console
from edgeshare.cli.common import (
    Confirmations,
    Json,
    Keystore,
    ManifestPath,
    Network,
    PrivateKeyEnv,
    RpcUrl,
    open_sender,
    open_suite,
    parse_address,
)
from edgeshare.errors import InputError
from edgeshare.market import fetch_portfolio, send_claims
from edgeshare.reports import format_units
from edgeshare.suite import send_transfer_shares

shares_app = typer.Typer(help="Move node shares.", no_args_is_help=True)


@shares_app.command("transfer")
def transfer(
    node_id: Annotated[int, typer.Argument(help="The node whose shares move.")],
    receiver: Annotated[str, typer.Argument(help="The new holder.")],
    amount: Annotated[str, typer.Argument(help="Shares in 18-decimal base units, or 'all'.")],
    rpc_url: RpcUrl = None,
    network: Network = None,
    private_key_env: PrivateKeyEnv = None,
    keystore: Keystore = None,
    manifest: ManifestPath = None,
    confirmations: Confirmations = 1,
    json_output: Json = False,
) -> None:
    """Transfer shares of a node; revenue earned so far stays with the sender."""
    to = parse_address(receiver, "RECEIVER")
    if amount != "all" and not (amount.isascii() and amount.isdigit()):
        raise InputError(
            f"AMOUNT must be a whole number of share base units or 'all', got {amount!r}"
        )
    with open_sender(rpc_url, network, private_key_env, keystore, manifest, confirmations) as (
        suite,
        tx,
    ):
        signer = tx.signer
        share = suite.share(node_id)
        balance = int(share.call("balanceOf", signer.address))
        value = balance if amount == "all" else int(amount)
        if value > balance:
            raise InputError(
                f"{signer.address} holds {balance} share base units of node {node_id}, not {value}"
            )
        send_transfer_shares(tx, suite, node_id, to, value)
    result = {"node_id": node_id, "from": signer.address, "to": to, "amount": value}
    if json_output:
        console.print_json(result)
    else:
        console.out.print(f"transferred {format_units(value, 18)} shares of node {node_id} to {to}")


def portfolio(
    address: Annotated[str, typer.Argument(help="The investor.")],
    rpc_url: RpcUrl = None,
    network: Network = None,
    manifest: ManifestPath = None,
    json_output: Json = False,
) -> None:
    """An investor's shares across all nodes, with claimable revenue per node and in total."""
    holder = parse_address(address, "ADDRESS")
    with open_suite(rpc_url, network, manifest) as suite:
        holdings = fetch_portfolio(suite, holder)
    total = sum(h.claimable for h in holdings)
    if json_output:
        console.print_json(
            {"holder": holder, "total_claimable": total, "holdings": [h.__dict__ for h in holdings]}
        )
        return
    console.print_table(
        f"Portfolio of {holder}",
        ["node", "shares", "of supply (bps)", "claimable (base units)"],
        [
            [h.node_id, format_units(h.shares, 18), h.shares * 10_000 // h.supply, h.claimable]
            for h in holdings
        ]
        + [["total", "", "", total]],
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
    json_output: Json = False,
) -> None:
    """Claim every node with revenue to claim (or the named ones), one transaction per node."""
    receiver = parse_address(to, "--to") if to else None
    with open_sender(rpc_url, network, private_key_env, keystore, manifest, confirmations) as (
        suite,
        tx,
    ):
        signer = tx.signer
        with console.progress(disabled=json_output) as progress:
            results = send_claims(tx, suite, node, receiver, progress)
    total = sum(r.amount for r in results)
    if json_output:
        console.print_json({"total": total, "claims": [r.__dict__ for r in results]})
        return
    if not results:
        console.out.print(f"nothing to claim for {signer.address}")
        return
    console.print_table(
        "Claimed",
        ["node", "amount (base units)", "receiver", "transaction"],
        [[r.node_id, r.amount, r.receiver, r.transaction] for r in results]
        + [["total", total, "", ""]],
    )
