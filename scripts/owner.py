"""What the suite's owner does, as brownie scripts (the same library as `edgeshare owner`).

brownie run scripts/owner.py set_registrar|set_guardian|set_treasury ADDRESS [manifest.json]
brownie run scripts/owner.py transfer_ownership ADDRESS [manifest.json] --network NAME
brownie run scripts/owner.py accept_ownership [manifest.json] --network NAME
"""

from __future__ import annotations

from edgeshare import roles
from edgeshare.brownie_support import get_suite, get_transactor
from edgeshare.roles import Action


def _done(action: Action) -> Action:
    print(f"{action.what}: transaction {action.transaction} ({action.gas:,} gas)")
    return action


def set_registrar(account: str, manifest: str = "") -> Action:
    """Appoint the registrar."""
    return _done(roles.send_set_role(get_transactor(), get_suite(manifest), "registrar", account))


def set_guardian(account: str, manifest: str = "") -> Action:
    """Appoint the guardian."""
    return _done(roles.send_set_role(get_transactor(), get_suite(manifest), "guardian", account))


def set_treasury(account: str, manifest: str = "") -> Action:
    """Move where future protocol fees accrue."""
    return _done(roles.send_set_treasury(get_transactor(), get_suite(manifest), account))


def transfer_ownership(account: str, manifest: str = "") -> Action:
    """Propose a new owner (who accepts with accept_ownership)."""
    return _done(roles.send_transfer_ownership(get_transactor(), get_suite(manifest), account))


def accept_ownership(manifest: str = "") -> Action:
    """Become the owner this account was proposed as."""
    return _done(roles.send_accept_ownership(get_transactor(), get_suite(manifest)))
