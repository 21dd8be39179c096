"""RevenueRouter: the fee / operator / holders split, withdrawals, pause, bad tokens."""

from __future__ import annotations

from typing import Any

import brownie
import pytest
from brownie import project

from tests.conftest import SHARES

ZERO = "0x" + "00" * 20

pytestmark = pytest.mark.usefixtures("funded")


def test_record_revenue__splits_fee_cut_and_holders_exactly(
    router: Any, node: Any, deployer: Any, operator: Any, treasury: Any, stablecoin: Any
) -> None:
    node_id, share = node
    tx = router.record_revenue(node_id, 1_234_567, {"from": deployer})
    event = tx.events["RevenueSplit"]
    fee, cut = 1_234_567 * 500 // 10_000, 1_234_567 * 1_000 // 10_000
    assert (event["protocol_fee"], event["operator_cut"]) == (fee, cut) == (61_728, 123_456)
    assert event["holders"] == 1_234_567 - fee - cut
    assert (
        event["gross"] == 1_234_567 and event["payer"] == deployer and event["node_id"] == node_id
    )
    assert router.owed(treasury) == fee
    assert router.owed(operator) == cut
    assert router.total_owed() == fee + cut
    assert stablecoin.balanceOf(share) == event["holders"]
    assert stablecoin.balanceOf(router) == fee + cut
    assert share.total_distributed() == event["holders"]


def test_record_revenue__by_stranger__reverts(router: Any, node: Any, stranger: Any) -> None:
    with brownie.reverts("router: not guardian or registrar"):
        router.record_revenue(node[0], 1, {"from": stranger})


def test_record_revenue__while_paused__reverts(
    router: Any, registry: Any, node: Any, deployer: Any
) -> None:
    registry.pause({"from": deployer})
    with brownie.reverts("router: paused"):
        router.record_revenue(node[0], 1, {"from": deployer})


def test_record_revenue__zero_or_inactive_node__reverts(
    router: Any, registry: Any, node: Any, deployer: Any, operator: Any
) -> None:
    with brownie.reverts("router: amount is zero"):
        router.record_revenue(node[0], 0, {"from": deployer})
    registry.set_node_status(node[0], 2, {"from": operator})
    with brownie.reverts("router: node not active"):
        router.record_revenue(node[0], 1, {"from": deployer})
    with brownie.reverts("registry: unknown node"):
        router.record_revenue(99, 1, {"from": deployer})


def test_withdraw__pays_operator_and_treasury_and_logs(
    router: Any,
    node: Any,
    deployer: Any,
    operator: Any,
    treasury: Any,
    stablecoin: Any,
    stranger: Any,
) -> None:
    router.record_revenue(node[0], 1_000_000, {"from": deployer})
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
    router: Any, registry: Any, node: Any, deployer: Any, operator: Any, stablecoin: Any
) -> None:
    node_id, share = node
    router.record_revenue(node_id, 1_000_000, {"from": deployer})
    owed_claim = share.claimable(operator)
    registry.pause({"from": deployer})
    share.claim({"from": operator})
    router.withdraw(operator, {"from": operator})
    assert stablecoin.balanceOf(operator) == owed_claim + 100_000


def test_set_treasury__owner_only_and_old_fees_stay_withdrawable(
    router: Any, node: Any, deployer: Any, treasury: Any, stranger: Any
) -> None:
    router.record_revenue(node[0], 1_000_000, {"from": deployer})
    with brownie.reverts("router: not owner"):
        router.set_treasury(stranger, {"from": stranger})
    tx = router.set_treasury(stranger, {"from": deployer})
    assert tx.events["TreasurySet"]["treasury"] == stranger
    router.record_revenue(node[0], 1_000_000, {"from": deployer})
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


def test_fee_on_transfer_token__is_rejected_at_deposit(
    deploy: Any, deployer: Any, operator: Any, attestor: Any
) -> None:
    from brownie import web3

    from edgeshare.signer import Signer
    from edgeshare.suite import NodeSpec, send_register_node
    from edgeshare.tx import Transactor

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
            price_per_1k=1,
            operator_cut_bps=0,
            region="Lagos",
        ),
    )
    token.mint(deployer, 10**12, {"from": deployer})
    token.approve(suite.router.address, 10**12, {"from": deployer})
    router = project.get_loaded_projects()[0].RevenueRouter.at(suite.router.address)
    with brownie.reverts("router: stablecoin delivered a different amount"):
        router.record_revenue(node_id, 1_000_000, {"from": deployer})
