"""What the registrar does, as brownie scripts (the same library as `edgeshare registrar`).

brownie run scripts/registrar.py pause|resume|retire NODE_ID [manifest.json] --network NAME
"""

from __future__ import annotations

from edgeshare import roles
from edgeshare.brownie_support import get_suite, get_transactor
from edgeshare.roles import Action
from edgeshare.suite import NodeStatus


def _status(node_id: str, status: NodeStatus, manifest: str) -> Action:
    action = roles.send_set_node_status(get_transactor(), get_suite(manifest), int(node_id), status)
    print(f"{action.what}: transaction {action.transaction} ({action.gas:,} gas)")
    return action


def pause(node_id: str, manifest: str = "") -> Action:
    """Pause a node (only the registrar lifts it)."""
    return _status(node_id, NodeStatus.PAUSED, manifest)


def resume(node_id: str, manifest: str = "") -> Action:
    """Resume a paused node."""
    return _status(node_id, NodeStatus.ACTIVE, manifest)


def retire(node_id: str, manifest: str = "") -> Action:
    """Retire a node for good from the next epoch on."""
    return _status(node_id, NodeStatus.RETIRED, manifest)
