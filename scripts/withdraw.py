"""Withdraw what the router owes this account: treasury fees, operator cuts, refunds.

brownie run scripts/withdraw.py main [receiver] [manifest.json] --network NAME
"""

from __future__ import annotations

from edgeshare import roles
from edgeshare.brownie_support import get_suite, get_transactor
from edgeshare.roles import Action


def main(receiver: str = "", manifest: str = "") -> Action:
    """Withdraw everything owed to ``receiver`` (default: this account)."""
    suite = get_suite(manifest)
    action = roles.send_withdraw(get_transactor(), suite, receiver or None)
    amount = suite.fetch_stablecoin_token().format(int(action.details["amount"]))
    print(f"{action.what}: {amount} in transaction {action.transaction}")
    return action
