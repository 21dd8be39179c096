"""The revenue accounting, driven at random beside an exact model in fractions.

Each step is a user action on the real contracts (transfers, transfers to self, permit,
signed usage reports settled for revenue from 1 base unit up, disputes inside the
challenge window followed by corrected reports of a higher version, finalization after
it, operator-cut proposals across epochs, pausing and resuming the node with a backlog of
unsettled epochs, zero-revenue reports from an account that may not send them, a pool
contract holding shares with a revenue receiver set by the registrar, time passing,
claims, claims to another address, suite pause, withdrawals) and the same action on
``Model``, which keeps its own schedule of cuts and node activity by epoch. After every step all
four invariants of docs/SPEC.md are checked. Runs once with a 6-decimal and once with an 18-decimal
stablecoin. ``make fuzz`` (EDGESHARE_FUZZ=long) runs the long profile.

Payment channels run beside it. Three customers (dev accounts no other role uses) hold
channels to node 1 (the node above) and to node 2 (registered in setup with another
operator and paid only through channels, so that retiring it leaves node 1's rules
alone); four of the six are funded at the start. The steps: deposit (refused while
paused, to a retired node, or once a close's grace is over); top up during a grace, also
in its last second (the close is off); authorise and revoke the first customer's app hot
key (valid CLOSE_GRACE longer); request a close; withdraw, refused before the grace (or
a retired node's final window) is over and paying the unredeemed rest after; retire node
2; run time to the last second of a close's grace, of a retired node's window or of a
revocation and redeem there and in the next second (paid, then skipped), withdraw in
both (refused, then paid) or top up in either; close, redeem in the grace, withdraw,
deposit again and replay the closed generation's vouchers; and redeem batches of 1 to 3
vouchers of a kind: current (by the customer or its hot key), old (an earlier voucher of
the channel, of this or an earlier generation), over the deposit, forged (an
unauthorised key, a tampered amount, a high-s signature), for the wrong node (signed for
one node and sent as the other, or for a node that does not exist), by a wrong signer
(another customer, or the hot key for another customer), by the revoked hot key, or past
(or exactly at) its deadline; sent by the node's operator, the attestor (both nodes) or
an account that runs neither. Deposits carry odd base units so that the split's rounding
is seldom exact. ``Model`` predicts each voucher's outcome (its amount, or the skip
reason in the contract's order of checks) and splits what a batch redeemed per run of
one node's vouchers as ``credit_channel_revenue`` does: fee and cut rounded down per
call, the cut of the epoch in progress, the holders' part vesting like finalized
revenue. A report of an epoch in which vouchers paid node 1 costs its payer only ``due =
revenue - min(revenue, channel revenue of the epoch)``; a rule settles such epochs
below, at and above the credit. Invariants added: the channels contract holds exactly
``total_unredeemed``, the model's sum of unredeemed deposits; every used channel's
deposited, redeemed, generation, close and withdrawal times are the model's, and what it
redeemed never exceeds the highest cumulative its customer, or a signer it authorised
(before or after the signature), signed; customers' wallets are the model's, and wallets
+ channels + redeemed is all they ever had; every voucher gets the model's outcome, so a
valid one (right node and caller, not expired, right generation, grace not over,
covered, validly signed) is never skipped; a withdrawal pays exactly the unredeemed
rest; the router's credits per (node, epoch) and ``total_channel_revenue`` are the
model's, and conservation counts channel revenue (both share tokens'
``total_distributed``; node 2's token holds its holders' part).

brownie's own ``state_machine`` helper is broken under brownie 1.22.2, so this is
hypothesis' ``RuleBasedStateMachine`` with anvil's ``evm_snapshot``/``evm_revert`` per run.
The invariants read the chain in one JSON-RPC batch per check.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar

import brownie
import pytest
from brownie import accounts, history, web3
from brownie.exceptions import TransactionError
from brownie.network.account import _PrivateKeyAccount
from brownie.network.transaction import TransactionReceipt
from eth_account import Account
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from edgeshare.attestation import SECP256K1_N
from edgeshare.chain import build_dev_keys
from edgeshare.channels import (
    SKIP_BAD_SIGNATURE,
    SKIP_CLOSED,
    SKIP_EXPIRED,
    SKIP_NOT_COVERED,
    SKIP_NOT_NODE,
    SKIP_NOTHING_NEW,
    SKIP_OLD_GENERATION,
    Voucher,
    fetch_channels_domain,
    sign_voucher,
)
from edgeshare.signer import Signer
from edgeshare.suite import NodeSpec, send_register_node
from edgeshare.tx import Transactor
from tests.conftest import (
    FAR_DEADLINE,
    SHARES,
    Payer,
    brownie_contract,
    get_now,
    mine_at,
    report_args,
    sign_permit,
    sign_report,
)

LONG = os.environ.get("EDGESHARE_FUZZ") == "long"
PROFILE = settings(
    verbosity=__import__("hypothesis").Verbosity.verbose
    if os.environ.get("EDGESHARE_FUZZ_VERBOSE")
    else __import__("hypothesis").Verbosity.normal,
    # hypothesis caps its first 10 examples at a few steps each (a small-example phase),
    # so only the examples after those run the machine for long: 12 left 2 of them
    max_examples=300 if LONG else 30,
    stateful_step_count=60 if LONG else 25,
    deadline=None,
    database=None,
)
UNLOCK = 1_000
WINDOW = 3_600  # RevenueRouter.MIN_CHALLENGE_PERIOD
WEEK = 7 * 86_400  # NodeRegistry.CUT_CHANGE_DELAY
PRICE = 1_000  # per 1,000 inferences, 6 decimals: revenue = inferences
FEE_BPS, CUT_BPS = 500, 1_500
MAGNITUDE = 2**128
SUPPLY = 1_000 * SHARES
GRACE = 1 + WINDOW  # PaymentChannels.CLOSE_GRACE: one (1-second) epoch + the challenge period
FOREVER = 2**256 - 1  # a signer's validity while authorised and not revoked
CUT2_BPS = 2_500  # node 2's cut, never changed
RETIRED = 4  # NodeStatus.RETIRED
VOUCHER_KINDS = (
    *("current",) * 3,
    "old",
    "over_deposit",
    "forged",
    "wrong_node",
    "wrong_signer",
    "revoked_signer",
    "expired",
)
# (node id, customer, generation, cumulative, deadline) as redeem_many takes it
VoucherTuple = tuple[int, str, int, int, int]


@dataclass
class Chan:
    """One (customer, node) channel as the model sees it."""

    deposited: int = 0  # in this generation
    redeemed: int = 0  # in this generation
    generation: int = 0
    closes_at: int = 0  # 0: no close requested
    # signer -> the highest cumulative it signed for this generation
    signed_max: dict[str, int] = field(default_factory=dict)
    # every voucher signed for it, of every generation: (voucher, signature, signer)
    signed: list[tuple[VoucherTuple, bytes, str | None]] = field(default_factory=list)

    @property
    def unredeemed(self) -> int:
        return self.deposited - self.redeemed


def read(call: Any, *args: Any) -> Any:
    """One view call the cheap way (see read_all)."""
    return read_all((call, *args))[0]


def read_all(*calls: tuple[Any, ...]) -> list[Any]:
    """Many view calls, ``(brownie call, *args)`` each, in one JSON-RPC batch: the
    invariants run after every step, and one round trip per call would dominate the run."""
    if not calls:
        return []
    batch = [
        ("eth_call", [{"to": call._address, "data": call.encode_input(*args)}, "latest"])
        for call, *args in calls
    ]
    responses = web3.provider.make_batch_request(batch)
    assert isinstance(responses, list), responses
    return [
        call.decode_output(response["result"])
        for (call, *_), response in zip(calls, responses, strict=True)
    ]


class Model:
    """Exact reference: integer vesting exactly as specified, then pro-rata in fractions."""

    def __init__(self, holders: list[str], genesis: int) -> None:
        self.genesis = genesis
        self.balances = dict.fromkeys(holders, 0)
        self.earned: dict[str, Fraction] = dict.fromkeys(holders, Fraction(0))
        self.claimed = dict.fromkeys(holders, 0)
        self.unvested = 0
        self.vest_last = 0
        self.vest_end = 0
        self.paid_in = 0
        self.pending: list[tuple[int, int, int]] = []  # (epoch, gross, settled at)
        self.disputed: dict[int, int] = {}  # epoch -> version of its disputed report
        self.owed: dict[str, int] = {}
        # the node's terms by epoch, as the registry's rules say they must be
        self.cuts: list[tuple[int, int]] = [(0, CUT_BPS)]  # (first epoch, cut)
        self.pending_cut: tuple[int, int] | None = None  # (first epoch, cut)
        self.inactive: list[tuple[int, int | None]] = []  # [first, end) epochs paused
        self.withdrawn = 0
        self.balance_changes = 0
        self.distributed = 0  # node 1's holders' part, finalized or from channels
        # channels
        self.channels: dict[tuple[str, int], Chan] = {}
        self.valid_until: dict[tuple[str, int, str], int] = {}  # (customer, node, signer)
        self.retired_from: dict[int, int] = {}  # node -> first epoch retired
        self.channel_revenue: dict[tuple[int, int], int] = {}  # (node, epoch) -> credited
        self.redeemed_total = 0
        self.wallets: dict[str, int] = {}  # customers' stablecoin
        self.share2_in = 0  # node 2's holders' part (node 2 is paid only through channels)

    def cut_for(self, epoch: int) -> int:
        if self.pending_cut is not None and epoch >= self.pending_cut[0]:
            return self.pending_cut[1]
        return [cut for first, cut in self.cuts if first <= epoch][-1]

    def propose_cut(self, cut: int, current: int, first_after_delay: int) -> None:
        """The registry's rule: a decrease from the next epoch, an increase from the first
        epoch that starts a week later; a new proposal replaces a pending one."""
        nxt = current + 1
        if self.pending_cut is not None and self.pending_cut[0] <= nxt:
            self.cuts.append(self.pending_cut)  # it reached the history
        self.pending_cut = None
        base = [c for first, c in self.cuts if first <= nxt][-1]
        first = nxt if cut <= base else max(nxt, first_after_delay)
        if first == nxt:
            self.cuts = [c for c in self.cuts if c[0] < nxt] + [(nxt, cut)]
        else:
            self.pending_cut = (first, cut)

    def is_active(self, epoch: int) -> bool:
        return not any(a <= epoch and (b is None or epoch < b) for a, b in self.inactive)

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
        if released == 0:
            return
        self.unvested -= released
        self.vest_last = now
        for holder, balance in self.balances.items():
            self.earned[holder] += Fraction(released * balance, SUPPLY)

    def due(self, epoch: int, revenue: int) -> int:
        """What the payer of node 1's report of ``revenue`` for ``epoch`` pays."""
        return revenue - min(revenue, self.channel_revenue.get((1, epoch), 0))

    def settle(self, epoch: int, gross: int, now: int) -> None:
        self.paid_in += gross
        self.pending.append((epoch, gross, now))

    def dispute(self, epoch: int, payer: str, version: int) -> None:
        (item,) = [p for p in self.pending if p[0] == epoch]
        self.pending.remove(item)
        self.disputed[epoch] = version
        self.owed[payer] = self.owed.get(payer, 0) + item[1]

    def finalize(self, epochs: list[int], now: int, operator: str, treasury: str) -> None:
        items = [p for p in self.pending if p[0] in epochs]
        for item in items:
            self.pending.remove(item)
        # per report, each rounded down; holders take the rest
        fee = sum(g * FEE_BPS // 10_000 for _, g, _ in items)
        cut = sum(g * self.cut_for(e) // 10_000 for e, g, _ in items)
        holders = sum(g for _, g, _ in items) - fee - cut
        self.owed[treasury] = self.owed.get(treasury, 0) + fee
        self.owed[operator] = self.owed.get(operator, 0) + cut
        self._notify(holders, now)

    def _notify(self, holders: int, now: int) -> None:
        # NodeShare.notify_revenue of node 1
        if holders == 0:
            return
        self.distributed += holders
        self.checkpoint(now)
        self.unvested += holders
        self.vest_last, self.vest_end = now, now + UNLOCK

    def credit(
        self, node: int, amount: int, epoch: int, now: int, operator: str, treasury: str
    ) -> None:
        """One credit_channel_revenue call: split at once, at the cut of the epoch now."""
        self.paid_in += amount
        self.channel_revenue[(node, epoch)] = self.channel_revenue.get((node, epoch), 0) + amount
        fee = amount * FEE_BPS // 10_000
        cut = amount * (self.cut_for(epoch) if node == 1 else CUT2_BPS) // 10_000
        self.owed[treasury] = self.owed.get(treasury, 0) + fee
        self.owed[operator] = self.owed.get(operator, 0) + cut
        if node == 1:
            self._notify(amount - fee - cut, now)
        else:
            self.share2_in += amount - fee - cut

    def chan(self, customer: str, node: int) -> Chan:
        return self.channels.setdefault((customer, node), Chan())

    def retirement_end(self, node: int) -> int | None:
        """The end of a retired node's final redemption window (None: not retired)."""
        first = self.retired_from.get(node)
        return None if first is None else self.genesis + first + GRACE  # 1-second epochs

    def withdrawable_at(self, customer: str, node: int) -> int | None:
        ch = self.channels.get((customer, node), Chan())
        ends = [t for t in (ch.closes_at or None, self.retirement_end(node)) if t is not None]
        return min(ends) if ends else None

    def signer_valid(self, customer: str, node: int, signer: str | None, now: int) -> bool:
        if signer is None:
            return False
        return signer == customer or self.valid_until.get((customer, node, signer), 0) > now

    def check(
        self, voucher: VoucherTuple, signer: str | None, caller_ok: bool, now: int
    ) -> tuple[int, int]:
        """(amount, 0) if the voucher pays at ``now``, else (0, the skip reason)."""
        node, customer, generation, cumulative, deadline = voucher
        if not caller_ok:
            return 0, SKIP_NOT_NODE
        if now > deadline:
            return 0, SKIP_EXPIRED
        ch = self.channels.get((customer, node), Chan())
        if generation != ch.generation:
            return 0, SKIP_OLD_GENERATION
        end = self.retirement_end(node)
        if (ch.closes_at and now >= ch.closes_at) or (end is not None and now >= end):
            return 0, SKIP_CLOSED
        if cumulative <= ch.redeemed:
            return 0, SKIP_NOTHING_NEW
        if cumulative > ch.deposited:
            return 0, SKIP_NOT_COVERED
        if not self.signer_valid(customer, node, signer, now):
            return 0, SKIP_BAD_SIGNATURE
        return cumulative - ch.redeemed, 0

    def transfer(self, sender: str, receiver: str, amount: int, now: int) -> None:
        self.checkpoint(now)
        self.balances[sender] -= amount
        self.balances[receiver] += amount
        self.balance_changes += 1

    def claimable(self, holder: str, now: int) -> Fraction:
        pending = Fraction(self.vested(now) * self.balances[holder], SUPPLY)
        return self.earned[holder] + pending - self.claimed[holder]


class AccountingMachine(RuleBasedStateMachine):
    """Drives one node's share token and the router; see the module docstring."""

    decimals = 6
    env: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        super().__init__()
        # chain.snapshot()/revert() without brownie's bookkeeping, which inspects the
        # stack and every deployed contract each time (a fifth of a second a run): the
        # runs deploy nothing, so reverting brownie's transaction history is all it takes
        self.snapshot = web3.provider.make_request("evm_snapshot", [])["result"]
        self.height = web3.eth.block_number
        # every block 1 s after the previous one: replays see the same timestamps
        web3.provider.make_request("anvil_setBlockTimestampInterval", [1])
        env = self.env
        self.share, self.router, self.coin, self.registry = (
            env["share"],
            env["router"],
            env["coin"],
            env["registry"],
        )
        self.deployer, self.operator, self.treasury = (
            env["deployer"],
            env["operator"],
            env["treasury"],
        )
        self.holders: list[Any] = env["holders"]
        self.key_holder = env["key_holder"]
        self.pool: str = env["pool"]  # a contract holder that never calls claim
        self.payer: Payer = env["payer"]
        self.payer.next_epoch.clear()
        self.addresses = [h.address for h in self.holders] + [self.pool]
        self.customers: list[Any] = env["customers"]
        genesis, *balances = read_all(
            (self.registry.GENESIS,),
            *[(self.share.balanceOf, a) for a in self.addresses],
            *[(self.coin.balanceOf, c.address) for c in self.customers],
        )
        self.genesis = int(genesis)
        self.model = Model(self.addresses, self.genesis)
        for address, balance in zip(self.addresses, balances, strict=False):
            self.model.balances[address] = int(balance)
        assert sum(self.model.balances.values()) == SUPPLY
        self.paused = False
        self.node_paused = False
        self.versions: dict[int, int] = {}  # epoch -> version of its latest report
        self.pool_receiver: Any = None
        # channels
        self.channels, self.share2 = env["channels"], env["share2"]
        self.operator2, self.attestor = env["operator2"], env["attestor"]
        self.keys: dict[str, str] = env["customer_keys"]  # address -> private key
        self.hot, self.forger = env["hot"], env["forger"]  # local keys, no accounts
        self.domain, self.separator = env["domain"], env["separator"]
        self.signing_keys = self.keys | {
            self.hot.address: self.hot.key,
            self.forger.address: self.forger.key,
        }
        for customer, balance in zip(self.customers, balances[len(self.addresses) :], strict=True):
            self.model.wallets[customer.address] = int(balance)
        self.wealth = sum(self.model.wallets.values())  # what the customers ever had

    def teardown(self) -> None:
        web3.provider.make_request("anvil_removeBlockTimestampInterval", [])
        assert web3.provider.make_request("evm_revert", [self.snapshot])["result"]
        history._revert(self.height)

    def _now_of(self, tx: Any) -> int:
        return int(tx.timestamp)

    # ---------------------------------------------------------------- rules

    @rule(sender=st.integers(0, 4), receiver=st.integers(0, 4), fraction=st.integers(0, 100))
    def transfer(self, sender: int, receiver: int, fraction: int) -> None:
        src, dst = self.holders[sender], self.holders[receiver]
        amount = self.model.balances[src.address] * fraction // 100
        unvested_before = self.share.unvested()
        before = {a: self.share.claimable(a) for a in {src.address, dst.address}}
        tx = self.share.transfer(dst, amount, {"from": src})
        self.model.transfer(src.address, dst.address, amount, self._now_of(tx))
        if unvested_before == 0:  # nothing vesting: what both had earned is untouched
            assert {a: self.share.claimable(a) for a in before} == before

    @rule(holder=st.integers(0, 4), fraction=st.integers(0, 100))
    def transfer_to_self(self, holder: int, fraction: int) -> None:
        account = self.holders[holder]
        amount = self.model.balances[account.address] * fraction // 100
        balance = self.share.balanceOf(account)
        tx = self.share.transfer(account, amount, {"from": account})
        self.model.transfer(account.address, account.address, amount, self._now_of(tx))
        assert self.share.balanceOf(account) == balance

    @rule(receiver=st.integers(0, 4), fraction=st.integers(1, 100))
    def permit_then_transfer_from(self, receiver: int, fraction: int) -> None:
        owner = self.key_holder
        amount = self.model.balances[owner.address] * fraction // 100
        spender = self.holders[0]
        deadline = get_now() + 3_600
        nonce = self.share.nonces(owner.address)
        sig = sign_permit(
            self.share, owner.private_key, owner.address, spender.address, amount, nonce, deadline
        )
        self.share.permit(
            owner.address,
            spender,
            amount,
            deadline,
            sig.v,
            sig.r.to_bytes(32, "big"),
            sig.s.to_bytes(32, "big"),
            {"from": spender},
        )
        tx = self.share.transferFrom(
            owner.address, self.holders[receiver], amount, {"from": spender}
        )
        self.model.transfer(owner.address, self.holders[receiver].address, amount, self._now_of(tx))
        assert self.share.allowance(owner.address, spender) == 0

    @initialize(exponent=st.integers(0, 12), mantissa=st.integers(1, 9))
    def first_report(self, exponent: int, mantissa: int) -> None:
        """Every run starts with revenue on its way, so few steps still reach payouts."""
        self.settle_report(exponent, mantissa)

    def _epoch_of(self, timestamp: int) -> int:
        return timestamp - self.genesis  # 1-second epochs

    def _sign(self, epoch: int, gross: int, version: int = 0) -> Any:
        return sign_report(
            self.payer.suite,
            self.payer.key,
            node_id=1,
            epoch=epoch,
            version=version,
            inferences=gross // 10 ** (self.decimals - 6),
        )

    def _take_epoch(self) -> int:
        # the payer's next epoch, passing those settled ahead of it by settle_channel_epoch
        # (a disputed one among them takes only its next version)
        while True:
            epoch = self.payer.take_epoch(1)
            if epoch not in self.versions:
                return epoch

    def _settle_paying_due(self, signed: Any, epoch: int, gross: int, version: int) -> None:
        """Settles and checks that the payer paid only what channels did not."""
        due = self.model.due(epoch, gross)
        before = read(self.coin.balanceOf, self.deployer.address)
        tx = self.router.settle(*report_args(signed), {"from": self.deployer})
        assert before - read(self.coin.balanceOf, self.deployer.address) == due
        self.model.settle(epoch, due, self._now_of(tx))
        self.versions[epoch] = version

    def _settle(self, epoch: int, gross: int) -> None:
        signed = self._sign(epoch, gross)
        if self.paused:
            with brownie.reverts("router: paused"):
                self.router.settle(*report_args(signed), {"from": self.deployer})
        elif not self.model.is_active(epoch):
            with brownie.reverts("router: node not active in that epoch"):
                self.router.settle(*report_args(signed), {"from": self.deployer})
        else:
            self._settle_paying_due(signed, epoch, gross, 0)

    @rule(exponent=st.integers(0, 12), mantissa=st.integers(1, 9))
    def settle_report(self, exponent: int, mantissa: int) -> None:
        """The payer settles the next unsettled epoch; the backlog of epochs that ended
        while the node was active settles even after the node was paused."""
        gross = mantissa * 10 ** (exponent + self.decimals - 6)
        self._settle(self._take_epoch(), gross)

    @rule(pick=st.integers(0, 9), shape=st.sampled_from(["below", "at", "above", "far_above"]))
    def settle_channel_epoch(self, pick: int, shape: str) -> None:
        """The payer settles an epoch in which vouchers paid node 1, for revenue below,
        at or above that credit: it pays only the rest (nothing below the credit)."""
        epochs = sorted(e for n, e in self.model.channel_revenue if n == 1)
        epochs = [e for e in epochs if e not in self.versions]
        if not epochs:
            return
        epoch = epochs[pick % len(epochs)]
        unit = 10 ** (self.decimals - 6)
        whole = self.model.channel_revenue[(1, epoch)] // unit
        inferences = {"below": whole - 1, "at": whole, "above": whole + 1}.get(shape, 2 * whole)
        self._settle(epoch, unit * max(1, inferences))

    @rule(pick=st.integers(0, 9), exponent=st.integers(0, 12), mantissa=st.integers(1, 9))
    def correct_disputed(self, pick: int, exponent: int, mantissa: int) -> None:
        """A disputed epoch takes a report of a higher version; the disputed one never."""
        if not self.model.disputed or self.paused:
            return
        epoch = sorted(self.model.disputed)[pick % len(self.model.disputed)]
        disputed = self.model.disputed[epoch]
        gross = mantissa * 10 ** (exponent + self.decimals - 6)
        with brownie.reverts("router: version is not the disputed report's next"):
            self.router.settle(
                *report_args(self._sign(epoch, gross, disputed)), {"from": self.deployer}
            )
        signed = self._sign(epoch, gross, disputed + 1)
        del self.model.disputed[epoch]
        self._settle_paying_due(signed, epoch, gross, disputed + 1)

    @rule()
    def zero_report_from_a_stranger(self) -> None:
        """Whoever holds the attestor's key cannot close an epoch for free from any account."""
        epoch = self._take_epoch()
        signed = self._sign(epoch, 0)
        if self.paused:
            reason = "router: paused"
        elif not self.model.is_active(epoch):
            reason = "router: node not active in that epoch"
        else:
            reason = "router: zero report not from the operator or attestor"
        with brownie.reverts(reason):
            self.router.settle(*report_args(signed), {"from": self.holders[3]})

    @rule(pick=st.integers(0, 9))
    def dispute(self, pick: int) -> None:
        now = get_now() + 1  # the dispute's block
        open_ = [p for p in self.model.pending if now < p[2] + WINDOW]  # paused or not
        if not open_:
            return
        epoch = open_[pick % len(open_)][0]
        self.router.dispute(1, epoch, {"from": self.deployer})
        self.model.dispute(epoch, self.deployer.address, self.versions[epoch])

    @rule(cut=st.sampled_from([0, 500, CUT_BPS, 3_000, 5_000]))
    def propose_cut(self, cut: int) -> None:
        """The operator changes its cut; no report is ever split at a cut of another epoch."""
        tx = self.registry.propose_operator_cut(1, cut, {"from": self.operator})
        t = self._now_of(tx)
        self.model.propose_cut(cut, self._epoch_of(t), self._epoch_of(t + WEEK))

    @rule()
    def toggle_node(self) -> None:
        """The operator pauses its node (from the next epoch) or resumes it (from this one)."""
        status = 1 if self.node_paused else 2
        tx = self.registry.set_node_status(1, status, {"from": self.operator})
        epoch = self._epoch_of(self._now_of(tx))
        if self.node_paused:
            first, _ = self.model.inactive.pop()
            self.model.inactive.append((first, epoch))
        else:
            self.model.inactive.append((epoch + 1, None))
        self.node_paused = not self.node_paused

    @rule(sender=st.integers(0, 4), fraction=st.integers(0, 100))
    def transfer_to_pool(self, sender: int, fraction: int) -> None:
        src = self.holders[sender]
        amount = self.model.balances[src.address] * fraction // 100
        tx = self.share.transfer(self.pool, amount, {"from": src})
        self.model.transfer(src.address, self.pool, amount, self._now_of(tx))

    @rule(receiver=st.integers(0, 4))
    def set_pool_receiver(self, receiver: int) -> None:
        """The registrar names a receiver for the pool; what it earned so far goes where it
        was due: to the receiver set until now, or to the pool itself."""
        due_to = self.pool_receiver.address if self.pool_receiver is not None else self.pool
        before = self.coin.balanceOf(due_to)
        tx = self.share.set_revenue_receiver(
            self.pool, self.holders[receiver], {"from": self.deployer}
        )
        self.model.checkpoint(self._now_of(tx))
        self._check_claim(self.pool, self.coin.balanceOf(due_to) - before)
        self.pool_receiver = self.holders[receiver]

    @rule()
    def claim_for_pool(self) -> None:
        if self.pool_receiver is None:
            with brownie.reverts("share: holder has no revenue receiver"):
                self.share.claim_for(self.pool, {"from": self.holders[3]})
            return
        before = self.coin.balanceOf(self.pool_receiver)
        tx = self.share.claim_for(self.pool, {"from": self.holders[3]})
        self.model.checkpoint(self._now_of(tx))
        self._check_claim(self.pool, self.coin.balanceOf(self.pool_receiver) - before)

    @rule()
    def finalize_due(self) -> None:
        """Anyone (here a holder) finalizes every report whose window has passed."""
        now = get_now() + 1  # the finalize block
        due = [p[0] for p in self.model.pending if now >= p[2] + WINDOW]
        if not due:
            return
        if self.paused:
            with brownie.reverts("router: paused"):
                self.router.finalize(1, due, {"from": self.holders[3]})
            return
        tx = self.router.finalize(1, due, {"from": self.holders[3]})
        self.model.finalize(due, self._now_of(tx), self.operator.address, self.treasury.address)

    @rule(
        seconds=st.sampled_from([1, 7, 100, WINDOW, GRACE, UNLOCK - 1, UNLOCK, 5 * UNLOCK, WEEK]),
        keeper=st.booleans(),
    )
    def time_passes(self, seconds: int, keeper: bool) -> None:
        """Time passes; a keeper may then finalize whatever became due."""
        # evm_increaseTime is ignored while anvil's block-time interval is set
        mine_at(get_now() + seconds)
        if keeper:
            self.finalize_due()

    @rule(holder=st.integers(0, 4))
    def claim(self, holder: int) -> None:
        account = self.holders[holder]
        before = self.coin.balanceOf(account)
        tx = self.share.claim({"from": account})
        self.model.checkpoint(self._now_of(tx))
        paid = self.coin.balanceOf(account) - before
        self._check_claim(account.address, paid)

    @rule(holder=st.integers(0, 4), receiver=st.integers(0, 4))
    def claim_to(self, holder: int, receiver: int) -> None:
        account, to = self.holders[holder], self.holders[receiver]
        before = self.coin.balanceOf(to)
        tx = self.share.claim_to(to, {"from": account})
        self.model.checkpoint(self._now_of(tx))
        self._check_claim(account.address, self.coin.balanceOf(to) - before)

    def _check_claim(self, holder: str, paid: int) -> None:
        # a plain int: brownie's Wei truncates a Fraction it is compared with (toward
        # zero), which turned "0 > -0.46" into "0 > 0" and failed a correct claim
        paid = int(paid)
        exact = self.model.earned[holder] - self.model.claimed[holder]
        assert paid <= exact + self._slack()
        assert paid > exact - 1 - self._slack()
        self.model.claimed[holder] += paid

    @rule()
    def toggle_pause(self) -> None:
        if self.paused:
            self.registry.unpause({"from": self.deployer})
        else:
            self.registry.pause({"from": self.deployer})
        self.paused = not self.paused

    @rule(who=st.sampled_from(["operator", "operator2", "treasury", "payer"]))
    def withdraw(self, who: str) -> None:
        accounts_ = {
            "operator": self.operator,
            "operator2": self.operator2,
            "treasury": self.treasury,
            "payer": self.deployer,
        }
        account = accounts_[who]
        before = self.coin.balanceOf(account)
        self.router.withdraw(account, {"from": account})
        paid = self.coin.balanceOf(account) - before
        assert paid == self.model.owed.get(account.address, 0)
        self.model.owed[account.address] = 0
        self.model.withdrawn += paid

    # ------------------------------------------------------- channel rules

    @initialize(exponent=st.integers(0, 9), mantissa=st.integers(1, 9), odd=st.integers(0, 99))
    def open_channels(self, exponent: int, mantissa: int, odd: int) -> None:
        """Every run starts with four of the six channels funded, so few steps still
        redeem."""
        for i, (customer, node) in enumerate(((0, 1), (0, 2), (1, 1), (2, 2))):
            self.deposit(customer, node, exponent, mantissa, (odd + 37 * i) % 100)

    def _operator_of(self, node: int) -> Any:
        return self.operator if node == 1 else self.operator2

    @rule(
        customer=st.integers(0, 2),
        node=st.integers(1, 2),
        exponent=st.integers(0, 9),
        mantissa=st.integers(1, 9),
        odd=st.integers(0, 99),
    )
    def deposit(self, customer: int, node: int, exponent: int, mantissa: int, odd: int) -> None:
        """A customer opens or tops up a channel; during a close's grace that cancels it.
        (``odd`` base units on top, so that the split's rounding is seldom exact.)"""
        account = self.customers[customer]
        amount = mantissa * 10 ** (exponent + self.decimals - 6) + odd
        now = get_now() + 1  # the deposit's block
        ch = self.model.chan(account.address, node)
        reason = None
        if self.paused:
            reason = "channels: paused"
        elif node in self.model.retired_from:
            reason = "channels: node is retired"
        elif ch.closes_at and now >= ch.closes_at:
            reason = "channels: channel closed; withdraw first"
        if reason is not None:
            with brownie.reverts(reason):
                self.channels.deposit(node, amount, {"from": account})
            return
        tx = self.channels.deposit(node, amount, {"from": account})
        assert self._now_of(tx) == now
        assert ("CloseCancelled" in tx.events) == bool(ch.closes_at)
        ch.closes_at = 0
        ch.deposited += amount
        self.model.wallets[account.address] -= amount

    @rule(pick=st.integers(0, 9), late=st.booleans(), mantissa=st.integers(1, 9))
    def top_up_during_grace(self, pick: int, late: bool, mantissa: int) -> None:
        """A customer tops up a channel whose close is in its grace (late: in the grace's
        last second): the close is off, and the node redeems on after the old close time."""
        now = get_now() + 1
        closing = sorted(
            (ch.closes_at, customer, node)
            for (customer, node), ch in self.model.channels.items()
            if ch.closes_at > now
        )
        if not closing:
            return
        closes_at, customer, node = closing[pick % len(closing)]
        if late and closes_at - 2 > get_now():
            mine_at(closes_at - 2)  # the deposit's block is the grace's last second
        self.deposit(self._customer_index(customer), node, 0, mantissa, 1)

    @rule(node=st.integers(1, 2))
    def authorize_signer(self, node: int) -> None:
        """The first customer lets its app's hot key sign for its channel to ``node``
        (again: the revocation is off)."""
        customer = self.customers[0]
        self.channels.authorize_signer(node, self.hot.address, {"from": customer})
        self.model.valid_until[(customer.address, node, self.hot.address)] = FOREVER

    @rule(node=st.integers(1, 2))
    def revoke_signer(self, node: int) -> None:
        """The first customer revokes its hot key: valid for another CLOSE_GRACE seconds
        (never longer than an earlier revocation left it)."""
        customer = self.customers[0]
        key = (customer.address, node, self.hot.address)
        now = get_now() + 1
        until = self.model.valid_until.get(key, 0)
        if until <= now:
            with brownie.reverts("channels: signer not authorised"):
                self.channels.revoke_signer(node, self.hot.address, {"from": customer})
            return
        tx = self.channels.revoke_signer(node, self.hot.address, {"from": customer})
        assert self._now_of(tx) == now
        self.model.valid_until[key] = min(until, now + GRACE)
        assert read(self.channels.signer_valid_until, *key) == self.model.valid_until[key]

    @rule(customer=st.integers(0, 2), node=st.integers(1, 2))
    def request_close(self, customer: int, node: int) -> None:
        account = self.customers[customer]
        ch = self.model.chan(account.address, node)
        now = get_now() + 1
        if ch.closes_at:
            with brownie.reverts("channels: close already requested"):
                self.channels.request_close(node, {"from": account})
        elif ch.deposited == 0:
            with brownie.reverts("channels: no deposit in this channel"):
                self.channels.request_close(node, {"from": account})
        else:
            tx = self.channels.request_close(node, {"from": account})
            assert self._now_of(tx) == now
            ch.closes_at = now + GRACE

    @rule(customer=st.integers(0, 2), node=st.integers(1, 2))
    def withdraw_channel(self, customer: int, node: int) -> None:
        """A customer withdraws the unredeemed rest once its close's grace (or a retired
        node's final window) is over; the channel starts again one generation later."""
        account = self.customers[customer]
        now = get_now() + 1
        at = self.model.withdrawable_at(account.address, node)
        if at is None or now < at:
            reason = "close not requested" if at is None else "grace period not over"
            with brownie.reverts(f"channels: {reason}"):
                self.channels.withdraw(node, {"from": account})
            return
        ch = self.model.chan(account.address, node)
        before = read(self.coin.balanceOf, account.address)
        tx = self.channels.withdraw(node, {"from": account})
        assert self._now_of(tx) == now
        paid = read(self.coin.balanceOf, account.address) - before
        assert paid == ch.unredeemed == tx.events["ChannelWithdrawn"]["amount"]
        self.model.wallets[account.address] += paid
        ch.deposited = ch.redeemed = ch.closes_at = 0
        ch.generation += 1
        ch.signed_max = {}

    @rule()
    def retire_node2(self) -> None:
        """The registrar retires node 2 from the next epoch: no more deposits; its node
        redeems until the final window ends, then customers withdraw without a close."""
        if 2 in self.model.retired_from:
            with brownie.reverts("registry: node is retired"):
                self.registry.set_node_status(2, RETIRED, {"from": self.deployer})
            return
        tx = self.registry.set_node_status(2, RETIRED, {"from": self.deployer})
        self.model.retired_from[2] = self._epoch_of(self._now_of(tx)) + 1
        assert read(self.registry.retired_from, 2) == self.model.retired_from[2]

    @rule(
        pick=st.integers(0, 9),
        then=st.sampled_from(["redeem", "redeem", "withdraw", "deposit", "deposit_late"]),
    )
    def reach_grace_end(self, pick: int, then: str) -> None:
        """Time runs to the last second of a grace: of a close, of a retired node's final
        window or of a revocation. The node redeems in that second and again in the
        next, the end (the second is skipped); the customer withdraws in both (the first
        is refused); or it tops up in the last second (the close is off) or at the end
        (refused)."""
        edges = [
            (end, customer, node, "current")
            for customer, node in self.model.channels
            if (end := self.model.withdrawable_at(customer, node)) is not None
        ] + [
            (until, customer, node, "revoked_signer")
            for (customer, node, _), until in self.model.valid_until.items()
            if until != FOREVER
        ]
        now = get_now()
        edges = sorted(e for e in edges if e[0] - 2 > now)
        if not edges:  # a customer asks to close first
            c, node = self._channel(pick)
            customer = self.customers[c].address
            self.request_close(c, node)
            closes_at = self.model.chan(customer, node).closes_at
            if closes_at - 2 <= get_now():  # refused, or an old close already over
                return
            edges = [(closes_at, customer, node, "current")]
        end, customer, node, kind = edges[pick % len(edges)]
        mine_at(end - 2)  # the next block is the grace's last second
        index = self._customer_index(customer)
        if then == "redeem":  # every block is one second after the one before
            self._redeem([(index, node, kind, 50, 1)], "auto")
            self._redeem([(index, node, kind, 100, 1)], "auto")
        elif then == "withdraw":
            self.withdraw_channel(index, node)
            self.withdraw_channel(index, node)
        else:
            if then == "deposit_late":
                mine_at(end - 1)
            self.deposit(index, node, 0, 1, 0)

    @rule(
        items=st.lists(
            st.tuples(
                st.integers(0, 5),  # channel: those with an unredeemed deposit first
                st.sampled_from(VOUCHER_KINDS),
                st.integers(1, 100),  # percent of the unredeemed deposit it adds
                st.integers(0, 5),  # variant of the kind
            ),
            min_size=1,
            max_size=3,
        ),
        caller=st.sampled_from(["auto"] * 6 + ["attestor", "operator", "operator2", "stranger"]),
    )
    def redeem(self, items: list[tuple[int, str, int, int]], caller: str) -> None:
        """A node (auto: the operator of the batch's node, the attestor for both) redeems
        a batch of signed vouchers, each paid in full or skipped."""
        self._redeem([(*self._channel(pick), *rest) for pick, *rest in items], caller)

    @rule(pick=st.integers(0, 5), percent=st.integers(1, 100), hot=st.booleans())
    def redeem_latest(self, pick: int, percent: int, hot: bool) -> None:
        """The node redeems a channel's latest voucher, by the customer or (hot: the first
        customer's channels) by its hot key if that is valid for the channel's node."""
        channel = (0, 1 + pick % 2) if hot else self._channel(pick)
        self._redeem([(*channel, "current", percent, int(hot))], "auto")

    def _channel(self, pick: int) -> tuple[int, int]:
        # (customer, node): the channels with an unredeemed deposit first
        pairs = sorted(
            ((c, node) for c in range(len(self.customers)) for node in (1, 2)),
            key=lambda p: self.model.chan(self.customers[p[0]].address, p[1]).unredeemed == 0,
        )
        return pairs[pick % len(pairs)]

    @rule(
        pick=st.integers(0, 5),
        exponent=st.integers(0, 9),
        mantissa=st.integers(1, 9),
        odd=st.integers(0, 99),
    )
    def reopen_and_replay(self, pick: int, exponent: int, mantissa: int, odd: int) -> None:
        """A customer closes a channel, the node redeems a voucher in the grace, the
        customer withdraws the rest once it is over and deposits again; the node then
        replays the last vouchers of the closed generation: none draws on the deposit."""
        c, node = self._channel(pick)
        customer = self.customers[c].address
        ch = self.model.chan(customer, node)
        if ch.deposited and not ch.closes_at:
            self.request_close(c, node)
        self._redeem([(c, node, "current", 50, 0)], "auto")
        end = self.model.withdrawable_at(customer, node)
        if end is None:
            return
        if end - 1 > get_now():
            mine_at(end - 1)  # the withdrawal's block is the end of the grace
        self.withdraw_channel(c, node)
        self.deposit(c, node, exponent, mantissa, odd)
        old = [entry for entry in ch.signed if entry[0][2] < ch.generation][-3:]
        if old:
            self._redeem_batch(old, "auto", get_now() + 1)

    def _customer_index(self, address: str) -> int:
        return [c.address for c in self.customers].index(address)

    def _voucher(
        self, c: int, node: int, kind: str, percent: int, variant: int, now: int
    ) -> tuple[VoucherTuple, bytes, str | None]:
        """A voucher of ``kind`` for customer ``c``'s channel to ``node``, as sent: the
        voucher, its signature and who signed exactly that voucher (None: nobody)."""
        if kind == "revoked_signer":
            c = 0  # the customer with the hot key
        customer = self.customers[c].address
        ch = self.model.chan(customer, node)
        if kind == "old" and ch.signed:
            return ch.signed[variant % len(ch.signed)]  # replayed as signed
        signer = customer  # who signs it
        signed_node, sent_node = node, node
        cumulative = ch.redeemed + max(1, ch.unredeemed * percent // 100)
        deadline = FAR_DEADLINE
        tamper = None
        if (
            kind == "current"
            and variant % 2
            and self.model.signer_valid(customer, node, self.hot.address, now)
        ):
            signer = self.hot.address
        elif kind == "old":
            cumulative = ch.redeemed  # nothing signed yet: what was already paid
        elif kind == "over_deposit":
            cumulative = ch.deposited + 1 + ch.deposited * percent // 100
        elif kind == "forged":
            if variant % 3 == 0:
                signer = self.forger.address
            else:
                tamper = "amount" if variant % 3 == 1 else "high_s"
        elif kind == "wrong_node":
            if variant % 2 == 0:
                sent_node = 3 - node  # signed for this node, sent as the other one
            else:
                signed_node = sent_node = 3  # no such node
        elif kind == "wrong_signer":
            others = [a for a in self.keys if a != customer]
            others += [self.hot.address] if c != 0 else []  # not this customer's key
            signer = others[variant % len(others)]
        elif kind == "revoked_signer":
            signer = self.hot.address
        elif kind == "expired":
            deadline = now - 1 + variant % 2  # past, or exactly now (still valid)
        voucher = (signed_node, customer, ch.generation, cumulative, deadline)
        sig = sign_voucher(
            Voucher(
                node_id=signed_node,
                customer=customer,
                generation=ch.generation,
                cumulative=cumulative,
                deadline=deadline,
            ),
            self.signing_keys[signer],
            self.domain,
            self.separator,
        ).get_signature_bytes()
        if signed_node in (1, 2):
            target = self.model.chan(customer, signed_node)
            target.signed_max[signer] = max(target.signed_max.get(signer, 0), cumulative)
            target.signed = [*target.signed[-7:], (voucher, sig, signer)]
        sent = (sent_node, customer, ch.generation, cumulative, deadline)
        if sent_node != signed_node:
            return sent, sig, None
        if tamper == "amount":
            return (*sent[:3], cumulative + 1, deadline), sig, None
        if tamper == "high_s":
            s = SECP256K1_N - int.from_bytes(sig[32:64], "big")
            return sent, sig[:32] + s.to_bytes(32, "big") + bytes([55 - sig[64]]), None
        return sent, sig, signer

    def _redeem(self, items: list[tuple[int, int, str, int, int]], caller_name: str) -> None:
        now = get_now() + 1  # the redemption's block
        self._redeem_batch([self._voucher(*item, now) for item in items], caller_name, now)

    def _redeem_batch(
        self, batch: list[tuple[VoucherTuple, bytes, str | None]], caller_name: str, now: int
    ) -> None:
        """Sends the batch at ``now``; every voucher's outcome and the credits are the
        model's."""
        nodes = {voucher[0] for voucher, _, _ in batch}
        if caller_name == "auto":
            caller_name = {1: "operator", 2: "operator2"}.get(min(nodes), "attestor")
            if len(nodes) > 1:
                caller_name = "attestor"
        caller = {
            "operator": self.operator,
            "operator2": self.operator2,
            "attestor": self.attestor,
            "stranger": self.holders[3],
        }[caller_name]
        expected = []
        for voucher, _, signer in batch:
            node = voucher[0]
            runs_it = node in (1, 2) and caller in (self._operator_of(node), self.attestor)
            amount, reason = self.model.check(voucher, signer, runs_it, now)
            if reason == 0:
                self.model.chan(voucher[1], node).redeemed = voucher[3]
                self.model.redeemed_total += amount
            expected.append((amount, reason))
        tx = self.channels.redeem_many(
            [v for v, _, _ in batch], b"".join(s for _, s, _ in batch), {"from": caller}
        )
        assert self._now_of(tx) == now
        epoch = self._epoch_of(now)
        outcomes = [
            (int(e["amount"]), 0) if e.name == "VoucherRedeemed" else (0, int(e["reason"]))
            for e in tx.events
            if e.name in ("VoucherRedeemed", "VoucherSkipped")
        ]
        for (voucher, _, _), want, got in zip(batch, expected, outcomes, strict=True):
            # a valid voucher is never skipped, nor is a bad one ever paid
            assert got == want, (voucher, caller_name, now, want, got)
        if "VoucherRedeemed" in tx.events:
            assert {int(e["epoch"]) for e in tx.events["VoucherRedeemed"]} == {epoch}
        # one credit per run of one node's vouchers, each split (and rounded) on its own
        runs: list[list[int]] = []
        for (voucher, _, _), (amount, _) in zip(batch, expected, strict=True):
            if runs and runs[-1][0] == voucher[0]:
                runs[-1][1] += amount
            else:
                runs.append([voucher[0], amount])
        credits = [(node, amount) for node, amount in runs if amount]
        got = [
            (int(e["node_id"]), int(e["epoch"]), int(e["amount"]))
            for e in tx.events
            if e.name == "ChannelRevenue"
        ]
        assert got == [(node, epoch, amount) for node, amount in credits]
        for node, amount in credits:
            operator = self._operator_of(node).address
            self.model.credit(node, amount, epoch, now, operator, self.treasury.address)
        nodes = sorted({node for node, _ in credits})
        on_chain = read_all(*[(self.router.channel_revenue, node, epoch) for node in nodes])
        assert on_chain == [self.model.channel_revenue[(node, epoch)] for node in nodes]

    # ----------------------------------------------------------- invariants

    def _slack(self) -> Fraction:
        # docs/SPEC.md "Rounding": S / 2**128 per balance change, on top of the floor
        return Fraction((self.model.balance_changes + 1) * SUPPLY, MAGNITUDE)

    @invariant()
    def every_invariant_holds(self) -> None:
        now = get_now()
        coin, share, router = self.coin, self.share, self.router
        *values, unvested, share_balance, router_balance, owed, pending = read_all(
            *[(share.claimable, a) for a in self.addresses],
            (share.unvested,),
            (coin.balanceOf, share.address),
            (coin.balanceOf, router.address),
            (router.total_owed,),
            (router.total_pending,),
        )
        # plain ints, not Wei (see _check_claim)
        claimable = {a: int(v) for a, v in zip(self.addresses, values, strict=True)}
        # 1. solvency: every claim and withdrawal can be paid
        assert router_balance >= owed
        assert share_balance >= sum(claimable.values()) + unvested
        # 2. conservation, with bounded dust (at most 1 base unit per holder); node 2's
        # share token holds the holders' part of its channel revenue
        assert router_balance == owed + pending
        assert pending == sum(p[1] for p in self.model.pending)
        share2_balance, share2_distributed, distributed = read_all(
            (coin.balanceOf, self.share2.address),
            (self.share2.total_distributed,),
            (share.total_distributed,),
        )
        assert share2_balance == share2_distributed == self.model.share2_in
        assert distributed == self.model.distributed
        claimed = sum(self.model.claimed.values())
        dust = share_balance - sum(claimable.values()) - unvested
        accounted = claimed + sum(claimable.values()) + unvested + owed + pending + dust
        assert self.model.paid_in == accounted + self.model.withdrawn + share2_balance
        assert 0 <= dust <= len(self.addresses)
        assert owed == sum(self.model.owed.values())
        assert unvested == self.model.unvested - self.model.vested(now)
        # 4. every holder agrees with the exact model within the documented rounding
        for address, value in claimable.items():
            exact = self.model.claimable(address, now)
            assert exact - 1 - self._slack() < value <= exact + self._slack(), (
                address,
                value,
                float(exact),
            )

    @invariant()
    def channels_hold_exactly_what_they_owe(self) -> None:
        model, channels = self.model, self.channels
        used = [k for k, ch in model.channels.items() if ch.deposited or ch.generation]
        held, total_unredeemed, redeemed, channel_revenue, *rest = read_all(
            (self.coin.balanceOf, channels.address),
            (channels.total_unredeemed,),
            (channels.total_redeemed,),
            (self.router.total_channel_revenue,),
            *[(self.coin.balanceOf, c.address) for c in self.customers],
            *[(channels.channel, customer, node) for customer, node in used],
        )
        unredeemed = sum(ch.unredeemed for ch in model.channels.values())
        assert held == total_unredeemed == unredeemed
        assert redeemed == channel_revenue == model.redeemed_total
        assert model.redeemed_total == sum(model.channel_revenue.values())
        # a customer never loses an unredeemed deposit: all it had is in its wallet, in
        # its channels or paid by a voucher it signed
        wallets = dict(zip([c.address for c in self.customers], rest, strict=False))
        assert wallets == model.wallets
        assert sum(wallets.values()) + held + redeemed == self.wealth
        # channels never used are as they started (covered by the totals)
        for (customer, node), on_chain in zip(used, rest[len(wallets) :], strict=True):
            ch = model.channels[(customer, node)]
            withdrawable_at = model.withdrawable_at(customer, node) or 0
            assert tuple(on_chain)[:6] == (
                ch.deposited,
                ch.redeemed,
                ch.unredeemed,
                ch.generation,
                ch.closes_at,
                withdrawable_at,
            ), (customer, node)
            # no voucher paid more than the customer, or a signer it authorised at some
            # time (a signature has no date: authorising a key validates what it signed
            # before), signed in this generation
            keys = {customer} | {s for c, n, s in model.valid_until if (c, n) == (customer, node)}
            assert ch.redeemed <= max((ch.signed_max.get(k, 0) for k in keys), default=0)


@pytest.fixture(scope="module")
def machine_env(
    attestor_key: str,
    deploy: Any,
    deployer: Any,
    operator: Any,
    attestor: Any,
    investor: Any,
    investor2: Any,
    stranger: Any,
    treasury: Any,
) -> Any:
    def build(decimals: int) -> dict[str, Any]:
        coin = brownie.project.get_loaded_projects()[0].MockStablecoin.deploy(
            f"USD{decimals}", f"U{decimals}", decimals, {"from": deployer}
        )
        suite = deploy(
            stablecoin=coin.address,
            unlock_period=UNLOCK,
            protocol_fee_bps=FEE_BPS,
            challenge_period=WINDOW,
            epoch_length=1,
        )
        tx = Transactor(web3, Signer(address=deployer.address))
        node_id = send_register_node(
            tx,
            suite,
            NodeSpec(
                operator=operator.address,
                attestor=attestor.address,
                shares=SUPPLY,
                price_per_1k=PRICE * 10 ** (decimals - 6),
                operator_cut_bps=CUT_BPS,
                region="Mumbai",
            ),
        )
        assert node_id == 1
        # node 2: another operator, paid only through channels (and retired by a rule)
        operator2 = accounts.add(Account.create().key.to_0x_hex())
        node2 = NodeSpec(
            operator=operator2.address,
            attestor=attestor.address,
            shares=SUPPLY,
            price_per_1k=PRICE * 10 ** (decimals - 6),
            operator_cut_bps=CUT2_BPS,
            region="Jakarta",
        )
        assert send_register_node(tx, suite, node2) == 2
        deployer.transfer(operator2, 10**18)  # after the registry's txs: tx keeps the nonce
        router = brownie_contract("RevenueRouter", suite.router.address)
        channels = brownie_contract("PaymentChannels", suite.channels.address)
        assert channels.CLOSE_GRACE() == GRACE
        coin.mint(deployer, 10**40, {"from": deployer})
        coin.approve(router, 2**256 - 1, {"from": deployer})
        # customers: the dev accounts no other role uses
        keys = build_dev_keys(10)
        customers = [accounts[i] for i in (5, 8, 9)]
        for customer in customers:
            coin.mint(customer, 10**36, {"from": deployer})
            coin.approve(channels, 2**256 - 1, {"from": customer})
        domain = fetch_channels_domain(suite)
        pool = brownie.project.get_loaded_projects()[0].MockStablecoin.deploy(
            "Pool", "POOL", 6, {"from": deployer}
        )
        key_holder = accounts.add(Account.create().key.to_0x_hex())
        deployer.transfer(key_holder, 10**18)
        share = brownie_contract("NodeShare", suite.registry.call("share_token", 1))
        # uneven holdings from the start, so every payout has fractional entitlements
        for holder, amount in (
            (investor, SUPPLY // 3),
            (investor2, 123_456_789_123_456_789_012),
            (key_holder, 7 * SHARES + 1),
        ):
            share.transfer(holder, amount, {"from": operator})
        return {
            "payer": Payer(suite, attestor_key, deployer),
            "share": share,
            "router": router,
            "coin": brownie_contract("MockStablecoin", coin.address),
            "registry": brownie_contract("NodeRegistry", suite.registry.address),
            "deployer": deployer,
            "operator": operator,
            "treasury": treasury,
            "holders": [operator, investor, investor2, stranger, key_holder],
            "key_holder": key_holder,
            "pool": pool.address,
            "channels": channels,
            "share2": brownie_contract("NodeShare", suite.registry.call("share_token", 2)),
            "operator2": operator2,
            "attestor": attestor,
            "customers": customers,
            "customer_keys": {accounts[i].address: keys[i] for i in (5, 8, 9)},
            "hot": Account.create(),  # the first customer's app key
            "forger": Account.create(),  # a key nobody authorised
            "domain": domain,
            "separator": domain.get_separator(),
        }

    return build


def _patient(await_confirmation: Any) -> Any:
    """brownie's wait for a sent transaction, minus a false "Tx dropped".

    anvil can count a sender's transaction (its nonce) a moment before it serves the
    transaction's receipt (foundry-rs/foundry#10944); brownie's confirmation thread then
    calls the transaction dropped ("Tx dropped without known replacement"), although it
    was mined. Over the ~1,500 transactions of a run that happened about once in ten
    runs. Only then, this waits for the receipt and takes the transaction as mined.
    """

    def wait(self: Any, receipt: Any, required_confs: int, *args: Any) -> Any:
        try:
            return await_confirmation(self, receipt, required_confs, *args)
        except TransactionError:
            if receipt.status != -2:
                raise
            web3.eth.wait_for_transaction_receipt(receipt.txid, timeout=10, poll_latency=0.05)
            name = ".".join(n for n in (receipt.contract_name, receipt.fn_name) if n)
            mined = TransactionReceipt(
                receipt.txid, self, silent=True, required_confs=required_confs, name=name
            )
            history._add_tx(mined)  # in place of the dropped one, which it forgets
            return mined

    return wait


@pytest.mark.parametrize("decimals", [6, 18])
def test_accounting__matches_exact_model_and_keeps_invariants(
    machine_env: Any, decimals: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        _PrivateKeyAccount,
        "_await_confirmation",
        _patient(_PrivateKeyAccount._await_confirmation),
    )
    env = machine_env(decimals)

    class Machine(AccountingMachine):
        pass

    Machine.decimals = decimals
    Machine.env = env
    run_state_machine_as_test(Machine, settings=PROFILE)
