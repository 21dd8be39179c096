"""What a node's operator does, as brownie scripts (the same library as `edgeshare operator`).

brownie run scripts/operator.py set_price NODE_ID PRICE [manifest.json] --network NAME
brownie run scripts/operator.py propose_cut NODE_ID PERCENT [manifest.json] --network NAME
brownie run scripts/operator.py rotate_attestor NODE_ID ADDRESS [manifest.json]
brownie run scripts/operator.py pause|resume NODE_ID [manifest.json]
brownie run scripts/operator.py set_metadata NODE_ID URI [manifest.json]
brownie run scripts/operator.py withdraw [receiver] [manifest.json]

PRICE is whole stablecoin units per 1,000 inferences (0.45), PERCENT is e.g. 12.5.
"""

from __future__ import annotations

from edgeshare import roles
from edgeshare.brownie_support import get_suite, get_transactor
from edgeshare.roles import Action
from edgeshare.suite import NodeStatus
from edgeshare.units import parse_bps


def _done(action: Action) -> Action:
    print(f"{action.what}: transaction {action.transaction} ({action.gas:,} gas)")
    return action


def set_price(node_id: str, price: str, manifest: str = "") -> Action:
    """Set the node's price from the next epoch on."""
    suite = get_suite(manifest)
    value = suite.fetch_stablecoin_token().parse(price, "PRICE")
    return _done(roles.send_set_price(get_transactor(), suite, int(node_id), value))


def propose_cut(node_id: str, percent: str, manifest: str = "") -> Action:
    """Propose a new operator cut (an increase waits at least 7 days)."""
    bps = parse_bps(percent, "PERCENT")
    return _done(roles.send_propose_cut(get_transactor(), get_suite(manifest), int(node_id), bps))


def rotate_attestor(node_id: str, attestor: str, manifest: str = "") -> Action:
    """Replace the key that signs the node's usage reports."""
    suite = get_suite(manifest)
    return _done(roles.send_rotate_attestor(get_transactor(), suite, int(node_id), attestor))


def pause(node_id: str, manifest: str = "") -> Action:
    """Pause the node from the next epoch on."""
    suite = get_suite(manifest)
    return _done(
        roles.send_set_node_status(get_transactor(), suite, int(node_id), NodeStatus.PAUSED)
    )


def resume(node_id: str, manifest: str = "") -> Action:
    """Resume the node from the current epoch on."""
    suite = get_suite(manifest)
    return _done(
        roles.send_set_node_status(get_transactor(), suite, int(node_id), NodeStatus.ACTIVE)
    )


def set_metadata(node_id: str, uri: str, manifest: str = "") -> Action:
    """Point the node at a new metadata document."""
    return _done(roles.send_set_metadata(get_transactor(), get_suite(manifest), int(node_id), uri))


def withdraw(receiver: str = "", manifest: str = "") -> Action:
    """Withdraw what the router owes this account (operator cuts)."""
    suite = get_suite(manifest)
    action = roles.send_withdraw(get_transactor(), suite, receiver or None)
    print(f"withdrew {suite.fetch_stablecoin_token().format(int(action.details['amount']))}")
    return _done(action)
