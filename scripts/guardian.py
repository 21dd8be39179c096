"""What the guardian does, as brownie scripts (the same library as `edgeshare guardian`).

brownie run scripts/guardian.py dispute NODE_ID EPOCH [manifest.json] --network NAME
brownie run scripts/guardian.py pause|unpause [manifest.json] --network NAME
"""

from __future__ import annotations

from edgeshare import roles
from edgeshare.brownie_support import get_suite, get_transactor
from edgeshare.roles import Action


def _done(action: Action) -> Action:
    print(f"{action.what}: transaction {action.transaction} ({action.gas:,} gas)")
    return action


def dispute(node_id: str, epoch: str, manifest: str = "") -> Action:
    """Void a pending report inside its challenge window (its payer is refunded)."""
    suite = get_suite(manifest)
    return _done(roles.send_dispute(get_transactor(), suite, int(node_id), int(epoch)))


def pause(manifest: str = "") -> Action:
    """Pause the suite (claims and withdrawals go on)."""
    return _done(roles.send_pause_suite(get_transactor(), get_suite(manifest), True))


def unpause(manifest: str = "") -> Action:
    """Lift the suite's pause."""
    return _done(roles.send_pause_suite(get_transactor(), get_suite(manifest), False))
