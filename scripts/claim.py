"""Claim the account's revenue from every node with something to claim.

brownie run scripts/claim.py main [manifest.json] [receiver] --network NAME
"""

from __future__ import annotations

from edgeshare.brownie_support import get_suite, get_transactor
from edgeshare.market import ClaimResult, send_claims


def main(manifest: str = "", receiver: str = "") -> list[ClaimResult]:
    """Claim; returns what each node paid."""
    results = send_claims(get_transactor(), get_suite(manifest), None, receiver or None)
    for r in results:
        print(f"node {r.node_id:>5}  {r.amount} base units -> {r.receiver}")
    print(f"total {sum(r.amount for r in results)} base units")
    return results
