"""``edgeshare basket``: one token over many nodes' shares.

``create`` (anyone), ``mint`` and ``redeem`` (holders of the shares / of the basket),
``harvest`` (anyone: releases what the shares earned to the basket's holders), and
``status``. A basket's holders claim with ``edgeshare claim``, together with their nodes'
revenue. Every command is a thin layer over ``edgeshare.baskets``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from edgeshare import baskets as lib
from edgeshare.cli import console
from edgeshare.cli.common import BaseUnits, Json, ManifestPath, Network, RpcUrl, open_suite
from edgeshare.cli.roles import Outcome, sends
from edgeshare.errors import InputError
from edgeshare.suite import Suite, get_share_token
from edgeshare.tx import Transactor
from edgeshare.units import SHARE_DECIMALS, Token

app = typer.Typer(
    help="Baskets: one token over many nodes' shares, earning all their revenue.",
    no_args_is_help=True,
)

BasketArg = Annotated[str, typer.Argument(help="The basket's address.")]
UNITS = Token(SHARE_DECIMALS, "units")
"""How basket units are shown and typed: 18 decimals, like shares."""


def _parse_component(text: str, base_units: bool) -> tuple[int, int]:
    node, sep, weight = text.partition(":")
    if not sep or not node.strip().isdigit():
        raise InputError(
            f"--component {text!r}: expected NODE:WEIGHT, e.g. 3:1.5 (1.5 shares of node 3 "
            "per basket unit)"
        )
    node_id = int(node)
    what = f"the weight of node {node_id} (--component)"
    value = get_share_token(node_id).parse(weight.strip(), what, base_units=base_units)
    return node_id, value


def _units(text: str, base_units: bool) -> int:
    value = UNITS.parse(text, "UNITS", base_units=base_units)
    if value == 0:
        raise InputError("UNITS: 0 units; nothing to do")
    return value


@sends(app, "create")
def create(
    tx: Transactor,
    suite: Suite,
    name: Annotated[str, typer.Option("--name", help="Token name, e.g. 'EdgeShare Asia 5'.")],
    symbol: Annotated[str, typer.Option("--symbol", help="Token symbol, e.g. ESBASIA.")],
    component: Annotated[
        list[str],
        typer.Option(
            "--component",
            help="NODE:WEIGHT, whole shares of the node per basket unit (repeatable, 1-32).",
        ),
    ],
    base_units: BaseUnits = False,
) -> Outcome:
    """Create a basket over up to 32 nodes with fixed weights (anyone may)."""
    weights = [_parse_component(c, base_units) for c in component]
    components = lib.build_components(suite, weights)
    action = lib.send_create_basket(tx, suite, name, symbol, components)
    return action, f"created basket {symbol} at {action.details['basket'] or '(dry run)'}"


@sends(app, "mint")
def mint(
    tx: Transactor,
    suite: Suite,
    basket: BasketArg,
    units: Annotated[str, typer.Argument(help="Basket units, whole (e.g. 10 or 0.5).")],
    base_units: BaseUnits = False,
) -> Outcome:
    """Mint basket units from your shares of each component (approves the basket on each
    share that needs it); the basket harvests first, so you earn from now on."""
    value = _units(units, base_units)
    action = lib.send_mint(tx, suite, basket, value)
    action.details["shares"] = [str(s) for s in action.details["shares"]]
    return action, f"minted {UNITS.format(value)} of basket {basket}"


@sends(app, "redeem")
def redeem(
    tx: Transactor,
    suite: Suite,
    basket: BasketArg,
    units: Annotated[str, typer.Argument(help="Basket units, whole (e.g. 10 or 0.5).")],
    base_units: BaseUnits = False,
) -> Outcome:
    """Give back basket units for each component's shares; what they earned stays yours
    to claim."""
    value = _units(units, base_units)
    action = lib.send_redeem(tx, suite, basket, value)
    action.details["shares"] = [str(s) for s in action.details["shares"]]
    return action, f"redeemed {UNITS.format(value)} of basket {basket}"


@sends(app, "harvest")
def harvest(tx: Transactor, suite: Suite, basket: BasketArg) -> Outcome:
    """Claim what the basket's shares earned and release it to its holders (anyone may)."""
    action = lib.send_harvest(tx, suite, basket)
    coin = suite.fetch_stablecoin_token()
    return action, f"harvested {coin.format(action.details['amount'])} for basket {basket}"


@app.command("status")
def status(
    basket: Annotated[
        str | None, typer.Argument(help="One basket's address (default: every basket).")
    ] = None,
    rpc_url: RpcUrl = None,
    network: Network = None,
    manifest: ManifestPath = None,
    json_output: Json = False,
) -> None:
    """Baskets with their components, supply, what they harvested and can harvest now."""
    with open_suite(rpc_url, network, manifest) as suite:
        addresses = [lib.require_basket(suite, basket, "BASKET")] if basket else None
        views = lib.fetch_baskets(suite, addresses)
        coin = suite.fetch_stablecoin_token()
    if json_output:
        data: list[dict[str, Any]] = [
            {**v.__dict__, "components": [c.__dict__ for c in v.components]} for v in views
        ]
        amounts = {"supply", "harvested", "harvestable", "weight"}
        console.print_json(
            {"decimals": coin.decimals, "baskets": console.amounts_as_strings(data, amounts)}
        )
        return
    if not views:
        console.note("no baskets yet: `edgeshare basket create` makes one")
        return
    console.print_table(
        "Baskets",
        ["basket", "symbol", "components (shares per unit)", "supply", "harvested", "harvestable"],
        [
            [v.address, v.symbol,
             ", ".join(f"{c.node_id}:{get_share_token(c.node_id).format(c.weight)}"
                       for c in v.components),
             UNITS.format(v.supply), coin.format(v.harvested), coin.format(v.harvestable)]
            for v in views
        ],
    )  # fmt: skip
