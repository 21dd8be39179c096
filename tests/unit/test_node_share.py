"""NodeShare: ERC-20, EIP-2612 permit, and pro-rata revenue with vesting."""

from __future__ import annotations

from typing import Any

import brownie
import pytest
from brownie import web3
from eth_account import Account

from edgeshare.signer import Signer
from edgeshare.suite import NodeSpec, send_register_node
from edgeshare.tx import Transactor
from tests.conftest import (
    SHARES,
    Payer,
    assert_floor_share,
    brownie_contract,
    get_now,
    mine_at,
    set_next_timestamp,
    sign_permit,
)

pytestmark = pytest.mark.usefixtures("funded")


def test_metadata__names_the_node_and_mints_supply_to_operator(node: Any, operator: Any) -> None:
    node_id, share = node
    assert share.name() == "EdgeShare Node 1"
    assert share.symbol() == "ESN1"
    assert share.decimals() == 18
    assert share.totalSupply() == 1_000 * SHARES
    assert share.balanceOf(operator) == 1_000 * SHARES
    assert share.NODE_ID() == node_id


def test_transfer__moves_shares_and_logs(node: Any, operator: Any, investor: Any) -> None:
    _, share = node
    tx = share.transfer(investor, 100 * SHARES, {"from": operator})
    assert share.balanceOf(investor) == 100 * SHARES
    assert share.balanceOf(operator) == 900 * SHARES
    assert tx.events["Transfer"]["sender"] == operator
    assert tx.events["Transfer"]["receiver"] == investor
    assert tx.events["Transfer"]["value"] == 100 * SHARES


def test_transfer__above_balance__reverts(node: Any, investor: Any, operator: Any) -> None:
    _, share = node
    with brownie.reverts("share: transfer amount exceeds balance"):
        share.transfer(operator, 1, {"from": investor})


def test_transfer__to_zero_address__reverts(node: Any, operator: Any) -> None:
    _, share = node
    with brownie.reverts("share: transfer to the zero address"):
        share.transfer("0x" + "00" * 20, 1, {"from": operator})


def test_transfer_from__spends_allowance(
    node: Any, operator: Any, investor: Any, stranger: Any
) -> None:
    _, share = node
    tx = share.approve(stranger, 10 * SHARES, {"from": operator})
    assert tx.events["Approval"]["value"] == 10 * SHARES
    share.transferFrom(operator, investor, 4 * SHARES, {"from": stranger})
    assert share.allowance(operator, stranger) == 6 * SHARES
    assert share.balanceOf(investor) == 4 * SHARES
    with brownie.reverts("share: insufficient allowance"):
        share.transferFrom(operator, investor, 7 * SHARES, {"from": stranger})


def test_transfer_from__infinite_allowance__is_not_reduced(
    node: Any, operator: Any, stranger: Any
) -> None:
    _, share = node
    share.approve(stranger, 2**256 - 1, {"from": operator})
    share.transferFrom(operator, stranger, SHARES, {"from": stranger})
    assert share.allowance(operator, stranger) == 2**256 - 1


def test_approve__zero_spender__reverts(node: Any, operator: Any) -> None:
    _, share = node
    with brownie.reverts("share: approve to the zero address"):
        share.approve("0x" + "00" * 20, 1, {"from": operator})


@pytest.fixture
def holder_key(node: Any, operator: Any) -> Any:
    """A key-holding investor (brownie's dev accounts sign on the node only)."""
    account = Account.create()
    _, share = node
    share.transfer(account.address, 10 * SHARES, {"from": operator})
    return account


def test_permit__sets_allowance_from_signature(node: Any, holder_key: Any, stranger: Any) -> None:
    _, share = node
    deadline = get_now() + 3_600
    sig = sign_permit(
        share, holder_key.key, holder_key.address, stranger.address, 5 * SHARES, 0, deadline
    )
    tx = share.permit(
        holder_key.address,
        stranger,
        5 * SHARES,
        deadline,
        sig.v,
        sig.r.to_bytes(32, "big"),
        sig.s.to_bytes(32, "big"),
        {"from": stranger},
    )
    assert share.allowance(holder_key.address, stranger) == 5 * SHARES
    assert share.nonces(holder_key.address) == 1
    assert tx.events["Approval"]["owner"] == holder_key.address
    with brownie.reverts("share: permit signer is not the owner"):  # replay: nonce moved on
        share.permit(
            holder_key.address,
            stranger,
            5 * SHARES,
            deadline,
            sig.v,
            sig.r.to_bytes(32, "big"),
            sig.s.to_bytes(32, "big"),
            {"from": stranger},
        )


def test_permit__expired__reverts(node: Any, holder_key: Any, stranger: Any) -> None:
    _, share = node
    deadline = get_now() - 1
    sig = sign_permit(share, holder_key.key, holder_key.address, stranger.address, 1, 0, deadline)
    with brownie.reverts("share: permit expired"):
        share.permit(
            holder_key.address,
            stranger,
            1,
            deadline,
            sig.v,
            sig.r.to_bytes(32, "big"),
            sig.s.to_bytes(32, "big"),
            {"from": stranger},
        )


def test_permit__high_s_twin__reverts(node: Any, holder_key: Any, stranger: Any) -> None:
    _, share = node
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    deadline = get_now() + 3_600
    sig = sign_permit(share, holder_key.key, holder_key.address, stranger.address, 1, 0, deadline)
    v = 55 - sig.v  # the malleated twin: s' = n - s, v flipped
    with brownie.reverts("eip712: signature s is high"):
        share.permit(
            holder_key.address,
            stranger,
            1,
            deadline,
            v,
            sig.r.to_bytes(32, "big"),
            (n - sig.s).to_bytes(32, "big"),
            {"from": stranger},
        )


def test_permit__signed_by_someone_else__reverts(node: Any, holder_key: Any, stranger: Any) -> None:
    _, share = node
    deadline = get_now() + 3_600
    other = Account.create()
    sig = sign_permit(share, other.key, holder_key.address, stranger.address, 1, 0, deadline)
    with brownie.reverts("share: permit signer is not the owner"):
        share.permit(
            holder_key.address,
            stranger,
            1,
            deadline,
            sig.v,
            sig.r.to_bytes(32, "big"),
            sig.s.to_bytes(32, "big"),
            {"from": stranger},
        )


def test_eip712_domain__describes_this_token(node: Any) -> None:
    _, share = node
    fields, name, version, chain_id, contract, _salt, _extensions = share.eip712Domain()
    assert fields == "0x0f"
    assert (name, version, chain_id, contract) == (
        "EdgeShare Node 1",
        "1",
        web3.eth.chain_id,
        share.address,
    )
    assert share.DOMAIN_SEPARATOR() != "0x" + "00" * 32


def test_notify_revenue__from_anyone_but_router__reverts(node: Any, stranger: Any) -> None:
    _, share = node
    with brownie.reverts("share: caller is not the router"):
        share.notify_revenue(1, {"from": stranger})


def test_claim__pays_pro_rata_and_logs(
    pay: Any, node: Any, router: Any, operator: Any, investor: Any, deployer: Any, stablecoin: Any
) -> None:
    node_id, share = node
    share.transfer(investor, 250 * SHARES, {"from": operator})
    pay(node_id, 1_000_000)  # holders get 850_000
    owed = share.claimable(investor)
    assert_floor_share(owed, 850_000 * 250, 1_000)
    assert_floor_share(share.claimable(operator), 850_000 * 750, 1_000)
    assert share.claim.call({"from": investor}) == owed
    tx = share.claim({"from": investor})
    assert stablecoin.balanceOf(investor) == owed
    assert tx.events["RevenueClaimed"]["holder"] == investor
    assert tx.events["RevenueClaimed"]["receiver"] == investor
    assert tx.events["RevenueClaimed"]["amount"] == owed
    assert share.claimable(investor) == 0
    assert share.total_distributed() == 850_000


def test_claim__with_nothing_to_claim__returns_zero_without_event(node: Any, stranger: Any) -> None:
    _, share = node
    assert share.claim.call({"from": stranger}) == 0
    tx = share.claim({"from": stranger})
    assert "RevenueClaimed" not in tx.events


def test_claim_to__pays_another_address(
    pay: Any, node: Any, router: Any, operator: Any, deployer: Any, stranger: Any, stablecoin: Any
) -> None:
    node_id, share = node
    pay(node_id, 100_000)
    owed = share.claimable(operator)
    assert_floor_share(owed, 85_000, 1)
    tx = share.claim_to(stranger, {"from": operator})
    assert stablecoin.balanceOf(stranger) == owed
    assert stablecoin.balanceOf(operator) == 0
    assert tx.events["RevenueClaimed"]["receiver"] == stranger
    with brownie.reverts("share: receiver is the zero address"):
        share.claim_to("0x" + "00" * 20, {"from": operator})


def test_transfer__after_revenue__earned_revenue_stays_with_seller(
    pay: Any, node: Any, router: Any, operator: Any, investor: Any, deployer: Any
) -> None:
    node_id, share = node
    pay(node_id, 1_000_000)
    before = share.claimable(operator)
    share.transfer(investor, 500 * SHARES, {"from": operator})
    assert share.claimable(operator) == before
    assert share.claimable(investor) == 0
    pay(node_id, 1_000_000)
    assert_floor_share(share.claimable(investor), 425_000, 1)
    assert_floor_share(share.claimable(operator) - before, 425_000 + 1, 1)


def test_transfer__to_self__changes_nothing(
    pay: Any, node: Any, router: Any, operator: Any, deployer: Any
) -> None:
    node_id, share = node
    pay(node_id, 333_333)
    before = (share.claimable(operator), share.balanceOf(operator))
    share.transfer(operator, 400 * SHARES, {"from": operator})
    assert (share.claimable(operator), share.balanceOf(operator)) == before


@pytest.fixture(scope="module")
def vesting_node(
    deploy: Any, deployer: Any, operator: Any, attestor: Any, attestor_key: str
) -> tuple[int, Any, Payer]:
    """A separate suite whose revenue vests over 1,000 seconds; 0% operator cut."""
    suite = deploy(unlock_period=1_000)
    tx = Transactor(web3, Signer(address=deployer.address))
    spec = NodeSpec(
        operator=operator.address,
        attestor=attestor.address,
        shares=1_000 * SHARES,
        price_per_1k=1_000,
        operator_cut_bps=0,
        region="Lagos",
    )
    node_id = send_register_node(tx, suite, spec)
    payer = Payer(suite, attestor_key, deployer)
    coin = brownie_contract("MockStablecoin", suite.stablecoin.address)
    coin.mint(deployer, 10**15, {"from": deployer})
    coin.approve(payer.router, 2**256 - 1, {"from": deployer})
    share = brownie_contract("NodeShare", suite.registry.call("share_token", node_id))
    return node_id, share, payer


def _finalize_at(payer: Payer, node_id: int, amount: int) -> Any:
    """Settle ``amount`` now, then finalize it (vesting starts) as soon as its window ends."""
    epoch, _ = payer.settle(node_id, amount)
    return payer.finalize(node_id, [epoch], vest=False)


def test_vesting__releases_linearly_over_unlock_period(vesting_node: Any, operator: Any) -> None:
    node_id, share, payer = vesting_node
    tx = _finalize_at(payer, node_id, 1_000_000)  # 5% fee: 950_000 vests
    start = tx.timestamp
    assert share.vesting_ends_at() == start + 1_000
    mine_at(start + 500)
    assert_floor_share(share.claimable(operator), 475_000, 1)
    assert share.unvested() == 475_000
    mine_at(start + 1_000)
    assert_floor_share(share.claimable(operator), 950_000, 1)
    assert share.unvested() == 0


def test_vesting__just_in_time_buyer_gets_only_what_vested_while_holding(
    vesting_node: Any, operator: Any, investor: Any
) -> None:
    node_id, share, payer = vesting_node
    # the buyer holds half the supply from just before the revenue lands ...
    epoch, _ = payer.settle(node_id, 1_000_000)
    share.transfer(investor, 500 * SHARES, {"from": operator})
    tx = payer.finalize(node_id, [epoch], vest=False)
    start = tx.timestamp
    # ... and sells right after: 100 of 1,000 seconds vested while held
    set_next_timestamp(start + 100)
    share.transfer(operator, 500 * SHARES, {"from": investor})
    assert_floor_share(share.claimable(investor), 950_000 * 100, 1_000 * 2)
    mine_at(start + 2_000)
    assert_floor_share(share.claimable(investor), 950_000 * 100, 1_000 * 2)
    assert 950_000 - 2 <= share.claimable(investor) + share.claimable(operator) <= 950_000


def test_vesting__new_revenue_rolls_unvested_into_a_new_period(
    vesting_node: Any, operator: Any
) -> None:
    node_id, share, payer = vesting_node
    first, _ = payer.settle(node_id, 1_000_000)
    second, _ = payer.settle(node_id, 1_000_000)
    tx = payer.finalize(node_id, [first], vest=False)
    start = tx.timestamp
    set_next_timestamp(start + 400)
    tx2 = payer.router.finalize(node_id, [second], {"from": payer.payer})
    assert tx2.events["RevenueDistributed"]["unvested"] == 950_000 - 380_000 + 950_000
    assert share.vesting_ends_at() == start + 400 + 1_000
    mine_at(start + 400 + 500)
    # 380_000 released before, then half of the rolled 1_520_000
    assert_floor_share(share.claimable(operator), 380_000 + 760_000, 1)
    mine_at(start + 400 + 1_000)
    assert_floor_share(share.claimable(operator), 1_900_000, 1)
