"""The capital contracts, driven at random beside an exact model: offerings, market
fills and a basket, over three nodes whose revenue keeps arriving.

One suite (deployed by the library: 1-second epochs, revenue vesting over ``UNLOCK``)
with three nodes run by one operator; three investors hold some shares of each and
plenty of stablecoin; a basket over the three nodes with uneven weights. Each step is a
user action on the real contracts and the same action on the model, which keeps, in
integers, what every party (accounts and contracts) holds of the stablecoin, of each
node's shares and of the basket's units, and, in fractions, what each holder of each
revenue-bearing token has earned (``Book``: ``share_accounting`` exactly, integer
vesting checkpointed when the contract checkpoints, pro-rata in fractions).

- Offerings: the operator offers shares of a node (odd prices, soft cap below or at the
  hard cap, an investor cap or none, a start now or soon, a short or long window); the
  three investors commit and cancel; time runs to the second before, at and after the
  start and the end, where a commit, a cancel, a delivery, a refund or ``finish`` is
  sent; deliveries and refunds by the investor or by a keeper (``*_for``); revenue that
  arrives while the shares are escrowed is paid to the operator by
  ``claim_for(offering)``. Every refused call is refused with the model's reason.
- Market: sell and buy orders signed by the operator or an investor (EIP-712, as the
  unit tests sign them) for any node share or the basket, at prices from 1 base unit
  to an overflowing one, with or without ``min_fill``, far or soon expiring, some
  signed by the wrong key; fills of the whole rest, a part, below ``min_fill``, leaving
  dust, over the rest, of nothing, replayed after a full fill, after ``cancel`` or
  ``cancel_all``, by the maker itself, with the maker's or the taker's allowance cut.
  ``check`` gives the model's (cost, reason) one second before the fill is sent; a
  refused fill reverts with the reason's message and moves nothing; a fill moves
  exactly ``amount * price / 10**18`` (up for a sell order, down for a buy order), the
  fee (rounded down) from the seller's leg to the treasury.
- Basket: mint (rounded up), redeem (rounded down), transfer, harvest, claims, and
  portfolio claims through the PortfolioClaimer over any list of the tokens (repeats
  included), to the caller or another address.
- Revenue: signed usage reports settled by the payer and finalized once their challenge
  window has passed (every run starts with one per node), and vouchers of a customer's
  payment channels redeemed by the operator, which the router splits at once (revenue
  without an hour's wait); either way the shares vest it over ``UNLOCK``. The router's
  fee and cut are withdrawn.

After every step: nothing created or lost (every party's stablecoin, shares and units
are the model's; the stablecoin outside the payer is what it had plus the revenue paid
in; each node's supply is constant and the sum of the balances; the basket's supply is
the sum of its holders'); every holder of every token can claim what the model says,
within the documented rounding, and every token holds all that its holders can claim
plus what is vesting; refunds of a failed offering (and before the end, every
commitment) are covered; a succeeded offering holds the undelivered shares; the basket's
holders can claim what it harvested less what they claimed less a few base units of
dust, and it holds ``floor(supply * weight / 10**18)`` of each component; the market's
``filled`` of every order is the sum of its fills and at most its amount; the market and
the claimer hold nothing.

Each run starts (``start``) with basket units minted, revenue on its way, an offering
with its first commitments and a few signed orders, so that short runs still reach
fills, deliveries, escrow and portfolio claims. The chain is snapshotted and reverted
around each run as in the accounting machine, whose batched reads (``read_all``) and
patient confirmation (``_patient``) this reuses. ``EDGESHARE_FUZZ=long`` (``make fuzz``)
runs the long profile; ``EDGESHARE_FUZZ_STATS=1`` prints how often each call ended how.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar

import brownie
import hypothesis
import pytest
from brownie import accounts, history, web3
from brownie.network.account import _PrivateKeyAccount
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from edgeshare.attestation import UsageReport, sign
from edgeshare.chain import build_dev_keys
from edgeshare.channels import Voucher, fetch_channels_domain, sign_voucher
from edgeshare.signer import Signer
from edgeshare.suite import NodeSpec, fetch_domain_of, send_register_node
from edgeshare.tx import Transactor
from tests.conftest import ORDER_TYPE, SHARES, USDC, brownie_contract, get_now, mine_at
from tests.fuzz.test_accounting_state import _patient, read_all

LONG = os.environ.get("EDGESHARE_FUZZ") == "long"
PROFILE = settings(
    verbosity=hypothesis.Verbosity.verbose
    if os.environ.get("EDGESHARE_FUZZ_VERBOSE")
    else hypothesis.Verbosity.normal,
    # hypothesis caps its first 10 examples at a few steps each, so only the later ones
    # run the machine for long
    max_examples=250 if LONG else 20,
    stateful_step_count=100 if LONG else 70,
    deadline=None,
    database=None,
)

UNIT = 10**18  # a whole share, a whole basket unit
MAGNITUDE = 2**128
MAX = 2**256 - 1
UNLOCK = 600  # seconds over which a node's revenue vests
WINDOW = 3_600  # the router's challenge period (its minimum)
PROTOCOL_FEE_BPS, CUT_BPS = 500, 1_000
MARKET_FEE_BPS = 25  # not the default 10: the test reads nothing it did not choose
OFFERING_FEE_BPS = 250
PRICE_PER_1K = 1_000  # revenue = inferences
SUPPLY = 1_000 * SHARES  # of each node
WEIGHTS = [SHARES, 2 * SHARES + 7, SHARES // 3]  # share base units per basket unit
MIN_SUPPLY = 10**12  # Basket.MIN_SUPPLY
FAR_EXPIRY = 2**63
FUNDS = 10**12  # each trader's stablecoin: 1,000,000 USDC
# each investor's shares of each node, taken from the operator at the start
HOLDINGS = [60 * SHARES + 1, 45 * SHARES + 123_456_789, 33 * SHARES + 7]

# ShareMarket's reason codes, in _quote's order, and fill's revert messages
OK, NOT_TRADABLE, EXPIRED, CANCELLED, OLD_NONCE, BAD_SIGNATURE, SELF_TRADE = range(7)
ZERO_AMOUNT, FILLED, OVERFILL, BELOW_MIN_FILL, DUST, ZERO_COST, COST_OVERFLOW = range(7, 14)
MAKER_BALANCE, MAKER_ALLOWANCE, TAKER_BALANCE, TAKER_ALLOWANCE = range(14, 18)
FILL_MESSAGES = [
    "",
    "market: not a suite share",
    "market: order expired",
    "market: order cancelled",
    "market: nonce is not the maker's current one",
    "market: bad signature",
    "market: taker is the maker",
    "market: amount is zero",
    "market: order fully filled",
    "market: amount above remaining",
    "market: fill below min_fill",
    "market: fill leaves dust below min_fill",
    "market: cost is zero",
    "market: cost overflows",
    "market: maker balance too low",
    "market: maker allowance too low",
    "market: taker balance too low",
    "market: taker allowance too low",
]
# stablecoin base units per whole share; the last overflows amount * price
ORDER_PRICES = [1, 999_999, 2_500_000, 3_333_333, 10**13, 2**200]
OFFER_PRICES = [2 * USDC, 3_333_333, 1_000_001, 7]
MAX_OFFERINGS = 3
COMMITS = st.lists(
    st.tuples(
        st.integers(0, 2),  # investor
        st.sampled_from(["room", "soft", "cap", "one"] + ["pct"] * 5),
        # percent of the room left under the hard cap
        st.sampled_from([1, 5, 10, 20, 35, 50, 60, 110]),
    ),
    min_size=1,
    max_size=3,
)
OFFERING_TERMS = st.fixed_dictionaries(
    {
        "node": st.integers(0, 2),
        "size": st.sampled_from([10 * SHARES, 37 * SHARES + 12_345, 100 * SHARES]),
        "price": st.sampled_from(OFFER_PRICES),
        "hard_pct": st.integers(20, 100),
        "soft_pct": st.sampled_from([1, 10, 30, 60, 100, 100]),
        "cap_pct": st.sampled_from([0, 0, 40, 100]),
        "delay": st.sampled_from([0, 2, 6]),
        "duration": st.sampled_from([8, 60, 600, 2 * WINDOW, 6 * WINDOW]),
    }
)
MAX_ORDERS = 8
ORDER_TERMS = st.fixed_dictionaries(
    {
        "maker": st.integers(0, 3),
        # 3: the basket; 4: the stablecoin, not tradable
        "token": st.sampled_from([0, 1, 2, 3] * 3 + [4]),
        "sell": st.booleans(),
        "pct": st.sampled_from([1, 10, 25, 50, 77, 100, 100, 10, 50, 150]),
        "price": st.sampled_from(ORDER_PRICES[:4] * 4 + ORDER_PRICES[4:]),
        "min_fill": st.sampled_from(["none", "none", "none", "quarter", "half", "all", "above"]),
        "expiry": st.sampled_from(["far"] * 6 + ["now", "soon", "later"]),
        "signer": st.sampled_from(["maker"] * 9 + ["other"]),
    }
)
# what the steps did, over a whole test (EDGESHARE_FUZZ_STATS=1 prints it)
OUTCOMES: Counter[str] = Counter()


class Book:
    """One token's ``share_accounting``: integer vesting exactly as the contract does it,
    checkpointed exactly when the contract checkpoints, then pro-rata in fractions."""

    def __init__(self, unlock: int, balances: dict[str, int], max_supply: int) -> None:
        self.unlock = unlock
        self.balances = dict(balances)
        self.supply = sum(balances.values())
        self.max_supply = max_supply
        self.earned: dict[str, Fraction] = {}
        self.claimed: dict[str, int] = {}
        self.unvested = 0
        self.vest_last = 0
        self.vest_end = 0
        self.distributed = 0
        self.changes = 0  # balance changes: each may cost 1/2**128 of rounding per unit

    def vested(self, now: int) -> int:
        if self.unvested == 0:
            return 0
        if now >= self.vest_end:
            return self.unvested
        if now <= self.vest_last:
            return 0
        return self.unvested * (now - self.vest_last) // (self.vest_end - self.vest_last)

    def checkpoint(self, now: int) -> None:
        released = self.vested(now)
        if released == 0 or self.supply == 0:
            return
        self.unvested -= released
        self.vest_last = now
        self._release(released)

    def _release(self, amount: int) -> None:
        for holder, balance in self.balances.items():
            if balance:
                share = Fraction(amount * balance, self.supply)
                self.earned[holder] = self.earned.get(holder, Fraction(0)) + share

    def add_revenue(self, amount: int, now: int) -> None:
        assert amount > 0
        self.distributed += amount
        self.checkpoint(now)
        self.unvested += amount
        if self.unlock == 0 and self.supply != 0:
            self._release(self.unvested)
            self.unvested = 0
        else:
            self.vest_last, self.vest_end = now, now + self.unlock

    def move(self, src: str, dst: str, amount: int, now: int) -> None:
        self.checkpoint(now)
        assert self.balances.get(src, 0) >= amount, "the model moves what the holder lacks"
        self.balances[src] = self.balances.get(src, 0) - amount
        self.balances[dst] = self.balances.get(dst, 0) + amount
        self.changes += 1

    def mint(self, dst: str, amount: int, now: int) -> None:
        self.checkpoint(now)
        self.supply += amount
        self.balances[dst] = self.balances.get(dst, 0) + amount
        self.changes += 1

    def burn(self, src: str, amount: int, now: int) -> None:
        assert self.balances.get(src, 0) >= amount
        self.checkpoint(now)
        self.supply -= amount
        self.balances[src] -= amount
        self.changes += 1

    def slack(self) -> Fraction:
        # docs/SPEC.md "Rounding": supply / 2**128 per balance change, on top of the floor
        return Fraction((self.changes + 1) * self.max_supply, MAGNITUDE)

    def owed(self, holder: str) -> Fraction:
        return self.earned.get(holder, Fraction(0)) - self.claimed.get(holder, 0)

    def claimable(self, holder: str, now: int) -> Fraction:
        pending = Fraction(0)
        if self.supply:
            pending = Fraction(self.vested(now) * self.balances.get(holder, 0), self.supply)
        return self.owed(holder) + pending

    def unvested_at(self, now: int) -> int:
        return self.unvested if self.supply == 0 else self.unvested - self.vested(now)

    def claim(self, holder: str, paid: int, now: int) -> None:
        """A claim paid ``paid``: the exact amount rounded down, within the rounding."""
        self.checkpoint(now)
        exact = self.owed(holder)
        assert exact - 1 - self.slack() < paid <= exact + self.slack(), (
            holder,
            paid,
            float(exact),
        )
        self.claimed[holder] = self.claimed.get(holder, 0) + paid
        OUTCOMES[f"claim paid ({'basket' if self.unlock == 0 else 'share'})"] += paid > 0

    @property
    def total_claimed(self) -> int:
        return sum(self.claimed.values())


@dataclass
class Offer:
    """One ShareOffering as the model sees it."""

    contract: Any
    node: int  # index into the nodes, 0-2
    shares: int
    price: int
    soft: int
    hard: int
    start: int
    end: int
    cap: int
    committed: dict[str, int] = field(default_factory=dict)
    claimed: set[str] = field(default_factory=set)
    total: int = 0
    sold: int = 0
    delivered: int = 0
    refunded: int = 0
    finished: bool = False

    @property
    def address(self) -> str:
        return str(self.contract.address)

    def shares_of(self, amount: int) -> int:
        return amount * UNIT // self.price

    @property
    def succeeded(self) -> bool:
        return self.total >= self.soft


@dataclass
class Order:
    """One signed market order and what the model says it has filled."""

    fields: dict[str, Any]
    signature: bytes
    signed_by_maker: bool
    digest: bytes = b""
    filled: int = 0
    cancelled: bool = False

    @property
    def as_tuple(self) -> tuple[Any, ...]:
        return tuple(self.fields[f["name"]] for f in ORDER_TYPE)

    @property
    def maker(self) -> str:
        return str(self.fields["maker"])

    @property
    def token(self) -> str:
        return str(self.fields["share"])

    @property
    def sell(self) -> bool:
        return bool(self.fields["sell"])

    @property
    def amount(self) -> int:
        return int(self.fields["amount"])

    @property
    def min_fill(self) -> int:
        return int(self.fields["min_fill"])

    @property
    def remaining(self) -> int:
        return max(0, self.amount - self.filled)


def cost_of(amount: int, price: int, sell: bool) -> int:
    """A fill's stablecoin leg: amount x price per whole share, up for a sell order (the
    maker sells at least at its price), down for a buy order (it pays at most)."""
    value = amount * price
    return value // UNIT + (1 if sell and value % UNIT else 0)


def claims_of(tx: Any) -> dict[tuple[str, str], int]:
    """What a transaction's claims paid, by (token, holder)."""
    out: dict[tuple[str, str], int] = {}
    if "RevenueClaimed" in tx.events:
        for e in tx.events["RevenueClaimed"]:
            key = (str(e.address), str(e["holder"]))
            out[key] = out.get(key, 0) + int(e["amount"])
    return out


class CapitalMachine(RuleBasedStateMachine):
    """Offerings, market and basket over three nodes; see the module docstring."""

    env: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        super().__init__()
        # evm_snapshot/evm_revert around each run without brownie's bookkeeping (as the
        # accounting machine does); what a run deploys (offerings, by the factory) goes
        # with the revert
        self.snapshot = web3.provider.make_request("evm_snapshot", [])["result"]
        self.height = web3.eth.block_number
        # every block 1 s after the previous one: a transaction is sent at get_now() + 1
        web3.provider.make_request("anvil_setBlockTimestampInterval", [1])
        env = self.env
        self.suite = env["suite"]
        self.coin, self.router, self.registry = env["coin"], env["router"], env["registry"]
        self.shares: list[Any] = env["shares"]
        self.basket, self.market, self.claimer = env["basket"], env["market"], env["claimer"]
        self.offerings = env["offerings"]
        self.channels = env["channels"]
        self.customer, self.customer_key = env["customer"], env["customer_key"]
        self.channels_domain = env["channels_domain"]
        self.channel_paid = [0, 0, 0]  # the customer's cumulative per node's channel
        self.deployer, self.operator, self.stranger = (
            env["deployer"],
            env["operator"],
            env["stranger"],
        )
        self.treasury = env["treasury"]
        self.investors: list[Any] = env["investors"]
        self.traders: list[Any] = [self.operator, *self.investors]  # makers and takers
        self.keys: dict[str, str] = env["keys"]
        self.attestor_key, self.report_domain = env["attestor_key"], env["report_domain"]
        self.node_ids: list[int] = env["node_ids"]
        self.market_domain = env["market_domain"]
        self.salts = itertools.count(1)
        # every address that may hold anything; contracts included
        people = (self.deployer, self.operator, *self.investors, self.stranger, self.treasury)
        contracts = (
            self.router,
            *self.shares,
            self.basket,
            self.market,
            self.claimer,
            self.offerings,
            env["basket_factory"],
            self.channels,
        )
        self.parties: list[str] = [
            *(a.address for a in people),
            self.customer,
            *(str(c.address) for c in contracts),
        ]
        n = len(self.parties)
        values = read_all(
            (self.coin.balanceOf, self.deployer.address),
            *[(self.coin.balanceOf, a) for a in self.parties],
            *[(share.balanceOf, a) for share in self.shares for a in self.parties],
            (self.basket.totalSupply,),
            *[(self.registry.registered_epoch, node_id) for node_id in self.node_ids],
        )
        values = [int(v) for v in values]
        self.coin_model: dict[str, int] = dict(zip(self.parties, values[1 : 1 + n], strict=True))
        # the stablecoin outside the payer's wallet, before any revenue
        self.outside_start = sum(self.coin_model.values()) - self.coin_model[self.deployer.address]
        self.paid_in = 0
        self.books: dict[str, Book] = {}
        for i, share in enumerate(self.shares):
            held = values[1 + n * (1 + i) : 1 + n * (2 + i)]
            balances = dict(zip(self.parties, held, strict=True))
            assert sum(balances.values()) == SUPPLY
            self.books[str(share.address)] = Book(UNLOCK, balances, SUPPLY)
        assert values[1 + 4 * n] == 0, "the basket starts empty"
        self.books[str(self.basket.address)] = Book(0, {}, 2**86)
        self.next_epoch = dict(zip(self.node_ids, values[2 + 4 * n :], strict=True))
        self.pending: list[tuple[int, int, int, int]] = []  # (node id, epoch, gross, at)
        self.owed: dict[str, int] = {}  # the router's, by account
        self.offers: list[Offer] = []
        self.orders: list[Order] = []
        self.nonces: dict[str, int] = {t.address: 0 for t in self.traders}
        self.unit_holders: set[str] = set()  # every address that ever held basket units

    def teardown(self) -> None:
        web3.provider.make_request("anvil_removeBlockTimestampInterval", [])
        assert web3.provider.make_request("evm_revert", [self.snapshot])["result"]
        history._revert(self.height)

    # ------------------------------------------------------------- helpers

    @property
    def basket_book(self) -> Book:
        return self.books[str(self.basket.address)]

    def book(self, node: int) -> Book:
        return self.books[str(self.shares[node].address)]

    def _pay(self, src: str, dst: str, amount: int) -> None:
        """The model's stablecoin moves."""
        assert self.coin_model[src] >= amount, "the model pays what the party lacks"
        self.coin_model[src] -= amount
        self.coin_model[dst] = self.coin_model.get(dst, 0) + amount

    def _send(self, reason: str | None, call: Any, *args: Any) -> Any:
        """Sends a transaction; ``reason``: it must revert with that message."""
        OUTCOMES[f"{call._name.split('.')[-1]}: {reason or 'ok'}"] += 1
        if reason is None:
            return call(*args)
        with brownie.reverts(reason):
            call(*args)
        return None

    def _at(self, tx: Any, now: int) -> int:
        assert int(tx.timestamp) == now, "the model predicted another block"
        return now

    def _harvest_model(self, tx: Any, now: int) -> None:
        """The basket's harvest inside ``tx``: each component claims for the basket
        (each claim is the node model's), the basket books what it received."""
        basket = str(self.basket.address)
        paid = claims_of(tx)
        received = 0
        for i, share in enumerate(self.shares):
            amount = paid.get((str(share.address), basket), 0)
            self.book(i).claim(basket, amount, now)
            self._pay(str(share.address), basket, amount)
            received += amount
        if received:
            OUTCOMES["harvest received"] += 1
            self.basket_book.add_revenue(received, now)

    # ------------------------------------------------------------ revenue

    def _settle(self, node: int, gross: int) -> None:
        """The payer settles the node's next epoch (ended: epochs are 1 s long)."""
        node_id = self.node_ids[node]
        epoch = self.next_epoch[node_id]
        genesis = self.env["genesis"]
        if epoch >= get_now() + 1 - genesis:
            mine_at(genesis + epoch + 1)
        self.next_epoch[node_id] = epoch + 1
        report = UsageReport(
            node_id=node_id,
            epoch=epoch,
            inferences=gross,
            revenue=gross * PRICE_PER_1K // 1_000,
            latency_ms=80,
            uptime_bps=9_990,
            deadline=FAR_EXPIRY,
        )
        signed = sign(report, self.attestor_key, self.report_domain)
        now = get_now() + 1
        tx = self.router.settle(
            report.as_tuple(), signed.get_signature_bytes(), {"from": self.deployer}
        )
        self._at(tx, now)
        self._pay(self.deployer.address, str(self.router.address), gross)
        self.paid_in += gross
        self.pending.append((node_id, epoch, gross, now))

    def _finalize_due(self, caller: Any) -> None:
        """A keeper finalizes, node by node, every report whose window has passed."""
        for node, node_id in enumerate(self.node_ids):
            now = get_now() + 1
            due = [p for p in self.pending if p[0] == node_id and now >= p[3] + WINDOW]
            if not due:
                continue
            tx = self.router.finalize(node_id, [p[1] for p in due], {"from": caller})
            self._at(tx, now)
            for item in due:
                self.pending.remove(item)
            self._split(node, [g for *_, g, _ in due], now)

    def _split(self, node: int, grosses: list[int], now: int) -> None:
        """The router's split of one payout: fee and cut per report, rounded down; the
        holders' part to the share token, where it starts vesting."""
        fee = sum(g * PROTOCOL_FEE_BPS // 10_000 for g in grosses)
        cut = sum(g * CUT_BPS // 10_000 for g in grosses)
        holders = sum(grosses) - fee - cut
        for account, amount in ((self.treasury.address, fee), (self.operator.address, cut)):
            self.owed[account] = self.owed.get(account, 0) + amount
        if holders:  # no notify, no checkpoint
            share = str(self.shares[node].address)
            self._pay(str(self.router.address), share, holders)
            self.book(node).add_revenue(holders, now)

    @initialize(
        units=st.lists(
            st.tuples(st.integers(0, 3), st.integers(1, 9), st.integers(0, 999)),
            min_size=1,
            max_size=2,
        ),
        amounts=st.lists(st.integers(10**5, 10**10), min_size=3, max_size=3),
        vest=st.booleans(),
        offering=OFFERING_TERMS,
        commits=COMMITS,
        orders=st.lists(ORDER_TERMS, min_size=2, max_size=3),
    )
    def start(
        self, units: list[tuple[int, int, int]], amounts: list[int], vest: bool,
        offering: dict[str, Any], commits: list[tuple[int, str, int]],
        orders: list[dict[str, Any]],
    ) -> None:  # fmt: skip
        """Every run starts with basket units held, revenue vesting at every node (or
        vested), an offering opening within seconds and a few signed orders, so that
        few steps still reach fills, deliveries, escrow and portfolio claims."""
        for holder, mantissa, odd in units:
            self.mint_units(holder, 18, mantissa, odd)
        self._revenue(amounts, vest)
        self._create_offering(offering)
        for investor, choice, pct in commits:
            self._commit(self.offers[-1], self.investors[investor], choice, pct)
        for terms in orders:
            self._make_order(terms)

    def _revenue(self, amounts: list[int], vest: bool) -> None:
        for node, amount in enumerate(amounts):
            self._settle(node, amount)
        mine_at(max(p[3] for p in self.pending) + WINDOW - 1)
        self._finalize_due(self.stranger)
        if vest:
            mine_at(get_now() + UNLOCK)

    @rule(node=st.integers(0, 2), exponent=st.integers(2, 10), mantissa=st.integers(1, 9))
    def settle_report(self, node: int, exponent: int, mantissa: int) -> None:
        self._settle(node, mantissa * 10**exponent + exponent)

    @rule(
        nodes=st.lists(st.integers(0, 2), min_size=1, max_size=3),
        exponent=st.integers(2, 10),
        odd=st.integers(0, 99),
    )
    def vouchers_redeemed(self, nodes: list[int], exponent: int, odd: int) -> None:
        """The customer's channels pay the nodes now: the operator redeems a batch of
        vouchers, the router splits each node's run at once (fee and cut rounded down)
        and the holders' part starts vesting, with no challenge window to wait out."""
        batch, signatures = [], b""
        amounts: list[tuple[int, int]] = []  # (node, amount) per run of one node
        for node in nodes:
            amount = 3 * 10**exponent + odd + 1
            node_id = self.node_ids[node]
            self.channel_paid[node] += amount
            voucher = Voucher(
                node_id=node_id,
                customer=self.customer,
                generation=0,
                cumulative=self.channel_paid[node],
                deadline=FAR_EXPIRY,
            )
            signed = sign_voucher(voucher, self.customer_key, self.channels_domain)
            batch.append(signed.as_tuple())
            signatures += signed.get_signature_bytes()
            if amounts and amounts[-1][0] == node:
                amounts[-1] = (node, amounts[-1][1] + amount)
            else:
                amounts.append((node, amount))
        now = get_now() + 1
        tx = self.channels.redeem_many(batch, signatures, {"from": self.operator})
        self._at(tx, now)
        assert [(int(e["node_id"]), int(e["amount"])) for e in tx.events["ChannelRevenue"]] == [
            (self.node_ids[node], amount) for node, amount in amounts
        ]
        for node, amount in amounts:
            self._pay(str(self.channels.address), str(self.router.address), amount)
            self._split(node, [amount], now)

    @rule(keeper=st.sampled_from(["stranger", "operator"]))
    def finalize_due(self, keeper: str) -> None:
        self._finalize_due(self.stranger if keeper == "stranger" else self.operator)

    @rule(who=st.sampled_from(["operator", "treasury"]))
    def withdraw(self, who: str) -> None:
        account = self.operator if who == "operator" else self.treasury
        self.router.withdraw(account, {"from": account})
        amount = self.owed.pop(account.address, 0)
        self._pay(str(self.router.address), account.address, amount)

    @rule(seconds=st.sampled_from([1, 2, 5, 30, 100, UNLOCK, WINDOW]), keeper=st.booleans())
    def time_passes(self, seconds: int, keeper: bool) -> None:
        mine_at(get_now() + seconds)
        if keeper:
            self._finalize_due(self.stranger)

    # ---------------------------------------------------------- offerings

    def _create_offering(self, terms: dict[str, Any]) -> None:
        """The operator offers shares of a node; the investors approve the offering."""
        node, size, price = terms["node"], terms["size"], terms["price"]
        operator = self.operator.address
        if self.book(node).balances.get(operator, 0) < size:
            return
        hard = max(-(-price // UNIT), size * price // UNIT * terms["hard_pct"] // 100)
        soft = max(1, hard * terms["soft_pct"] // 100)
        cap = 0
        if terms["cap_pct"]:
            cap = min(hard, max(-(-price // UNIT), hard * terms["cap_pct"] // 100))
        share = self.shares[node]
        share.approve(self.offerings, size, {"from": self.operator})
        now = get_now() + 1
        start = now + terms["delay"]
        end = start + terms["duration"]
        tx = self.offerings.create_offering(
            self.node_ids[node], size, price, soft, hard, start, end, cap, {"from": self.operator}
        )
        self._at(tx, now)
        contract = brownie_contract("ShareOffering", tx.events["OfferingCreated"]["offering"])
        offer = Offer(contract, node, size, price, soft, hard, start, end, cap)
        self.offers.append(offer)
        self.parties.append(offer.address)
        self.coin_model[offer.address] = 0
        # the constructor makes the operator its revenue receiver (a claim: a
        # checkpoint), then the factory moves the shares in
        self.book(node).checkpoint(now)
        self.book(node).move(operator, offer.address, size, now)
        OUTCOMES["create_offering: ok"] += 1
        for investor in self.investors:
            self.coin.approve(contract, MAX, {"from": investor})

    @precondition(lambda self: len(self.offers) < MAX_OFFERINGS)
    @rule(terms=OFFERING_TERMS)
    def create_offering(self, terms: dict[str, Any]) -> None:
        self._create_offering(terms)

    def _offers(self, prefer: str) -> list[Offer]:
        """The offerings open (or not ended, or ended) for a transaction sent now."""
        now = get_now() + 1
        wanted = {
            "any": lambda o: True,
            "open": lambda o: o.start <= now < o.end,
            "not_ended": lambda o: now < o.end,
            "ended": lambda o: now >= o.end,
        }[prefer]
        return [o for o in self.offers if wanted(o)]

    def _any_offer(self, prefer: str) -> bool:
        return bool(self._offers(prefer))

    def _offer(self, pick: int, prefer: str = "any") -> Offer:
        """An offering; ``prefer``: those open (or not ended, or ended) first."""
        offers = self._offers(prefer) or self.offers
        return offers[pick % len(offers)]

    def _investor(self, offer: Offer, pick: int) -> int:
        """An investor index: those with a commitment not yet delivered or refunded
        first, then those with one (pick >= 3: any)."""
        if pick >= 3:
            return pick % 3
        for wanted in (
            lambda a: offer.committed.get(a) and a not in offer.claimed,
            lambda a: offer.committed.get(a),
        ):
            found = [i for i, a in enumerate(self.investors) if wanted(a.address)]
            if found:
                return found[pick % len(found)]
        return pick

    def _commit(self, offer: Offer, investor: Any, choice: str, pct: int) -> None:
        who = investor.address
        before = offer.committed.get(who, 0)
        room = offer.hard - offer.total
        amount = {
            "room": room,
            "soft": offer.soft - offer.total,
            "cap": offer.cap - before if offer.cap else room + 1,
            "one": 1,
        }.get(choice, room * pct // 100)
        amount = max(1, amount)
        now = get_now() + 1
        after = before + amount
        reason = None
        if now < offer.start:
            reason = "offering: not started"
        elif now >= offer.end:
            reason = "offering: ended"
        elif offer.total + amount > offer.hard:
            reason = "offering: hard cap exceeded"
        elif offer.cap and after > offer.cap:
            reason = "offering: investor cap exceeded"
        tx = self._send(reason, offer.contract.commit, amount, {"from": investor})
        if tx is None:
            return
        self._at(tx, now)
        offer.sold += offer.shares_of(after) - offer.shares_of(before)
        offer.committed[who] = after
        offer.total += amount
        self._pay(who, offer.address, amount)

    def _cancel(self, offer: Offer, investor: Any, pct: int) -> None:
        who = investor.address
        before = offer.committed.get(who, 0)
        amount = before * pct // 100 if pct <= 100 else before + 1
        now = get_now() + 1
        reason = None
        if now >= offer.end:
            reason = "offering: ended"
        elif amount == 0:
            reason = "offering: amount is zero"
        elif amount > before:
            reason = "offering: amount exceeds commitment"
        tx = self._send(reason, offer.contract.cancel, amount, {"from": investor})
        if tx is None:
            return
        self._at(tx, now)
        offer.sold += offer.shares_of(before - amount) - offer.shares_of(before)
        offer.committed[who] = before - amount
        offer.total -= amount
        self._pay(offer.address, who, amount)

    def _deliver(self, offer: Offer, investor: Any, keeper: bool) -> None:
        who = investor.address
        now = get_now() + 1
        reason = None
        if now < offer.end:
            reason = "offering: not ended"
        elif not offer.succeeded:
            reason = "offering: failed, refund instead"
        elif who in offer.claimed:
            reason = "offering: already claimed"
        elif not offer.committed.get(who):
            reason = "offering: nothing committed"
        if keeper:
            call, args = offer.contract.claim_shares_for, (who, {"from": self.stranger})
        else:
            call, args = offer.contract.claim_shares, ({"from": investor},)
        tx = self._send(reason, call, *args)
        if tx is None:
            return
        self._at(tx, now)
        shares = offer.shares_of(offer.committed[who])
        assert int(tx.events["SharesClaimed"]["shares"]) == shares
        offer.claimed.add(who)
        offer.delivered += shares
        if shares:  # no transfer, no checkpoint
            self.book(offer.node).move(offer.address, who, shares, now)

    def _refund(self, offer: Offer, investor: Any, keeper: bool) -> None:
        who = investor.address
        now = get_now() + 1
        reason = None
        if now < offer.end:
            reason = "offering: not ended"
        elif offer.succeeded:
            reason = "offering: succeeded, claim shares instead"
        elif who in offer.claimed:
            reason = "offering: already refunded"
        elif not offer.committed.get(who):
            reason = "offering: nothing committed"
        if keeper:
            call, args = offer.contract.refund_for, (who, {"from": self.stranger})
        else:
            call, args = offer.contract.refund, ({"from": investor},)
        tx = self._send(reason, call, *args)
        if tx is None:
            return
        self._at(tx, now)
        amount = offer.committed[who]
        offer.claimed.add(who)
        offer.refunded += amount
        self._pay(offer.address, who, amount)

    def _finish(self, offer: Offer, caller: Any) -> None:
        now = get_now() + 1
        reason = None
        if now < offer.end:
            reason = "offering: not ended"
        elif offer.finished:
            reason = "offering: already finished"
        tx = self._send(reason, offer.contract.finish, {"from": caller})
        if tx is None:
            return
        OUTCOMES[f"finish: {'succeeded' if offer.succeeded else 'failed'}"] += 1
        self._at(tx, now)
        offer.finished = True
        operator = self.operator.address
        returned = offer.shares
        if offer.succeeded:
            fee = offer.total * OFFERING_FEE_BPS // 10_000
            self._pay(offer.address, operator, offer.total - fee)
            self._pay(offer.address, self.treasury.address, fee)
            returned = offer.shares - offer.sold
        if returned:
            self.book(offer.node).move(offer.address, operator, returned, now)
        event = tx.events["Finished"]
        assert (bool(event["succeeded"]), int(event["shares_returned"])) == (
            offer.succeeded,
            returned,
        )

    def _offer_action(self, offer: Offer, action: str, investor: int, pct: int) -> None:
        account = self.investors[investor]
        if action == "commit":
            self._commit(offer, account, ["room", "soft", "cap", "one", "pct", "pct"][pct % 6], pct)
        elif action == "cancel":
            self._cancel(offer, account, pct)
        elif action in ("claim_shares", "claim_shares_for"):
            self._deliver(offer, account, action == "claim_shares_for")
        elif action in ("refund", "refund_for"):
            self._refund(offer, account, action == "refund_for")
        elif action == "finish":
            self._finish(offer, self.stranger if pct % 2 else self.operator)

    @precondition(lambda self: self._any_offer("open"))
    @rule(pick=st.integers(0, 9), commits=COMMITS)
    def commit(self, pick: int, commits: list[tuple[int, str, int]]) -> None:
        """Investors commit, one second apart: the room left, the rest of the soft cap,
        up to (or over) the investor cap, 1 base unit, a part of the room or over it."""
        offer = self._offer(pick, "open")
        for investor, choice, pct in commits:
            self._commit(offer, self.investors[investor], choice, pct)

    @precondition(lambda self: self._any_offer("open"))
    @rule(pick=st.integers(0, 9), investor=st.integers(0, 4), pct=st.integers(0, 101))
    def cancel(self, pick: int, investor: int, pct: int) -> None:
        offer = self._offer(pick, "open")
        self._cancel(offer, self.investors[self._investor(offer, investor)], pct)

    @precondition(lambda self: self._any_offer("ended"))
    @rule(
        pick=st.integers(0, 9),
        steps=st.lists(
            st.tuples(
                st.integers(0, 4),  # investor: the unsettled ones first
                st.sampled_from(["due", "due", "due", "wrong", "finish"]),
                st.booleans(),  # sent by a keeper (the *_for calls; finish: the stranger)
            ),
            min_size=1,
            max_size=4,
        ),
    )
    def wind_up_offering(self, pick: int, steps: list[tuple[int, str, bool]]) -> None:
        """After the end: each investor's due (delivery if the offering succeeded, else
        refund) or the wrong one, by the investor or a keeper, and finish, in any
        order; the wrong one is refused, and so is any second time."""
        offer = self._offer(pick, "ended")
        for investor, kind, keeper in steps:
            if kind == "finish":
                self._finish(offer, self.stranger if keeper else self.operator)
                continue
            deliver = offer.succeeded == (kind == "due")
            account = self.investors[self._investor(offer, investor)]
            if deliver:
                self._deliver(offer, account, keeper)
            else:
                self._refund(offer, account, keeper)

    @precondition(lambda self: self._any_offer("not_ended"))
    @rule(
        pick=st.integers(0, 9),
        edge=st.sampled_from(["start", "end", "end", "end"]),
        offset=st.sampled_from([-1, 0, 1]),
        actions=st.lists(
            st.sampled_from(
                ["commit", "cancel", "claim_shares", "refund_for", "finish", "claim_shares_for"]
            ),
            min_size=1,
            max_size=3,
        ),
        investor=st.integers(0, 2),
        pct=st.integers(1, 100),
    )
    def at_the_edge(
        self, pick: int, edge: str, offset: int, actions: list[str], investor: int, pct: int
    ) -> None:  # fmt: skip
        """Time runs so that the next transaction is at START or END - 1, at it or + 1;
        the actions are sent there, one second apart."""
        offer = self._offer(pick, "not_ended")
        target = (offer.start if edge == "start" else offer.end) + offset
        if target - 1 > get_now():
            mine_at(target - 1)  # the next block is the target second
        for action in actions:
            self._offer_action(offer, action, investor, pct)

    @precondition(lambda self: self.offers)
    @rule(pick=st.integers(0, 9), keeper=st.sampled_from(["stranger", "operator"]))
    def claim_for_offering(self, pick: int, keeper: str) -> None:
        """What the escrowed shares earned goes to the operator, whoever asks."""
        offer = self._offer(pick)
        share = self.shares[offer.node]
        now = get_now() + 1
        caller = self.stranger if keeper == "stranger" else self.operator
        tx = share.claim_for(offer.address, {"from": caller})
        self._at(tx, now)
        paid = claims_of(tx).get((str(share.address), offer.address), 0)
        if paid:
            assert tx.events["RevenueClaimed"]["receiver"] == self.operator.address
        self.book(offer.node).claim(offer.address, paid, now)
        self._pay(str(share.address), self.operator.address, paid)
        OUTCOMES["claim_for(offering) paid the operator"] += paid > 0

    # ------------------------------------------------------------- market

    def _token(self, index: int) -> str:
        tokens = [*(str(s.address) for s in self.shares), str(self.basket.address)]
        return tokens[index] if index < len(tokens) else str(self.coin.address)

    def _balance(self, token: str, holder: str) -> int:
        if token == str(self.coin.address):
            return self.coin_model.get(holder, 0)
        return self.books[token].balances.get(holder, 0)

    def _sign(self, order: dict[str, Any], key: str) -> bytes:
        data = {
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
            "domain": self.market_domain,
            "message": order,
        }
        return bytes(Account.sign_message(encode_typed_data(full_message=data), key).signature)

    def _make_order(self, terms: dict[str, Any]) -> Order:
        """A trader signs an order (no transaction): for up to 150% of what it holds
        (sell), or of 10 whole shares or units (buy)."""
        maker, token, sell, pct = terms["maker"], terms["token"], terms["sell"], terms["pct"]
        account = self.traders[maker]
        address = self._token(token)
        base = 10 * SHARES
        if sell and token < 4:
            base = self._balance(address, account.address) or base
        amount = max(1, base * pct // 100)
        min_amount = {
            "none": 0,
            "quarter": amount // 4,
            "half": amount // 2,
            "all": amount,
            "above": amount + 1,
        }[terms["min_fill"]]
        now = get_now()
        expiry = {"far": FAR_EXPIRY, "now": now + 1, "soon": now + 3, "later": now + UNLOCK}
        order = {
            "maker": account.address,
            "share": address,
            "sell": sell,
            "amount": amount,
            "price_per_share": terms["price"],
            "min_fill": min_amount,
            "expiry": expiry[terms["expiry"]],
            "nonce": self.nonces[account.address],
            "salt": next(self.salts),
        }
        key = self.keys[account.address]
        if terms["signer"] == "other":
            key = self.keys[self.traders[(maker + 1) % 4].address]
        made = Order(order, self._sign(order, key), terms["signer"] == "maker")
        made.digest = bytes(read_all((self.market.order_hash, made.as_tuple))[0])
        self.orders = [*self.orders[-(MAX_ORDERS - 1) :], made]
        return made

    @rule(terms=ORDER_TERMS)
    def make_order(self, terms: dict[str, Any]) -> None:
        self._make_order(terms)

    @rule(
        terms=ORDER_TERMS,
        taker=st.sampled_from([0, 1, 2] * 3 + [4]),
        choice=st.sampled_from(["rest", "half", "min", "below_min", "dust", "pct", "pct"]),
        pct=st.integers(1, 99),
    )
    def trade(self, terms: dict[str, Any], taker: int, choice: str, pct: int) -> None:
        """An order is signed and a taker fills some of it at once."""
        order = self._make_order(terms)
        self._fill(order, self._fill_amount(order, choice, pct), self._taker(order, taker))

    def _quote(
        self, order: Order, amount: int, taker: str, now: int, allowance: dict[tuple[str, str], int]
    ) -> tuple[int, int]:
        """(reason, cost) of ShareMarket._quote at ``now``; cost 0 below MAKER_BALANCE."""
        if order.token not in self.books:
            return NOT_TRADABLE, 0
        if now > order.fields["expiry"]:
            return EXPIRED, 0
        if order.cancelled:
            return CANCELLED, 0
        if order.fields["nonce"] != self.nonces[order.maker]:
            return OLD_NONCE, 0
        if not order.signed_by_maker:
            return BAD_SIGNATURE, 0
        if taker == order.maker:
            return SELF_TRADE, 0
        if amount == 0:
            return ZERO_AMOUNT, 0
        if order.filled >= order.amount:
            return FILLED, 0
        remaining = order.amount - order.filled
        if amount > remaining:
            return OVERFILL, 0
        if amount < order.min_fill and amount != remaining:
            return BELOW_MIN_FILL, 0
        left = remaining - amount
        if left != 0 and left < order.min_fill:
            return DUST, 0
        price = int(order.fields["price_per_share"])
        if price > MAX // amount:
            return COST_OVERFLOW, 0
        cost = cost_of(amount, price, order.sell)
        if cost == 0:
            return ZERO_COST, 0
        coin = str(self.coin.address)
        maker_leg, taker_leg = (order.token, amount), (coin, cost)
        if not order.sell:
            maker_leg, taker_leg = taker_leg, maker_leg
        for (token, needs), owner, (low_balance, low_allowance) in (
            (maker_leg, order.maker, (MAKER_BALANCE, MAKER_ALLOWANCE)),
            (taker_leg, taker, (TAKER_BALANCE, TAKER_ALLOWANCE)),
        ):
            if self._balance(token, owner) < needs:
                return low_balance, cost
            if allowance.get((owner, token), MAX) < needs:
                return low_allowance, cost
        return OK, cost

    def _fill_amount(self, order: Order, choice: str, pct: int) -> int:
        rest = order.remaining
        return max(
            0,
            {
                "rest": rest,
                "half": rest // 2,
                "min": order.min_fill,
                "below_min": max(0, order.min_fill - 1),
                "dust": rest - order.min_fill + 1 if order.min_fill else rest - 1,
                "over": rest + 1,
                "zero": 0,
                "one": 1,
            }.get(choice, rest * pct // 100),
        )

    def _fill(
        self, order: Order, amount: int, taker: Any,
        allowance: dict[tuple[str, str], int] | None = None,
    ) -> int:  # fmt: skip
        """Checks, then sends the fill; returns the model's reason for it."""
        allowance = allowance or {}
        market = str(self.market.address)
        now = get_now()  # what an eth_call sees
        reason, cost = self._quote(order, amount, taker.address, now, allowance)
        got = read_all((self.market.check, order.as_tuple, order.signature, amount, taker.address))
        assert tuple(int(v) for v in got[0]) == (cost, reason), (got, cost, reason)
        now += 1  # the fill's block
        reason, cost = self._quote(order, amount, taker.address, now, allowance)
        seller, buyer = order.maker, taker.address
        if not order.sell:
            seller, buyer = buyer, seller
        watched = [seller, buyer, self.treasury.address, market, order.maker]
        token = order.token
        reads = [(self.coin.balanceOf, a) for a in watched]
        if token in self.books:
            reads += [(self.books_contract(token).balanceOf, a) for a in watched]
        reads.append((self.market.filled, order.digest))
        before = [int(v) for v in read_all(*reads)]
        OUTCOMES[f"fill ({'sell' if order.sell else 'buy'}): {FILL_MESSAGES[reason] or 'ok'}"] += 1
        if reason != OK:
            with brownie.reverts(FILL_MESSAGES[reason]):
                self.market.fill(order.as_tuple, order.signature, amount, {"from": taker})
            assert [int(v) for v in read_all(*reads)] == before, "a refused fill moved something"
            return reason
        tx = self.market.fill(order.as_tuple, order.signature, amount, {"from": taker})
        self._at(tx, now)
        after = [int(v) for v in read_all(*reads)]
        fee = cost * MARKET_FEE_BPS // 10_000
        delta = [a - b for a, b in zip(after, before, strict=True)]
        n = len(watched)
        # exactly amount x price (rounded in the maker's favour), the fee to the treasury
        assert delta[:4] == [cost - fee, -cost, fee, 0], (delta, cost, fee)
        assert delta[n : n + 4] == [-amount, amount, 0, 0]
        assert delta[-1] == amount
        event = tx.events["OrderFilled"]
        assert (int(event["amount"]), int(event["cost"]), int(event["fee"])) == (amount, cost, fee)
        assert int(event["remaining"]) == order.amount - order.filled - amount
        self.books[token].move(seller, buyer, amount, now)
        if token == str(self.basket.address):
            self.unit_holders.add(buyer)
        self._pay(buyer, seller, cost - fee)
        self._pay(buyer, self.treasury.address, fee)
        order.filled += amount
        assert order.filled <= order.amount
        return OK

    def books_contract(self, token: str) -> Any:
        return {str(c.address): c for c in (*self.shares, self.basket)}[token]

    def _trader(self, address: str) -> Any:
        return next(t for t in self.traders if t.address == address)

    def _taker(self, order: Order, taker: int) -> Any:
        """Traders other than the maker; 4: the maker itself."""
        if taker == 4:
            return self._trader(order.maker)
        others = [t for t in self.traders if t.address != order.maker]
        return others[taker % len(others)]

    def _order(self, pick: int) -> Order:
        """An order: the live ones (not filled, cancelled or expired) first, newest
        first; pick >= 8: any."""
        now = get_now() + 1
        live = [
            o
            for o in self.orders
            if o.remaining
            and not o.cancelled
            and now <= o.fields["expiry"]
            and o.fields["nonce"] == self.nonces[o.maker]
        ]
        orders = (live if pick < 8 else []) or self.orders
        return orders[-1 - pick % len(orders)]

    @precondition(lambda self: self.orders)
    @rule(
        pick=st.integers(0, 9),
        taker=st.sampled_from([0, 1, 2, 0, 1, 2, 4]),
        choice=st.sampled_from(
            [*["rest", "half", "pct"] * 2, "pct", "min", "below_min", "dust", "over", "zero", "one"]
        ),
        pct=st.integers(1, 99),
    )
    def fill(self, pick: int, taker: int, choice: str, pct: int) -> None:
        """A taker fills an order, or tries to: refused with the model's reason."""
        order = self._order(pick)
        self._fill(order, self._fill_amount(order, choice, pct), self._taker(order, taker))

    @precondition(lambda self: self.orders)
    @rule(pick=st.integers(0, 9), taker=st.integers(0, 2), again=st.integers(0, 2))
    def fill_in_full_then_replay(self, pick: int, taker: int, again: int) -> None:
        """The rest in one fill, then the same signed order again (by any taker)."""
        order = self._order(pick)
        if self._fill(order, order.remaining, self._taker(order, taker)) == OK:
            for amount in (order.amount, 1):
                # EXPIRED if the order expired the second it was filled (checked first)
                reason = self._fill(order, amount, self._taker(order, again))
                assert reason in (FILLED, EXPIRED)

    @precondition(lambda self: self.orders)
    @rule(
        pick=st.integers(0, 9),
        side=st.sampled_from(["maker", "taker"]),
        taker=st.integers(0, 2),
        short=st.sampled_from([1, "all"]),
    )
    def fill_without_allowance(self, pick: int, side: str, taker: int, short: Any) -> None:
        """The maker (or taker) has cut its allowance to the market on its leg below what
        the fill needs: refused, nothing moves; then it approves again."""
        order = self._order(pick)
        account = self._taker(order, taker)
        amount = order.remaining
        price = int(order.fields["price_per_share"])
        if order.token not in self.books or amount == 0 or price > MAX // amount:
            return
        cost = cost_of(amount, price, order.sell)
        owner = order.maker if side == "maker" else account.address
        owner_account = self._trader(owner)
        sells_shares = order.sell == (side == "maker")
        token = order.token if sells_shares else str(self.coin.address)
        needs = amount if sells_shares else cost
        if needs == 0:
            return
        allowed = needs - 1 if short == 1 else 0
        contract = self.coin if token == str(self.coin.address) else self.books_contract(token)
        contract.approve(self.market, allowed, {"from": owner_account})
        reason = self._fill(order, amount, account, {(owner, token): allowed})
        assert reason != OK
        contract.approve(self.market, MAX, {"from": owner_account})

    @precondition(lambda self: self.orders)
    @rule(pick=st.integers(0, 9), by_maker=st.sampled_from([True, True, True, False]))
    def cancel_order(self, pick: int, by_maker: bool) -> None:
        order = self._order(pick)
        maker = self._trader(order.maker)
        caller = maker if by_maker else self._taker(order, 0)
        reason = None
        if not by_maker:
            reason = "market: not the maker"
        elif order.cancelled:
            reason = "market: order cancelled"
        self._send(reason, self.market.cancel, order.as_tuple, {"from": caller})
        if reason is None:
            order.cancelled = True

    @rule(maker=st.integers(0, 3))
    def cancel_all(self, maker: int) -> None:
        account = self.traders[maker]
        self.market.cancel_all({"from": account})
        self.nonces[account.address] += 1

    # ------------------------------------------------------------- basket

    @rule(
        holder=st.integers(0, 3),
        exponent=st.sampled_from([0, 11, 12, 15, 17, 18, 18]),
        mantissa=st.integers(1, 9),
        odd=st.integers(0, 999),
    )
    def mint_units(self, holder: int, exponent: int, mantissa: int, odd: int) -> None:
        """A trader mints units: each component taken rounded up (harvests first)."""
        account = self.traders[holder]
        units = mantissa * 10**exponent + odd
        book = self.basket_book
        needs = [-(-units * w // UNIT) for w in WEIGHTS]
        reason = None
        if units == 0:
            reason = "basket: units is zero"
        elif book.supply + units < MIN_SUPPLY:
            reason = "basket: supply below the minimum"
        elif any(self.book(i).balances.get(account.address, 0) < n for i, n in enumerate(needs)):
            reason = "share: transfer amount exceeds balance"
        now = get_now() + 1
        tx = self._send(reason, self.basket.mint, units, {"from": account})
        if tx is None:
            return
        self._at(tx, now)
        self._harvest_model(tx, now)
        book.mint(account.address, units, now)
        self.unit_holders.add(account.address)
        basket = str(self.basket.address)
        for i, amount in enumerate(needs):
            self.book(i).move(account.address, basket, amount, now)

    def _unit_holder(self, pick: int) -> Any:
        """A trader or the stranger; those holding units first (pick >= 5: any)."""
        everyone = [*self.traders, self.stranger]
        if pick >= 5:
            return everyone[pick % 5]
        holding = [a for a in everyone if self.basket_book.balances.get(a.address)]
        return (holding or everyone)[pick % len(holding or everyone)]

    @rule(holder=st.integers(0, 6), pct=st.sampled_from([1, 10, 33, 50, 99, 100, 100]))
    def redeem_units(self, holder: int, pct: int) -> None:
        """A holder redeems units: each component given back rounded down."""
        account = self._unit_holder(holder)
        book = self.basket_book
        units = book.balances.get(account.address, 0) * pct // 100
        left = book.supply - units
        reason = None
        if units == 0:
            reason = "basket: units is zero"
        elif left != 0 and left < MIN_SUPPLY:
            reason = "basket: supply below the minimum"
        now = get_now() + 1
        tx = self._send(reason, self.basket.redeem, units, {"from": account})
        if tx is None:
            return
        self._at(tx, now)
        self._harvest_model(tx, now)
        book.burn(account.address, units, now)
        basket = str(self.basket.address)
        for i, w in enumerate(WEIGHTS):
            amount = units * w // UNIT
            if amount:  # no transfer, no checkpoint
                self.book(i).move(basket, account.address, amount, now)

    @rule(sender=st.integers(0, 6), receiver=st.integers(0, 4), pct=st.integers(0, 100))
    def transfer_units(self, sender: int, receiver: int, pct: int) -> None:
        src = self._unit_holder(sender)
        dst = ([*self.traders, self.stranger])[receiver]
        units = self.basket_book.balances.get(src.address, 0) * pct // 100
        now = get_now() + 1
        tx = self.basket.transfer(dst, units, {"from": src})
        self._at(tx, now)
        self.basket_book.move(src.address, dst.address, units, now)
        self.unit_holders.add(dst.address)

    @rule(caller=st.sampled_from(["stranger", "investor"]))
    def harvest(self, caller: str) -> None:
        account = self.stranger if caller == "stranger" else self.investors[0]
        now = get_now() + 1
        tx = self.basket.harvest({"from": account})
        self._at(tx, now)
        self._harvest_model(tx, now)

    @rule(
        claims=st.lists(
            st.tuples(
                st.integers(0, 9),  # holder: those holding units first
                # a whole portfolio (the three shares and the basket), or any list
                st.one_of(
                    st.just([0, 1, 2, 3]),
                    st.lists(st.sampled_from([0, 1, 2, 3, 3]), min_size=1, max_size=5),
                ),
                st.sampled_from(["claimer", "claimer", "claimer", "claim", "claim_to"]),
                st.booleans(),  # to the stranger rather than to itself
            ),
            min_size=1,
            max_size=3,
        )
    )
    def claim_revenue(self, claims: list[tuple[int, list[int], str, bool]]) -> None:
        for claim in claims:
            self._claim_revenue(*claim)

    def _claim_revenue(self, holder: int, tokens: list[int], via: str, elsewhere: bool) -> None:
        """A holder claims: a portfolio claim of any list of tokens (repeats pay once)
        through the claimer, or one token's claim or claim_to; to itself or elsewhere."""
        account = self._unit_holder(holder)
        receiver = self.stranger if elsewhere and account != self.stranger else account
        addresses = [self._token(i) for i in tokens]
        now = get_now() + 1
        if via == "claimer":
            tx = self.claimer.claim_many(addresses, receiver, {"from": account})
        else:
            addresses = addresses[:1]
            token = self.books_contract(addresses[0])
            if via == "claim":
                receiver = account
                tx = token.claim({"from": account})
            else:
                tx = token.claim_to(receiver, {"from": account})
        self._at(tx, now)
        paid = claims_of(tx)
        for i, address in enumerate(addresses):
            first = address not in addresses[:i]
            amount = paid.get((address, account.address), 0) if first else 0
            self.books[address].claim(account.address, amount, now)
            self._pay(address, receiver.address, amount)
        if "RevenueClaimed" in tx.events:
            assert {e["receiver"] for e in tx.events["RevenueClaimed"]} == {receiver.address}

    # --------------------------------------------------------- invariants

    @invariant()
    def nothing_created_or_lost(self) -> None:
        """Every party's stablecoin, shares and units are the model's; the token totals
        are the sums of their holders'; and every token can pay its holders."""
        now = get_now()
        parties = self.parties
        n = len(parties)
        basket = self.basket
        holders = sorted(self.unit_holders)
        offers = self.offers
        values = read_all(
            (self.coin.totalSupply,),
            *[(self.coin.balanceOf, a) for a in parties],
            *[(s.balanceOf, a) for s in self.shares for a in parties],
            *[(s.totalSupply,) for s in self.shares],
            *[(s.claimable, a) for s in self.shares for a in parties],
            *[(s.unvested,) for s in self.shares],
            *[(s.total_distributed,) for s in self.shares],
            (basket.totalSupply,),
            (basket.unvested,),
            (basket.total_distributed,),
            *[(basket.balanceOf, a) for a in parties],
            *[(basket.claimable, a) for a in holders],
            *[(o.contract.total_committed,) for o in offers],
            *[(o.contract.shares_sold,) for o in offers],
            *[(o.contract.shares_delivered,) for o in offers],
            *[(o.contract.total_refunded,) for o in offers],
            *[(o.contract.finished,) for o in offers],
            *[(self.market.filled, o.digest) for o in self.orders],
            *[(self.market.nonces, t.address) for t in self.traders],
            (self.router.total_owed,),
            (self.router.total_pending,),
        )
        it = iter(values)

        def take(count: int) -> list[int]:
            return [int(next(it)) for _ in range(count)]

        (total_coin,) = take(1)
        coin = dict(zip(parties, take(n), strict=True))
        share_balances = [dict(zip(parties, take(n), strict=True)) for _ in self.shares]
        share_supplies = take(3)
        claimables = [dict(zip(parties, take(n), strict=True)) for _ in self.shares]
        share_unvested, share_distributed = take(3), take(3)
        supply, unvested, harvested = take(3)
        units = dict(zip(parties, take(n), strict=True))
        unit_claimable = dict(zip(holders, take(len(holders)), strict=True))
        committed, sold, delivered, refunded = (take(len(offers)) for _ in range(4))
        finished = [bool(v) for v in take(len(offers))]
        filled = take(len(self.orders))
        nonces = take(len(self.traders))
        owed, pending = take(2)
        assert next(it, None) is None

        # stablecoin: nothing created or lost; outside the payer, what the parties had
        # plus the revenue paid in
        assert coin == self.coin_model
        assert sum(coin.values()) == total_coin
        outside = sum(coin.values()) - coin[self.deployer.address]
        assert outside == self.outside_start + self.paid_in
        assert coin[str(self.router.address)] == owed + pending
        assert owed == sum(self.owed.values())
        assert pending == sum(p[2] for p in self.pending)
        # shares of each node: the supply never changes and is the sum of the balances
        for i, share in enumerate(self.shares):
            book = self.book(i)
            assert share_supplies[i] == SUPPLY == sum(share_balances[i].values())
            assert share_balances[i] == {a: book.balances.get(a, 0) for a in parties}
            assert share_distributed[i] == book.distributed
            assert share_unvested[i] == book.unvested_at(now)
            # every holder can claim what the model says; the token can pay them all
            for address, value in claimables[i].items():
                exact = book.claimable(address, now)
                assert exact - 1 - book.slack() < value <= exact + book.slack(), (
                    i,
                    address,
                    value,
                    float(exact),
                )
            assert coin[str(share.address)] >= sum(claimables[i].values()) + share_unvested[i]
            assert coin[str(share.address)] == (book.distributed - book.total_claimed), (
                "a node share holds its revenue less what was claimed"
            )
        # the basket
        book = self.basket_book
        assert supply == book.supply == sum(units.values())
        assert units == {a: book.balances.get(a, 0) for a in parties}
        assert harvested == book.distributed
        assert unvested == book.unvested_at(now)
        held = coin[str(basket.address)]
        assert held == harvested - book.total_claimed
        dust = held - sum(unit_claimable.values()) - unvested
        assert 0 <= dust <= 2 * len(holders) + 1, (dust, holders)
        OUTCOMES["max basket dust"] = max(OUTCOMES["max basket dust"], dust)
        for address, value in unit_claimable.items():
            exact = book.claimable(address, now)
            assert exact - 1 - book.slack() < value <= exact + book.slack(), (
                address,
                value,
                float(exact),
            )
        for i, weight in enumerate(WEIGHTS):
            assert share_balances[i][str(basket.address)] >= supply * weight // UNIT
        # offerings
        for k, offer in enumerate(offers):
            assert (committed[k], sold[k], delivered[k], refunded[k], finished[k]) == (
                offer.total,
                offer.sold,
                offer.delivered,
                offer.refunded,
                offer.finished,
            )
            assert offer.sold <= offer.shares
            balance = coin[offer.address]
            escrowed = share_balances[offer.node][offer.address]
            if now < offer.end:
                assert balance >= offer.total
            elif not offer.succeeded:
                unrefunded = sum(
                    c for who, c in offer.committed.items() if who not in offer.claimed
                )
                assert balance >= unrefunded
            else:
                undelivered = sum(
                    offer.shares_of(c)
                    for who, c in offer.committed.items()
                    if who not in offer.claimed
                )
                assert escrowed >= undelivered
        # the market: every order filled what its fills moved, never more than its amount
        for order, value in zip(self.orders, filled, strict=True):
            assert value == order.filled <= order.amount
        assert nonces == [self.nonces[t.address] for t in self.traders]
        # the market and the claimer never hold anything
        for contract in (self.market, self.claimer):
            address = str(contract.address)
            assert coin[address] == units[address] == 0
            assert all(b[address] == 0 for b in share_balances)


@pytest.fixture(scope="module")
def capital_env(
    deploy: Any,
    deployer: Any,
    operator: Any,
    attestor: Any,
    attestor_key: str,
    investor: Any,
    investor2: Any,
    stranger: Any,
    treasury: Any,
    customer: Any,
    customer_key: str,
) -> dict[str, Any]:
    suite = deploy(
        unlock_period=UNLOCK,
        epoch_length=1,
        challenge_period=WINDOW,
        protocol_fee_bps=PROTOCOL_FEE_BPS,
        market_fee_bps=MARKET_FEE_BPS,
        offering_fee_bps=OFFERING_FEE_BPS,
    )
    tx = Transactor(web3, Signer(address=deployer.address))
    node_ids = [
        send_register_node(
            tx,
            suite,
            NodeSpec(
                operator=operator.address,
                attestor=attestor.address,
                shares=SUPPLY,
                price_per_1k=PRICE_PER_1K,
                operator_cut_bps=CUT_BPS,
                region=region,
            ),
        )
        for region in ("Jakarta", "Mumbai", "Lagos")
    ]
    # brownie's transactions from the deployer only after the Transactor's (its nonce)
    coin = brownie_contract("MockStablecoin", suite.stablecoin.address)
    router = brownie_contract("RevenueRouter", suite.router.address)
    registry = brownie_contract("NodeRegistry", suite.registry.address)
    market = brownie_contract("ShareMarket", suite.market.address)
    offerings = brownie_contract("OfferingFactory", suite.offerings.address)
    claimer = brownie_contract("PortfolioClaimer", suite.claimer.address)
    factory = brownie_contract("BasketFactory", suite.baskets.address)
    assert market.FEE_BPS() == MARKET_FEE_BPS and offerings.FEE_BPS() == OFFERING_FEE_BPS
    shares = [brownie_contract("NodeShare", registry.share_token(i)) for i in node_ids]
    investors = [investor, investor2, accounts[9]]
    coin.mint(deployer, 10**30, {"from": deployer})
    coin.approve(router, MAX, {"from": deployer})
    for who in (operator, *investors):
        coin.mint(who, FUNDS, {"from": deployer})
    for share in shares:
        for who, amount in zip(investors, HOLDINGS, strict=True):
            share.transfer(who, amount, {"from": operator})
    made = factory.create_basket(
        "EdgeShare Basket Fuzz", "ESBF", [s.address for s in shares], WEIGHTS, {"from": investor}
    )
    basket = brownie_contract("Basket", made.events["BasketCreated"]["basket"])
    for who in (operator, *investors):
        for token in (coin, *shares, basket):
            token.approve(market, MAX, {"from": who})
        for share in shares:
            share.approve(basket, MAX, {"from": who})
    # the customer's channels to the three nodes, redeemed by vouchers in the runs
    channels = brownie_contract("PaymentChannels", suite.channels.address)
    coin.mint(customer, 10**14, {"from": deployer})
    coin.approve(channels, MAX, {"from": customer})
    for node_id in node_ids:
        channels.deposit(node_id, 10**13, {"from": customer})
    keys = build_dev_keys(10)
    key_of = {accounts[i].address: keys[i] for i in (1, 3, 4, 9)}
    assert all(Signer.from_key(k).address == a for a, k in key_of.items())
    return {
        "suite": suite,
        "coin": coin,
        "router": router,
        "registry": registry,
        "market": market,
        "offerings": offerings,
        "claimer": claimer,
        "basket_factory": factory,
        "channels": channels,
        "customer": customer.address,
        "customer_key": customer_key,
        "channels_domain": fetch_channels_domain(suite),
        "shares": shares,
        "basket": basket,
        "deployer": deployer,
        "operator": operator,
        "stranger": stranger,
        "treasury": treasury,
        "investors": investors,
        "keys": key_of,
        "attestor_key": attestor_key,
        "report_domain": fetch_domain_of(suite),
        "node_ids": node_ids,
        "genesis": int(registry.GENESIS()),
        "market_domain": {
            "name": "EdgeShare Market",
            "version": "1",
            "chainId": web3.eth.chain_id,
            "verifyingContract": market.address,
        },
    }


def test_capital__matches_exact_model_and_keeps_invariants(
    capital_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        _PrivateKeyAccount,
        "_await_confirmation",
        _patient(_PrivateKeyAccount._await_confirmation),
    )

    class Machine(CapitalMachine):
        pass

    Machine.env = capital_env
    OUTCOMES.clear()
    run_state_machine_as_test(Machine, settings=PROFILE)
    if os.environ.get("EDGESHARE_FUZZ_STATS"):
        for outcome, count in sorted(OUTCOMES.items()):
            print(f"{count:6} {outcome}")
