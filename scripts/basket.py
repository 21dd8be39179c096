"""Baskets as brownie scripts (the same library as `edgeshare basket`).

brownie run scripts/basket.py create NAME SYMBOL NODE:WEIGHT,... [manifest.json] --network NAME
brownie run scripts/basket.py mint|redeem BASKET UNITS [manifest.json]
brownie run scripts/basket.py harvest BASKET [manifest.json]

WEIGHT is whole shares of the node per basket unit (1.5); UNITS are whole basket units.
A basket's holders claim with scripts/claim.py (nodes and baskets in one transaction).
"""

from __future__ import annotations

from edgeshare import baskets
from edgeshare.brownie_support import get_suite, get_transactor
from edgeshare.errors import InputError
from edgeshare.roles import Action
from edgeshare.suite import get_share_token
from edgeshare.units import SHARE_DECIMALS, Token

UNITS = Token(SHARE_DECIMALS, "units")


def _done(action: Action) -> Action:
    print(f"{action.what}: transaction {action.transaction} ({action.gas:,} gas)")
    return action


def _weights(spec: str) -> list[tuple[int, int]]:
    out = []
    for part in spec.split(","):
        node, sep, weight = part.partition(":")
        if not sep or not node.strip().isdigit():
            raise InputError(f"component {part!r}: expected NODE:WEIGHT, e.g. 3:1.5")
        node_id = int(node)
        out.append((node_id, get_share_token(node_id).parse(weight.strip(), f"node {node_id}")))
    return out


def create(name: str, symbol: str, components: str, manifest: str = "") -> Action:
    """Create a basket over the named nodes with the given weights."""
    suite = get_suite(manifest)
    built = baskets.build_components(suite, _weights(components))
    action = _done(baskets.send_create_basket(get_transactor(), suite, name, symbol, built))
    print(f"basket {symbol} at {action.details['basket']}")
    return action


def mint(basket: str, units: str, manifest: str = "") -> Action:
    """Mint basket units from this account's shares of each component."""
    value = UNITS.parse(units, "UNITS")
    return _done(baskets.send_mint(get_transactor(), get_suite(manifest), basket, value))


def redeem(basket: str, units: str, manifest: str = "") -> Action:
    """Give back basket units for the component shares."""
    value = UNITS.parse(units, "UNITS")
    return _done(baskets.send_redeem(get_transactor(), get_suite(manifest), basket, value))


def harvest(basket: str, manifest: str = "") -> Action:
    """Release what the basket's shares earned to its holders."""
    return _done(baskets.send_harvest(get_transactor(), get_suite(manifest), basket))
