"""ShareOffering and OfferingFactory: creation and its checks, the commitment window,
the caps, cancels, the success path (deliveries, the proceeds and the fee, the unsold
rest), the failure path (refunds, all shares back), what the pause can and cannot stop,
where the escrowed shares' revenue goes, rounding, and a property test over random
commitments and cancels. One rule per test, from the actor the rule is about.

The default suite's factory (deployed by the library, 1% fee on proceeds) and a second
factory on the same suite's blueprint without a fee.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import brownie
import pytest
from brownie import accounts, project, web3
from hexbytes import HexBytes
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from edgeshare.signer import Signer
from edgeshare.suite import NodeSpec, Suite, send_register_node
from edgeshare.tx import Transactor
from tests.conftest import (
    SHARES,
    USDC,
    Payer,
    assert_floor_share,
    brownie_contract,
    get_now,
    mine_at,
    set_next_timestamp,
)

FEE_BPS = 100  # the default suite's offering fee on the proceeds: 1%
PENDING, OPEN, SUCCEEDED, FAILED = 1, 2, 4, 8  # IShareOffering.OfferingState
PRICE = 2 * USDC  # 2 USDC per whole share
OFFERED = 100 * SHARES  # 10% of the node's 1,000 shares
HARD_CAP = 200 * USDC  # buys exactly OFFERED
SOFT_CAP = 100 * USDC
DAY = 86_400
DURATION = 7 * DAY
FUNDS = 10**12  # each investor's stablecoin (1,000,000 USDC)
HOLDERS_BPS = 8_500  # of revenue, to holders: the default suite's 5% fee and the node's 10% cut
NODE_SHARES = 1_000 * SHARES
ZERO = "0x" + "00" * 20


def _contracts() -> Any:
    return project.get_loaded_projects()[0]


# ------------------------------------------------------------------------ fixtures ----


@pytest.fixture(scope="module")
def investor3() -> Any:
    """A third investor."""
    return accounts[9]


@pytest.fixture(scope="module")
def blueprint(suite: Suite) -> str:
    """The suite's ShareOffering blueprint: the EIP-5202 preamble and the init code."""
    address = str(suite.manifest.contracts.ShareOfferingBlueprint)
    initcode = bytes(HexBytes(_contracts().ShareOffering.bytecode))
    assert bytes(web3.eth.get_code(address)) == b"\xfe\x71\x00" + initcode
    return address


@pytest.fixture(scope="module")
def factory(suite: Suite) -> Any:
    """The suite's factory, deployed by the library (the default 1% fee on proceeds)."""
    return brownie_contract("OfferingFactory", suite.offerings.address)


@pytest.fixture(scope="module")
def free_factory(registry: Any, router: Any, blueprint: str, deployer: Any) -> Any:
    """A factory on the same suite without a fee."""
    return _contracts().OfferingFactory.deploy(registry, router, blueprint, 0, {"from": deployer})


@pytest.fixture(scope="module")
def investors(
    stablecoin: Any, deployer: Any, investor: Any, investor2: Any, investor3: Any
) -> list[Any]:
    """Three investors holding FUNDS of stablecoin each."""
    for who in (investor, investor2, investor3):
        stablecoin.mint(who, FUNDS, {"from": deployer})
    return [investor, investor2, investor3]


@pytest.fixture(scope="module")
def create(
    factory: Any, node: tuple[int, Any], operator: Any, stablecoin: Any, investors: list[Any]
) -> Callable[..., Any]:
    """Creates an offering of node 1 (defaults: OFFERED shares at PRICE, SOFT_CAP and
    HARD_CAP, opening 100 s from now for DURATION, no investor cap) and lets the
    investors' stablecoin be pulled by it. A field may be a function of the time the
    creation is sent at. Returns the brownie ShareOffering."""
    node_id, share = node

    def _create(on: Any = None, sender: Any = None, **fields: Any) -> Any:
        on = on or factory
        sender = sender or operator
        share.approve(on, fields.get("shares", OFFERED), {"from": operator})
        now = get_now()  # after a transaction: the chain's clock, whatever a revert left
        params = {
            "node_id": node_id,
            "shares": OFFERED,
            "price_per_share": PRICE,
            "soft_cap": SOFT_CAP,
            "hard_cap": HARD_CAP,
            "start": now + 100,
            "end": now + 100 + DURATION,
            "investor_cap": 0,
        }
        params.update({k: v(now) if callable(v) else v for k, v in fields.items()})
        tx = on.create_offering(*params.values(), {"from": sender})
        offering = _contracts().ShareOffering.at(tx.events["OfferingCreated"]["offering"])
        for who in investors:
            stablecoin.approve(offering, 2**256 - 1, {"from": who})
        return offering

    return _create


@pytest.fixture(scope="module")
def share(node: tuple[int, Any]) -> Any:
    return node[1]


def _open(offering: Any) -> None:
    mine_at(offering.START())


def _end(offering: Any) -> None:
    mine_at(offering.END())


def _floor(amount: int, price: int = PRICE) -> int:
    return amount * SHARES // price


# --------------------------------------------------------------------- the factory ----


def test_factory__fee_above_ten_percent__is_refused(
    registry: Any, router: Any, blueprint: str, deployer: Any
) -> None:
    with brownie.reverts("factory: fee above cap"):
        _contracts().OfferingFactory.deploy(registry, router, blueprint, 1_001, {"from": deployer})


def test_factory__blueprint_without_code__is_refused(
    registry: Any, router: Any, stranger: Any, deployer: Any
) -> None:
    with brownie.reverts("factory: blueprint has no code"):
        _contracts().OfferingFactory.deploy(registry, router, stranger, FEE_BPS, {"from": deployer})


def test_factory__names_the_suite_and_its_fee(
    factory: Any, registry: Any, router: Any, stablecoin: Any, blueprint: str
) -> None:
    assert (factory.REGISTRY(), factory.ROUTER(), factory.STABLECOIN()) == (
        registry.address,
        router.address,
        stablecoin.address,
    )
    assert (factory.OFFERING_BLUEPRINT(), factory.FEE_BPS()) == (blueprint, FEE_BPS)


# ------------------------------------------------------------------------ creation ----


def test_create_offering__escrows_the_shares_and_records_the_offering(
    create: Any, factory: Any, share: Any, node: tuple[int, Any], operator: Any
) -> None:
    node_id, _ = node
    offering = create()
    assert share.balanceOf(offering) == OFFERED
    assert share.balanceOf(operator) == NODE_SHARES - OFFERED
    assert share.balanceOf(factory) == 0
    assert factory.is_offering(offering) and not factory.is_offering(operator)
    assert factory.offering_count(node_id) == 1 and factory.offering_at(node_id, 0) == offering
    assert offering.state() == PENDING and not offering.finished()


def test_create_offering__logs_every_term(
    factory: Any, node: tuple[int, Any], share: Any, operator: Any
) -> None:
    node_id, _ = node
    share.approve(factory, OFFERED, {"from": operator})
    start = get_now() + 100
    args = (node_id, OFFERED, PRICE, SOFT_CAP, HARD_CAP, start, start + DURATION, 5 * USDC)
    event = factory.create_offering(*args, {"from": operator}).events["OfferingCreated"]
    assert dict(event) == {
        "offering": event["offering"],
        "node_id": node_id,
        "operator": operator.address,
        "share_token": share.address,
        "shares": OFFERED,
        "price_per_share": PRICE,
        "soft_cap": SOFT_CAP,
        "hard_cap": HARD_CAP,
        "start": start,
        "end": start + DURATION,
        "investor_cap": 5 * USDC,
        "fee_bps": FEE_BPS,
        "index": 0,
    }
    offering = _contracts().ShareOffering.at(event["offering"])
    assert (offering.SHARE(), offering.NODE_ID(), offering.OPERATOR()) == (
        share.address,
        node_id,
        operator.address,
    )
    assert (offering.SHARES(), offering.PRICE_PER_SHARE(), offering.SOFT_CAP()) == (
        OFFERED,
        PRICE,
        SOFT_CAP,
    )
    assert (offering.HARD_CAP(), offering.START(), offering.END()) == (
        HARD_CAP,
        start,
        start + DURATION,
    )
    assert (offering.INVESTOR_CAP(), offering.FEE_BPS(), offering.FACTORY()) == (
        5 * USDC,
        FEE_BPS,
        factory.address,
    )


def test_create_offering__makes_the_operator_the_escrows_revenue_receiver(
    create: Any, share: Any, operator: Any, registry: Any, deployer: Any, stranger: Any
) -> None:
    offering = create()
    assert share.revenue_receiver(offering) == operator
    # the offering chose it itself: the registrar cannot redirect it
    assert share.receiver_chosen_by_holder(offering)
    with brownie.reverts("share: the holder chose its receiver"):
        share.set_revenue_receiver(offering, stranger, {"from": deployer})


def test_create_offering__second_offering__is_listed_after_the_first(
    create: Any, factory: Any, node: tuple[int, Any]
) -> None:
    node_id, _ = node
    first, second = create(), create()
    assert factory.offering_count(node_id) == 2
    assert (factory.offering_at(node_id, 0), factory.offering_at(node_id, 1)) == (first, second)


def test_create_offering__by_a_stranger__is_refused(create: Any, stranger: Any) -> None:
    with brownie.reverts("factory: not operator"):
        create(sender=stranger)


def test_create_offering__of_an_unknown_node__is_refused(create: Any) -> None:
    with brownie.reverts("registry: unknown node"):
        create(node_id=99)


def test_create_offering__of_a_node_paused_from_the_next_epoch__is_refused(
    create: Any, registry: Any, node: tuple[int, Any], operator: Any
) -> None:
    registry.set_node_status(node[0], 2, {"from": operator})  # PAUSED
    with brownie.reverts("factory: node not active"):
        create()


def test_create_offering__while_the_suite_is_paused__is_refused(
    create: Any, registry: Any, deployer: Any
) -> None:
    registry.pause({"from": deployer})
    with brownie.reverts("factory: paused"):
        create()


def test_create_offering__without_the_share_allowance__is_refused(
    factory: Any, node: tuple[int, Any], share: Any, operator: Any
) -> None:
    share.approve(factory, OFFERED - 1, {"from": operator})
    start = get_now() + 100
    with brownie.reverts("share: insufficient allowance"):
        factory.create_offering(
            node[0],
            OFFERED,
            PRICE,
            SOFT_CAP,
            HARD_CAP,
            start,
            start + DURATION,
            0,
            {"from": operator},
        )


BAD_TERMS = {
    "shares is zero": ({"shares": 0, "hard_cap": 0, "soft_cap": 0}, "factory: shares is zero"),
    "price is zero": ({"price_per_share": 0}, "factory: price is zero"),
    "soft cap is zero": ({"soft_cap": 0}, "factory: soft cap is zero"),
    "soft cap above hard cap": ({"soft_cap": HARD_CAP + 1}, "factory: soft cap above hard cap"),
    "hard cap too large": (
        {"hard_cap": 2**256 // SHARES + 1, "price_per_share": 2**200},
        "factory: hard cap too large",
    ),
    "hard cap buys more than offered": (
        {"hard_cap": HARD_CAP + 2},  # 100.000001 shares
        "factory: hard cap buys more than the shares offered",
    ),
    "hard cap buys nothing": (
        {"price_per_share": 10 * SHARES, "hard_cap": 9, "soft_cap": 9},
        "factory: hard cap buys nothing",
    ),
    "start not before end": (
        {"start": lambda now: now + 50, "end": lambda now: now + 50},
        "factory: start not before end",
    ),
    "end in the past": (
        {"start": lambda now: now - 100, "end": lambda now: now - 1},
        "factory: end in the past",
    ),
    "duration too long": (
        {"end": lambda now: now + 100 + 365 * DAY + 1},
        "factory: duration too long",
    ),
    "start too far ahead": (
        {"start": lambda now: now + 366 * DAY, "end": lambda now: now + 367 * DAY},
        "factory: start too far ahead",
    ),
    "investor cap above hard cap": (
        {"investor_cap": HARD_CAP + 1},
        "factory: investor cap above hard cap",
    ),
    "investor cap buys nothing": (
        {"price_per_share": 10 * SHARES, "hard_cap": 100, "soft_cap": 100, "investor_cap": 9},
        "factory: investor cap buys nothing",
    ),
}


@pytest.mark.parametrize("case", BAD_TERMS, ids=list(BAD_TERMS))
def test_create_offering__bad_term__is_refused_with_its_reason(create: Any, case: str) -> None:
    fields, reason = BAD_TERMS[case]
    with brownie.reverts(reason):
        create(**fields)


def test_create_offering__largest_hard_cap_the_shares_cover__is_accepted(create: Any) -> None:
    price = 3 * USDC + 7
    largest = ((OFFERED + 1) * price - 1) // SHARES
    assert _floor(largest, price) <= OFFERED < _floor(largest + 1, price)
    assert create(price_per_share=price, hard_cap=largest, soft_cap=USDC).HARD_CAP() == largest
    with brownie.reverts("factory: hard cap buys more than the shares offered"):
        create(price_per_share=price, hard_cap=largest + 1, soft_cap=USDC)


def test_create_offering__start_in_the_past__opens_at_once(create: Any) -> None:
    offering = create(start=lambda now: now - 10)
    assert offering.state() == OPEN


# ---------------------------------------------------------------------- commitment ----


def test_commit__before_start__is_refused(create: Any, investor: Any) -> None:
    offering = create()
    set_next_timestamp(offering.START() - 1)
    with brownie.reverts("offering: not started"):
        offering.commit(USDC, {"from": investor})


def test_commit__from_start__takes_the_stablecoin_and_counts_the_shares(
    create: Any, investor: Any, stablecoin: Any
) -> None:
    offering = create()
    set_next_timestamp(offering.START())
    tx = offering.commit(3 * USDC, {"from": investor})
    assert dict(tx.events["Committed"]) == {
        "investor": investor.address,
        "amount": 3 * USDC,
        "committed": 3 * USDC,
        "total_committed": 3 * USDC,
    }
    assert stablecoin.balanceOf(offering) == 3 * USDC
    assert stablecoin.balanceOf(investor) == FUNDS - 3 * USDC
    assert offering.committed(investor) == offering.total_committed() == 3 * USDC
    assert offering.shares_for(investor) == offering.shares_sold() == 3 * SHARES // 2
    assert offering.state() == OPEN


def test_commit__again__adds_to_the_commitment(create: Any, investor: Any) -> None:
    offering = create()
    _open(offering)
    offering.commit(USDC, {"from": investor})
    tx = offering.commit(2 * USDC, {"from": investor})
    assert tx.events["Committed"]["committed"] == 3 * USDC
    assert offering.shares_for(investor) == 3 * SHARES // 2


def test_commit__in_the_last_second__is_accepted(create: Any, investor: Any) -> None:
    offering = create()
    set_next_timestamp(offering.END() - 1)
    offering.commit(USDC, {"from": investor})
    assert offering.committed(investor) == USDC


def test_commit__at_end__is_refused(create: Any, investor: Any) -> None:
    offering = create()
    set_next_timestamp(offering.END())
    with brownie.reverts("offering: ended"):
        offering.commit(USDC, {"from": investor})


def test_commit__after_end__is_refused(create: Any, investor: Any) -> None:
    offering = create()
    mine_at(offering.END() + DAY)
    with brownie.reverts("offering: ended"):
        offering.commit(USDC, {"from": investor})


def test_commit__of_zero__is_refused(create: Any, investor: Any) -> None:
    offering = create()
    _open(offering)
    with brownie.reverts("offering: amount is zero"):
        offering.commit(0, {"from": investor})


def test_commit__up_to_the_hard_cap__is_accepted_and_beyond_it_refused(
    create: Any, investor: Any, investor2: Any
) -> None:
    offering = create()
    _open(offering)
    offering.commit(HARD_CAP - USDC, {"from": investor})
    with brownie.reverts("offering: hard cap exceeded"):
        offering.commit(USDC + 1, {"from": investor2})
    offering.commit(USDC, {"from": investor2})
    assert offering.total_committed() == HARD_CAP
    assert offering.shares_sold() == OFFERED


def test_commit__beyond_the_investor_cap__is_refused(
    create: Any, investor: Any, investor2: Any
) -> None:
    offering = create(investor_cap=10 * USDC)
    _open(offering)
    offering.commit(6 * USDC, {"from": investor})
    with brownie.reverts("offering: investor cap exceeded"):
        offering.commit(4 * USDC + 1, {"from": investor})
    offering.commit(4 * USDC, {"from": investor})
    # the cap is per investor
    offering.commit(10 * USDC, {"from": investor2})
    assert offering.total_committed() == 20 * USDC


def test_commit__after_a_cancel__counts_against_the_investor_cap_only_what_is_left(
    create: Any, investor: Any
) -> None:
    offering = create(investor_cap=10 * USDC)
    _open(offering)
    offering.commit(10 * USDC, {"from": investor})
    offering.cancel(3 * USDC, {"from": investor})
    offering.commit(3 * USDC, {"from": investor})
    assert offering.committed(investor) == 10 * USDC


def test_commit__while_the_suite_is_paused__is_refused(
    create: Any, investor: Any, registry: Any, deployer: Any
) -> None:
    offering = create()
    _open(offering)
    registry.pause({"from": deployer})
    with brownie.reverts("offering: paused"):
        offering.commit(USDC, {"from": investor})
    registry.unpause({"from": deployer})
    offering.commit(USDC, {"from": investor})
    assert offering.committed(investor) == USDC


def test_commit__without_the_stablecoin__is_refused(create: Any, stranger: Any) -> None:
    offering = create()
    _open(offering)
    with brownie.reverts("stablecoin: insufficient allowance"):
        offering.commit(USDC, {"from": stranger})


def test_commit__in_a_fee_on_transfer_stablecoin__is_refused(
    deploy: Callable[..., Suite],
    blueprint: str,
    deployer: Any,
    operator: Any,
    attestor: Any,
    investor: Any,
) -> None:
    """A token that delivers less than it was asked to move would let the offering book
    money it never got: the commitment is measured by the balance change and refused."""
    token = _contracts().FeeOnTransferToken.deploy({"from": deployer})
    suite = deploy(stablecoin=token.address)
    spec = NodeSpec(
        operator=operator.address, attestor=attestor.address, shares=NODE_SHARES,
        price_per_1k=1_000, operator_cut_bps=1_000, region="Nairobi",
    )  # fmt: skip
    node_id = send_register_node(Transactor(web3, Signer(address=deployer.address)), suite, spec)
    share = _contracts().NodeShare.at(suite.registry.call("share_token", node_id))
    factory = _contracts().OfferingFactory.deploy(
        suite.registry.address, suite.router.address, blueprint, FEE_BPS, {"from": deployer}
    )
    share.approve(factory, OFFERED, {"from": operator})
    start = get_now() + 100
    tx = factory.create_offering(
        node_id, OFFERED, PRICE, SOFT_CAP, HARD_CAP, start, start + DURATION, 0, {"from": operator}
    )
    offering = _contracts().ShareOffering.at(tx.events["OfferingCreated"]["offering"])
    assert offering.STABLECOIN() == token.address
    token.mint(investor, 100 * USDC, {"from": investor})
    token.approve(offering, 100 * USDC, {"from": investor})
    _open(offering)
    with brownie.reverts("offering: stablecoin delivered a different amount"):
        offering.commit(100 * USDC, {"from": investor})
    assert token.balanceOf(offering) == 0 and offering.total_committed() == 0


# -------------------------------------------------------------------------- cancel ----


def test_cancel__part__returns_that_much_and_recounts_the_shares(
    create: Any, investor: Any, stablecoin: Any
) -> None:
    offering = create()
    _open(offering)
    offering.commit(10 * USDC, {"from": investor})
    tx = offering.cancel(4 * USDC, {"from": investor})
    assert dict(tx.events["Cancelled"]) == {
        "investor": investor.address,
        "amount": 4 * USDC,
        "committed": 6 * USDC,
        "total_committed": 6 * USDC,
    }
    assert stablecoin.balanceOf(investor) == FUNDS - 6 * USDC
    assert stablecoin.balanceOf(offering) == 6 * USDC
    assert offering.shares_sold() == offering.shares_for(investor) == 3 * SHARES


def test_cancel__all__leaves_the_investor_as_if_it_never_committed(
    create: Any, investor: Any, stablecoin: Any
) -> None:
    offering = create()
    _open(offering)
    offering.commit(10 * USDC + 1, {"from": investor})
    offering.cancel(10 * USDC + 1, {"from": investor})
    assert stablecoin.balanceOf(investor) == FUNDS
    assert offering.committed(investor) == offering.total_committed() == 0
    assert offering.shares_sold() == 0 and stablecoin.balanceOf(offering) == 0


def test_cancel__more_than_committed__is_refused(create: Any, investor: Any) -> None:
    offering = create()
    _open(offering)
    offering.commit(USDC, {"from": investor})
    with brownie.reverts("offering: amount exceeds commitment"):
        offering.cancel(USDC + 1, {"from": investor})


def test_cancel__of_zero__is_refused(create: Any, investor: Any) -> None:
    offering = create()
    _open(offering)
    offering.commit(USDC, {"from": investor})
    with brownie.reverts("offering: amount is zero"):
        offering.cancel(0, {"from": investor})


def test_cancel__at_end__is_refused(create: Any, investor: Any) -> None:
    offering = create()
    _open(offering)
    offering.commit(SOFT_CAP, {"from": investor})
    set_next_timestamp(offering.END())
    with brownie.reverts("offering: ended"):
        offering.cancel(USDC, {"from": investor})


def test_cancel__while_the_suite_is_paused__still_pays(
    create: Any, investor: Any, registry: Any, deployer: Any, stablecoin: Any
) -> None:
    offering = create()
    _open(offering)
    offering.commit(5 * USDC, {"from": investor})
    registry.pause({"from": deployer})
    offering.cancel(5 * USDC, {"from": investor})
    assert stablecoin.balanceOf(investor) == FUNDS


def test_cancel__at_the_hard_cap__makes_room_for_another_investor(
    create: Any, investor: Any, investor2: Any
) -> None:
    """Reaching the hard cap does not end the offering: the outcome waits for END."""
    offering = create()
    _open(offering)
    offering.commit(HARD_CAP, {"from": investor})
    assert offering.state() == OPEN
    with brownie.reverts("offering: not ended"):
        offering.claim_shares({"from": investor})
    offering.cancel(50 * USDC, {"from": investor})
    offering.commit(50 * USDC, {"from": investor2})
    assert offering.total_committed() == HARD_CAP


# ---------------------------------------------------------------- success: shares ----


@pytest.fixture
def succeeded(create: Any, investor: Any, investor2: Any) -> Any:
    """An offering that ended with 120 USDC committed (soft cap 100): the investor 90
    (45 shares), the second investor 30 (15 shares); 40 shares unsold."""
    offering = create()
    _open(offering)
    offering.commit(90 * USDC, {"from": investor})
    offering.commit(30 * USDC, {"from": investor2})
    _end(offering)
    assert offering.state() == SUCCEEDED
    return offering


def test_claim_shares__after_success__delivers_the_shares_bought(
    succeeded: Any, investor: Any, share: Any
) -> None:
    tx = succeeded.claim_shares({"from": investor})
    assert dict(tx.events["SharesClaimed"]) == {
        "investor": investor.address,
        "caller": investor.address,
        "shares": 45 * SHARES,
        "paid": 90 * USDC,
    }
    assert tx.return_value == 45 * SHARES
    assert share.balanceOf(investor) == 45 * SHARES
    assert share.balanceOf(succeeded) == OFFERED - 45 * SHARES
    assert succeeded.claimed(investor) and succeeded.shares_delivered() == 45 * SHARES


def test_claim_shares__before_end__is_refused(create: Any, investor: Any) -> None:
    offering = create()
    _open(offering)
    offering.commit(SOFT_CAP, {"from": investor})
    set_next_timestamp(offering.END() - 1)
    with brownie.reverts("offering: not ended"):
        offering.claim_shares({"from": investor})


def test_claim_shares__twice__is_refused(succeeded: Any, investor: Any) -> None:
    succeeded.claim_shares({"from": investor})
    with brownie.reverts("offering: already claimed"):
        succeeded.claim_shares({"from": investor})


def test_claim_shares__without_a_commitment__is_refused(succeeded: Any, stranger: Any) -> None:
    with brownie.reverts("offering: nothing committed"):
        succeeded.claim_shares({"from": stranger})


def test_claim_shares__after_cancelling_everything__is_refused(
    create: Any, investor: Any, investor2: Any
) -> None:
    offering = create()
    _open(offering)
    offering.commit(SOFT_CAP, {"from": investor})
    offering.commit(USDC, {"from": investor2})
    offering.cancel(USDC, {"from": investor2})
    _end(offering)
    with brownie.reverts("offering: nothing committed"):
        offering.claim_shares({"from": investor2})


def test_claim_shares_for__delivers_only_to_the_investor(
    succeeded: Any, investor: Any, stranger: Any, share: Any
) -> None:
    tx = succeeded.claim_shares_for(investor, {"from": stranger})
    assert tx.events["SharesClaimed"]["caller"] == stranger
    assert share.balanceOf(investor) == 45 * SHARES and share.balanceOf(stranger) == 0
    with brownie.reverts("offering: already claimed"):
        succeeded.claim_shares({"from": investor})


def test_refund__after_success__is_refused(succeeded: Any, investor: Any) -> None:
    with brownie.reverts("offering: succeeded, claim shares instead"):
        succeeded.refund({"from": investor})
    with brownie.reverts("offering: succeeded, claim shares instead"):
        succeeded.refund_for(investor, {"from": investor})


def test_claim_shares__exactly_at_the_soft_cap__delivers(
    create: Any, investor: Any, share: Any
) -> None:
    offering = create()
    _open(offering)
    offering.commit(SOFT_CAP, {"from": investor})
    _end(offering)
    assert offering.state() == SUCCEEDED
    offering.claim_shares({"from": investor})
    assert share.balanceOf(investor) == _floor(SOFT_CAP)


# ---------------------------------------------------------------- success: finish ----


def test_finish__after_success__pays_the_operator_and_the_treasury_and_returns_the_unsold(
    succeeded: Any, stranger: Any, operator: Any, treasury: Any, stablecoin: Any, share: Any
) -> None:
    operator_before, treasury_before = (
        stablecoin.balanceOf(operator),
        stablecoin.balanceOf(treasury),
    )
    tx = succeeded.finish({"from": stranger})
    fee = 120 * USDC * FEE_BPS // 10_000
    assert dict(tx.events["Finished"]) == {
        "succeeded": True,
        "operator": operator.address,
        "treasury": treasury.address,
        "proceeds": 120 * USDC,
        "fee": fee,
        "shares_returned": 40 * SHARES,
    }
    assert stablecoin.balanceOf(operator) - operator_before == 120 * USDC - fee
    assert stablecoin.balanceOf(treasury) - treasury_before == fee == 120 * USDC * FEE_BPS // 10_000
    assert share.balanceOf(operator) == NODE_SHARES - OFFERED + 40 * SHARES
    assert stablecoin.balanceOf(succeeded) == 0 and succeeded.finished()
    # the sold shares stay for their investors
    assert share.balanceOf(succeeded) == 60 * SHARES


def test_finish__before_the_claims__leaves_every_claim_whole(
    succeeded: Any, investor: Any, investor2: Any, stranger: Any, share: Any
) -> None:
    succeeded.finish({"from": stranger})
    succeeded.claim_shares({"from": investor})
    succeeded.claim_shares_for(investor2, {"from": stranger})
    assert (share.balanceOf(investor), share.balanceOf(investor2)) == (45 * SHARES, 15 * SHARES)
    assert share.balanceOf(succeeded) == 0


def test_finish__twice__is_refused(succeeded: Any, stranger: Any) -> None:
    succeeded.finish({"from": stranger})
    with brownie.reverts("offering: already finished"):
        succeeded.finish({"from": stranger})


def test_finish__before_end__is_refused(create: Any, investor: Any, operator: Any) -> None:
    offering = create()
    _open(offering)
    offering.commit(HARD_CAP, {"from": investor})
    set_next_timestamp(offering.END() - 1)
    with brownie.reverts("offering: not ended"):
        offering.finish({"from": operator})


def test_finish__of_a_factory_without_fee__pays_the_operator_everything(
    create: Any, free_factory: Any, investor: Any, operator: Any, treasury: Any, stablecoin: Any
) -> None:
    offering = create(on=free_factory)
    _open(offering)
    offering.commit(SOFT_CAP + 7, {"from": investor})
    _end(offering)
    operator_before, treasury_before = (
        stablecoin.balanceOf(operator),
        stablecoin.balanceOf(treasury),
    )
    tx = offering.finish({"from": operator})
    assert tx.events["Finished"]["fee"] == 0
    assert stablecoin.balanceOf(operator) - operator_before == SOFT_CAP + 7
    assert stablecoin.balanceOf(treasury) == treasury_before


def test_finish__fee__rounds_down(
    create: Any, investor: Any, stranger: Any, treasury: Any, stablecoin: Any
) -> None:
    offering = create()
    _open(offering)
    offering.commit(SOFT_CAP + 99, {"from": investor})  # 1% of ...099 is ...000.99
    _end(offering)
    before = stablecoin.balanceOf(treasury)
    assert offering.finish({"from": stranger}).events["Finished"]["fee"] == SOFT_CAP // 100
    assert stablecoin.balanceOf(treasury) - before == SOFT_CAP // 100


def test_finish__pays_the_fee_to_the_treasury_the_router_names_then(
    succeeded: Any, router: Any, deployer: Any, stranger: Any, stablecoin: Any
) -> None:
    router.set_treasury(stranger, {"from": deployer})
    succeeded.finish({"from": stranger})
    assert stablecoin.balanceOf(stranger) == 120 * USDC * FEE_BPS // 10_000


def test_finish__after_the_operator_handed_the_node_over__pays_the_offerings_operator(
    succeeded: Any,
    registry: Any,
    node: tuple[int, Any],
    operator: Any,
    stranger: Any,
    stablecoin: Any,
    share: Any,
) -> None:
    """The shares sold were the creating operator's: so are the proceeds and the rest."""
    registry.transfer_operator(node[0], stranger, {"from": operator})
    registry.accept_operator(node[0], {"from": stranger})
    before = stablecoin.balanceOf(operator)
    succeeded.finish({"from": stranger})
    assert stablecoin.balanceOf(operator) - before == 120 * USDC * (10_000 - FEE_BPS) // 10_000
    assert share.balanceOf(stranger) == 0 and stablecoin.balanceOf(stranger) == 0


def test_claims_and_finish__while_the_suite_is_paused__go_through(
    succeeded: Any,
    registry: Any,
    deployer: Any,
    investor: Any,
    investor2: Any,
    stranger: Any,
    share: Any,
) -> None:
    registry.pause({"from": deployer})
    succeeded.claim_shares({"from": investor})
    succeeded.claim_shares_for(investor2, {"from": stranger})
    succeeded.finish({"from": stranger})
    assert share.balanceOf(succeeded) == 0 and succeeded.finished()


# ------------------------------------------------------------------------- failure ----


@pytest.fixture
def failed(create: Any, investor: Any, investor2: Any) -> Any:
    """An offering that ended 1 base unit short of its soft cap: the investor committed
    60 USDC and cancelled 10, the second investor committed 50 USDC less 1."""
    offering = create()
    _open(offering)
    offering.commit(60 * USDC, {"from": investor})
    offering.cancel(10 * USDC, {"from": investor})
    offering.commit(50 * USDC - 1, {"from": investor2})
    _end(offering)
    assert offering.state() == FAILED
    return offering


def test_refund__after_failure__pays_every_investor_in_full(
    failed: Any, investor: Any, investor2: Any, stablecoin: Any
) -> None:
    tx = failed.refund({"from": investor})
    assert dict(tx.events["Refunded"]) == {
        "investor": investor.address,
        "caller": investor.address,
        "amount": 50 * USDC,
    }
    assert tx.return_value == 50 * USDC
    failed.refund({"from": investor2})
    assert stablecoin.balanceOf(investor) == stablecoin.balanceOf(investor2) == FUNDS
    assert stablecoin.balanceOf(failed) == 0
    assert failed.total_refunded() == SOFT_CAP - 1


def test_refund_for__pays_only_the_investor(
    failed: Any, investor: Any, stranger: Any, stablecoin: Any
) -> None:
    tx = failed.refund_for(investor, {"from": stranger})
    assert tx.events["Refunded"]["caller"] == stranger
    assert stablecoin.balanceOf(investor) == FUNDS and stablecoin.balanceOf(stranger) == 0
    with brownie.reverts("offering: already refunded"):
        failed.refund({"from": investor})


def test_refund__twice__is_refused(failed: Any, investor: Any) -> None:
    failed.refund({"from": investor})
    with brownie.reverts("offering: already refunded"):
        failed.refund({"from": investor})


def test_refund__without_a_commitment__is_refused(failed: Any, stranger: Any) -> None:
    with brownie.reverts("offering: nothing committed"):
        failed.refund({"from": stranger})


def test_refund__before_end__is_refused(create: Any, investor: Any) -> None:
    offering = create()
    _open(offering)
    offering.commit(USDC, {"from": investor})
    with brownie.reverts("offering: not ended"):
        offering.refund({"from": investor})


def test_refund__while_paused_and_after_the_operator_changed__still_pays(
    failed: Any, registry: Any, node: tuple[int, Any], deployer: Any, operator: Any, stranger: Any,
    investor: Any, investor2: Any, stablecoin: Any,
) -> None:  # fmt: skip
    registry.pause({"from": deployer})
    registry.transfer_operator(node[0], stranger, {"from": operator})
    registry.accept_operator(node[0], {"from": stranger})
    failed.refund({"from": investor})
    failed.refund_for(investor2, {"from": stranger})
    assert stablecoin.balanceOf(investor) == stablecoin.balanceOf(investor2) == FUNDS


def test_claim_shares__after_failure__is_refused(failed: Any, investor: Any) -> None:
    with brownie.reverts("offering: failed, refund instead"):
        failed.claim_shares({"from": investor})
    with brownie.reverts("offering: failed, refund instead"):
        failed.claim_shares_for(investor, {"from": investor})


def test_finish__after_failure__returns_every_share_and_keeps_the_refunds(
    failed: Any, stranger: Any, operator: Any, investor: Any, stablecoin: Any, share: Any
) -> None:
    before = stablecoin.balanceOf(operator)
    tx = failed.finish({"from": stranger})
    assert dict(tx.events["Finished"]) == {
        "succeeded": False,
        "operator": operator.address,
        "treasury": ZERO,
        "proceeds": 0,
        "fee": 0,
        "shares_returned": OFFERED,
    }
    assert share.balanceOf(operator) == NODE_SHARES and share.balanceOf(failed) == 0
    assert stablecoin.balanceOf(operator) == before
    assert stablecoin.balanceOf(failed) == SOFT_CAP - 1
    failed.refund({"from": investor})
    assert stablecoin.balanceOf(investor) == FUNDS


def test_finish__after_failure_paused_and_handed_over__returns_the_shares_to_their_operator(
    failed: Any,
    registry: Any,
    node: tuple[int, Any],
    deployer: Any,
    operator: Any,
    stranger: Any,
    share: Any,
) -> None:
    registry.pause({"from": deployer})
    registry.transfer_operator(node[0], stranger, {"from": operator})
    registry.accept_operator(node[0], {"from": stranger})
    failed.finish({"from": stranger})
    assert share.balanceOf(operator) == NODE_SHARES and share.balanceOf(stranger) == 0


def test_offering_without_commitments__fails(create: Any, operator: Any, share: Any) -> None:
    offering = create()
    _end(offering)
    assert offering.state() == FAILED
    offering.finish({"from": operator})
    assert share.balanceOf(operator) == NODE_SHARES


# ------------------------------------------------------------------------- revenue ----


def test_revenue__of_the_escrowed_shares__goes_to_the_operator_via_claim_for(
    create: Any, pay: Payer, node: tuple[int, Any], share: Any, operator: Any, stranger: Any,
    stablecoin: Any, investor: Any,
) -> None:  # fmt: skip
    offering = create()
    _open(offering)
    offering.commit(HARD_CAP, {"from": investor})  # sold out, not yet delivered
    pay(node[0], 1_000_000)  # 850,000 to holders; a tenth of the supply is in escrow
    assert get_now() < offering.END()
    owed = share.claimable(offering)
    assert_floor_share(owed, 1_000_000 * HOLDERS_BPS // 10_000 * OFFERED, NODE_SHARES)
    before = stablecoin.balanceOf(operator)
    tx = share.claim_for(offering, {"from": stranger})
    assert tx.events["RevenueClaimed"]["receiver"] == operator
    assert stablecoin.balanceOf(operator) - before == owed
    assert share.claimable(investor) == 0


def test_revenue__after_delivery__goes_to_the_investor(
    create: Any, pay: Payer, node: tuple[int, Any], share: Any, operator: Any, stranger: Any,
    stablecoin: Any, investor: Any,
) -> None:  # fmt: skip
    offering = create()
    _open(offering)
    offering.commit(HARD_CAP, {"from": investor})
    pay(node[0], 1_000_000)  # earned while in escrow: the operator's
    _end(offering)
    offering.claim_shares({"from": investor})
    offering.finish({"from": stranger})
    assert share.balanceOf(offering) == 0
    escrowed = share.claimable(offering)
    pay(node[0], 2_000_000)  # earned after delivery: the investor's
    assert_floor_share(
        share.claimable(investor), 2_000_000 * HOLDERS_BPS // 10_000 * OFFERED, NODE_SHARES
    )
    assert share.claimable(offering) == escrowed
    before = stablecoin.balanceOf(operator)
    share.claim_for(offering, {"from": stranger})
    assert stablecoin.balanceOf(operator) - before == escrowed
    assert_floor_share(escrowed, 1_000_000 * HOLDERS_BPS // 10_000 * OFFERED, NODE_SHARES)


# ------------------------------------------------------------------------ rounding ----


def test_rounding__price_not_dividing__delivers_the_floor_and_accounts_every_share(
    create: Any,
    investor: Any,
    investor2: Any,
    investor3: Any,
    share: Any,
    operator: Any,
    stranger: Any,
) -> None:
    price = 3 * USDC + 7  # no commitment below buys a whole number of base units
    offering = create(price_per_share=price, hard_cap=300 * USDC, soft_cap=USDC)
    _open(offering)
    amounts = {investor: 100 * USDC + 1, investor2: 50 * USDC + 2, investor3: 1}
    for who, amount in amounts.items():
        offering.commit(amount, {"from": who})
    assert offering.shares_sold() == sum(_floor(a, price) for a in amounts.values())
    _end(offering)
    delivered = 0
    for who, amount in amounts.items():
        shares = offering.claim_shares({"from": who}).events["SharesClaimed"]["shares"]
        assert shares == share.balanceOf(who) == _floor(amount, price)
        # the investor's loss to rounding is below one share base unit
        assert 0 <= amount * SHARES - shares * price < price
        delivered += shares
    returned = offering.finish({"from": stranger}).events["Finished"]["shares_returned"]
    assert delivered + returned == OFFERED
    assert share.balanceOf(offering) == 0
    assert share.balanceOf(operator) == NODE_SHARES - delivered


def test_rounding__shares_sold__is_the_sum_of_floors_through_commits_and_cancels(
    create: Any, investor: Any, investor2: Any
) -> None:
    price = 3 * USDC + 7
    offering = create(price_per_share=price, hard_cap=300 * USDC, soft_cap=USDC)
    _open(offering)
    offering.commit(5, {"from": investor})
    offering.commit(7, {"from": investor})
    offering.commit(11, {"from": investor2})
    offering.cancel(4, {"from": investor})
    assert offering.shares_sold() == _floor(8, price) + _floor(11, price)
    assert offering.shares_for(investor) == _floor(8, price)


# ------------------------------------------------------------------------ property ----


operations = st.lists(
    st.tuples(st.integers(0, 2), st.booleans(), st.integers(1, 120 * USDC)), min_size=1, max_size=8
)


@given(ops=operations, soft_cap=st.integers(1, 160 * USDC), claim_by_keeper=st.booleans())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.data_too_large])
def test_offering__any_commits_and_cancels__settle_exactly(
    create: Any, investors: list[Any], stranger: Any, operator: Any, treasury: Any,
    stablecoin: Any, share: Any, ops: list[tuple[int, bool, int]], soft_cap: int,
    claim_by_keeper: bool,
) -> None:  # fmt: skip
    """Three investors commit and cancel at random (each operation clipped to what the
    caps and the commitment allow) at a price that divides nothing; then the offering
    ends. Succeeded: every share is delivered or returned, and the operator and the
    treasury got exactly what was committed. Failed: every investor gets back exactly
    what it committed net, and the operator every share. Either way the offering ends
    holding nothing."""
    price, hard_cap, cap = 3 * USDC + 7, 300 * USDC, 150 * USDC
    brownie.chain.snapshot()
    try:
        offering = create(
            price_per_share=price, hard_cap=hard_cap, soft_cap=soft_cap, investor_cap=cap
        )
        _open(offering)
        model = [0, 0, 0]
        for who, is_commit, amount in ops:
            if is_commit:
                amount = min(amount, hard_cap - sum(model), cap - model[who])
                if amount:
                    offering.commit(amount, {"from": investors[who]})
                    model[who] += amount
            else:
                amount = min(amount, model[who])
                if amount:
                    offering.cancel(amount, {"from": investors[who]})
                    model[who] -= amount
            assert offering.total_committed() == sum(model) == stablecoin.balanceOf(offering)
            assert offering.shares_sold() == sum(_floor(c, price) for c in model)
        total = sum(model)
        _end(offering)
        balances = {w: stablecoin.balanceOf(w) for w in (operator, treasury)}
        event("succeeded" if total >= soft_cap else "failed")
        if total >= soft_cap:
            assert offering.state() == SUCCEEDED
            delivered = 0
            for who, committed in zip(investors, model, strict=True):
                if committed:
                    if claim_by_keeper:
                        offering.claim_shares_for(who, {"from": stranger})
                    else:
                        offering.claim_shares({"from": who})
                    delivered += _floor(committed, price)
            returned = offering.finish({"from": stranger}).events["Finished"]["shares_returned"]
            assert delivered + returned == OFFERED
            assert sum(share.balanceOf(w) for w in investors) == delivered
            paid = stablecoin.balanceOf(operator) - balances[operator]
            fee = stablecoin.balanceOf(treasury) - balances[treasury]
            assert (paid + fee, fee) == (total, total * FEE_BPS // 10_000)
        else:
            assert offering.state() == FAILED
            for who, committed in zip(investors, model, strict=True):
                if committed:
                    if claim_by_keeper:
                        offering.refund_for(who, {"from": stranger})
                    else:
                        offering.refund({"from": who})
            offering.finish({"from": stranger})
            assert [stablecoin.balanceOf(w) for w in investors] == [FUNDS] * 3
            assert share.balanceOf(operator) == NODE_SHARES
            assert stablecoin.balanceOf(operator) == balances[operator]
        assert stablecoin.balanceOf(offering) == 0 and share.balanceOf(offering) == 0
    finally:
        brownie.chain.revert()
