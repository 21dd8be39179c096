"""Withdraw what the router owes this account: treasury fees, operator cuts, refunds.

brownie run scripts/withdraw.py main [receiver] [manifest.json] --network NAME
"""

from __future__ import annotations

from edgeshare import roles
from edgeshare.brownie_support import get_suite, get_transactor
from edgeshare.roles import Action


def main(receiver: str = "", manifest: str = "") -> Action:
    """Withdraw everything owed to ``receiver`` (default: this account)."""
    action = roles.send_withdraw(get_transactor(), get_suite(manifest), receiver or None)
    print(f"{action.what}: {action.details['amount']} base units in {action.transaction}")
    return action
