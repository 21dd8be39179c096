"""Register the nodes of a node list not registered yet (idempotent, by external id).

brownie run scripts/register_nodes.py main nodes.yaml [manifest.json] --network NAME
"""

from __future__ import annotations

from pathlib import Path

from edgeshare.brownie_support import get_suite, get_transactor
from edgeshare.nodes import Registration, read_nodes_file, register_nodes


def main(nodes_file: str, manifest: str = "") -> list[Registration]:
    """Register; returns one line per entry (registered or already registered)."""
    entries = read_nodes_file(Path(nodes_file))
    done = register_nodes(get_transactor(), get_suite(manifest), entries)
    for r in done:
        print(f"node {r.node_id:>5}  {r.action:<18} {r.external_id} ({r.operator})")
    return done
