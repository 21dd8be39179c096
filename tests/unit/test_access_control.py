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

from edgeshare.chain import build_dev_keys
from edgeshare.channels import SKIP_NOT_NODE
from tests.conftest import (
    SHARES,
    Payer,
    brownie_contract,
    make_voucher,
    report_args,
    set_next_timestamp,
    sign_report,
    voucher_args,
)

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


@pytest.fixture(scope="module")
def capital(suite: Any, node: Any, roles: dict[str, Any]) -> dict[str, Any]:
    """The capital contracts of the suite, a basket over node 1 and an offering of one of
    its shares."""
    factory = brownie_contract("BasketFactory", suite.baskets.address)
    tx = factory.create_basket("Basket", "B", [node[1]], [SHARES], {"from": roles["stranger"]})
    offerings = brownie_contract("OfferingFactory", suite.offerings.address)
    made = _create_offering(offerings, node[1], roles["operator"]).events["OfferingCreated"]
    return {
        "market": brownie_contract("ShareMarket", suite.market.address),
        "offerings": offerings,
        "baskets": factory,
        "basket": brownie_contract("Basket", tx.events["BasketCreated"]["basket"]),
        "claimer": brownie_contract("PortfolioClaimer", suite.claimer.address),
        "offering": brownie_contract("ShareOffering", made["offering"]),
    }


def _order_of(maker: Any, share: Any) -> tuple[Any, ...]:
    """An order of ``maker``'s (market.cancel takes it unsigned)."""
    return (maker.address, share.address, True, SHARES, 10**6, 0, 2**40, 0, 7)


def _create_offering(factory: Any, share: Any, who: Any) -> Any:
    share.approve(factory, SHARES, {"from": who})
    now = brownie.chain.time()
    return factory.create_offering(
        1, SHARES, 10**6, 1, 10**6, now + 100, now + 10_000, 0, {"from": who}
    )


def _rules(
    registry: Any, router: Any, share: Any, channels: Any, capital: dict[str, Any]
) -> list[Rule]:
    new_terms = ("0x" + "11" * 20, "0x" + "22" * 20, SHARES, 1_000, 100, "Lima", "ipfs://x")
    return [
        Rule(
            "NodeRegistry.transfer_ownership",
            lambda r, who: registry.transfer_ownership(r["stranger"], {"from": who}),
            ("owner",),
            "registry: not owner",
        ),
        Rule(
            "NodeRegistry.set_registrar",
            lambda r, who: registry.set_registrar(r["stranger"], {"from": who}),
            ("owner",),
            "registry: not owner",
        ),
        Rule(
            "NodeRegistry.set_guardian",
            lambda r, who: registry.set_guardian(r["stranger"], {"from": who}),
            ("owner",),
            "registry: not owner",
        ),
        Rule(
            "NodeRegistry.set_router",
            lambda r, who: registry.set_router(router, {"from": who}),
            ("owner",),
            "registry: not owner",
        ),
        Rule(
            "NodeRegistry.pause",
            lambda r, who: registry.pause({"from": who}),
            ("guardian",),
            "registry: not guardian",
        ),
        Rule(
            "NodeRegistry.register_node",
            lambda r, who: registry.register_node(*new_terms, {"from": who}),
            ("registrar",),
            "registry: not registrar",
        ),
        Rule(
            "NodeRegistry.set_price",
            lambda r, who: registry.set_price(1, 2_000, {"from": who}),
            ("operator",),
            "registry: not operator",
        ),
        Rule(
            "NodeRegistry.rotate_attestor",
            lambda r, who: registry.rotate_attestor(1, r["stranger"], {"from": who}),
            ("operator",),
            "registry: not operator",
        ),
        Rule(
            "NodeRegistry.propose_operator_cut",
            lambda r, who: registry.propose_operator_cut(1, 500, {"from": who}),
            ("operator",),
            "registry: not operator",
        ),
        Rule(
            "NodeRegistry.set_metadata_uri",
            lambda r, who: registry.set_metadata_uri(1, "ipfs://y", {"from": who}),
            ("operator",),
            "registry: not operator",
        ),
        Rule(
            "NodeRegistry.transfer_operator",
            lambda r, who: registry.transfer_operator(1, r["stranger"], {"from": who}),
            ("operator",),
            "registry: not operator",
        ),
        Rule(
            "NodeRegistry.accept_operator",
            lambda r, who: registry.accept_operator(1, {"from": who}),
            (),
            "registry: not pending operator",
        ),
        Rule(
            "NodeRegistry.set_node_status",
            lambda r, who: registry.set_node_status(1, PAUSED, {"from": who}),
            ("operator", "registrar"),
            "registry: not operator or registrar",
        ),
        Rule(
            "RevenueRouter.dispute",
            lambda r, who: router.dispute(1, 0, {"from": who}),
            ("guardian",),
            "router: not guardian",
        ),
        Rule(
            "RevenueRouter.set_treasury",
            lambda r, who: router.set_treasury(r["stranger"], {"from": who}),
            ("owner",),
            "router: not owner",
        ),
        Rule(
            "RevenueRouter.recover_excess",
            lambda r, who: router.recover_excess(r["stranger"], {"from": who}),
            ("owner",),
            "router: not owner",
        ),
        Rule(
            "NodeShare.set_revenue_receiver",
            lambda r, who: share.set_revenue_receiver(r["investor"], r["stranger"], {"from": who}),
            ("investor", "registrar"),
            "share: not the holder or the registrar",
        ),
        Rule(
            "NodeShare.notify_revenue",
            lambda r, who: share.notify_revenue(1, {"from": who}),
            (),
            "share: caller is not the router",
        ),
        Rule(
            "NodeShare.claim_by",
            lambda r, who: share.claim_by(r["investor"], who, {"from": who}),
            (),
            "share: caller is not the claimer",
        ),
        Rule(
            "Basket.claim_by",
            lambda r, who: capital["basket"].claim_by(r["investor"], who, {"from": who}),
            (),
            "share: caller is not the claimer",
        ),
        Rule(
            "ShareMarket.cancel",
            lambda r, who: capital["market"].cancel(_order_of(r["investor"], share), {"from": who}),
            ("investor",),
            "market: not the maker",
        ),
        Rule(
            "OfferingFactory.create_offering",
            lambda r, who: _create_offering(capital["offerings"], share, who),
            ("operator",),
            "factory: not operator",
        ),
        Rule(
            "RevenueRouter.set_channels",
            lambda r, who: router.set_channels(channels, {"from": who}),
            ("owner",),
            "router: not owner",
        ),
        Rule(
            "RevenueRouter.credit_channel_revenue",
            lambda r, who: router.credit_channel_revenue(1, 1, {"from": who}),
            (),  # the linked PaymentChannels only: no role
            "router: not the channels contract",
        ),
        Rule(
            "PaymentChannels.recover_excess",
            lambda r, who: channels.recover_excess(r["stranger"], {"from": who}),
            ("owner",),
            "channels: not owner",
        ),
    ]


RULE_NAMES = [
    "NodeRegistry.transfer_ownership", "NodeRegistry.set_registrar",
    "NodeRegistry.set_guardian", "NodeRegistry.set_router", "NodeRegistry.pause",
    "NodeRegistry.register_node", "NodeRegistry.set_price", "NodeRegistry.rotate_attestor",
    "NodeRegistry.propose_operator_cut", "NodeRegistry.set_metadata_uri",
    "NodeRegistry.transfer_operator", "NodeRegistry.accept_operator",
    "NodeRegistry.set_node_status", "RevenueRouter.dispute", "RevenueRouter.set_treasury",
    "RevenueRouter.recover_excess", "RevenueRouter.set_channels",
    "RevenueRouter.credit_channel_revenue", "NodeShare.set_revenue_receiver",
    "NodeShare.notify_revenue", "NodeShare.claim_by", "PaymentChannels.recover_excess",
    "Basket.claim_by", "ShareMarket.cancel", "OfferingFactory.create_offering",
]  # fmt: skip


@pytest.mark.parametrize("name", RULE_NAMES)
def test_privileged_function__every_other_role__reverts(
    name: str, roles: dict[str, Any], registry: Any, router: Any, node: Any, channels: Any,
    capital: dict[str, Any],
) -> None:  # fmt: skip
    _, share = node
    rule = next(r for r in _rules(registry, router, share, channels, capital) if r.name == name)
    denied = [role for role in roles if role not in rule.allowed]
    assert denied, "every function has someone it refuses"
    for role in denied:
        with brownie.reverts(rule.reason):
            rule.call(roles, roles[role])
    for role in rule.allowed:  # the roles that may get past the check (the router and the
        brownie.chain.snapshot()  # channels are linked once; dispute needs a pending report;
        try:  # the registrar sets receivers for contracts only)
            assert rule.call(roles, roles[role]).status == 1
        except brownie.exceptions.VirtualMachineError as exc:
            assert exc.revert_msg != rule.reason, (name, role)
            assert name in (
                "NodeRegistry.set_router",
                "RevenueRouter.dispute",
                "RevenueRouter.set_channels",
                "NodeShare.set_revenue_receiver",
            ), (name, role)
        brownie.chain.revert()


def test_rule_table__covers_every_privileged_function(
    registry: Any, router: Any, node: Any, channels: Any, capital: dict[str, Any]
) -> None:
    """A new privileged function must get a row: the table's names are checked against
    each contract's ABI, minus the functions open to everyone (a customer's channel
    functions act on the caller's own channel; redeem_many pays only the node's operator
    or attestor and skips every other caller's vouchers, see below; an offering's,
    basket's and market's functions act on the caller's own money, shares or orders, or
    pay only the investor they name)."""
    _, share = node
    open_to_all = {
        "NodeRegistry.accept_ownership", "NodeRegistry.unpause",
        "RevenueRouter.settle", "RevenueRouter.settle_many", "RevenueRouter.finalize",
        "RevenueRouter.withdraw",
        "NodeShare.transfer", "NodeShare.transferFrom", "NodeShare.approve",
        "NodeShare.permit", "NodeShare.claim", "NodeShare.claim_to", "NodeShare.claim_for",
        "PaymentChannels.deposit", "PaymentChannels.authorize_signer",
        "PaymentChannels.revoke_signer", "PaymentChannels.set_low_balance_threshold",
        "PaymentChannels.request_close", "PaymentChannels.withdraw",
        "PaymentChannels.redeem_many",
        "Basket.transfer", "Basket.transferFrom", "Basket.approve", "Basket.permit",
        "Basket.claim", "Basket.claim_to", "Basket.mint", "Basket.redeem", "Basket.harvest",
        "BasketFactory.create_basket", "PortfolioClaimer.claim_many",
        "ShareMarket.fill", "ShareMarket.cancel_all",
        "ShareOffering.commit", "ShareOffering.cancel", "ShareOffering.claim_shares",
        "ShareOffering.claim_shares_for", "ShareOffering.refund", "ShareOffering.refund_for",
        "ShareOffering.finish",
    }  # fmt: skip
    contracts = {
        "NodeRegistry": registry, "RevenueRouter": router, "NodeShare": share,
        "PaymentChannels": channels, "Basket": capital["basket"],
        "BasketFactory": capital["baskets"], "PortfolioClaimer": capital["claimer"],
        "ShareMarket": capital["market"], "ShareOffering": capital["offering"],
        "OfferingFactory": capital["offerings"],
    }  # fmt: skip
    writes = {
        f"{label}.{item['name']}"
        for label, contract in contracts.items()
        for item in contract.abi
        if item["type"] == "function" and item["stateMutability"] not in ("view", "pure")
    }
    assert open_to_all <= writes  # no stale names
    rules = _rules(registry, router, share, channels, capital)
    assert writes - open_to_all == {r.name for r in rules}
    assert sorted(RULE_NAMES) == sorted(r.name for r in rules)


def test_redeem_many__pays_only_the_nodes_operator_or_attestor(
    roles: dict[str, Any], suite: Any, channels: Any, stablecoin: Any, node: Any
) -> None:
    """Every other role's redemption of the node's vouchers pays nothing (each voucher is
    skipped as SKIP_NOT_NODE, the batch does not revert); the operator and the attestor
    each redeem."""
    node_id, _ = node
    holder = roles["investor"]  # a customer of the node here
    stablecoin.mint(holder, 1_000, {"from": roles["owner"]})
    stablecoin.approve(channels, 1_000, {"from": holder})
    channels.deposit(node_id, 1_000, {"from": holder})
    key = build_dev_keys(4)[3]
    redeemed = 0
    for role, who in roles.items():
        signed = make_voucher(suite, key, node_id, holder.address, redeemed + 100)
        tx = channels.redeem_many(*voucher_args([signed]), {"from": who})
        if role in ("operator", "attestor"):
            assert tx.events["VoucherRedeemed"]["amount"] == 100, role
            redeemed += 100
        else:
            assert tx.events["VoucherSkipped"]["reason"] == SKIP_NOT_NODE, role
            assert "VoucherRedeemed" not in tx.events, role
    assert channels.total_redeemed() == redeemed == 200


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
    channels: Any,
) -> None:
    node_id, share = node
    operator, investor, treasury = roles["operator"], roles["investor"], roles["treasury"]
    share.transfer(investor, 400 * SHARES, {"from": operator})
    pay(node_id, 3_000_000)
    pending_epoch, _ = pay.settle(node_id, 1_000_000)  # settled, not finalized
    unsettled = pay.take_epoch(node_id)
    customer = roles["stranger"]  # a customer with a channel to the node, closing it
    stablecoin.mint(customer, 1_000, {"from": roles["owner"]})
    stablecoin.approve(channels, 2_000, {"from": customer})
    channels.deposit(node_id, 1_000, {"from": customer})
    closes_at = channels.request_close(node_id, {"from": customer}).events["CloseRequested"][
        "closes_at"
    ]
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
    with brownie.reverts("channels: paused"):
        channels.deposit(node_id, 1, {"from": customer})

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
    # the node redeems what the customer signed, split at once, and after the grace the
    # customer withdraws the rest
    signed = make_voucher(suite, build_dev_keys(7)[6], node_id, customer.address, 400)
    tx = channels.redeem_many(*voucher_args([signed]), {"from": operator})
    assert tx.events["VoucherRedeemed"]["amount"] == 400
    assert tx.events["RevenueSplit"]["gross"] == 400
    set_next_timestamp(closes_at)
    before_withdraw = stablecoin.balanceOf(customer)
    channels.withdraw(node_id, {"from": customer})
    assert stablecoin.balanceOf(customer) - before_withdraw == 600
    assert registry.paused()
