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

brownie's own ``state_machine`` helper is broken under brownie 1.22.2, so this is
hypothesis' ``RuleBasedStateMachine`` with ``chain.snapshot()``/``chain.revert()``.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Any, ClassVar

import brownie
import pytest
from brownie import accounts, chain, web3
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

from edgeshare.signer import Signer
from edgeshare.suite import NodeSpec, send_register_node
from edgeshare.tx import Transactor
from tests.conftest import (
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
    max_examples=300 if LONG else 12,
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


class Model:
    """Exact reference: integer vesting exactly as specified, then pro-rata in fractions."""

    def __init__(self, holders: list[str]) -> None:
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
        if holders == 0:
            return
        self.checkpoint(now)
        self.unvested += holders
        self.vest_last, self.vest_end = now, now + UNLOCK

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
        chain.snapshot()
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
        self.model = Model(self.addresses)
        for address in self.addresses:
            self.model.balances[address] = int(self.share.balanceOf(address))
        assert sum(self.model.balances.values()) == SUPPLY
        self.paused = False
        self.node_paused = False
        self.genesis = int(self.registry.GENESIS())
        self.versions: dict[int, int] = {}  # epoch -> version of its live report
        self.pool_receiver: Any = None

    def teardown(self) -> None:
        web3.provider.make_request("anvil_removeBlockTimestampInterval", [])
        chain.revert()

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

    @rule(exponent=st.integers(0, 12), mantissa=st.integers(1, 9))
    def settle_report(self, exponent: int, mantissa: int) -> None:
        """The payer settles the next unsettled epoch; the backlog of epochs that ended
        while the node was active settles even after the node was paused."""
        gross = mantissa * 10 ** (exponent + self.decimals - 6)
        epoch = self.payer.take_epoch(1)
        signed = self._sign(epoch, gross)
        if self.paused:
            with brownie.reverts("router: paused"):
                self.router.settle(*report_args(signed), {"from": self.deployer})
        elif not self.model.is_active(epoch):
            with brownie.reverts("router: node not active in that epoch"):
                self.router.settle(*report_args(signed), {"from": self.deployer})
        else:
            tx = self.router.settle(*report_args(signed), {"from": self.deployer})
            self.model.settle(epoch, gross, self._now_of(tx))
            self.versions[epoch] = 0

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
        tx = self.router.settle(*report_args(signed), {"from": self.deployer})
        del self.model.disputed[epoch]
        self.model.settle(epoch, gross, self._now_of(tx))
        self.versions[epoch] = disputed + 1

    @rule()
    def zero_report_from_a_stranger(self) -> None:
        """Whoever holds the attestor's key cannot close an epoch for free from any account."""
        epoch = self.payer.take_epoch(1)
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
        seconds=st.sampled_from([1, 7, 100, WINDOW, UNLOCK - 1, UNLOCK, 5 * UNLOCK, WEEK]),
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

    @rule(who=st.sampled_from(["operator", "treasury", "payer"]))
    def withdraw(self, who: str) -> None:
        accounts_ = {"operator": self.operator, "treasury": self.treasury, "payer": self.deployer}
        account = accounts_[who]
        before = self.coin.balanceOf(account)
        self.router.withdraw(account, {"from": account})
        paid = self.coin.balanceOf(account) - before
        assert paid == self.model.owed.get(account.address, 0)
        self.model.owed[account.address] = 0
        self.model.withdrawn += paid

    # ----------------------------------------------------------- invariants

    def _slack(self) -> Fraction:
        # docs/SPEC.md "Rounding": S / 2**128 per balance change, on top of the floor
        return Fraction((self.model.balance_changes + 1) * SUPPLY, MAGNITUDE)

    @invariant()
    def every_invariant_holds(self) -> None:
        now = get_now()
        claimable = {a: int(self.share.claimable(a)) for a in self.addresses}  # not Wei
        unvested = self.share.unvested()
        share_balance = self.coin.balanceOf(self.share)
        router_balance = self.coin.balanceOf(self.router)
        owed = self.router.total_owed()
        # 1. solvency: every claim and withdrawal can be paid
        assert router_balance >= owed
        assert share_balance >= sum(claimable.values()) + unvested
        # 2. conservation, with bounded dust (at most 1 base unit per holder)
        pending = self.router.total_pending()
        assert router_balance == owed + pending
        assert pending == sum(p[1] for p in self.model.pending)
        claimed = sum(self.model.claimed.values())
        dust = share_balance - sum(claimable.values()) - unvested
        accounted = claimed + sum(claimable.values()) + unvested + owed + pending + dust
        assert self.model.paid_in == accounted + self.model.withdrawn
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
        router = brownie_contract("RevenueRouter", suite.router.address)
        coin.mint(deployer, 10**40, {"from": deployer})
        coin.approve(router, 2**256 - 1, {"from": deployer})
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
        }

    return build


@pytest.mark.parametrize("decimals", [6, 18])
def test_accounting__matches_exact_model_and_keeps_invariants(
    machine_env: Any, decimals: int
) -> None:
    env = machine_env(decimals)

    class Machine(AccountingMachine):
        pass

    Machine.decimals = decimals
    Machine.env = env
    run_state_machine_as_test(Machine, settings=PROFILE)
