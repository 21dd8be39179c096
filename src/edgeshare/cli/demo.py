"""``edgeshare demo``: the whole story on a local chain started and stopped here."""

from __future__ import annotations

from typing import Annotated

import typer

from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.cli import console
from edgeshare.cli.common import Json
from edgeshare.demo import get_accounts_needed, run_demo
from edgeshare.errors import InputError


def demo(
    nodes: Annotated[int, typer.Option(help="Nodes to register (1-5).")] = 3,
    investors: Annotated[int, typer.Option(help="Investors buying shares.")] = 4,
    days: Annotated[int, typer.Option(help="Days of revenue.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed; the same seed gives the same numbers.")] = 7,
    engine: Annotated[str, typer.Option(help="anvil or ganache.")] = "anvil",
    json_output: Json = False,
) -> None:
    """Run the EdgeShare story end to end on a fresh local chain."""
    if not 1 <= nodes <= 5:
        raise InputError("--nodes must be 1 to 5")
    if investors < 1 or days < 1:
        raise InputError("--investors and --days must be at least 1")
    needed = get_accounts_needed(nodes, investors)
    with LocalChain(engine, accounts=needed) as chain:  # type: ignore[arg-type]
        log = (lambda _m: None) if json_output else console.note
        log(f"started {engine} at {chain.url}")
        summary = run_demo(
            connect(chain.url), build_dev_keys(needed), nodes=nodes, investors=investors,
            days=days, seed=seed, log=log,
        )  # fmt: skip
    if json_output:
        console.print_json(summary.model_dump())
        return
    console.print_table(
        "Nodes (stablecoin base units, 6 decimals)",
        ["node", "region", "price/1k", "gross", "to holders", "operator cut", "protocol fee"],
        [[n.node_id, n.region, n.price_per_1k, n.gross, n.holders, n.operator, n.fee]
         for n in summary.nodes],
    )  # fmt: skip
    console.print_table(
        "Investors", ["address", "claimed"], [[i.address, i.claimed] for i in summary.investors]
    )
    console.print_table(
        "Every base unit accounted for",
        ["reports", "settle txs", "paid in", "claimed", "withdrawn", "claimable", "unvested",
         "dust"],
        [[summary.reports_settled, summary.settle_transactions, summary.paid_in,
          summary.claimed_by_holders, summary.withdrawn_by_operators_and_treasury,
          summary.still_claimable, summary.still_unvested, summary.dust]],
    )  # fmt: skip
    console.note("the local chain has been stopped")
