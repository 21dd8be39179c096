"""Who may call what: every privileged function called by every role that must not call
it reverts with the reason naming the missing role; and what a pause stops and keeps.

The roles are held by different accounts here (a deployment gives the deployer owner,
registrar and guardian at once), so a check on the wrong role cannot pass by accident.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import brownie
import pytest
from brownie import accounts

from tests.conftest import SHARES, Payer, report_args, sign_report

ACTIVE, PAUSED, RETIRED = 1, 2, 4
ZERO = "0x" + "00" * 20


@pytest.fixture(scope="module")
def roles(
    registry: Any,
    deployer: Any,
    operator: Any,
    attestor: Any,
    investor: Any,
    investor2: Any,
    stranger: Any,
    treasury: Any,
    register: Any,
    node: Any,
) -> dict[str, Any]:
    """Every role on its own account; ``other_operator`` runs node 2."""
    registrar, guardian = accounts[8], accounts[9]
    register(operator=investor2.address)  # node 2, before the registrar moves
    registry.set_registrar(registrar, {"from": deployer})
    registry.set_guardian(guardian, {"from": deployer})
    return {
        "owner": deployer, "registrar": registrar, "guardian": guardian,
        "operator": operator, "other_operator": investor2, "attestor": attestor,
        "investor": investor, "stranger": stranger, "treasury": treasury,
    }  # fmt: skip


@dataclass
class Rule:
    """One privileged function: how to call it, who may, and the reason others get."""

    name: str
    call: Callable[[dict[str, Any], Any], Any]
    allowed: tuple[str, ...]
    reason: str


def _rules(registry: Any, router: Any, share: Any, stablecoin: Any) -> list[Rule]:
    new_terms = ("0x" + "11" * 20, "0x" + "22" * 20, SHARES, 1_000, 100, "Lima", "ipfs://x")
    return [
        Rule(
            "transfer_ownership",
            lambda r, who: registry.transfer_ownership(r["stranger"], {"from": who}),
            ("owner",),
            "registry: not owner",
        ),
        Rule(
            "set_registrar",
            lambda r, who: registry.set_registrar(r["stranger"], {"from": who}),
            ("owner",),
            "registry: not owner",
        ),
        Rule(
            "set_guardian",
            lambda r, who: registry.set_guardian(r["stranger"], {"from": who}),
            ("owner",),
            "registry: not owner",
        ),
        Rule(
            "set_router",
            lambda r, who: registry.set_router(router, {"from": who}),
            ("owner",),
            "registry: not owner",
        ),
        Rule(
            "pause",
            lambda r, who: registry.pause({"from": who}),
            ("guardian",),
            "registry: not guardian",
        ),
        Rule(
            "register_node",
            lambda r, who: registry.register_node(*new_terms, {"from": who}),
            ("registrar",),
            "registry: not registrar",
        ),
        Rule(
            "set_price",
            lambda r, who: registry.set_price(1, 2_000, {"from": who}),
            ("operator",),
            "registry: not operator",
        ),
        Rule(
            "rotate_attestor",
            lambda r, who: registry.rotate_attestor(1, r["stranger"], {"from": who}),
            ("operator",),
            "registry: not operator",
        ),
        Rule(
            "propose_operator_cut",
            lambda r, who: registry.propose_operator_cut(1, 500, {"from": who}),
            ("operator",),
            "registry: not operator",
        ),
        Rule(
            "set_metadata_uri",
            lambda r, who: registry.set_metadata_uri(1, "ipfs://y", {"from": who}),
            ("operator",),
            "registry: not operator",
        ),
        Rule(
            "transfer_operator",
            lambda r, who: registry.transfer_operator(1, r["stranger"], {"from": who}),
            ("operator",),
            "registry: not operator",
        ),
        Rule(
            "accept_operator",
            lambda r, who: registry.accept_operator(1, {"from": who}),
            (),
            "registry: not pending operator",
        ),
        Rule(
            "set_node_status",
            lambda r, who: registry.set_node_status(1, PAUSED, {"from": who}),
            ("operator", "registrar"),
            "registry: not operator or registrar",
        ),
        Rule(
            "dispute",
            lambda r, who: router.dispute(1, 0, {"from": who}),
            ("guardian",),
            "router: not guardian",
        ),
        Rule(
            "set_treasury",
            lambda r, who: router.set_treasury(r["stranger"], {"from": who}),
            ("owner",),
            "router: not owner",
        ),
        Rule(
            "recover_excess",
            lambda r, who: router.recover_excess(r["stranger"], {"from": who}),
            ("owner",),
            "router: not owner",
        ),
        Rule(
            "set_revenue_receiver",
            lambda r, who: share.set_revenue_receiver(r["investor"], r["stranger"], {"from": who}),
            ("investor", "registrar"),
            "share: not the holder or the registrar",
        ),
        Rule(
            "notify_revenue",
            lambda r, who: share.notify_revenue(1, {"from": who}),
            (),
            "share: caller is not the router",
        ),
    ]


RULE_NAMES = [
    "transfer_ownership", "set_registrar", "set_guardian", "set_router", "pause",
    "register_node", "set_price", "rotate_attestor", "propose_operator_cut",
    "set_metadata_uri", "transfer_operator", "accept_operator", "set_node_status", "dispute",
    "set_treasury", "recover_excess", "set_revenue_receiver", "notify_revenue",
]  # fmt: skip


@pytest.mark.parametrize("name", RULE_NAMES)
def test_privileged_function__every_other_role__reverts(
    name: str, roles: dict[str, Any], registry: Any, router: Any, node: Any, stablecoin: Any
) -> None:
    _, share = node
    rule = next(r for r in _rules(registry, router, share, stablecoin) if r.name == name)
    denied = [role for role in roles if role not in rule.allowed]
    assert denied, "every function has someone it refuses"
    for role in denied:
        with brownie.reverts(rule.reason):
            rule.call(roles, roles[role])
    for role in rule.allowed:  # the roles that may get past the check (set_router is set
        brownie.chain.snapshot()  # once; dispute needs a pending report; the registrar sets
        try:  # receivers for contracts only)
            assert rule.call(roles, roles[role]).status == 1
        except brownie.exceptions.VirtualMachineError as exc:
            assert exc.revert_msg != rule.reason, (name, role)
            assert name in ("set_router", "dispute", "set_revenue_receiver"), (name, role)
        brownie.chain.revert()


def test_rule_table__covers_every_privileged_function(
    registry: Any, router: Any, node: Any, stablecoin: Any
) -> None:
    """A new privileged function must get a row: the table's names are checked against
    each contract's ABI, minus the functions open to everyone."""
    _, share = node
    open_to_all = {
        "accept_ownership", "unpause", "settle", "settle_many", "finalize", "withdraw",
        "transfer", "transferFrom", "approve", "permit", "claim", "claim_to", "claim_for",
    }  # fmt: skip
    writes = {
        item["name"]
        for contract in (registry, router, share)
        for item in contract.abi
        if item["type"] == "function" and item["stateMutability"] not in ("view", "pure")
    }
    assert writes - open_to_all == {r.name for r in _rules(registry, router, share, stablecoin)}


def test_unpause__guardian_only(roles: dict[str, Any], registry: Any) -> None:
    registry.pause({"from": roles["guardian"]})
    for role, who in roles.items():
        if role != "guardian":
            with brownie.reverts("registry: not guardian"):
                registry.unpause({"from": who})
    registry.unpause({"from": roles["guardian"]})
    assert not registry.paused()


def test_retire__registrar_only_even_for_the_operator(roles: dict[str, Any], registry: Any) -> None:
    with brownie.reverts("registry: only the registrar retires"):
        registry.set_node_status(1, RETIRED, {"from": roles["operator"]})
    registry.set_node_status(1, RETIRED, {"from": roles["registrar"]})
    with brownie.reverts("registry: node is retired"):
        registry.set_node_status(1, ACTIVE, {"from": roles["registrar"]})


def test_ownership__cannot_be_taken_over(roles: dict[str, Any], registry: Any) -> None:
    owner, investor, stranger = roles["owner"], roles["investor"], roles["stranger"]
    registry.transfer_ownership(investor, {"from": owner})
    # nobody but the named account accepts, not even the owner
    for who in roles.values():
        if who != investor:
            with brownie.reverts("registry: not pending owner"):
                registry.accept_ownership({"from": who})
    # before accepting, the pending owner has no power; the owner can still redirect it
    with brownie.reverts("registry: not owner"):
        registry.set_guardian(investor, {"from": investor})
    registry.transfer_ownership(stranger, {"from": owner})
    with brownie.reverts("registry: not pending owner"):
        registry.accept_ownership({"from": investor})
    registry.accept_ownership({"from": stranger})
    assert (registry.owner(), registry.pending_owner()) == (stranger, ZERO)
    # the old owner lost everything, and acceptance cannot be replayed
    with brownie.reverts("registry: not owner"):
        registry.transfer_ownership(owner, {"from": owner})
    with brownie.reverts("registry: not pending owner"):
        registry.accept_ownership({"from": stranger})


def test_pause__stops_new_business_and_pays_everything_owed_exactly(
    roles: dict[str, Any],
    suite: Any,
    registry: Any,
    router: Any,
    node: Any,
    stablecoin: Any,
    attestor_key: str,
    pay: Payer,
    funded: Any,
) -> None:
    node_id, share = node
    operator, investor, treasury = roles["operator"], roles["investor"], roles["treasury"]
    share.transfer(investor, 400 * SHARES, {"from": operator})
    pay(node_id, 3_000_000)
    pending_epoch, _ = pay.settle(node_id, 1_000_000)  # settled, not finalized
    unsettled = pay.take_epoch(node_id)
    owed = {
        "investor": share.claimable(investor),
        "operator": share.claimable(operator),
        "cut": router.owed(operator),
        "fee": router.owed(treasury),
    }
    assert min(owed.values()) > 0
    registry.pause({"from": roles["guardian"]})

    signed = sign_report(suite, attestor_key, node_id=node_id, epoch=unsettled, inferences=10**6)
    with brownie.reverts("router: paused"):
        router.settle(*report_args(signed), {"from": funded})
    with brownie.reverts("router: paused"):
        router.settle_many([report_args(signed)[0]], report_args(signed)[1], {"from": funded})
    with brownie.reverts("router: paused"):
        router.finalize(node_id, [pending_epoch], {"from": funded})
    new_terms = ("0x" + "11" * 20, "0x" + "22" * 20, SHARES, 1_000, 100, "Lima", "ipfs://x")
    with brownie.reverts("registry: paused"):
        registry.register_node(*new_terms, {"from": roles["registrar"]})

    # every claim and withdrawal pays exactly what was owed before the pause
    before = {who: stablecoin.balanceOf(who) for who in (investor, operator, treasury)}
    share.claim({"from": investor})
    share.claim({"from": operator})
    router.withdraw(operator, {"from": operator})
    router.withdraw(treasury, {"from": treasury})
    assert stablecoin.balanceOf(investor) - before[investor] == owed["investor"]
    assert stablecoin.balanceOf(operator) - before[operator] == owed["operator"] + owed["cut"]
    assert stablecoin.balanceOf(treasury) - before[treasury] == owed["fee"]
    # shares still move, and the pending report can still be disputed (refund owed)
    share.transfer(roles["stranger"], SHARES, {"from": investor})
    router.dispute(node_id, pending_epoch, {"from": roles["guardian"]})
    assert router.owed(funded) == 1_000_000
