"""RevenueRouter: settlement, the challenge window, disputes, finalization and the split."""

from __future__ import annotations

from typing import Any

import brownie
import pytest
from brownie import project, web3

from edgeshare.attestation import pack_signatures
from edgeshare.signer import Signer
from edgeshare.suite import NodeSpec, send_register_node
from edgeshare.tx import Transactor
from tests.conftest import (
    CHALLENGE,
    SHARES,
    Payer,
    brownie_contract,
    mine_after,
    mine_at,
    report_args,
    sign_report,
)

ZERO = "0x" + "00" * 20
PENDING, FINALIZED, DISPUTED = 1, 2, 3
WINDOW = 3_600

pytestmark = pytest.mark.usefixtures("funded")


def test_finalize__splits_fee_cut_and_holders_exactly(
    pay: Any, router: Any, node: Any, operator: Any, treasury: Any, stablecoin: Any
) -> None:
    node_id, share = node
    tx = pay(node_id, 1_234_567)
    event = tx.events["RevenueSplit"]
    fee, cut = 1_234_567 * 500 // 10_000, 1_234_567 * 1_000 // 10_000
    assert (event["protocol_fee"], event["operator_cut"]) == (fee, cut) == (61_728, 123_456)
    assert event["holders"] == 1_234_567 - fee - cut
    assert (event["gross"], event["node_id"], event["epochs"]) == (1_234_567, node_id, 1)
    assert router.owed(treasury) == fee
    assert router.owed(operator) == cut
    assert router.total_owed() == fee + cut
    assert stablecoin.balanceOf(share) == event["holders"]
    assert stablecoin.balanceOf(router) == fee + cut
    assert share.total_distributed() == event["holders"]
    assert router.total_finalized() == 1_234_567 and router.total_pending() == 0


def test_settle__records_the_report_and_logs_all_of_it(
    pay: Any, router: Any, node: Any, deployer: Any, attestor: Any, stablecoin: Any
) -> None:
    node_id, _ = node
    epoch, tx = pay.settle(node_id, 4_321)
    event = tx.events["UsageSettled"]
    assert (event["node_id"], event["epoch"], event["payer"]) == (node_id, epoch, deployer)
    assert "attestor" not in event and "batch_id" not in event  # derivable: kept off the log
    assert (event["inferences"], event["revenue"], event["latency_ms"], event["uptime_bps"]) == (
        4_321,
        4_321,
        80,
        9_990,
    )
    assert event["operator_cut_bps"] == 1_000 and "deadline" not in event
    record = router.settlement(node_id, epoch)
    assert (record["state"], record["revenue"], record["payer"], record["operator_cut_bps"]) == (
        PENDING,
        4_321,
        deployer,
        1_000,
    )
    assert record["settled_at"] == tx.timestamp == record["finalizable_at"] - CHALLENGE
    assert record["version"] == 0 and event["version"] == 0
    assert router.is_settled(node_id, epoch)
    assert not router.is_settled(node_id, epoch + 1)
    assert router.total_pending() == 4_321
    assert stablecoin.balanceOf(router) == 4_321


def test_settle_many__takes_one_payment_for_fifty_reports(
    pay: Any,
    router: Any,
    register: Any,
    deployer: Any,
    stablecoin: Any,
    attestor_key: str,
    suite: Any,
) -> None:
    node_ids = [register()[0] for _ in range(5)]
    reports = []
    for node_id in node_ids:
        for _ in range(10):
            epoch = pay.take_epoch(node_id)
            reports.append(
                sign_report(
                    suite, attestor_key, node_id=node_id, epoch=epoch, inferences=1_000 + epoch
                )
            )
    tx = router.settle_many(
        [r.get_report().as_tuple() for r in reports],
        pack_signatures(reports),
        {"from": deployer},
    )
    assert len(tx.events["UsageSettled"]) == 50
    payments = [e for e in tx.events["Transfer"] if e.address == stablecoin.address]
    assert len(payments) == 1 and payments[0]["value"] == sum(r.revenue for r in reports)
    assert all(router.is_settled(r.node_id, r.epoch) for r in reports)


def test_settle_many__mismatched_or_empty_lists__revert(router: Any, deployer: Any) -> None:
    with brownie.reverts("router: no reports"):
        router.settle_many([], b"", {"from": deployer})
    with brownie.reverts("router: need 65 signature bytes per report"):
        router.settle_many([(1, 0, 0, 1, 1, 1, 1, 1)], bytes(64), {"from": deployer})


def test_finalize__sums_epochs_and_rounds_each_report_down(
    pay: Any, router: Any, node: Any, stranger: Any, operator: Any
) -> None:
    node_id, _share = node
    epochs = [pay.settle(node_id, amount)[0] for amount in (19, 19, 19)]
    mine_after(CHALLENGE)
    tx = router.finalize(node_id, epochs, {"from": stranger})  # anyone may finalize
    event = tx.events["RevenueSplit"]
    # per report: fee 19*5% = 0.95 -> 0, cut 19*10% = 1.9 -> 1
    assert (
        event["gross"],
        event["protocol_fee"],
        event["operator_cut"],
        event["holders"],
        event["epochs"],
    ) == (57, 0, 3, 54, 3)
    assert [e["epoch"] for e in tx.events["RevenueFinalized"]] == epochs
    assert router.settlement(node_id, epochs[0])["state"] == FINALIZED
    again = router.finalize(node_id, [epochs[0]], {"from": stranger})  # skipped, pays nothing
    assert again.events["FinalizeSkipped"]["state"] == FINALIZED
    assert "RevenueSplit" not in again.events
    with brownie.reverts("router: no epochs"):
        router.finalize(node_id, [], {"from": stranger})


@pytest.fixture(scope="module")
def windowed(
    deploy: Any, deployer: Any, operator: Any, attestor: Any, attestor_key: str
) -> tuple[int, Payer]:
    """A suite with a one-hour challenge window."""
    suite = deploy(challenge_period=WINDOW)
    node_id = send_register_node(
        Transactor(web3, Signer(address=deployer.address)),
        suite,
        NodeSpec(
            operator=operator.address,
            attestor=attestor.address,
            shares=SHARES,
            price_per_1k=1_000,
            operator_cut_bps=1_000,
            region="Lagos",
        ),
    )
    payer = Payer(suite, attestor_key, deployer)
    coin = brownie_contract("MockStablecoin", suite.stablecoin.address)
    coin.mint(deployer, 10**15, {"from": deployer})
    coin.approve(payer.router, 2**256 - 1, {"from": deployer})
    return node_id, payer


def test_finalize__waits_for_the_challenge_window(windowed: Any, stranger: Any) -> None:
    node_id, payer = windowed
    epoch, tx = payer.settle(node_id, 1_000)
    assert payer.router.settlement(node_id, epoch)["finalizable_at"] == tx.timestamp + WINDOW
    early = payer.router.finalize(node_id, [epoch], {"from": stranger})  # skipped: not due
    assert (
        early.events["FinalizeSkipped"]["state"] == PENDING and "RevenueSplit" not in early.events
    )
    mine_at(tx.timestamp + WINDOW - 2)
    early = payer.router.finalize(node_id, [epoch], {"from": stranger})  # the last second
    assert "RevenueSplit" not in early.events
    assert payer.router.settlement(node_id, epoch)["state"] == PENDING
    mine_at(tx.timestamp + WINDOW)
    assert (
        payer.router.finalize(node_id, [epoch], {"from": stranger}).events["RevenueSplit"]["gross"]
        == 1_000
    )


def test_dispute__voids_the_report_and_owes_the_payer(
    windowed: Any, deployer: Any, stablecoin: Any
) -> None:
    node_id, payer = windowed
    router = payer.router
    epoch, _ = payer.settle(node_id, 5_000)
    tx = router.dispute(node_id, epoch, {"from": deployer})
    assert (tx.events["RevenueDisputed"]["payer"], tx.events["RevenueDisputed"]["revenue"]) == (
        deployer,
        5_000,
    )
    assert router.settlement(node_id, epoch)["state"] == DISPUTED
    assert (
        router.owed(deployer) == 5_000
        and router.total_disputed() == 5_000
        and router.total_pending() == 0
    )
    # the epoch is open again, but only for a report of a higher version
    assert not router.is_settled(node_id, epoch)
    assert not router.accepts(node_id, epoch, 0) and router.accepts(node_id, epoch, 1)
    mine_after(WINDOW)
    assert router.finalize.call(node_id, [epoch], {"from": deployer}) == 0  # skipped
    with brownie.reverts("router: nothing pending to dispute"):
        router.dispute(node_id, epoch, {"from": deployer})
    coin = brownie_contract("MockStablecoin", router.STABLECOIN())
    before = coin.balanceOf(deployer)
    router.withdraw(deployer, {"from": deployer})
    assert coin.balanceOf(deployer) == before + 5_000


def test_dispute__by_stranger_or_after_window__reverts(
    windowed: Any, deployer: Any, stranger: Any
) -> None:
    node_id, payer = windowed
    epoch, tx = payer.settle(node_id, 5_000)
    with brownie.reverts("router: not guardian"):
        payer.router.dispute(node_id, epoch, {"from": stranger})
    mine_at(tx.timestamp + WINDOW)
    with brownie.reverts("router: challenge window closed"):
        payer.router.dispute(node_id, epoch, {"from": deployer})


def test_dispute__while_paused__inside_window_only_and_finalize_blocked(
    windowed: Any, deployer: Any
) -> None:
    node_id, payer = windowed
    epoch, tx = payer.settle(node_id, 5_000)
    other, _ = payer.settle(node_id, 5_000)
    payer.registry.pause({"from": deployer})
    payer.router.dispute(node_id, other, {"from": deployer})  # inside its window
    mine_at(tx.timestamp + 2 * WINDOW)
    with brownie.reverts("router: paused"):
        payer.router.finalize(node_id, [epoch], {"from": deployer})
    with brownie.reverts("router: challenge window closed"):
        payer.router.dispute(node_id, epoch, {"from": deployer})
    assert payer.router.settlement(node_id, epoch)["state"] == PENDING


def test_settle__while_paused__reverts(
    pay: Any, registry: Any, node: Any, deployer: Any, attestor_key: str, suite: Any, router: Any
) -> None:
    epoch = pay.take_epoch(node[0])
    signed = sign_report(suite, attestor_key, node_id=node[0], epoch=epoch, inferences=10)
    registry.pause({"from": deployer})
    with brownie.reverts("router: paused"):
        router.settle(*report_args(signed), {"from": deployer})


def test_withdraw__pays_operator_and_treasury_and_logs(
    pay: Any, router: Any, node: Any, operator: Any, treasury: Any, stablecoin: Any, stranger: Any
) -> None:
    pay(node[0], 1_000_000)
    tx = router.withdraw(operator, {"from": operator})
    assert tx.events["Withdrawn"]["amount"] == 100_000 == stablecoin.balanceOf(operator)
    router.withdraw(stranger, {"from": treasury})
    assert stablecoin.balanceOf(stranger) == 50_000
    assert router.owed(operator) == router.owed(treasury) == router.total_owed() == 0
    assert router.withdraw.call(operator, {"from": operator}) == 0
    assert "Withdrawn" not in router.withdraw(operator, {"from": operator}).events
    with brownie.reverts("router: receiver is the zero address"):
        router.withdraw(ZERO, {"from": operator})


def test_pause__claims_and_withdrawals_still_pay(
    pay: Any, registry: Any, router: Any, node: Any, deployer: Any, operator: Any, stablecoin: Any
) -> None:
    node_id, share = node
    pay(node_id, 1_000_000)
    owed_claim = share.claimable(operator)
    registry.pause({"from": deployer})
    share.claim({"from": operator})
    router.withdraw(operator, {"from": operator})
    assert stablecoin.balanceOf(operator) == owed_claim + 100_000


def test_set_treasury__owner_only_and_old_fees_stay_withdrawable(
    pay: Any, router: Any, node: Any, deployer: Any, treasury: Any, stranger: Any
) -> None:
    pay(node[0], 1_000_000)
    with brownie.reverts("router: not owner"):
        router.set_treasury(stranger, {"from": stranger})
    tx = router.set_treasury(stranger, {"from": deployer})
    assert tx.events["TreasurySet"]["treasury"] == stranger
    pay(node[0], 1_000_000)
    assert router.owed(treasury) == 50_000
    assert router.owed(stranger) == 50_000
    with brownie.reverts("router: treasury is the zero address"):
        router.set_treasury(ZERO, {"from": deployer})


def test_constructor__caps_and_zero_addresses__revert(
    registry: Any, stablecoin: Any, deployer: Any, treasury: Any
) -> None:
    router_type = project.get_loaded_projects()[0].RevenueRouter
    with brownie.reverts("router: protocol fee above cap"):
        router_type.deploy(registry, stablecoin, 2_001, treasury, 0, {"from": deployer})
    with brownie.reverts("router: treasury is the zero address"):
        router_type.deploy(registry, stablecoin, 0, ZERO, 0, {"from": deployer})
    with brownie.reverts("router: challenge period too long"):
        router_type.deploy(registry, stablecoin, 0, treasury, 30 * 86_400 + 1, {"from": deployer})


def test_eip712_domain__is_edgeshare_v1_on_this_router(router: Any) -> None:
    fields, name, version, chain_id, contract, _salt, _extensions = router.eip712Domain()
    assert (fields, name, version, chain_id, contract) == (
        "0x0f",
        "EdgeShare",
        "1",
        web3.eth.chain_id,
        router.address,
    )


def test_fee_on_transfer_token__is_rejected_at_deposit(
    deploy: Any, deployer: Any, operator: Any, attestor: Any, attestor_key: str
) -> None:
    token = project.get_loaded_projects()[0].FeeOnTransferToken.deploy({"from": deployer})
    suite = deploy(stablecoin=token.address)
    tx = Transactor(web3, Signer(address=deployer.address))
    node_id = send_register_node(
        tx,
        suite,
        NodeSpec(
            operator=operator.address,
            attestor=attestor.address,
            shares=SHARES,
            price_per_1k=1_000,
            operator_cut_bps=0,
            region="Lagos",
        ),
    )
    token.mint(deployer, 10**12, {"from": deployer})
    token.approve(suite.router.address, 10**12, {"from": deployer})
    payer = Payer(suite, attestor_key, deployer)
    with brownie.reverts("router: stablecoin delivered a different amount"):
        payer.settle(node_id, 1_000_000)
