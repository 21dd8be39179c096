"""What holders earned can never be lost, re-split or blocked: one test per rule of the
router and registry hardening (docs/SPEC.md and docs/SECURITY.md describe each)."""

from __future__ import annotations

from typing import Any

import brownie
import pytest
from brownie import project, web3
from hexbytes import HexBytes
from sqlalchemy import select

from edgeshare.artifacts import load_artifact
from edgeshare.deploy import build_params
from edgeshare.errors import InputError
from edgeshare.indexer import open_db, sync_index, usage
from edgeshare.poster import post_reports
from edgeshare.signer import Signer
from edgeshare.suite import Suite, fetch_domain_of
from edgeshare.tx import Transactor
from tests.conftest import (
    CHALLENGE,
    SHARES,
    Payer,
    assert_floor_share,
    brownie_contract,
    get_now,
    mine_after,
    mine_at,
    report_args,
    sign_report,
)

ACTIVE, PAUSED, RETIRED = 1, 2, 4
PENDING, FINALIZED, DISPUTED = 1, 2, 3
WEEK = 7 * 86_400
ZERO = "0x" + "00" * 20

pytestmark = pytest.mark.usefixtures("funded")


def _holders_part(gross: int, cut_bps: int) -> int:
    return gross - gross * 500 // 10_000 - gross * cut_bps // 10_000


def _settle(router: Any, signed: Any, sender: Any) -> Any:
    return router.settle(*report_args(signed), {"from": sender})


def _deploy_raw(name: str, deployer: Any, *args: Any) -> Any:
    """Deploy a suite contract from the library's artifact, bypassing the library's checks."""
    artifact = load_artifact(name)
    factory = web3.eth.contract(abi=artifact.abi, bytecode=HexBytes(artifact.bytecode))
    tx_hash = factory.constructor(*args).transact({"from": deployer.address})
    address = web3.eth.wait_for_transaction_receipt(tx_hash)["contractAddress"]
    return brownie_contract(name, address)


def _quirky(deployer: Any) -> Any:
    """A contract that holds shares but calls `claim` only when told to (via execute)."""
    return project.get_loaded_projects()[0].QuirkyToken.deploy({"from": deployer})


# 1 -------------------------------------------------------------------------------------


def test_cut_increase_never_reaches_earlier_epochs(
    pay: Payer,
    router: Any,
    registry: Any,
    node: Any,
    operator: Any,
    suite: Suite,
    attestor_key: str,
) -> None:
    """An operator raises its cut to 50%, waits out the delay and settles its backlog late:
    the backlog is split at the cut of its own epochs."""
    node_id, _ = node
    backlog = [pay.take_epoch(node_id) for _ in range(3)]
    proposal = registry.propose_operator_cut(node_id, 5_000, {"from": operator})
    first = proposal.events["OperatorCutProposed"]["from_epoch"]
    mine_at(registry.epoch_start(first + 1))
    for epoch in [*backlog, first - 1]:
        signed = sign_report(suite, attestor_key, node_id=node_id, epoch=epoch, inferences=1_000)
        tx = _settle(router, signed, pay.payer)
        assert tx.events["UsageSettled"]["operator_cut_bps"] == 1_000
        assert router.settlement(node_id, epoch)["operator_cut_bps"] == 1_000
    signed = sign_report(suite, attestor_key, node_id=node_id, epoch=first, inferences=1_000)
    assert _settle(router, signed, pay.payer).events["UsageSettled"]["operator_cut_bps"] == 5_000
    # pausing the node does not help either: its terms of those epochs stay
    registry.set_node_status(node_id, PAUSED, {"from": operator})
    assert registry.usage_terms(node_id, backlog[0])["operator_cut_bps"] == 1_000


# 2 -------------------------------------------------------------------------------------


def test_retired_or_paused_node_keeps_what_it_earned(
    pay: Payer,
    router: Any,
    registry: Any,
    node: Any,
    operator: Any,
    deployer: Any,
    suite: Suite,
    attestor_key: str,
    stablecoin: Any,
) -> None:
    """Epochs that ended while the node was active settle after it is paused and retired;
    epochs that began after it stopped do not."""
    node_id, share = node
    earned = [pay.take_epoch(node_id) for _ in range(2)]
    registry.set_node_status(node_id, PAUSED, {"from": operator})
    current = registry.current_epoch()  # paused during this epoch: it still counts
    registry.set_node_status(node_id, RETIRED, {"from": deployer})
    mine_at(registry.epoch_start(current + 3))
    reports = [
        sign_report(suite, attestor_key, node_id=node_id, epoch=e, inferences=100_000)
        for e in [*earned, current]
    ]
    for signed in reports:
        _settle(router, signed, pay.payer)
    pay.finalize(node_id, [r.epoch for r in reports])
    before = stablecoin.balanceOf(operator)
    share.claim({"from": operator})
    assert_floor_share(
        stablecoin.balanceOf(operator) - before, 3 * _holders_part(100_000, 1_000), 1
    )
    late = sign_report(suite, attestor_key, node_id=node_id, epoch=current + 1, inferences=10)
    with brownie.reverts("router: node not active in that epoch"):
        _settle(router, late, pay.payer)


def test_epoch_before_registration_is_refused(
    pay: Payer, router: Any, registry: Any, register: Any, suite: Suite, attestor_key: str
) -> None:
    mine_at(registry.epoch_start(registry.current_epoch() + 5))
    node_id, _ = register()
    registered = registry.registered_epoch(node_id)
    assert registered == registry.current_epoch() and registered >= 5
    mine_at(registry.epoch_start(registered + 1))
    early = sign_report(suite, attestor_key, node_id=node_id, epoch=registered - 1, inferences=10)
    with brownie.reverts("router: epoch before the node was registered"):
        _settle(router, early, pay.payer)
    first = sign_report(suite, attestor_key, node_id=node_id, epoch=registered, inferences=10)
    _settle(router, first, pay.payer)


# 3 -------------------------------------------------------------------------------------


def test_disputed_epoch_takes_a_higher_version(
    pay: Payer,
    router: Any,
    node: Any,
    deployer: Any,
    operator: Any,
    suite: Suite,
    attestor_key: str,
) -> None:
    """The payer settles the cheaper of two signed versions first; the guardian disputes
    it; the corrected report settles and pays the holders. The disputed one never returns."""
    node_id, share = node
    epoch = pay.take_epoch(node_id)
    cheap = sign_report(suite, attestor_key, node_id=node_id, epoch=epoch, inferences=10)
    fixed = sign_report(
        suite, attestor_key, node_id=node_id, epoch=epoch, version=1, inferences=900_000
    )
    with brownie.reverts("router: a first report has version 0"):
        _settle(router, fixed, pay.payer)
    _settle(router, cheap, pay.payer)
    with brownie.reverts("router: epoch already settled"):
        _settle(router, fixed, pay.payer)  # no correction while the first is live
    router.dispute(node_id, epoch, {"from": deployer})
    with brownie.reverts("router: version is not the disputed report's next"):
        _settle(router, cheap, pay.payer)
    skipping = sign_report(
        suite, attestor_key, node_id=node_id, epoch=epoch, version=2, inferences=900_000
    )
    with brownie.reverts("router: version is not the disputed report's next"):
        _settle(router, skipping, pay.payer)  # versions go one at a time: none locks the epoch
    tx = _settle(router, fixed, pay.payer)
    assert tx.events["UsageSettled"]["version"] == 1
    record = router.settlement(node_id, epoch)
    assert (record["state"], record["version"], record["revenue"]) == (PENDING, 1, 900_000)
    pay.finalize(node_id, [epoch])
    assert_floor_share(share.claimable(operator), _holders_part(900_000, 1_000), 1)
    assert router.owed(pay.payer) == 10  # the disputed payment came back
    assert router.total_disputed() == 10 and router.total_finalized() == 900_000


# 4 -------------------------------------------------------------------------------------


def test_settle_many_and_finalize_skip_what_others_did(
    pay: Payer,
    router: Any,
    node: Any,
    stablecoin: Any,
    deployer: Any,
    stranger: Any,
    suite: Suite,
    attestor_key: str,
) -> None:
    node_id, _ = node
    epochs = [pay.take_epoch(node_id) for _ in range(3)]
    reports = [
        sign_report(suite, attestor_key, node_id=node_id, epoch=e, inferences=1_000 * (i + 1))
        for i, e in enumerate(epochs)
    ]
    stablecoin.mint(stranger, 10**9, {"from": deployer})
    stablecoin.approve(router, 2**256 - 1, {"from": stranger})
    _settle(router, reports[1], stranger)  # someone settles one of the batch first
    before = stablecoin.balanceOf(deployer)
    tx = router.settle_many(
        [r.get_report().as_tuple() for r in reports],
        b"".join(r.get_signature_bytes() for r in reports),
        {"from": deployer},
    )
    assert [e["epoch"] for e in tx.events["UsageSettled"]] == [epochs[0], epochs[2]]
    assert tx.events["ReportSkipped"]["epoch"] == epochs[1]
    assert before - stablecoin.balanceOf(deployer) == 1_000 + 3_000
    mine_after(CHALLENGE)
    router.finalize(node_id, [epochs[0]], {"from": stranger})  # a second keeper was faster
    tx = router.finalize(node_id, epochs, {"from": deployer})
    assert [e["epoch"] for e in tx.events["RevenueFinalized"]] == epochs[1:]
    assert tx.events["FinalizeSkipped"]["epoch"] == epochs[0]
    assert tx.events["RevenueSplit"]["gross"] == 5_000 and tx.events["RevenueSplit"]["epochs"] == 2


def test_zero_report_only_from_operator_or_attestor(
    pay: Payer,
    router: Any,
    node: Any,
    operator: Any,
    attestor: Any,
    stranger: Any,
    suite: Suite,
    attestor_key: str,
) -> None:
    """A zero report is refused from every account but the node's operator and attestor
    (whoever holds a leaked key still can, from the attestor's own address: the guardian
    then disputes and a higher version settles the epoch)."""
    node_id, _ = node
    epochs = [pay.take_epoch(node_id) for _ in range(3)]
    zeros = [
        sign_report(suite, attestor_key, node_id=node_id, epoch=e, inferences=0) for e in epochs
    ]
    for sender in (stranger, pay.payer):
        with brownie.reverts("router: zero report not from the operator or attestor"):
            _settle(router, zeros[0], sender)
        with brownie.reverts("router: zero report not from the operator or attestor"):
            router.settle_many(
                [zeros[0].get_report().as_tuple()], zeros[0].get_signature_bytes(), {"from": sender}
            )
    _settle(router, zeros[0], operator)
    _settle(router, zeros[1], attestor)
    assert router.is_settled(node_id, epochs[0]) and router.is_settled(node_id, epochs[1])


# 5 -------------------------------------------------------------------------------------


def test_periods_below_minimum_are_refused(
    deployer: Any, suite: Suite, stablecoin: Any, treasury: Any
) -> None:
    blueprint = suite.manifest.contracts.NodeShareBlueprint
    with pytest.raises(Exception, match="registry: unlock period shorter than an epoch"):
        _deploy_raw("NodeRegistry", deployer, blueprint, 3_600, 3_599, ZERO)
    with pytest.raises(Exception, match="router: challenge period too short"):
        _deploy_raw("RevenueRouter", deployer, suite.registry.address, stablecoin.address, 500,
                    treasury.address, 3_599)  # fmt: skip
    for bad in ({"challenge_period": 0}, {"epoch_length": 3_600, "unlock_period": 0},
                {"epoch_length": 3_600, "unlock_period": 3_599}):  # fmt: skip
        with pytest.raises(InputError):
            build_params(None, **bad)


def test_just_in_time_capture_gets_only_what_vests_while_held(
    pay: Payer, router: Any, node: Any, operator: Any, investor: Any, stranger: Any
) -> None:
    """Someone borrows shares, finalizes, claims and returns them a moment later: it gets
    at most the seconds it held of an unlock period of at least one epoch."""
    node_id, share = node
    share.transfer(investor, 1_000 * SHARES, {"from": operator})  # the lender holds all
    epoch, _ = pay.settle(node_id, 600_000)
    mine_after(CHALLENGE)
    share.transfer(stranger, 1_000 * SHARES, {"from": investor})  # borrowed
    start = router.finalize(node_id, [epoch], {"from": stranger}).timestamp
    before = share.claimable(stranger)
    claimed = share.claim({"from": stranger}).events
    got = claimed["RevenueClaimed"]["amount"] if "RevenueClaimed" in claimed else 0
    assert got >= before
    share.transfer(investor, 1_000 * SHARES, {"from": stranger})  # returned
    held = get_now() - start
    unlock = share.UNLOCK_PERIOD()
    assert got <= _holders_part(600_000, 1_000) * held // unlock
    mine_after(unlock)
    assert (
        share.claimable(investor) >= _holders_part(600_000, 1_000) * (unlock - held) // unlock - 1
    )


# 6 -------------------------------------------------------------------------------------


def test_set_router_checks_the_router(deployer: Any, suite: Suite, stablecoin: Any) -> None:
    blueprint = suite.manifest.contracts.NodeShareBlueprint
    registry = _deploy_raw("NodeRegistry", deployer, blueprint, 60, 60, ZERO)
    with brownie.reverts("registry: router is for another registry"):
        registry.set_router(suite.router.address, {"from": deployer})
    router = _deploy_raw("RevenueRouter", deployer, registry.address, stablecoin.address, 500,
                         deployer.address, 3_600)  # fmt: skip
    with brownie.reverts("registry: not owner"):
        registry.set_router(router, {"from": brownie.accounts[6]})
    registry.set_router(router, {"from": deployer})
    assert (registry.router(), registry.stablecoin()) == (router.address, stablecoin.address)
    with brownie.reverts("registry: router already set"):
        registry.set_router(router, {"from": deployer})


# 7 -------------------------------------------------------------------------------------


def test_registrar_pause_lifted_only_by_registrar(
    registry: Any, node: Any, operator: Any, deployer: Any
) -> None:
    node_id, _ = node
    registry.set_node_status(node_id, PAUSED, {"from": deployer})  # the registrar's pause
    assert registry.node(node_id)["paused_by_registrar"]
    with brownie.reverts("registry: paused by the registrar"):
        registry.set_node_status(node_id, ACTIVE, {"from": operator})
    registry.set_node_status(node_id, ACTIVE, {"from": deployer})
    # the operator's own pause it lifts itself, until the registrar takes it over
    registry.set_node_status(node_id, PAUSED, {"from": operator})
    registry.set_node_status(node_id, ACTIVE, {"from": operator})
    registry.set_node_status(node_id, PAUSED, {"from": operator})
    with brownie.reverts("registry: status unchanged"):
        registry.set_node_status(node_id, PAUSED, {"from": operator})
    registry.set_node_status(node_id, PAUSED, {"from": deployer})
    with brownie.reverts("registry: paused by the registrar"):
        registry.set_node_status(node_id, ACTIVE, {"from": operator})


# 8 -------------------------------------------------------------------------------------


def test_dispute_only_inside_window_even_paused(
    pay: Payer, router: Any, registry: Any, node: Any, deployer: Any
) -> None:
    node_id, _ = node
    epoch, tx = pay.settle(node_id, 50_000)
    registry.pause({"from": deployer})
    mine_at(tx.timestamp + CHALLENGE + 30 * 86_400)
    with brownie.reverts("router: challenge window closed"):
        router.dispute(node_id, epoch, {"from": deployer})
    registry.unpause({"from": deployer})
    assert (
        router.finalize(node_id, [epoch], {"from": deployer}).events["RevenueSplit"]["gross"]
        == 50_000
    )


# 9 -------------------------------------------------------------------------------------


def test_transfers_to_token_or_router_refused(node: Any, operator: Any, router: Any) -> None:
    _, share = node
    with brownie.reverts("share: transfer to the share token"):
        share.transfer(share, SHARES, {"from": operator})
    with brownie.reverts("share: transfer to the router"):
        share.transfer(router, SHARES, {"from": operator})
    share.approve(operator, SHARES, {"from": operator})
    with brownie.reverts("share: transfer to the router"):
        share.transferFrom(operator, router, SHARES, {"from": operator})


def test_revenue_receiver_for_contract_holders(
    pay: Payer,
    node: Any,
    operator: Any,
    investor: Any,
    stranger: Any,
    treasury: Any,
    deployer: Any,
    stablecoin: Any,
) -> None:
    """A pool that cannot call `claim` holds 40%: the registrar names a receiver for it;
    the pool keeps what it earned before, the receiver gets what it earns afterwards."""
    node_id, share = node
    pool = stablecoin  # any contract that never calls claim
    share.transfer(pool, 400 * SHARES, {"from": operator})
    pay(node_id, 1_000_000)
    earned_before = share.claimable(pool)
    assert_floor_share(earned_before, _holders_part(1_000_000, 1_000) * 400, 1_000)
    with brownie.reverts("share: holder has no revenue receiver"):
        share.claim_for(pool, {"from": stranger})
    with brownie.reverts("share: not the holder or the registrar"):
        share.set_revenue_receiver(pool, stranger, {"from": stranger})
    with brownie.reverts("share: the registrar sets receivers only for contracts"):
        share.set_revenue_receiver(investor, stranger, {"from": deployer})
    with brownie.reverts("share: receiver cannot claim"):
        share.set_revenue_receiver(pool, share, {"from": deployer})
    pool_before = stablecoin.balanceOf(pool)
    tx = share.set_revenue_receiver(pool, treasury, {"from": deployer})
    assert tx.events["RevenueReceiverSet"]["caller"] == deployer
    assert stablecoin.balanceOf(pool) - pool_before == earned_before  # prospective
    assert share.claimable(pool) == 0 and share.revenue_receiver(pool) == treasury
    pay(node_id, 2_000_000)
    owed = share.claimable(pool)
    assert_floor_share(owed, _holders_part(2_000_000, 1_000) * 400, 1_000)
    before = stablecoin.balanceOf(treasury)
    assert share.claim_for(pool, {"from": stranger}).events["RevenueClaimed"]["amount"] == owed
    assert stablecoin.balanceOf(treasury) - before == owed
    # a new receiver gets what is earned from now on; the old one keeps what it was due
    pay(node_id, 1_000_000)
    due = share.claimable(pool)
    before = stablecoin.balanceOf(treasury)
    share.set_revenue_receiver(pool, investor, {"from": deployer})
    assert stablecoin.balanceOf(treasury) - before == due > 0
    assert share.claimable(pool) == 0
    # a contract holder that chooses itself locks the registrar out
    quirky = _quirky(deployer)
    share.transfer(quirky, 100 * SHARES, {"from": operator})
    quirky.execute(
        share, share.set_revenue_receiver.encode_input(quirky, quirky), {"from": deployer}
    )
    assert share.receiver_chosen_by_holder(quirky)
    with brownie.reverts("share: the holder chose its receiver"):
        share.set_revenue_receiver(quirky, stranger, {"from": deployer})
    # an account sets its own receiver too
    share.set_revenue_receiver(operator, investor, {"from": operator})
    assert share.revenue_receiver(operator) == investor


# 11 ------------------------------------------------------------------------------------


def test_permit_returns_nothing(node: Any) -> None:
    _, share = node
    (permit,) = [item for item in share.abi if item.get("name") == "permit"]
    assert permit["outputs"] == []


def test_operator_handover_two_step(
    pay: Payer, router: Any, registry: Any, node: Any, operator: Any, investor: Any, stranger: Any
) -> None:
    node_id, _ = node
    pay(node_id, 1_000_000)
    old_cut = router.owed(operator)
    registry.transfer_operator(node_id, investor, {"from": operator})
    assert registry.node(node_id)["pending_operator"] == investor
    with brownie.reverts("registry: not operator"):
        registry.set_price(node_id, 5, {"from": investor})  # not yet
    with brownie.reverts("registry: not pending operator"):
        registry.accept_operator(node_id, {"from": stranger})
    tx = registry.accept_operator(node_id, {"from": investor})
    assert tx.events["OperatorTransferred"]["previous_operator"] == operator
    assert (registry.node(node_id)["operator"], registry.pending_operator(node_id)) == (
        investor,
        ZERO,
    )
    with brownie.reverts("registry: not operator"):
        registry.set_price(node_id, 5, {"from": operator})
    registry.set_price(node_id, 1_000, {"from": investor})
    pay(node_id, 1_000_000)
    assert router.owed(operator) == old_cut == 100_000  # what it was owed stays its own
    assert router.owed(investor) == 100_000  # the new cut goes to the new operator


def test_recover_excess_only_takes_excess(
    pay: Payer, router: Any, node: Any, deployer: Any, stranger: Any, stablecoin: Any, operator: Any
) -> None:
    node_id, _ = node
    pay(node_id, 1_000_000)  # owed: fee and cut
    pay.settle(node_id, 300_000)  # pending
    stablecoin.transfer(router, 777, {"from": deployer})  # by mistake
    with brownie.reverts("router: not owner"):
        router.recover_excess(stranger, {"from": stranger})
    assert router.recover_excess.call(stranger, {"from": deployer}) == 777
    router.recover_excess(stranger, {"from": deployer})
    assert stablecoin.balanceOf(stranger) == 777
    assert router.recover_excess.call(stranger, {"from": deployer}) == 0
    assert stablecoin.balanceOf(router) == router.total_owed() + router.total_pending()
    assert router.withdraw(operator, {"from": operator}).events["Withdrawn"]["amount"] == 100_000


# the tools on the same rules -------------------------------------------------------------


def test_poster_names_a_version_the_router_would_refuse(
    pay: Payer, router: Any, node: Any, deployer: Any, suite: Suite, attestor_key: str
) -> None:
    """A version out of turn is named before anything is sent; a disputed report (or an
    older one) counts as done; the next version is posted."""
    node_id, _ = node
    domain = fetch_domain_of(suite)
    payer = Transactor(web3, Signer(address=deployer.address))
    epoch = pay.take_epoch(node_id)

    def signed(version: int) -> Any:
        return sign_report(
            suite, attestor_key, node_id=node_id, epoch=epoch, version=version, inferences=7_000
        )

    with pytest.raises(InputError, match="a first report of an epoch has version 0"):
        post_reports(payer, suite, [signed(1)], domain)
    assert post_reports(payer, suite, [signed(0)], domain).settled == 1
    router.dispute(node_id, epoch, {"from": deployer})
    payer.forget_nonce()  # the dispute went out from the same account, through brownie
    nonce = web3.eth.get_transaction_count(deployer.address)
    with pytest.raises(InputError, match="the correction must be version 1"):
        post_reports(payer, suite, [signed(2)], domain)
    again = post_reports(payer, suite, [signed(0)], domain)
    assert (again.settled, again.already_settled) == (0, 1)
    assert web3.eth.get_transaction_count(deployer.address) == nonce  # nothing was sent
    assert post_reports(payer, suite, [signed(1)], domain).settled == 1
    assert router.settlement(node_id, epoch)["version"] == 1


def test_index_keeps_the_corrected_report(
    pay: Payer,
    router: Any,
    node: Any,
    deployer: Any,
    suite: Suite,
    attestor_key: str,
    tmp_path: Any,
) -> None:
    """Settled, disputed and settled again within one indexed chunk: the index holds the
    corrected report as pending, then as finalized."""
    node_id, _ = node
    epoch = pay.take_epoch(node_id)
    first = sign_report(suite, attestor_key, node_id=node_id, epoch=epoch, inferences=10)
    fixed = sign_report(
        suite, attestor_key, node_id=node_id, epoch=epoch, version=1, inferences=900_000
    )
    _settle(router, first, pay.payer)
    router.dispute(node_id, epoch, {"from": deployer})
    _settle(router, fixed, pay.payer)
    url = f"sqlite:///{tmp_path / 'index.db'}"
    query = select(usage.c.revenue, usage.c.state).where(
        usage.c.node_id == node_id, usage.c.epoch == epoch
    )
    sync_index(suite, url)
    with open_db(url) as db:
        assert tuple(db.execute(query).one()) == (900_000, "pending")
    pay.finalize(node_id, [epoch])
    sync_index(suite, url)
    with open_db(url) as db:
        assert tuple(db.execute(query).one()) == (900_000, "finalized")
