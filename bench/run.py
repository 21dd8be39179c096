"""`make bench`: gas against the EVM floor, flat cost at scale, attestation and indexing
throughput, payment channels (redeem_many gas, the gateway's voucher check rate), the
capital contracts (portfolio claim, basket, market and offering gas), the node software
(an epoch's metering, the gateway's overhead; bench/node.py), the web app (API latency
and the board page's load in headless chromium; bench/web_app.py). Starts its own
anvil, writes bench/results.json and bench/RESULTS.md, and refreshes the results table
in README.md and docs/GAS.md.

Every figure is measured in the same run as its reference (a floor, the smallest case,
the raw rate of the same chain), so each ratio holds even on a noisy machine. Gas is
deterministic; rates are not, and are reported as measured.
"""

from __future__ import annotations

import json
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from coincurve import PublicKey as CurvePublicKey
from eth_account import Account
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # for tests.pg
import floors
import node as node_bench
import reads
import web_app as web_bench

from edgeshare import models as models_module
from edgeshare.attestation import Eip712Domain, SignedReport, sign, sign_digest
from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.channels import (
    MAX_BATCH,
    Voucher,
    VoucherChecker,
    fetch_channels_domain,
    get_voucher_digest,
    send_deposit,
    sign_voucher,
)
from edgeshare.contracts import get_codec
from edgeshare.deploy import build_params, deploy_suite
from edgeshare.indexer import Indexer, open_db
from edgeshare.nodes import NodeEntry, register_nodes
from edgeshare.pipeline import send_pipelined
from edgeshare.poster import encode_settle_many, post_reports
from edgeshare.rpc import RpcError, get_rpc
from edgeshare.signer import Signer
from edgeshare.suite import (
    Suite,
    UsageReport,
    fetch_domain_of,
    send_approve_if_needed,
    send_increase_time,
    send_mint_mock,
)
from edgeshare.tx import Transactor
from tests.pg import find_postgres_bin, running_postgres

ROOT = Path(__file__).resolve().parents[1]
EPOCH = 60
CHALLENGE = 3_600  # the shortest challenge window the router allows
SHARES = 10**18
QUICK = "--quick" in sys.argv  # a smaller run, for trying the script out
REDEEM_MARGINAL_BOUND = 30_000
"""redeem_many: gas per voucher after the 10th, at most (the channels issue's bound)."""
CHECKS_TARGET = 10_000
"""VoucherChecker.check_fields: checks per second on one core, at least, without RPC."""
PORTFOLIO_SIZES = (1, 5, 20, 64)
"""Tokens per measured claim_many (64: the claimer's MAX_TOKENS)."""
PORTFOLIO_BASE, PORTFOLIO_PER_TOKEN = 21_000, 32_000
"""The portfolio claim's target (its issue): claim_many over N tokens costs at most
21,000 + 32,000 x N gas."""
BASKET_COMPONENTS = 5
USDC = 10**6  # the mock stablecoin has 6 decimals
UNLIMITED = 2**256 - 1  # an allowance that is read, never written


class Bench:
    """One benchmark run on one fresh anvil."""

    def __init__(self, w3: Web3, keys: list[str], workdir: Path) -> None:
        self.w3 = w3
        self.keys = keys
        self.issuer = Transactor(w3, Signer.from_key(keys[0]))
        self.operator = Transactor(w3, Signer.from_key(keys[1]))
        self.attestor_key = keys[2]
        self.investor = Transactor(w3, Signer.from_key(keys[3]))
        self.newcomer = Transactor(w3, Signer.from_key(keys[4]))
        params = build_params(
            None, epoch_length=EPOCH, challenge_period=CHALLENGE, unlock_period=EPOCH
        )
        manifest = deploy_suite(self.issuer, params, workdir / "manifest.json").manifest
        self.suite = Suite.load(w3, manifest)
        self.rpc = get_rpc(w3)
        self.domain = fetch_domain_of(self.suite)
        self.separator = self.domain.get_separator()
        send_mint_mock(self.issuer, self.suite, self.issuer.signer.address, 10**30)
        send_approve_if_needed(
            self.issuer, self.suite.stablecoin, self.suite.router.address, 2**255
        )
        self.next_epoch: dict[int, int] = {}
        self.registered = 0
        self.floor_items: dict[str, list[tuple[str, int]]] = {}

    # ------------------------------------------------------------ helpers

    def register(self, count: int, attestor: str | None = None) -> tuple[list[int], list[int]]:
        """Register ``count`` nodes; returns their ids and each registration's gas."""
        attestor = attestor or Account.from_key(self.attestor_key).address
        start = self.registered
        self.registered += count
        entries = [
            NodeEntry(
                operator=self.operator.signer.address,
                attestor=attestor,
                shares=1_000_000 * SHARES,
                price_per_1k=1_000_000,
                operator_cut_bps=1_000,
                region="Singapore",
                external_id=f"bench-{start + i}",
            )
            for i in range(count)
        ]
        done = register_nodes(self.issuer, self.suite, entries)
        ids = [r.node_id for r in done]
        # each node takes reports from the epoch it was registered in, at the latest now
        now = int(self.suite.registry.call("current_epoch"))
        for node_id in ids:
            self.next_epoch[node_id] = now
        return ids, []

    def send(self, tx: Transactor, to: str | list[str], datas: list[str]) -> list[dict[str, Any]]:
        return send_pipelined(tx, self.rpc, to, datas, "bench", lambda *_: None)

    def gas(self, tx: Transactor, to: str, data: str) -> tuple[int, bytes]:
        (receipt,) = self.send(tx, to, [data])
        return receipt.gas_used, bytes(HexBytes(data))

    def signed(self, node_id: int, epochs: int) -> list[SignedReport]:
        start = self.next_epoch.get(node_id, 0)
        self.next_epoch[node_id] = start + epochs
        return [
            sign(UsageReport(node_id=node_id, epoch=e, inferences=1_000 + e, revenue=1_000 * (1_000 + e),
                             latency_ms=40, uptime_bps=9_990, deadline=2**40),
                 self.attestor_key, self.domain, self.separator)
            for e in range(start, start + epochs)
        ]  # fmt: skip

    def settle_data(self, reports: list[SignedReport]) -> str:
        return encode_settle_many(reports)

    def ensure_epochs_ended(self, upto: int) -> None:
        genesis = int(self.suite.registry.call("GENESIS"))
        now = int(self.w3.eth.get_block("latest")["timestamp"])
        if now < genesis + (upto + 1) * EPOCH:
            send_increase_time(self.w3, genesis + (upto + 1) * EPOCH - now)

    def share(self, node_id: int) -> Any:
        return self.suite.share(node_id)

    def settle_now(self, reports: list[SignedReport]) -> None:
        """Settle ``reports`` (their epochs ended first), one settle_many each 50."""
        self.ensure_epochs_ended(max(r.epoch for r in reports))
        self.send(self.issuer, self.suite.router.address,
                  [self.settle_data(reports[i : i + 50]) for i in range(0, len(reports), 50)])  # fmt: skip

    def release(self, node_id: int) -> None:
        """Let the node's revenue vest in full and release it (the operator claims):
        the steady state in which a holder's claim finds nothing left to release."""
        send_increase_time(self.w3, EPOCH)
        share = self.share(node_id)
        self.send(self.operator, share.address, [share.calldata("claim")])

    def pay(self, node_id: int, epochs: int, finalize_each: bool = True) -> None:
        """Settle ``epochs`` reports (50 per call), wait out the challenge window,
        finalize them (one call each) and release the revenue."""
        reports = self.signed(node_id, epochs)
        self.settle_now(reports)
        send_increase_time(self.w3, CHALLENGE)
        groups = (
            [[r.epoch] for r in reports]
            if finalize_each
            else [[r.epoch for r in reports[i : i + 100]] for i in range(0, len(reports), 100)]
        )
        self.send(self.issuer, self.suite.router.address,
                  [self.suite.router.calldata("finalize", node_id, g) for g in groups])  # fmt: skip
        self.release(node_id)

    def spread(self, node_id: int, holders: int) -> None:
        share = self.share(node_id)
        datas = [share.calldata("transfer", Account.create().address, SHARES)
                 for _ in range(holders)]  # fmt: skip
        for i in range(0, len(datas), 500):
            self.send(self.operator, share.address, datas[i : i + 500])

    def pay_all(self, node_ids: list[int]) -> None:
        """``pay`` for many nodes at once: one report each (50 per settle_many), the
        challenge window waited out, one finalize each, then the revenue vested in full
        and released (the operator claims each)."""
        reports = [self.signed(n, 1)[0] for n in node_ids]
        self.settle_now(reports)
        send_increase_time(self.w3, CHALLENGE)
        router = self.suite.router
        self.send(self.issuer, router.address,
                  [router.calldata("finalize", r.node_id, [r.epoch]) for r in reports])  # fmt: skip
        send_increase_time(self.w3, EPOCH)
        shares = [self.share(n) for n in node_ids]
        self.send(self.operator, [s.address for s in shares], [s.calldata("claim") for s in shares])

    def account(self, name: str, stablecoin: int = 0) -> tuple[Transactor, str]:
        """A deterministic account of its own (the same calldata, so the same gas, every
        run) with ether, and ``stablecoin`` minted to it; returns it and its key."""
        key = "0x" + keccak(text=f"edgeshare bench capital {name}").hex()
        tx = Transactor(self.w3, Signer.from_key(key))
        self.rpc.call("anvil_setBalance", [tx.signer.address, hex(10**20)])
        if stablecoin:
            send_mint_mock(self.issuer, self.suite, tx.signer.address, stablecoin)
        return tx, key

    # ------------------------------------------------------------- sections

    def gas_section(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []

        def record(floor: floors.Floor, gas: int, calldata: bytes, note: str = "") -> None:
            low = floor.total(calldata)
            self.floor_items[floor.name] = [("transaction base", floors.TX_BASE),
                                            ("calldata", floors.calldata_cost(calldata)), *floor.items]  # fmt: skip
            rows.append({"operation": floor.name, "gas": gas, "floor": low,
                         "ratio": _ratio(gas, low), "note": note})  # fmt: skip

        registry = self.suite.registry
        entry = NodeEntry(operator=self.operator.signer.address,
                          attestor=Account.from_key(self.attestor_key).address,
                          shares=1_000_000 * SHARES, price_per_1k=1_000_000, operator_cut_bps=1_000,
                          region="Singapore", external_id="gas-register")  # fmt: skip
        data = registry.calldata("register_node", entry.operator, entry.attestor, entry.shares, entry.price_per_1k, entry.operator_cut_bps,
            entry.region, entry.metadata_uri, entry.get_external_id_hash())  # fmt: skip
        gas, calldata = self.gas(self.issuer, registry.address, data)
        node_id = int(registry.call("node_count"))
        share = self.share(node_id)
        code = len(self.w3.eth.get_code(share.address))
        record(
            floors.register(code), gas, calldata, f"the new share token's code is {code:,} bytes"
        )

        # steady state: one report stays pending (total_pending is non-zero), and the
        # measured node has had revenue before (every share slot is non-zero)
        (keeper, payee), _ = self.register(2)
        self.settle_now(self.signed(keeper, 1))
        self.pay(payee, 2, finalize_each=True)
        s = self.share(payee)
        self.send(
            self.operator,
            s.address,
            [s.calldata("transfer", self.investor.signer.address, 1_000 * SHARES)],
        )
        self.pay(payee, 1)
        self.send(self.investor, s.address, [s.calldata("claim")])
        gas, calldata = self.gas(
            self.investor,
            s.address,
            s.calldata("transfer", self.operator.signer.address, SHARES),
        )
        record(floors.share_transfer(False), gas, calldata)
        gas, calldata = self.gas(
            self.investor,
            s.address,
            s.calldata("transfer", Account.create().address, SHARES),
        )
        record(floors.share_transfer(True), gas, calldata)

        # settle 1, 10 and 50 reports of distinct nodes never settled before
        fresh, _ = self.register(61)
        settle_gas: dict[int, int] = {}
        offset = 0
        for n in (1, 10, 50):
            reports = [self.signed(fresh[offset + i], 1)[0] for i in range(n)]
            offset += n
            self.ensure_epochs_ended(max(r.epoch for r in reports))
            gas, calldata = self.gas(
                self.issuer, self.suite.router.address, self.settle_data(reports)
            )
            settle_gas[n] = gas
            record(floors.settle(n), gas, calldata)
        marginal = (settle_gas[50] - settle_gas[10]) // 40
        rows.append({"operation": "settle_many, each report after the 10th", "gas": marginal,
                     "floor": (floors.settle(50).total(b"") - floors.settle(10).total(b"")) // 40,
                     "ratio": _ratio(marginal, (floors.settle(50).total(b"") - floors.settle(10).total(b"")) // 40),
                     "note": "target: at most 40,000"})  # fmt: skip

        # finalize on a node that has been paid before (its last revenue fully released)
        reports = self.signed(payee, 1)
        self.settle_now(reports)
        send_increase_time(self.w3, CHALLENGE)
        fin = self.suite.router.calldata("finalize", payee, [reports[0].epoch])
        gas, calldata = self.gas(self.issuer, self.suite.router.address, fin)
        record(
            floors.finalize(1, vesting=True), gas, calldata, "a node paid before; starts vesting"
        )
        self.release(payee)

        # a holder who has claimed before, and one who bought after revenue and holds no stablecoin
        gas, calldata = self.gas(self.investor, s.address, s.calldata("claim"))
        record(floors.claim(first=False), gas, calldata, "target: within 1.10x")
        self.send(
            self.operator,
            s.address,
            [s.calldata("transfer", self.newcomer.signer.address, 1_000 * SHARES)],
        )
        self.pay(payee, 1)
        gas, calldata = self.gas(self.newcomer, s.address, s.calldata("claim"))
        record(floors.claim(first=True), gas, calldata, "target: within 1.10x")
        gas, calldata = self.gas(self.operator, self.suite.router.address,
                                 self.suite.router.calldata("withdraw", self.operator.signer.address))  # fmt: skip
        record(floors.withdraw(), gas, calldata)
        return rows

    def flat_section(self) -> list[dict[str, Any]]:
        rows = []
        for holders in (1, 100, 1_000 if QUICK else 10_000):
            (node_id,), _ = self.register(1)
            self.spread(node_id, holders - 1)
            rows.append({"case": f"{holders:,} holders", **self._three_ops(node_id)})
        for epochs in (1, 100, 100 if QUICK else 1_000):
            (node_id,), _ = self.register(1)
            self.pay(node_id, epochs)
            rows.append({"case": f"after {epochs:,} settled epochs", **self._three_ops(node_id)})
        return rows

    def _three_ops(self, node_id: int) -> dict[str, int]:
        """claim, transfer and settle gas on a node, from the same storage shapes."""
        share = self.share(node_id)
        self.send(
            self.operator,
            share.address,
            [share.calldata("transfer", self.investor.signer.address, 10 * SHARES)],
        )
        self.pay(node_id, 1)
        self.send(self.investor, share.address, [share.calldata("claim")])
        self.pay(node_id, 1)
        claim, _ = self.gas(self.investor, share.address, share.calldata("claim"))
        transfer, _ = self.gas(
            self.investor,
            share.address,
            share.calldata("transfer", self.operator.signer.address, SHARES),
        )
        reports = self.signed(node_id, 1)
        self.ensure_epochs_ended(reports[0].epoch)
        settle, _ = self.gas(self.issuer, self.suite.router.address, self.settle_data(reports))
        return {"claim": claim, "transfer": transfer, "settle": settle}

    def throughput_section(self) -> dict[str, Any]:
        count, nodes = (2_000, 200) if QUICK else (10_000, 1_000)
        sample = [UsageReport(node_id=1, epoch=e, inferences=e, revenue=1_000 * e, latency_ms=1,
                              uptime_bps=1, deadline=2**40) for e in range(2_000)]  # fmt: skip
        started = time.perf_counter()
        for report in sample:
            sign(report, self.attestor_key, self.domain, self.separator)
        sign_rate = len(sample) / (time.perf_counter() - started)

        node_ids, _ = self.register(nodes)
        epochs = count // nodes
        base = {n: self.next_epoch.get(n, 0) for n in node_ids}
        self.ensure_epochs_ended(max(base.values()) + epochs)
        started = time.perf_counter()
        reports = [
            sign(UsageReport(node_id=n, epoch=base[n] + e, inferences=1_000 + e, revenue=1_000 * (1_000 + e),
                             latency_ms=40, uptime_bps=9_990, deadline=2**40),
                 self.attestor_key, self.domain, self.separator)
            for n in node_ids for e in range(epochs)
        ]  # fmt: skip
        result = post_reports(self.issuer, self.suite, reports, self.domain, batch_size=100)
        elapsed = time.perf_counter() - started
        assert result.settled == count
        for n in node_ids:
            self.next_epoch[n] = base[n] + epochs

        transfer_rate, nudges = measure_plain_transfers(self.keys[5], count // 2)
        return {
            "reports_signed_per_second": int(sign_rate),
            "reports": count, "nodes": nodes, "settle_transactions": len(result.transactions),
            "reports_settled_per_second_end_to_end": int(count / elapsed),
            "plain_transfers_per_second": int(transfer_rate),
            "reports_per_plain_transfer_time": round(count / elapsed / transfer_rate, 2),
            "plain_transfer_mine_nudges": nudges,
        }  # fmt: skip

    def indexing_section(self, workdir: Path, minimum: int) -> dict[str, Any]:
        # make sure there are enough events: more holders of one node if needed
        (node_id,), _ = self.register(1)
        self._count_events_needed(node_id, minimum)
        url = f"sqlite:///{workdir / 'bench-index.db'}"
        with open_db(url) as db:
            # set-up (ABIs, the database's chain check) is outside the clock, as the
            # reference's is; the run itself fetches, decodes and stores every event
            indexer = Indexer(self.suite, db, self.rpc, chunk=5_000, start_block=0)
            started = time.perf_counter()
            result = indexer.run()
            index_rate = result.events / (time.perf_counter() - started)
        # the raw reference: the same logs fetched with eth_getLogs and decoded, not
        # stored; from the same cold start (the address cache the indexer filled emptied)
        models_module._VALID.clear()
        specs = {}
        for name in ("NodeRegistry", "RevenueRouter", "NodeShare"):
            specs.update(get_codec(name).by_topic)
        head = int(self.w3.eth.block_number)
        started = time.perf_counter()
        decoded = 0
        for start in range(0, head + 1, 5_000):
            logs = self.rpc.call(
                "eth_getLogs", [{"fromBlock": hex(start), "toBlock": hex(min(head, start + 4_999))}]
            )
            for item in logs:
                spec = specs.get(bytes.fromhex(item["topics"][0][2:])) if item["topics"] else None
                if spec is not None and len(item["topics"]) == len(spec.indexed) + 1:
                    spec.decode(item["topics"], item["data"])
                    decoded += 1
        raw_rate = decoded / (time.perf_counter() - started)
        return {"events": result.events, "events_indexed_per_second": int(index_rate),
                "raw_getlogs_decode_per_second": int(raw_rate),
                "index_over_raw": round(index_rate / raw_rate, 2)}  # fmt: skip

    def _count_events_needed(self, node_id: int, minimum: int) -> None:
        with tempfile.TemporaryDirectory() as tmp, open_db(f"sqlite:///{tmp}/count.db") as db:
            have = Indexer(self.suite, db, self.rpc, chunk=5_000, start_block=0).run().events
        if have < minimum:
            self.spread(node_id, minimum - have)

    def channels_section(self) -> dict[str, Any]:
        """redeem_many gas against its floor, and the gateway's voucher check rate.

        One node, and 100 customers who each deposited into a channel to it. Each measured
        batch holds vouchers of distinct customers (their channels cold in the transaction)
        and is the node's first redemption of its epoch, with the node's last revenue
        released, as its floor assumes. A holder other than the operator never claims, so
        the share token always holds stablecoin.
        """
        (node_id,), _ = self.register(1)
        share, channels = self.share(node_id), self.suite.channels
        self.send(self.operator, share.address,
                  [share.calldata("transfer", self.investor.signer.address, 1_000 * SHARES)])  # fmt: skip
        domain = fetch_channels_domain(self.suite)
        separator = domain.get_separator()
        # deterministic customers, so the calldata (and the gas) is the same every run
        keys = ["0x" + keccak(text=f"edgeshare bench customer {i}").hex() for i in range(MAX_BATCH)]
        customers = [Signer.from_key(k) for k in keys]
        deposit = 10**12
        self.send(self.issuer, self.suite.stablecoin.address,
                  [self.suite.stablecoin.calldata("mint", c.address, deposit) for c in customers])  # fmt: skip
        for c in customers:
            self.rpc.call("anvil_setBalance", [c.address, hex(10**20)])
            send_deposit(Transactor(self.w3, c), self.suite, node_id, deposit)
        cumulative = dict.fromkeys(range(len(customers)), 0)

        def redeem(count: int) -> tuple[int, bytes]:
            signed = []
            for i in range(count):
                cumulative[i] += 1_000_000
                voucher = Voucher(node_id=node_id, customer=customers[i].address, generation=0,
                                  cumulative=cumulative[i], deadline=2**40)  # fmt: skip
                signed.append(sign_voucher(voucher, keys[i], domain, separator))
            data = channels.calldata("redeem_many", [v.as_tuple() for v in signed],
                                     b"".join(v.get_signature_bytes() for v in signed))  # fmt: skip
            (receipt,) = self.send(self.operator, channels.address, [data])
            paid = channels.events(receipt, "VoucherRedeemed")
            assert len(paid) == count, f"{count - len(paid)} of {count} vouchers skipped"
            self.release(node_id)  # the next batch: a new epoch, nothing left vesting
            # and a block later: in the release's second, notify_revenue's write of the
            # vesting start would leave the slot as it is (2,800 gas less than a real one)
            send_increase_time(self.w3, 12)
            return receipt.gas_used, bytes(HexBytes(data))

        redeem(1)  # the node has been paid before: every total and owed slot is non-zero
        rows: list[dict[str, Any]] = []
        floor_items: dict[str, list[tuple[str, int]]] = {}
        measured: dict[int, tuple[int, int]] = {}
        for count in (1, 10, MAX_BATCH):
            gas, calldata = redeem(count)
            floor = floors.redeem(count)
            low = floor.total(calldata)
            measured[count] = (gas, low)
            floor_items[floor.name] = [("transaction base", floors.TX_BASE),
                                       ("calldata", floors.calldata_cost(calldata)), *floor.items]  # fmt: skip
            rows.append({"operation": floor.name, "gas": gas, "floor": low,
                         "ratio": _ratio(gas, low), "note": "distinct customers of one node"})  # fmt: skip
        extra = MAX_BATCH - 10
        marginal = (measured[MAX_BATCH][0] - measured[10][0]) // extra
        # the floor's difference includes each voucher's calldata, as the gas does
        marginal_floor = (measured[MAX_BATCH][1] - measured[10][1]) // extra
        met = marginal <= REDEEM_MARGINAL_BOUND
        rows.append({"operation": "redeem_many, each voucher after the 10th", "gas": marginal,
                     "floor": marginal_floor, "ratio": _ratio(marginal, marginal_floor),
                     "note": f"bound: at most {REDEEM_MARGINAL_BOUND:,} ({'met' if met else 'NOT met'}); "
                             "the floor counts each voucher's calldata",
                     "bound": REDEEM_MARGINAL_BOUND, "meets_bound": met})  # fmt: skip
        return {"gas": rows, "floors": floor_items,
                "checks": self._voucher_checks(node_id, customers, keys, cumulative, domain)}  # fmt: skip

    def _voucher_checks(self, node_id: int, customers: list[Signer], keys: list[str],
                        redeemed: dict[int, int], domain: Eip712Domain) -> dict[str, Any]:  # fmt: skip
        """VoucherChecker.check_fields on vouchers that all pass (the whole check: the
        cached channel, the digest, the recovery), against raw secp256k1 recovery of the
        same signatures from precomputed digests; best of several interleaved rounds."""
        count, rounds = (500, 3) if QUICK else (2_000, 5)
        checker = VoucherChecker.load(self.suite, node_id, [c.address for c in customers])
        now = int(self.w3.eth.get_block("latest")["timestamp"])
        separator = domain.get_separator()
        fields: list[tuple[int, str, int, int, int, bytes]] = []
        recoverable: list[tuple[bytes, bytes]] = []
        for n in range(count):
            i = n % len(customers)
            voucher = Voucher(node_id=node_id, customer=customers[i].address, generation=0,
                              cumulative=redeemed[i] + 1 + n, deadline=2**40)  # fmt: skip
            sig = sign_voucher(voucher, keys[i], domain, separator).get_signature_bytes()
            fields.append((node_id, voucher.customer, 0, voucher.cumulative, 2**40, sig))
            digest = get_voucher_digest(voucher, domain, separator)
            recoverable.append((sig[:64] + bytes([sig[64] - 27]), digest))
        for f in fields:  # every one is accepted: the timed loop runs the whole check
            verdict = checker.check_fields(*f, now)
            assert verdict.ok, verdict.describe()
        check_rate = recover_rate = 0.0
        for _ in range(rounds):
            started = time.perf_counter()
            for node, customer, generation, cumulative, deadline, sig in fields:
                checker.check_fields(node, customer, generation, cumulative, deadline, sig, now)
            check_rate = max(check_rate, count / (time.perf_counter() - started))
            started = time.perf_counter()
            for sig64, digest in recoverable:
                CurvePublicKey.from_signature_and_message(sig64, digest, hasher=None).format(
                    compressed=False
                )
            recover_rate = max(recover_rate, count / (time.perf_counter() - started))
        return {"vouchers": count, "rounds": rounds,
                "checks_per_second": int(check_rate),
                "raw_recoveries_per_second": int(recover_rate),
                "checks_over_raw_recovery": round(check_rate / recover_rate, 2),
                "target_per_second": CHECKS_TARGET,
                "meets_target": check_rate >= CHECKS_TARGET}  # fmt: skip

    def capital_section(self) -> dict[str, Any]:
        """The capital contracts' gas against their floors: the portfolio claim (against
        the same claims sent one transaction each, and the issue's target), a basket of
        5 nodes (mint, redeem, harvest, a holder's claim), market fills and an offering
        (commit, claim_shares, refund, finish). Each case's steady state is in its
        method's docstring and its floor's (bench/floors.py). Every node here is
        registered for the section and paid before anything is measured, so every
        accumulator is non-zero, and so is every correction a measured transaction
        touches (its holder claimed, minted or received shares after revenue) but a new
        holder's where the case says so; nothing is vesting when a share moves (its last
        revenue vested in full and the operator's claim released it)."""
        rows: list[dict[str, Any]] = []
        floor_items: dict[str, list[tuple[str, int]]] = {}

        def record(floor: floors.Floor, gas: int, calldata: bytes, note: str = "",
                   **extra: Any) -> dict[str, Any]:  # fmt: skip
            low = floor.total(calldata)
            floor_items[floor.name] = [("transaction base", floors.TX_BASE),
                                       ("calldata", floors.calldata_cost(calldata)), *floor.items]  # fmt: skip
            row = {"operation": floor.name, "gas": gas, "floor": low,
                   "ratio": _ratio(gas, low), "note": note, **extra}  # fmt: skip
            rows.append(row)
            return row

        portfolio = self._portfolio_claims(record, rows)
        self._basket_ops(record)
        self._market_fills(record)
        self._offering_ops(record)
        return {"gas": rows, "floors": floor_items, "portfolio": portfolio}

    def _portfolio_claims(self, record: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """claim_many over the investor's first N of 64 node shares, against the same N
        claims sent one transaction each. The investor holds 1,000 shares of each node
        since before their revenue and has claimed from each before (a claim_many over
        all 64); before each measurement every one of the N nodes is paid once more and
        its revenue released, so each token has revenue to pay and nothing vesting. The
        claimer pays the investor itself, who holds stablecoin."""
        ids, _ = self.register(max(PORTFOLIO_SIZES))
        shares = [self.share(n) for n in ids]
        tokens = [s.address for s in shares]
        holder = self.investor.signer.address
        self.send(self.operator, tokens, [s.calldata("transfer", holder, 1_000 * SHARES) for s in shares])  # fmt: skip
        claimer = self.suite.claimer
        self.pay_all(ids)
        self.send(self.investor, claimer.address, [claimer.calldata("claim_many", tokens, holder)])
        claim = shares[0].calldata("claim")
        claim_floor = floors.claim(first=False).total(bytes(HexBytes(claim)))
        sizes: list[dict[str, Any]] = []
        measured: dict[int, tuple[int, int]] = {}
        references: list[dict[str, Any]] = []
        for n in PORTFOLIO_SIZES:
            self.pay_all(ids[:n])
            data = claimer.calldata("claim_many", tokens[:n], holder)
            (receipt,) = self.send(self.investor, claimer.address, [data])
            paid = sum(len(s.events(receipt, "RevenueClaimed")) for s in shares[:n])
            assert paid == n, f"claim_many paid {paid} of {n} tokens"
            self.pay_all(ids[:n])
            receipts = self.send(self.investor, tokens[:n], [claim] * n)
            assert all(
                s.events(r, "RevenueClaimed") for s, r in zip(shares[:n], receipts, strict=True)
            )
            separate = sum(r.gas_used for r in receipts)
            gas, bound = receipt.gas_used, PORTFOLIO_BASE + PORTFOLIO_PER_TOKEN * n
            met = gas <= bound
            floor = floors.portfolio_claim(n)
            measured[n] = (gas, floor.total(bytes(HexBytes(data))))
            verdict = f"target: at most {bound:,} ({'met' if met else 'NOT met'})"
            if n == 1:
                versus = f"a claim of its own: {separate:,}"
            else:
                versus = f"{(separate - gas) * 100 // separate}% less than {n} separate claims"
            record(floor, gas, bytes(HexBytes(data)), f"{verdict}; {versus}",
                   bound=bound, meets_bound=met, separate_claims_gas=separate)  # fmt: skip
            references.append({"operation": f"{n} separate claim(s) (reference)",
                               "gas": separate, "floor": n * claim_floor,
                               "ratio": _ratio(separate, n * claim_floor),
                               "note": "each as `claim (has claimed before)`"})  # fmt: skip
            sizes.append({"tokens": n, "gas": gas, "bound": bound, "meets_bound": met,
                          "separate_claims_gas": separate})  # fmt: skip
        low, high = 5, 20
        extra = high - low
        marginal = (measured[high][0] - measured[low][0]) // extra
        marginal_floor = (measured[high][1] - measured[low][1]) // extra
        within = marginal <= PORTFOLIO_PER_TOKEN
        rows.append({"operation": "claim_many, each token after the 5th", "gas": marginal,
                     "floor": marginal_floor, "ratio": _ratio(marginal, marginal_floor),
                     "note": f"the target's {PORTFOLIO_PER_TOKEN:,} per token "
                             f"({'met' if within else 'NOT met'}); the floor counts each token's calldata",
                     "bound": PORTFOLIO_PER_TOKEN, "meets_bound": within})  # fmt: skip
        rows.extend(references)
        return {"sizes": sizes, "marginal_gas": marginal, "per_token_bound": PORTFOLIO_PER_TOKEN,
                "base_bound": PORTFOLIO_BASE, "claim_gas": references[0]["gas"],
                "meets_target": all(s["meets_bound"] for s in sizes)}  # fmt: skip

    def _basket_ops(self, record: Any) -> None:
        """A basket of 5 node shares, weight one whole share each per whole unit. The
        investor holds 1,000 shares of each since before their revenue, approved the
        basket without limit on each, minted 10 units before and claimed the basket's
        revenue once. Mint (10 units) and redeem (5) find nothing owed to the basket (it
        harvested since the components' last revenue); then every component is paid and
        its revenue released, and harvest finds all 5 owing; the investor's claim
        follows that harvest."""
        ids, _ = self.register(BASKET_COMPONENTS)
        shares = [self.share(n) for n in ids]
        tokens = [s.address for s in shares]
        tx = self.investor
        self.send(self.operator, tokens, [s.calldata("transfer", tx.signer.address, 1_000 * SHARES) for s in shares])  # fmt: skip
        self.pay_all(ids)
        factory = self.suite.baskets
        (created,) = self.send(tx, factory.address, [factory.calldata(
            "create_basket", "EdgeShare bench basket", "ESBB", tokens, [SHARES] * len(tokens))])  # fmt: skip
        address = str(factory.events(created, "BasketCreated")[0]["basket"])
        basket = self.suite.reader.contract("Basket", address)
        self.send(tx, tokens, [s.calldata("approve", address, UNLIMITED) for s in shares])
        units = 10 * SHARES
        self.send(tx, address, [basket.calldata("mint", units)])  # the basket's first mint
        self.pay_all(ids)
        self.send(tx, address, [basket.calldata("harvest")])
        self.send(tx, address, [basket.calldata("claim")])
        n = len(tokens)
        gas, calldata = self.gas(tx, address, basket.calldata("mint", units))
        record(
            floors.basket_mint(n), gas, calldata, "not the first mint; nothing owed to the basket"
        )
        gas, calldata = self.gas(tx, address, basket.calldata("redeem", units // 2))
        record(floors.basket_redeem(n), gas, calldata, "half the units just minted; nothing owed")
        self.pay_all(ids)
        data = basket.calldata("harvest")
        (receipt,) = self.send(tx, address, [data])
        owing = sum(len(s.events(receipt, "RevenueClaimed")) for s in shares)
        assert owing == n and basket.events(receipt, "Harvested"), f"{owing} of {n} paid"
        record(floors.basket_harvest(n), receipt.gas_used, bytes(HexBytes(data)),
               "revenue released on every component")  # fmt: skip
        gas, calldata = self.gas(tx, address, basket.calldata("claim"))
        record(floors.basket_claim(), gas, calldata, "after a harvest")

    def _market_fills(self, record: Any) -> None:
        """Fills of a maker's signed orders by a taker, the suite's market fee (10 bps)
        on. Both traders bought 1,000 shares of a node after its revenue (their
        corrections are non-zero; nothing is vesting) and hold stablecoin, and approved
        the market without limit for both; the treasury holds stablecoin. A sell order
        of 10 shares filled in full (its first fill), then a buy order of 10 shares
        filled 3 at a time: its first fill and a second."""
        (node_id,), _ = self.register(1)
        share, market, coin = self.share(node_id), self.suite.market, self.suite.stablecoin
        (maker, maker_key), (taker, _) = (self.account(f"market {who}", 10**12) for who in ("maker", "taker"))  # fmt: skip
        self.pay_all([node_id])  # before the shares move: a holder's correction is set on receipt
        self.send(self.operator, share.address,
                  [share.calldata("transfer", t.signer.address, 1_000 * SHARES) for t in (maker, taker)])  # fmt: skip
        for t in (maker, taker):
            self.send(t, [share.address, coin.address],
                      [c.calldata("approve", market.address, UNLIMITED) for c in (share, coin)])  # fmt: skip

        def fill(order: tuple[Any, ...], amount: int) -> tuple[int, bytes]:
            signature = sign_digest(bytes(HexBytes(market.call("order_hash", order))), maker_key)
            cost, reason = market.call("check", order, signature, amount, taker.signer.address)
            assert int(reason) == 0 and int(cost) > 0, f"the market refuses the fill: {reason}"
            return self.gas(
                taker, market.address, market.calldata("fill", order, signature, amount)
            )

        def order(sell: bool, salt: int) -> tuple[Any, ...]:
            # maker, share, sell, amount, price per whole share (2.5), min_fill, expiry, nonce, salt
            return (maker.signer.address, share.address, sell, 10 * SHARES, 5 * USDC // 2,
                    0, 2**63, 0, salt)  # fmt: skip

        sell, buy = order(True, 1), order(False, 2)
        gas, calldata = fill(sell, 10 * SHARES)
        record(floors.market_fill(sell=True, first=True), gas, calldata, "the taker buys 10 shares")
        gas, calldata = fill(buy, 3 * SHARES)
        record(
            floors.market_fill(sell=False, first=True),
            gas,
            calldata,
            "the taker sells 3 of 10 shares",
        )
        gas, calldata = fill(buy, 3 * SHARES)
        record(floors.market_fill(sell=False, first=False), gas, calldata, "3 more; 4 remain")

    def _offering_ops(self, record: Any) -> None:
        """Two offerings of 100 shares of one node at 2 stablecoin each (hard cap 200),
        created together by its operator after the node was paid (the operator holds
        stablecoin and shares; the escrowed shares' correction is non-zero), and three
        investors who approved both without limit and hold stablecoin, none of them any
        share. One succeeds (soft cap 100): investors 0 and 2 commit 50 and 30, investor
        1, after investor 0, commits 20 (its first) and 20 more (adding to it): 120, so
        40 shares stay unsold. After the end investor 0 claims its shares, then finish (by
        anyone) is measured, then investor 1's claim_shares (a new holder of the node's
        shares; investor 2's stay in escrow). The other fails (soft cap 200, 20 from
        each): investor 0 is refunded, then investor 1 (measured; investor 2's stay)."""
        (node_id,), _ = self.register(1)
        share, factory = self.share(node_id), self.suite.offerings
        self.pay_all([node_id])
        investors = [self.account(f"offering investor {i}", 10**12)[0] for i in range(3)]
        offered, price = 100 * SHARES, 2 * USDC
        self.send(self.operator, share.address, [share.calldata("approve", factory.address, 2 * offered)])  # fmt: skip
        now = int(self.w3.eth.get_block("latest")["timestamp"])
        end = now + 7 * 86_400
        offerings = []
        for soft_cap in (100 * USDC, 200 * USDC):
            (receipt,) = self.send(self.operator, factory.address, [factory.calldata(
                "create_offering", node_id, offered, price, soft_cap, 200 * USDC, now, end, 0)])  # fmt: skip
            address = str(factory.events(receipt, "OfferingCreated")[0]["offering"])
            offerings.append(self.suite.reader.contract("ShareOffering", address))
        won, lost = offerings
        coin = self.suite.stablecoin
        for tx in investors:
            self.send(tx, coin.address, [coin.calldata("approve", o.address, UNLIMITED) for o in offerings])  # fmt: skip
        self.send(investors[0], won.address, [won.calldata("commit", 50 * USDC)])
        gas, calldata = self.gas(investors[1], won.address, won.calldata("commit", 20 * USDC))
        record(floors.offering_commit(first=True), gas, calldata, "others committed before")
        gas, calldata = self.gas(investors[1], won.address, won.calldata("commit", 20 * USDC))
        record(floors.offering_commit(first=False), gas, calldata, "its second commitment")
        self.send(investors[2], won.address, [won.calldata("commit", 30 * USDC)])
        for tx in investors:
            self.send(tx, lost.address, [lost.calldata("commit", 20 * USDC)])
        send_increase_time(self.w3, end - int(self.w3.eth.get_block("latest")["timestamp"]))
        self.send(investors[0], won.address, [won.calldata("claim_shares")])
        gas, calldata = self.gas(self.issuer, won.address, won.calldata("finish"))
        record(floors.offering_finish(), gas, calldata,
               "120 of 200 committed; gas is after the refund for the emptied stablecoin balance")  # fmt: skip
        gas, calldata = self.gas(investors[1], won.address, won.calldata("claim_shares"))
        record(floors.offering_claim_shares(), gas, calldata, "another investor claimed before")
        self.send(investors[0], lost.address, [lost.calldata("refund")])
        gas, calldata = self.gas(investors[1], lost.address, lost.calldata("refund"))
        record(floors.offering_refund(), gas, calldata, "another investor refunded before")


# the last 256 states only (as the reads world): with none kept, a read at "latest" could
# miss a block mined just before it ("block height is N but requested was N - 1")
ANVIL_ARGS = ("--gas-limit", "100000000", "--prune-history=256")


def measure_plain_transfers(key: str, count: int) -> tuple[float, int]:
    """The raw reference: ``count`` plain transfers signed here, sent in JSON-RPC batches
    of 500 and their receipts polled in batches - on an anvil of their own, started
    like the bench's.

    A flood this size stalls anvil 1.7.1's automine (ready transactions stay in its pool
    and even new ones are not mined); the bench's own anvil must not inherit that, and
    the reference is helped with ``evm_mine`` after 0.2 s without a receipt. Returns
    (transfers per second, how many times it was helped).
    """
    with LocalChain("anvil", accounts=8, extra_args=ANVIL_ARGS) as chain:
        w3 = connect(chain.url)
        rpc = get_rpc(w3)
        sender = Account.from_key(key)
        fees = Transactor(w3, Signer.from_key(key)).build_fees()
        raw = []
        for i in range(count):
            body = {"to": Account.create().address, "value": 1, "gas": 21_000, "nonce": i,
                    "chainId": int(w3.eth.chain_id), **fees}  # fmt: skip
            raw.append("0x" + bytes(sender.sign_transaction(body).raw_transaction).hex())
        started = time.perf_counter()
        pending = rpc.batch([("eth_sendRawTransaction", [r]) for r in raw], chunk=500)
        refused = [r for r in pending if isinstance(r, RpcError)]
        if refused:
            raise RuntimeError(f"{len(refused)} plain transfers refused, first: {refused[0]}")
        nudges, last_progress = 0, time.perf_counter()
        while pending:
            receipts = rpc.batch([("eth_getTransactionReceipt", [h]) for h in pending], chunk=500)
            left = [h for h, r in zip(pending, receipts, strict=True) if not isinstance(r, dict)]
            if len(left) < len(pending):
                last_progress = time.perf_counter()
            elif time.perf_counter() - last_progress > 0.2:
                rpc.call("evm_mine", [])
                nudges += 1
                last_progress = time.perf_counter()
            else:
                time.sleep(0.01)
            pending = left
        return count / (time.perf_counter() - started), nudges


def _ratio(gas: int, floor: int) -> str:
    whole, rest = divmod(gas * 100 // floor, 100)
    return f"{whole}.{rest:02d}x"


def render_markdown(results: dict[str, Any]) -> str:
    channels = results.get("channels")
    lines = ["| operation | gas | EVM floor | ratio | note |", "| --- | ---: | ---: | ---: | --- |"]
    for row in results["gas"] + (channels["gas"] if channels else []):
        lines.append(
            f"| {row['operation']} | {row['gas']:,} | {row['floor']:,} | {row['ratio']} | {row['note']} |"
        )
    capital = results.get("capital")
    if capital:
        lines += ["", "| capital operation | gas | EVM floor | ratio | note |",
                  "| --- | ---: | ---: | ---: | --- |"]  # fmt: skip
        for row in capital["gas"]:
            lines.append(
                f"| {row['operation']} | {row['gas']:,} | {row['floor']:,} | {row['ratio']} | {row['note']} |"
            )
        p = capital["portfolio"]
        met = [str(s["tokens"]) for s in p["sizes"] if s["meets_bound"]]
        missed = [f"{s['tokens']} ({s['gas']:,} gas against {s['bound']:,})"
                  for s in p["sizes"] if not s["meets_bound"]]  # fmt: skip
        verdict = ", ".join(([f"met for N = {', '.join(met)}"] if met else [])
                            + ([f"NOT met for N = {', '.join(missed)}"] if missed else []))  # fmt: skip
        lines += ["", f"Portfolio claim target, `claim_many` over N tokens at most {p['base_bound']:,} + "
                  f"{p['per_token_bound']:,} x N gas: {verdict}; each token after the 5th costs "
                  f"{p['marginal_gas']:,} gas, against {p['claim_gas']:,} for a claim of its own."]  # fmt: skip
    lines += [
        "",
        "| scale | claim | transfer | settle one report |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in results["flat"]:
        lines.append(
            f"| {row['case']} | {row['claim']:,} | {row['transfer']:,} | {row['settle']:,} |"
        )
    spread = results["flat_max_deviation_percent"]
    lines += ["", f"Largest deviation from the smallest case of its dimension: {spread}% "
              "(target: under 2%).", ""]  # fmt: skip
    t = results["throughput"]
    lines += ["| throughput (this machine, this run) | per second |", "| --- | ---: |",
              f"| reports signed | {t['reports_signed_per_second']:,} |",
              f"| reports settled end to end ({t['reports']:,} reports, {t['nodes']:,} nodes, signed, sent, mined, receipts checked) | {t['reports_settled_per_second_end_to_end']:,} |",
              f"| plain transfers, raw JSON-RPC batches (reference) | {t['plain_transfers_per_second']:,} |"]  # fmt: skip
    i = results["indexing"]
    lines += [f"| events indexed into SQLite ({i['events']:,} events) | {i['events_indexed_per_second']:,} |",
              f"| raw eth_getLogs + decode (reference) | {i['raw_getlogs_decode_per_second']:,} |"]  # fmt: skip
    if channels:
        c = channels["checks"]
        lines += [f"| vouchers checked by `VoucherChecker.check_fields` (one thread, cached state, no RPC; {c['vouchers']:,} vouchers, best of {c['rounds']}) | {c['checks_per_second']:,} |",
                  f"| raw secp256k1 recovery of the same signatures, coincurve (reference) | {c['raw_recoveries_per_second']:,} |"]  # fmt: skip
    lines += ["", f"Reports settle at {t['reports_per_plain_transfer_time']}x the rate of plain transfers; "
              f"indexing runs at {i['index_over_raw']}x the raw fetch-and-decode rate.",
              ""]  # fmt: skip
    if channels:
        c = channels["checks"]
        m = channels["gas"][-1]
        lines += [f"Vouchers are checked at {c['checks_over_raw_recovery']}x the raw recovery rate, "
                  f"{c['checks_per_second']:,} per second (target: at least {c['target_per_second']:,} "
                  f"per core: {'met' if c['meets_target'] else 'NOT met'}); `redeem_many` costs "
                  f"{m['gas']:,} gas per voucher after the 10th (bound: at most {m['bound']:,}: "
                  f"{'met' if m['meets_bound'] else 'NOT met'}).", ""]  # fmt: skip
    if "node" in results:
        lines += node_bench.render(results["node"])
    if "reads" in results:
        r = results["reads"]
        lines += [f"Reads at scale: {r['nodes']:,} nodes with {r['epochs']} settled epochs each "
                  f"and {r['investors']} investors. A process is the whole command "
                  f"(`--json`, starting the interpreter: `edgeshare --help` alone takes "
                  f"{r['startup_seconds']} s); in process is the same work without the start; "
                  "the reference is the bare JSON-RPC batches and SQL selects it needs.", "",
                  "| command | index | process (s) | in process (s) | bare work (s) | ratio |",
                  "| --- | --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for c in r["commands"]:
            lines.append(f"| {c['command']} | {c['db']} | {c['process_seconds']} | "
                         f"{c['in_process_seconds']} | {c['bare_work_seconds']} | {c['ratio']}x |")  # fmt: skip
        lines.append("")
    if "web" in results:
        lines += web_bench.render(results["web"])
    lines.append(f"Measured {results['date']} on {results['machine']}.")
    return "\n".join(lines) + "\n"


def replace_between(path: Path, text: str) -> None:
    body = path.read_text()
    new = re.sub(
        r"(<!-- bench:start -->\n).*?(<!-- bench:end -->)",
        lambda m: m.group(1) + text + m.group(2),
        body,
        flags=re.S,
    )
    path.write_text(new)


def main() -> None:
    if "--docs-only" in sys.argv:  # re-render the documents from bench/results.json
        write_docs(json.loads((ROOT / "bench" / "results.json").read_text()))
        return
    if "--channels-only" in sys.argv:  # the channels section, on the last run's results
        results = json.loads((ROOT / "bench" / "results.json").read_text())
        results["channels"] = run_channels_section()
        save(results)
        write_docs(results)
        return
    if "--capital-only" in sys.argv:  # the capital section, on the last run's results
        results = json.loads((ROOT / "bench" / "results.json").read_text())
        results["capital"] = run_capital_section()
        save(results)
        write_docs(results)
        return
    if "--node-only" in sys.argv:  # the node software section, on the last run's results
        results = json.loads((ROOT / "bench" / "results.json").read_text())
        results["node"] = node_bench.run_section(QUICK)
        save(results)
        write_docs(results)
        return
    if "--web-only" in sys.argv:  # the web app section, on the last run's results
        results = json.loads((ROOT / "bench" / "results.json").read_text())
        with (
            tempfile.TemporaryDirectory() as tmp,
            reads.indexed_world(Path(tmp), QUICK, None) as (world, dbs, _),
        ):
            results["web"] = web_bench.run_section(world, dbs["sqlite"])
        save(results)
        write_docs(results)
        return
    results: dict[str, Any] = {}
    if "--reads-only" in sys.argv:  # the other sections as the last run wrote them
        results = json.loads((ROOT / "bench" / "results.json").read_text())
    else:
        results.update(run_chain_sections())
        save(results)  # a failure in a later section keeps what was measured
        results["node"] = node_bench.run_section(QUICK)
        save(results)
    print("reads at scale ...", flush=True)
    folder = find_postgres_bin()
    if folder is None:
        raise SystemExit("the reads section needs PostgreSQL: make install-postgres")
    with tempfile.TemporaryDirectory() as tmp, running_postgres(folder) as postgres_url:
        results["reads"], results["web"] = reads.run_section(Path(tmp), QUICK, postgres_url)
    save(results)
    write_docs(results)


def save(results: dict[str, Any]) -> None:
    """bench/results.json, stamped with the date and the machine."""
    results["date"] = time.strftime("%Y-%m-%d")
    results["machine"] = (
        f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}, anvil 1.7.1, 2 cores"
    )
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2) + "\n")


def run_chain_sections() -> dict[str, Any]:
    """Gas, flat cost, throughput and indexing, on one fresh anvil."""
    keys = build_dev_keys(8)
    results: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalChain("anvil", accounts=8, extra_args=ANVIL_ARGS) as chain,
    ):
        bench = Bench(connect(chain.url, timeout=300), keys, Path(tmp))
        bench.issuer.timeout = bench.operator.timeout = 600
        print("gas per operation ...", flush=True)
        results["gas"] = bench.gas_section()
        results["floors"] = bench.floor_items
        print("flat at scale ...", flush=True)
        results["flat"] = bench.flat_section()
        spread = 0  # each dimension against its own smallest case
        for group in (results["flat"][:3], results["flat"][3:]):
            for row in group:
                for op in ("claim", "transfer", "settle"):
                    spread = max(spread, abs(row[op] - group[0][op]) * 10_000 // group[0][op])
        results["flat_max_deviation_percent"] = f"{spread // 100}.{spread % 100:02d}"
        print("attestation throughput ...", flush=True)
        results["throughput"] = bench.throughput_section()
        print(json.dumps(results["throughput"]), flush=True)
        print("indexing ...", flush=True)
        results["indexing"] = bench.indexing_section(Path(tmp), 10_000 if QUICK else 50_000)
        print(json.dumps(results["indexing"]), flush=True)
        results["channels"] = _channels(bench)
        results["capital"] = _capital(bench)
    return results


def run_channels_section() -> dict[str, Any]:
    """The channels section alone, on a fresh anvil started as the whole run's is."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalChain("anvil", accounts=8, extra_args=ANVIL_ARGS) as chain,
    ):
        bench = Bench(connect(chain.url, timeout=300), build_dev_keys(8), Path(tmp))
        bench.issuer.timeout = bench.operator.timeout = 600
        return _channels(bench)


def run_capital_section() -> dict[str, Any]:
    """The capital section alone, on a fresh anvil started as the whole run's is."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalChain("anvil", accounts=8, extra_args=ANVIL_ARGS) as chain,
    ):
        bench = Bench(connect(chain.url, timeout=300), build_dev_keys(8), Path(tmp))
        bench.issuer.timeout = bench.operator.timeout = 600
        return _capital(bench)


def _capital(bench: Bench) -> dict[str, Any]:
    print("capital: portfolio claim, basket, market, offerings ...", flush=True)
    section = bench.capital_section()
    print(json.dumps({"gas": section["gas"], "portfolio": section["portfolio"]}), flush=True)
    return section


def _channels(bench: Bench) -> dict[str, Any]:
    print("payment channels: redeem_many gas, voucher checks ...", flush=True)
    section = bench.channels_section()
    print(json.dumps({"gas": section["gas"], "checks": section["checks"]}), flush=True)
    return section


def write_docs(results: dict[str, Any]) -> None:
    """bench/RESULTS.md, the tables in README.md and docs/GAS.md, and GAS.md's floors."""
    table = render_markdown(results)
    (ROOT / "bench" / "RESULTS.md").write_text(
        "# Benchmark results\n\nWritten by `make bench`.\n\n" + table
    )
    for doc in (ROOT / "README.md", ROOT / "docs" / "GAS.md"):
        if doc.exists():
            replace_between(doc, table)
    gas_doc = ROOT / "docs" / "GAS.md"
    breakdown = []
    channel_floors = results["channels"]["floors"] if "channels" in results else {}
    capital_floors = results["capital"]["floors"] if "capital" in results else {}
    for name, items in {**results["floors"], **channel_floors, **capital_floors}.items():
        breakdown += [f"**{name}**: {sum(g for _, g in items):,}", ""]
        counted: dict[tuple[str, int], int] = {}
        for item, gas in items:  # a batch repeats its per-report items: list them once
            counted[(item, gas)] = counted.get((item, gas), 0) + 1
        for (item, gas), times in counted.items():
            each = f"{gas:,}" if times == 1 else f"{gas:,} x {times} = {gas * times:,}"
            breakdown.append(f"- {item}: {each}")
        breakdown.append("")
    body = gas_doc.read_text()
    gas_doc.write_text(re.sub(r"(<!-- floors:start -->\n).*?(<!-- floors:end -->)",
                              lambda m: m.group(1) + "\n".join(breakdown) + m.group(2), body, flags=re.S))  # fmt: skip
    print(table)


if __name__ == "__main__":
    main()
