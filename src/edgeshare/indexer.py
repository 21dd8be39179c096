"""Indexing the suite's events into SQLite, resumably, for the reports and the market.

Logs are read with chunked ``eth_getLogs``: the registry's and router's first, then the
share tokens known so far (a share token appears in ``NodeRegistered``), so no other
contract's ``Transfer`` is ever read. A range a node refuses for its size is halved and
retried. Each chunk is decoded and written in one SQLite transaction together with the
new "last indexed block", so a crash loses nothing and a re-run resumes where it
stopped. Amounts are stored as decimal text: they can exceed SQLite's 64-bit integers.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_abi.abi import decode
from eth_utils.crypto import keccak
from web3 import Web3

from edgeshare.artifacts import load_artifact
from edgeshare.errors import InputError
from edgeshare.models import to_checksum
from edgeshare.rpc import RpcClient, RpcError
from edgeshare.suite import Suite

DEFAULT_CHUNK = 2_000
TOO_MANY = ("too many", "limit", "range", "exceed", "response size", "query returned more")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
    node_id INTEGER PRIMARY KEY, operator TEXT, attestor TEXT, share_token TEXT UNIQUE,
    shares TEXT, price_per_1k TEXT, operator_cut_bps INTEGER, region TEXT,
    metadata_uri TEXT, external_id TEXT, status INTEGER, registered_block INTEGER);
CREATE TABLE IF NOT EXISTS usage (
    node_id INTEGER, epoch INTEGER, inferences INTEGER, revenue TEXT, latency_ms INTEGER,
    uptime_bps INTEGER, payer TEXT, attestor TEXT, operator_cut_bps INTEGER,
    state TEXT, settled_block INTEGER, PRIMARY KEY (node_id, epoch));
CREATE TABLE IF NOT EXISTS splits (
    block INTEGER, log_index INTEGER, node_id INTEGER, epochs INTEGER, gross TEXT,
    protocol_fee TEXT, operator_cut TEXT, holders TEXT, PRIMARY KEY (block, log_index));
CREATE TABLE IF NOT EXISTS claims (
    block INTEGER, log_index INTEGER, node_id INTEGER, holder TEXT, receiver TEXT,
    amount TEXT, PRIMARY KEY (block, log_index));
CREATE TABLE IF NOT EXISTS transfers (
    block INTEGER, log_index INTEGER, node_id INTEGER, sender TEXT, receiver TEXT,
    value TEXT, PRIMARY KEY (block, log_index));
CREATE TABLE IF NOT EXISTS withdrawals (
    block INTEGER, log_index INTEGER, account TEXT, receiver TEXT, amount TEXT,
    PRIMARY KEY (block, log_index));
CREATE TABLE IF NOT EXISTS other_events (
    block INTEGER, log_index INTEGER, address TEXT, name TEXT, args TEXT,
    PRIMARY KEY (block, log_index));
CREATE INDEX IF NOT EXISTS usage_epoch ON usage (epoch);
CREATE INDEX IF NOT EXISTS claims_holder ON claims (holder);
"""


STATIC = ("uint", "int", "address", "bool", "bytes32")


@dataclass(frozen=True)
class EventSpec:
    """How to decode one event: its name, indexed inputs and data inputs."""

    name: str
    indexed: tuple[tuple[str, str], ...]
    data: tuple[tuple[str, str], ...]

    @property
    def static(self) -> bool:
        """True when every data field is one 32-byte word (decoded by slicing)."""
        return all(t.startswith(STATIC) and "[" not in t for _, t in self.data)


_CHECKSUMS: dict[bytes, str] = {}


def _address(raw: bytes) -> str:
    """A checksummed address from its 20 bytes (cached: the same ones recur constantly)."""
    found = _CHECKSUMS.get(raw)
    if found is None:
        if len(_CHECKSUMS) > 100_000:
            _CHECKSUMS.clear()
        found = _CHECKSUMS[raw] = to_checksum(raw)
    return found


def _word(typ: str, raw: bytes) -> Any:
    if typ == "address":
        return _address(raw[12:])
    if typ.startswith("uint"):
        return int.from_bytes(raw, "big")
    if typ.startswith("int"):
        return int.from_bytes(raw, "big", signed=True)
    if typ == "bool":
        return raw[-1] == 1
    return "0x" + raw.hex()


def _specs(contract: str) -> dict[bytes, EventSpec]:
    out = {}
    for item in load_artifact(contract).abi:
        if item["type"] != "event":
            continue
        types = ",".join(_canonical(i) for i in item["inputs"])
        topic = keccak(text=f"{item['name']}({types})")
        out[topic] = EventSpec(
            item["name"],
            tuple((i["name"], _canonical(i)) for i in item["inputs"] if i["indexed"]),
            tuple((i["name"], _canonical(i)) for i in item["inputs"] if not i["indexed"]),
        )
    return out


def _canonical(item: dict[str, Any]) -> str:
    if item["type"] == "tuple":
        return "(" + ",".join(_canonical(c) for c in item["components"]) + ")"
    return str(item["type"])


def decode_log(spec: EventSpec, log: dict[str, Any]) -> dict[str, Any]:
    """Decode a raw JSON-RPC log with ``spec`` (addresses checksummed, ints as ints)."""
    args: dict[str, Any] = {}
    topics = log["topics"][1:]
    for (name, typ), topic in zip(spec.indexed, topics, strict=True):
        args[name] = _word(typ, bytes.fromhex(topic[2:]))
    if spec.data and spec.static:
        data = bytes.fromhex(log["data"][2:])
        for i, (name, typ) in enumerate(spec.data):
            args[name] = _word(typ, data[32 * i : 32 * i + 32])
        return args
    if spec.data:
        values = decode([t for _, t in spec.data], bytes.fromhex(log["data"][2:]))
        for (name, typ), value in zip(spec.data, values, strict=True):
            if typ == "address":
                value = Web3.to_checksum_address(value)
            elif isinstance(value, bytes):
                value = "0x" + value.hex()
            args[name] = value
    return args


def find_deploy_block(w3: Web3, address: str, known_after: int) -> int:
    """The first block at which ``address`` has code (binary search, ~log2(blocks) calls)."""
    target = Web3.to_checksum_address(address)
    lo, hi = 0, known_after
    if not w3.eth.get_code(target, block_identifier=hi):
        raise InputError(f"{address} has no code at block {hi}")
    while lo < hi:
        mid = (lo + hi) // 2
        if w3.eth.get_code(target, block_identifier=mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def parse_db_url(url: str) -> Path:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or a plain path."""
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    if "://" in url:
        raise InputError(f"unsupported database URL {url!r}: only sqlite:///PATH is supported")
    return Path(url)


def get_default_db_url(chain_id: int) -> str:
    """``sqlite:///index/<chain_id>.db`` under the current directory."""
    return f"sqlite:///index/{chain_id}.db"


@contextmanager
def open_db(url: str) -> Iterator[sqlite3.Connection]:
    """Open (and create) the index database."""
    path = parse_db_url(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        yield db
    finally:
        db.close()


@dataclass
class IndexResult:
    """What one run of the indexer did."""

    from_block: int
    to_block: int
    events: int
    chunks: int


class Indexer:
    """Reads a suite's logs into an index database.

    Args:
        suite: The deployed suite.
        db: An open index database.
        rpc: The JSON-RPC client (for getLogs).
        chunk: Blocks per getLogs request at most; halved when a node refuses a range.
    """

    def __init__(
        self,
        suite: Suite,
        db: sqlite3.Connection,
        rpc: RpcClient,
        chunk: int = DEFAULT_CHUNK,
        start_block: int | None = None,
    ):
        self.suite = suite
        # where a new database starts; searched in the code history when not given (a
        # node that keeps no history, e.g. anvil --prune-history, needs it given)
        self.start_block = start_block
        self.db = db
        self.rpc = rpc
        self.chunk = chunk
        self.core = {
            suite.registry.address.lower(): _specs("NodeRegistry"),
            suite.router.address.lower(): _specs("RevenueRouter"),
        }
        self.share_specs = _specs("NodeShare")
        self.shares = {
            row[0].lower(): row[1] for row in db.execute("SELECT share_token, node_id FROM nodes")
        }
        self._check_meta()

    def _check_meta(self) -> None:
        """Refuse a database made from another chain, or from an earlier life of this one.

        A local chain restarted from scratch redeploys the suite at the same addresses,
        so addresses alone do not identify it: the hashes of the deployment block and of
        the last indexed block must still be the chain's.
        """
        w3 = self.suite.w3
        manifest = self.suite.manifest
        have = dict(self.db.execute("SELECT key, value FROM meta"))
        want = {"chain_id": str(manifest.chain_id), "registry": self.suite.registry.address}
        for key, value in want.items():
            if key in have and have[key] != value:
                raise InputError(
                    f"the index database is for {key} {have[key]}, not {value}; use another --db"
                )
        head = int(w3.eth.block_number)
        for key in ("deploy_block", "last_block"):
            if key in have:
                number = int(have[key])
                found = w3.eth.get_block(number)["hash"].to_0x_hex() if number <= head else None
                if found != have.get(f"{key}_hash"):
                    raise InputError(
                        f"the index database does not match this chain at block {number} (the "
                        "chain was reset or reorganised since); delete it or use another --db"
                    )
        if "deploy_block" not in have:
            first = self.start_block
            if first is None:
                first = find_deploy_block(w3, self.suite.registry.address, manifest.block)
            want["deploy_block"] = str(first)
            want["deploy_block_hash"] = w3.eth.get_block(first)["hash"].to_0x_hex()
        with self.db:
            for key, value in want.items():
                self.db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))

    @property
    def last_block(self) -> int:
        """The last block fully indexed (before the first run: the block before deployment)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'last_block'").fetchone()
        if row:
            return int(row[0])
        deployed = self.db.execute("SELECT value FROM meta WHERE key = 'deploy_block'").fetchone()
        return int(deployed[0]) - 1

    def _get_logs(self, addresses: list[str], start: int, end: int) -> list[dict[str, Any]]:
        return self._get_logs_split([(addresses, start, end)])

    def _get_logs_split(self, ranges: list[tuple[list[str], int, int]]) -> list[dict[str, Any]]:
        logs: list[dict[str, Any]] = []
        while ranges:
            addresses, start, end = ranges.pop(0)
            params = {"address": addresses, "fromBlock": hex(start), "toBlock": hex(end)}
            result = self.rpc.batch([("eth_getLogs", [params])])[0]
            if isinstance(result, RpcError):
                if end > start and any(w in result.message.lower() for w in TOO_MANY):
                    middle = (start + end) // 2
                    self.chunk = max(1, (end - start + 1) // 2)
                    ranges[:0] = [(addresses, start, middle), (addresses, middle + 1, end)]
                    continue
                raise InputError(f"eth_getLogs {start}-{end} failed: {result.message}")
            logs.extend(result)
        return logs

    def run(
        self,
        to_block: int | None = None,
        on_progress: Callable[[str, int, int], None] | None = None,
    ) -> IndexResult:
        """Index from the last indexed block to ``to_block`` (default: the latest)."""
        progress = on_progress or (lambda _s, _d, _t: None)
        head = int(self.suite.w3.eth.block_number) if to_block is None else to_block
        start = self.last_block + 1
        result = IndexResult(from_block=start, to_block=head, events=0, chunks=0)
        block = start
        while block <= head:
            end = min(head, block + self.chunk - 1)
            core_logs = self._get_logs(list(self.core), block, end)
            rows = self._decode(core_logs, self.core)
            new_shares = {
                args["share_token"].lower(): args["node_id"]
                for _, _, name, args in rows
                if name == "NodeRegistered"
            }
            known = {**self.shares, **new_shares}
            share_rows = []
            if known:
                share_logs = self._get_logs(sorted(known), block, end)
                share_rows = self._decode(share_logs, dict.fromkeys(known, self.share_specs))
            self._store(rows + share_rows, known, end)
            self.shares = known
            result.events += len(rows) + len(share_rows)
            result.chunks += 1
            progress("indexed blocks", end - start + 1, head - start + 1)
            block = end + 1
        return result

    def _decode(
        self, logs: list[dict[str, Any]], specs: dict[str, dict[bytes, EventSpec]]
    ) -> list[tuple[int, int, str, dict[str, Any]]]:
        out = []
        for log in logs:
            if log.get("removed"):
                continue
            by_topic = specs.get(log["address"].lower())
            if not by_topic or not log["topics"]:
                continue
            spec = by_topic.get(bytes.fromhex(log["topics"][0][2:]))
            if spec is None:
                continue
            args = decode_log(spec, log)
            args["_address"] = log["address"]
            out.append((int(log["blockNumber"], 16), int(log["logIndex"], 16), spec.name, args))
        out.sort(key=lambda r: (r[0], r[1]))
        return out

    def _store(
        self, rows: list[tuple[int, int, str, dict[str, Any]]], shares: dict[str, int], end: int
    ) -> None:
        """Write one chunk's events and the new last block in one transaction.

        Inserts are grouped per table (executemany); updates of earlier rows keep the
        events' order, so a report settled and finalized in one chunk ends finalized.
        """
        inserts: dict[str, list[tuple[Any, ...]]] = {}
        updates: list[tuple[str, tuple[Any, ...]]] = []
        attestors: dict[int, str | None] = {}

        def insert(table: str, row: tuple[Any, ...]) -> None:
            inserts.setdefault(table, []).append(row)

        usage: dict[tuple[int, int], list[Any]] = {}

        for block, index, name, a in rows:
            if name == "UsageSettled":
                # the signer was the node's attestor at this point of the event order
                signer = attestors.get(a["node_id"])
                if signer is None:
                    row = self.db.execute(
                        "SELECT attestor FROM nodes WHERE node_id = ?", (a["node_id"],)
                    ).fetchone()
                    signer = attestors[a["node_id"]] = row[0] if row else None
                # a disputed epoch can be settled again (the next version): the newest wins
                usage[(a["node_id"], a["epoch"])] = [
                    a["node_id"], a["epoch"], a["inferences"], str(a["revenue"]), a["latency_ms"],
                    a["uptime_bps"], a["payer"], signer, a["operator_cut_bps"], "pending", block,
                ]  # fmt: skip
            elif name in ("RevenueFinalized", "RevenueDisputed"):
                state = "finalized" if name == "RevenueFinalized" else "disputed"
                key = (a["node_id"], a["epoch"])
                if key in usage:  # settled in this chunk: keep the event order
                    usage[key][9] = state
                else:
                    updates.append(("UPDATE usage SET state = ? WHERE node_id = ? AND epoch = ?",
                                    (state, a["node_id"], a["epoch"])))  # fmt: skip
            elif name == "Transfer" and a["_address"].lower() in shares:
                insert("transfers", (block, index, shares[a["_address"].lower()], a["sender"],
                                     a["receiver"], str(a["value"])))  # fmt: skip
            elif name == "RevenueClaimed":
                insert("claims", (block, index, shares[a["_address"].lower()], a["holder"],
                                  a["receiver"], str(a["amount"])))  # fmt: skip
            elif name == "RevenueSplit":
                insert("splits", (block, index, a["node_id"], a["epochs"], str(a["gross"]),
                                  str(a["protocol_fee"]), str(a["operator_cut"]), str(a["holders"])))  # fmt: skip
            elif name == "Withdrawn":
                insert("withdrawals", (block, index, a["account"], a["receiver"], str(a["amount"])))
            elif name == "NodeRegistered":
                attestors[a["node_id"]] = a["attestor"]
                insert("nodes", (a["node_id"], a["operator"], a["attestor"], a["share_token"],
                                 str(a["shares"]), str(a["price_per_1k"]), a["operator_cut_bps"],
                                 a["region"], a["metadata_uri"], a["external_id"], 1, block))  # fmt: skip
            else:
                column = {"AttestorRotated": ("attestor", "new_attestor"),
                          "NodeStatusChanged": ("status", "status"),
                          "MetadataUpdated": ("metadata_uri", "metadata_uri"),
                          "PriceSet": ("price_per_1k", "price_per_1k")}.get(name)  # fmt: skip
                if name == "AttestorRotated":
                    attestors[a["node_id"]] = a["new_attestor"]
                if column is not None:
                    value = a[column[1]]
                    if column[0] == "price_per_1k":
                        value = str(value)
                    updates.append(
                        (
                            f"UPDATE nodes SET {column[0]} = ? WHERE node_id = ?",
                            (value, a["node_id"]),
                        )
                    )
                args = {k: (str(v) if isinstance(v, int) else v) for k, v in a.items()}
                insert("other_events", (block, index, a["_address"], name, json.dumps(args)))
        if usage:
            inserts["usage"] = [tuple(row) for row in usage.values()]
        columns = {"usage": 11, "transfers": 6, "claims": 6, "splits": 8, "withdrawals": 5,
                   "nodes": 12, "other_events": 5}  # fmt: skip
        end_hash = self.suite.w3.eth.get_block(end)["hash"].to_0x_hex()
        with self.db as db:
            # nodes first: later updates in the same chunk refer to them
            for table in (
                "nodes",
                "usage",
                "transfers",
                "claims",
                "splits",
                "withdrawals",
                "other_events",
            ):
                if table in inserts:
                    marks = ",".join("?" * columns[table])
                    db.executemany(
                        f"INSERT OR REPLACE INTO {table} VALUES ({marks})", inserts[table]
                    )
            for sql, params in updates:
                db.execute(sql, params)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('last_block', ?)", (str(end),))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('last_block_hash', ?)", (end_hash,))


def sync_index(suite: Suite, db_url: str | None = None, chunk: int = DEFAULT_CHUNK,
               on_progress: Callable[[str, int, int], None] | None = None) -> tuple[str, IndexResult]:  # fmt: skip
    """Bring the index database up to the chain's head; returns (db url, result)."""
    from edgeshare.poster import get_rpc

    url = db_url or get_default_db_url(suite.manifest.chain_id)
    with open_db(url) as db:
        return url, Indexer(suite, db, get_rpc(suite.w3), chunk).run(on_progress=on_progress)
