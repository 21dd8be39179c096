"""The node's gateway: an OpenAI-compatible reverse proxy paid per request with vouchers.

The gateway sits in front of the node's inference server (vLLM, TGI, Ollama, ...). Each
paid request (``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``)
carries a voucher of the customer's channel to the node in ``X-EdgeShare-Voucher`` (or as
the ``Authorization`` bearer), encoded by ``encode_voucher_header``. The request is served
only if the voucher's cumulative amount covers everything the channel has used including
this request, ``ceil(owed_k / 1000)`` where ``owed_k`` sums the node's on-chain
``price_per_1k`` over the channel's requests (n requests at one price: ``ceil(n * price /
1000)``), and ``VoucherChecker`` (cached chain state, no RPC) says the chain would
redeem it. Otherwise the answer is HTTP 402 with a JSON error that names what is needed.

Every accepted voucher is committed to a SQLite file (``VoucherStore``) before the request
goes upstream, so a restart never forgets what a channel used, and the agent redeems the
latest voucher of each channel from it (``VoucherStore.fetch_latest``). The chain is read
off the event loop, in one worker thread: at start, every ``refresh_interval`` seconds
(price, chain time, the known channels: it learns redemptions and top-ups), and for a
customer or app key the cache does not know (rate-limited per customer and overall).

The gateway publishes its own Prometheus metrics at ``GET /metrics``; the agent's
"edgeshare" metering preset reads ``edgeshare_gateway_served_total`` and
``edgeshare_gateway_request_duration_seconds`` from them.

Only served requests are paid for: when the upstream cannot be reached (502), times out
(504) or answers other than 2xx, the charge is taken back (the voucher stays stored; it
pays the next request). A client that goes away mid-stream has paid. Vouchers must stay
redeemable for ``min_voucher_life`` seconds (the agent redeems on a schedule). Pricing is
per request (one inference = one request); per-token pricing is not offered.

One process serves one node: the per-channel accounting lives in memory (and the store),
so run one uvicorn worker per gateway.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import anyio
import httpx
import uvicorn
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import Field, field_validator
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    select,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from edgeshare.attestation import Eip712Domain, recover_digest
from edgeshare.channels import (
    BELOW_PRICE,
    MAX_AMOUNT,
    SKIP_BAD_SIGNATURE,
    SKIP_CLOSED,
    SKIP_EXPIRED,
    SKIP_NOT_COVERED,
    SKIP_NOT_NODE,
    SKIP_NOTHING_NEW,
    SKIP_OLD_GENERATION,
    SKIP_REASONS,
    UNKNOWN_TO_CACHE,
    SignedVoucher,
    Voucher,
    VoucherChecker,
    fetch_channels_domain,
    get_voucher_digest,
)
from edgeshare.config import read_secret_env
from edgeshare.errors import InputError
from edgeshare.models import StrictModel, to_checksum
from edgeshare.roles import fetch_chain_time
from edgeshare.suite import Suite

logger = logging.getLogger("edgeshare.gateway")

VOUCHER_HEADER = "x-edgeshare-voucher"
"""The request header that carries the voucher (``Authorization: Bearer`` also works)."""
VOUCHER_PREFIX = "esv1."
"""How an encoded voucher starts: format version 1 (base64url of compact JSON)."""
MAX_VOUCHER_HEADER = 1_024
"""Characters an encoded voucher may have at most (a real one has about 450)."""
DEFAULT_MAX_BODY = 1 << 20
"""Request bodies above 1 MiB are refused with 413 unless configured."""
PAID_ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
"""The routes a voucher pays for (one request = one inference)."""
FREE_ROUTES = ("/v1/models", "/metrics", "/healthz")
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60)
"""Seconds: the latency histogram's bounds (up to 60 s, then +Inf)."""

_UINT32, _UINT64, _UINT256 = 2**32 - 1, 2**64 - 1, 2**256 - 1
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_HEX_SIGNATURE = re.compile(r"0x[0-9a-fA-F]{130}")
_FIELDS = ("nodeId", "customer", "generation", "cumulative", "deadline", "signature")
_FIELD_SET = frozenset(_FIELDS)
# never forwarded either way: hop-by-hop (RFC 9110 7.6.1), framing, and the payment itself
_HOP_BY_HOP = frozenset(
    b"connection keep-alive proxy-authenticate proxy-authorization proxy-connection te "
    b"trailer trailers transfer-encoding upgrade".split()
)
_NOT_UPSTREAM = _HOP_BY_HOP | {b"host", b"content-length", b"authorization", b"cookie", b"expect"}
_NOT_DOWNSTREAM = _HOP_BY_HOP | {b"content-length"}

# what each refusal is called in the 402 body ("kind") and what the client should do
_KINDS = {
    SKIP_NOT_NODE: "foreign_node",
    SKIP_EXPIRED: "expired",
    SKIP_OLD_GENERATION: "wrong_generation",
    SKIP_CLOSED: "channel_closed",
    SKIP_NOTHING_NEW: "already_redeemed",
    SKIP_NOT_COVERED: "not_covered",
    SKIP_BAD_SIGNATURE: "bad_signature",
    UNKNOWN_TO_CACHE: "unknown_channel",
    BELOW_PRICE: "underpaid",
}
# refusals whose verdict the checker reached before checking the signature
_SIGNATURE_UNCHECKED = frozenset(
    {SKIP_EXPIRED, SKIP_OLD_GENERATION, SKIP_CLOSED, SKIP_NOTHING_NEW, SKIP_NOT_COVERED}
)


# ------------------------------------------------------------------- the header ----


class VoucherHeaderError(InputError):
    """A voucher header that is not a well-formed encoded voucher."""


@dataclass(frozen=True, slots=True)
class VoucherFields:
    """A voucher parsed from a header, its ranges checked, without pydantic (hot path)."""

    node_id: int
    customer: str
    """Lower-case 0x hex."""
    generation: int
    cumulative: int
    deadline: int
    signature: bytes
    """65 bytes: r || s || v."""

    def get_signed(self) -> SignedVoucher:
        """The voucher as a validated ``SignedVoucher``."""
        return SignedVoucher.model_validate(
            {
                "nodeId": self.node_id,
                "customer": self.customer,
                "generation": self.generation,
                "cumulative": self.cumulative,
                "deadline": self.deadline,
                "signature": "0x" + self.signature.hex(),
            }
        )

    def get_voucher(self) -> Voucher:
        """The voucher without its signature (not validated again)."""
        return Voucher.model_construct(
            node_id=self.node_id,
            customer=self.customer,
            generation=self.generation,
            cumulative=self.cumulative,
            deadline=self.deadline,
        )


def encode_voucher_header(voucher: SignedVoucher) -> str:
    """The header value for ``voucher``: ``esv1.`` then the base64url (unpadded) of its
    compact JSON, field names as in the EIP-712 type (``nodeId``, ``customer``,
    ``generation``, ``cumulative``, ``deadline``) plus ``signature`` (0x hex, 65 bytes).

    Send it as ``X-EdgeShare-Voucher: <value>`` or ``Authorization: Bearer <value>``.
    """
    data = {
        "nodeId": voucher.node_id,
        "customer": voucher.customer,
        "generation": voucher.generation,
        "cumulative": voucher.cumulative,
        "deadline": voucher.deadline,
        "signature": voucher.signature,
    }
    raw = json.dumps(data, separators=(",", ":")).encode()
    return VOUCHER_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _uint(data: dict[str, Any], name: str, top: int, bottom: int = 0) -> int:
    value = data[name]
    if type(value) is not int:  # bool is an int subclass: refused too
        raise VoucherHeaderError(f"{name} must be an integer, got {type(value).__name__}")
    if not bottom <= value <= top:
        raise VoucherHeaderError(f"{name} must be {bottom} to {top}, got {value}")
    return value


def parse_voucher_header(value: str) -> VoucherFields:
    """Parse a header value made by ``encode_voucher_header`` (strictly: exact field set,
    integer types and ranges, 40 hex digits of address, 130 of signature).

    Raises:
        VoucherHeaderError: what is wrong with it, in words.
    """
    if len(value) > MAX_VOUCHER_HEADER:
        raise VoucherHeaderError(
            f"the voucher is {len(value)} characters long; at most {MAX_VOUCHER_HEADER}"
        )
    if not value.startswith(VOUCHER_PREFIX):
        raise VoucherHeaderError(f"an encoded voucher starts with {VOUCHER_PREFIX!r}")
    body = value[len(VOUCHER_PREFIX) :]
    if not _B64URL.fullmatch(body):
        raise VoucherHeaderError("the voucher is not base64url (A-Z a-z 0-9 - _, unpadded)")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        raise VoucherHeaderError("the voucher does not decode to JSON") from None
    if not isinstance(data, dict) or data.keys() != _FIELD_SET:
        raise VoucherHeaderError("the voucher must be a JSON object of " + ", ".join(_FIELDS))
    customer, signature = data["customer"], data["signature"]
    if not isinstance(customer, str) or not _HEX_ADDRESS.fullmatch(customer):
        raise VoucherHeaderError("customer must be a 0x address of 40 hex digits")
    if not isinstance(signature, str) or not _HEX_SIGNATURE.fullmatch(signature):
        raise VoucherHeaderError("signature must be 0x and 130 hex digits (65 bytes)")
    return VoucherFields(
        node_id=_uint(data, "nodeId", _UINT256, 1),
        customer=customer.lower(),
        generation=_uint(data, "generation", _UINT32),
        cumulative=_uint(data, "cumulative", MAX_AMOUNT),
        deadline=_uint(data, "deadline", _UINT64),
        signature=bytes.fromhex(signature[2:]),
    )


def decode_voucher_header(value: str) -> SignedVoucher:
    """The ``SignedVoucher`` in a header value (see ``parse_voucher_header``).

    Raises:
        VoucherHeaderError: the value is not a well-formed encoded voucher.
    """
    return parse_voucher_header(value).get_signed()


def get_due(owed_k: int) -> int:
    """Base units due for ``owed_k`` thousandths of a base unit, rounded up (the node is
    never paid less than it served)."""
    return -(-owed_k // 1_000)


# ------------------------------------------------------------------- the store ----


@dataclass(frozen=True, slots=True)
class ChannelUse:
    """What one channel generation has used at the gateway, and its best voucher."""

    units: int = 0
    """Requests charged."""
    owed_k: int = 0
    """The sum of ``price_per_1k`` over those requests: ``get_due(owed_k)`` is due."""
    cumulative: int = 0
    """The highest accepted voucher's cumulative amount (0: none yet)."""
    deadline: int = 0
    signature: str = ""
    """That voucher's signature, 0x hex ("" when none)."""

    @property
    def due(self) -> int:
        """Base units the channel owes for what it used."""
        return get_due(self.owed_k)


_metadata = MetaData()
_meta = Table(
    "gateway_meta",
    _metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)
# amounts above 2**63 are kept as decimal text (SQLite integers are 64-bit)
_channels = Table(
    "gateway_channels",
    _metadata,
    Column("node_id", BigInteger, primary_key=True),
    Column("customer", String(42), primary_key=True),
    Column("generation", BigInteger, primary_key=True),
    Column("units", BigInteger, nullable=False),
    Column("owed_k", String(90), nullable=False),
    Column("cumulative", String(40), nullable=False),
    Column("deadline", String(20), nullable=False),
    Column("signature", String(132), nullable=False),
    Column("updated_at", Integer, nullable=False),
)
_upsert = sqlite_insert(_channels)
_UPSERT = _upsert.on_conflict_do_update(
    index_elements=["node_id", "customer", "generation"],
    set_={
        name: _upsert.excluded[name]
        for name in ("units", "owed_k", "cumulative", "deadline", "signature", "updated_at")
    },
)


class VoucherStore:
    """The gateway's SQLite file (SQLAlchemy Core, WAL): one row per (node, customer,
    generation) with the units used and the latest (highest) accepted voucher.

    Every ``record`` commits at once. With WAL and ``synchronous=NORMAL`` a commit survives
    the process being killed; a power loss can lose the last commits (the price of a
    commit without fsync on the hot path). Other processes (the agent) may read the file
    while the gateway writes it.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.engine: Engine = create_engine(
            f"sqlite:///{path}", connect_args={"check_same_thread": False}
        )

        @event.listens_for(self.engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

        _metadata.create_all(self.engine)
        self._writer: Connection | None = None

    def bind(self, chain_id: int, channels: str) -> None:
        """Tie the file to one chain's channels contract; a file of another refuses.

        Raises:
            InputError: the file was written for another chain or channels contract.
        """
        want = {"chain_id": str(chain_id), "channels": channels.lower()}
        with self.engine.begin() as conn:
            rows = conn.execute(select(_meta.c.key, _meta.c.value)).all()
            have = {str(key): str(value) for key, value in rows}
            for key, value in want.items():
                if key not in have:
                    conn.execute(_meta.insert().values(key=key, value=value))
                elif have[key] != value:
                    raise InputError(
                        f"{self.path} holds the vouchers of chain {have.get('chain_id')} "
                        f"channels {have.get('channels')}, not chain {chain_id} channels "
                        f"{channels}: give another --db"
                    )

    def record(self, node_id: int, customer: str, generation: int, use: ChannelUse) -> None:
        """Write one channel's use and best voucher, and commit."""
        params = {
            "node_id": node_id,
            "customer": customer.lower(),
            "generation": generation,
            "units": use.units,
            "owed_k": str(use.owed_k),
            "cumulative": str(use.cumulative),
            "deadline": str(use.deadline),
            "signature": use.signature,
            "updated_at": int(time.time()),
        }
        if self._writer is None:
            self._writer = self.engine.connect()
        try:
            self._writer.execute(_UPSERT, params)
            self._writer.commit()
        except SQLAlchemyError:
            self._writer.close()
            self._writer = None
            raise

    def load_channels(self, node_id: int) -> dict[tuple[str, int], ChannelUse]:
        """Every channel generation of ``node_id``: (customer, generation) -> its use."""
        query = select(_channels).where(_channels.c.node_id == node_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return {
            (str(r["customer"]), int(r["generation"])): ChannelUse(
                units=int(r["units"]),
                owed_k=int(r["owed_k"]),
                cumulative=int(r["cumulative"]),
                deadline=int(r["deadline"]),
                signature=str(r["signature"]),
            )
            for r in rows
        }

    def fetch_latest(self, node_id: int) -> list[SignedVoucher]:
        """The best voucher of each customer's current (highest) generation with ``node_id``,
        by customer: what the agent redeems (``channels.redeem_vouchers``)."""
        best: dict[str, tuple[int, ChannelUse]] = {}
        for (customer, generation), use in self.load_channels(node_id).items():
            if use.cumulative and (customer not in best or generation > best[customer][0]):
                best[customer] = (generation, use)
        return [
            SignedVoucher.model_validate(
                {
                    "nodeId": node_id,
                    "customer": customer,
                    "generation": generation,
                    "cumulative": use.cumulative,
                    "deadline": use.deadline,
                    "signature": use.signature,
                }
            )
            for customer, (generation, use) in sorted(best.items())
        ]

    def close(self) -> None:
        """Close the file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.engine.dispose()


# ------------------------------------------------------------------ the config ----


class GatewayConfig(StrictModel):
    """How one gateway runs (``edgeshare gateway`` builds it from its options)."""

    node_id: Annotated[int, Field(ge=1)]
    """The node the gateway is paid for."""
    upstream: str
    """The inference server's base URL (http or https; a trailing ``/v1`` is dropped)."""
    db_path: Path
    """The voucher store (SQLite)."""
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65_535)] = 8080
    """0: a free port (``serve_gateway`` reports which)."""
    max_body: Annotated[int, Field(ge=1)] = DEFAULT_MAX_BODY
    """Bytes a request body may have (more: 413)."""
    connect_timeout: Annotated[float, Field(gt=0)] = 5.0
    """Seconds to connect to the upstream (then 504)."""
    read_timeout: Annotated[float, Field(gt=0)] = 120.0
    """Seconds the upstream may go silent: before its reply starts (then 504) and between
    the chunks of a stream."""
    upstream_key_env: str | None = None
    """An environment variable holding the upstream's API key, sent as its bearer token."""
    health_path: str = "/v1/models"
    """What ``GET /healthz`` asks the upstream (any answer below 500 is healthy)."""
    refresh_interval: Annotated[float, Field(gt=0)] = 30.0
    """Seconds between reads of the price, the chain's time and every known channel."""
    refresh_cooldown: Annotated[float, Field(ge=0)] = 2.0
    """Seconds before one customer's channel may be read again on demand."""
    min_voucher_life: Annotated[int, Field(ge=0)] = 3_600
    """Seconds a voucher must stay redeemable: it is checked as the chain would check it
    this much later (its deadline, a signer's revocation, a channel's close), so the
    agent's scheduled redemption still pays it."""
    refresh_rate: Annotated[float, Field(gt=0)] = 10.0
    """On-demand channel reads per second at most, over all customers (burst: twice it)."""
    max_connections: Annotated[int, Field(ge=1)] = 200
    """Connections to the upstream at most (kept alive: half of them)."""

    @field_validator("upstream")
    @classmethod
    def _check_upstream(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except (httpx.InvalidURL, TypeError):
            raise ValueError(f"{value!r} is not a URL") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"{value!r} is not an http(s) URL with a host")
        if url.query or url.fragment:
            raise ValueError(f"{value!r}: give the base URL without a query or fragment")
        base = str(url).rstrip("/")
        return base[: -len("/v1")] if base.endswith("/v1") else base


# ------------------------------------------------------------- chain and metrics ----


@dataclass(frozen=True)
class _ChainView:
    """The price and the chain's time as last read (chain time goes on with the clock)."""

    price_per_1k: int
    next_price_per_1k: int
    epoch_end: int
    """When the next epoch (and ``next_price_per_1k``) starts."""
    block_time: int
    read_at: float
    """``time.monotonic()`` when ``block_time`` was read."""

    def get_now(self) -> int:
        """The chain's time now, estimated."""
        return self.block_time + int(time.monotonic() - self.read_at)

    def get_price(self, now: int) -> int:
        """The price per 1,000 requests at chain time ``now``."""
        return self.next_price_per_1k if now >= self.epoch_end else self.price_per_1k


def _fetch_view(suite: Suite, node_id: int, floor: int = 0) -> _ChainView:
    node = suite.fetch_node(node_id)
    epoch = int(suite.registry.call("current_epoch"))
    end = int(suite.registry.call("epoch_start", epoch + 1))
    block_time = fetch_chain_time(suite)
    return _ChainView(
        price_per_1k=node.price_per_1k,
        next_price_per_1k=node.next_price_per_1k,
        epoch_end=end,
        block_time=max(block_time, floor),  # never backwards (no block mined since)
        read_at=time.monotonic(),
    )


class GatewayMetrics:
    """The gateway's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "edgeshare_gateway_requests",
            "HTTP requests answered, by route and status.",
            ["route", "status"],
            registry=r,
        )
        self.served = Counter(
            "edgeshare_gateway_served",
            "Paid requests the upstream answered with 2xx (inferences).",
            ["route"],
            registry=r,
        )
        self.duration = Histogram(
            "edgeshare_gateway_request_duration_seconds",
            "Seconds from request to the end of the reply, of served requests.",
            ["route"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.paid = Counter(
            "edgeshare_gateway_paid_base_units",
            "Stablecoin base units charged to channels for requests the upstream answered.",
            registry=r,
        )
        self.refusals = Counter(
            "edgeshare_gateway_payment_refusals",
            "Requests refused with 402, by kind.",
            ["kind"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "edgeshare_gateway_upstream_errors",
            "Upstream failures: connect, timeout, status_5xx, broken_stream.",
            ["kind"],
            registry=r,
        )
        self.refreshes = Counter(
            "edgeshare_gateway_chain_refreshes",
            "Chain reads: periodic or on demand (customer), ok, error or limited.",
            ["kind", "result"],
            registry=r,
        )
        self.price = Gauge(
            "edgeshare_gateway_price_per_1k",
            "The node's price per 1,000 requests now (base units).",
            registry=r,
        )
        self.channels = Gauge(
            "edgeshare_gateway_channels", "Channel generations with use.", registry=r
        )
        for route in PAID_ROUTES:
            # exposed from the start at 0: a scrape before the first request reads 0
            # served, not a missing series (the agent warns about a missing counter)
            self.served.labels(route=route)
            self.duration.labels(route=route)


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "type": code, "message": message, **extra}}, status
    )


def _log(level: int, what: str, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, "%s %s", what, " ".join(f"{k}={v}" for k, v in fields.items()))


@dataclass(frozen=True, slots=True)
class _Charge:
    """What a request was charged: nothing (a free node) or one unit of a channel."""

    customer: str = ""
    generation: int = 0
    price_k: int = 0
    increment: int = 0
    """Base units this request added to the channel's due."""


_FREE = _Charge()


class _Relay:
    """Streams an upstream reply to the client and finishes it exactly once."""

    def __init__(self, response: httpx.Response, finish: Callable[[bool], None]) -> None:
        self.response = response
        self._finish = finish
        self._done = False

    async def stream(self) -> AsyncIterator[bytes]:
        """The upstream's bytes as they come (a break ends the stream: the status is sent)."""
        broken = False
        try:
            async for chunk in self.response.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            broken = True
            _log(logging.WARNING, "upstream_stream_broken", error=type(exc).__name__)
        finally:
            await self.close(broken)

    async def close(self, broken: bool = False) -> None:
        """Close the upstream reply (even when cancelled: the client went away) and finish."""
        if self._done:
            return
        self._done = True
        with anyio.CancelScope(shield=True):
            await self.response.aclose()
        self._finish(broken)


# ------------------------------------------------------------------- the gateway ----


class Gateway:
    """One node's gateway: the payment check, the store, the proxy and the metrics.

    Build it (which reads the chain: the node, the channels' domain, the known channels)
    with ``build_app``; ``app.state.gateway`` is this object.
    """

    def __init__(
        self,
        config: GatewayConfig,
        suite: Suite,
        store: VoucherStore | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.suite = suite
        self.node_id = config.node_id
        self._upstream_key: bytes | None = None
        if config.upstream_key_env:
            key = (read_secret_env(config.upstream_key_env) or "").strip()
            if not key or not key.isascii() or not key.isprintable():
                raise InputError(
                    f"the upstream key variable {config.upstream_key_env} is not set "
                    "(or holds more than printable ASCII)"
                )
            self._upstream_key = b"Bearer " + key.encode("ascii")
        self.view = _fetch_view(suite, self.node_id)  # NodeNotFound for an unknown node
        self.domain: Eip712Domain = fetch_channels_domain(suite)
        self.store = store = store if store is not None else VoucherStore(config.db_path)
        store.bind(self.domain.chain_id, self.domain.verifying_contract)
        self.usage = store.load_channels(self.node_id)
        known = sorted({customer for customer, _ in self.usage})
        self.checker = VoucherChecker.load(suite, self.node_id, known)
        self.metrics = GatewayMetrics()
        self.metrics.price.set(self.view.price_per_1k)
        self.metrics.channels.set(len(self.usage))
        self._given_transport = transport
        self._pool: httpx.AsyncBaseTransport | None = None
        self._timeout = httpx.Timeout(
            connect=config.connect_timeout,
            read=config.read_timeout,
            write=config.read_timeout,
            pool=config.connect_timeout,
        ).as_dict()
        self._executor: ThreadPoolExecutor | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._last_refresh: dict[str, float] = {}
        self._tokens = 2 * config.refresh_rate
        self._tokens_at = time.monotonic()
        self._refreshed_at = time.monotonic()
        routes = [Route(p, self._paid, methods=["POST"]) for p in PAID_ROUTES]
        routes += [
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/metrics", self._metrics, methods=["GET"]),
            Route("/healthz", self._healthz, methods=["GET"]),
        ]
        self.app = Starlette(
            routes=routes,
            lifespan=self._lifespan,
            exception_handlers={HTTPException: self._http_error, Exception: self._crash},
        )
        self.app.state.gateway = self
        _log(
            logging.INFO,
            "gateway_ready",
            node=self.node_id,
            upstream=config.upstream,
            price_per_1k=self.view.price_per_1k,
            channels=len(self.usage),
            db=store.path,
        )

    # ---- lifespan and background reads

    @asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        # httpx's connection pool without its client layer (no redirects, cookies, auth or
        # default headers: what the client sent goes upstream as it is), which saves a
        # fifth of the proxy's time
        limits = httpx.Limits(
            max_connections=self.config.max_connections,
            max_keepalive_connections=max(1, self.config.max_connections // 2),
        )
        self._pool = self._given_transport or httpx.AsyncHTTPTransport(
            limits=limits, trust_env=False
        )
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"gateway-{self.node_id}-chain")
        task = asyncio.create_task(self._refresh_loop())
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await self._pool.aclose()
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def _refresh_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.config.refresh_interval)
            customers = self._known_customers()
            try:
                assert self._executor is not None
                view = await loop.run_in_executor(self._executor, self.refresh, customers)
            except Exception as exc:  # the chain is down: serve on the cached state
                self.metrics.refreshes.labels("periodic", "error").inc()
                _log(logging.WARNING, "chain_refresh_failed", error=f"{type(exc).__name__}:{exc}")
                continue
            self.view = view
            self._refreshed_at = time.monotonic()
            self.metrics.refreshes.labels("periodic", "ok").inc()
            self.metrics.price.set(view.get_price(view.get_now()))
            self.metrics.channels.set(len(self.usage))
            self._forget_strangers()

    def _known_customers(self) -> list[tuple[str, list[str]]]:
        used = {customer for customer, _ in self.usage}
        found = []
        for key, cached in list(self.checker.channels.items()):
            customer = "0x" + key.hex()
            if cached.deposited or customer in used:
                found.append((customer, ["0x" + s.hex() for s in cached.signers]))
        return found

    def _forget_strangers(self) -> None:
        # addresses without a deposit (a flood of made-up customers) are read again on demand
        used = {customer for customer, _ in self.usage}
        for key, cached in list(self.checker.channels.items()):
            if not cached.deposited and "0x" + key.hex() not in used:
                self.checker.channels.pop(key, None)
        for customer, lock in list(self._locks.items()):
            known = bytes.fromhex(customer[2:]) in self.checker.channels
            if not lock.locked() and not known and customer not in used:
                self._locks.pop(customer, None)
        cutoff = time.monotonic() - self.config.refresh_cooldown
        for customer, at in list(self._last_refresh.items()):
            if at < cutoff:
                self._last_refresh.pop(customer, None)

    def refresh(self, customers: Iterable[tuple[str, list[str]]]) -> _ChainView:
        """Read the price, the chain's time and ``customers``' channels (with their known
        app signers) again; blocking: the gateway runs it in its chain thread."""
        view = _fetch_view(self.suite, self.node_id, self.view.get_now())
        plain = [customer for customer, signers in customers if not signers]
        if plain:
            self.checker.refresh(self.suite, plain)
        for customer, signers in customers:
            if signers:
                self.checker.refresh(self.suite, [customer], signers)
        return view

    def _refresh_customer(self, voucher: VoucherFields) -> None:
        signer = self._recover(voucher)
        signers = [signer] if signer and signer != voucher.customer else []
        self.checker.refresh(self.suite, [voucher.customer], signers)

    def _may_refresh(self, customer: str) -> bool:
        now = time.monotonic()
        last = self._last_refresh.get(customer)
        if last is not None and now - last < self.config.refresh_cooldown:
            return False
        rate = self.config.refresh_rate
        self._tokens = min(2 * rate, self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        self._last_refresh[customer] = now
        return True

    def _recover(self, v: VoucherFields) -> str | None:
        """Who signed ``v`` (lower-case hex), or None for a signature that recovers nothing."""
        digest = get_voucher_digest(v.get_voucher(), self.domain, self.checker.separator)
        try:
            return recover_digest(digest, v.signature).lower()
        except InputError:
            return None

    # ---- payment

    def _find_voucher(self, request: Request) -> tuple[str | None, str]:
        value = request.headers.get(VOUCHER_HEADER)
        if value is not None:
            return value, ""
        auth = request.headers.get("authorization")
        if auth is None:
            return None, ""
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token.startswith(VOUCHER_PREFIX):
            return token, ""
        return None, " (the Authorization header holds no EdgeShare voucher)"

    async def _charge(self, request: Request) -> _Charge | Response:
        """Check the request's voucher and charge its channel one unit, or say why not."""
        view = self.view
        price_k = view.get_price(view.get_now())
        if price_k == 0:
            return _FREE
        value, note = self._find_voucher(request)
        if value is None:
            return self._refuse(
                "missing_voucher",
                None,
                f"no voucher{note}",
                "send one in the X-EdgeShare-Voucher header (or as the Authorization "
                "bearer), encoded by edgeshare.gateway.encode_voucher_header",
                price_k,
            )
        try:
            voucher = parse_voucher_header(value)
        except VoucherHeaderError as exc:
            return self._refuse(
                "malformed_voucher", None, str(exc), "encode it with encode_voucher_header", price_k
            )
        lock = self._locks.get(voucher.customer)
        if lock is None:
            lock = self._locks[voucher.customer] = asyncio.Lock()
        async with lock:
            return await self._charge_locked(voucher)

    def _check(self, v: VoucherFields, now: int) -> int:
        at = now + self.config.min_voucher_life  # when the agent may redeem it at the latest
        verdict = self.checker.check_fields(
            v.node_id, v.customer, v.generation, v.cumulative, v.deadline, v.signature, at
        )
        return verdict.reason

    def _is_refreshable(self, v: VoucherFields, reason: int) -> bool:
        if reason in (UNKNOWN_TO_CACHE, SKIP_NOT_COVERED, SKIP_CLOSED):
            return True  # a new customer or app key; a top-up; a deposit cancels a close
        if reason == SKIP_OLD_GENERATION:
            cached = self.checker.channels.get(bytes.fromhex(v.customer[2:]))
            return cached is not None and v.generation > cached.generation
        return False

    async def _charge_locked(self, v: VoucherFields) -> _Charge | Response:
        now = self.view.get_now()
        reason = self._check(v, now)
        limited = False
        if reason and self._is_refreshable(v, reason):
            if self._executor is not None and self._may_refresh(v.customer):
                loop = asyncio.get_running_loop()
                try:
                    await loop.run_in_executor(self._executor, self._refresh_customer, v)
                    self.metrics.refreshes.labels("customer", "ok").inc()
                except Exception as exc:
                    self.metrics.refreshes.labels("customer", "error").inc()
                    _log(
                        logging.WARNING,
                        "channel_read_failed",
                        customer=v.customer,
                        error=f"{type(exc).__name__}:{exc}",
                    )
                now = self.view.get_now()
                reason = self._check(v, now)
            else:
                limited = True
                self.metrics.refreshes.labels("customer", "limited").inc()
        view = self.view
        price_k = view.get_price(now)
        if reason:
            return self._refuse_voucher(v, reason, now, price_k, limited)
        key = (v.customer, v.generation)
        use = self.usage.get(key) or ChannelUse()
        due = get_due(use.owed_k + price_k)
        if v.cumulative < due:
            return self._refuse_voucher(v, BELOW_PRICE, now, price_k, False)
        if v.cumulative > use.cumulative:
            signature = "0x" + v.signature.hex()
            new = ChannelUse(
                use.units + 1, use.owed_k + price_k, v.cumulative, v.deadline, signature
            )
        else:
            new = replace(use, units=use.units + 1, owed_k=use.owed_k + price_k)
        try:
            self.store.record(self.node_id, v.customer, v.generation, new)
        except SQLAlchemyError as exc:
            _log(logging.ERROR, "store_failed", error=f"{type(exc).__name__}:{exc}")
            return _error(503, "store_unavailable", "the gateway cannot record vouchers now")
        self.usage[key] = new
        self.checker.accept(v.customer, v.cumulative)
        return _Charge(v.customer, v.generation, price_k, due - use.due)

    async def _refund(self, charge: _Charge) -> None:
        """Take back a charge the upstream did not serve (no reply, or not a 2xx)."""
        if charge is _FREE:
            return
        async with self._locks.setdefault(charge.customer, asyncio.Lock()):
            key = (charge.customer, charge.generation)
            use = self.usage[key]
            new = replace(use, units=use.units - 1, owed_k=use.owed_k - charge.price_k)
            try:
                self.store.record(self.node_id, charge.customer, charge.generation, new)
            except SQLAlchemyError as exc:  # the unit stays charged: the node's gain
                _log(logging.ERROR, "store_failed", error=f"{type(exc).__name__}:{exc}")
                return
            self.usage[key] = new

    def _refuse_voucher(
        self, v: VoucherFields, reason: int, now: int, price_k: int, limited: bool
    ) -> JSONResponse:
        key = bytes.fromhex(v.customer[2:])
        cached = self.checker.channels.get(key)
        authentic: bool | None = reason == BELOW_PRICE or None
        if reason in _SIGNATURE_UNCHECKED or reason == UNKNOWN_TO_CACHE:
            authentic = self._is_authentic(v, now)
            if authentic is False:
                reason = SKIP_BAD_SIGNATURE
        elif reason == SKIP_BAD_SIGNATURE:
            authentic = False
        generation = cached.generation if cached else v.generation
        # only the channel's signer learns its use (the deposit and redemptions are public)
        amount_due: int | None = None
        use = self.usage.get((v.customer, generation)) or ChannelUse()
        if authentic and reason != SKIP_NOT_NODE:
            amount_due = get_due(use.owed_k + price_k)
            if cached is not None and reason != BELOW_PRICE:
                amount_due = max(amount_due, cached.redeemed + 1)  # a voucher must pay anew
        words = SKIP_REASONS[reason]
        if reason == SKIP_EXPIRED and v.deadline > now:
            life = self.config.min_voucher_life
            words = f"expires in {v.deadline - now} s, before the {life} s a voucher must last"
        if reason == BELOW_PRICE:
            words = (
                f"{words}: it covers {v.cumulative} base units of the {amount_due} the channel "
                "owes with this request"
            )
        hint, retry = self._hint(v, reason, generation, amount_due, limited)
        return self._refuse(
            _KINDS[reason],
            v,
            f"voucher refused: {words}",
            hint,
            price_k,
            reason_code=reason,
            generation=generation,
            amount_due=amount_due,
            redeemed=cached.redeemed if cached else None,
            deposited=cached.deposited if cached else None,
            retry_after=retry,
            use=use,
        )

    def _hint(
        self, v: VoucherFields, reason: int, generation: int, due: int | None, limited: bool
    ) -> tuple[str, int | None]:
        at_least = f"sign a voucher for at least {due} base units" if due else "sign a new voucher"
        if reason == SKIP_NOT_NODE:
            return (
                f"this gateway serves node {self.node_id}, the voucher is for node {v.node_id}",
                None,
            )
        if reason == SKIP_EXPIRED:
            life = self.config.min_voucher_life
            return f"{at_least} with a deadline at least {life} s from now", None
        if reason == SKIP_OLD_GENERATION:
            return f"name generation {generation}; {at_least}", None
        if reason == SKIP_CLOSED:
            return "withdraw what is left and deposit again to open a new generation", None
        if reason == SKIP_NOT_COVERED:
            tail = " (a deposit shows here within seconds)" if limited else ""
            return f"deposit more into the channel, then {at_least}{tail}", None
        if reason == SKIP_BAD_SIGNATURE:
            return (
                "sign with the customer's key or an app key it authorised "
                "(`edgeshare channel authorize`)",
                None,
            )
        if reason == UNKNOWN_TO_CACHE:
            retry = max(1, round(self.config.refresh_cooldown))
            return (
                f"the gateway reads new channels and app keys on demand: retry in {retry} s",
                retry,
            )
        return at_least, None

    def _is_authentic(self, v: VoucherFields, now: int) -> bool | None:
        """True when the customer or a valid app key of it signed ``v``; None: not known."""
        signer = self._recover(v)
        if signer is None:
            return False
        if signer == v.customer:
            return True
        cached = self.checker.channels.get(bytes.fromhex(v.customer[2:]))
        until = cached.signers.get(bytes.fromhex(signer[2:])) if cached else None
        return None if until is None else until > now

    def _refuse(
        self,
        kind: str,
        v: VoucherFields | None,
        reason: str,
        hint: str,
        price_k: int,
        *,
        reason_code: int | None = None,
        generation: int = 0,
        amount_due: int | None = None,
        redeemed: int | None = None,
        deposited: int | None = None,
        retry_after: int | None = None,
        use: ChannelUse | None = None,
    ) -> JSONResponse:
        self.metrics.refusals.labels(kind).inc()
        owed = use.owed_k if use else 0
        channel = None
        if v is not None:
            channel = {
                "customer": to_checksum(bytes.fromhex(v.customer[2:])),
                "generation": generation,
            }
        body = {
            "error": {
                "code": "payment_required",
                "type": "payment_required",
                "kind": kind,
                "message": f"{reason}; {hint}",
                "reason": reason,
                "reason_code": reason_code,
                "node_id": self.node_id,
                "channel": channel,
                "amount_due": amount_due,
                "price_per_request": get_due(owed + price_k) - get_due(owed),
                "price_per_1k": price_k,
                "redeemed": redeemed,
                "deposited": deposited,
            }
        }
        _log(
            logging.INFO,
            "payment_refused",
            kind=kind,
            customer=v.customer if v else "-",
            due=amount_due,
        )
        headers = {"retry-after": str(retry_after)} if retry_after else None
        return JSONResponse(body, 402, headers=headers)

    # ---- requests

    def _count(self, route: str, status: int) -> None:
        self.metrics.requests.labels(route, str(status)).inc()

    async def _read_body(self, request: Request) -> bytes | Response:
        limit = self.config.max_body
        declared = request.headers.get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()) or len(declared) > 18:
                return _error(400, "bad_request", "Content-Length must be a number of bytes")
            if int(declared) > limit:
                return _error(413, "body_too_large", f"the body may have {limit} bytes at most")
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    return _error(413, "body_too_large", f"the body may have {limit} bytes at most")
                chunks.append(chunk)
        except ClientDisconnect:
            return _error(400, "bad_request", "the client went away while sending the body")
        return b"".join(chunks)

    async def _paid(self, request: Request) -> Response:
        started = time.perf_counter()
        route = str(request.scope["path"])
        body = await self._read_body(request)
        if isinstance(body, Response):
            self._count(route, body.status_code)
            return body
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            parsed = None
        if not isinstance(parsed, dict):
            self._count(route, 400)
            return _error(400, "bad_request", "the body must be a JSON object")
        charge = await self._charge(request)
        if isinstance(charge, Response):
            self._count(route, charge.status_code)
            return charge
        response = await self._proxy(request, route, body, charge, started)
        self._count(route, response.status_code)
        return response

    def _upstream_headers(self, request: Request) -> list[tuple[bytes, bytes]]:
        raw: list[tuple[bytes, bytes]] = request.scope["headers"]
        drop = set(_NOT_UPSTREAM)
        for name, value in raw:
            if name == b"connection":  # and what it names as hop-by-hop
                drop.update(t.strip().lower() for t in value.split(b","))
        headers = [(k, v) for k, v in raw if k not in drop and not k.startswith(b"x-edgeshare-")]
        if self._upstream_key is not None:
            headers.append((b"authorization", self._upstream_key))
        return headers

    async def _proxy(
        self, request: Request, route: str, body: bytes | None, charge: _Charge, started: float
    ) -> Response:
        query = request.scope.get("query_string", b"")
        url = self.config.upstream + route + ("?" + query.decode("latin-1") if query else "")
        try:
            reply = await self._send(request.method, url, self._upstream_headers(request), body)
        except httpx.TimeoutException:
            await self._refund(charge)
            self.metrics.upstream_errors.labels("timeout").inc()
            _log(logging.WARNING, "upstream_timeout", route=route)
            return _error(504, "upstream_timeout", "the inference server did not answer in time")
        except httpx.HTTPError as exc:
            await self._refund(charge)
            self.metrics.upstream_errors.labels("connect").inc()
            _log(logging.WARNING, "upstream_unavailable", route=route, error=type(exc).__name__)
            return _error(502, "upstream_unavailable", "the inference server cannot be reached")
        status = reply.status_code
        headers = [
            (k, v)
            for k, v in ((k.lower(), v) for k, v in reply.headers.raw)
            if k not in _NOT_DOWNSTREAM
        ]
        kind = reply.headers.get("content-type", "")
        if "text/event-stream" in kind or "content-length" not in reply.headers:
            served = await self._settle(route, body is not None, status, charge)

            def finish(broken: bool) -> None:
                if broken:
                    self.metrics.upstream_errors.labels("broken_stream").inc()
                if served:
                    self.metrics.duration.labels(route).observe(time.perf_counter() - started)

            relay = _Relay(reply, finish)
            streamed = StreamingResponse(
                relay.stream(), status_code=status, background=BackgroundTask(relay.close)
            )
            streamed.raw_headers = headers
            return streamed
        try:
            content = b"".join([chunk async for chunk in reply.aiter_raw()])
        except httpx.HTTPError:
            await self._refund(charge)
            self.metrics.upstream_errors.labels("broken_stream").inc()
            return _error(502, "upstream_unavailable", "the inference server broke off its reply")
        finally:
            await reply.aclose()
        if await self._settle(route, body is not None, status, charge):
            self.metrics.duration.labels(route).observe(time.perf_counter() - started)
        whole = Response(content, status_code=status)
        whole.raw_headers = [*headers, (b"content-length", str(len(content)).encode())]
        return whole

    async def _send(
        self,
        method: str,
        url: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes | None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send a request upstream; the reply's body is left to stream (close it)."""
        assert self._pool is not None, "the gateway is served through its lifespan"
        limits = self._timeout if timeout is None else httpx.Timeout(timeout).as_dict()
        upstream = httpx.Request(
            method, url, headers=headers, content=body, extensions={"timeout": limits}
        )
        return await self._pool.handle_async_request(upstream)

    async def _settle(self, route: str, paid: bool, status: int, charge: _Charge) -> bool:
        """Keep the charge of a served request (a paid route, a 2xx), else refund it:
        channels pay for the inferences the node attests. Returns whether it was served."""
        served = paid and 200 <= status < 300
        if served:
            self.metrics.served.labels(route).inc()
            self.metrics.paid.inc(charge.increment)
            return True
        await self._refund(charge)
        if status >= 500:
            self.metrics.upstream_errors.labels("status_5xx").inc()
        return False

    async def _models(self, request: Request) -> Response:
        response = await self._proxy(request, "/v1/models", None, _FREE, time.perf_counter())
        self._count("/v1/models", response.status_code)
        return response

    async def _metrics(self, _request: Request) -> Response:
        self._count("/metrics", 200)
        data = generate_latest(self.metrics.registry)
        return Response(data, headers={"content-type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _request: Request) -> Response:
        healthy, error = True, ""
        try:
            url = self.config.upstream + self.config.health_path
            auth = [(b"authorization", self._upstream_key)] if self._upstream_key else []
            reply = await self._send("GET", url, auth, None, min(self.config.read_timeout, 5.0))
            await reply.aclose()
            healthy = reply.status_code < 500
            error = "" if healthy else f"status {reply.status_code}"
        except httpx.HTTPError as exc:
            healthy, error = False, type(exc).__name__
        view = self.view
        now = view.get_now()
        body = {
            "status": "ok" if healthy else "upstream_unavailable",
            "node_id": self.node_id,
            "upstream": "ok" if healthy else error,
            "price_per_1k": view.get_price(now),
            "chain_time": now,
            "chain_read_seconds_ago": round(time.monotonic() - self._refreshed_at, 1),
            "channels": len(self.usage),
        }
        status = 200 if healthy else 503
        self._count("/healthz", status)
        return JSONResponse(body, status)

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        path = str(request.scope.get("path", ""))
        route = path if path in PAID_ROUTES or path in FREE_ROUTES else "other"
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        response = _error(exc.status_code, code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        self._count(route, exc.status_code)
        return response

    async def _crash(self, request: Request, exc: Exception) -> Response:
        logger.error("internal error on %s", request.scope.get("path"), exc_info=exc)
        return _error(500, "internal", "the gateway failed on this request")


def build_app(
    config: GatewayConfig,
    suite: Suite,
    *,
    store: VoucherStore | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """The gateway's ASGI app (``app.state.gateway`` is its ``Gateway``), serve it with
    uvicorn in one worker. Reads the chain now: the node, its price, the channels' domain
    and the channels the store knows.

    Args:
        config: How to run.
        suite: The deployed suite (its RPC is used from one thread at a time).
        store: The voucher store (default: ``config.db_path``).
        transport: An httpx transport for the upstream (tests).

    Raises:
        NodeNotFound: no such node.
        InputError: the store belongs to another chain, or the upstream key variable is unset.
    """
    return Gateway(config, suite, store, transport=transport).app


def bind_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket on ``host``:``port`` (0: a free port).

    Raises:
        InputError: the address is taken or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP (not 0): asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it Nagle and delayed ACKs add 40 ms to every reply
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # connections wait in the backlog until uvicorn serves
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def get_fast_server_options() -> tuple[str, str]:
    """uvicorn's ``loop`` and ``http``: uvloop's event loop and the httptools parser
    (dependencies: they keep the gateway's added latency within its 2 ms budget at p50);
    without them (uvloop has no Windows build) uvicorn's pure-Python ones."""
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    try:
        import httptools  # noqa: F401

        http = "httptools"
    except ImportError:
        http = "h11"
    return loop, http


def run_uvicorn(
    app: Starlette,
    sock: socket.socket,
    host: str,
    *,
    graceful_seconds: int,
    on_listen: Callable[[str], None] | None = None,
    trailing_slash: bool = False,
) -> None:
    """Serve ``app`` on the bound ``sock`` with uvicorn (the fast loop and parser, no access
    log, no proxy headers, no server header) until SIGINT or SIGTERM; ``on_listen`` gets
    the URL first (``http://host:port`` of the ``host`` it was bound for, with a ``/`` when
    ``trailing_slash``)."""
    host = f"[{host}]" if ":" in host else host
    if on_listen is not None:
        on_listen(f"http://{host}:{int(sock.getsockname()[1])}" + ("/" if trailing_slash else ""))
    loop, http = get_fast_server_options()
    config = uvicorn.Config(
        app, log_config=None, access_log=False, proxy_headers=False, lifespan="on",
        server_header=False, timeout_graceful_shutdown=graceful_seconds, loop=loop, http=http,
    )  # fmt: skip
    uvicorn.Server(config).run(sockets=[sock])


def serve_gateway(
    config: GatewayConfig,
    suite: Suite,
    *,
    on_listen: Callable[[str], None] | None = None,
) -> None:
    """Build the gateway and serve it with uvicorn until SIGINT or SIGTERM.

    ``on_listen`` is called with the URL once the port is bound (before serving).

    Raises:
        NodeNotFound, InputError: as ``build_app``; or the port cannot be bound.
    """
    sock = bind_socket(config.host, config.port)
    try:
        app = build_app(config, suite)
        try:
            run_uvicorn(app, sock, config.host, graceful_seconds=10, on_listen=on_listen)
        finally:
            app.state.gateway.store.close()
    finally:
        sock.close()
