"""ShareMarket: signed orders for node shares against the stablecoin, filled whole or in
parts by any taker, both legs moved at once from the owners' wallets. One rule per test,
from the actor the rule is about.

The maker is ``investor`` and the taker ``investor2``; both start with 100 shares of
node 1 and 1,000,000 stablecoin, and have approved both markets for both tokens. After
every test the markets hold nothing: no shares, no stablecoin.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import brownie
import pytest
from brownie import project, web3
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeshare.attestation import SECP256K1_N
from edgeshare.chain import build_dev_keys
from edgeshare.signer import Signer
from edgeshare.suite import NodeSpec, Suite, send_register_node
from edgeshare.tx import Transactor
from tests.conftest import (
    ORDER_TYPE,
    SHARES,
    USDC,
    brownie_contract,
    get_now,
    mine_at,
    set_next_timestamp,
    sign_permit,
)

ZERO = "0x" + "00" * 20
FEE_BPS = 10  # the default suite's market fee
FAR_EXPIRY = 2**63  # fits the order's uint64
_KEYS = build_dev_keys(7)
MAKER_KEY = _KEYS[3]  # investor
TAKER_KEY = _KEYS[4]  # investor2
STRANGER_KEY = _KEYS[6]  # stranger
START_SHARES = 100 * SHARES
START_STABLECOIN = 1_000_000 * USDC

# The market's reason codes, in the order `_quote` checks them, and fill's messages.
REASONS = {
    "OK": (0, ""),
    "NOT_TRADABLE": (1, "market: not a suite share"),
    "EXPIRED": (2, "market: order expired"),
    "CANCELLED": (3, "market: order cancelled"),
    "OLD_NONCE": (4, "market: nonce is not the maker's current one"),
    "BAD_SIGNATURE": (5, "market: bad signature"),
    "SELF_TRADE": (6, "market: taker is the maker"),
    "ZERO_AMOUNT": (7, "market: amount is zero"),
    "FILLED": (8, "market: order fully filled"),
    "OVERFILL": (9, "market: amount above remaining"),
    "BELOW_MIN_FILL": (10, "market: fill below min_fill"),
    "DUST": (11, "market: fill leaves dust below min_fill"),
    "ZERO_COST": (12, "market: cost is zero"),
    "COST_OVERFLOW": (13, "market: cost overflows"),
    "MAKER_BALANCE": (14, "market: maker balance too low"),
    "MAKER_ALLOWANCE": (15, "market: maker allowance too low"),
    "TAKER_BALANCE": (16, "market: taker balance too low"),
    "TAKER_ALLOWANCE": (17, "market: taker allowance too low"),
}
CODE = {name: code for name, (code, _) in REASONS.items()}
MESSAGE = {name: message for name, (_, message) in REASONS.items()}

_SALTS = itertools.count(1)

# A basket factory for the test: the market only asks it `is_basket`.


# ------------------------------------------------------------------------ helpers ----


def _typed_data(market: Any, order: dict[str, Any]) -> dict[str, Any]:
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Order": ORDER_TYPE,
        },
        "primaryType": "Order",
        "domain": {
            "name": "EdgeShare Market",
            "version": "1",
            "chainId": web3.eth.chain_id,
            "verifyingContract": market.address,
        },
        "message": order,
    }


def sign_order(market: Any, order: dict[str, Any], key: str = MAKER_KEY) -> bytes:
    """The 65-byte signature (r || s || v) of ``order`` by ``key`` for ``market``."""
    return bytes(
        Account.sign_message(
            encode_typed_data(full_message=_typed_data(market, order)), key
        ).signature
    )


def as_tuple(order: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(order[field["name"]] for field in ORDER_TYPE)


def get_cost(amount: int, price: int, sell: bool) -> int:
    """The stablecoin a fill costs: up for a sell order, down for a buy order."""
    return -(-amount * price // SHARES) if sell else amount * price // SHARES


def get_fee(cost: int, fee_bps: int = FEE_BPS) -> int:
    return cost * fee_bps // 10_000


def high_s_twin(signature: bytes) -> bytes:
    """The malleated form of a signature: s' = n - s, v flipped."""
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])


class Desk:
    """Makes, signs, checks and fills orders of one market for one share."""

    def __init__(
        self, market: Any, share: Any, maker: Any, taker: Any, key: str = MAKER_KEY
    ) -> None:
        self.market, self.share, self.maker, self.taker = market, share, maker, taker
        self.key = key  # the maker's

    def order(self, **fields: Any) -> dict[str, Any]:
        """A sell order of 10 shares at 2.5 stablecoin each, unless told otherwise."""
        order = {
            "maker": self.maker.address,
            "share": self.share.address,
            "sell": True,
            "amount": 10 * SHARES,
            "price_per_share": 2_500_000,
            "min_fill": 0,
            "expiry": FAR_EXPIRY,
            "nonce": self.market.nonces(self.maker),
            "salt": next(_SALTS),
        }
        order.update(fields)
        return order

    def fill(
        self, order: dict[str, Any], amount: int, taker: Any = None, signature: bytes | None = None
    ) -> Any:
        signature = sign_order(self.market, order, self.key) if signature is None else signature
        return self.market.fill(as_tuple(order), signature, amount, {"from": taker or self.taker})

    def check(
        self, order: dict[str, Any], amount: int, taker: Any = None, signature: bytes | None = None
    ) -> tuple[int, int]:
        signature = sign_order(self.market, order, self.key) if signature is None else signature
        cost, reason = self.market.check(as_tuple(order), signature, amount, taker or self.taker)
        return int(cost), int(reason)


def _balances(token: Any, *holders: Any) -> list[int]:
    return [int(token.balanceOf(h)) for h in holders]


def _deltas(token: Any, holders: tuple[Any, ...], before: list[int]) -> list[int]:
    return [a - b for a, b in zip(_balances(token, *holders), before, strict=True)]


# ------------------------------------------------------------------------ fixtures ----


@pytest.fixture(scope="module")
def market(suite: Suite) -> Any:
    """The market of the default suite (deployed by the library): 0.1% fee, and the
    suite's baskets tradable."""
    return brownie_contract("ShareMarket", suite.market.address)


@pytest.fixture(scope="module")
def free_market(registry: Any, stablecoin: Any, router: Any, deployer: Any) -> Any:
    """A market of the same suite that takes no fee."""
    return project.get_loaded_projects()[0].ShareMarket.deploy(
        registry, stablecoin, router, ZERO, 0, {"from": deployer}
    )


@pytest.fixture(scope="module")
def share(node: tuple[int, Any]) -> Any:
    return node[1]


@pytest.fixture(scope="module", autouse=True)
def traders(
    market: Any, free_market: Any, share: Any, stablecoin: Any, operator: Any, deployer: Any,
    investor: Any, investor2: Any,
) -> None:  # fmt: skip
    """Maker and taker each hold shares and stablecoin and have approved both markets."""
    for who in (investor, investor2):
        share.transfer(who, START_SHARES, {"from": operator})
        stablecoin.mint(who, START_STABLECOIN, {"from": deployer})
        for spender in (market, free_market):
            share.approve(spender, 2**256 - 1, {"from": who})
            stablecoin.approve(spender, 2**256 - 1, {"from": who})


@pytest.fixture(autouse=True)
def markets_hold_nothing(
    market: Any, free_market: Any, share: Any, stablecoin: Any
) -> Iterator[None]:
    yield
    for held in (market, free_market):
        assert share.balanceOf(held) == 0
        assert stablecoin.balanceOf(held) == 0


@pytest.fixture
def desk(market: Any, share: Any, investor: Any, investor2: Any) -> Desk:
    return Desk(market, share, investor, investor2)


@pytest.fixture(scope="module")
def deploy_market(registry: Any, router: Any, deployer: Any) -> Callable[..., Any]:
    def _deploy(stablecoin: Any, basket_factory: Any = ZERO, fee_bps: int = FEE_BPS) -> Any:
        return project.get_loaded_projects()[0].ShareMarket.deploy(
            registry, stablecoin, router, basket_factory, fee_bps, {"from": deployer}
        )

    return _deploy


# ----------------------------------------------------------------- full fills ----


def test_fill__sell_order_in_full__taker_pays_cost_maker_gets_cost_less_fee(
    desk: Desk, market: Any, share: Any, stablecoin: Any, investor: Any, investor2: Any,
    treasury: Any,
) -> None:  # fmt: skip
    maker, taker = investor, investor2
    order = desk.order()  # 10 shares at 2.5: 25 stablecoin, 0.125 of fee
    parties = (maker, taker, treasury, market)
    shares_before, coins_before = _balances(share, *parties), _balances(stablecoin, *parties)
    signature = sign_order(market, order)
    assert (
        market.fill.call(as_tuple(order), signature, order["amount"], {"from": taker}) == 25 * USDC
    )
    tx = desk.fill(order, order["amount"], signature=signature)
    shares_delta = _deltas(share, parties, shares_before)
    coins_delta = _deltas(stablecoin, parties, coins_before)
    assert shares_delta == [-10 * SHARES, 10 * SHARES, 0, 0]
    assert coins_delta == [
        25 * USDC - 25 * USDC * FEE_BPS // 10_000,
        -25 * USDC,
        25 * USDC * FEE_BPS // 10_000,
        0,
    ]
    digest = market.order_hash(as_tuple(order))
    assert dict(tx.events["OrderFilled"]) == {
        "order_hash": digest,
        "maker": maker,
        "taker": taker,
        "share": share,
        "sell": True,
        "amount": 10 * SHARES,
        "cost": 25 * USDC,
        "fee": 25 * USDC * FEE_BPS // 10_000,
        "remaining": 0,
    }
    assert market.filled(digest) == 10 * SHARES


def test_fill__buy_order_in_full__maker_pays_cost_taker_gets_cost_less_fee(
    desk: Desk, market: Any, share: Any, stablecoin: Any, investor: Any, investor2: Any,
    treasury: Any,
) -> None:  # fmt: skip
    maker, taker = investor, investor2
    order = desk.order(sell=False)
    parties = (maker, taker, treasury, market)
    shares_before, coins_before = _balances(share, *parties), _balances(stablecoin, *parties)
    tx = desk.fill(order, order["amount"])
    shares_delta = _deltas(share, parties, shares_before)
    coins_delta = _deltas(stablecoin, parties, coins_before)
    assert shares_delta == [10 * SHARES, -10 * SHARES, 0, 0]
    assert coins_delta == [
        -25 * USDC,
        25 * USDC - 25 * USDC * FEE_BPS // 10_000,
        25 * USDC * FEE_BPS // 10_000,
        0,
    ]
    event = tx.events["OrderFilled"]
    assert (event["sell"], event["cost"], event["fee"], event["remaining"]) == (
        False,
        25 * USDC,
        25 * USDC * FEE_BPS // 10_000,
        0,
    )


def test_fill__fee_free_market__seller_gets_the_whole_cost(
    free_market: Any, share: Any, stablecoin: Any, investor: Any, investor2: Any, treasury: Any,
) -> None:  # fmt: skip
    desk = Desk(free_market, share, investor, investor2)
    before = _balances(stablecoin, investor, treasury)
    tx = desk.fill(desk.order(), 10 * SHARES)
    assert tx.events["OrderFilled"]["fee"] == 0
    after = _balances(stablecoin, investor, treasury)
    assert (after[0] - before[0], after[1] - before[1]) == (25 * USDC, 0)


def test_fill__fee_goes_to_the_treasury_the_router_names_at_fill_time(
    desk: Desk, router: Any, stablecoin: Any, deployer: Any, stranger: Any, treasury: Any,
) -> None:  # fmt: skip
    router.set_treasury(stranger, {"from": deployer})
    before = _balances(stablecoin, stranger, treasury)
    desk.fill(desk.order(), 10 * SHARES)
    after = _balances(stablecoin, stranger, treasury)
    assert (after[0] - before[0], after[1] - before[1]) == (25 * USDC * FEE_BPS // 10_000, 0)


# --------------------------------------------------------------- partial fills ----


def test_fill__in_parts__tracks_what_remains_until_filled(desk: Desk, market: Any) -> None:
    order = desk.order(min_fill=2 * SHARES)
    digest = market.order_hash(as_tuple(order))
    for amount, remaining in ((3, 7), (4, 3), (3, 0)):
        tx = desk.fill(order, amount * SHARES)
        event = tx.events["OrderFilled"]
        assert (event["amount"], event["cost"], event["remaining"]) == (
            amount * SHARES,
            amount * 2_500_000,
            remaining * SHARES,
        )
        assert market.filled(digest) == (10 - remaining) * SHARES


def test_fill__below_min_fill__reverts_unless_it_takes_the_whole_remainder(desk: Desk) -> None:
    order = desk.order(min_fill=3 * SHARES)
    desk.fill(order, 7 * SHARES)  # leaves exactly min_fill
    with brownie.reverts("market: fill below min_fill"):
        desk.fill(order, 2 * SHARES)
    assert desk.fill(order, 3 * SHARES).events["OrderFilled"]["remaining"] == 0


def test_fill__first_fill_below_min_fill__reverts(desk: Desk) -> None:
    order = desk.order(min_fill=3 * SHARES)
    with brownie.reverts("market: fill below min_fill"):
        desk.fill(order, 3 * SHARES - 1)
    desk.fill(order, 3 * SHARES)


def test_fill__leaving_a_remainder_below_min_fill__reverts(desk: Desk) -> None:
    order = desk.order(min_fill=3 * SHARES)
    with brownie.reverts("market: fill leaves dust below min_fill"):
        desk.fill(order, 8 * SHARES)  # would leave 2 < 3
    with brownie.reverts("market: fill leaves dust below min_fill"):
        desk.fill(order, 10 * SHARES - 1)  # would leave 1 base unit
    assert desk.fill(order, 7 * SHARES).events["OrderFilled"]["remaining"] == 3 * SHARES


def test_fill__min_fill_above_amount__only_the_whole_order_fills(desk: Desk) -> None:
    order = desk.order(min_fill=20 * SHARES)
    with brownie.reverts("market: fill below min_fill"):
        desk.fill(order, 9 * SHARES)
    assert desk.fill(order, 10 * SHARES).events["OrderFilled"]["remaining"] == 0


def test_fill__above_what_remains__reverts(desk: Desk) -> None:
    order = desk.order()
    with brownie.reverts("market: amount above remaining"):
        desk.fill(order, 10 * SHARES + 1)
    desk.fill(order, 4 * SHARES)
    with brownie.reverts("market: amount above remaining"):
        desk.fill(order, 6 * SHARES + 1)


def test_fill__of_nothing__reverts(desk: Desk) -> None:
    with brownie.reverts("market: amount is zero"):
        desk.fill(desk.order(), 0)


def test_fill__replay_of_a_fully_filled_order__reverts(
    desk: Desk, stablecoin: Any, investor2: Any
) -> None:
    order = desk.order()
    signature = sign_order(desk.market, order)
    desk.fill(order, 10 * SHARES, signature=signature)
    before = stablecoin.balanceOf(investor2)
    with brownie.reverts("market: order fully filled"):
        desk.fill(order, 10 * SHARES, signature=signature)
    assert stablecoin.balanceOf(investor2) == before


# ------------------------------------------------------------------ validity ----


def test_fill__after_expiry__reverts(desk: Desk) -> None:
    expiry = get_now() + 100
    order = desk.order(expiry=expiry)
    set_next_timestamp(expiry)
    desk.fill(order, 5 * SHARES)  # the last second it is valid
    mine_at(expiry + 1)
    with brownie.reverts("market: order expired"):
        desk.fill(order, 5 * SHARES)


def test_cancel__voids_the_order_and_logs(desk: Desk, market: Any, investor: Any) -> None:
    order = desk.order()
    desk.fill(order, 4 * SHARES)
    tx = market.cancel(as_tuple(order), {"from": investor})
    digest = market.order_hash(as_tuple(order))
    assert dict(tx.events["OrderCancelled"]) == {"order_hash": digest, "maker": investor}
    assert market.cancelled(digest)
    with brownie.reverts("market: order cancelled"):
        desk.fill(order, 6 * SHARES)


def test_cancel__by_anyone_but_the_maker__reverts(
    desk: Desk, market: Any, investor2: Any, stranger: Any
) -> None:
    order = desk.order()
    for caller in (investor2, stranger):
        with brownie.reverts("market: not the maker"):
            market.cancel(as_tuple(order), {"from": caller})
    desk.fill(order, 10 * SHARES)  # still good


def test_cancel__twice__reverts(desk: Desk, market: Any, investor: Any) -> None:
    order = desk.order()
    market.cancel(as_tuple(order), {"from": investor})
    with brownie.reverts("market: order cancelled"):
        market.cancel(as_tuple(order), {"from": investor})


def test_cancel_all__voids_every_earlier_order_and_new_ones_fill(
    desk: Desk, market: Any, investor: Any,
) -> None:  # fmt: skip
    old = [desk.order(), desk.order(sell=False)]
    tx = market.cancel_all({"from": investor})
    assert dict(tx.events["AllOrdersCancelled"]) == {"maker": investor, "nonce": 1}
    assert market.nonces(investor) == 1
    for order in old:
        with brownie.reverts("market: nonce is not the maker's current one"):
            desk.fill(order, 10 * SHARES)
    new = desk.order()
    assert new["nonce"] == 1
    desk.fill(new, 10 * SHARES)


def test_cancel_all__of_one_maker__leaves_other_makers_orders_valid(
    desk: Desk, market: Any, share: Any, investor: Any, investor2: Any, stranger: Any,
) -> None:  # fmt: skip
    other = Desk(market, share, investor2, investor, TAKER_KEY)
    order = other.order()
    market.cancel_all({"from": investor})
    other.fill(order, 10 * SHARES)
    assert market.nonces(investor2) == 0


# ---------------------------------------------------------------- signatures ----


def test_fill__signed_by_someone_else__reverts(desk: Desk) -> None:
    order = desk.order()
    with brownie.reverts("market: bad signature"):
        desk.fill(order, 10 * SHARES, signature=sign_order(desk.market, order, STRANGER_KEY))


def test_fill__order_changed_after_signing__reverts(desk: Desk) -> None:
    order = desk.order()
    signature = sign_order(desk.market, order)
    cheaper = {**order, "price_per_share": order["price_per_share"] - 1}
    with brownie.reverts("market: bad signature"):
        desk.fill(cheaper, 10 * SHARES, signature=signature)


def test_fill__high_s_twin_of_a_good_signature__reverts(desk: Desk) -> None:
    order = desk.order()
    signature = sign_order(desk.market, order)
    with brownie.reverts("market: bad signature"):
        desk.fill(order, 10 * SHARES, signature=high_s_twin(signature))
    desk.fill(order, 10 * SHARES, signature=signature)


def test_fill__malformed_signature__reverts(desk: Desk) -> None:
    order = desk.order()
    good = sign_order(desk.market, order)
    for bad in (good[:64], b"", good[:64] + b"\x1d", b"\x00" * 65):
        with brownie.reverts("market: bad signature"):
            desk.fill(order, 10 * SHARES, signature=bad)


def test_fill__signed_for_another_market__reverts(desk: Desk, free_market: Any) -> None:
    order = desk.order()
    with brownie.reverts("market: bad signature"):
        desk.fill(order, 10 * SHARES, signature=sign_order(free_market, order))


def test_fill__by_the_maker_itself__reverts(desk: Desk, investor: Any) -> None:
    with brownie.reverts("market: taker is the maker"):
        desk.fill(desk.order(), 10 * SHARES, taker=investor)


def test_order_hash__is_the_eip712_digest_eth_account_signs(desk: Desk, market: Any) -> None:
    order = desk.order()
    signable = encode_typed_data(full_message=_typed_data(market, order))
    expected = keccak(b"\x19" + signable.version + signable.header + signable.body)
    assert market.order_hash(as_tuple(order)) == "0x" + expected.hex()


def test_eip712_domain__is_edgeshare_market_v1_on_this_market(market: Any) -> None:
    fields, name, version, chain_id, contract, _salt, _extensions = market.eip712Domain()
    assert (fields, name, version, chain_id, contract) == (
        "0x0f",
        "EdgeShare Market",
        "1",
        web3.eth.chain_id,
        market.address,
    )


# ------------------------------------------------------------- the maker's leg ----


@pytest.mark.parametrize("sell", [True, False], ids=["sell", "buy"])
def test_fill__maker_balance_gone__reverts_and_check_reports_it(
    desk: Desk, share: Any, stablecoin: Any, investor: Any, stranger: Any, sell: bool,
) -> None:  # fmt: skip
    order = desk.order(sell=sell)
    token = share if sell else stablecoin
    token.transfer(stranger, token.balanceOf(investor), {"from": investor})
    assert desk.check(order, 10 * SHARES) == (25 * USDC, CODE["MAKER_BALANCE"])
    with brownie.reverts("market: maker balance too low"):
        desk.fill(order, 10 * SHARES)


@pytest.mark.parametrize("sell", [True, False], ids=["sell", "buy"])
def test_fill__maker_allowance_gone__reverts_and_check_reports_it(
    desk: Desk, market: Any, share: Any, stablecoin: Any, investor: Any, sell: bool,
) -> None:  # fmt: skip
    order = desk.order(sell=sell)
    token = share if sell else stablecoin
    token.approve(market, 10 * SHARES - 1 if sell else 25 * USDC - 1, {"from": investor})
    assert desk.check(order, 10 * SHARES) == (25 * USDC, CODE["MAKER_ALLOWANCE"])
    with brownie.reverts("market: maker allowance too low"):
        desk.fill(order, 10 * SHARES)


def test_fill__after_a_share_permit__needs_no_approval_transaction(
    desk: Desk, market: Any, share: Any, investor: Any, investor2: Any,
) -> None:  # fmt: skip
    maker, taker = investor, investor2
    share.approve(market, 0, {"from": maker})
    order = desk.order()
    assert desk.check(order, 10 * SHARES)[1] == CODE["MAKER_ALLOWANCE"]
    deadline = get_now() + 3_600
    permit = sign_permit(
        share, MAKER_KEY, maker.address, market.address, 10 * SHARES, share.nonces(maker), deadline
    )
    # the taker sends the maker's permit, then fills: the maker sent nothing
    share.permit(
        maker, market, 10 * SHARES, deadline, permit.v, permit.r.to_bytes(32, "big"),
        permit.s.to_bytes(32, "big"), {"from": taker},
    )  # fmt: skip
    desk.fill(order, 10 * SHARES)
    assert share.allowance(maker, market) == 0
    assert share.balanceOf(taker) == START_SHARES + 10 * SHARES


# ------------------------------------------------------------------ tradable ----


def test_is_tradable__the_suites_node_shares_only(
    market: Any, share: Any, stablecoin: Any, stranger: Any
) -> None:
    assert market.is_tradable(share)
    assert not market.is_tradable(stablecoin)  # a token without NODE_ID
    assert not market.is_tradable(stranger)  # no code
    assert not market.is_tradable(market)  # code, but no NODE_ID


def test_fill__token_not_of_the_suite__reverts(desk: Desk, stablecoin: Any) -> None:
    with brownie.reverts("market: not a suite share"):
        desk.fill(desk.order(share=stablecoin.address), 10 * SHARES)


def test_fill__share_of_another_suite__reverts(
    desk: Desk, market: Any, deploy: Callable[..., Suite], deployer: Any, investor: Any,
    attestor: Any,
) -> None:  # fmt: skip
    """Another suite's node 1 answers NODE_ID 1 (this registry lists another token for it)
    and its node 2 an id this registry does not know (its share_token reverts)."""
    other = deploy()
    tx = Transactor(web3, Signer(address=deployer.address))
    spec = NodeSpec(
        operator=investor.address,
        attestor=attestor.address,
        shares=10 * SHARES,
        price_per_1k=1_000,
        operator_cut_bps=0,
        region="Lima",
    )
    foreign = [
        other.registry.call("share_token", send_register_node(tx, other, spec)) for _ in range(2)
    ]
    for token in foreign:
        assert not market.is_tradable(token)
        with brownie.reverts("market: not a suite share"):
            desk.fill(desk.order(share=token), SHARES)


def test_fill__basket_of_the_suites_factory__trades(
    market: Any, suite: Suite, share: Any, stablecoin: Any, investor: Any, investor2: Any
) -> None:
    """A basket of the suite's BasketFactory is tradable (a token it did not create is
    not); units move maker to taker like shares, and the market holds nothing."""
    factory = brownie_contract("BasketFactory", suite.baskets.address)
    tx = factory.create_basket("Basket", "BSK", [share], [SHARES], {"from": investor})
    basket = brownie_contract("Basket", tx.events["BasketCreated"]["basket"])
    assert market.is_tradable(basket) and not market.is_tradable(stablecoin)
    share.approve(basket, 10 * SHARES, {"from": investor})
    basket.mint(10 * SHARES, {"from": investor})
    basket.approve(market, 2**256 - 1, {"from": investor})
    stablecoin.approve(market, 2**256 - 1, {"from": investor2})
    desk = Desk(market, basket, investor, investor2)
    desk.fill(desk.order(), 10 * SHARES)
    assert basket.balanceOf(investor2) == 10 * SHARES
    assert _balances(basket, investor, market) == [0, 0]


# ----------------------------------------------------------------- rounding ----


def test_fill__cost_rounds_for_the_maker__sell_up_buy_down(desk: Desk) -> None:
    amount, price = 1_500_000_000_000_000_001, 1_000_001  # amount * price is not whole
    assert amount * price % SHARES != 0
    sell, buy = (
        desk.order(amount=amount, price_per_share=price),
        desk.order(amount=amount, price_per_share=price, sell=False),
    )
    sold = desk.fill(sell, amount).events["OrderFilled"]["cost"]
    bought = desk.fill(buy, amount).events["OrderFilled"]["cost"]
    assert (sold, bought) == (1_500_002, 1_500_001)
    assert sold * SHARES >= amount * price >= bought * SHARES  # each maker's limit holds
    assert sold - bought == 1


def test_fill__whole_cost__does_not_round(desk: Desk) -> None:
    sell, buy = desk.order(amount=3 * SHARES // 2), desk.order(amount=3 * SHARES // 2, sell=False)
    assert desk.fill(sell, sell["amount"]).events["OrderFilled"]["cost"] == 3_750_000
    assert desk.fill(buy, buy["amount"]).events["OrderFilled"]["cost"] == 3_750_000


def test_fill__buy_that_rounds_to_nothing__reverts(desk: Desk) -> None:
    order = desk.order(sell=False, price_per_share=1)  # 1 base unit per whole share
    with brownie.reverts("market: cost is zero"):
        desk.fill(order, SHARES - 1)
    assert desk.fill(order, SHARES).events["OrderFilled"]["cost"] == 1


def test_fill__fee_rounds_down(desk: Desk, stablecoin: Any, treasury: Any) -> None:
    order = desk.order(price_per_share=1_999)  # 10 shares: cost 19,990, fee (0.1%) 19.99
    before = stablecoin.balanceOf(treasury)
    event = desk.fill(order, 10 * SHARES).events["OrderFilled"]
    assert (event["cost"], event["fee"]) == (19_990, 19)
    assert stablecoin.balanceOf(treasury) - before == 19


# ----------------------------------------------------------- hostile stablecoin ----


def test_fill__fee_on_transfer_stablecoin__reverts(
    deploy_market: Callable[..., Any], share: Any, deployer: Any, investor: Any, investor2: Any,
) -> None:  # fmt: skip
    """A market priced in a token that burns 1% of each transfer (the suite's shares, a
    FeeOnTransferToken as the stablecoin): the seller would get less than it sold for."""
    token = project.get_loaded_projects()[0].FeeOnTransferToken.deploy({"from": deployer})
    market = deploy_market(token)
    token.mint(investor2, START_STABLECOIN, {"from": deployer})
    token.approve(market, 2**256 - 1, {"from": investor2})
    share.approve(market, 2**256 - 1, {"from": investor})
    desk = Desk(market, share, investor, investor2)
    order = desk.order()
    assert desk.check(order, 10 * SHARES) == (25 * USDC, CODE["OK"])  # check cannot foresee it
    with brownie.reverts("market: stablecoin transfer short"):
        desk.fill(order, 10 * SHARES)


# ------------------------------------------------------------- construction ----


def test_constructor__fee_above_one_percent__reverts(
    deploy_market: Callable[..., Any], stablecoin: Any
) -> None:
    with brownie.reverts("market: fee above cap"):
        deploy_market(stablecoin, fee_bps=101)
    assert deploy_market(stablecoin, fee_bps=100).FEE_BPS() == 100


def test_constructor__addresses_without_code__revert(
    registry: Any, stablecoin: Any, router: Any, deployer: Any, stranger: Any,
) -> None:  # fmt: skip
    market_type = project.get_loaded_projects()[0].ShareMarket
    for args, message in (
        ((stranger, stablecoin, router, ZERO), "market: registry has no code"),
        ((registry, stranger, router, ZERO), "market: stablecoin has no code"),
        ((registry, stablecoin, stranger, ZERO), "market: router has no code"),
        ((registry, stablecoin, router, stranger), "market: basket factory has no code"),
    ):
        with brownie.reverts(message):
            market_type.deploy(*args, FEE_BPS, {"from": deployer})


def test_immutables__name_the_suite(
    market: Any, registry: Any, stablecoin: Any, router: Any, suite: Suite
) -> None:
    assert (market.REGISTRY(), market.STABLECOIN(), market.ROUTER()) == (
        registry,
        stablecoin,
        router,
    )
    assert (market.BASKET_FACTORY(), market.FEE_BPS()) == (suite.baskets.address, FEE_BPS)


# ---------------------------------------------------------- check agrees with fill ----


def _case(
    name: str, desk: Desk, stablecoin: Any, stranger: Any
) -> tuple[dict[str, Any], bytes, int, Any]:
    """(order, signature, amount, taker) that `check` should report as ``name``."""
    market, maker, taker = desk.market, desk.maker, desk.taker
    fields: dict[str, Any] = {}
    amount, key = 10 * SHARES, MAKER_KEY
    if name == "NOT_TRADABLE":
        fields["share"] = stablecoin.address
    elif name == "EXPIRED":
        fields["expiry"] = get_now() - 10
    elif name == "COST_OVERFLOW":
        fields["price_per_share"] = 2**255
    elif name == "ZERO_COST":
        fields.update(sell=False, price_per_share=1)
        amount = SHARES // 10
    elif name in ("BELOW_MIN_FILL", "DUST"):
        fields["min_fill"] = 2 * SHARES
        amount = SHARES if name == "BELOW_MIN_FILL" else 9 * SHARES
    elif name == "MAKER_BALANCE":
        fields["amount"] = amount = START_SHARES + 1
    order = desk.order(**fields)
    if name == "OLD_NONCE":
        market.cancel_all({"from": maker})
    elif name == "BAD_SIGNATURE":
        key = STRANGER_KEY
    elif name == "CANCELLED":
        market.cancel(as_tuple(order), {"from": maker})
    elif name == "SELF_TRADE":
        taker = maker
    elif name == "ZERO_AMOUNT":
        amount = 0
    elif name == "FILLED":
        desk.fill(order, amount)
    elif name == "OVERFILL":
        amount += 1
    elif name == "MAKER_ALLOWANCE":
        desk.share.approve(market, 0, {"from": maker})
    elif name == "TAKER_BALANCE":
        taker = stranger
    elif name == "TAKER_ALLOWANCE":
        stablecoin.approve(market, 0, {"from": taker})
    return order, sign_order(market, order, key), amount, taker


@pytest.mark.parametrize("name", list(REASONS))
def test_check__agrees_with_fill__for_every_reason(
    desk: Desk, stablecoin: Any, stranger: Any, name: str
) -> None:
    order, signature, amount, taker = _case(name, desk, stablecoin, stranger)
    cost, reason = desk.check(order, amount, taker, signature)
    assert reason == CODE[name]
    if name == "OK":
        assert (
            desk.fill(order, amount, taker, signature).events["OrderFilled"]["cost"]
            == cost
            == 25 * USDC
        )
    else:
        with brownie.reverts(MESSAGE[name]):
            desk.fill(order, amount, taker, signature)


# ------------------------------------------------------------------ property ----


def _expected_reason(remaining: int, min_fill: int, amount: int, cost: int) -> str:
    """What the market's rules say of a fill of ``amount`` with ``remaining`` left."""
    if amount == 0:
        return "ZERO_AMOUNT"
    if remaining == 0:
        return "FILLED"
    if amount > remaining:
        return "OVERFILL"
    if amount < min_fill and amount != remaining:
        return "BELOW_MIN_FILL"
    if 0 < remaining - amount < min_fill:
        return "DUST"
    if cost == 0:
        return "ZERO_COST"
    return "OK"


@given(
    sell=st.booleans(),
    amount=st.integers(1, 50 * SHARES),
    price=st.integers(1, 100 * USDC),
    min_fill_share=st.integers(0, 100),
    data=st.data(),
)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
def test_fills__any_sequence__never_overfills_and_moves_exactly_the_costs(
    market: Any, share: Any, stablecoin: Any, investor: Any, investor2: Any, treasury: Any,
    sell: bool, amount: int, price: int, min_fill_share: int, data: st.DataObject,
) -> None:  # fmt: skip
    """Partial fills of one order in any sizes: what fills never exceeds the order, the
    buyer pays exactly the sum of the costs, the seller gets it less the fees, the
    treasury the fees, and neither token is created, lost or left in the market."""
    brownie.chain.snapshot()
    try:
        desk = Desk(market, share, investor, investor2)
        min_fill = amount * min_fill_share // 100
        order = desk.order(sell=sell, amount=amount, price_per_share=price, min_fill=min_fill)
        signature = sign_order(market, order)
        digest = market.order_hash(as_tuple(order))
        seller, buyer = (investor, investor2) if sell else (investor2, investor)
        holders = (investor, investor2, treasury, market)
        shares_total, coins_total = (
            sum(_balances(share, *holders)),
            sum(_balances(stablecoin, *holders)),
        )
        (seller_coins, buyer_coins, treasury_coins) = _balances(stablecoin, seller, buyer, treasury)
        buyer_shares = share.balanceOf(buyer)
        remaining, filled, costs, fees = amount, 0, 0, 0
        for _ in range(data.draw(st.integers(1, 5), label="fills")):
            size = data.draw(
                st.one_of(st.just(remaining), st.just(min_fill), st.integers(0, remaining + 1)),
                label="size",
            )
            cost = get_cost(size, price, sell)
            expected = _expected_reason(remaining, min_fill, size, cost)
            assert desk.check(order, size, signature=signature) == (
                cost if expected == "OK" else 0,
                CODE[expected],
            )
            if expected != "OK":
                continue
            event = desk.fill(order, size, signature=signature).events["OrderFilled"]
            remaining, filled = remaining - size, filled + size
            costs, fees = costs + cost, fees + get_fee(cost)
            assert (event["cost"], event["fee"], event["remaining"]) == (
                cost,
                get_fee(cost),
                remaining,
            )
        assert market.filled(digest) == filled <= amount
        assert share.balanceOf(buyer) - buyer_shares == filled
        assert _balances(stablecoin, seller, buyer, treasury) == [
            seller_coins + costs - fees,
            buyer_coins - costs,
            treasury_coins + fees,
        ]
        assert sum(_balances(share, *holders)) == shares_total
        assert sum(_balances(stablecoin, *holders)) == coins_total
        assert _balances(share, market) == _balances(stablecoin, market) == [0]
    finally:
        brownie.chain.revert()
