"""Reads at scale, for `make bench`: the read commands on 1,000 nodes with 100 settled
epochs each and 50 investors, as processes, on SQLite and PostgreSQL.

Each command is timed end to end as a process (``edgeshare ... --json``), and the same
work is timed in process (the command's function, no interpreter start) against the
bare work it needs: the JSON-RPC batches of ``eth_call`` with ready-made calldata, and
the SQL selects, through a plain ``requests`` session and SQLAlchemy connection, with
no decoding into models. Both run in the same run, on the same chain and databases.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import web_app as web_bench
from eth_account import Account
from sqlalchemy import create_engine, text

from edgeshare.attestation import SignedReport, UsageReport, sign
from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.contracts import get_codec
from edgeshare.deploy import build_params, deploy_suite, write_manifest
from edgeshare.indexer import Indexer, open_db
from edgeshare.market import build_board, fetch_portfolio
from edgeshare.nodes import NodeEntry, register_nodes
from edgeshare.poster import finalize_reports, post_reports
from edgeshare.reports import build_report
from edgeshare.signer import Signer
from edgeshare.suite import (
    Suite,
    fetch_domain_of,
    send_increase_time,
    send_mint_mock,
    send_share_transfers,
)
from edgeshare.tx import Transactor

EPOCH, CHALLENGE, UNLOCK = 60, 3_600, 60
SHARES, PRICE = 10**18, 1_000
# the last 256 states only: a chain this size would otherwise spill tens of GB to disk
# (and with none kept, a read at "latest" can miss the state of a block just mined)
ANVIL_ARGS = ("--gas-limit", "300000000", "--prune-history=256")
RUNS = 3
_Plan = tuple[str, list[str], Callable[[], Any], Callable[[], Any]]
"""A command's name, its arguments, its work in process, and the bare work it needs."""


@contextmanager
def scale_world(nodes: int, epochs: int, investors: int, workdir: Path) -> Iterator[dict[str, Any]]:
    """A fresh anvil holding the suite with ``nodes`` nodes of one operator, ``epochs``
    settled and finalized epochs each, and ``investors`` holders (the first holds shares
    of every node, the rest of a few each)."""
    keys = build_dev_keys(4)
    with LocalChain("anvil", accounts=4, extra_args=ANVIL_ARGS) as chain:
        w3 = connect(chain.url, timeout=300)
        issuer, operator = (Transactor(w3, Signer.from_key(k), timeout=600) for k in keys[:2])
        attestor = keys[2]
        params = build_params(None, epoch_length=EPOCH, unlock_period=UNLOCK,
                              challenge_period=CHALLENGE, protocol_fee_bps=500)  # fmt: skip
        manifest_path = workdir / "manifest.json"
        manifest = deploy_suite(issuer, params, manifest_path).manifest
        suite = Suite.load(w3, manifest)
        entries = [
            NodeEntry(operator=operator.signer.address, attestor=Signer.from_key(attestor).address,
                      shares=1_000_000 * SHARES, price_per_1k=PRICE, operator_cut_bps=1_000,
                      region=("Singapore", "Mumbai", "Lagos", "Lima")[i % 4],
                      metadata_uri=f"ipfs://bench/{i}", external_id=f"bench-{i}")
            for i in range(nodes)
        ]  # fmt: skip
        ids = [r.node_id for r in register_nodes(issuer, suite, entries)]
        holders = [Account.create().address for _ in range(investors)]
        rng = random.Random(1)
        for node_id in ids:
            others = rng.sample(holders[1:], k=min(4, len(holders) - 1))
            lots = [(h, 1_000 * SHARES) for h in [holders[0], *others]]
            send_share_transfers(operator, suite, node_id, lots)
        first = max(suite.fetch_node(n).registered_epoch for n in ids)
        genesis = int(suite.registry.call("GENESIS"))
        now = int(w3.eth.get_block("latest")["timestamp"])
        send_increase_time(w3, genesis + (first + epochs) * EPOCH - now + 1)
        domain = fetch_domain_of(suite)
        separator = domain.get_separator()
        deadline = genesis + (first + epochs + 10_000) * EPOCH
        reports: list[SignedReport] = []
        for node_id in ids:
            for epoch in range(first, first + epochs):
                inferences = 1_000 + rng.randrange(10_000)
                report = UsageReport(
                    node_id=node_id, epoch=epoch, inferences=inferences,
                    revenue=inferences * PRICE // 1_000, latency_ms=20 + rng.randrange(80),
                    uptime_bps=9_900 + rng.randrange(101), deadline=deadline,
                )  # fmt: skip
                reports.append(sign(report, attestor, domain, separator))
        send_mint_mock(issuer, suite, issuer.signer.address, sum(r.revenue for r in reports))
        post_reports(issuer, suite, reports, domain, batch_size=100)
        send_increase_time(w3, CHALLENGE + 1)
        finalize_reports(issuer, suite, [(r.node_id, r.epoch) for r in reports])
        send_increase_time(w3, UNLOCK + 1)
        write_manifest(manifest, manifest_path)
        yield {
            "url": chain.url, "suite": suite, "manifest": manifest_path, "ids": ids,
            "operator": operator.signer.address, "investor": holders[0], "holders": holders,
        }  # fmt: skip


def _median_seconds(run: Callable[[], Any]) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class _Command:
    """``edgeshare ARGS`` as a process, keeping its last output."""

    def __init__(self, args: list[str]) -> None:
        self.exe = str(Path(sys.executable).with_name("edgeshare"))
        self.args = args
        self.output = ""

    def __call__(self) -> None:
        done = subprocess.run([self.exe, *self.args], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            what = " ".join(self.args[:2])
            raise RuntimeError(f"edgeshare {what} failed: {done.stderr[-2000:]}")
        self.output = done.stdout


def _timed_process(args: list[str]) -> float:
    """The median seconds of ``edgeshare ARGS``; its output is checked to be JSON after the
    clock stops (parsing it is the reader's work, not the command's)."""
    command = _Command(args)
    seconds = _median_seconds(command)
    json.loads(command.output)
    return seconds


class BareWork:
    """The JSON-RPC and SQL work a command needs, with nothing around it."""

    def __init__(self, url: str, suite: Suite) -> None:
        self.url = url
        self.session = requests.Session()
        self.suite = suite
        self.ids = 0

    def calls(self, calls: list[tuple[str, str]]) -> None:
        """``eth_call``s (to, calldata) in batches of 200, like the library's client."""
        for start in range(0, len(calls), 200):
            payload = [
                {"jsonrpc": "2.0", "id": self.ids + i, "method": "eth_call",
                 "params": [{"to": to, "data": data}, "latest"]}
                for i, (to, data) in enumerate(calls[start : start + 200])
            ]  # fmt: skip
            self.ids += len(payload)
            replies = self.session.post(self.url, json=payload, timeout=300).json()
            assert all("result" in r for r in replies)

    def head(self) -> None:
        """What a command asks before reading: the chain id and the head."""
        for method in ("eth_chainId", "eth_blockNumber"):
            self.session.post(self.url, json={"jsonrpc": "2.0", "id": 0, "method": method,
                                              "params": []}, timeout=60).json()  # fmt: skip


def _node_calls(suite: Suite, ids: list[int]) -> list[tuple[str, str]]:
    node = get_codec("NodeRegistry").fn("node")
    return [(suite.registry.address, node.encode(n)) for n in ids]


def _share_calls(suite: Suite, ids: list[int], *reads: tuple[Any, ...]) -> list[tuple[str, str]]:
    share = get_codec("NodeShare")
    tokens = suite.fetch_share_tokens(ids)
    return [(t, share.fn(r[0]).encode(*r[1:])) for t in tokens for r in reads]


def _sql(url: str, *queries: str) -> Callable[[], None]:
    engine = create_engine(url if "://" in url else f"sqlite:///{url}")

    def run() -> None:
        with engine.connect() as db:
            for query in queries:
                db.execute(text(query)).fetchall()

    return run


def measure(world: dict[str, Any], dbs: dict[str, str]) -> list[dict[str, Any]]:
    """Each command: process time, in-process time, bare work time, on each database."""
    suite: Suite = world["suite"]
    ids, investor, operator = world["ids"], world["investor"], world["operator"]
    where = ["--rpc-url", world["url"], "--manifest", str(world["manifest"])]
    common = [*where, "--json"]
    bare = BareWork(world["url"], suite)
    node_calls = _node_calls(suite, ids)
    holding_calls = _share_calls(suite, ids, ("balanceOf", investor), ("claimable", investor),
                                 ("totalSupply",))  # fmt: skip
    distributed_calls = _share_calls(suite, ids, ("total_distributed",))
    vesting_calls = _share_calls(suite, ids, ("unvested",), ("vesting_ends_at",))
    token_calls = [(suite.registry.address, get_codec("NodeRegistry").fn("share_token").encode(n))
                   for n in ids]  # fmt: skip
    usage_sql = "SELECT * FROM usage"
    # each (node, epoch)'s channel revenue; the operator report also sums each customer's
    channel_sql = "SELECT * FROM channel_revenue"
    customers_sql = "SELECT * FROM channel_redemptions"
    # the investor's balance history, replayed for its share of each epoch
    investor_transfers_sql = (
        f"SELECT * FROM transfers WHERE sender = '{investor}' OR receiver = '{investor}'"
    )

    def plans_for(db: str) -> list[_Plan]:
        with_db = [*common, "--db", db]
        report_args = ["--format", "json", *where, "--db", db]
        return [
            ("nodes list", ["nodes", "list", *common], lambda: suite.fetch_nodes(),
             lambda: bare.calls(node_calls)),
            ("market", ["market", *with_db], lambda: _with_db(db, lambda c: build_board(c, suite)),
             lambda: (bare.calls(node_calls), _sql(db, usage_sql)())),
            ("portfolio", ["portfolio", investor, *common],
             lambda: fetch_portfolio(suite, investor),
             lambda: bare.calls(token_calls + holding_calls)),
            ("report operator", ["report", "operator", operator, *report_args],
             lambda: _with_db(db, lambda c: build_report(c, suite, operator=operator)),
             lambda: (bare.calls(distributed_calls), _sql(db, usage_sql, "SELECT * FROM claims",
                                                          "SELECT * FROM nodes", channel_sql,
                                                          customers_sql)())),
            ("report investor", ["report", "investor", investor, *report_args],
             lambda: _with_db(db, lambda c: build_report(c, suite, investor=investor)),
             lambda: (bare.calls(holding_calls + vesting_calls + distributed_calls),
                      _sql(db, usage_sql, "SELECT * FROM claims", "SELECT * FROM nodes",
                           investor_transfers_sql, channel_sql)())),
        ]  # fmt: skip

    rows = []
    for db_name, db in dbs.items():
        for name, args, in_process, reference in plans_for(db):
            if name in ("nodes list", "portfolio") and db_name != "sqlite":
                continue  # no database involved
            process = _timed_process(args)
            inside = _median_seconds(in_process)
            ref = _median_seconds(lambda r=reference: (bare.head(), r()))  # type: ignore[misc]
            rows.append({
                "command": name, "db": db_name if name not in ("nodes list", "portfolio") else "-",
                "process_seconds": round(process, 3), "in_process_seconds": round(inside, 3),
                "bare_work_seconds": round(ref, 3), "ratio": round(inside / ref, 2),
            })  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    return rows


def _with_db(url: str, work: Callable[[Any], Any]) -> Any:
    with open_db(url) as conn:
        return work(conn)


def measure_startup() -> float:
    """Seconds for ``edgeshare --help`` as a process: the interpreter and the imports."""
    exe = str(Path(sys.executable).with_name("edgeshare"))
    return _median_seconds(lambda: subprocess.run([exe, "--help"], capture_output=True, check=True))


@contextmanager
def indexed_world(
    workdir: Path, quick: bool, postgres_url: str | None
) -> Iterator[tuple[dict[str, Any], dict[str, str], float]]:
    """The world, indexed into SQLite (and PostgreSQL when given): the world, the
    databases by name, and the seconds it took to build."""
    nodes, epochs, investors = (100, 10, 50) if quick else (1_000, 100, 50)
    started = time.perf_counter()
    with scale_world(nodes, epochs, investors, workdir) as world:
        built = time.perf_counter() - started
        world.update(nodes=nodes, epochs=epochs, investors=investors)
        dbs = {"sqlite": f"sqlite:///{workdir / 'scale.db'}"}
        if postgres_url:
            dbs["postgresql"] = postgres_url
        for url in dbs.values():  # a pruned node cannot find the deploy block: start at 0
            with open_db(url) as db:
                Indexer(world["suite"], db, world["suite"].rpc, start_block=0).run()
        yield world, dbs, built


def run_section(
    workdir: Path, quick: bool, postgres_url: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The whole section: build the world, index it into each database, measure the
    commands; then the web app on the same world (bench/web_app.py)."""
    with indexed_world(workdir, quick, postgres_url) as (world, dbs, built):
        rows = measure(world, dbs)
        print("web app on the same world ...", flush=True)
        web = web_bench.run_section(world, dbs["sqlite"])
    reads = {
        "nodes": world["nodes"], "epochs": world["epochs"], "investors": world["investors"],
        "setup_seconds": round(built, 1), "startup_seconds": round(measure_startup(), 3),
        "commands": rows,
    }  # fmt: skip
    return reads, web


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run_section(Path(tmp), "--quick" in sys.argv,
                                     os.environ.get("BENCH_POSTGRES_URL")), indent=1))  # fmt: skip
