"""The event index on SQLite and PostgreSQL: the same rows from the same chain, exact big
amounts, reorganisations undone and re-indexed, schema migrations, confirmations; payment
channels' revenue, redemptions, deposits and withdrawals, with usage rows holding what the
payer paid beside the report's own revenue, equal to the chain's (channel tests fail on
the code before the channels were indexed: it had no channel tables and schema 2)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from web3 import Web3

from edgeshare.attestation import sign
from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.channels import (
    build_voucher,
    fetch_channel,
    fetch_channels_domain,
    redeem_vouchers,
    send_deposit,
    send_request_close,
    send_withdraw_channel,
    sign_voucher,
)
from edgeshare.demo import get_keys_needed, run_demo
from edgeshare.deploy import read_manifest
from edgeshare.errors import ChainUnavailable, InputError
from edgeshare.indexer import (
    METADATA,
    SCHEMA_VERSION,
    Indexer,
    claims,
    meta,
    open_db,
    sync_index,
    transfers,
    usage,
)
from edgeshare.roles import send_dispute
from edgeshare.rpc import RpcClient, RpcError, get_rpc
from edgeshare.signer import Signer
from edgeshare.suite import (
    Suite,
    build_report,
    fetch_domain_of,
    send_increase_time,
    send_mint_mock,
    send_settle,
    send_transfer_shares,
)
from edgeshare.tx import Transactor
from tests.inproc import run_main
from tests.pg import create_database, postgres_url

__all__ = ["postgres_url"]  # the fixture, imported for pytest

NODES, INVESTORS, EPOCHS = 2, 2, 2
BIG = 2**63 + 12_345  # inferences above int64, revenue far above it
USDC = 10**6
CHANNEL_TABLES = ("channel_revenue", "channel_redemptions", "channel_funds")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("index-db")
    keys = build_dev_keys(get_keys_needed(NODES, INVESTORS))
    with LocalChain("anvil", accounts=len(keys)) as chain:
        w3 = connect(chain.url)
        run_demo(w3, keys, nodes=NODES, investors=INVESTORS, epochs=EPOCHS, seed=5,
                 reports_dir=None, workdir=workdir)  # fmt: skip
        manifest = workdir / "manifest.json"
        suite = Suite.load(w3, read_manifest(manifest))  # type: ignore[arg-type]
        issuer = Transactor(w3, Signer.from_key(keys[0]))
        send_mint_mock(issuer, suite, issuer.signer.address, 10**30)
        yield {"chain": chain, "w3": w3, "suite": suite, "manifest": manifest, "keys": keys,
               "next_epoch": [EPOCHS]}  # fmt: skip


@pytest.fixture
def snapshot(world: dict[str, Any]) -> Iterator[None]:
    """Whatever a test sends to the module's chain is reverted after it."""
    w3: Web3 = world["w3"]
    taken = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    yield
    w3.provider.make_request("evm_revert", [taken])  # type: ignore[arg-type]


def _args(world: dict[str, Any]) -> list[str]:
    return ["--rpc-url", world["chain"].url, "--manifest", str(world["manifest"])]


def _issuer(world: dict[str, Any]) -> Transactor:
    """The deployer (guardian, payer), its nonce read afresh: a revert rewinds it."""
    return Transactor(world["w3"], Signer.from_key(world["keys"][0]))


def _settle(world: dict[str, Any], node_id: int, epoch: int, inferences: int) -> int:
    """Settle one signed report for ``node_id``; returns its revenue."""
    suite: Suite = world["suite"]
    now = int(world["w3"].eth.get_block("latest")["timestamp"])
    report = build_report(suite, node_id, epoch, inferences, 40, 9_990, now + 10**6)
    attestor_key = world["keys"][1 + NODES + INVESTORS + node_id - 1]
    send_settle(_issuer(world), suite, [sign(report, attestor_key, fetch_domain_of(suite))])
    return report.revenue


def _fresh_epoch(world: dict[str, Any]) -> int:
    """An ended epoch nobody has settled yet (the clock is moved on when needed)."""
    suite: Suite = world["suite"]
    epoch = world["next_epoch"][0]
    world["next_epoch"][0] += 1
    while int(suite.router.call("current_epoch")) <= epoch:
        send_increase_time(world["w3"], 2 * 3_600)
    return epoch


def _open_epoch(world: dict[str, Any]) -> int:
    """A fresh epoch that has just begun (vouchers redeemed now are credited to it) and
    that nobody has settled; the clock is moved to a minute past its start."""
    suite: Suite = world["suite"]
    epoch: int = max(world["next_epoch"][0], int(suite.router.call("current_epoch")) + 1)
    world["next_epoch"][0] = epoch + 1
    now = int(world["w3"].eth.get_block("latest")["timestamp"])
    send_increase_time(world["w3"], int(suite.registry.call("epoch_start", epoch)) + 60 - now)
    return epoch


Customer = tuple[str, Transactor]
"""A channel customer's key and its transactor."""


def _customers(world: dict[str, Any], count: int = 2) -> list[Customer]:
    """Channel customers (dev keys after the world's) with gas and 1,000 USDC each."""
    w3: Web3 = world["w3"]
    found = []
    for key in build_dev_keys(len(world["keys"]) + count)[-count:]:
        who = Transactor(w3, Signer.from_key(key))
        funds = [who.signer.address, hex(10**20)]
        w3.provider.make_request("anvil_setBalance", funds)  # type: ignore[arg-type]
        send_mint_mock(_issuer(world), world["suite"], who.signer.address, 1_000 * USDC)
        found.append((key, who))
    return found


def _redeem(world: dict[str, Any], node_id: int, vouchers: list[tuple[Customer, int]]) -> None:
    """The node's operator (the demo's: key ``node_id``) redeems a voucher of each
    (customer, cumulative amount)."""
    suite: Suite = world["suite"]
    domain = fetch_channels_domain(suite)
    signed = [
        sign_voucher(build_voucher(suite, who.signer.address, node_id, cumulative), key, domain)
        for (key, who), cumulative in vouchers
    ]
    operator = Transactor(world["w3"], Signer.from_key(world["keys"][node_id]))
    result = redeem_vouchers(operator, suite, signed, domain)
    assert result.redeemed == len(vouchers) and not result.skipped


def _inferences_for(world: dict[str, Any], node_id: int, epoch: int, revenue: int) -> int:
    """Inferences whose revenue at the node's price is at least ``revenue``."""
    price = int(world["suite"].registry.call("price_for_epoch", node_id, epoch))
    return -(-revenue * 1_000 // price)


def _pay_by_channels(world: dict[str, Any]) -> dict[str, Any]:
    """Two customers pay nodes 1 and 2 through channels in one epoch (two redemptions on
    node 1, one on node 2) and node 1 again in the next; one customer closes its channel
    to node 1 and withdraws the rest. The first epoch's reports are settled: node 1's is
    owed beyond its channel revenue, node 2's is paid by channels in full (due 0)."""
    suite: Suite = world["suite"]
    w3: Web3 = world["w3"]
    (a, b) = _customers(world)
    first = _open_epoch(world)
    world["next_epoch"][0] = first + 2
    send_deposit(a[1], suite, 1, 30 * USDC)
    send_deposit(b[1], suite, 1, 10 * USDC)
    send_deposit(a[1], suite, 2, 5 * USDC)
    _redeem(world, 1, [(a, 7 * USDC), (b, 2 * USDC)])
    _redeem(world, 1, [(a, 10 * USDC)])
    _redeem(world, 2, [(a, 4 * USDC)])
    send_request_close(b[1], suite, 1)
    send_increase_time(w3, int(suite.registry.call("EPOCH_LENGTH")))
    _redeem(world, 1, [(b, 6 * USDC)])  # inside b's grace: credited to the next epoch
    reported = {
        1: _settle(world, 1, first, _inferences_for(world, 1, first, 20 * USDC)),
        2: _settle(world, 2, first, _inferences_for(world, 2, first, USDC)),
    }
    send_increase_time(w3, int(suite.channels.call("CLOSE_GRACE")))
    withdrawn = int(send_withdraw_channel(b[1], suite, 1).details["amount"])
    assert withdrawn == 4 * USDC
    return {"first": first, "reported": reported, "customers": [a[1], b[1]]}


def _channel_rows(url: str) -> dict[str, list[Any]]:
    """The channel tables' rows (as mappings), and the usage rows."""
    with open_db(url) as db:
        return {
            name: list(db.execute(select(METADATA.tables[name])).mappings().all())
            for name in (*CHANNEL_TABLES, "usage", "splits")
        }


def _dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order."""
    with open_db(url) as db:
        return {
            table.name: [tuple(r) for r in db.execute(select(table).order_by(*table.primary_key))]
            for table in METADATA.sorted_tables
        }


def _sqlite(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name}"


def _url(kind: str, tmp_path: Path, request: pytest.FixtureRequest, name: str) -> str:
    if kind == "sqlite":
        return _sqlite(tmp_path, f"{name}.db")
    return create_database(request.getfixturevalue("postgres_url"), name)


# ------------------------------------------------------------------ both databases


def test_index__sqlite_and_postgres__same_rows_market_and_reports(
    world: dict[str, Any],
    postgres_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lite = _sqlite(tmp_path, "same.db")
    pg = create_database(postgres_url, "same_chain")
    operator = Signer.from_key(world["keys"][1]).address
    investor = Signer.from_key(world["keys"][1 + NODES]).address
    outputs: dict[str, list[str]] = {}
    for url in (lite, pg):
        code, out = run_main(capsys, monkeypatch, {}, "index", "--db", url, *_args(world))
        assert code == 0, out
        for command in (["market", "--json"], ["report", "operator", operator, "--format",
                        "json"], ["report", "investor", investor, "--format", "json"]):  # fmt: skip
            code, out = run_main(capsys, monkeypatch, {}, *command, "--db", url, *_args(world))
            assert code == 0, out
            outputs.setdefault(url, []).append(out)
    assert outputs[lite] == outputs[pg]
    assert '"revenue"' in outputs[lite][1] and '"positions"' in outputs[lite][2]
    rows = _dump(lite)
    assert rows == _dump(pg)
    assert len(rows["usage"]) == NODES * EPOCHS and rows["claims"] and rows["transfers"]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_amounts__above_2_63__round_trip_exactly(
    world: dict[str, Any],
    snapshot: None,
    kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    url = _url(kind, tmp_path, request, "big_amounts")
    epoch = _fresh_epoch(world)
    revenue = _settle(world, 1, epoch, BIG)
    assert revenue > 2**64
    sync_index(world["suite"], url)
    with open_db(url) as db:
        got = db.execute(
            select(usage.c.inferences, usage.c.revenue).where(
                usage.c.node_id == 1, usage.c.epoch == epoch
            )
        ).one()
    assert tuple(got) == (BIG, revenue) and all(type(v) is int for v in got)
    # the largest uint256 too, written and read back through the same column type
    with open_db(url) as db, db.begin():
        db.execute(
            claims.insert(),
            {
                "block": 10**12,
                "log_index": 0,
                "node_id": 1,
                "holder": "h",
                "receiver": "r",
                "amount": 2**256 - 1,
            },
        )
    with open_db(url) as db:
        top = db.execute(select(claims.c.amount).where(claims.c.block == 10**12)).scalar()
    assert top == 2**256 - 1


# ------------------------------------------------------------------ reorgs


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_index__after_a_reorg__rolls_back_and_matches_the_chain(
    world: dict[str, Any],
    snapshot: None,
    kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    suite: Suite = world["suite"]
    w3: Web3 = world["w3"]
    url = _url(kind, tmp_path, request, "reorg")
    pending, replaced = _fresh_epoch(world), _fresh_epoch(world)
    _settle(world, 1, pending, 1_000)
    sync_index(suite, url)
    fork = int(w3.eth.block_number)
    branch = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]

    # the branch the chain will abandon: a dispute, a report, a share transfer
    send_dispute(_issuer(world), suite, 1, pending)
    _settle(world, 1, replaced, 5_000)
    holder = Transactor(w3, Signer.from_key(world["keys"][1 + NODES]))
    send_transfer_shares(holder, suite, 2, Signer.from_key(world["keys"][1]).address, 10**18)
    sync_index(suite, url)
    abandoned = int(w3.eth.block_number)
    with open_db(url) as db:
        assert db.execute(select(usage.c.state).where(usage.c.epoch == pending)).scalar() == (
            "disputed"
        )

    # the chain the node settles on: another report for the same epoch, more blocks
    w3.provider.make_request("evm_revert", [branch])  # type: ignore[arg-type]
    revenue = _settle(world, 1, replaced, 7_000)
    for _ in range(3):
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="edgeshare.indexer"):
        _, result = sync_index(suite, url)
    undone = [r.getMessage() for r in caplog.records if "reorganisation" in r.getMessage()]
    assert len(undone) == 1 and f"undid {abandoned - fork} blocks" in undone[0]
    assert result.undone == abandoned - fork and result.to_block == int(w3.eth.block_number)

    with open_db(url) as db:
        rows = {
            e: (r, s)
            for e, r, s in db.execute(
                select(usage.c.epoch, usage.c.revenue, usage.c.state).where(usage.c.node_id == 1)
            )
        }
        moves = db.execute(
            select(transfers.c.sender, transfers.c.receiver, transfers.c.value).where(
                transfers.c.node_id == 2
            )
        ).all()
    # what the chain says: each epoch's record, and the claims as the share token counts them
    for epoch, (indexed_revenue, state) in rows.items():
        record = suite.router.call("settlement", 1, epoch)
        assert (indexed_revenue, state) == (
            record["revenue"],
            ("", "pending", "finalized", "disputed")[record["state"]],
        )
    assert rows[pending] == (rows[pending][0], "pending") and rows[replaced][0] == revenue
    balances: dict[str, int] = {}
    for sender, receiver, value in moves:
        balances[sender] = balances.get(sender, 0) - value
        balances[receiver] = balances.get(receiver, 0) + value
    share = suite.share(2)
    for key in world["keys"][1 : 1 + NODES + INVESTORS]:
        holder_address = Signer.from_key(key).address
        on_chain = int(share.call("balanceOf", holder_address))
        assert balances.get(holder_address, 0) == on_chain
    # and the whole index equals one built from scratch on the chain as it is now
    fresh = _url(kind, tmp_path, request, "reorg_fresh")
    sync_index(suite, fresh)
    assert _dump(url) == _dump(fresh)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_index__channel_revenue_redemptions_and_funds__equal_the_chain(
    world: dict[str, Any],
    snapshot: None,
    kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    suite: Suite = world["suite"]
    story = _pay_by_channels(world)
    first = story["first"]
    url = _url(kind, tmp_path, request, "channels")
    sync_index(suite, url)
    rows = _channel_rows(url)
    router, channels = suite.router, suite.channels

    # every ChannelRevenue, with the router's split of it; per (node, epoch) the router's
    fee_bps = int(router.call("PROTOCOL_FEE_BPS"))
    credited: dict[tuple[int, int], int] = {}
    for r in rows["channel_revenue"]:
        credited[(r["node_id"], r["epoch"])] = (
            credited.get((r["node_id"], r["epoch"]), 0) + (r["amount"])
        )
        assert r["protocol_fee"] == r["amount"] * fee_bps // 10_000
        assert r["protocol_fee"] + r["operator_cut"] + r["holders"] == r["amount"]
    assert credited == {k: router.call("channel_revenue", *k) for k in credited}
    assert sum(credited.values()) == router.call("total_channel_revenue")
    assert credited[(1, first)] == 12 * USDC and credited[(2, first)] == 4 * USDC
    assert credited[(1, first + 1)] == 4 * USDC
    # every split the share tokens were paid, channel revenue's included
    for node_id in (1, 2):
        paid = sum(s["holders"] for s in rows["splits"] if s["node_id"] == node_id)
        assert paid == suite.share(node_id).call("total_distributed")

    # usage rows: what the payer paid (the router's record), beside the report's revenue
    usage_rows = {(u["node_id"], u["epoch"]): u for u in rows["usage"]}
    for node_id, reported in story["reported"].items():
        u = usage_rows[(node_id, first)]
        credit = router.call("channel_revenue", node_id, first)
        assert (u["revenue"], u["report_revenue"], u["channel_credit"]) == (
            router.call("settlement", node_id, first)["revenue"], reported, credit)  # fmt: skip
        assert u["revenue"] == reported - min(reported, credit)
    assert usage_rows[(1, first)]["revenue"] > 0 and usage_rows[(2, first)]["revenue"] == 0
    for u in rows["usage"]:  # the demo's epochs too
        assert u["revenue"] == router.call("settlement", u["node_id"], u["epoch"])["revenue"]

    # redemptions: cumulative per channel generation, summing to what the chain redeemed
    redeemed: dict[tuple[str, int, int], int] = {}
    for r in rows["channel_redemptions"]:
        key = (r["customer"], r["node_id"], r["generation"])
        redeemed[key] = redeemed.get(key, 0) + r["amount"]
        assert r["cumulative"] == redeemed[key]  # in the chain's order
    assert sum(redeemed.values()) == channels.call("total_redeemed")
    a, b = (who.signer.address for who in story["customers"])
    assert redeemed[(a, 1, 0)] == fetch_channel(suite, a, 1).redeemed == 10 * USDC
    assert redeemed[(a, 2, 0)] == fetch_channel(suite, a, 2).redeemed == 4 * USDC
    assert redeemed[(b, 1, 0)] == 6 * USDC and fetch_channel(suite, b, 1).generation == 1

    # deposits less withdrawals less redemptions: what the channels still owe customers
    moved = {"deposit": 0, "withdrawal": 0}
    for f in rows["channel_funds"]:
        moved[f["kind"]] += f["amount"]
    assert moved["deposit"] - moved["withdrawal"] - sum(redeemed.values()) == channels.call(
        "total_unredeemed"
    )
    (withdrawal,) = [f for f in rows["channel_funds"] if f["kind"] == "withdrawal"
                     and f["customer"] == b]  # fmt: skip
    assert (withdrawal["node_id"], withdrawal["generation"], withdrawal["amount"]) == (
        1, 0, 4 * USDC)  # fmt: skip
    assert all(r["tx_hash"].startswith("0x") for name in CHANNEL_TABLES for r in rows[name])


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_index__after_a_reorg__channel_rows_are_undone_and_match_the_chain(
    world: dict[str, Any],
    snapshot: None,
    kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    suite: Suite = world["suite"]
    w3: Web3 = world["w3"]
    url = _url(kind, tmp_path, request, "channel_reorg")
    (a,) = _customers(world, 1)
    address = a[1].signer.address
    epoch = _open_epoch(world)
    send_deposit(a[1], suite, 1, 20 * USDC)
    sync_index(suite, url)
    branch = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]

    # the branch the chain abandons: a redemption and a top-up
    _redeem(world, 1, [(a, 5 * USDC)])
    send_deposit(a[1], suite, 1, 3 * USDC)
    sync_index(suite, url)
    mine = [r for r in _channel_rows(url)["channel_redemptions"] if r["customer"] == address]
    assert [r["amount"] for r in mine] == [5 * USDC]

    # the chain it settles on: another redemption, more blocks
    w3.provider.make_request("evm_revert", [branch])  # type: ignore[arg-type]
    _redeem(world, 1, [(a, 2 * USDC)])
    for _ in range(3):
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    _, result = sync_index(suite, url)
    assert result.undone > 0
    rows = _channel_rows(url)
    mine = [r for r in rows["channel_redemptions"] if r["customer"] == address]
    assert [(r["amount"], r["cumulative"]) for r in mine] == [(2 * USDC, 2 * USDC)]
    funds = [(f["kind"], f["amount"]) for f in rows["channel_funds"] if f["customer"] == address]
    assert funds == [("deposit", 20 * USDC)]
    credited = sum(r["amount"] for r in rows["channel_revenue"] if (r["node_id"], r["epoch"]) == (
        1, epoch))  # fmt: skip
    assert credited == suite.router.call("channel_revenue", 1, epoch) == 2 * USDC
    assert sum(r["amount"] for r in rows["channel_revenue"]) == suite.router.call(
        "total_channel_revenue"
    )
    fresh = _url(kind, tmp_path, request, "channel_reorg_fresh")
    sync_index(suite, fresh)
    assert _dump(url) == _dump(fresh)


def test_index__of_a_chain_reset_below_the_deploy_block__is_refused(
    world: dict[str, Any], tmp_path: Path
) -> None:
    url = _sqlite(tmp_path, "reset.db")
    sync_index(world["suite"], url)
    with open_db(url) as db, db.begin():
        db.execute(meta.update().where(meta.c.key == "deploy_block_hash").values(value="0x00"))
    with pytest.raises(InputError, match="does not match this chain"):
        sync_index(world["suite"], url)


# ------------------------------------------------------------------ schema versions

V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE nodes (node_id INTEGER PRIMARY KEY, operator TEXT, attestor TEXT,
    share_token TEXT UNIQUE, shares TEXT, price_per_1k TEXT, operator_cut_bps INTEGER,
    region TEXT, metadata_uri TEXT, external_id TEXT, status INTEGER, registered_block INTEGER);
CREATE TABLE usage (node_id INTEGER, epoch INTEGER, inferences INTEGER, revenue TEXT,
    latency_ms INTEGER, uptime_bps INTEGER, payer TEXT, attestor TEXT, operator_cut_bps INTEGER,
    state TEXT, settled_block INTEGER, PRIMARY KEY (node_id, epoch));
CREATE TABLE splits (block INTEGER, log_index INTEGER, node_id INTEGER, epochs INTEGER,
    gross TEXT, protocol_fee TEXT, operator_cut TEXT, holders TEXT, PRIMARY KEY (block, log_index));
CREATE TABLE claims (block INTEGER, log_index INTEGER, node_id INTEGER, holder TEXT,
    receiver TEXT, amount TEXT, PRIMARY KEY (block, log_index));
CREATE TABLE transfers (block INTEGER, log_index INTEGER, node_id INTEGER, sender TEXT,
    receiver TEXT, value TEXT, PRIMARY KEY (block, log_index));
CREATE TABLE withdrawals (block INTEGER, log_index INTEGER, account TEXT, receiver TEXT,
    amount TEXT, PRIMARY KEY (block, log_index));
CREATE TABLE other_events (block INTEGER, log_index INTEGER, address TEXT, name TEXT, args TEXT,
    PRIMARY KEY (block, log_index));
CREATE INDEX usage_epoch ON usage (epoch);
CREATE INDEX claims_holder ON claims (holder);
"""


def test_open_db__a_version_1_sqlite_file__is_migrated_and_rebuilt(
    world: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "v1.db"
    old = sqlite3.connect(path)
    old.executescript(V1_SCHEMA)
    with old:
        old.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("chain_id", str(world["suite"].manifest.chain_id)), ("deploy_block", "1"),
            ("last_block", "5"), ("last_block_hash", "0xabc")])  # fmt: skip
        old.execute("INSERT INTO usage VALUES (1, 0, 5, '1e+20', 1, 1, 'p', 'a', 0, 'pending', 3)")
    old.close()
    with caplog.at_level(logging.WARNING, logger="edgeshare.indexer"):
        sync_index(world["suite"], f"sqlite:///{path}")
    assert any("schema version 1 to 2" in r.getMessage() for r in caplog.records)
    with open_db(f"sqlite:///{path}") as db:
        version = db.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    assert version == str(SCHEMA_VERSION)
    fresh = _sqlite(tmp_path, "fresh.db")
    sync_index(world["suite"], fresh)
    assert _dump(f"sqlite:///{path}") == _dump(fresh)


def test_open_db__a_version_2_index__is_migrated_and_rebuilt_with_channels(
    world: dict[str, Any], snapshot: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    suite: Suite = world["suite"]
    _pay_by_channels(world)
    path = tmp_path / "v2.db"
    sync_index(suite, f"sqlite:///{path}")
    # version 2's layout: no channel tables, a usage row's revenue without the report's
    old = sqlite3.connect(path)
    with old:
        for name in CHANNEL_TABLES:
            old.execute(f"DROP TABLE IF EXISTS {name}")
        for table in ("usage", "usage_events"):
            for column in ("report_revenue", "channel_credit"):
                old.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        old.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    old.close()
    with caplog.at_level(logging.WARNING, logger="edgeshare.indexer"):
        sync_index(suite, f"sqlite:///{path}")
    assert any("schema version 2 to 3" in r.getMessage() for r in caplog.records)
    fresh = _sqlite(tmp_path, "fresh_v3.db")
    sync_index(suite, fresh)
    migrated = _dump(f"sqlite:///{path}")
    assert migrated == _dump(fresh) and migrated["channel_redemptions"]
    assert ("schema_version", str(SCHEMA_VERSION)) in migrated["meta"]


def test_open_db__a_newer_schema__is_refused(tmp_path: Path) -> None:
    url = _sqlite(tmp_path, "newer.db")
    with open_db(url) as db, db.begin():
        db.execute(meta.update().where(meta.c.key == "schema_version").values(value="99"))
    with pytest.raises(InputError, match="schema version 99"), open_db(url):
        pass


# ------------------------------------------------------------------ depth and errors


def test_index__with_confirmations_2__stops_2_blocks_behind_the_head(
    world: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = _sqlite(tmp_path, "depth.db")
    head = int(world["w3"].eth.block_number)
    code, out = run_main(capsys, monkeypatch, {}, "index", "--confirmations", "2", "--json",
                         "--db", url, *_args(world))  # fmt: skip
    assert code == 0, out
    assert f'"to_block": {head - 2}' in out
    with open_db(url) as db:
        last = db.execute(select(meta.c.value).where(meta.c.key == "last_block")).scalar()
    assert last == str(head - 2)
    code, out = run_main(capsys, monkeypatch, {}, "index", "--json", "--db", url, *_args(world))
    assert code == 0 and f'"to_block": {head}' in out  # a local chain: 0 by default


def test_index__a_failing_getlogs__is_chain_unavailable(
    world: dict[str, Any], tmp_path: Path
) -> None:
    class Broken(RpcClient):
        """A node whose eth_getLogs fails for a reason that is not the range."""

        def batch(self, calls: list[tuple[str, list[Any]]], *args: Any, **kw: Any) -> list[Any]:
            if calls[0][0] == "eth_getLogs":
                return [RpcError(-32000, "internal error: database closed")]
            return super().batch(calls, *args, **kw)

    suite: Suite = world["suite"]
    with open_db(_sqlite(tmp_path, "broken.db")) as db:
        indexer = Indexer(suite, db, Broken(get_rpc(suite.w3).url))
        with pytest.raises(ChainUnavailable, match="eth_getLogs"):
            indexer.run()
