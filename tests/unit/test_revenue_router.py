"""RevenueRouter: settlement, the challenge window, disputes, finalization and the split;
the channel path (revenue credited by the linked PaymentChannels, split at once, and
counted toward the usage report of its epoch)."""

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
    make_voucher,
    mine_after,
    mine_at,
    report_args,
    sign_report,
    voucher_args,
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


# the channel path --------------------------------------------------------------------


@pytest.fixture(scope="module")
def credit(
    suite: Any, channels: Any, stablecoin: Any, registry: Any, customer: Any,
    customer_key: str, operator: Any, deployer: Any,
) -> Any:  # fmt: skip
    """Redeems a voucher of the customer's channel to a node, for ``amount`` more than
    it redeemed before, in the epoch now in progress; returns the redemption."""
    stablecoin.mint(customer, 10**15, {"from": deployer})
    stablecoin.approve(channels, 2**256 - 1, {"from": customer})

    def _credit(node_id: int, amount: int) -> Any:
        channels.deposit(node_id, amount, {"from": customer})
        cumulative = channels.channel(customer, node_id)["redeemed"] + amount
        signed = make_voucher(suite, customer_key, node_id, customer.address, cumulative)
        tx = channels.redeem_many(*voucher_args([signed]), {"from": operator})
        assert tx.events["ChannelRevenue"]["amount"] == amount
        return tx

    return _credit


def _fresh_epoch(registry: Any) -> int:
    """Mine the first block of the next epoch; its number."""
    epoch = registry.current_epoch() + 1
    mine_at(registry.epoch_start(epoch))
    return epoch


def _credit_and_due(router: Any, tx: Any) -> tuple[int, int]:
    """The channel credit of a settled report's (node, epoch), and what its payer paid
    (the settlement's revenue: UsageSettled carries the report's)."""
    node_id, epoch = tx.events["UsageSettled"]["node_id"], tx.events["UsageSettled"]["epoch"]
    return int(router.channel_revenue(node_id, epoch)), int(
        router.settlement(node_id, epoch)["revenue"]
    )


def _settle_epoch(suite: Any, router: Any, key: str, node_id: int, epoch: int, inferences: int,
                  payer: Any) -> Any:  # fmt: skip
    """Settle ``epoch``'s report (after mining past the epoch if needed)."""
    registry = brownie_contract("NodeRegistry", suite.registry.address)
    if registry.current_epoch() <= epoch:
        mine_at(registry.epoch_start(epoch + 1))
    signed = sign_report(suite, key, node_id=node_id, epoch=epoch, inferences=inferences)
    return router.settle(*report_args(signed), {"from": payer})


def test_report_with_channel_credit__payer_pays_only_the_rest(
    suite: Any, router: Any, registry: Any, stablecoin: Any, node: Any, credit: Any,
    attestor_key: str, deployer: Any,
) -> None:  # fmt: skip
    node_id, _ = node
    epoch = _fresh_epoch(registry)
    assert credit(node_id, 3_000).events["ChannelRevenue"]["epoch"] == epoch
    assert credit(node_id, 1_500).events["ChannelRevenue"]["epoch"] == epoch  # adds up
    assert router.channel_revenue(node_id, epoch) == 4_500
    before, held = stablecoin.balanceOf(deployer), stablecoin.balanceOf(router)
    tx = _settle_epoch(suite, router, attestor_key, node_id, epoch, 10_000, deployer)
    assert tx.events["UsageSettled"]["revenue"] == 10_000  # the report's, all inferences
    assert _credit_and_due(router, tx) == (4_500, 5_500)
    record = router.settlement(node_id, epoch)
    assert (record["state"], record["revenue"], record["payer"]) == (PENDING, 5_500, deployer)
    assert before - stablecoin.balanceOf(deployer) == 5_500
    assert stablecoin.balanceOf(router) - held == 5_500
    payments = [e for e in tx.events["Transfer"] if e.address == stablecoin.address]
    assert [(p["sender"], p["value"]) for p in payments] == [(deployer, 5_500)]
    assert router.total_pending() == 5_500
    assert stablecoin.balanceOf(router) == router.total_owed() + router.total_pending()


def test_report_below_channel_credit__due_is_zero_and_it_settles(
    suite: Any, router: Any, registry: Any, stablecoin: Any, node: Any, credit: Any,
    attestor_key: str, deployer: Any, stranger: Any,
) -> None:  # fmt: skip
    """Channels paid more than the report says: the payer (not the node's own) settles it
    for nothing, the excess stays the holders', and finalizing splits nothing more."""
    node_id, share = node
    epoch = _fresh_epoch(registry)
    credit(node_id, 7_000)
    distributed = share.total_distributed()
    before = stablecoin.balanceOf(deployer)
    tx = _settle_epoch(suite, router, attestor_key, node_id, epoch, 5_000, deployer)
    assert tx.events["UsageSettled"]["revenue"] == 5_000
    assert _credit_and_due(router, tx) == (7_000, 0)
    assert stablecoin.balanceOf(deployer) == before
    assert "Transfer" not in tx.events  # the payer paid nothing
    assert router.settlement(node_id, epoch)["revenue"] == 0 and router.is_settled(node_id, epoch)
    mine_after(CHALLENGE)
    final = router.finalize(node_id, [epoch], {"from": stranger})
    assert final.events["RevenueFinalized"]["revenue"] == 0
    split = final.events["RevenueSplit"]
    assert (split["gross"], split["protocol_fee"], split["operator_cut"], split["holders"]) == (
        0,
        0,
        0,
        0,
    )
    assert share.total_distributed() == distributed  # the 7,000 was split at redemption
    assert router.channel_revenue(node_id, epoch) == 7_000


def test_zero_report__still_only_from_the_node_even_with_channel_credit(
    suite: Any, router: Any, registry: Any, node: Any, credit: Any, attestor_key: str,
    deployer: Any, operator: Any,
) -> None:  # fmt: skip
    node_id, _ = node
    epoch = _fresh_epoch(registry)
    credit(node_id, 100)
    mine_at(registry.epoch_start(epoch + 1))
    zero = sign_report(suite, attestor_key, node_id=node_id, epoch=epoch, inferences=0)
    with brownie.reverts("router: zero report not from the operator or attestor"):
        router.settle(*report_args(zero), {"from": deployer})
    tx = router.settle(*report_args(zero), {"from": operator})
    assert _credit_and_due(router, tx) == (100, 0)


def test_redemption_in_a_later_epoch__leaves_an_ended_epochs_due(
    suite: Any, router: Any, registry: Any, node: Any, credit: Any, attestor_key: str,
    deployer: Any,
) -> None:  # fmt: skip
    node_id, _ = node
    epoch = _fresh_epoch(registry)
    credit(node_id, 2_000)
    _fresh_epoch(registry)
    later = credit(node_id, 3_000)  # redeemed in epoch + 1: counts there
    assert later.events["ChannelRevenue"]["epoch"] == epoch + 1
    assert later.events["VoucherRedeemed"]["epoch"] == epoch + 1
    assert router.channel_revenue(node_id, epoch) == 2_000
    assert router.channel_revenue(node_id, epoch + 1) == 3_000
    tx = _settle_epoch(suite, router, attestor_key, node_id, epoch, 10_000, deployer)
    assert _credit_and_due(router, tx) == (2_000, 8_000)
    tx = _settle_epoch(suite, router, attestor_key, node_id, epoch + 1, 10_000, deployer)
    assert _credit_and_due(router, tx) == (3_000, 7_000)


def test_settle_many_with_channel_credit__one_payment_of_the_dues(
    suite: Any, router: Any, registry: Any, stablecoin: Any, node: Any, credit: Any,
    attestor_key: str, deployer: Any,
) -> None:  # fmt: skip
    node_id, _ = node
    first = _fresh_epoch(registry)
    credit(node_id, 1_000)
    second = _fresh_epoch(registry)
    credit(node_id, 9_000)
    mine_at(registry.epoch_start(second + 1))
    reports = [
        sign_report(suite, attestor_key, node_id=node_id, epoch=e, inferences=4_000)
        for e in (first, second)
    ]
    tx = router.settle_many(
        [r.get_report().as_tuple() for r in reports], pack_signatures(reports), {"from": deployer}
    )
    assert [router.settlement(node_id, e)["revenue"] for e in (first, second)] == [3_000, 0]
    assert [e["revenue"] for e in tx.events["UsageSettled"]] == [4_000, 4_000]
    payments = [e for e in tx.events["Transfer"] if e.address == stablecoin.address]
    assert [p["value"] for p in payments] == [3_000]
    assert router.total_pending() == 3_000


def test_dispute_with_channel_credit__refunds_only_what_the_payer_paid(
    suite: Any, router: Any, registry: Any, stablecoin: Any, node: Any, credit: Any,
    attestor_key: str, deployer: Any, operator: Any,
) -> None:  # fmt: skip
    node_id, share = node
    epoch = _fresh_epoch(registry)
    credit(node_id, 4_000)
    owed_operator, distributed = router.owed(operator), share.total_distributed()
    _settle_epoch(suite, router, attestor_key, node_id, epoch, 10_000, deployer)
    tx = router.dispute(node_id, epoch, {"from": deployer})
    assert tx.events["RevenueDisputed"]["revenue"] == 6_000
    assert router.owed(deployer) == 6_000 == router.total_disputed()
    # the channel revenue was the customers': split already, not refunded
    assert (router.owed(operator), share.total_distributed()) == (owed_operator, distributed)
    before = stablecoin.balanceOf(deployer)
    router.withdraw(deployer, {"from": deployer})
    assert stablecoin.balanceOf(deployer) - before == 6_000
    # the corrected report owes the same rest: the credit of the ended epoch is final
    signed = sign_report(
        suite, attestor_key, node_id=node_id, epoch=epoch, version=1, inferences=9_000
    )
    again = router.settle(*report_args(signed), {"from": deployer})
    assert _credit_and_due(router, again) == (4_000, 5_000)
    router.dispute(node_id, epoch, {"from": deployer})  # and the one after that, too
    signed = sign_report(
        suite, attestor_key, node_id=node_id, epoch=epoch, version=2, inferences=8_000
    )
    third = router.settle(*report_args(signed), {"from": deployer})
    assert _credit_and_due(router, third) == (4_000, 4_000)
    assert router.settlement(node_id, epoch)["version"] == 2


def test_finalize_with_channel_credit__splits_what_the_payer_paid(
    suite: Any, router: Any, registry: Any, node: Any, credit: Any, attestor_key: str,
    deployer: Any, stranger: Any,
) -> None:  # fmt: skip
    node_id, share = node
    epoch = _fresh_epoch(registry)
    redemption = credit(node_id, 2_345)
    assert redemption.events["RevenueSplit"]["gross"] == 2_345  # split at once, at 5% / 10%
    assert redemption.events["RevenueSplit"]["protocol_fee"] == 117
    assert redemption.events["RevenueSplit"]["operator_cut"] == 234
    distributed = share.total_distributed()
    _settle_epoch(suite, router, attestor_key, node_id, epoch, 12_345, deployer)
    mine_after(CHALLENGE)
    tx = router.finalize(node_id, [epoch], {"from": stranger})
    split = tx.events["RevenueSplit"]
    assert tx.events["RevenueFinalized"]["revenue"] == 10_000 == split["gross"]
    assert (split["protocol_fee"], split["operator_cut"], split["holders"]) == (500, 1_000, 8_500)
    assert share.total_distributed() - distributed == 8_500
    assert router.total_finalized() == 10_000 and router.total_pending() == 0


def test_credit_channel_revenue__only_from_the_channels_contract(
    router: Any, channels: Any, node: Any, deployer: Any, operator: Any, attestor: Any,
    stranger: Any, customer: Any,
) -> None:  # fmt: skip
    node_id, _ = node
    for who in (deployer, operator, attestor, stranger, customer):  # the owner included
        with brownie.reverts("router: not the channels contract"):
            router.credit_channel_revenue(node_id, 1, {"from": who})
    # the channels contract itself (impersonated) must still credit something, to a node
    linked = brownie.accounts.at(channels.address, force=True)
    with brownie.reverts("router: amount is zero"):
        router.credit_channel_revenue(node_id, 0, {"from": linked})
    with brownie.reverts("registry: unknown node"):
        router.credit_channel_revenue(99, 1, {"from": linked})
    with brownie.reverts("stablecoin: insufficient balance"):  # it pulls what it credits
        router.credit_channel_revenue(node_id, 1, {"from": linked})
    assert router.total_channel_revenue() == 0


def test_set_channels__owner_once_and_only_channels_of_this_router(
    router: Any, channels: Any, registry: Any, stablecoin: Any, deployer: Any, treasury: Any,
    stranger: Any,
) -> None:  # fmt: skip
    with brownie.reverts("router: channels already set"):  # the suite linked its own
        router.set_channels(channels, {"from": deployer})
    built = project.get_loaded_projects()[0]
    unlinked = built.RevenueRouter.deploy(
        registry, stablecoin, 500, treasury, CHALLENGE, {"from": deployer}
    )
    assert unlinked.channels() == ZERO
    with brownie.reverts("router: channels has no code"):
        unlinked.set_channels(stranger, {"from": deployer})
    with brownie.reverts("router: channels is for another router"):
        unlinked.set_channels(channels, {"from": deployer})
    with brownie.reverts():  # a contract without ROUTER()
        unlinked.set_channels(stablecoin, {"from": deployer})
    own = built.PaymentChannels.deploy(unlinked, {"from": deployer})
    with brownie.reverts("router: not owner"):
        unlinked.set_channels(own, {"from": stranger})
    tx = unlinked.set_channels(own, {"from": deployer})
    assert tx.events["ChannelsSet"]["channels"] == own.address == unlinked.channels()
    another = built.PaymentChannels.deploy(unlinked, {"from": deployer})
    with brownie.reverts("router: channels already set"):
        unlinked.set_channels(another, {"from": deployer})
    with brownie.reverts("router: not the channels contract"):  # only the linked one credits
        sender = brownie.accounts.at(another.address, force=True)
        unlinked.credit_channel_revenue(1, 1, {"from": sender})
