"""The revenue accounting, driven at random beside an exact model in fractions.

Each step is a user action on the real contracts (transfers, transfers to self, permit,
signed usage reports settled for revenue from 1 base unit up, disputes inside the
challenge window, finalization after it, time passing, claims, claims to another
address, pause, withdrawals) and the same action on ``Model``. After every step all
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
WINDOW = 300
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
        self.owed: dict[str, int] = {}
        self.withdrawn = 0
        self.balance_changes = 0

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

    def dispute(self, epoch: int, payer: str) -> None:
        (item,) = [p for p in self.pending if p[0] == epoch]
        self.pending.remove(item)
        self.owed[payer] = self.owed.get(payer, 0) + item[1]

    def finalize(self, epochs: list[int], now: int, operator: str, treasury: str) -> None:
        items = [p for p in self.pending if p[0] in epochs]
        for item in items:
            self.pending.remove(item)
        # per report, each rounded down; holders take the rest
        fee = sum(g * FEE_BPS // 10_000 for _, g, _ in items)
        cut = sum(g * CUT_BPS // 10_000 for _, g, _ in items)
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
        self.payer: Payer = env["payer"]
        self.payer.next_epoch.clear()
        self.addresses = [h.address for h in self.holders]
        self.model = Model(self.addresses)
        for holder in self.holders:
            self.model.balances[holder.address] = int(self.share.balanceOf(holder))
        assert sum(self.model.balances.values()) == SUPPLY
        self.paused = False

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

    @rule(exponent=st.integers(0, 12), mantissa=st.integers(1, 9))
    def settle_report(self, exponent: int, mantissa: int) -> None:
        gross = mantissa * 10 ** (exponent + self.decimals - 6)
        if self.paused:
            epoch = self.payer.take_epoch(1)
            signed = sign_report(
                self.payer.suite,
                self.payer.key,
                node_id=1,
                epoch=epoch,
                inferences=gross // 10 ** (self.decimals - 6),
            )
            with brownie.reverts("router: paused"):
                self.router.settle(*report_args(signed), {"from": self.deployer})
            return
        epoch, tx = self.payer.settle(1, gross)
        self.model.settle(epoch, gross, self._now_of(tx))

    @rule(pick=st.integers(0, 9))
    def dispute(self, pick: int) -> None:
        now = get_now() + 1  # the dispute's block
        open_ = [p for p in self.model.pending if self.paused or now < p[2] + WINDOW]
        if not open_:
            return
        epoch = open_[pick % len(open_)][0]
        self.router.dispute(1, epoch, {"from": self.deployer})
        self.model.dispute(epoch, self.deployer.address)

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
        seconds=st.sampled_from([1, 7, 100, WINDOW, UNLOCK - 1, UNLOCK, 5 * UNLOCK]),
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
        key_holder = accounts.add(Account.create().key.to_0x_hex())
        deployer.transfer(key_holder, 10**18)
        share = brownie_contract("NodeShare", suite.registry.functions.share_token(1).call())
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
