"""The suite on stablecoins that misbehave the ways real tokens do.

Each test deploys a suite on one of the test tokens in contracts/testing/: one without
return values (USDT-style), one that can answer ``false`` instead of reverting, block
an address (USDC-style blocklist), or call back into the suite in the middle of a
transfer (ERC-777-style hooks). Fee-on-transfer is in test_revenue_router.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import brownie
import pytest
from brownie import project, web3

from edgeshare.signer import Signer
from edgeshare.suite import NodeSpec, Suite, send_register_node
from edgeshare.tx import Transactor
from tests.conftest import (
    SHARES,
    Payer,
    assert_floor_share,
    brownie_contract,
    report_args,
    sign_report,
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
