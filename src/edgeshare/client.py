"""Calling a node: pick it from the board, pay it through a channel, call it.

``pick_node`` takes the cheapest active node of a region whose attested p50 latency meets
a bound and whose verified metadata names an http(s) endpoint that answers (and, if asked,
serves a model). A ``Payer`` holds the customer's channel to that node: ``ensure_funded``
opens or tops it up, ``next_voucher`` signs the next cumulative voucher for each request.
``VoucherAuth`` (for ``httpx``) and ``openai_http_client`` (for the official ``openai``
package, which is built on ``httpx2``) put the voucher on every request, settle a 402
from the gateway once, and time every call; ``fetch_seen_latency`` reports the p50 this
machine saw per node, next to the attested one.

Existing code that uses the ``openai`` package changes two lines, the client's
construction and the line before it that gets a payer::

    payer = connect_payer(rpc_url=URL, private_key_env="CUSTOMER_KEY", region="Nairobi",
                          max_latency_ms=80, deposit="5")
    client = openai.OpenAI(base_url=payer.base_url, api_key="edgeshare",
                           http_client=openai_http_client(payer))

(``api_key`` is required by the package and unused: the voucher header pays.)

Accounting. The gateway charges each request at the node's on-chain price of the epoch it
falls in: a channel owes ``ceil(owed_k / 1000)`` base units, ``owed_k`` being the sum of
``price_per_1k`` over its requests (``n`` requests at one price: ``ceil(n * price_per_1k /
1000)``), and each voucher must carry that cumulative amount. The payer counts the same
way and signs exactly that; a request answered with an error is taken back (the gateway
takes back what its upstream failed to serve).

Persistence. What the payer signed, per (suite, customer, node, generation), is kept in a
local SQLite file (``~/.edgeshare/client.db``, or ``EDGESHARE_CLIENT_DB``, or a path given)
and written in the same transaction that decides the next amount, before the voucher
leaves the process: a restart (or a second process on the same file) continues from it,
so it never signs less than before and never pays for one request twice. The same file
holds the latencies seen per node.

Resync. A gateway that answers 402 says in its body what the next voucher must reach
(``amount_due``). The payer then re-reads the channel from the chain and signs exactly
``amount_due`` (never less than it already signed) if that is within the channel's
deposit and at most ``resync_limit`` above what it had signed (default: the price of 1,000
requests): that covers another process paying on the same channel and a lost client
database, while a gateway that asks too much moves it by at most that bound per 402, never
past the deposit. It retries the request once. Asked for more, it refuses
(``PaymentRefused``) and sends nothing more.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Generator,
    Iterator,
    MutableMapping,
)
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from edgeshare.channels import (
    DEFAULT_VOUCHER_LIFETIME,
    MAX_AMOUNT,
    ChannelRecord,
    SignedVoucher,
    Voucher,
    fetch_channel,
    fetch_channels_domain,
    send_deposit,
    sign_voucher,
)
from edgeshare.config import read_env
from edgeshare.errors import EdgeShareError, InputError, NodeNotFound
from edgeshare.gateway import PAID_ROUTES, VOUCHER_HEADER, encode_voucher_header
from edgeshare.indexer import Amount
from edgeshare.market import BoardRow, build_board
from edgeshare.models import StrictModel, parse_address
from edgeshare.roles import Action, fetch_chain_time
from edgeshare.signer import Signer
from edgeshare.suite import Suite
from edgeshare.tx import Transactor

if TYPE_CHECKING:
    import httpx2

log = logging.getLogger("edgeshare.client")

CLIENT_DB_ENV = "EDGESHARE_CLIENT_DB"
"""Names the client's SQLite file (default ``~/.edgeshare/client.db``)."""
DEFAULT_RESYNC_REQUESTS = 1_000
"""A resync may sign at most this many requests' worth above what the payer had signed."""
DEFAULT_RECENT_CALLS = 100
"""Calls per node the seen p50 is taken over (the latest ones)."""
PROBE_TIMEOUT = 3.0
"""Seconds ``pick_node`` waits for an endpoint to answer."""
KEEP_LATENCIES = 1_000
"""Latencies kept per node (older ones are pruned as new ones come)."""
PRUNE_EVERY = 100
"""Calls between prunings of the latencies."""
REFRESH_INTERVAL = 30.0
"""Seconds after which a payer past the epoch it read reads the node's price again."""


# ------------------------------------------------------------------------ errors ----


class NoNodeMatches(NodeNotFound):
    """No node meets the bound, or none that does can be called (each reason named)."""


class PaymentRefused(EdgeShareError, RuntimeError):
    """The payer will not sign what is needed: the channel cannot cover it, or a gateway
    asked for more than the resync bound allows. Nothing more was sent."""


class NodeUnreachable(EdgeShareError, ConnectionError):
    """The node's endpoint did not answer."""


# ------------------------------------------------------------------ the 402 body ----


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class PaymentChannelRef(_Lenient):
    """The channel a 402 is about."""

    customer: str
    generation: int


class PaymentRequired(_Lenient):
    """What a gateway's 402 says (``{"error": {...}}``): what the next voucher must reach."""

    code: str
    kind: str = ""
    """What was wrong (``underpaid``, ``expired``, ``not_covered``, ...)."""
    reason: str = ""
    message: str = ""
    """The reason and what to do, in words."""
    node_id: int
    channel: PaymentChannelRef | None = None
    amount_due: int | None = None
    """The cumulative amount the next voucher must carry, base units (None: the gateway
    tells it only to the channel's signer)."""
    price_per_request: int | None = None
    price_per_1k: int | None = None
    redeemed: int | None = None
    deposited: int | None = None


def parse_payment_required(body: bytes) -> PaymentRequired | None:
    """The 402 body of an EdgeShare gateway, or None when it is not one (then there is
    nothing to resync to)."""
    try:
        data = json.loads(body)
        found = PaymentRequired.model_validate(data["error"])
    except (ValueError, KeyError, TypeError, ValidationError):
        return None
    if found.code != "payment_required" or found.amount_due is None:
        return None
    if not 0 <= found.amount_due <= MAX_AMOUNT:
        return None
    return found


# ---------------------------------------------------------------- the local store ----

_meta = MetaData()
_signed = Table(
    "signed",
    _meta,
    Column("suite", Text, primary_key=True),
    Column("customer", Text, primary_key=True),
    Column("node_id", Integer, primary_key=True),
    Column("generation", Integer, primary_key=True),
    Column("cumulative", Amount, nullable=False),
    Column("units", Integer, nullable=False),
    Column("owed_k", Amount, nullable=False),
    Column("updated_at", Integer, nullable=False),
)
_latency = Table(
    "latency",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("suite", Text, nullable=False),
    Column("node_id", Integer, nullable=False),
    Column("at", Integer, nullable=False),
    Column("latency_ms", Integer, nullable=False),
    Column("status", Integer, nullable=False),
    Index("latency_by_node", "suite", "node_id", "id"),
)


@dataclass(frozen=True)
class ChannelKey:
    """One generation of one customer's channel to one node, on one suite."""

    suite: str
    """``get_suite_key``: chain id and channels contract."""
    customer: str
    node_id: int
    generation: int


@dataclass(frozen=True)
class PaidState:
    """What a payer has signed on one channel generation, counted as the gateway counts."""

    cumulative: int
    """The highest cumulative amount signed."""
    units: int
    """Requests paid for."""
    owed_k: int
    """The sum of the price per 1,000 over those requests: ``ceil(owed_k / 1000)`` is due."""

    def advanced(self, price_per_1k: int) -> PaidState:
        """The state after one more request at ``price_per_1k``: never below what was
        signed."""
        owed = self.owed_k + price_per_1k
        return PaidState(max(self.cumulative, get_due(owed)), self.units + 1, owed)

    def refunded(self, price_per_1k: int) -> PaidState:
        """The state after a request that was not served (an error answer): it is not
        counted; what was signed stays signed."""
        return PaidState(
            self.cumulative, max(0, self.units - 1), max(0, self.owed_k - price_per_1k)
        )

    def synced(self, cumulative: int) -> PaidState:
        """The state after signing ``cumulative`` because the gateway (or the chain's
        redeemed amount) says that much is owed: ``owed_k`` becomes the least that owes
        it, so counting too little costs at most one more 402, never an overpayment."""
        if cumulative <= self.cumulative:
            return self
        return PaidState(cumulative, self.units, max(self.owed_k, (cumulative - 1) * 1000 + 1))


def get_due(owed_k: int) -> int:
    """Base units owed for ``owed_k`` thousandths of a base unit, rounded up (as the
    gateway rounds: the node is never paid less than it served)."""
    return -(-owed_k // 1000)


_EMPTY = PaidState(0, 0, 0)


def get_default_store_path() -> Path:
    """``EDGESHARE_CLIENT_DB`` if set, else ``~/.edgeshare/client.db``."""
    named = read_env(CLIENT_DB_ENV)
    return Path(named).expanduser() if named else Path.home() / ".edgeshare" / "client.db"


def get_suite_key(suite: Suite) -> str:
    """What the store keys a suite by: ``<chain id>:<channels contract>``."""
    return f"{suite.manifest.chain_id}:{suite.channels.address.lower()}"


def _build_engine(path: Path) -> Engine:
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _connect(connection: Any, _record: Any) -> None:
        connection.isolation_level = None  # transactions begin below, IMMEDIATE
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # take the write lock at the start: two processes never decide the same amount
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@dataclass(frozen=True)
class SeenLatency:
    """The latency this machine saw calling one node."""

    node_id: int
    p50_ms: int
    """Median (nearest rank) of the latest calls, ms, request sent to response read."""
    count: int
    """Calls it is taken over (at most ``recent``)."""
    last_at: int
    """Unix time of the latest call."""


class ClientStore:
    """The client's SQLite file: what was signed per channel, and latencies per node.

    Args:
        path: The file (created with its folder if missing).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._engine = _build_engine(path)
        try:
            with self._engine.begin() as db:
                _meta.create_all(db)
        except SQLAlchemyError as exc:
            raise EdgeShareError(f"the client database {path} failed: {exc}") from None

    def close(self) -> None:
        """Release the file."""
        self._engine.dispose()

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        try:
            with self._engine.begin() as db:
                yield db
        except SQLAlchemyError as exc:
            raise EdgeShareError(f"the client database {self.path} failed: {exc}") from None

    def fetch_paid(self, key: ChannelKey) -> PaidState | None:
        """What was signed on ``key``'s channel generation (None: nothing yet)."""
        with self._transaction() as db:
            return _read_paid(db, key)

    @contextmanager
    def changing(self, key: ChannelKey) -> Iterator[_PaidChange]:
        """Read and change ``key``'s state in one write transaction: set ``change.new``
        to write it; an exception inside leaves the state as it was."""
        with self._transaction() as db:
            old = _read_paid(db, key)
            change = _PaidChange(old or _EMPTY)
            yield change
            new = change.new
            if new is None or new == old:
                return
            values = {
                "cumulative": new.cumulative,
                "units": new.units,
                "owed_k": new.owed_k,
                "updated_at": int(time.time()),
            }
            if old is None:
                db.execute(insert(_signed).values(**_key_columns(key), **values))
            else:
                db.execute(update(_signed).where(*_key_match(key)).values(**values))

    def add_latency(self, suite_key: str, node_id: int, latency_ms: int, status: int) -> None:
        """Note one call's latency (every ``PRUNE_EVERY`` calls, each node's beyond its
        latest ``KEEP_LATENCIES`` go)."""
        t = _latency
        with self._transaction() as db:
            added = db.execute(
                insert(t).values(
                    suite=suite_key, node_id=node_id, at=int(time.time()),
                    latency_ms=latency_ms, status=status,
                )
            ).inserted_primary_key  # fmt: skip
            if added is not None and int(added[0]) % PRUNE_EVERY == 0:
                rank = func.row_number().over(
                    partition_by=(t.c.suite, t.c.node_id), order_by=t.c.id.desc()
                )
                ranked = select(t.c.id, rank.label("rank")).subquery()
                old = select(ranked.c.id).where(ranked.c.rank > KEEP_LATENCIES)
                db.execute(delete(t).where(t.c.id.in_(old)))

    def fetch_seen_latency(
        self, suite_key: str | None = None, recent: int = DEFAULT_RECENT_CALLS
    ) -> dict[int, SeenLatency]:
        """p50 and count of the latest ``recent`` calls per node (of one suite, if given)."""
        t = _latency
        rank = func.row_number().over(partition_by=(t.c.suite, t.c.node_id), order_by=t.c.id.desc())
        ranked = select(t.c.node_id, t.c.latency_ms, t.c.at, rank.label("rank"))
        if suite_key is not None:
            ranked = ranked.where(t.c.suite == suite_key)
        sub = ranked.subquery()
        rows = select(sub.c.node_id, sub.c.latency_ms, sub.c.at).where(sub.c.rank <= recent)
        found: dict[int, list[tuple[int, int]]] = {}
        with self._transaction() as db:
            for node_id, ms, at in db.execute(rows):
                found.setdefault(int(node_id), []).append((int(ms), int(at)))
        return {node: _summarise(node, seen) for node, seen in found.items()}


class _PaidChange:
    def __init__(self, old: PaidState) -> None:
        self.old = old
        self.new: PaidState | None = None


def _key_columns(key: ChannelKey) -> dict[str, Any]:
    return {
        "suite": key.suite,
        "customer": key.customer.lower(),
        "node_id": key.node_id,
        "generation": key.generation,
    }


def _key_match(key: ChannelKey) -> list[Any]:
    return [getattr(_signed.c, name) == value for name, value in _key_columns(key).items()]


def _read_paid(db: Connection, key: ChannelKey) -> PaidState | None:
    s = _signed.c
    row = db.execute(select(s.cumulative, s.units, s.owed_k).where(*_key_match(key))).first()
    return None if row is None else PaidState(*(int(v) for v in row))


def _summarise(node_id: int, seen: list[tuple[int, int]]) -> SeenLatency:
    ordered = sorted(ms for ms, _ in seen)
    median = ordered[math.ceil(len(ordered) / 2) - 1]  # nearest rank: no invented values
    return SeenLatency(node_id, median, len(seen), max(at for _, at in seen))


def fetch_seen_latency(
    path: Path | None = None, suite: Suite | None = None, recent: int = DEFAULT_RECENT_CALLS
) -> dict[int, SeenLatency]:
    """The latency this machine saw per node: p50 over the latest ``recent`` calls, with
    their count. Reads the client database at ``path`` (default
    ``get_default_store_path()``); no file means no data (nothing is created).

    Args:
        path: The client database.
        suite: Only this suite's nodes (node ids are per suite); None: every suite's,
            merged by node id.
        recent: Calls per node to take the p50 over.
    """
    where = path or get_default_store_path()
    if not where.is_file():
        return {}
    store = ClientStore(where)
    try:
        return store.fetch_seen_latency(get_suite_key(suite) if suite else None, recent)
    finally:
        store.close()


# ------------------------------------------------------------------- picking ----


def pick_node(
    db: Connection,
    suite: Suite,
    region: str,
    max_latency_ms: int,
    model: str | None = None,
    *,
    probe: bool = True,
    timeout: float = PROBE_TIMEOUT,
    recent: int = 12,
) -> BoardRow:
    """The cheapest active node in ``region`` whose attested p50 latency is at most
    ``max_latency_ms``, that can be called: its metadata is verified against its hash and
    names an http(s) endpoint, which answers (any HTTP status counts, when ``probe``), and
    lists ``model`` if one is asked for. Ties go as on the board (lower latency, higher
    uptime, lower id).

    Args:
        db: The index database (``edgeshare.indexer.open_db``), synced.
        suite: The deployed suite.
        region: The region (case-insensitive).
        max_latency_ms: The highest attested p50 latency, ms.
        model: A model the node must list in its metadata.
        probe: Whether to check that the endpoint answers (``GET <endpoint>/models``).
        timeout: Seconds to wait for each endpoint.
        recent: Epochs of attested usage the latency is taken over.

    Raises:
        NoNodeMatches: nothing matches; the message names why, node by node.
    """
    board = build_board(db, suite, region=region, max_latency=max_latency_ms, recent=recent)
    if not board.rows:
        raise NoNodeMatches(f"no node to call: {board.empty_reason}")
    reasons = []
    for row in board.rows:
        why = _why_not_callable(row, model, probe, timeout)
        if why is None:
            return row
        reasons.append(f"node {row.node_id}: {why}")
    wanted = f"in {region} with p50 latency at most {max_latency_ms} ms" + (
        f" serving {model}" if model else ""
    )
    raise NoNodeMatches(
        f"no node {wanted} can be called ({len(reasons)} matched the bound):\n  "
        + "\n  ".join(reasons)
    )


def _why_not_callable(row: BoardRow, model: str | None, probe: bool, timeout: float) -> str | None:
    if row.metadata_status == "none":
        return "publishes no metadata (no endpoint)"
    if row.metadata_status == "not fetched":
        return (
            f"its metadata ({row.metadata_uri[:80]}) is not fetched at run time: call it by "
            "its id with its endpoint (--node N --endpoint URL)"
        )
    if row.metadata is None:
        return f"its metadata is {row.metadata_status}: {row.metadata_uri[:80]}"
    endpoint = row.metadata.endpoint
    if endpoint is None:
        return "its metadata names no endpoint"
    if model is not None:
        models = row.metadata.models
        if models is None:
            return f"its metadata lists no models (asked for {model})"
        if model not in models:
            return f"does not serve {model} (serves {', '.join(models)})"
    if probe:
        problem = check_endpoint(endpoint, timeout)
        if problem:
            return f"endpoint {endpoint} does not answer ({problem})"
    return None


def check_endpoint(endpoint: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Whether ``endpoint`` answers HTTP: None if it does (any status), else what failed."""
    try:
        httpx.get(endpoint.rstrip("/") + "/models", timeout=timeout)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return None


# -------------------------------------------------------------------- paying ----


class Payer:
    """Pays one node through the customer's channel, voucher by voucher.

    Signs with the customer's key, or with an app key the customer authorised for the
    node (``edgeshare channel authorize``; then ``customer`` names the customer). Safe to
    share between threads, and between processes on the same ``store`` file.

    Args:
        suite: The deployed suite.
        signer: Who signs the vouchers.
        node_id: The node paid.
        customer: Whose channel (default: the signer's own).
        store: The client database, or its path (default ``get_default_store_path()``).
        endpoint: The node's OpenAI-compatible base URL, e.g. ``http://host:8080/v1``
            (``base_url``; from its metadata when picked with ``pick_node``).
        resync_limit: The most a 402 may make it sign above what it had signed, base
            units (default: the price of ``DEFAULT_RESYNC_REQUESTS`` requests).
        voucher_lifetime: Seconds each voucher stays redeemable.

    Raises:
        InputError: no such node, or an app key the customer has not authorised.
    """

    def __init__(
        self,
        suite: Suite,
        signer: Signer,
        node_id: int,
        *,
        customer: str | None = None,
        store: ClientStore | Path | None = None,
        endpoint: str | None = None,
        resync_limit: int | None = None,
        voucher_lifetime: int = DEFAULT_VOUCHER_LIFETIME,
    ) -> None:
        self.suite = suite
        self.signer = signer
        self.node_id = node_id
        self.customer = parse_address(customer, "customer") if customer else signer.address
        self._owns_store = not isinstance(store, ClientStore)
        self.store = store if isinstance(store, ClientStore) else ClientStore(
            store or get_default_store_path()
        )  # fmt: skip
        self.endpoint = endpoint
        self.resync_limit = resync_limit
        self.voucher_lifetime = voucher_lifetime
        self.suite_key = get_suite_key(suite)
        self.resyncs = 0
        """402s this payer settled by signing what the gateway asked."""
        self._resynced = 0
        """Base units this payer signed above its own count on a gateway's word (402s):
        ``resync_limit`` bounds their sum, not each one."""
        self.last_latency_ms: int | None = None
        """The latency of the latest successful call, ms."""
        self._lock = threading.RLock()
        domain = fetch_channels_domain(suite)
        self._domain = domain
        self._separator = domain.get_separator()
        self.channel: ChannelRecord
        self._price = self._next_price = self._epoch_end = 0
        self._chain_time = 0
        self._monotonic = 0.0
        self.refresh()
        if self.customer.lower() != signer.address.lower():
            until = int(
                suite.channels.call("signer_valid_until", self.customer, node_id, signer.address)
            )
            if until <= self._chain_time:
                raise InputError(
                    f"{signer.address} is not authorised to sign for {self.customer}'s channel "
                    f"to node {node_id}: the customer runs `edgeshare channel authorize "
                    f"{node_id} {signer.address}`"
                )

    # -------------------------------------------------------------- state ----

    @property
    def base_url(self) -> str:
        """The node's OpenAI-compatible base URL (for ``openai.OpenAI(base_url=...)``)."""
        if self.endpoint is None:
            raise InputError(f"no endpoint known for node {self.node_id}: pass endpoint=")
        return self.endpoint

    @property
    def key(self) -> ChannelKey:
        """The channel generation the next voucher is for."""
        return ChannelKey(self.suite_key, self.customer, self.node_id, self.channel.generation)

    def refresh(self) -> ChannelRecord:
        """Read the channel, the node's price and the chain's time again."""
        with self._lock:
            node = self.suite.fetch_node(self.node_id)  # raises NodeNotFound
            self.channel = fetch_channel(self.suite, self.customer, self.node_id)
            self._price, self._next_price = node.price_per_1k, node.next_price_per_1k
            epoch = int(self.suite.registry.call("current_epoch"))
            self._epoch_end = int(self.suite.registry.call("epoch_start", epoch + 1))
            # never backwards: a chain that mined no block since lags the clock
            block_time = max(fetch_chain_time(self.suite), self.get_chain_time())
            self._chain_time, self._monotonic = block_time, time.monotonic()
            return self.channel

    def get_chain_time(self) -> int:
        """The chain's time now, as last read plus the time elapsed here since."""
        if not self._chain_time:
            return 0
        return self._chain_time + int(time.monotonic() - self._monotonic)

    @property
    def price_per_1k(self) -> int:
        """The node's price now (the next epoch's once the current one is over, as the
        gateway prices it)."""
        return self._next_price if self.get_chain_time() >= self._epoch_end else self._price

    @property
    def paid(self) -> PaidState:
        """What was signed on this channel generation (the chain's redeemed amount, if
        the local record knows less: a lost database)."""
        state = self.store.fetch_paid(self.key) or _EMPTY
        return state.synced(self.channel.redeemed)

    @property
    def signed(self) -> int:
        """The cumulative amount signed so far on this channel generation."""
        return self.paid.cumulative

    @property
    def left(self) -> int:
        """What the deposit still covers: deposited less what was signed."""
        return max(0, self.channel.deposited - self.signed)

    def get_next_amount(self, price_per_1k: int | None = None) -> int:
        """The cumulative amount the next voucher will carry (nothing is signed)."""
        price = self.price_per_1k if price_per_1k is None else price_per_1k
        return self.paid.advanced(price).cumulative

    # -------------------------------------------------------------- funding ----

    def ensure_funded(self, tx: Transactor, min_balance: int, top_up: int) -> Action | None:
        """Open or top up the channel with ``top_up`` base units when what is left
        (deposited less signed) is below ``min_balance``; else do nothing (None).

        Raises:
            InputError: ``tx`` is not the customer's (an app key cannot deposit), or
                ``top_up`` would still leave less than ``min_balance``.
        """
        if tx.signer.address.lower() != self.customer.lower():
            raise InputError(
                f"only the customer {self.customer} deposits into its channel; "
                f"{tx.signer.address} cannot"
            )
        with self._lock:
            self.refresh()
            left = self.left
            if left >= min_balance:
                return None
            if left + top_up < min_balance:
                unit = self.suite.fetch_stablecoin_token()
                raise InputError(
                    f"a top-up of {unit.format(top_up)} leaves {unit.format(left + top_up)} in "
                    f"the channel to node {self.node_id}; {unit.format(min_balance)} is needed"
                )
            action = send_deposit(tx, self.suite, self.node_id, top_up)
            self.refresh()
            return action

    # -------------------------------------------------------------- signing ----

    def next_voucher(self, price_per_1k: int | None = None) -> SignedVoucher:
        """Sign the voucher for one more request: what was signed plus the request's
        price (``ceil`` accounting, see the module's docstring), recorded before it is
        returned.

        Args:
            price_per_1k: The price to pay at (default: the node's, read from the chain
                and read again once its epoch is over).

        Raises:
            PaymentRefused: the deposit does not cover it, or the channel is closed.
        """
        return self.sign_request(price_per_1k)[0]

    def sign_request(self, price_per_1k: int | None = None) -> tuple[SignedVoucher, int]:
        """``next_voucher``, and the price it counted (for ``refund``)."""
        with self._lock:
            stale = time.monotonic() - self._monotonic > REFRESH_INTERVAL
            if stale and self.get_chain_time() >= self._epoch_end:
                self.refresh()  # two epochs on: the price after next is known only now
            price = self.price_per_1k if price_per_1k is None else price_per_1k
            try:
                return self._sign_next(price), price
            except PaymentRefused:
                self.refresh()  # a deposit or a withdrawal since: decide again on fresh state
                return self._sign_next(price), price

    def _sign_next(self, price: int) -> SignedVoucher:
        with self.store.changing(self.key) as change:
            new = change.old.synced(self.channel.redeemed).advanced(price)
            self._check_payable(new.cumulative)
            voucher = self._sign(new.cumulative)
            change.new = new
        return voucher

    def refund(self, voucher: SignedVoucher, price_per_1k: int) -> None:
        """Take back the request ``voucher`` paid for: it was answered with an error (a
        402, or a 5xx whose charge the gateway took back), so the next request owes what
        this one would have. What was signed stays signed (the next voucher may carry the
        same amount)."""
        key = ChannelKey(self.suite_key, self.customer, self.node_id, voucher.generation)
        with self._lock, self.store.changing(key) as change:
            change.new = change.old.refunded(price_per_1k)

    def _check_payable(self, cumulative: int) -> None:
        channel, unit = self.channel, self.suite.fetch_stablecoin_token()
        if channel.closes_at and self.get_chain_time() >= channel.closes_at:
            raise PaymentRefused(
                f"the channel of {self.customer} to node {self.node_id} is closed: withdraw "
                f"(`edgeshare channel withdraw {self.node_id}`), then deposit again"
            )
        if cumulative > channel.deposited:
            raise PaymentRefused(
                f"the channel of {self.customer} to node {self.node_id} holds "
                f"{unit.format(channel.deposited)}; the next request needs a voucher for "
                f"{unit.format(cumulative)}: top it up (`edgeshare channel deposit "
                f"{self.node_id} AMOUNT`, or Payer.ensure_funded)"
            )

    def _sign(self, cumulative: int) -> SignedVoucher:
        voucher = Voucher(
            node_id=self.node_id,
            customer=self.customer,
            generation=self.channel.generation,
            cumulative=cumulative,
            deadline=self.get_chain_time() + self.voucher_lifetime,
        )
        return sign_voucher(voucher, self.signer.export_key(), self._domain, self._separator)

    def resync(
        self, due: PaymentRequired, sent: SignedVoucher | None = None
    ) -> SignedVoucher | None:
        """Settle a gateway's 402: sign exactly what it says the next voucher must reach.

        The channel is read from the chain first. Then ``target = max(due.amount_due,
        what was signed)`` is signed if it is covered by the deposit and at most
        ``resync_limit`` above what this payer had signed (see the module's docstring).

        Args:
            due: The 402's body.
            sent: The voucher the refused request carried.

        Returns:
            The voucher to retry with, or None when it would be the one already refused
            (the 402 was for something signing cannot fix) or the 402 names no amount.

        Raises:
            PaymentRefused: the 402 is about another node or customer, the deposit does
                not cover it, or it asks for more than the bound.
        """
        asked = due.amount_due
        if asked is None:
            return None
        if due.node_id != self.node_id or (
            due.channel is not None and due.channel.customer.lower() != self.customer.lower()
        ):
            raise PaymentRefused(
                f"the gateway asks payment for node {due.node_id}"
                + (f" from {due.channel.customer}" if due.channel else "")
                + f", but this payer pays node {self.node_id} from {self.customer}: "
                "the endpoint is not that node's"
            )
        with self._lock:
            self.refresh()
            unit = self.suite.fetch_stablecoin_token()
            with self.store.changing(self.key) as change:
                old = change.old.synced(self.channel.redeemed)
                target = max(asked, old.cumulative)
                limit = self.resync_limit
                if limit is None:
                    limit = get_due(DEFAULT_RESYNC_REQUESTS * self.price_per_1k)
                if target - old.cumulative + self._resynced > limit:
                    raise PaymentRefused(
                        f"node {self.node_id}'s gateway asks for a voucher of "
                        f"{unit.format(asked)}; this payer signed "
                        f"{unit.format(old.cumulative)} and resyncs at most "
                        f"{unit.format(limit)} in all ({unit.format(self._resynced)} so far; "
                        f"{due.reason or 'no reason given'}); "
                        "if another client paid on this channel, raise resync_limit"
                    )
                self._check_payable(target)
                if (
                    sent is not None
                    and sent.cumulative == target
                    and sent.generation == self.channel.generation
                ):
                    return None
                voucher = self._sign(target)
                change.new = old.synced(target)
                self._resynced += target - old.cumulative
            self.resyncs += 1
            log.info("resynced node %s: signed %s (gateway: %s)", self.node_id, target, due.reason)
            return voucher

    def close(self) -> None:
        """Release the client database (if this payer opened it)."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Payer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def record_latency(self, latency_ms: int, status: int = 200) -> None:
        """Note a call's latency (what ``fetch_seen_latency`` reports)."""
        self.last_latency_ms = latency_ms
        self.store.add_latency(self.suite_key, self.node_id, latency_ms, status)


# --------------------------------------------------------- the HTTP auth flow ----


class _Request(Protocol):
    @property
    def headers(self) -> MutableMapping[str, str]: ...

    def read(self) -> bytes: ...


class _Response(Protocol):
    @property
    def status_code(self) -> int: ...

    stream: Any

    def read(self) -> bytes: ...


class _Exchange:
    """One request's payment, shared by every client flavour (httpx and httpx2, sync and
    async): voucher on, 402 settled once, latency noted when the body is read."""

    def __init__(self, payer: Payer, module: ModuleType) -> None:
        self.payer = payer
        self.module = module
        self.sent: SignedVoucher | None = None
        self.price_per_1k = 0
        self.started = 0.0

    def prepare(self, request: _Request) -> None:
        self.sent, self.price_per_1k = self.payer.sign_request()
        self._attach(request, self.sent)

    def _attach(self, request: _Request, voucher: SignedVoucher) -> None:
        request.headers[VOUCHER_HEADER] = encode_voucher_header(voucher)
        self.started = time.perf_counter()

    def retry(self, request: _Request, response: _Response) -> bool:
        """After a 402 whose body was read: whether to send ``request`` again (with the
        resynced voucher attached)."""
        due = parse_payment_required(response.read())
        if due is None:
            return False
        try:
            voucher = self.payer.resync(due, self.sent)
        except PaymentRefused:
            self._refund()
            raise
        if voucher is None:
            return False
        self.sent = voucher
        self._attach(request, voucher)
        return True

    def _refund(self) -> None:
        if self.sent is not None:
            self.payer.refund(self.sent, self.price_per_1k)
            self.sent = None

    def finish(self, response: _Response) -> None:
        status = response.status_code
        if not 200 <= status < 300:
            # a 402 or 5xx was not charged (the gateway takes an upstream failure back);
            # another error may have been: counting it out can only underpay, which the
            # next request's 402 corrects, where counting it in could overpay for good
            self._refund()
            return
        started, payer = self.started, self.payer

        def done() -> None:
            ms = max(1, math.ceil((time.perf_counter() - started) * 1000))
            try:
                payer.record_latency(ms, status)
            except EdgeShareError as exc:  # a full disk must not fail the call
                log.warning("could not record the latency of node %s: %s", payer.node_id, exc)

        response.stream = _timed_stream_class(self.module)(response.stream, done)


_TIMED: dict[str, type] = {}


def _timed_stream_class(module: ModuleType) -> type:
    """A stream wrapper (of ``module``'s sync and async byte streams) calling ``on_done``
    once, when the response is closed: after its body was read, or abandoned."""
    found = _TIMED.get(module.__name__)
    if found is not None:
        return found

    class TimedStream(module.SyncByteStream, module.AsyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any, on_done: Callable[[], None]) -> None:
            self._inner = inner
            self._on_done: Callable[[], None] | None = on_done

        def __iter__(self) -> Iterator[bytes]:
            yield from self._inner

        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for chunk in self._inner:
                yield chunk

        def _done(self) -> None:
            if self._on_done is not None:
                on_done, self._on_done = self._on_done, None
                on_done()

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                self._done()

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                self._done()

    _TIMED[module.__name__] = TimedStream
    return TimedStream


def is_paid_request(method: str, path: str) -> bool:
    """Whether the gateway charges for ``method`` ``path`` (``POST`` to one of its
    ``PAID_ROUTES``, under any prefix the endpoint has): only those carry a voucher."""
    return method.upper() == "POST" and path.rstrip("/").endswith(PAID_ROUTES)


def _sync_flow(exchange: _Exchange, request: Any) -> Generator[Any, Any, None]:
    if not is_paid_request(request.method, request.url.path):
        yield request  # free (GET /v1/models, /healthz): nothing to pay, nothing counted
        return
    request.read()  # a body sent twice must be in memory
    exchange.prepare(request)
    response = yield request
    if response.status_code == 402:
        response.read()
        if exchange.retry(request, response):
            response = yield request
    exchange.finish(response)


async def _async_flow(exchange: _Exchange, request: Any) -> AsyncGenerator[Any, Any]:
    if not is_paid_request(request.method, request.url.path):
        yield request
        return
    await request.aread()
    exchange.prepare(request)  # a SQLite write and a signature: brief, done inline
    response = yield request
    if response.status_code == 402:
        await response.aread()
        if exchange.retry(request, response):
            response = yield request
    exchange.finish(response)


class VoucherAuth(httpx.Auth):
    """``httpx.Client(auth=VoucherAuth(payer))`` (or ``httpx.AsyncClient``): every paid
    request (``POST`` to chat completions, completions, embeddings) carries the next
    voucher in ``X-EdgeShare-Voucher``; a 402 with ``amount_due`` is settled once
    (``Payer.resync``) and the request sent again; the latency of every successful call
    is noted when its body has been read. An error answer is not counted (the gateway
    charged it back, or the next 402 says it did not); a request that fails in transit
    stays counted (the gateway may have served it).

    A request raises ``PaymentRefused`` when the channel cannot pay or the gateway asks
    for more than the resync bound; a 402 that a resync cannot fix is returned as it is.
    """

    def __init__(self, payer: Payer) -> None:
        self.payer = payer

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """The flow for ``httpx.Client``."""
        return _sync_flow(_Exchange(self.payer, httpx), request)

    def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """The flow for ``httpx.AsyncClient``."""
        return _async_flow(_Exchange(self.payer, httpx), request)


def _import_httpx2() -> ModuleType:
    try:
        import httpx2
    except ImportError:
        raise InputError(
            "the openai package's HTTP library (httpx2) is not installed: "
            "pip install edgeshare[openai]"
        ) from None
    return httpx2


_HTTPX2_AUTH: list[type] = []


def build_httpx2_auth(payer: Payer) -> httpx2.Auth:
    """``VoucherAuth``'s twin for ``httpx2``, the HTTP library of ``openai`` (the same flow:
    one implementation serves both)."""
    module = _import_httpx2()
    if not _HTTPX2_AUTH:

        class Httpx2VoucherAuth(module.Auth):  # type: ignore[misc,name-defined]
            __doc__ = VoucherAuth.__doc__

            def __init__(self, payer: Payer) -> None:
                self.payer = payer

            def sync_auth_flow(self, request: Any) -> Generator[Any, Any, None]:
                return _sync_flow(_Exchange(self.payer, module), request)

            def async_auth_flow(self, request: Any) -> AsyncGenerator[Any, Any]:
                return _async_flow(_Exchange(self.payer, module), request)

        _HTTPX2_AUTH.append(Httpx2VoucherAuth)
    auth: httpx2.Auth = _HTTPX2_AUTH[0](payer)
    return auth


def openai_http_client(payer: Payer, **options: Any) -> httpx2.Client:
    """An ``httpx2.Client`` that pays ``payer``'s node, for
    ``openai.OpenAI(base_url=payer.base_url, api_key="edgeshare", http_client=...)``.

    Args:
        payer: Who pays.
        options: More ``httpx2.Client`` arguments (``timeout``, ``limits``, ...).

    Raises:
        InputError: httpx2 is not installed (``pip install edgeshare[openai]``).
    """
    module = _import_httpx2()
    client: httpx2.Client = module.Client(auth=build_httpx2_auth(payer), **options)
    return client


def openai_async_http_client(payer: Payer, **options: Any) -> httpx2.AsyncClient:
    """``openai_http_client`` for ``openai.AsyncOpenAI``."""
    module = _import_httpx2()
    client: httpx2.AsyncClient = module.AsyncClient(auth=build_httpx2_auth(payer), **options)
    return client


# ------------------------------------------------------------------- a chat call ----


class ChatMessage(StrictModel):
    """One message of an OpenAI chat request."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    """Who speaks."""
    content: Annotated[str, Field(max_length=1_000_000)]
    """What is said."""
    name: str | None = None
    """The speaker's name, for several of one role."""


class ChatMessages(RootModel[Annotated[list[ChatMessage], Field(min_length=1)]]):
    """A ``--messages`` file: the request's ``messages`` array."""


@dataclass
class ChatResult:
    """One paid chat completion."""

    node_id: int
    endpoint: str
    model: str
    answer: str
    finish_reason: str | None
    usage: dict[str, Any] | None
    """The response's token counts, as the node reported them."""
    paid: int
    """Base units this call signed over (a resync included)."""
    cumulative: int
    """The channel's cumulative signed amount after the call."""
    left: int
    """What the deposit still covers."""
    latency_ms: int
    """Request sent (the last time, after a resync) to response read."""
    resynced: bool
    """Whether a 402 was settled on the way."""


class NodeCallFailed(EdgeShareError, RuntimeError):
    """The node answered a call with an error (its status and message named)."""


def send_chat(
    payer: Payer,
    messages: list[ChatMessage],
    model: str,
    *,
    max_tokens: int | None = None,
    stream: bool = False,
    on_delta: Callable[[str], None] | None = None,
    timeout: float = 60.0,
    http: httpx.Client | None = None,
) -> ChatResult:
    """``POST <base_url>/chat/completions`` through ``VoucherAuth``, paid by ``payer``.

    Args:
        payer: Who pays (its ``endpoint`` is called).
        messages: The conversation.
        model: The model to ask.
        max_tokens: The most tokens to generate (None: the node's default).
        stream: Ask for server-sent events; ``on_delta`` gets each piece of text.
        on_delta: Called with each streamed piece of the answer.
        timeout: Seconds to wait for the node (per read).
        http: A client to send it with, kept open by the caller between calls (its
            connections are reused; making one costs a TLS context); None: one for this
            call.

    Raises:
        PaymentRefused: the channel cannot pay, or the node asked for too much.
        NodeUnreachable: the endpoint did not answer.
        NodeCallFailed: the node answered with an error status.
    """
    body: dict[str, Any] = {
        "model": model,
        "messages": [m.model_dump(exclude_none=True) for m in messages],
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if stream:
        body["stream"] = True
    url = payer.base_url.rstrip("/") + "/chat/completions"
    before, resyncs = payer.signed, payer.resyncs
    payer.last_latency_ms = None
    pieces: list[str] = []
    finish: str | None = None
    usage: dict[str, Any] | None = None
    try:
        with (
            contextlib.nullcontext(http) if http is not None else httpx.Client() as client,
            client.stream(
                "POST", url, json=body, auth=VoucherAuth(payer), timeout=timeout
            ) as response,
        ):
            if response.status_code != 200:
                response.read()
                failure = _describe_failure(payer.node_id, response)
                raise (
                    PaymentRefused(failure)
                    if response.status_code == 402
                    else NodeCallFailed(failure)
                )
            if stream:
                for data in _iter_sse(response.iter_lines()):
                    chunk = json.loads(data)
                    for choice in chunk.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content") or ""
                        if text:
                            pieces.append(text)
                            if on_delta:
                                on_delta(text)
                        finish = choice.get("finish_reason") or finish
                    usage = chunk.get("usage") or usage
            else:
                result = json.loads(response.read())
                choice = (result.get("choices") or [{}])[0]
                pieces.append((choice.get("message") or {}).get("content") or "")
                finish, usage = choice.get("finish_reason"), result.get("usage")
    except httpx.HTTPError as exc:
        raise NodeUnreachable(
            f"node {payer.node_id} at {payer.base_url} failed: {type(exc).__name__}: {exc}"
        ) from None
    except (ValueError, AttributeError) as exc:
        raise NodeCallFailed(f"node {payer.node_id} answered something that is not a chat "
                         f"completion: {exc}") from None  # fmt: skip
    after = payer.signed
    return ChatResult(
        node_id=payer.node_id,
        endpoint=payer.base_url,
        model=model,
        answer="".join(pieces),
        finish_reason=finish,
        usage=usage,
        paid=after - before,
        cumulative=after,
        left=payer.left,
        latency_ms=payer.last_latency_ms or 0,
        resynced=payer.resyncs > resyncs,
    )


def _iter_sse(lines: Iterator[str]) -> Iterator[str]:
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        if data:
            yield data


def _describe_failure(node_id: int, response: httpx.Response) -> str:
    detail = response.text[:300]
    try:
        error = response.json().get("error")
        if isinstance(error, dict):
            detail = str(error.get("reason") or error.get("message") or error)
        elif error:
            detail = str(error)
    except (ValueError, AttributeError):
        pass
    return f"node {node_id} answered HTTP {response.status_code}: {detail}"


# ------------------------------------------------------------ all in one call ----


def connect_payer(
    *,
    rpc_url: str,
    private_key_env: str | None = None,
    keystore: Path | None = None,
    keystore_password: str | None = None,
    region: str | None = None,
    max_latency_ms: int | None = None,
    model: str | None = None,
    node_id: int | None = None,
    endpoint: str | None = None,
    customer: str | None = None,
    deposit: str | int | None = None,
    manifest: Path | None = None,
    db: str | None = None,
    store: Path | None = None,
) -> Payer:
    """Connect, pick a node (or take ``node_id``), fund the channel if asked, and return
    the payer: the one line before ``openai.OpenAI(..., http_client=openai_http_client(p))``.

    Args:
        rpc_url: The chain's JSON-RPC URL.
        private_key_env: The environment variable holding the key (or ``keystore``).
        keystore: An encrypted JSON keystore (password ``keystore_password``, or asked).
        keystore_password: The keystore's password.
        region: Where the node must be (with ``max_latency_ms``; or ``node_id``).
        max_latency_ms: The highest attested p50 latency, ms.
        model: A model the node must serve.
        node_id: Pay this node instead of picking one.
        endpoint: Its base URL (default: from its verified metadata).
        customer: Whose channel, when the key is an app key the customer authorised.
        deposit: When the channel cannot pay for a request, deposit this much: whole
            units as text (``"5"``, ``"5.5"``) or base units as an int. Only the customer.
        manifest: The suite's manifest (default ``deployments/<chain_id>.json``).
        db: The index database URL (default ``sqlite:///index/<chain_id>.db``).
        store: The client database (default ``get_default_store_path()``).

    Raises:
        InputError: bad arguments, no key, no suite; ``NoNodeMatches`` when none fits.
    """
    from edgeshare.chain import connect
    from edgeshare.deploy import get_default_manifest_path, read_manifest
    from edgeshare.indexer import open_db, sync_index
    from edgeshare.signer import load_signer_from_env, load_signer_from_keystore

    if (private_key_env is None) == (keystore is None):
        raise InputError("give private_key_env or keystore (one of them)")
    signer = (
        load_signer_from_env(private_key_env)
        if private_key_env
        else load_signer_from_keystore(Path(str(keystore)), keystore_password)
    )
    w3 = connect(rpc_url)
    path = manifest or get_default_manifest_path(int(w3.eth.chain_id))
    found = read_manifest(path)
    if found is None:
        raise InputError(f"no manifest at {path}: pass manifest=")
    suite = Suite.load(w3, found)
    if node_id is None:
        if region is None or max_latency_ms is None:
            raise InputError("give region and max_latency_ms, or node_id")
        url, _ = sync_index(suite, db)
        with open_db(url) as conn:
            row = pick_node(conn, suite, region, max_latency_ms, model)
        node_id = row.node_id
        endpoint = endpoint or (row.metadata.endpoint if row.metadata else None)
    elif endpoint is None:
        endpoint = fetch_node_endpoint(suite, node_id)
    payer = Payer(suite, signer, node_id, customer=customer, store=store, endpoint=endpoint)
    if deposit is not None:
        unit = suite.fetch_stablecoin_token()
        amount = deposit if isinstance(deposit, int) else unit.parse(deposit, "deposit")
        tx = Transactor(w3, signer)
        payer.ensure_funded(tx, payer.get_next_amount() - payer.signed, amount)
    return payer


def fetch_node_endpoint(suite: Suite, node_id: int) -> str:
    """The endpoint in ``node_id``'s verified metadata.

    Raises:
        InputError: it has none, or its metadata cannot be read here (``https``/``ipfs``
            URIs are not fetched: give the endpoint yourself).
    """
    from edgeshare.chain import is_local_chain_id
    from edgeshare.metadata import MetadataError, MetadataNotFetched, fetch_metadata

    node = suite.fetch_node(node_id)
    if not node.metadata_uri:
        raise InputError(f"node {node_id} publishes no metadata: give its endpoint")
    try:
        meta = fetch_metadata(
            node.metadata_uri, allow_files=is_local_chain_id(suite.manifest.chain_id)
        )
    except MetadataNotFetched:
        raise InputError(
            f"node {node_id}'s metadata ({node.metadata_uri[:80]}) is not fetched at run "
            "time: give its endpoint"
        ) from None
    except MetadataError as exc:
        raise InputError(f"node {node_id}'s metadata: {exc}") from None
    if meta.endpoint is None:
        raise InputError(f"node {node_id}'s metadata names no endpoint: give its endpoint")
    return meta.endpoint
