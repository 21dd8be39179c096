"""The suite on stablecoins that misbehave the ways real tokens do.

Each test deploys a suite on one of the test tokens in contracts/testing/: one without
return values (USDT-style), one that can answer ``false`` instead of reverting, block
an address (USDC-style blocklist), or call back into the suite in the middle of a
transfer (ERC-777-style hooks). Fee-on-transfer is in test_revenue_router.py for
settlements and here for channel deposits (test_share_offering.py and
test_share_market.py refuse it too). The payment channels, an offering, the share
market and a basket are run on each too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import brownie
import pytest
import vyper
from brownie import Contract, project, web3

from edgeshare.chain import build_dev_keys
from edgeshare.orders import build_order, sign_market_order
from edgeshare.signer import Signer
from edgeshare.suite import NodeSpec, Suite, send_register_node
from edgeshare.tx import Transactor
from tests.conftest import (
    SHARES,
    Payer,
    assert_floor_share,
    brownie_contract,
    make_voucher,
    report_args,
    set_next_timestamp,
    sign_report,
    voucher_args,
)

AMOUNT = 1_000_000  # 1 USDC of revenue: 5% fee, 10% cut, 850,000 to holders


def _contracts() -> Any:
    return project.get_loaded_projects()[0]


@pytest.fixture(scope="module")
def on_token(
    deploy: Callable[..., Suite], deployer: Any, operator: Any, attestor: Any, attestor_key: str
) -> Callable[[Any], tuple[Suite, int, Any, Payer]]:
    """A suite on ``token`` with one node (1,000 shares held by the operator) and a payer
    (the deployer) funded and approved; returns (suite, node id, share, payer)."""

    def _build(token: Any) -> tuple[Suite, int, Any, Payer]:
        suite = deploy(stablecoin=token.address)
        spec = NodeSpec(
            operator=operator.address, attestor=attestor.address, shares=1_000 * SHARES,
            price_per_1k=1_000, operator_cut_bps=1_000, region="Nairobi",
        )  # fmt: skip
        node_id = send_register_node(
            Transactor(web3, Signer(address=deployer.address)), suite, spec
        )
        token.mint(deployer, 10**15, {"from": deployer})
        token.approve(suite.router.address, 10**15, {"from": deployer})
        share = brownie_contract("NodeShare", suite.registry.call("share_token", node_id))
        return suite, node_id, share, Payer(suite, attestor_key, deployer)

    return _build


def test_token_without_return_values__settles_claims_and_withdraws(
    on_token: Any, deployer: Any, operator: Any, investor: Any, treasury: Any
) -> None:
    token = _contracts().NoReturnToken.deploy({"from": deployer})
    suite, node_id, share, pay = on_token(token)
    share.transfer(investor, 250 * SHARES, {"from": operator})
    pay(node_id, AMOUNT)
    owed_investor, owed_operator = share.claimable(investor), share.claimable(operator)
    assert_floor_share(owed_investor, 850_000, 4)
    assert_floor_share(owed_operator, 850_000 * 3, 4)
    share.claim({"from": investor})
    share.claim({"from": operator})
    router = brownie_contract("RevenueRouter", suite.router.address)
    router.withdraw(operator, {"from": operator})
    router.withdraw(treasury, {"from": treasury})
    assert token.balanceOf(investor) == owed_investor
    assert token.balanceOf(operator) == owed_operator + 100_000
    assert token.balanceOf(treasury) == 50_000
    assert token.balanceOf(suite.router.address) == 0
    assert 0 <= token.balanceOf(share) == 850_000 - owed_investor - owed_operator <= 2  # dust


def test_token_returning_false__reverts_settle_claim_and_withdraw(
    on_token: Any, deployer: Any, operator: Any
) -> None:
    token = _contracts().QuirkyToken.deploy({"from": deployer})
    suite, node_id, share, pay = on_token(token)
    pay(node_id, AMOUNT)
    router = brownie_contract("RevenueRouter", suite.router.address)
    claimable, owed = share.claimable(operator), router.owed(operator)
    assert_floor_share(claimable, 850_000, 1)
    assert owed == 100_000
    token.set_returns_false(True, {"from": deployer})
    epoch = pay.take_epoch(node_id)
    signed = sign_report(suite, pay.key, node_id=node_id, epoch=epoch, inferences=1_000_000)
    with brownie.reverts("router: stablecoin transfer failed"):
        router.settle(*report_args(signed), {"from": deployer})
    with brownie.reverts("share: stablecoin transfer failed"):
        share.claim({"from": operator})
    with brownie.reverts("router: stablecoin transfer failed"):
        router.withdraw(operator, {"from": operator})
    # nothing was booked as paid: everything is still owed, and pays once the token works
    assert (share.claimable(operator), router.owed(operator)) == (claimable, owed)
    assert not router.is_settled(node_id, epoch)
    token.set_returns_false(False, {"from": deployer})
    share.claim({"from": operator})
    router.withdraw(operator, {"from": operator})
    assert token.balanceOf(operator) == claimable + owed


def test_blocklisted_holder__others_claim_and_it_can_claim_elsewhere(
    on_token: Any, deployer: Any, operator: Any, investor: Any, investor2: Any, stranger: Any
) -> None:
    token = _contracts().QuirkyToken.deploy({"from": deployer})
    _suite, node_id, share, pay = on_token(token)
    share.transfer(investor, 500 * SHARES, {"from": operator})
    share.transfer(investor2, 250 * SHARES, {"from": operator})
    pay(node_id, AMOUNT)
    token.set_blocked(investor, True, {"from": deployer})
    # the blocked holder's claim fails in the token and books nothing
    owed = share.claimable(investor)
    assert_floor_share(owed, 850_000, 2)
    with brownie.reverts("quirky: receiver blocked"):
        share.claim({"from": investor})
    assert share.claimable(investor) == owed
    # every other holder is unaffected, and new revenue still arrives
    owed2 = share.claimable(investor2)
    share.claim({"from": investor2})
    share.claim({"from": operator})
    assert token.balanceOf(investor2) == owed2 > 0
    pay(node_id, AMOUNT)
    owed = share.claimable(investor)
    assert_floor_share(owed, 850_000 * 2, 2)
    # the blocked holder takes everything it is owed to an address the token accepts
    share.claim_to(stranger, {"from": investor})
    assert token.balanceOf(stranger) == owed
    assert share.claimable(investor) == 0
    left = share.claimable(investor2) + share.claimable(operator)
    assert (
        left <= token.balanceOf(share) <= left + 6
    )  # at most 1 unit of dust per holder and payment


def test_token_calling_back__cannot_claim_twice(
    on_token: Any, deployer: Any, operator: Any
) -> None:
    """The token holds shares itself and, while paying its own claim, calls claim() again."""
    token = _contracts().QuirkyToken.deploy({"from": deployer})
    _suite, node_id, share, pay = on_token(token)
    share.transfer(token, 500 * SHARES, {"from": operator})
    pay(node_id, AMOUNT)
    owed = share.claimable(token)
    assert_floor_share(owed, 850_000, 2)
    claim = share.claim.encode_input()
    token.arm_hook(share, claim, {"from": deployer})
    token.execute(share, claim, {"from": deployer})
    assert token.hook_calls() == 1 and not token.hook_succeeded()  # the reentry reverted
    assert token.balanceOf(token) == owed  # paid once
    assert share.claimable(token) == 0
    owed_operator = share.claimable(operator)
    share.claim({"from": operator})
    assert token.balanceOf(operator) == owed_operator
    assert 0 <= token.balanceOf(share) == 850_000 - owed - owed_operator <= 2


def test_token_calling_back__cannot_settle_twice(
    on_token: Any, deployer: Any, attestor_key: str
) -> None:
    """While the router pulls payment for a report, the token submits the same report."""
    token = _contracts().QuirkyToken.deploy({"from": deployer})
    suite, node_id, _share, pay = on_token(token)
    router = brownie_contract("RevenueRouter", suite.router.address)
    epoch = pay.take_epoch(node_id)
    signed = sign_report(suite, attestor_key, node_id=node_id, epoch=epoch, inferences=10**6)
    token.mint(token, 10**12, {"from": deployer})
    token.execute(token, token.approve.encode_input(router, 10**12), {"from": deployer})
    token.arm_hook(router, router.settle.encode_input(*report_args(signed)), {"from": deployer})
    before = token.balanceOf(deployer)
    router.settle(*report_args(signed), {"from": deployer})
    assert token.hook_calls() == 1 and not token.hook_succeeded()
    assert before - token.balanceOf(deployer) == AMOUNT  # the payer paid once
    assert token.balanceOf(token) == 10**12  # the reentering settle paid nothing
    assert token.balanceOf(router) == AMOUNT


def test_token_calling_back_during_payout__holders_paid_exactly(
    on_token: Any, deployer: Any, operator: Any
) -> None:
    """While the router moves holders' revenue to the share token, the token claims from
    that share token: it gets only what it was owed before; the new revenue comes after."""
    token = _contracts().QuirkyToken.deploy({"from": deployer})
    _suite, node_id, share, pay = on_token(token)
    share.transfer(token, 500 * SHARES, {"from": operator})
    pay(node_id, AMOUNT)
    first = share.claimable(token)
    epoch, _ = pay.settle(node_id, AMOUNT)
    token.arm_hook(share, share.claim.encode_input(), {"from": deployer})
    pay.finalize(node_id, [epoch])
    assert token.hook_calls() == 1 and token.hook_succeeded()
    assert token.balanceOf(token) == first  # the first payment only
    second = share.claimable(token)  # the second, still owed
    assert_floor_share(first + second, 850_000 * 2, 2)
    token.execute(share, share.claim.encode_input(), {"from": deployer})
    share.claim({"from": operator})
    assert token.balanceOf(token) == first + second
    dust = 1_700_000 - first - second - token.balanceOf(operator)
    assert 0 <= token.balanceOf(share) == dust <= 4


def test_views_work_during_stablecoin_callback(
    on_token: Any, deployer: Any, operator: Any, investor: Any
) -> None:
    """A token that calls back while the share token or the router pays it out can read
    their views (balances, supply, claimable, settlement state): they are reentrant, and
    what they show is already consistent."""
    token = _contracts().QuirkyToken.deploy({"from": deployer})
    suite, node_id, share, pay = on_token(token)
    share.transfer(investor, 100 * SHARES, {"from": operator})
    router = brownie_contract("RevenueRouter", suite.router.address)
    reads = [
        (share, share.balanceOf.encode_input(operator)),
        (share, share.totalSupply.encode_input()),
        (share, share.claimable.encode_input(investor)),
        (router, router.is_settled.encode_input(node_id, 0)),
        (router, router.owed.encode_input(operator)),
    ]
    for target, data in reads:
        pay(node_id, AMOUNT)
        token.arm_hook(target, data, {"from": deployer})
        share.claim({"from": investor})  # the share token transfers: the hook reads
        assert token.hook_calls() > 0 and token.hook_succeeded(), (target, data)
    token.arm_hook(share, share.claimable.encode_input(investor), {"from": deployer})
    router.withdraw(operator, {"from": operator})  # the router transfers
    assert token.hook_succeeded()


# payment channels -------------------------------------------------------------------

# Reads the channels' total in the middle of a token transfer (from a QuirkyToken hook)
# and fails unless it agrees with the one channel there is.
CHANNELS_PROBE = """# pragma version 0.4.3
struct Channel:
    deposited: uint256
    redeemed: uint256
    unredeemed: uint256
    generation: uint32
    closes_at: uint256
    withdrawable_at: uint256
    low_balance_threshold: uint256

interface IChannels:
    def total_unredeemed() -> uint256: view
    def channel(customer: address, node_id: uint256) -> Channel: view

@external
def check(channels: IChannels, customer: address, node_id: uint256):
    c: Channel = staticcall channels.channel(customer, node_id)
    assert staticcall channels.total_unredeemed() == c.unredeemed, "probe: total_unredeemed"
"""


@pytest.fixture(scope="module")
def channels_on(
    on_token: Any, deployer: Any, customer: Any
) -> Callable[[Any], tuple[Suite, int, Any, Any]]:
    """A suite on ``token`` (see ``on_token``) whose customer holds the token and has
    approved the channels; returns (suite, node id, share, channels)."""

    def _build(token: Any) -> tuple[Suite, int, Any, Any]:
        suite, node_id, share, _pay = on_token(token)
        channels = brownie_contract("PaymentChannels", suite.channels.address)
        token.mint(customer, 10**12, {"from": deployer})
        token.approve(channels, 10**12, {"from": customer})
        return suite, node_id, share, channels

    return _build


def _deploy_source(source: str, deployer: Any) -> Any:
    """Compile a Vyper source here and deploy it (brownie's compile_source would leave
    the session's chain fixtures warning about snapshots)."""
    out = vyper.compile_code(source, output_formats=["abi", "bytecode"])
    factory = web3.eth.contract(abi=out["abi"], bytecode=out["bytecode"])
    tx_hash = factory.constructor().transact({"from": deployer.address})
    address = web3.eth.wait_for_transaction_receipt(tx_hash)["contractAddress"]
    return Contract.from_abi("ChannelsProbe", address, out["abi"])


def _voucher_args(suite: Suite, key: str, node_id: int, customer: Any, cumulative: int) -> Any:
    return voucher_args([make_voucher(suite, key, node_id, customer.address, cumulative)])


def _close_and_wait(channels: Any, node_id: int, customer: Any) -> None:
    tx = channels.request_close(node_id, {"from": customer})
    set_next_timestamp(tx.events["CloseRequested"]["closes_at"])


def test_channels_on_token_without_return_values__deposit_redeem_withdraw(
    channels_on: Any, deployer: Any, customer: Any, customer_key: str, operator: Any,
    treasury: Any,
) -> None:  # fmt: skip
    token = _contracts().NoReturnToken.deploy({"from": deployer})
    suite, node_id, share, channels = channels_on(token)
    channels.deposit(node_id, AMOUNT, {"from": customer})
    assert token.balanceOf(channels) == AMOUNT == channels.total_unredeemed()
    tx = channels.redeem_many(
        *_voucher_args(suite, customer_key, node_id, customer, 400_000), {"from": operator}
    )
    assert tx.events["RevenueSplit"]["holders"] == 340_000
    router = brownie_contract("RevenueRouter", suite.router.address)
    assert token.balanceOf(share) == 340_000
    assert token.balanceOf(router) == 60_000 == router.owed(operator) + router.owed(treasury)
    _close_and_wait(channels, node_id, customer)
    before = token.balanceOf(customer)
    channels.withdraw(node_id, {"from": customer})
    assert token.balanceOf(customer) - before == 600_000
    assert token.balanceOf(channels) == 0 == channels.total_unredeemed()


def test_channels_on_token_returning_false__nothing_booked(
    channels_on: Any, deployer: Any, customer: Any, customer_key: str, operator: Any
) -> None:
    token = _contracts().QuirkyToken.deploy({"from": deployer})
    suite, node_id, _share, channels = channels_on(token)
    channels.deposit(node_id, AMOUNT, {"from": customer})
    token.set_returns_false(True, {"from": deployer})
    with brownie.reverts("channels: stablecoin transfer failed"):
        channels.deposit(node_id, AMOUNT, {"from": customer})
    voucher = _voucher_args(suite, customer_key, node_id, customer, 400_000)
    with brownie.reverts("router: stablecoin transfer failed"):  # the router's pull
        channels.redeem_many(*voucher, {"from": operator})
    _close_and_wait(channels, node_id, customer)
    with brownie.reverts("channels: stablecoin transfer failed"):
        channels.withdraw(node_id, {"from": customer})
    view = channels.channel(customer, node_id)
    assert (view["deposited"], view["redeemed"], view["generation"]) == (AMOUNT, 0, 0)
    assert channels.total_unredeemed() == AMOUNT == token.balanceOf(channels)
    token.set_returns_false(False, {"from": deployer})
    channels.withdraw(node_id, {"from": customer})
    assert token.balanceOf(customer) == 10**12 and token.balanceOf(channels) == 0


def test_channels_on_fee_on_transfer_token__deposit_refused(
    channels_on: Any, deployer: Any, customer: Any
) -> None:
    token = _contracts().FeeOnTransferToken.deploy({"from": deployer})
    _suite, node_id, _share, channels = channels_on(token)
    with brownie.reverts("channels: stablecoin delivered a different amount"):
        channels.deposit(node_id, AMOUNT, {"from": customer})
    assert channels.total_unredeemed() == 0 == token.balanceOf(channels)
    assert token.balanceOf(customer) == 10**12


def test_token_calling_back__cannot_reenter_the_channels(
    channels_on: Any, deployer: Any, customer: Any, customer_key: str, operator: Any
) -> None:
    """While a deposit's transfer runs, the token deposits again; while a redemption's
    runs, it redeems the same voucher again: both reentries fail, each pays once."""
    token = _contracts().QuirkyToken.deploy({"from": deployer})
    suite, node_id, share, channels = channels_on(token)
    token.mint(token, 10**9, {"from": deployer})
    token.execute(token, token.approve.encode_input(channels, 10**9), {"from": deployer})
    token.arm_hook(channels, channels.deposit.encode_input(node_id, 500), {"from": deployer})
    channels.deposit(node_id, AMOUNT, {"from": customer})
    assert token.hook_calls() == 1 and not token.hook_succeeded()
    assert channels.total_unredeemed() == AMOUNT == token.balanceOf(channels)
    voucher = _voucher_args(suite, customer_key, node_id, customer, 400_000)
    token.arm_hook(channels, channels.redeem_many.encode_input(*voucher), {"from": deployer})
    channels.redeem_many(*voucher, {"from": operator})
    assert token.hook_calls() == 2 and not token.hook_succeeded()
    assert channels.channel(customer, node_id)["redeemed"] == 400_000
    assert share.total_distributed() == 340_000
    assert channels.total_unredeemed() == 600_000 == token.balanceOf(channels)


def test_channels_views_during_stablecoin_callback__agree_with_the_channel(
    channels_on: Any, deployer: Any, customer: Any, customer_key: str, operator: Any
) -> None:
    """A token that calls back while the channels or the router move its stablecoin reads
    total_unredeemed: it already agrees with the channel's record (deposit, the router's
    pull of a redemption, withdrawal), since the channels write it before any token
    moves (before a0e6f85 a redemption lowered it only after the router's pull)."""
    token = _contracts().QuirkyToken.deploy({"from": deployer})
    suite, node_id, _share, channels = channels_on(token)
    probe = _deploy_source(CHANNELS_PROBE, deployer)
    check = probe.check.encode_input(channels, customer, node_id)
    token.arm_hook(probe, check, {"from": deployer})
    channels.deposit(node_id, AMOUNT, {"from": customer})  # the customer's transfer in
    assert token.hook_calls() == 1 and token.hook_succeeded()
    token.arm_hook(probe, check, {"from": deployer})
    channels.redeem_many(  # the router pulls what the voucher redeemed
        *_voucher_args(suite, customer_key, node_id, customer, 400_000), {"from": operator}
    )
    assert token.hook_calls() == 2 and token.hook_succeeded()
    _close_and_wait(channels, node_id, customer)
    token.arm_hook(probe, check, {"from": deployer})
    channels.withdraw(node_id, {"from": customer})  # the refund out
    assert token.hook_calls() == 3 and token.hook_succeeded()


# ------------------------------------------------------------------- capital ----


INVESTOR_KEY = build_dev_keys(4)[3]  # accounts[3], the investor


def _offering_on(suite: Suite, share: Any, operator: Any, soft_cap: int) -> Any:
    """An offering of 100 of the operator's shares at 10,000 base units (0.01 USDC) per
    share, open from now for a day."""
    factory = brownie_contract("OfferingFactory", suite.offerings.address)
    share.approve(factory, 100 * SHARES, {"from": operator})
    now = web3.eth.get_block("latest")["timestamp"]
    tx = factory.create_offering(
        1, 100 * SHARES, 10_000, soft_cap, 1_000_000, now, now + 86_400, 0, {"from": operator}
    )
    return brownie_contract("ShareOffering", tx.events["OfferingCreated"]["offering"])


def _end(offering: Any) -> None:
    set_next_timestamp(offering.END())
    web3.provider.make_request("evm_mine", [])


def _sell_order(suite: Suite, share: Any, amount: int, price: int) -> tuple[Any, bytes]:
    """The investor's signed order selling ``amount`` of ``share`` at ``price``."""
    order = build_order(suite, brownie.accounts[3].address, share.address, True, amount, price)
    _, signed = sign_market_order(suite, INVESTOR_KEY, order)
    return signed.as_tuple(), signed.get_signature_bytes()


def test_capital_on_token_without_return_values__offering_market_and_basket_pay(
    on_token: Any, deployer: Any, operator: Any, investor: Any, investor2: Any
) -> None:
    """USDT-style: a commitment, a refund, a fill with its fee, a harvest and a basket
    claim each move exactly what they say."""
    token = _contracts().NoReturnToken.deploy({"from": deployer})
    suite, node_id, share, pay = on_token(token)
    for who in (investor, investor2):
        token.mint(who, 10**9, {"from": deployer})
    offering = _offering_on(suite, share, operator, soft_cap=1_000_000)
    token.approve(offering, 300_000, {"from": investor})
    offering.commit(300_000, {"from": investor})
    assert token.balanceOf(offering) == 300_000
    _end(offering)  # below the soft cap: refunded in full
    offering.refund({"from": investor})
    assert token.balanceOf(investor) == 10**9 and token.balanceOf(offering) == 0
    # the market: the investor sells 10 shares to investor2 at 0.5 USDC each
    share.transfer(investor, 10 * SHARES, {"from": operator})
    market = brownie_contract("ShareMarket", suite.market.address)
    share.approve(market, 10 * SHARES, {"from": investor})
    token.approve(market, 5_000_000, {"from": investor2})
    order, signature = _sell_order(suite, share, 10 * SHARES, 500_000)
    treasury = suite.router.call("treasury")
    before = token.balanceOf(treasury)
    market.fill(order, signature, 10 * SHARES, {"from": investor2})
    fee = 5_000_000 * market.FEE_BPS() // 10_000
    assert token.balanceOf(investor) == 10**9 + 5_000_000 - fee
    assert token.balanceOf(treasury) - before == fee
    # a basket of the node's shares harvests and its holder claims
    factory = brownie_contract("BasketFactory", suite.baskets.address)
    tx = factory.create_basket("B", "B", [share], [SHARES], {"from": investor2})
    basket = brownie_contract("Basket", tx.events["BasketCreated"]["basket"])
    share.approve(basket, 10 * SHARES, {"from": investor2})
    basket.mint(10 * SHARES, {"from": investor2})
    pay(node_id, AMOUNT)
    harvested = basket.harvest({"from": deployer}).events["Harvested"]["amount"]
    assert harvested == token.balanceOf(basket) > 0
    owed = basket.claimable(investor2)
    before = token.balanceOf(investor2)
    basket.claim({"from": investor2})
    assert token.balanceOf(investor2) - before == owed >= harvested - 1


def test_capital_on_token_returning_false__nothing_booked(
    on_token: Any, deployer: Any, operator: Any, investor: Any, investor2: Any
) -> None:
    """A token that answers false: a commitment, a fill and a harvest revert and book
    nothing; once the token works they go through."""
    token = _contracts().QuirkyToken.deploy({"from": deployer})
    suite, node_id, share, pay = on_token(token)
    for who in (investor, investor2):
        token.mint(who, 10**9, {"from": deployer})
    offering = _offering_on(suite, share, operator, soft_cap=100_000)
    token.approve(offering, 300_000, {"from": investor})
    share.transfer(investor, 10 * SHARES, {"from": operator})
    market = brownie_contract("ShareMarket", suite.market.address)
    share.approve(market, 10 * SHARES, {"from": investor})
    token.approve(market, 5_000_000, {"from": investor2})
    order, signature = _sell_order(suite, share, 10 * SHARES, 500_000)
    factory = brownie_contract("BasketFactory", suite.baskets.address)
    tx = factory.create_basket("B", "B", [share], [SHARES], {"from": investor2})
    basket = brownie_contract("Basket", tx.events["BasketCreated"]["basket"])
    share.transfer(investor2, 10 * SHARES, {"from": operator})
    share.approve(basket, 10 * SHARES, {"from": investor2})
    basket.mint(10 * SHARES, {"from": investor2})
    pay(node_id, AMOUNT)
    token.set_returns_false(True, {"from": deployer})
    with brownie.reverts():
        offering.commit(300_000, {"from": investor})
    with brownie.reverts():
        market.fill(order, signature, 10 * SHARES, {"from": investor2})
    with brownie.reverts("share: stablecoin transfer failed"):
        basket.harvest({"from": deployer})
    assert offering.total_committed() == 0 and market.filled(market.order_hash(order)) == 0
    assert basket.total_distributed() == 0
    token.set_returns_false(False, {"from": deployer})
    offering.commit(300_000, {"from": investor})
    market.fill(order, signature, 10 * SHARES, {"from": investor2})
    assert basket.harvest({"from": deployer}).events["Harvested"]["amount"] > 0


def test_capital_token_calling_back__cannot_refund_or_fill_twice(
    on_token: Any, deployer: Any, operator: Any, investor2: Any
) -> None:
    """The token itself commits to a failed offering; while its refund is paid it asks for
    the refund again: the reentry reverts and it is refunded once. While a fill moves its
    stablecoin, it fills the same order again: that reverts too and the order fills once."""
    token = _contracts().QuirkyToken.deploy({"from": deployer})
    suite, _node_id, share, _pay = on_token(token)
    token.mint(token, 10**9, {"from": deployer})
    offering = _offering_on(suite, share, operator, soft_cap=1_000_000)
    token.execute(token, token.approve.encode_input(offering, 300_000), {"from": deployer})
    token.execute(offering, offering.commit.encode_input(300_000), {"from": deployer})
    _end(offering)
    token.arm_hook(offering, offering.refund.encode_input(), {"from": deployer})
    token.execute(offering, offering.refund.encode_input(), {"from": deployer})
    assert token.hook_calls() == 1 and not token.hook_succeeded()
    assert token.balanceOf(token) == 10**9 and token.balanceOf(offering) == 0
    # the market: investor2 fills the investor's sell order; the token re-fills it mid-way
    market = brownie_contract("ShareMarket", suite.market.address)
    share.transfer(brownie.accounts[3], 10 * SHARES, {"from": operator})
    share.approve(market, 10 * SHARES, {"from": brownie.accounts[3]})
    token.mint(investor2, 10**9, {"from": deployer})
    token.approve(market, 10**9, {"from": investor2})
    order, signature = _sell_order(suite, share, 10 * SHARES, 500_000)
    token.arm_hook(market, market.fill.encode_input(order, signature, 10 * SHARES),
                   {"from": deployer})  # fmt: skip
    market.fill(order, signature, 10 * SHARES, {"from": investor2})
    assert token.hook_calls() == 2 and not token.hook_succeeded()
    assert market.filled(market.order_hash(order)) == 10 * SHARES
    assert share.balanceOf(investor2) == 10 * SHARES
