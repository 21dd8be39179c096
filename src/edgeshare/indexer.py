"""Indexing the suite's events into SQLite or PostgreSQL, resumably, surviving reorgs.

Logs are read with chunked ``eth_getLogs``: the registry's, router's and payment
channels' first, then the share tokens known so far (a share token appears in
``NodeRegistered``), so no other contract's ``Transfer`` is ever read. A range a node
refuses for its size is halved and retried; any other RPC failure is
``ChainUnavailable``. Each chunk is decoded and written in one transaction together with
the new "last indexed block", so a crash loses nothing and a re-run resumes where it
stopped.

The index stops ``confirmations`` blocks behind the head. It keeps the hash of every
block that holds indexed events and of every chunk's last block. Each run first compares
the last one with the chain's; after a reorganisation it walks back to the newest block
both still agree on (the fork point), deletes every row after it and indexes again.
Every table is a log of events keyed by (block, log index) except two projections,
``nodes`` and ``usage`` (the current state of each node and of each settled epoch), whose
rows a rollback touched are rebuilt from the kept events.

Revenue of a (node, epoch) comes two ways. A usage report's payer pays only its due: the
report's revenue as signed (inferences x price, ``report_revenue``) less the channel
revenue already credited to the epoch (``channel_credit``), never below 0. That due is
``usage.revenue``: what the router holds, disputes and finalizes for the epoch (its
``settlement().revenue``, UsageSettled's ``due``). Customers' vouchers redeemed through
the payment channels are credited to the epoch of their redemption and split at once
(``channel_revenue``: one row per ``ChannelRevenue``, with the split of the
``RevenueSplit`` that follows it), never disputed. The node's revenue of an epoch is its
``usage.revenue`` (unless disputed) plus its channel revenue.

Amounts are exact integers: ``NUMERIC(78,0)`` on PostgreSQL, decimal text on SQLite
(whose NUMERIC affinity would turn the large ones into floats).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Dialect,
    Engine,
    Index,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    TypeDecorator,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.schema import SchemaItem
from web3 import Web3

from edgeshare.chain import is_local_chain_id
from edgeshare.contracts import Event as AbiEvent
from edgeshare.contracts import get_codec
from edgeshare.errors import ChainUnavailable, EdgeShareError, InputError
from edgeshare.rpc import RpcClient, RpcError, get_rpc, is_range_too_large
from edgeshare.suite import Suite

DEFAULT_CHUNK = 2_000
# blocks behind the head an index stops at, by default, on a public chain (local: 0)
DEFAULT_CONFIRMATIONS = 2
# stored block hashes compared with the chain's per JSON-RPC batch, walking back a reorg
HASH_BATCH = 100
SCHEMA_VERSION = 3

log = logging.getLogger("edgeshare.indexer")


class Amount(TypeDecorator[int]):
    """An exact unsigned 256-bit integer: ``NUMERIC(78,0)``, or decimal text on SQLite."""

    impl = Numeric(78, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        """Text on SQLite (its NUMERIC affinity loses digits past 2**63), else NUMERIC."""
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(Numeric(78, 0, asdecimal=True))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        """An ``int`` as the column stores it (decimal text, or an exact Decimal)."""
        if value is None:
            return None
        return str(value) if dialect.name == "sqlite" else Decimal(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        """Back to an ``int``, exactly."""
        return None if value is None else int(value)


def _log_table(name: str, *columns: SchemaItem) -> Table:
    """A table of events keyed by their place in the chain: (block, log index)."""
    return Table(
        name,
        METADATA,
        Column("block", BigInteger, primary_key=True, autoincrement=False),
        Column("log_index", Integer, primary_key=True, autoincrement=False),
        *columns,
    )


METADATA = MetaData()
meta = Table(
    "meta", METADATA, Column("key", Text, primary_key=True), Column("value", Text, nullable=False)
)
blocks = Table(
    "blocks",
    METADATA,
    Column("number", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", Text, nullable=False),
)
# projection: each node as its events so far leave it
nodes = Table(
    "nodes",
    METADATA,
    Column("node_id", BigInteger, primary_key=True, autoincrement=False),
    Column("operator", Text),
    Column("attestor", Text),
    Column("share_token", Text, unique=True),
    Column("shares", Amount),
    Column("price_per_1k", Amount),
    Column("operator_cut_bps", Integer),
    Column("region", Text),
    Column("metadata_uri", Text),
    Column("external_id", Text),
    Column("status", Integer),
    Column("registered_block", BigInteger),
)
# projection: the report in force for each settled epoch, and its state
usage = Table(
    "usage",
    METADATA,
    Column("node_id", BigInteger, primary_key=True, autoincrement=False),
    Column("epoch", BigInteger, primary_key=True, autoincrement=False),
    Column("inferences", Amount),
    # what the payer paid and the router holds (UsageSettled's due): the report's revenue
    # as signed (inferences x price // 1000) less the channel revenue credited to the
    # epoch when it was settled, not below 0
    Column("revenue", Amount),
    Column("report_revenue", Amount),
    Column("channel_credit", Amount),
    Column("latency_ms", BigInteger),
    Column("uptime_bps", Integer),
    Column("payer", Text),
    Column("attestor", Text),
    Column("operator_cut_bps", Integer),
    Column("state", Text),
    Column("settled_block", BigInteger),
    Index("usage_epoch", "epoch"),
)
# every UsageSettled (an epoch disputed and settled again has two), with its signer
usage_events = _log_table(
    "usage_events",
    Column("node_id", BigInteger),
    Column("epoch", BigInteger),
    Column("version", BigInteger),
    Column("inferences", Amount),
    Column("revenue", Amount),
    Column("report_revenue", Amount),
    Column("channel_credit", Amount),
    Column("latency_ms", BigInteger),
    Column("uptime_bps", Integer),
    Column("payer", Text),
    Column("attestor", Text),
    Column("operator_cut_bps", Integer),
    Index("usage_events_epoch", "node_id", "epoch"),
)
# every RevenueFinalized ("finalized") and RevenueDisputed ("disputed")
usage_states = _log_table(
    "usage_states",
    Column("node_id", BigInteger),
    Column("epoch", BigInteger),
    Column("state", Text),
    Index("usage_states_epoch", "node_id", "epoch"),
)
splits = _log_table(
    "splits",
    Column("node_id", BigInteger),
    Column("epochs", BigInteger),
    Column("gross", Amount),
    Column("protocol_fee", Amount),
    Column("operator_cut", Amount),
    Column("holders", Amount),
)
claims = _log_table(
    "claims",
    Column("node_id", BigInteger),
    Column("holder", Text),
    Column("receiver", Text),
    Column("amount", Amount),
    Index("claims_holder", "holder"),
)
transfers = _log_table(
    "transfers",
    Column("node_id", BigInteger),
    Column("sender", Text),
    Column("receiver", Text),
    Column("value", Amount),
)
withdrawals = _log_table(
    "withdrawals", Column("account", Text), Column("receiver", Text), Column("amount", Amount)
)
# every ChannelRevenue: what customers' vouchers paid a node, credited to the epoch of the
# redemption, with the split the router made of it at once (the RevenueSplit after it)
channel_revenue = _log_table(
    "channel_revenue",
    Column("tx_hash", Text),
    Column("node_id", BigInteger),
    Column("epoch", BigInteger),
    Column("amount", Amount),
    Column("protocol_fee", Amount),
    Column("operator_cut", Amount),
    Column("holders", Amount),
    Index("channel_revenue_epoch", "node_id", "epoch"),
)
# every VoucherRedeemed: what one customer's voucher added to what its channel had paid
channel_redemptions = _log_table(
    "channel_redemptions",
    Column("tx_hash", Text),
    Column("node_id", BigInteger),
    Column("customer", Text),
    Column("epoch", BigInteger),
    Column("generation", BigInteger),
    Column("cumulative", Amount),
    Column("amount", Amount),
    Column("unredeemed", Amount),
    Index("channel_redemptions_epoch", "node_id", "epoch"),
    Index("channel_redemptions_customer", "customer"),
)
# every Deposited ("deposit") and ChannelWithdrawn ("withdrawal") of a customer's channel;
# unredeemed is what the channel holds after it
channel_funds = _log_table(
    "channel_funds",
    Column("tx_hash", Text),
    Column("customer", Text),
    Column("node_id", BigInteger),
    Column("kind", Text),
    Column("generation", BigInteger),
    Column("amount", Amount),
    Column("unredeemed", Amount),
    Index("channel_funds_customer", "customer", "node_id"),
)
# everything else, arguments as JSON (integers as decimal text); NodeRegistered and the
# node updates too, so that a rollback can rebuild a node's row
other_events = _log_table(
    "other_events",
    Column("address", Text),
    Column("name", Text),
    Column("node_id", BigInteger),
    Column("args", Text),
    Index("other_events_node", "node_id"),
)
LOG_TABLES = (usage_events, usage_states, splits, claims, transfers, withdrawals,
              channel_revenue, channel_redemptions, channel_funds, other_events)  # fmt: skip

# node events that change a column of its row: event -> (column, event field)
NODE_UPDATES = {
    "AttestorRotated": ("attestor", "new_attestor"),
    "NodeStatusChanged": ("status", "status"),
    "MetadataUpdated": ("metadata_uri", "metadata_uri"),
    "PriceSet": ("price_per_1k", "price_per_1k"),
    "OperatorTransferred": ("operator", "new_operator"),
}
INTEGER_COLUMNS = ("status", "price_per_1k")


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


def parse_db_url(url: str) -> URL:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db``, a plain path, or
    ``postgresql://user@host/db`` (also ``postgresql+psycopg://``)."""
    if "://" not in url:
        return URL.create("sqlite", database=url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InputError(f"cannot parse the database URL {url!r}") from None
    if parsed.drivername in ("postgresql", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername == "sqlite" and parsed.database:
        return parsed
    raise InputError(
        f"unsupported database URL {parsed.render_as_string()!r}: use sqlite:///PATH or "
        "postgresql://USER@HOST/DB"
    )


def get_display_url(url: str) -> str:
    """The database URL as it may be printed: any password masked."""
    return parse_db_url(url).render_as_string(hide_password=True) if "://" in url else url


def get_default_db_url(chain_id: int) -> str:
    """``sqlite:///index/<chain_id>.db`` under the current directory."""
    return f"sqlite:///index/{chain_id}.db"


def get_default_confirmations(chain_id: int) -> int:
    """Blocks an index stays behind the head unless told: 0 on local chains, else 2."""
    return 0 if is_local_chain_id(chain_id) else DEFAULT_CONFIRMATIONS


def build_engine(url: str) -> Engine:
    """An engine for the index database (SQLite: the file's folder is created, WAL on)."""
    parsed = parse_db_url(url)
    if parsed.drivername != "sqlite":
        return create_engine(parsed)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed)

    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


@contextmanager
def open_db(url: str) -> Iterator[Connection]:
    """Open (and create, or migrate to the current schema) the index database."""
    engine = build_engine(url)
    try:
        with engine.connect() as db:
            migrate(db)
            yield db
    except SQLAlchemyError as exc:
        shown = get_display_url(url)
        raise EdgeShareError(f"the index database {shown} failed: {exc}") from None
    finally:
        engine.dispose()


@contextmanager
def _transaction(db: Connection) -> Iterator[Connection]:
    """One transaction on ``db`` (ending the one an earlier read may have begun)."""
    if db.in_transaction():
        db.commit()
    with db.begin():
        yield db


# ------------------------------------------------------------------ schema versions

# The layout before versions were recorded: these tables, no ``schema_version`` in meta.
V1_TABLES = ("meta", "nodes", "usage", "splits", "claims", "transfers", "withdrawals",
             "other_events")  # fmt: skip


@dataclass(frozen=True)
class Migration:
    """One step up the schema versions."""

    to_version: int
    description: str
    apply: Callable[[Connection], None]


def _drop_v1(db: Connection) -> None:
    for name in V1_TABLES:
        db.execute(sql_text(f"DROP TABLE IF EXISTS {name}"))


# Version 2's tables of indexed events (all but meta and blocks): it read no payment
# channels, and its usage rows hold the report's revenue, not what the payer paid.
V2_EVENT_TABLES = ("nodes", "usage", "usage_events", "usage_states", "splits", "claims",
                   "transfers", "withdrawals", "other_events")  # fmt: skip


def _reindex_v2(db: Connection) -> None:
    """Drop version 2's event tables (created anew) and forget how far it indexed, so the
    next run reads the chain again from the start block; what ties the database to its
    chain (chain id, registry, start block and its hash) is kept."""
    for name in V2_EVENT_TABLES:
        db.execute(sql_text(f"DROP TABLE IF EXISTS {name}"))
    found = inspect(db)
    if not (found.has_table("meta") and found.has_table("blocks")):
        return  # migrated from version 1 just now: nothing is left to forget
    start = db.execute(select(meta.c.value).where(meta.c.key == "deploy_block")).scalar()
    if start is not None:
        db.execute(delete(blocks).where(blocks.c.number != int(start)))
    db.execute(delete(meta).where(meta.c.key.in_(["last_block", "last_block_hash"])))


MIGRATIONS = [
    Migration(
        2,
        "drops the version 1 tables (amounts as text, no block hashes); the index is "
        "rebuilt from the chain",
        _drop_v1,
    ),
    Migration(
        3,
        "adds payment channels (channel revenue, redemptions, deposits and withdrawals); a "
        "usage row's revenue is what its payer paid, beside the report's own and the "
        "channel credit; the index is rebuilt from the chain",
        _reindex_v2,
    ),
]


def get_schema_version(db: Connection) -> int:
    """The database's schema version: 0 for an empty one, 1 for the unversioned layout."""
    if not inspect(db).has_table("meta"):
        return 0
    found = db.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    return 1 if found is None else int(found)


def migrate(db: Connection) -> None:
    """Bring the schema to ``SCHEMA_VERSION``, each step logged; create what is missing."""
    version = get_schema_version(db)
    if version > SCHEMA_VERSION:
        raise InputError(
            f"the index database has schema version {version}; this edgeshare knows up to "
            f"{SCHEMA_VERSION}: upgrade edgeshare or use another --db"
        )
    with _transaction(db):
        if version > 0:
            for step in MIGRATIONS:
                if version < step.to_version:
                    log.warning(
                        "migrating the index database from schema version %d to %d: %s",
                        version, step.to_version, step.description,
                    )  # fmt: skip
                    step.apply(db)
                    version = step.to_version
        METADATA.create_all(db)
        _put_meta(db, {"schema_version": str(SCHEMA_VERSION)})


def _upsert(db: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows``, replacing those whose primary key is already there."""
    if not rows:
        return
    keys = [c.name for c in table.primary_key.columns]
    if db.dialect.name == "sqlite":
        _write_sqlite(db, table, rows, keys)
        return
    pg = postgresql.insert(table)
    changes = {c.name: pg.excluded[c.name] for c in table.columns if c.name not in keys}
    db.execute(pg.on_conflict_do_update(index_elements=keys, set_=changes), rows)


def _insert(db: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (one executemany)."""
    if not rows:
        return
    if db.dialect.name == "sqlite":
        _write_sqlite(db, table, rows, None)
    else:
        db.execute(table.insert(), rows)


def _write_sqlite(
    db: Connection, table: Table, rows: list[dict[str, Any]], keys: list[str] | None
) -> None:
    """SQLite's inserts (upserts on ``keys``) through its driver, with the rows as tuples:
    SQLAlchemy's per-row parameter processing would cost as much as the writes. Amounts
    become decimal text, as ``Amount`` stores them."""
    names = list(rows[0])
    amounts = {c.name for c in table.columns if isinstance(c.type, Amount)}
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    if keys is not None:
        changes = ", ".join(f"{n} = excluded.{n}" for n in names if n not in keys)
        sql += f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {changes}"
    convert = [n in amounts for n in names]
    params = [
        tuple(
            str(v) if amount and v is not None else v
            for v, amount in zip((row[n] for n in names), convert, strict=True)
        )
        for row in rows
    ]
    db.exec_driver_sql(sql, params)


def _put_meta(db: Connection, values: dict[str, str]) -> None:
    _upsert(db, meta, [{"key": k, "value": v} for k, v in values.items()])


# ------------------------------------------------------------------ indexing


@dataclass
class IndexResult:
    """What one run of the indexer did."""

    from_block: int
    to_block: int
    events: int
    chunks: int
    undone: int = 0
    """Blocks rolled back at the start of the run after a chain reorganisation."""


class Event(NamedTuple):
    """One decoded log."""

    block: int
    log_index: int
    block_hash: str
    address: str
    name: str
    args: dict[str, Any]
    tx_hash: str = ""


@dataclass
class _Batch:
    """One chunk's writes, gathered by the event handlers, written in one transaction."""

    shares: dict[str, int]
    """Share token (lowercase) -> node id, the chunk's new tokens included."""
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Rows for the event-log tables, by table name."""
    new_nodes: dict[int, dict[str, Any]] = field(default_factory=dict)
    node_changes: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Changed columns of nodes registered before this chunk."""
    usage: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    """Usage rows of epochs settled in this chunk (the newest report wins)."""
    states: dict[tuple[int, int], str] = field(default_factory=dict)
    """New states of epochs settled before this chunk."""
    attestors: dict[int, str | None] = field(default_factory=dict)
    blocks: dict[int, str] = field(default_factory=dict)
    unsplit: dict[str, Any] | None = None
    """The last channel revenue row, until the RevenueSplit of its transaction fills in
    its split (the router logs that split right after it)."""

    def add(self, table: Table, row: dict[str, Any]) -> None:
        """Queue an event-log row."""
        self.rows.setdefault(table.name, []).append(row)


def _json_args(args: dict[str, Any]) -> str:
    """Event arguments as JSON, integers as decimal text (they may exceed 2**53)."""
    return json.dumps(
        {
            k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in args.items()
        }
    )


def build_node_row(block: int, args: dict[str, Any]) -> dict[str, Any]:
    """A ``nodes`` row from ``NodeRegistered``'s arguments (decoded, or from the JSON)."""
    return {
        "node_id": int(args["node_id"]), "operator": args["operator"],
        "attestor": args["attestor"], "share_token": args["share_token"],
        "shares": int(args["shares"]), "price_per_1k": int(args["price_per_1k"]),
        "operator_cut_bps": int(args["operator_cut_bps"]), "region": args["region"],
        "metadata_uri": args["metadata_uri"], "external_id": args["external_id"],
        "status": 1, "registered_block": block,
    }  # fmt: skip


def _node_change(name: str, args: dict[str, Any]) -> tuple[str, Any]:
    """The (column, value) a node-update event sets."""
    column, source = NODE_UPDATES[name]
    value = args[source]
    return column, int(value) if column in INTEGER_COLUMNS else value


class Indexer:
    """Reads a suite's logs into an index database.

    Args:
        suite: The deployed suite.
        db: An open index database (``open_db``).
        rpc: The JSON-RPC client (for getLogs and block hashes).
        chunk: Blocks per getLogs request at most; halved when a node refuses a range.
        start_block: Where a new database starts; searched in the code history when not
            given (a node that keeps no history, e.g. anvil --prune-history, needs it).
        confirmations: Blocks behind the head the index stops at.
    """

    def __init__(
        self,
        suite: Suite,
        db: Connection,
        rpc: RpcClient,
        chunk: int = DEFAULT_CHUNK,
        start_block: int | None = None,
        confirmations: int = 0,
    ):
        if confirmations < 0:
            raise InputError("--confirmations must not be negative")
        self.suite = suite
        self.start_block = start_block
        self.db = db
        self.rpc = rpc
        self.chunk = chunk
        self.confirmations = confirmations
        self.core = {
            suite.registry.address.lower(): get_codec("NodeRegistry").by_topic,
            suite.router.address.lower(): get_codec("RevenueRouter").by_topic,
            suite.channels.address.lower(): get_codec("PaymentChannels").by_topic,
        }
        self.share_specs = get_codec("NodeShare").by_topic
        self._handlers: dict[str, Callable[[_Batch, Event], None]] = {
            "NodeRegistered": self._on_node_registered,
            "UsageSettled": self._on_usage_settled,
            "RevenueFinalized": self._on_usage_state,
            "RevenueDisputed": self._on_usage_state,
            "RevenueSplit": self._on_split,
            "RevenueClaimed": self._on_claim,
            "Transfer": self._on_transfer,
            "Withdrawn": self._on_withdrawal,
            "ChannelRevenue": self._on_channel_revenue,
            "VoucherRedeemed": self._on_voucher_redeemed,
            "Deposited": self._on_channel_funds,
            "ChannelWithdrawn": self._on_channel_funds,
            **dict.fromkeys(NODE_UPDATES, self._on_node_update),
        }
        self._check_meta()
        self.shares = self._load_shares()

    # ---------------------------------------------------------------- state

    def _load_shares(self) -> dict[str, int]:
        rows = self.db.execute(select(nodes.c.share_token, nodes.c.node_id))
        return {token.lower(): node_id for token, node_id in rows}

    def _get_meta(self, key: str) -> str | None:
        return self.db.execute(select(meta.c.value).where(meta.c.key == key)).scalar()

    def _check_meta(self) -> None:
        """Refuse a database made for another chain or suite; record where indexing starts."""
        manifest = self.suite.manifest
        want = {"chain_id": str(manifest.chain_id), "registry": self.suite.registry.address}
        for key, value in want.items():
            have = self._get_meta(key)
            if have is not None and have != value:
                raise InputError(
                    f"the index database is for {key} {have}, not {value}; use another --db"
                )
        if self._get_meta("deploy_block") is None:
            first = self.start_block
            if first is None:
                first = find_deploy_block(
                    self.suite.w3, self.suite.registry.address, manifest.block
                )
            found = self._fetch_hashes([first])[first]
            if found is None:
                raise InputError(f"the chain has no block {first} (the start block)")
            with _transaction(self.db) as db:
                _put_meta(db, {**want, "deploy_block": str(first), "deploy_block_hash": found})
                _upsert(db, blocks, [{"number": first, "hash": found}])

    @property
    def deploy_block(self) -> int:
        """The first block the index covers."""
        return int(self._get_meta("deploy_block") or 0)

    @property
    def last_block(self) -> int:
        """The last block fully indexed (before the first run: the block before deployment)."""
        found = self._get_meta("last_block")
        return int(found) if found is not None else self.deploy_block - 1

    # ---------------------------------------------------------------- chain reads

    def _fetch_head(self) -> int:
        result = self.rpc.batch([("eth_blockNumber", [])])[0]
        if isinstance(result, RpcError):
            raise ChainUnavailable(f"eth_blockNumber failed: {result.message}")
        return int(result, 16)

    def _fetch_hashes(self, numbers: list[int]) -> dict[int, str | None]:
        """Block number -> the chain's hash of it (None past the head), in one batch."""
        replies = self.rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
        out: dict[int, str | None] = {}
        for number, reply in zip(numbers, replies, strict=True):
            if isinstance(reply, RpcError):
                raise ChainUnavailable(f"eth_getBlockByNumber {number} failed: {reply.message}")
            out[number] = None if reply is None else str(reply["hash"]).lower()
        return out

    def _get_logs(self, addresses: list[str], start: int, end: int) -> list[dict[str, Any]]:
        """The logs of ``addresses`` in [start, end], halving a range the node refuses."""
        logs: list[dict[str, Any]] = []
        ranges = [(start, end)]
        while ranges:
            first, last = ranges.pop(0)
            params = {"address": addresses, "fromBlock": hex(first), "toBlock": hex(last)}
            result = self.rpc.batch([("eth_getLogs", [params])])[0]
            if isinstance(result, RpcError):
                if last > first and is_range_too_large(result):
                    middle = (first + last) // 2
                    self.chunk = max(1, (last - first + 1) // 2)
                    ranges[:0] = [(first, middle), (middle + 1, last)]
                    continue
                raise ChainUnavailable(f"eth_getLogs {first}-{last} failed: {result.message}")
            logs.extend(result)
        return logs

    # ---------------------------------------------------------------- reorgs

    def _check_chain(self) -> int:
        """Compare the stored hashes with the chain's; after a reorg, roll back to the fork
        point. Returns the number of blocks undone."""
        deploy = self.deploy_block
        if self._fetch_hashes([deploy])[deploy] != self._get_meta("deploy_block_hash"):
            raise InputError(
                f"the index database does not match this chain at block {deploy}, where the "
                "suite was deployed (the chain was reset since); delete it or use another --db"
            )
        last = self.last_block
        if last < deploy:
            return 0
        fork = self._find_fork_point(last)
        if fork < last:
            self._roll_back(fork)
            log.warning(
                "chain reorganisation: undid %d blocks of the index (%d-%d), re-indexing from %d",
                last - fork, fork + 1, last, fork + 1,
            )  # fmt: skip
        return last - fork

    def _find_fork_point(self, last: int) -> int:
        """The newest stored block whose hash is still the chain's (``last`` if no reorg)."""
        cursor, page = last + 1, 1  # one call when nothing changed
        while True:
            stored = self.db.execute(
                select(blocks.c.number, blocks.c.hash)
                .where(blocks.c.number < cursor)
                .order_by(blocks.c.number.desc())
                .limit(page)
            ).all()
            if not stored:
                raise InputError(
                    f"the chain was reorganised deeper than the index's stored block hashes "
                    f"reach (below block {cursor}); delete the index or use another --db"
                )
            chain = self._fetch_hashes([number for number, _ in stored])
            for number, stored_hash in stored:
                if chain[number] == stored_hash:
                    return int(number)
            cursor, page = stored[-1][0], HASH_BATCH

    def _roll_back(self, fork: int) -> None:
        """Delete every row after block ``fork`` and rebuild the projection rows they touched."""
        with _transaction(self.db) as db:
            epochs = {
                (node_id, epoch)
                for table in (usage_events, usage_states)
                for node_id, epoch in db.execute(
                    select(table.c.node_id, table.c.epoch).where(table.c.block > fork)
                )
            }
            changed = set(
                db.execute(
                    select(other_events.c.node_id).where(
                        other_events.c.block > fork, other_events.c.name.in_(NODE_UPDATES)
                    )
                ).scalars()
            )
            for table in LOG_TABLES:
                db.execute(delete(table).where(table.c.block > fork))
            db.execute(delete(blocks).where(blocks.c.number > fork))
            db.execute(delete(nodes).where(nodes.c.registered_block > fork))
            for node_id in sorted(changed):
                self._rebuild_node(db, node_id)
            for node_id, epoch in sorted(epochs):
                self._rebuild_usage(db, node_id, epoch)
            _put_meta(db, {"last_block": str(fork)})
        self.shares = self._load_shares()

    @staticmethod
    def _rebuild_node(db: Connection, node_id: int) -> None:
        """A node's row again from its kept ``NodeRegistered`` and updates (if it still exists)."""
        found = db.execute(
            select(other_events.c.block, other_events.c.name, other_events.c.args)
            .where(other_events.c.node_id == node_id)
            .where(other_events.c.name.in_(["NodeRegistered", *NODE_UPDATES]))
            .order_by(other_events.c.block, other_events.c.log_index)
        ).all()
        if not found or found[0].name != "NodeRegistered":
            return
        row = build_node_row(found[0].block, json.loads(found[0].args))
        for _, name, args in found[1:]:
            column, value = _node_change(name, json.loads(args))
            row[column] = value
        _upsert(db, nodes, [row])

    @staticmethod
    def _rebuild_usage(db: Connection, node_id: int, epoch: int) -> None:
        """An epoch's usage row again: its newest kept report, in its newest kept state."""
        key = and_(usage.c.node_id == node_id, usage.c.epoch == epoch)
        db.execute(delete(usage).where(key))
        latest = (
            db.execute(
                select(usage_events)
                .where(usage_events.c.node_id == node_id, usage_events.c.epoch == epoch)
                .order_by(usage_events.c.block.desc(), usage_events.c.log_index.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
        if latest is None:
            return
        state = db.execute(
            select(usage_states.c.state)
            .where(usage_states.c.node_id == node_id, usage_states.c.epoch == epoch)
            .where(
                or_(
                    usage_states.c.block > latest["block"],
                    and_(
                        usage_states.c.block == latest["block"],
                        usage_states.c.log_index > latest["log_index"],
                    ),
                )
            )
            .order_by(usage_states.c.block.desc(), usage_states.c.log_index.desc())
            .limit(1)
        ).scalar()
        row = {c.name: latest[c.name] for c in usage.columns if c.name in latest}
        db.execute(
            usage.insert(),
            {**row, "state": state or "pending", "settled_block": latest["block"]},
        )

    # ---------------------------------------------------------------- the run

    def run(
        self,
        to_block: int | None = None,
        on_progress: Callable[[str, int, int], None] | None = None,
    ) -> IndexResult:
        """Undo what a reorg replaced, then index from the last indexed block to ``to_block``
        (default: ``confirmations`` blocks behind the head)."""
        progress = on_progress or (lambda _s, _d, _t: None)
        undone = self._check_chain()
        head = self._fetch_head() - self.confirmations if to_block is None else to_block
        start = self.last_block + 1
        result = IndexResult(from_block=start, to_block=max(head, start - 1), events=0,
                             chunks=0, undone=undone)  # fmt: skip
        block = start
        while block <= head:
            end = min(head, block + self.chunk - 1)
            result.events += self._index_chunk(block, end)
            result.chunks += 1
            progress("indexed blocks", end - start + 1, head - start + 1)
            block = end + 1
        return result

    def _index_chunk(self, start: int, end: int) -> int:
        """Read, decode and store blocks [start, end]; returns the number of events."""
        events = self._decode(self._get_logs(list(self.core), start, end), self.core)
        known = dict(self.shares)
        known.update(
            {
                e.args["share_token"].lower(): e.args["node_id"]
                for e in events
                if e.name == "NodeRegistered"
            }
        )
        if known:
            share_logs = self._get_logs(sorted(known), start, end)
            events += self._decode(share_logs, dict.fromkeys(known, self.share_specs))
            events.sort(key=lambda e: (e.block, e.log_index))
        end_hash = self._fetch_hashes([end])[end]
        if end_hash is None:
            raise ChainUnavailable(
                f"block {end} left the chain while it was indexed (a reorg); run the index again"
            )
        self._store(events, known, end, end_hash)
        self.shares = known
        return len(events)

    def _decode(
        self, logs: list[dict[str, Any]], specs: dict[str, Mapping[bytes, AbiEvent]]
    ) -> list[Event]:
        out = []
        for item in logs:
            if item.get("removed"):
                continue
            by_topic = specs.get(item["address"].lower())
            if not by_topic or not item["topics"]:
                continue
            spec = by_topic.get(bytes.fromhex(item["topics"][0][2:]))
            if spec is None:
                continue
            out.append(Event(int(item["blockNumber"], 16), int(item["logIndex"], 16),
                             str(item["blockHash"]).lower(), item["address"], spec.name,
                             spec.decode(item["topics"], item["data"]),
                             str(item.get("transactionHash") or "").lower()))  # fmt: skip
        out.sort(key=lambda e: (e.block, e.log_index))
        return out

    def _store(self, events: list[Event], shares: dict[str, int], end: int, end_hash: str) -> None:
        """Write one chunk's events, their block hashes and the new last block in one
        transaction. Each event goes to its handler in the chain's order; inserts are
        grouped per table (executemany)."""
        batch = _Batch(shares=shares)
        for e in events:
            batch.blocks[e.block] = e.block_hash
            self._handlers.get(e.name, self._on_other)(batch, e)
        batch.blocks[end] = end_hash
        with _transaction(self.db) as db:
            _upsert(db, blocks, [{"number": n, "hash": h} for n, h in batch.blocks.items()])
            if batch.new_nodes:  # first: later statements of the chunk may refer to them
                _insert(db, nodes, list(batch.new_nodes.values()))
            for node_id, changes in batch.node_changes.items():
                db.execute(update(nodes).where(nodes.c.node_id == node_id).values(**changes))
            for table in LOG_TABLES:
                _insert(db, table, batch.rows.get(table.name, []))
            _upsert(db, usage, list(batch.usage.values()))
            if batch.states:
                db.execute(
                    update(usage)
                    .where(usage.c.node_id == bindparam("k_node"))
                    .where(usage.c.epoch == bindparam("k_epoch"))
                    .values(state=bindparam("k_state")),
                    [{"k_node": n, "k_epoch": ep, "k_state": s}
                     for (n, ep), s in batch.states.items()],
                )  # fmt: skip
            _put_meta(db, {"last_block": str(end), "last_block_hash": end_hash})

    # ---------------------------------------------------------------- event handlers

    def _attestor(self, batch: _Batch, node_id: int) -> str | None:
        """The node's attestor at this point of the event order."""
        if node_id not in batch.attestors:
            batch.attestors[node_id] = self.db.execute(
                select(nodes.c.attestor).where(nodes.c.node_id == node_id)
            ).scalar()
        return batch.attestors[node_id]

    def _on_node_registered(self, batch: _Batch, e: Event) -> None:
        batch.new_nodes[e.args["node_id"]] = build_node_row(e.block, e.args)
        batch.attestors[e.args["node_id"]] = e.args["attestor"]
        self._on_other(batch, e)

    def _on_node_update(self, batch: _Batch, e: Event) -> None:
        node_id = e.args["node_id"]
        column, value = _node_change(e.name, e.args)
        target = batch.new_nodes.get(node_id) or batch.node_changes.setdefault(node_id, {})
        target[column] = value
        if column == "attestor":
            batch.attestors[node_id] = value
        self._on_other(batch, e)

    def _channel_credit(self, batch: _Batch, node_id: int, epoch: int) -> int:
        """The channel revenue credited to (node, epoch): every credit of an epoch is logged
        during it, so before any report of it (which needs the epoch to have ended)."""
        stored = self.db.execute(
            select(channel_revenue.c.amount).where(
                channel_revenue.c.node_id == node_id, channel_revenue.c.epoch == epoch
            )
        ).scalars()
        queued = batch.rows.get(channel_revenue.name, [])
        return sum(int(a) for a in stored) + sum(
            int(r["amount"]) for r in queued if (r["node_id"], r["epoch"]) == (node_id, epoch)
        )

    def _on_usage_settled(self, batch: _Batch, e: Event) -> None:
        a = e.args
        credit = self._channel_credit(batch, a["node_id"], a["epoch"])
        report = {
            "node_id": a["node_id"], "epoch": a["epoch"], "inferences": a["inferences"],
            # what the payer paid (what the router holds: the report's revenue less the
            # epoch's channel credit, not below 0); the report's own revenue beside it
            "revenue": a["revenue"] - min(a["revenue"], credit), "report_revenue": a["revenue"],
            "channel_credit": credit, "latency_ms": a["latency_ms"],
            "uptime_bps": a["uptime_bps"], "payer": a["payer"],
            # the signer: the node's attestor at this point of the event order
            "attestor": self._attestor(batch, a["node_id"]),
            "operator_cut_bps": a["operator_cut_bps"],
        }  # fmt: skip
        batch.add(usage_events, {"block": e.block, "log_index": e.log_index,
                                 "version": a["version"], **report})  # fmt: skip
        # a disputed epoch can be settled again (the next version): the newest wins
        key = (a["node_id"], a["epoch"])
        batch.usage[key] = {**report, "state": "pending", "settled_block": e.block}
        batch.states.pop(key, None)

    def _on_usage_state(self, batch: _Batch, e: Event) -> None:
        state = "finalized" if e.name == "RevenueFinalized" else "disputed"
        key = (e.args["node_id"], e.args["epoch"])
        batch.add(usage_states, {"block": e.block, "log_index": e.log_index,
                                 "node_id": key[0], "epoch": key[1], "state": state})  # fmt: skip
        if key in batch.usage:  # settled in this chunk: keep the event order
            batch.usage[key]["state"] = state
        else:
            batch.states[key] = state

    def _on_split(self, batch: _Batch, e: Event) -> None:
        a = e.args
        batch.add(splits, {"block": e.block, "log_index": e.log_index, "node_id": a["node_id"],
                           "epochs": a["epochs"], "gross": a["gross"],
                           "protocol_fee": a["protocol_fee"], "operator_cut": a["operator_cut"],
                           "holders": a["holders"]})  # fmt: skip
        credit = batch.unsplit
        if credit is not None and credit["tx_hash"] == e.tx_hash:
            # the split of the channel revenue just logged: its amount, split at once
            credit.update(protocol_fee=a["protocol_fee"], operator_cut=a["operator_cut"],
                          holders=a["holders"])  # fmt: skip
            batch.unsplit = None

    def _on_channel_revenue(self, batch: _Batch, e: Event) -> None:
        a = e.args
        row = {"block": e.block, "log_index": e.log_index, "tx_hash": e.tx_hash,
               "node_id": a["node_id"], "epoch": a["epoch"], "amount": a["amount"],
               "protocol_fee": None, "operator_cut": None, "holders": None}  # fmt: skip
        batch.add(channel_revenue, row)
        batch.unsplit = row

    def _on_voucher_redeemed(self, batch: _Batch, e: Event) -> None:
        a = e.args
        batch.add(channel_redemptions, {"block": e.block, "log_index": e.log_index,
                                        "tx_hash": e.tx_hash, "node_id": a["node_id"],
                                        "customer": a["customer"], "epoch": a["epoch"],
                                        "generation": a["generation"],
                                        "cumulative": a["cumulative"], "amount": a["amount"],
                                        "unredeemed": a["unredeemed"]})  # fmt: skip

    def _on_channel_funds(self, batch: _Batch, e: Event) -> None:
        a = e.args
        deposit = e.name == "Deposited"
        batch.add(channel_funds, {"block": e.block, "log_index": e.log_index,
                                  "tx_hash": e.tx_hash, "customer": a["customer"],
                                  "node_id": a["node_id"],
                                  "kind": "deposit" if deposit else "withdrawal",
                                  "generation": a["generation"], "amount": a["amount"],
                                  "unredeemed": a["unredeemed"] if deposit else 0})  # fmt: skip

    def _on_claim(self, batch: _Batch, e: Event) -> None:
        batch.add(claims, {"block": e.block, "log_index": e.log_index,
                           "node_id": batch.shares[e.address.lower()], "holder": e.args["holder"],
                           "receiver": e.args["receiver"], "amount": e.args["amount"]})  # fmt: skip

    def _on_transfer(self, batch: _Batch, e: Event) -> None:
        batch.add(transfers, {"block": e.block, "log_index": e.log_index,
                              "node_id": batch.shares[e.address.lower()],
                              "sender": e.args["sender"], "receiver": e.args["receiver"],
                              "value": e.args["value"]})  # fmt: skip

    def _on_withdrawal(self, batch: _Batch, e: Event) -> None:
        batch.add(withdrawals, {"block": e.block, "log_index": e.log_index,
                                "account": e.args["account"], "receiver": e.args["receiver"],
                                "amount": e.args["amount"]})  # fmt: skip

    def _on_other(self, batch: _Batch, e: Event) -> None:
        node_id = e.args.get("node_id")
        batch.add(other_events, {"block": e.block, "log_index": e.log_index,
                                 "address": e.address, "name": e.name,
                                 "node_id": node_id if isinstance(node_id, int) else None,
                                 "args": _json_args(e.args)})  # fmt: skip


def sync_index(
    suite: Suite,
    db_url: str | None = None,
    chunk: int = DEFAULT_CHUNK,
    on_progress: Callable[[str, int, int], None] | None = None,
    confirmations: int | None = None,
) -> tuple[str, IndexResult]:
    """Bring the index database up to ``confirmations`` blocks behind the chain's head
    (default: 0 on a local chain, else 2); returns (db url, result)."""

    url = db_url or get_default_db_url(suite.manifest.chain_id)
    if confirmations is None:
        confirmations = get_default_confirmations(suite.manifest.chain_id)
    with open_db(url) as db:
        indexer = Indexer(suite, db, get_rpc(suite.w3), chunk, confirmations=confirmations)
        return url, indexer.run(on_progress=on_progress)
