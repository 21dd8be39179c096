"""The accounting at its edges: dust against huge supplies, huge revenue against one
share, supplies from 1 to 10**30, a node retired mid-epoch, the operator cut at its cap,
a zero protocol fee, payment channels of 1 base unit and of 2**128 - 1. Nothing that
should pay reverts, and the share token always holds at least what its holders can
claim."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import brownie
import pytest
from brownie import web3

from edgeshare.signer import Signer
from edgeshare.suite import NodeSpec, Suite, send_register_node
from edgeshare.tx import Transactor
from tests.conftest import (
    Payer,
    assert_floor_share,
    brownie_contract,
    make_voucher,
    mine_at,
    report_args,
    set_next_timestamp,
    sign_report,
    voucher_args,
)

RETIRED = 4
MAX_OPERATOR_CUT_BPS = 5_000  # NodeRegistry's cap
MAX_CHANNEL_AMOUNT = 2**128 - 1  # PaymentChannels: deposits and cumulative amounts
MAX_TOTAL_REVENUE = 2**126  # NodeShare: a node's holders' revenue over its lifetime
pytestmark = pytest.mark.usefixtures("funded")


def _split(gross: int, fee_bps: int = 500, cut_bps: int = 1_000) -> int:
    """What holders get of ``gross`` (the router rounds fee and cut down)."""
    return gross - gross * fee_bps // 10_000 - gross * cut_bps // 10_000


def _claim_all(share: Any, stablecoin: Any, holders: list[Any]) -> int:
    """Every holder claims what the share token says it can; returns the total paid."""
    paid = 0
    for holder in holders:
        owed = share.claimable(holder)
        before = stablecoin.balanceOf(holder)
        share.claim({"from": holder})
        assert stablecoin.balanceOf(holder) - before == owed
        paid += owed
    return paid


def _assert_solvent(share: Any, stablecoin: Any, holders: list[Any]) -> None:
    assert stablecoin.balanceOf(share) >= sum(share.claimable(h) for h in holders)


def test_one_base_unit_against_1e27_shares__carries_and_never_overpays(
    register: Any, pay: Payer, stablecoin: Any, operator: Any, investor: Any, investor2: Any
) -> None:
    node_id, share = register(shares=10**27)
    share.transfer(investor, 1, {"from": operator})  # one indivisible share unit
    share.transfer(investor2, 5 * 10**26, {"from": operator})
    holders = [operator, investor, investor2]
    for _ in range(7):
        pay(node_id, 1)  # fee and cut round to 0: 1 unit to 10**27 shares
        _assert_solvent(share, stablecoin, holders)
    assert share.claimable(investor) == 0
    paid = _claim_all(share, stablecoin, holders)
    # the accumulator carries its remainders: no more than 1 unit per holder is stuck
    assert 7 - len(holders) <= paid <= 7
    assert stablecoin.balanceOf(share) == 7 - paid


def test_1e15_base_units_against_one_share__paid_exactly(
    register: Any, pay: Payer, stablecoin: Any, operator: Any, investor: Any
) -> None:
    node_id, share = register(shares=1)
    amount = 10**15  # a billion USDC
    pay(node_id, amount)
    assert share.claimable(operator) == _split(amount)
    with brownie.reverts():
        share.transfer(investor, 2, {"from": operator})
    assert _claim_all(share, stablecoin, [operator]) == _split(amount)
    assert stablecoin.balanceOf(share) == 0


@pytest.mark.parametrize("supply", [1, 2, 3, 10**6, 10**18, 10**24, 10**30])
def test_any_supply__pro_rata_to_the_unit_and_solvent(
    supply: int,
    register: Any,
    pay: Payer,
    stablecoin: Any,
    operator: Any,
    investor: Any,
    investor2: Any,
) -> None:
    node_id, share = register(shares=supply)
    if supply >= 3:
        share.transfer(investor, supply // 3, {"from": operator})
        share.transfer(investor2, supply // 7, {"from": operator})
    holders = [operator, investor, investor2]
    gross = 1_000_000_007
    pay(node_id, gross)
    pay(node_id, gross)
    to_holders = 2 * _split(gross)
    for holder in holders:
        assert_floor_share(share.claimable(holder), to_holders * share.balanceOf(holder), supply)
    _assert_solvent(share, stablecoin, holders)
    paid = _claim_all(share, stablecoin, holders)
    assert to_holders - 2 * len(holders) <= paid <= to_holders
    assert stablecoin.balanceOf(share) == to_holders - paid


def test_node_retired_mid_epoch__settled_revenue_still_pays(
    register: Any,
    pay: Payer,
    registry: Any,
    router: Any,
    suite: Suite,
    attestor_key: str,
    stablecoin: Any,
    deployer: Any,
    operator: Any,
) -> None:
    node_id, share = register()
    epoch, _ = pay.settle(node_id, 2_000_000)  # pending
    next_epoch = pay.take_epoch(node_id)
    # retire half-way through the epoch after
    mine_at((registry.epoch_start(next_epoch + 1) + registry.epoch_start(next_epoch + 2)) // 2)
    registry.set_node_status(node_id, RETIRED, {"from": deployer})
    pay.finalize(node_id, [epoch])
    assert_floor_share(_claim_all(share, stablecoin, [operator]), _split(2_000_000), 1)
    router.withdraw(operator, {"from": operator})
    assert router.owed(operator) == 0
    # the epoch it retired in and the one before still take their reports; later ones not
    for served in (next_epoch, next_epoch + 1):
        signed = sign_report(suite, attestor_key, node_id=node_id, epoch=served, inferences=10)
        router.settle(*report_args(signed), {"from": deployer})
    mine_at(registry.epoch_start(next_epoch + 3))
    signed = sign_report(suite, attestor_key, node_id=node_id, epoch=next_epoch + 2, inferences=10)
    with brownie.reverts("router: node not active in that epoch"):
        router.settle(*report_args(signed), {"from": deployer})


def test_operator_cut_at_its_cap__split_exactly(
    register: Any, pay: Payer, router: Any, stablecoin: Any, operator: Any, registry: Any
) -> None:
    cap = MAX_OPERATOR_CUT_BPS
    node_id, share = register(operator_cut_bps=cap)
    event = pay(node_id, 1_000_001).events["RevenueSplit"]
    assert (event["protocol_fee"], event["operator_cut"]) == (50_000, 500_000)
    assert event["holders"] == 450_001 == _split(1_000_001, cut_bps=cap)
    assert router.owed(operator) == 500_000
    before = stablecoin.balanceOf(operator)
    router.withdraw(operator, {"from": operator})
    claimed = _claim_all(share, stablecoin, [operator])
    assert_floor_share(claimed, 450_001, 1)
    assert stablecoin.balanceOf(operator) - before == 500_000 + claimed
    with brownie.reverts("registry: operator cut above cap"):
        registry.propose_operator_cut(node_id, cap + 1, {"from": operator})


@pytest.fixture(scope="module")
def feeless(
    deploy: Callable[..., Suite], deployer: Any, operator: Any, attestor: Any, attestor_key: str
) -> tuple[Suite, int, Any, Payer]:
    """A suite with a protocol fee of 0 and one node with a 0% operator cut."""
    suite = deploy(protocol_fee_bps=0)
    spec = NodeSpec(
        operator=operator.address, attestor=attestor.address, shares=3,
        price_per_1k=1_000, operator_cut_bps=0, region="Dhaka",
    )  # fmt: skip
    node_id = send_register_node(Transactor(web3, Signer(address=deployer.address)), suite, spec)
    coin = brownie_contract("MockStablecoin", suite.stablecoin.address)
    coin.mint(deployer, 10**15, {"from": deployer})
    coin.approve(suite.router.address, 2**256 - 1, {"from": deployer})
    share = brownie_contract("NodeShare", suite.registry.call("share_token", node_id))
    return suite, node_id, share, Payer(suite, attestor_key, deployer)


def test_fee_zero_and_cut_zero__everything_to_holders(
    feeless: tuple[Suite, int, Any, Payer], operator: Any, investor: Any, treasury: Any
) -> None:
    suite, node_id, share, pay = feeless
    coin = brownie_contract("MockStablecoin", suite.stablecoin.address)
    router = brownie_contract("RevenueRouter", suite.router.address)
    share.transfer(investor, 1, {"from": operator})
    event = pay(node_id, 999_999).events["RevenueSplit"]
    assert (event["protocol_fee"], event["operator_cut"], event["holders"]) == (0, 0, 999_999)
    assert router.owed(treasury) == router.owed(operator) == router.total_owed() == 0
    before = coin.balanceOf(treasury)
    assert router.withdraw(treasury, {"from": treasury}).status == 1  # nothing owed: no revert
    assert coin.balanceOf(treasury) == before
    paid = _claim_all(share, coin, [operator, investor])
    assert_floor_share(coin.balanceOf(investor), 999_999, 3)
    assert 999_999 - 2 <= paid <= 999_999
    assert coin.balanceOf(share) == 999_999 - paid
    assert coin.balanceOf(router) == 0


def _redeem(channels: Any, suite: Suite, key: str, customer: Any, node_id: int, cumulative: int,
            operator: Any) -> Any:  # fmt: skip
    signed = make_voucher(suite, key, node_id, customer.address, cumulative)
    return channels.redeem_many(*voucher_args([signed]), {"from": operator})


def _close_and_withdraw(channels: Any, customer: Any, node_id: int) -> Any:
    tx = channels.request_close(node_id, {"from": customer})
    set_next_timestamp(tx.events["CloseRequested"]["closes_at"])
    return channels.withdraw(node_id, {"from": customer})


def test_channel_of_one_base_unit__redeemed_unit_by_unit_and_withdrawn(
    suite: Suite, channels: Any, stablecoin: Any, node: Any, customer: Any, customer_key: str,
    operator: Any, deployer: Any, treasury: Any, router: Any,
) -> None:  # fmt: skip
    node_id, share = node
    stablecoin.mint(customer, 8, {"from": deployer})
    stablecoin.approve(channels, 8, {"from": customer})
    for cumulative in range(1, 8):  # one unit in, one unit redeemed, seven times
        channels.deposit(node_id, 1, {"from": customer})
        tx = _redeem(channels, suite, customer_key, customer, node_id, cumulative, operator)
        split = tx.events["RevenueSplit"]
        assert (split["gross"], split["protocol_fee"], split["operator_cut"]) == (1, 0, 0)
        assert split["holders"] == 1  # fee and cut round to 0: the unit is the holders'
        assert tx.events["VoucherRedeemed"]["unredeemed"] == 0
    assert share.total_distributed() == 7 == stablecoin.balanceOf(share)
    assert router.owed(treasury) == router.owed(operator) == 0
    channels.deposit(node_id, 1, {"from": customer})
    assert (
        _close_and_withdraw(channels, customer, node_id).events["ChannelWithdrawn"]["amount"] == 1
    )
    assert stablecoin.balanceOf(customer) == 1
    assert stablecoin.balanceOf(channels) == 0 == channels.total_unredeemed()
    assert channels.total_redeemed() == 7


def test_channel_of_2_128_minus_1__redeemed_to_the_lifetime_bound_and_withdrawn(
    suite: Suite, channels: Any, stablecoin: Any, node: Any, customer: Any, customer_key: str,
    operator: Any, deployer: Any, router: Any, treasury: Any,
) -> None:  # fmt: skip
    """The channel arithmetic holds at 2**128 - 1; what a node's share token takes over its
    lifetime (2**126, docs/SPEC.md "Bounds") bounds what vouchers can redeem: a voucher
    above it reverts its batch in the share token, and the customer withdraws the rest."""
    node_id, share = node
    stablecoin.mint(customer, MAX_CHANNEL_AMOUNT, {"from": deployer})
    stablecoin.approve(channels, MAX_CHANNEL_AMOUNT, {"from": customer})
    channels.deposit(node_id, MAX_CHANNEL_AMOUNT, {"from": customer})
    redeemed = MAX_TOTAL_REVENUE  # its holders' part is below the bound
    tx = _redeem(channels, suite, customer_key, customer, node_id, redeemed, operator)
    split = tx.events["RevenueSplit"]
    fee, cut = redeemed * 500 // 10_000, redeemed * 1_000 // 10_000
    assert (split["protocol_fee"], split["operator_cut"]) == (fee, cut)
    assert split["holders"] == redeemed - fee - cut == share.total_distributed()
    assert tx.events["VoucherRedeemed"]["unredeemed"] == MAX_CHANNEL_AMOUNT - redeemed
    assert router.owed(treasury) + router.owed(operator) == fee + cut
    top = make_voucher(suite, customer_key, node_id, customer.address, MAX_CHANNEL_AMOUNT)
    amount, reason = channels.check(top.as_tuple(), top.get_signature_bytes(), operator)
    assert (int(amount), int(reason)) == (MAX_CHANNEL_AMOUNT - redeemed, 0)
    with brownie.reverts("share: revenue exceeds the supported total"):
        channels.redeem_many(*voucher_args([top]), {"from": operator})
    before = stablecoin.balanceOf(customer)
    tx = _close_and_withdraw(channels, customer, node_id)
    assert tx.events["ChannelWithdrawn"]["amount"] == MAX_CHANNEL_AMOUNT - redeemed
    assert stablecoin.balanceOf(customer) - before == MAX_CHANNEL_AMOUNT - redeemed
    assert stablecoin.balanceOf(channels) == 0 == channels.total_unredeemed()
