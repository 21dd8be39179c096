"""The poster against a chain that loses, starves or takes back its transactions.

Each test runs its own anvil and breaks it on purpose: a transaction dropped from the
pool, a base fee that jumps above what every sent transaction offers, a reorganisation
that removes blocks holding settlements. In each case every report ends up settled
exactly once, the payer pays exactly once per report, and no nonce is left as a gap.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from edgeshare.attestation import SignedReport, sign
from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.config import MAX_FEE_ENV, load_settings
from edgeshare.deploy import build_params, deploy_suite
from edgeshare.errors import InputError, TransactionFailed
from edgeshare.pipeline import raise_fees
from edgeshare.poster import fetch_settled, post_reports
from edgeshare.rpc import RpcClient, get_rpc
from edgeshare.signer import Signer
from edgeshare.suite import (
    NodeSpec,
    Suite,
    UsageReport,
    fetch_domain_of,
    send_increase_time,
    send_mint_mock,
    send_register_node,
)
from edgeshare.tx import Transactor

EPOCH = 60
PRICE = 2_000
NODES = 4
EPOCHS = 25  # 100 reports: 10 transactions of 10, after one approval


@dataclass
class World:
    chain: LocalChain
    w3: Web3
    rpc: RpcClient
    suite: Suite
    payer: Transactor
    reports: list[SignedReport]

    def coin_balance(self, who: str) -> int:
        return int(self.suite.stablecoin.call("balanceOf", who))

    def mined_nonce(self) -> int:
        return int(self.w3.eth.get_transaction_count(self.payer.signer.address, "latest"))

    def pending_hashes(self) -> dict[int, str]:
        """Nonce -> hash of the payer's transactions waiting in anvil's pool."""
        content = self.rpc.call("txpool_content", [])["pending"]
        me = self.payer.signer.address.lower()
        mine = next((txs for sender, txs in content.items() if sender.lower() == me), {})
        return {int(nonce): tx["hash"] for nonce, tx in mine.items()}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    keys = build_dev_keys(4)
    with LocalChain("anvil") as chain:
        w3 = connect(chain.url)
        issuer = Transactor(w3, Signer.from_key(keys[0]))
        params = build_params(None, epoch_length=EPOCH, challenge_period=3_600)
        suite = Suite.load(w3, deploy_suite(issuer, params, tmp_path / "m.json").manifest)
        attestor = Signer.from_key(keys[2])
        for _ in range(NODES):
            spec = NodeSpec(
                operator=Signer.from_key(keys[1]).address, attestor=attestor.address,
                shares=10**18, price_per_1k=PRICE, operator_cut_bps=1_000, region="Lagos",
            )  # fmt: skip
            send_register_node(issuer, suite, spec)
        payer = Transactor(w3, Signer.from_key(keys[3]), timeout=90)
        send_mint_mock(issuer, suite, payer.signer.address, 10**15)
        send_increase_time(w3, (EPOCHS + 1) * EPOCH)
        domain = fetch_domain_of(suite)
        deadline = int(w3.eth.get_block("latest")["timestamp"]) + 86_400
        reports = [
            sign(
                UsageReport(
                    node_id=node, epoch=epoch, inferences=1_000 + epoch,
                    revenue=(1_000 + epoch) * PRICE // 1000, latency_ms=40,
                    uptime_bps=9_990, deadline=deadline,
                ),
                keys[2], domain,
            )
            for node in range(1, NODES + 1)
            for epoch in range(EPOCHS)
        ]  # fmt: skip
        yield World(chain, w3, get_rpc(w3), suite, payer, reports)


def _post(world: World, on_progress: Any) -> Any:
    return post_reports(
        world.payer, world.suite, world.reports, fetch_domain_of(world.suite),
        batch_size=10, on_progress=on_progress,
    )  # fmt: skip


def _stop_mining_after_the_approval(world: World, stage: str, done: int, total: int) -> None:
    if stage == "mined" and done == total == 1:
        world.rpc.call("evm_setAutomine", [False])


def _assert_all_settled_once(world: World, paid_before: int, nonce_before: int, txs: int) -> None:
    assert all(fetch_settled(world.suite, world.reports))
    owed = sum(r.revenue for r in world.reports)
    assert paid_before - world.coin_balance(world.payer.signer.address) == owed
    assert world.coin_balance(world.suite.router.address) >= owed
    # every nonce used once, none left waiting
    assert world.mined_nonce() == nonce_before + txs
    assert world.pending_hashes() == {}


def test_a_dropped_transaction_is_sent_again(world: World) -> None:
    """anvil_dropTransaction removes one settlement from the pool; the ones after it wait
    on the gap until the poster sends it again."""
    paid, nonce = world.coin_balance(world.payer.signer.address), world.mined_nonce()
    dropped: list[str] = []

    def on_progress(stage: str, done: int, total: int) -> None:
        _stop_mining_after_the_approval(world, stage, done, total)
        if stage == "sent" and total == 10 and not dropped:
            pool = world.pending_hashes()
            assert len(pool) == total == 10
            dropped.append(pool[nonce + 4])
            assert world.rpc.call("anvil_dropTransaction", [dropped[0]]) == dropped[0]
            assert nonce + 4 not in world.pending_hashes()
            world.rpc.call("evm_setIntervalMining", [1])

    result = _post(world, on_progress)
    assert dropped and result.settled == len(world.reports)
    assert dropped[0] in result.transactions  # the same transaction, sent again
    _assert_all_settled_once(world, paid, nonce, 11)


def test_transactions_priced_out_by_the_base_fee_are_replaced(world: World) -> None:
    """The base fee jumps 100x after every settlement was sent, so none can be mined at its
    fee (anvil then evicts them); the poster re-signs them at the new fees, same nonces."""
    paid, nonce = world.coin_balance(world.payer.signer.address), world.mined_nonce()
    first_sent: dict[int, str] = {}

    def on_progress(stage: str, done: int, total: int) -> None:
        _stop_mining_after_the_approval(world, stage, done, total)
        if stage == "sent" and total == 10 and not first_sent:
            first_sent.update(world.pending_hashes())
            base = int(world.w3.eth.get_block("latest")["baseFeePerGas"])
            world.rpc.call("anvil_setNextBlockBaseFeePerGas", [hex(base * 100)])
            world.rpc.call("evm_setIntervalMining", [1])

    result = _post(world, on_progress)
    assert len(first_sent) == 10
    assert result.settled == len(world.reports)
    # every transaction mined is a replacement, none of the first versions
    assert not set(result.transactions) & set(first_sent.values())
    for tx_hash in result.transactions:
        mined = world.w3.eth.get_transaction(tx_hash)
        assert mined["nonce"] in first_sent
    _assert_all_settled_once(world, paid, nonce, 11)


def test_settlements_removed_by_a_reorg_are_posted_again(world: World) -> None:
    """anvil_reorg takes back the newest block holding settlements (and any empty one after
    it) right after their receipts arrived; the poster reads the settlements back and posts
    exactly those."""
    paid, nonce = world.coin_balance(world.payer.signer.address), world.mined_nonce()
    lost: list[int] = []

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage == "mined" and done == total == 10 and not lost:
            # back to the newest block holding a transaction (on a loaded machine an empty
            # block may follow it before this runs)
            head = world.w3.eth.block_number
            depth = next(d for d in range(1, 9)
                         if world.w3.eth.get_block(head - d + 1)["transactions"])  # fmt: skip
            world.rpc.call("anvil_reorg", [depth, []])
            lost.append(fetch_settled(world.suite, world.reports).count(False))

    result = _post(world, on_progress)
    assert lost and lost[0] >= 10  # at least one settlement transaction was undone
    assert result.reposted == lost[0]
    assert result.settled == len(world.reports)
    assert result.revenue == sum(r.revenue for r in world.reports)
    assert len(result.transactions) == 10  # those kept, and those sent again
    # the undone transactions were signed again with the nonces they had
    _assert_all_settled_once(world, paid, nonce, 11)
    # and a second run finds nothing to do
    again = _post(world, None)
    assert (again.settled, again.already_settled) == (0, len(world.reports))


def test_replacement_fees_rise_at_least_an_eighth() -> None:
    old = {"maxFeePerGas": 1_000, "maxPriorityFeePerGas": 8}
    assert raise_fees(old, {"maxFeePerGas": 10, "maxPriorityFeePerGas": 1}) == {
        "maxFeePerGas": 1_126,
        "maxPriorityFeePerGas": 10,
    }
    # the chain's own price wins when higher
    assert raise_fees(old, {"maxFeePerGas": 5_000, "maxPriorityFeePerGas": 50}) == {
        "maxFeePerGas": 5_000,
        "maxPriorityFeePerGas": 50,
    }
    assert raise_fees({"gasPrice": 80}, {"gasPrice": 10}) == {"gasPrice": 91}


def test_burst_bigger_than_a_block__automining_anvil_is_nudged(world: World) -> None:
    """anvil automines when a transaction arrives; 25 settlements sent at once into
    blocks that hold four leave some ready but unmined, waiting for an arrival that
    never comes. The poster asks the local chain to mine instead of waiting out its
    replacement delay (the payer's timeout here is shorter than that delay)."""
    reports = [r for r in world.reports if r.node_id == 1]
    assert len(reports) == EPOCHS
    world.payer.timeout = 15
    world.rpc.call("evm_setBlockGasLimit", [hex(600_000)])
    domain = fetch_domain_of(world.suite)
    result = post_reports(world.payer, world.suite, reports, domain, batch_size=1)
    assert result.settled == EPOCHS
    assert all(fetch_settled(world.suite, reports))


def test_fee_ceiling__never_exceeded_even_by_replacements(world: World) -> None:
    """With a ceiling below what the jumped base fee needs, the settlements are re-sent
    at the ceiling at most and the poster gives up naming the stuck nonce: an operator's
    limit is not overridden to get a transaction through."""
    base = int(world.w3.eth.get_block("latest")["baseFeePerGas"])
    ceiling = 5 * base
    world.payer.max_fee_per_gas = ceiling
    world.payer.timeout = 12
    assert world.payer.build_fees()["maxFeePerGas"] <= ceiling
    offered: list[int] = []

    def on_progress(stage: str, done: int, total: int) -> None:
        _stop_mining_after_the_approval(world, stage, done, total)
        if stage == "sent" and total == 10 and not offered:
            offered.append(0)
            world.rpc.call("anvil_setNextBlockBaseFeePerGas", [hex(base * 100)])
            world.rpc.call("evm_setIntervalMining", [1])
        if stage == "mined":
            pool = world.rpc.call("txpool_content", [])["pending"]
            offered.extend(
                int(tx["maxFeePerGas"], 16) for txs in pool.values() for tx in txs.values()
            )

    with pytest.raises(TransactionFailed, match=r"not mined after 12s .* most allowed"):
        _post(world, on_progress)
    assert max(offered) <= ceiling


@pytest.mark.parametrize("value", ["0", "-3", "1.5", "lots"])
def test_fee_ceiling__bad_setting_is_refused(value: str) -> None:
    with pytest.raises(InputError, match=MAX_FEE_ENV):
        load_settings({MAX_FEE_ENV: value})
    assert load_settings({MAX_FEE_ENV: "30"}).max_fee_per_gas == 30 * 10**9
    assert load_settings({}).max_fee_per_gas is None
