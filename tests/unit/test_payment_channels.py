"""PaymentChannels: deposits, cumulative vouchers, what a redemption pays and how the
router splits it, closes and withdrawals, a retired node's final window, the views, and
the pause. One rule per test, from the actor the rule is about.

After every test the channels contract holds exactly what it owes its customers
(``stablecoin.balanceOf(channels) == channels.total_unredeemed()``), and the tests check
it again after each step that moves money.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import brownie
import pytest
from brownie import accounts, web3
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeshare.attestation import SECP256K1_N
from edgeshare.chain import build_dev_keys
from edgeshare.channels import (
    MAX_AMOUNT,
    SKIP_BAD_SIGNATURE,
    SKIP_CLOSED,
    SKIP_EXPIRED,
    SKIP_NOT_COVERED,
    SKIP_NOT_NODE,
    SKIP_NOTHING_NEW,
    SKIP_OLD_GENERATION,
    SignedVoucher,
    Voucher,
    build_voucher_typed_data,
    fetch_channels_domain,
    get_voucher_digest,
    sign_voucher,
)
from edgeshare.signer import Signer
from edgeshare.suite import NodeSpec, Suite, send_register_node
from edgeshare.tx import Transactor
from tests.conftest import (
    FAR_DEADLINE,
    SHARES,
    assert_floor_share,
    brownie_contract,
    get_now,
    make_voucher,
    mine_after,
    mine_at,
    set_next_timestamp,
    voucher_args,
)

RETIRED = 4
ZERO = "0x" + "00" * 20
FEE_BPS = 500  # the default suite's protocol fee
HOT_KEY = "0x" + "4b" * 32  # an app's signing key: it signs vouchers, never sends a transaction
HOT_SIGNER = Account.from_key(HOT_KEY).address
STRANGER_KEY = build_dev_keys(7)[6]  # accounts[6], the stranger: no channel, no role


# ------------------------------------------------------------------------ helpers ----


def _events(tx: Any, name: str) -> list[Any]:
    return list(tx.events[name]) if name in tx.events else []


def _paid(tx: Any) -> list[int]:
    """What each paying voucher of a batch redeemed, in batch order."""
    return [int(e["amount"]) for e in _events(tx, "VoucherRedeemed")]


def _skips(tx: Any) -> list[int]:
    """The reason of each skipped voucher of a batch, in batch order."""
    return [int(e["reason"]) for e in _events(tx, "VoucherSkipped")]


def _channel(channels: Any, customer: Any, node_id: int) -> dict[str, int]:
    return {k: int(v) for k, v in channels.channel(customer, node_id).dict().items()}


def _redeem(channels: Any, vouchers: list[SignedVoucher], sender: Any) -> Any:
    return channels.redeem_many(*voucher_args(vouchers), {"from": sender})


def _check(channels: Any, signed: SignedVoucher, caller: Any) -> tuple[int, int]:
    amount, reason = channels.check(signed.as_tuple(), signed.get_signature_bytes(), caller)
    return int(amount), int(reason)


def _with_signature(signed: SignedVoucher, signature: bytes) -> SignedVoucher:
    return signed.model_copy(update={"signature": "0x" + signature.hex()})


def _assert_solvent(channels: Any, stablecoin: Any) -> None:
    assert stablecoin.balanceOf(channels) == channels.total_unredeemed()


def _epoch_at(registry: Any, timestamp: int) -> int:
    return (timestamp - registry.GENESIS()) // registry.EPOCH_LENGTH()


def _fresh_epoch(registry: Any) -> int:
    """Mine the first block of the next epoch (a minute before the one after); its number."""
    epoch = registry.current_epoch() + 1
    mine_at(registry.epoch_start(epoch))
    return epoch


def _split(amount: int, cut_bps: int = 1_000) -> tuple[int, int, int]:
    """(fee, cut, holders) of ``amount``: fee and cut rounded down, holders the rest."""
    fee, cut = amount * FEE_BPS // 10_000, amount * cut_bps // 10_000
    return fee, cut, amount - fee - cut


# ------------------------------------------------------------------------ fixtures ----


@pytest.fixture(autouse=True)
def solvent_after_each_test(channels: Any, stablecoin: Any) -> Iterator[None]:
    yield
    _assert_solvent(channels, stablecoin)


@pytest.fixture(scope="module")
def grace(channels: Any) -> int:
    """CLOSE_GRACE: one epoch plus the challenge period (60 s + 3,600 s here)."""
    value = int(channels.CLOSE_GRACE())
    assert value == 60 + 3_600
    return value


@pytest.fixture(scope="module")
def wallet(stablecoin: Any, channels: Any, deployer: Any) -> Callable[[Any], Any]:
    """Gives ``who`` stablecoin and its approval to the channels contract."""

    def _fund(who: Any, amount: int = 10**15) -> Any:
        stablecoin.mint(who, amount, {"from": deployer})
        stablecoin.approve(channels, 2**256 - 1, {"from": who})
        return who

    return _fund


@pytest.fixture(scope="module")
def paying(customer: Any, wallet: Callable[[Any], Any]) -> Any:
    """The customer, holding stablecoin and having approved the channels contract."""
    return wallet(customer)


@pytest.fixture(scope="module")
def second_customer(wallet: Callable[[Any], Any]) -> tuple[Any, str]:
    """Another customer of the node (accounts[9]) and its key."""
    key = build_dev_keys(10)[9]
    assert Signer.from_key(key).address == accounts[9].address
    return wallet(accounts[9]), key


@pytest.fixture(scope="module")
def node2(register: Callable[..., tuple[int, Any]]) -> tuple[int, Any]:
    """Node 2: same operator and attestor as node 1, a 20% cut."""
    return register(operator_cut_bps=2_000, region="Lima")


@pytest.fixture
def voucher(
    suite: Suite, customer_key: str, customer: Any, node: Any
) -> Callable[..., SignedVoucher]:
    """A voucher of the customer's channel to node 1, signed by the customer."""

    def _make(cumulative: int, **fields: Any) -> SignedVoucher:
        node_id = fields.pop("node_id", node[0])
        key = fields.pop("key", customer_key)
        return make_voucher(suite, key, node_id, customer.address, cumulative, **fields)

    return _make


# ------------------------------------------------------------------------ deposits ----


def test_deposit__opens_then_tops_up_and_logs(
    channels: Any, stablecoin: Any, node: Any, paying: Any, operator: Any, voucher: Any
) -> None:
    node_id, _ = node
    before = stablecoin.balanceOf(paying)
    tx = channels.deposit(node_id, 700, {"from": paying})
    event = tx.events["Deposited"]
    assert (event["customer"], event["node_id"], event["generation"]) == (paying, node_id, 0)
    assert (event["amount"], event["unredeemed"]) == (700, 700)
    assert "CloseCancelled" not in tx.events
    _redeem(channels, [voucher(200)], operator)
    tx = channels.deposit(node_id, 300, {"from": paying})  # a top-up of the same channel
    assert (tx.events["Deposited"]["amount"], tx.events["Deposited"]["unredeemed"]) == (300, 800)
    assert _channel(channels, paying, node_id) == {
        "deposited": 1_000, "redeemed": 200, "unredeemed": 800, "generation": 0,
        "closes_at": 0, "withdrawable_at": 0, "low_balance_threshold": 0,
    }  # fmt: skip
    assert before - stablecoin.balanceOf(paying) == 1_000
    assert channels.total_unredeemed() == 800 and channels.total_redeemed() == 200
    _assert_solvent(channels, stablecoin)


def test_deposit__zero_unknown_node_or_paused__reverts(
    channels: Any, registry: Any, node: Any, paying: Any, deployer: Any
) -> None:
    node_id, _ = node
    with brownie.reverts("channels: amount is zero"):
        channels.deposit(node_id, 0, {"from": paying})
    for unknown in (0, registry.node_count() + 1):
        with brownie.reverts("channels: unknown node"):
            channels.deposit(unknown, 1, {"from": paying})
    registry.pause({"from": deployer})
    with brownie.reverts("channels: paused"):
        channels.deposit(node_id, 1, {"from": paying})
    registry.unpause({"from": deployer})
    channels.deposit(node_id, 1, {"from": paying})


def test_deposit__retired_node__reverts_from_the_retirement_on(
    channels: Any, registry: Any, node: Any, paying: Any, deployer: Any
) -> None:
    node_id, _ = node
    channels.deposit(node_id, 10, {"from": paying})
    registry.set_node_status(node_id, RETIRED, {"from": deployer})
    # refused at once, although the node is active until the epoch ends
    with brownie.reverts("channels: node is retired"):
        channels.deposit(node_id, 10, {"from": paying})


def test_deposit__bounded_by_2_128_minus_1_per_channel(
    channels: Any, stablecoin: Any, node: Any, wallet: Any, paying: Any
) -> None:
    node_id, _ = node
    wallet(paying, MAX_AMOUNT)
    channels.deposit(node_id, MAX_AMOUNT - 1, {"from": paying})
    with brownie.reverts("channels: deposit above 2**128 - 1"):
        channels.deposit(node_id, 2, {"from": paying})
    channels.deposit(node_id, 1, {"from": paying})
    assert _channel(channels, paying, node_id)["deposited"] == MAX_AMOUNT
    with brownie.reverts("channels: deposit above 2**128 - 1"):
        channels.deposit(node_id, 1, {"from": paying})
    _assert_solvent(channels, stablecoin)


def test_deposit__without_allowance__reverts_and_books_nothing(
    channels: Any, stablecoin: Any, node: Any, stranger: Any, deployer: Any
) -> None:
    stablecoin.mint(stranger, 1_000, {"from": deployer})
    with brownie.reverts("stablecoin: insufficient allowance"):
        channels.deposit(node[0], 1_000, {"from": stranger})
    assert channels.total_unredeemed() == 0
    assert _channel(channels, stranger, node[0])["deposited"] == 0


# ------------------------------------------------------------------------ vouchers ----


def test_latest_voucher__pays_the_difference_and_older_ones_nothing(
    channels: Any, stablecoin: Any, router: Any, node: Any, paying: Any, operator: Any,
    voucher: Any,
) -> None:  # fmt: skip
    node_id, _ = node
    channels.deposit(node_id, 1_000, {"from": paying})
    first, second = voucher(300), voucher(750)
    tx = _redeem(channels, [first], operator)
    event = tx.events["VoucherRedeemed"]
    assert (event["node_id"], event["customer"], event["generation"]) == (node_id, paying, 0)
    assert (event["cumulative"], event["amount"], event["unredeemed"]) == (300, 300, 700)
    assert event["epoch"] == tx.events["ChannelRevenue"]["epoch"]
    tx = _redeem(channels, [second, first], operator)  # the older one after the newer
    assert _paid(tx) == [450] and _skips(tx) == [SKIP_NOTHING_NEW]
    skipped = tx.events["VoucherSkipped"]
    assert (skipped["node_id"], skipped["customer"], skipped["cumulative"]) == (
        node_id,
        paying,
        300,
    )
    for old in (first, second):  # neither pays again, not even the latest
        tx = _redeem(channels, [old], operator)
        assert _paid(tx) == [] and _skips(tx) == [SKIP_NOTHING_NEW]
        assert "ChannelRevenue" not in tx.events and "RevenueSplit" not in tx.events
    assert _channel(channels, paying, node_id)["redeemed"] == 750
    assert channels.total_redeemed() == 750 == router.total_channel_revenue()
    _assert_solvent(channels, stablecoin)


def test_voucher_above_the_deposit__skipped_whole_and_the_batch_goes_on(
    channels: Any, stablecoin: Any, node: Any, paying: Any, operator: Any, voucher: Any,
    second_customer: Any, suite: Suite, customer_key: str,
) -> None:  # fmt: skip
    node_id, _ = node
    other, other_key = second_customer
    channels.deposit(node_id, 1_000, {"from": paying})
    channels.deposit(node_id, 500, {"from": other})
    over = voucher(1_001)
    theirs = make_voucher(suite, other_key, node_id, other.address, 500)
    tx = _redeem(channels, [over, theirs, voucher(400)], operator)
    assert _skips(tx) == [SKIP_NOT_COVERED]  # nothing of it paid, not even the 1,000 there
    assert _paid(tx) == [500, 400]
    assert tx.events["ChannelRevenue"]["amount"] == 900  # one credit for the run
    assert _channel(channels, paying, node_id)["redeemed"] == 400
    huge = sign_voucher(  # beyond any deposit (and 128 bits): skipped, nothing overflows
        Voucher.model_construct(node_id=node_id, customer=paying.address, generation=0,
                                cumulative=2**256 - 1, deadline=FAR_DEADLINE),
        customer_key, fetch_channels_domain(suite),
    )  # fmt: skip
    assert _skips(_redeem(channels, [huge], operator)) == [SKIP_NOT_COVERED]
    channels.deposit(node_id, 1, {"from": paying})  # now it is covered: pays the rest
    assert _paid(_redeem(channels, [over], operator)) == [601]
    assert _channel(channels, paying, node_id)["unredeemed"] == 0
    _assert_solvent(channels, stablecoin)


def test_forged_or_malleated_signatures__skipped_and_the_batch_goes_on(
    channels: Any, node: Any, paying: Any, operator: Any, voucher: Any
) -> None:
    node_id, _ = node
    channels.deposit(node_id, 1_000, {"from": paying})
    good = voucher(100)
    sig = good.get_signature_bytes()
    s = int.from_bytes(sig[32:64], "big")
    # the high-s twin: ecrecover alone would accept it
    twin = sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    bad = [
        voucher(100, key=STRANGER_KEY),  # signed by someone else
        _with_signature(good, twin),
        _with_signature(good, sig[:64] + bytes([55 - sig[64]])),  # the other v: another key
        _with_signature(good, sig[:64] + bytes([sig[64] - 27])),  # v of 0 or 1
        _with_signature(good, bytes(65)),
        _with_signature(good, bytes(64) + b"\x1b"),  # recovers nothing
        good.model_copy(update={"cumulative": 101}),  # the signed amount changed
        good.model_copy(update={"deadline": FAR_DEADLINE + 1}),
    ]
    tx = _redeem(channels, [*bad, good], operator)
    assert _skips(tx) == [SKIP_BAD_SIGNATURE] * len(bad)
    assert _paid(tx) == [100]


def test_voucher_moved_to_another_node__skipped(
    channels: Any, node: Any, node2: Any, paying: Any, operator: Any, voucher: Any
) -> None:
    """Node 2 has the same operator and a deposit that covers it: only the signature,
    which names node 1, stops it."""
    node_id, node2_id = node[0], node2[0]
    channels.deposit(node_id, 1_000, {"from": paying})
    channels.deposit(node2_id, 1_000, {"from": paying})
    signed = voucher(100)
    moved = signed.model_copy(update={"node_id": node2_id})
    tx = _redeem(channels, [moved], operator)
    assert _skips(tx) == [SKIP_BAD_SIGNATURE] and _paid(tx) == []
    assert _paid(_redeem(channels, [signed], operator)) == [100]


def test_hot_key__pays_only_once_authorised_for_that_node(
    channels: Any, node: Any, node2: Any, paying: Any, operator: Any, voucher: Any
) -> None:
    node_id, node2_id = node[0], node2[0]
    channels.deposit(node_id, 1_000, {"from": paying})
    by_hot_key = voucher(100, key=HOT_KEY)
    assert channels.signer_valid_until(paying, node_id, HOT_SIGNER) == 0
    assert _skips(_redeem(channels, [by_hot_key], operator)) == [SKIP_BAD_SIGNATURE]
    channels.authorize_signer(node2_id, HOT_SIGNER, {"from": paying})  # another node only
    assert _skips(_redeem(channels, [by_hot_key], operator)) == [SKIP_BAD_SIGNATURE]
    tx = channels.authorize_signer(node_id, HOT_SIGNER, {"from": paying})
    event = tx.events["SignerAuthorized"]
    assert (event["customer"], event["node_id"], event["signer"]) == (paying, node_id, HOT_SIGNER)
    assert channels.signer_valid_until(paying, node_id, HOT_SIGNER) == 2**256 - 1
    assert _paid(_redeem(channels, [by_hot_key], operator)) == [100]
    # the customer's own signature still pays
    assert _paid(_redeem(channels, [voucher(150)], operator)) == [50]


def test_authorize_signer__bad_signer_or_unknown_node__reverts(
    channels: Any, registry: Any, node: Any, paying: Any
) -> None:
    with brownie.reverts("channels: signer is the zero address"):
        channels.authorize_signer(node[0], ZERO, {"from": paying})
    with brownie.reverts("channels: the customer always signs for itself"):
        channels.authorize_signer(node[0], paying, {"from": paying})
    for unknown in (0, registry.node_count() + 1):
        with brownie.reverts("channels: unknown node"):
            channels.authorize_signer(unknown, HOT_SIGNER, {"from": paying})
    with brownie.reverts("channels: signer not authorised"):
        channels.revoke_signer(node[0], HOT_SIGNER, {"from": paying})


def test_revoked_signer__valid_for_the_grace_then_skipped_until_authorised_again(
    channels: Any, node: Any, paying: Any, operator: Any, voucher: Any, grace: int
) -> None:
    node_id, _ = node
    channels.deposit(node_id, 1_000, {"from": paying})
    channels.authorize_signer(node_id, HOT_SIGNER, {"from": paying})
    tx = channels.revoke_signer(node_id, HOT_SIGNER, {"from": paying})
    effective = tx.timestamp + grace
    event = tx.events["SignerRevoked"]
    assert (event["customer"], event["node_id"], event["signer"]) == (paying, node_id, HOT_SIGNER)
    assert (
        event["effective_at"]
        == effective
        == channels.signer_valid_until(paying, node_id, HOT_SIGNER)
    )
    # revoking again never extends it
    again = channels.revoke_signer(node_id, HOT_SIGNER, {"from": paying})
    assert again.events["SignerRevoked"]["effective_at"] == effective
    # what it signed still pays until the grace has passed (the node redeems it)
    set_next_timestamp(effective - 1)
    assert _paid(_redeem(channels, [voucher(100, key=HOT_KEY)], operator)) == [100]
    set_next_timestamp(effective)
    assert _skips(_redeem(channels, [voucher(200, key=HOT_KEY)], operator)) == [SKIP_BAD_SIGNATURE]
    with brownie.reverts("channels: signer not authorised"):
        channels.revoke_signer(node_id, HOT_SIGNER, {"from": paying})
    assert _paid(_redeem(channels, [voucher(200)], operator)) == [100]  # the customer's own
    channels.authorize_signer(node_id, HOT_SIGNER, {"from": paying})  # re-authorised
    assert _paid(_redeem(channels, [voucher(300, key=HOT_KEY)], operator)) == [100]


def test_revoke_then_authorise_inside_the_grace__cancels_the_revocation(
    channels: Any, node: Any, paying: Any, operator: Any, voucher: Any, grace: int
) -> None:
    node_id, _ = node
    channels.deposit(node_id, 1_000, {"from": paying})
    channels.authorize_signer(node_id, HOT_SIGNER, {"from": paying})
    revoked = channels.revoke_signer(node_id, HOT_SIGNER, {"from": paying})
    channels.authorize_signer(node_id, HOT_SIGNER, {"from": paying})
    set_next_timestamp(revoked.timestamp + grace)
    assert _paid(_redeem(channels, [voucher(100, key=HOT_KEY)], operator)) == [100]


def test_expired_voucher__skipped_after_its_deadline(
    channels: Any, node: Any, paying: Any, operator: Any, voucher: Any
) -> None:
    node_id, _ = node
    channels.deposit(node_id, 1_000, {"from": paying})
    deadline = get_now() + 100
    set_next_timestamp(deadline)  # the deadline itself is still in time
    assert _paid(_redeem(channels, [voucher(100, deadline=deadline)], operator)) == [100]
    set_next_timestamp(deadline + 1)
    tx = _redeem(channels, [voucher(200, deadline=deadline), voucher(300)], operator)
    assert _skips(tx) == [SKIP_EXPIRED] and _paid(tx) == [200]


def test_voucher_of_another_generation__skipped(
    channels: Any, stablecoin: Any, node: Any, paying: Any, operator: Any, voucher: Any,
    grace: int,
) -> None:  # fmt: skip
    node_id, _ = node
    channels.deposit(node_id, 1_000, {"from": paying})
    _redeem(channels, [voucher(300)], operator)
    closes_at = channels.request_close(node_id, {"from": paying}).events["CloseRequested"][
        "closes_at"
    ]
    set_next_timestamp(closes_at)
    channels.withdraw(node_id, {"from": paying})
    channels.deposit(node_id, 500, {"from": paying})
    # the old channel's vouchers never draw on the new deposit, nor does a future generation
    tx = _redeem(channels, [voucher(400), voucher(400, generation=2)], operator)
    assert _skips(tx) == [SKIP_OLD_GENERATION, SKIP_OLD_GENERATION] and _paid(tx) == []
    assert _paid(_redeem(channels, [voucher(400, generation=1)], operator)) == [400]
    _assert_solvent(channels, stablecoin)


def test_redeemer__only_the_operator_or_the_current_attestor(
    channels: Any, registry: Any, node: Any, paying: Any, operator: Any, attestor: Any,
    stranger: Any, deployer: Any, voucher: Any,
) -> None:  # fmt: skip
    node_id, _ = node
    channels.deposit(node_id, 1_000, {"from": paying})
    for outsider in (stranger, paying, deployer):  # owner, registrar and guardian included
        tx = _redeem(channels, [voucher(100)], outsider)
        assert _skips(tx) == [SKIP_NOT_NODE] and "ChannelRevenue" not in tx.events
    assert _paid(_redeem(channels, [voucher(100)], operator)) == [100]
    assert _paid(_redeem(channels, [voucher(200)], attestor)) == [100]
    registry.rotate_attestor(node_id, stranger, {"from": operator})  # the new key redeems
    assert _skips(_redeem(channels, [voucher(300)], attestor)) == [SKIP_NOT_NODE]
    assert _paid(_redeem(channels, [voucher(300)], stranger)) == [100]
    assert channels.total_redeemed() == 300


def test_voucher_for_node_0_or_an_unknown_node__skipped_not_reverted(
    channels: Any, registry: Any, suite: Suite, node: Any, paying: Any, operator: Any,
    customer_key: str, voucher: Any,
) -> None:  # fmt: skip
    node_id, _ = node
    channels.deposit(node_id, 1_000, {"from": paying})
    domain = fetch_channels_domain(suite)
    nowhere = [
        sign_voucher(
            Voucher.model_construct(
                node_id=n, customer=paying.address, generation=0, cumulative=10,
                deadline=FAR_DEADLINE,
            ),
            customer_key,
            domain,
        )
        for n in (0, registry.node_count() + 1, 2**256 - 1)
    ]  # fmt: skip
    tx = _redeem(channels, [nowhere[0], voucher(100), *nowhere[1:]], operator)
    assert _skips(tx) == [SKIP_NOT_NODE] * 3 and _paid(tx) == [100]


def test_same_voucher_twice_in_a_batch__pays_once(
    channels: Any, node: Any, paying: Any, operator: Any, voucher: Any
) -> None:
    node_id, _ = node
    channels.deposit(node_id, 1_000, {"from": paying})
    signed = voucher(250)
    tx = _redeem(channels, [signed, signed, signed], operator)
    assert _paid(tx) == [250] and _skips(tx) == [SKIP_NOTHING_NEW] * 2
    assert tx.events["ChannelRevenue"]["amount"] == 250
    assert channels.total_redeemed() == 250


def test_batch_of_two_nodes__each_node_credited_and_split_with_its_cut(
    channels: Any, router: Any, stablecoin: Any, suite: Suite, node: Any, node2: Any,
    paying: Any, operator: Any, treasury: Any, voucher: Any, second_customer: Any,
) -> None:  # fmt: skip
    (node_id, share), (node2_id, share2) = node, node2
    other, other_key = second_customer
    for n in (node_id, node2_id):
        channels.deposit(n, 100_000, {"from": paying})
        channels.deposit(n, 100_000, {"from": other})
    batch = [
        voucher(10_000),  # node 1
        voucher(20_000, node_id=node2_id),
        make_voucher(suite, other_key, node2_id, other.address, 30_000),
        make_voucher(suite, other_key, node_id, other.address, 40_000),  # node 1 again
    ]
    tx = _redeem(channels, batch, operator)
    assert _paid(tx) == [10_000, 20_000, 30_000, 40_000]
    credits = [(e["node_id"], e["amount"]) for e in tx.events["ChannelRevenue"]]
    assert credits == [(node_id, 10_000), (node2_id, 50_000), (node_id, 40_000)]  # one per run
    epoch = tx.events["ChannelRevenue"][0]["epoch"]
    assert router.channel_revenue(node_id, epoch) == 50_000
    assert router.channel_revenue(node2_id, epoch) == 50_000
    assert router.total_channel_revenue() == 100_000
    splits = [
        (e["node_id"], e["gross"], e["protocol_fee"], e["operator_cut"], e["holders"])
        for e in tx.events["RevenueSplit"]
    ]
    assert splits == [
        (node_id, 10_000, *_split(10_000)),
        (node2_id, 50_000, *_split(50_000, 2_000)),
        (node_id, 40_000, *_split(40_000)),
    ]
    assert share.total_distributed() == _split(10_000)[2] + _split(40_000)[2]
    assert share2.total_distributed() == _split(50_000, 2_000)[2]
    assert router.owed(operator) == 1_000 + 10_000 + 4_000
    assert router.owed(treasury) == 500 + 2_500 + 2_000  # 5% of each run
    assert stablecoin.balanceOf(router) == router.total_owed()
    _assert_solvent(channels, stablecoin)


def test_redeem_many__empty_or_mismatched_signatures__revert(
    channels: Any, node: Any, paying: Any, operator: Any, voucher: Any
) -> None:
    channels.deposit(node[0], 1_000, {"from": paying})
    signed = voucher(100)
    with brownie.reverts("channels: no vouchers"):
        channels.redeem_many([], b"", {"from": operator})
    for signatures in (b"", signed.get_signature_bytes()[:64], signed.get_signature_bytes() * 2):
        with brownie.reverts("channels: need 65 signature bytes per voucher"):
            channels.redeem_many([signed.as_tuple()], signatures, {"from": operator})


# ------------------------------------------------------------------ replay ----


@pytest.fixture(scope="module")
def other_suite(
    deploy: Callable[..., Suite], deployer: Any, operator: Any, attestor: Any, customer: Any
) -> tuple[Suite, Any]:
    """A second suite on this chain, its node 1 run by the same operator, with a deposit
    of the customer's: the same voucher fields are valid in both."""
    suite = deploy()
    spec = NodeSpec(
        operator=operator.address, attestor=attestor.address, shares=SHARES,
        price_per_1k=1_000, operator_cut_bps=1_000, region="Oslo",
    )  # fmt: skip
    assert send_register_node(Transactor(web3, Signer(address=deployer.address)), suite, spec) == 1
    coin = brownie_contract("MockStablecoin", suite.stablecoin.address)
    channels = brownie_contract("PaymentChannels", suite.channels.address)
    coin.mint(customer, 10**9, {"from": deployer})
    coin.approve(channels, 2**256 - 1, {"from": customer})
    channels.deposit(1, 10**6, {"from": customer})
    return suite, channels


def test_voucher_for_another_chain_or_another_channels_contract__skipped(
    channels: Any, suite: Suite, node: Any, paying: Any, operator: Any, customer_key: str,
    other_suite: Any,
) -> None:  # fmt: skip
    node_id, _ = node
    assert node_id == 1
    theirs_suite, theirs = other_suite
    channels.deposit(node_id, 10**6, {"from": paying})
    fields = Voucher(node_id=1, customer=paying.address, generation=0, cumulative=100,
                     deadline=FAR_DEADLINE)  # fmt: skip
    domain = fetch_channels_domain(suite)
    other_chain = sign_voucher(fields, customer_key, domain.model_copy(update={"chain_id": 1}))
    other_contract = sign_voucher(fields, customer_key, fetch_channels_domain(theirs_suite))
    ours = sign_voucher(fields, customer_key, domain)
    assert len({other_chain.signature, other_contract.signature, ours.signature}) == 3
    tx = _redeem(channels, [other_chain, other_contract], operator)
    assert _skips(tx) == [SKIP_BAD_SIGNATURE] * 2 and _paid(tx) == []
    # each contract takes only its own voucher
    assert _skips(_redeem(theirs, [ours], operator)) == [SKIP_BAD_SIGNATURE]
    assert _paid(_redeem(theirs, [other_contract], operator)) == [100]
    assert _paid(_redeem(channels, [ours], operator)) == [100]


# ------------------------------------------------------------------ the split ----


def test_redemption__split_at_once_and_holders_part_vests(
    channels: Any, router: Any, registry: Any, stablecoin: Any, node: Any, paying: Any,
    operator: Any, treasury: Any, voucher: Any,
) -> None:  # fmt: skip
    node_id, share = node
    channels.deposit(node_id, 1_000_000, {"from": paying})
    tx = _redeem(channels, [voucher(123_457)], operator)
    fee, cut, holders = _split(123_457)
    assert (fee, cut, holders) == (6_172, 12_345, 104_940)  # 6,172.85 and 12,345.7 rounded down
    split = tx.events["RevenueSplit"]
    assert (split["node_id"], split["epochs"], split["gross"]) == (node_id, 1, 123_457)
    assert (split["protocol_fee"], split["operator_cut"], split["holders"]) == (fee, cut, holders)
    credit = tx.events["ChannelRevenue"]
    epoch = _epoch_at(registry, tx.timestamp)
    assert (credit["node_id"], credit["epoch"], credit["amount"]) == (node_id, epoch, 123_457)
    assert router.channel_revenue(node_id, epoch) == 123_457 == router.total_channel_revenue()
    assert router.channel_revenue(node_id, epoch + 1) == 0
    assert (router.owed(treasury), router.owed(operator)) == (fee, cut)
    assert router.total_pending() == 0 and router.total_finalized() == 0  # not a report
    assert stablecoin.balanceOf(router) == fee + cut == router.total_owed()
    # the holders' part went to the share token through notify_revenue, and vests
    distributed = tx.events["RevenueDistributed"]
    assert (distributed["amount"], distributed["unvested"]) == (holders, holders)
    assert stablecoin.balanceOf(share) == holders == share.total_distributed()
    unlock = registry.UNLOCK_PERIOD()
    assert share.vesting_ends_at() == tx.timestamp + unlock
    assert share.claimable(operator) == 0 and share.unvested() == holders
    mine_at(tx.timestamp + unlock // 2)
    assert_floor_share(share.claimable(operator), holders * (unlock // 2), unlock)
    mine_at(tx.timestamp + unlock)
    claimable = share.claimable(operator)
    assert_floor_share(claimable, holders, 1)  # the operator holds every share
    share.claim({"from": operator})
    router.withdraw(operator, {"from": operator})
    assert stablecoin.balanceOf(operator) == claimable + cut
    _assert_solvent(channels, stablecoin)


def test_redemption__split_with_the_cut_of_the_epoch_it_lands_in(
    channels: Any, registry: Any, node: Any, paying: Any, operator: Any, voucher: Any
) -> None:
    node_id, _ = node
    channels.deposit(node_id, 1_000_000, {"from": paying})
    _fresh_epoch(registry)
    registry.propose_operator_cut(node_id, 500, {"from": operator})  # from the next epoch
    assert (
        _redeem(channels, [voucher(10_000)], operator).events["RevenueSplit"]["operator_cut"]
        == 1_000
    )
    mine_at(registry.epoch_start(registry.current_epoch() + 1))
    assert (
        _redeem(channels, [voucher(20_000)], operator).events["RevenueSplit"]["operator_cut"] == 500
    )


@given(amount=st.integers(1, 10**13), cut_bps=st.integers(0, 5_000))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.data_too_large])
def test_split__any_amount_and_cut__rounds_down_and_adds_up(
    channels: Any, router: Any, stablecoin: Any, register: Any, paying: Any, operator: Any,
    treasury: Any, suite: Suite, customer_key: str, amount: int, cut_bps: int,
) -> None:  # fmt: skip
    brownie.chain.snapshot()
    try:
        node_id, share = register(operator_cut_bps=cut_bps)
        channels.deposit(node_id, amount, {"from": paying})
        signed = make_voucher(suite, customer_key, node_id, paying.address, amount)
        tx = _redeem(channels, [signed], operator)
        split = tx.events["RevenueSplit"]
        fee, cut, holders = _split(amount, cut_bps)
        assert (split["gross"], split["protocol_fee"]) == (amount, fee)
        assert (split["operator_cut"], split["holders"]) == (cut, holders)
        assert fee + cut + holders == amount
        assert (router.owed(treasury), router.owed(operator)) == (fee, cut)
        assert stablecoin.balanceOf(share) == holders == share.total_distributed()
        assert stablecoin.balanceOf(router) == router.total_owed() == fee + cut
        assert _channel(channels, paying, node_id)["unredeemed"] == 0
        _assert_solvent(channels, stablecoin)
    finally:
        brownie.chain.revert()


@given(
    deposits=st.lists(st.integers(1, 10**9), min_size=1, max_size=3),
    cumulatives=st.lists(st.integers(1, 3 * 10**9), min_size=1, max_size=8),
)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.data_too_large])
def test_vouchers__any_sequence_pays_each_unit_once_and_never_beyond_the_deposit(
    channels: Any, router: Any, stablecoin: Any, node: Any, paying: Any, operator: Any,
    suite: Suite, customer_key: str, deposits: list[int], cumulatives: list[int],
) -> None:  # fmt: skip
    """Deposits, then one batch of the customer's vouchers in any order: each pays what
    it adds over the highest cumulative paid before it, if the deposits cover it."""
    brownie.chain.snapshot()
    try:
        node_id, _ = node
        for amount in deposits:
            channels.deposit(node_id, amount, {"from": paying})
        deposited = sum(deposits)
        before = stablecoin.balanceOf(paying)
        batch = [make_voucher(suite, customer_key, node_id, paying.address, c) for c in cumulatives]
        tx = _redeem(channels, batch, operator)
        redeemed, paid, skips = 0, [], []
        for c in cumulatives:
            if c <= redeemed:
                skips.append(SKIP_NOTHING_NEW)
            elif c > deposited:
                skips.append(SKIP_NOT_COVERED)
            else:
                paid.append(c - redeemed)
                redeemed = c
        assert (_paid(tx), _skips(tx)) == (paid, skips)
        assert _channel(channels, paying, node_id)["redeemed"] == redeemed
        assert channels.total_redeemed() == redeemed == router.total_channel_revenue()
        assert channels.total_unredeemed() == deposited - redeemed
        _assert_solvent(channels, stablecoin)
        # the customer gets back exactly what no voucher took
        closes_at = channels.request_close(node_id, {"from": paying}).events["CloseRequested"][
            "closes_at"
        ]
        set_next_timestamp(closes_at)
        channels.withdraw(node_id, {"from": paying})
        assert stablecoin.balanceOf(paying) - before == deposited - redeemed
        _assert_solvent(channels, stablecoin)
    finally:
        brownie.chain.revert()


# ------------------------------------------------------------------ closing ----


def test_request_close__logs_and_sets_when_the_customer_can_withdraw(
    channels: Any, node: Any, node2: Any, paying: Any, operator: Any, voucher: Any, grace: int
) -> None:
    node_id, node2_id = node[0], node2[0]
    with brownie.reverts("channels: no deposit in this channel"):
        channels.request_close(node_id, {"from": paying})
    channels.deposit(node_id, 1_000, {"from": paying})
    _redeem(channels, [voucher(400)], operator)
    assert channels.request_close.call(node_id, {"from": paying}) >= get_now() + grace
    tx = channels.request_close(node_id, {"from": paying})
    event = tx.events["CloseRequested"]
    assert (event["customer"], event["node_id"], event["generation"]) == (paying, node_id, 0)
    assert (event["closes_at"], event["unredeemed"]) == (tx.timestamp + grace, 600)
    view = _channel(channels, paying, node_id)
    assert view["closes_at"] == view["withdrawable_at"] == tx.timestamp + grace
    with brownie.reverts("channels: close already requested"):
        channels.request_close(node_id, {"from": paying})
    with brownie.reverts("channels: no deposit in this channel"):  # another channel
        channels.request_close(node2_id, {"from": paying})


def test_deposit_during_the_grace__cancels_the_close(
    channels: Any, node: Any, paying: Any, operator: Any, voucher: Any, grace: int
) -> None:
    node_id, _ = node
    channels.deposit(node_id, 1_000, {"from": paying})
    closes_at = channels.request_close(node_id, {"from": paying}).events["CloseRequested"][
        "closes_at"
    ]
    set_next_timestamp(closes_at - 1)
    tx = channels.deposit(node_id, 500, {"from": paying})
    assert tx.events["CloseCancelled"]["generation"] == 0
    assert tx.events["Deposited"]["unredeemed"] == 1_500
    view = _channel(channels, paying, node_id)
    assert view["closes_at"] == view["withdrawable_at"] == 0
    set_next_timestamp(closes_at)
    with brownie.reverts("channels: close not requested"):
        channels.withdraw(node_id, {"from": paying})
    assert _paid(_redeem(channels, [voucher(1_200)], operator)) == [1_200]  # still open
    channels.request_close(node_id, {"from": paying})  # and it can close again


def test_redeem_during_the_grace__pays_then_closed(
    channels: Any, node: Any, paying: Any, operator: Any, voucher: Any
) -> None:
    node_id, _ = node
    channels.deposit(node_id, 1_000, {"from": paying})
    closes_at = channels.request_close(node_id, {"from": paying}).events["CloseRequested"][
        "closes_at"
    ]
    set_next_timestamp(closes_at - 1)
    assert _paid(_redeem(channels, [voucher(100)], operator)) == [100]
    set_next_timestamp(closes_at)
    tx = _redeem(channels, [voucher(200)], operator)
    assert _skips(tx) == [SKIP_CLOSED] and _paid(tx) == []


def test_withdraw__after_the_grace_only__exact_refund_and_next_generation(
    channels: Any, stablecoin: Any, node: Any, paying: Any, operator: Any, voucher: Any
) -> None:
    node_id, _ = node
    with brownie.reverts("channels: close not requested"):  # never opened
        channels.withdraw(node_id, {"from": paying})
    channels.deposit(node_id, 1_000, {"from": paying})
    channels.set_low_balance_threshold(node_id, 77, {"from": paying})
    _redeem(channels, [voucher(350)], operator)
    with brownie.reverts("channels: close not requested"):
        channels.withdraw(node_id, {"from": paying})
    closes_at = channels.request_close(node_id, {"from": paying}).events["CloseRequested"][
        "closes_at"
    ]
    set_next_timestamp(closes_at - 1)
    with brownie.reverts("channels: grace period not over"):
        channels.withdraw(node_id, {"from": paying})
    before = stablecoin.balanceOf(paying)
    mine_at(closes_at)
    assert channels.withdraw.call(node_id, {"from": paying}) == 650
    tx = channels.withdraw(node_id, {"from": paying})
    event = tx.events["ChannelWithdrawn"]
    assert (event["customer"], event["node_id"], event["generation"], event["amount"]) == (
        paying,
        node_id,
        0,
        650,
    )
    assert stablecoin.balanceOf(paying) - before == 650
    assert _channel(channels, paying, node_id) == {
        "deposited": 0, "redeemed": 0, "unredeemed": 0, "generation": 1,
        "closes_at": 0, "withdrawable_at": 0, "low_balance_threshold": 77,
    }  # fmt: skip
    assert channels.total_unredeemed() == 0 and channels.total_redeemed() == 350
    with brownie.reverts("channels: close not requested"):  # nothing to withdraw twice
        channels.withdraw(node_id, {"from": paying})
    _assert_solvent(channels, stablecoin)


def test_deposit_after_the_grace__refused_until_withdrawn(
    channels: Any, stablecoin: Any, node: Any, paying: Any
) -> None:
    node_id, _ = node
    channels.deposit(node_id, 1_000, {"from": paying})
    closes_at = channels.request_close(node_id, {"from": paying}).events["CloseRequested"][
        "closes_at"
    ]
    set_next_timestamp(closes_at)
    with brownie.reverts("channels: channel closed; withdraw first"):
        channels.deposit(node_id, 1, {"from": paying})
    channels.withdraw(node_id, {"from": paying})
    tx = channels.deposit(node_id, 1, {"from": paying})
    assert (tx.events["Deposited"]["generation"], tx.events["Deposited"]["unredeemed"]) == (1, 1)
    _assert_solvent(channels, stablecoin)


# ------------------------------------------------------------------ retirement ----


def test_retired_node__final_window_then_withdraw_without_a_close_request(
    channels: Any, registry: Any, stablecoin: Any, node: Any, paying: Any, operator: Any,
    deployer: Any, voucher: Any, grace: int, second_customer: Any,
) -> None:  # fmt: skip
    node_id, _ = node
    other, _key = second_customer
    channels.deposit(node_id, 1_000, {"from": paying})
    channels.deposit(node_id, 500, {"from": other})
    assert _channel(channels, paying, node_id)["withdrawable_at"] == 0
    tx = registry.set_node_status(node_id, RETIRED, {"from": deployer})
    retired = registry.retired_from(node_id)
    assert retired == _epoch_at(registry, tx.timestamp) + 1
    assert retired == tx.events["NodeStatusChanged"]["from_epoch"]
    window_end = registry.epoch_start(retired) + grace
    view = _channel(channels, paying, node_id)
    assert (view["closes_at"], view["withdrawable_at"]) == (0, window_end)
    set_next_timestamp(window_end - 2)  # the node redeems until the window ends
    assert _paid(_redeem(channels, [voucher(300)], operator)) == [300]
    set_next_timestamp(window_end - 1)
    with brownie.reverts("channels: grace period not over"):
        channels.withdraw(node_id, {"from": paying})
    set_next_timestamp(window_end)
    assert _skips(_redeem(channels, [voucher(400)], operator)) == [SKIP_CLOSED]
    before = stablecoin.balanceOf(paying)
    tx = channels.withdraw(node_id, {"from": paying})  # no request_close needed
    assert tx.events["ChannelWithdrawn"]["amount"] == 700
    assert stablecoin.balanceOf(paying) - before == 700
    channels.withdraw(node_id, {"from": other})
    assert stablecoin.balanceOf(channels) == 0 == channels.total_unredeemed()
    with brownie.reverts("channels: node is retired"):
        channels.deposit(node_id, 1, {"from": paying})


def test_retired_node__an_earlier_close_request_still_ends_first(
    channels: Any, registry: Any, node: Any, paying: Any, deployer: Any, grace: int
) -> None:
    node_id, _ = node
    channels.deposit(node_id, 1_000, {"from": paying})
    closes_at = channels.request_close(node_id, {"from": paying}).events["CloseRequested"][
        "closes_at"
    ]
    mine_after(grace // 2)
    registry.set_node_status(node_id, RETIRED, {"from": deployer})
    window_end = registry.epoch_start(registry.retired_from(node_id)) + grace
    assert window_end > closes_at
    assert _channel(channels, paying, node_id)["withdrawable_at"] == closes_at
    set_next_timestamp(closes_at)
    tx = channels.withdraw(node_id, {"from": paying})
    assert tx.events["ChannelWithdrawn"]["amount"] == 1_000


# ------------------------------------------------------------------ low balance ----


def test_low_balance__logged_when_a_redemption_crosses_the_threshold_only(
    channels: Any, node: Any, paying: Any, operator: Any, voucher: Any
) -> None:
    node_id, _ = node
    channels.deposit(node_id, 1_000, {"from": paying})
    tx = channels.set_low_balance_threshold(node_id, 500, {"from": paying})
    event = tx.events["LowBalanceThresholdSet"]
    assert (event["customer"], event["node_id"], event["threshold"]) == (paying, node_id, 500)
    assert _channel(channels, paying, node_id)["low_balance_threshold"] == 500
    assert "LowBalance" not in _redeem(channels, [voucher(400)], operator).events  # 600 left
    assert "LowBalance" not in _redeem(channels, [voucher(500)], operator).events  # 500: not below
    tx = _redeem(channels, [voucher(501)], operator)  # 499 left: crossed
    low = tx.events["LowBalance"]
    assert (low["customer"], low["node_id"], low["unredeemed"], low["threshold"]) == (
        paying,
        node_id,
        499,
        500,
    )
    assert "LowBalance" not in _redeem(channels, [voucher(700)], operator).events  # already below
    channels.deposit(node_id, 1_000, {"from": paying})  # 1,300 left: above again
    assert len(_events(_redeem(channels, [voucher(1_600)], operator), "LowBalance")) == 1
    channels.set_low_balance_threshold(node_id, 0, {"from": paying})  # 0: never
    assert "LowBalance" not in _redeem(channels, [voucher(2_000)], operator).events
    with brownie.reverts("channels: threshold above 2**128 - 1"):
        channels.set_low_balance_threshold(node_id, MAX_AMOUNT + 1, {"from": paying})
    channels.set_low_balance_threshold(node_id, MAX_AMOUNT, {"from": paying})
    assert _channel(channels, paying, node_id)["low_balance_threshold"] == MAX_AMOUNT


def test_low_balance_threshold__leaves_generation_and_close_alone(
    channels: Any, node: Any, paying: Any
) -> None:
    node_id, _ = node
    channels.deposit(node_id, 1_000, {"from": paying})
    closes_at = channels.request_close(node_id, {"from": paying}).events["CloseRequested"][
        "closes_at"
    ]
    channels.set_low_balance_threshold(node_id, MAX_AMOUNT, {"from": paying})
    view = _channel(channels, paying, node_id)
    assert (view["closes_at"], view["generation"], view["low_balance_threshold"]) == (
        closes_at,
        0,
        MAX_AMOUNT,
    )


# ------------------------------------------------------------------ views ----


def test_check__gives_the_verdict_redeem_many_reaches(
    channels: Any, registry: Any, suite: Suite, node: Any, paying: Any, operator: Any,
    stranger: Any, voucher: Any, second_customer: Any, customer_key: str, grace: int,
    investor: Any, wallet: Any,
) -> None:  # fmt: skip
    node_id, _ = node
    other, _other_key = second_customer
    closed = wallet(investor)
    closed_key = build_dev_keys(4)[3]
    channels.deposit(node_id, 1_000, {"from": closed})
    closes_at = channels.request_close(node_id, {"from": closed}).events["CloseRequested"][
        "closes_at"
    ]
    mine_at(closes_at)
    channels.deposit(node_id, 1_000, {"from": paying})
    channels.deposit(node_id, 1_000, {"from": other})
    channels.authorize_signer(node_id, HOT_SIGNER, {"from": other})
    _redeem(channels, [voucher(200)], operator)
    domain = fetch_channels_domain(suite)
    nowhere = sign_voucher(
        Voucher.model_construct(node_id=0, customer=paying.address, generation=0,
                                cumulative=10, deadline=FAR_DEADLINE),
        customer_key, domain,
    )  # fmt: skip
    cases = [
        (nowhere, SKIP_NOT_NODE),
        (voucher(201, deadline=get_now() - 1), SKIP_EXPIRED),
        (voucher(202, generation=1), SKIP_OLD_GENERATION),
        (make_voucher(suite, closed_key, node_id, closed.address, 203), SKIP_CLOSED),
        (voucher(150), SKIP_NOTHING_NEW),
        (voucher(1_001), SKIP_NOT_COVERED),
        (voucher(204, key=STRANGER_KEY), SKIP_BAD_SIGNATURE),
        (make_voucher(suite, HOT_KEY, node_id, other.address, 400), 0),  # its hot key
        (voucher(500), 0),  # last: the vouchers before it see the same channel
    ]
    expected = []
    for signed, reason in cases:
        amount, got = _check(channels, signed, operator)
        assert got == reason, (signed, got)
        expected.append((signed.cumulative, amount, reason))
        assert _check(channels, signed, stranger) == (0, SKIP_NOT_NODE)  # not the node's
    assert [a for _, a, _ in expected] == [0] * 7 + [400, 300]
    tx = _redeem(channels, [signed for signed, _ in cases], operator)
    decided = sorted(
        [(int(e["cumulative"]), int(e["amount"]), 0) for e in tx.events["VoucherRedeemed"]]
        + [(int(e["cumulative"]), 0, int(e["reason"])) for e in tx.events["VoucherSkipped"]]
    )
    assert decided == sorted(expected)
    with brownie.reverts("channels: signature must be 65 bytes"):
        channels.check(cases[-1][0].as_tuple(), bytes(64), operator)


def _voucher(**fields: Any) -> Voucher:
    return Voucher(**fields)


vouchers = st.builds(
    _voucher,
    node_id=st.integers(1, 2**256 - 1),
    customer=st.binary(min_size=20, max_size=20).map(lambda b: web3.to_checksum_address(b)),
    generation=st.integers(0, 2**32 - 1),
    cumulative=st.integers(0, MAX_AMOUNT),
    deadline=st.integers(0, 2**64 - 1),
)


@given(signed=vouchers)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.data_too_large])
def test_voucher_digest__python_equals_contract_and_eth_account(
    channels: Any, suite: Suite, signed: Voucher
) -> None:
    domain = fetch_channels_domain(suite)
    ours = get_voucher_digest(signed, domain)
    assert ours == bytes(channels.voucher_digest(signed.as_tuple()))
    message = encode_typed_data(full_message=build_voucher_typed_data(signed, domain))
    assert ours == keccak(b"\x19\x01" + message.header + message.body)
    assert domain.get_separator() == bytes(channels.DOMAIN_SEPARATOR())


def test_eip712_domain__edgeshare_channels_v1_on_this_contract(channels: Any) -> None:
    fields, name, version, chain_id, contract, salt, extensions = channels.eip712Domain()
    assert (fields, name, version, chain_id, contract) == (
        "0x0f",
        "EdgeShare Channels",
        "1",
        web3.eth.chain_id,
        channels.address,
    )
    assert salt == "0x" + "00" * 32 and list(extensions) == []


def test_immutables__name_the_suite(
    channels: Any, router: Any, registry: Any, stablecoin: Any
) -> None:
    assert (channels.ROUTER(), channels.REGISTRY(), channels.STABLECOIN()) == (
        router.address,
        registry.address,
        stablecoin.address,
    )
    assert router.channels() == channels.address
    assert channels.CLOSE_GRACE() == registry.EPOCH_LENGTH() + router.CHALLENGE_PERIOD()


# ------------------------------------------------------------------ pause ----


def test_pause__stops_deposits_only(
    channels: Any, registry: Any, stablecoin: Any, node: Any, paying: Any, operator: Any,
    deployer: Any, voucher: Any,
) -> None:  # fmt: skip
    """While the suite is paused no deposit is taken; the node still redeems what the
    customer signed (split and credited at once), and the customer closes and withdraws."""
    node_id, share = node
    channels.deposit(node_id, 1_000, {"from": paying})
    registry.pause({"from": deployer})
    with brownie.reverts("channels: paused"):
        channels.deposit(node_id, 1, {"from": paying})
    tx = _redeem(channels, [voucher(400)], operator)
    assert _paid(tx) == [400] and tx.events["RevenueSplit"]["gross"] == 400
    assert share.total_distributed() == _split(400)[2]
    channels.set_low_balance_threshold(node_id, 10, {"from": paying})
    channels.authorize_signer(node_id, HOT_SIGNER, {"from": paying})
    closes_at = channels.request_close(node_id, {"from": paying}).events["CloseRequested"][
        "closes_at"
    ]
    set_next_timestamp(closes_at)
    before = stablecoin.balanceOf(paying)
    channels.withdraw(node_id, {"from": paying})
    assert stablecoin.balanceOf(paying) - before == 600
    assert registry.paused()


# ------------------------------------------------------------------ recover_excess ----


def test_recover_excess__owner_only_and_never_what_customers_own(
    channels: Any, stablecoin: Any, node: Any, paying: Any, stranger: Any, deployer: Any,
    operator: Any, voucher: Any,
) -> None:  # fmt: skip
    node_id, _ = node
    channels.deposit(node_id, 1_000, {"from": paying})
    _redeem(channels, [voucher(100)], operator)
    assert channels.recover_excess.call(stranger, {"from": deployer}) == 0
    assert "ExcessRecovered" not in channels.recover_excess(stranger, {"from": deployer}).events
    stablecoin.mint(channels, 777, {"from": deployer})  # a plain transfer, by mistake
    with brownie.reverts("channels: not owner"):
        channels.recover_excess(stranger, {"from": stranger})
    with brownie.reverts("channels: not owner"):
        channels.recover_excess(stranger, {"from": paying})
    with brownie.reverts("channels: receiver is the zero address"):
        channels.recover_excess(ZERO, {"from": deployer})
    tx = channels.recover_excess(stranger, {"from": deployer})
    assert (tx.events["ExcessRecovered"]["receiver"], tx.events["ExcessRecovered"]["amount"]) == (
        stranger,
        777,
    )
    assert stablecoin.balanceOf(stranger) == 777
    assert channels.recover_excess.call(stranger, {"from": deployer}) == 0
    _assert_solvent(channels, stablecoin)
    assert channels.total_unredeemed() == 900


def test_constructor__router_without_code__reverts(deployer: Any) -> None:
    factory = brownie.project.get_loaded_projects()[0].PaymentChannels
    with brownie.reverts("channels: router has no code"):
        factory.deploy(deployer.address, {"from": deployer})


# ------------------------------------------------------------------ gas ----

MARGINAL_GAS_BOUND = 30_000  # per extra voucher of redeem_many (the bound)


def _customers_with_deposits(
    count: int, channels: Any, suite: Suite, stablecoin: Any, deployer: Any, node_id: int
) -> list[SignedVoucher]:
    """``count`` new customers, each with a deposit and a voucher for part of it."""
    vouchers = []
    for i in range(count):
        key = "0x" + keccak(text=f"channels gas customer {i}").hex()
        account = accounts.add(key)
        deployer.transfer(account, 10**16)
        stablecoin.mint(account, 10**9, {"from": deployer})
        stablecoin.approve(channels, 10**9, {"from": account})
        channels.deposit(node_id, 10**9, {"from": account})
        vouchers.append(make_voucher(suite, key, node_id, account.address, 10**6 + i))
    return vouchers


def test_gas__each_extra_customer_of_one_node_costs_at_most_30k(
    channels: Any, registry: Any, suite: Suite, stablecoin: Any, node: Any, deployer: Any,
    operator: Any, paying: Any, voucher: Any,
) -> None:  # fmt: skip
    """Batches of 10 and of 30 vouchers of different customers (cold slots each), each
    built from this test's starting state in the same way and sent at the same block
    time, after the node's first redemption in that epoch: the difference per voucher is
    what one more costs, calldata included."""
    node_id, _ = node
    at = registry.epoch_start(registry.current_epoch() + 10) + 2
    gas = {}
    brownie.chain.snapshot()  # this test's starting state: each measurement starts there
    for size in (10, 30):
        batch = _customers_with_deposits(size, channels, suite, stablecoin, deployer, node_id)
        channels.deposit(node_id, 1_000, {"from": paying})
        set_next_timestamp(at - 1)
        _redeem(channels, [voucher(1)], operator)  # the epoch's first credit: cold slots
        set_next_timestamp(at)
        tx = _redeem(channels, batch, operator)
        assert len(_paid(tx)) == size
        gas[size] = tx.gas_used
        brownie.chain.revert()
    marginal = (gas[30] - gas[10]) / 20
    print(f"redeem_many: {gas[10]} gas for 10 customers, {gas[30]} for 30: "
          f"{marginal:.0f} per extra voucher")  # fmt: skip
    assert marginal <= MARGINAL_GAS_BOUND
