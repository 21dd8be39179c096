"""The web API (Starlette on uvicorn): routes, parameter checks, JSON errors, security
headers, the static front end, and the background indexer. docs/WEB.md is its reference.

Every route reads through the library the CLI uses (``edgeshare.market``,
``edgeshare.status``, ``edgeshare.offerings``, ``edgeshare.reports``, ...) and builds its
JSON with ``edgeshare.web.views``, so a page equals the command's ``--json``. Routes are
plain functions that Starlette runs in its thread pool; the suite's JSON-RPC client is used
by one of them at a time (``WebState.lock``). The background indexer has its own
connection to the chain when it is given the RPC URL.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from types import FrameType
from typing import Any

import requests
from sqlalchemy import Connection, Engine, func, select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from web3 import Web3

from edgeshare import indexer as idx
from edgeshare.artifacts import load_artifact
from edgeshare.attestation import Eip712Domain, build_eip712_message
from edgeshare.baskets import BasketView, fetch_basket_holdings, fetch_baskets
from edgeshare.chain import connect, is_local_chain_id
from edgeshare.errors import EdgeShareError, InputError, NodeNotFound
from edgeshare.gateway import bind_socket, run_uvicorn
from edgeshare.market import (
    MAX_CLAIM_TOKENS,
    Holding,
    build_board,
    fetch_board_metadata,
    fetch_nodes_received,
    fetch_portfolio,
)
from edgeshare.models import parse_address
from edgeshare.offerings import (
    NotAnOffering,
    OfferingView,
    fetch_commitments,
    fetch_offering,
    fetch_offerings,
)
from edgeshare.orders import ORDER_FIELDS, SHARE_UNIT, fetch_market_domain, fetch_token_labels
from edgeshare.reports import SECONDS_PER_YEAR, Report, build_report
from edgeshare.roles import fetch_owed
from edgeshare.status import (
    fetch_clock,
    fetch_customer_channels,
    fetch_node_views,
    fetch_operated,
)
from edgeshare.suite import Suite
from edgeshare.units import SHARE_DECIMALS, Token
from edgeshare.web import MAX_ORDER_BODY, WebConfig
from edgeshare.web.book import (
    BookEntry,
    OrderRefused,
    build_book_row_json,
    check_submission,
    create_book,
    fetch_book,
    parse_submission,
    store_order,
    web_orders,
)
from edgeshare.web.views import (
    build_board_row_json,
    build_offerings_json,
    build_open_order_json,
    build_portfolio_json,
    build_status_json,
)

log = logging.getLogger("edgeshare.web")

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
BOARD_LIMIT = 1_000
"""The board's largest page (and its default)."""
PAGE_LIMIT = 200
"""Every other list's largest page."""
DEFAULT_PAGE = 50
MAX_EPOCHS = 200
ABI_NAMES = {
    "NodeRegistry": "NodeRegistry", "RevenueRouter": "RevenueRouter",
    "PaymentChannels": "PaymentChannels", "PortfolioClaimer": "PortfolioClaimer",
    "ShareMarket": "ShareMarket", "OfferingFactory": "OfferingFactory",
    "ShareOffering": "ShareOffering", "NodeShare": "NodeShare", "Basket": "Basket",
    "BasketFactory": "BasketFactory", "Stablecoin": "MockStablecoin",
}  # fmt: skip
"""The ABIs the front end gets (its name: the artifact's)."""
BOARD_SORTS = ("rank", "price", "latency", "uptime", "node", "capacity")
OFFERING_STATES = ("PENDING", "OPEN", "SUCCEEDED", "FAILED")
CACHE_SIZE = 256
"""Response bodies kept (see ``WebState.get_version``)."""
CACHE_BYTES = 32 * 1024 * 1024
"""And at most this many bytes of them (a 1,000-row board is about 0.6 MB)."""
_MAX_DIGITS = 78
"""The longest integer text a parameter may have (a uint256)."""


class ApiError(Exception):
    """A request the API refuses: the HTTP status and the error body's fields."""

    def __init__(self, status: int, code: str, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.parameter = parameter


def build_error(status: int, code: str, message: str, parameter: str | None = None) -> Response:
    """The one error shape: ``{"error": {"code", "parameter", "message"}}``."""
    body = {"error": {"code": code, "parameter": parameter, "message": message}}
    return JSONResponse(body, status_code=status)


# ------------------------------------------------------------------- parameters


class Query:
    """A request's query parameters, checked: each known to the route, given once."""

    def __init__(self, request: Request, allowed: Sequence[str]) -> None:
        self.values: dict[str, str] = {}
        for name, value in request.query_params.multi_items():
            if name not in allowed:
                known = ", ".join(allowed) if allowed else "none"
                raise ApiError(400, "bad_parameter", f"unknown parameter {name!r} (this "
                               f"endpoint takes: {known})", name)  # fmt: skip
            if name in self.values:
                raise ApiError(400, "bad_parameter", f"parameter {name!r} is given twice", name)
            self.values[name] = value

    def get_int(self, name: str, default: int | None, low: int, high: int | None) -> int | None:
        """An integer from ``low`` to ``high`` (None: no upper bound), or ``default``."""
        text = self.values.get(name)
        if text is None:
            return default
        return parse_int(text, name, low, high)

    def get_address(self, name: str) -> str | None:
        """A checksummed address, or None when not given."""
        text = self.values.get(name)
        return None if text is None else parse_address_parameter(text, name)

    def get_choice(self, name: str, choices: Sequence[str], default: str | None) -> str | None:
        """One of ``choices`` (case-insensitive), or ``default``."""
        text = self.values.get(name)
        if text is None:
            return default
        for choice in choices:
            if text.lower() == choice.lower():
                return choice
        raise ApiError(400, "bad_parameter", f"{name} must be one of {', '.join(choices)}, not "
                       f"{text[:40]!r}", name)  # fmt: skip

    def get_text(self, name: str, max_length: int = 64) -> str | None:
        """A short text, or None when not given."""
        text = self.values.get(name)
        if text is not None and (not text or len(text) > max_length):
            raise ApiError(400, "bad_parameter", f"{name} must be 1 to {max_length} characters",
                           name)  # fmt: skip
        return text

    def get_page(self, default: int = DEFAULT_PAGE, high: int = PAGE_LIMIT) -> tuple[int, int]:
        """(limit, offset)."""
        limit = self.get_int("limit", default, 1, high)
        offset = self.get_int("offset", 0, 0, None)
        assert limit is not None and offset is not None
        return limit, offset


def parse_int(text: str, name: str, low: int, high: int | None) -> int:
    """``text`` as an integer from ``low`` to ``high``, or a 400 naming ``name``."""
    bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
    digits = text[1:] if text.startswith("-") else text
    if not (digits.isascii() and digits.isdigit()) or len(digits) > _MAX_DIGITS:
        raise ApiError(400, "bad_parameter", f"{name} must be an integer {bounds}, not "
                       f"{text[:40]!r}", name)  # fmt: skip
    value = int(text)
    if value < low or (high is not None and value > high):
        raise ApiError(400, "bad_parameter", f"{name} must be an integer {bounds}, not {value}",
                       name)  # fmt: skip
    return value


def parse_address_parameter(text: str, name: str) -> str:
    """A checksummed address, or a 400 naming ``name``."""
    try:
        return parse_address(text, name)
    except InputError as exc:
        raise ApiError(400, "bad_parameter", str(exc), name) from None


def page(rows: Sequence[Any], limit: int, offset: int) -> list[Any]:
    """``rows[offset:offset + limit]``."""
    return list(rows[offset : offset + limit])


# ------------------------------------------------------------------------ state


@dataclass
class SyncStatus:
    """What the background indexer last did."""

    last_block: int | None = None
    synced_at: int | None = None
    error: str | None = None
    runs: int = 0


@dataclass
class CacheStats:
    """How often a read found its body kept (``_cached``), per route (its function's name:
    a bounded set, unlike the paths)."""

    hits: dict[str, int] = field(default_factory=dict)
    misses: dict[str, int] = field(default_factory=dict)
    last_miss: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    """Per route, the version (``WebState.get_version``) of its last miss: what had moved."""

    def count(self, route: str, version: tuple[Any, ...], hit: bool) -> None:
        """Count one read of ``route`` at ``version``."""
        if hit:
            self.hits[route] = self.hits.get(route, 0) + 1
        else:
            self.misses[route] = self.misses.get(route, 0) + 1
            self.last_miss[route] = version


@dataclass
class WebState:
    """What every route shares: the suite, the index, the market's domain, the lock."""

    config: WebConfig
    suite: Suite
    engine: Engine
    domain: Eip712Domain
    coin: Token
    abis: dict[str, Any]
    static_dir: Path
    lock: threading.RLock = field(default_factory=threading.RLock)
    sync: SyncStatus = field(default_factory=SyncStatus)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    sync_suite: Suite | None = None
    """The background indexer's own connection (None: it shares ``suite`` under ``lock``)."""
    offerings: tuple[int, list[OfferingView]] | None = None
    """The offerings at a block (``get_offerings``)."""
    baskets: tuple[int, list[BasketView]] | None = None
    """The baskets at a block (``get_baskets``)."""
    cache: OrderedDict[tuple[Any, ...], bytes] = field(default_factory=OrderedDict)
    """Bodies of recent reads, by request and by what they were read from (``get_version``)."""
    stats: CacheStats = field(default_factory=CacheStats)

    def get_version(self) -> tuple[tuple[str, int, int, int], dict[str, Any]]:
        """What a read depends on: the chain's head (its hash: a reorganisation at the same
        height is another head), the index's last block and the book's size. A read
        repeated while none of them moved has the same body. With it, the head's header
        (the route reads as of that block)."""
        with self.chain() as suite:
            header = suite.rpc.call("eth_getBlockByNumber", ["latest", False])
        head = str(header["hash"])
        c = web_orders.c
        with self.db() as db:
            last = db.execute(
                select(idx.meta.c.value).where(idx.meta.c.key == "last_block")
            ).scalar()
            # the newest id too: a submission may delete the maker's expired orders, so the
            # count alone can stay the same (PostgreSQL never reuses an id; this process
            # also forgets what it kept when it stores one, ``forget_cached``)
            count, newest = db.execute(select(func.count(c.id), func.max(c.id))).one()
        version = head, int(last) if last is not None else -1, int(count or 0), int(newest or 0)
        return version, header

    def get_cached(self, route: str, key: tuple[Any, ...]) -> bytes | None:
        """A body read before for ``key`` (None: none kept); counted for ``route`` (a
        key's version is its last four items)."""
        with self.lock:
            body = self.cache.get(key)
            if body is not None:
                self.cache.move_to_end(key)
            self.stats.count(route, key[-4:], body is not None)
            return body

    def get_cache_json(self) -> dict[str, Any]:
        """The kept bodies and, per route, reads that found theirs kept or not (``health``)."""
        with self.lock:
            stats = self.stats
            return {
                "bodies": len(self.cache),
                "bytes": sum(len(b) for b in self.cache.values()),
                "routes": {r: {"hits": stats.hits.get(r, 0), "misses": stats.misses.get(r, 0),
                               "last_miss": _get_version_json(stats.last_miss.get(r))}
                           for r in sorted({*stats.hits, *stats.misses})},
            }  # fmt: skip

    def put_cached(self, key: tuple[Any, ...], body: bytes) -> None:
        """Keep ``body`` for ``key`` (the oldest go past ``CACHE_SIZE`` bodies or
        ``CACHE_BYTES`` in all)."""
        with self.lock:
            self.cache[key] = body
            size = sum(len(b) for b in self.cache.values())
            while len(self.cache) > CACHE_SIZE or (size > CACHE_BYTES and len(self.cache) > 1):
                size -= len(self.cache.popitem(last=False)[1])

    def get_offerings(self, suite: Suite, head: tuple[int, int]) -> list[OfferingView]:
        """Every offering as of ``head`` (a block's number and time), read once per block
        whoever asks (a portfolio reads every offering for its commitments)."""
        block = head[0]
        with self.lock:
            if self.offerings is None or self.offerings[0] != block:
                self.offerings = (block, fetch_offerings(suite, head=head))
            return self.offerings[1]

    def get_baskets(self, suite: Suite, block: int) -> list[BasketView]:
        """Every basket as of ``block``, read once per block whoever asks (a node's page
        shows the baskets it is in)."""
        with self.lock:
            if self.baskets is None or self.baskets[0] != block:
                self.baskets = (block, fetch_baskets(suite, block=block))
            return self.baskets[1]

    def forget_cached(self) -> None:
        """Drop every kept body (the book changed here)."""
        with self.lock:
            self.cache.clear()

    @contextmanager
    def chain(self) -> Iterator[Suite]:
        """The suite, for one route's reads (one route at a time)."""
        with self.lock:
            yield self.suite

    @contextmanager
    def db(self) -> Iterator[Connection]:
        """A connection to the index database."""
        with self.engine.connect() as conn:
            yield conn

    def sync_now(self) -> None:
        """Run the indexer once (what the background thread does every ``sync_every``)."""
        if self.sync_suite is not None:
            _, result = idx.sync_index(
                self.sync_suite, self.config.db_url, confirmations=self.config.confirmations
            )
        else:
            with self.lock:
                _, result = idx.sync_index(
                    self.suite, self.config.db_url, confirmations=self.config.confirmations
                )
        self.sync.last_block = result.to_block
        self.sync.synced_at = int(time.time())
        self.sync.error = None
        self.sync.runs += 1

    def run_sync(self) -> None:
        """The background thread: sync, then wait ``sync_every`` seconds, until stopped."""
        while not self.stop.is_set():
            try:
                self.sync_now()
            except Exception as exc:
                self.sync.error = str(exc)
                log.warning("index sync failed: %s", exc)
            self.stop.wait(self.config.sync_every)

    def start_sync(self) -> None:
        """Start the background indexer (unless ``config.sync`` is off)."""
        if not self.config.sync or self.thread is not None:
            return
        self.stop.clear()
        self.thread = threading.Thread(target=self.run_sync, name="edgeshare-web-sync", daemon=True)
        self.thread.start()

    def stop_sync(self) -> None:
        """Stop the background indexer and wait for it."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
            self.thread = None

    def get_index_json(self) -> dict[str, Any]:
        """How far the index is (``index`` of config and health)."""
        last = self.sync.last_block
        if last is None:
            with self.db() as db:
                found = db.execute(
                    select(idx.meta.c.value).where(idx.meta.c.key == "last_block")
                ).scalar()
            last = int(found) if found is not None else None
        return {"last_block": last, "synced_at": self.sync.synced_at, "syncing": self.config.sync,
                "error": self.sync.error}  # fmt: skip


def _get_version_json(version: tuple[Any, ...] | None) -> dict[str, Any] | None:
    """A cache version as JSON (``WebState.get_version``)."""
    if version is None:
        return None
    head, last, count, newest = version
    return {"head": head, "index_block": last, "orders": count, "newest_order": newest}


def get_static_dir() -> Path:
    """Where the built front end is (``edgeshare/web/static`` in the package)."""
    return Path(str(files("edgeshare.web") / "static"))


def _head(suite: Suite) -> int:
    return int(suite.rpc.call("eth_blockNumber", []), 16)


def _get_head(request: Request) -> dict[str, Any] | None:
    """The head's header the cache read for this request (``_cached``), if it did."""
    head: dict[str, Any] | None = getattr(request.state, "head", None)
    return head


# ---------------------------------------------------------------------- routes


def _state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


def get_config(request: Request) -> Response:
    """``GET /api/config``."""
    Query(request, [])
    state = _state(request)
    with state.chain() as suite:
        clock = fetch_clock(suite, _get_head(request))
        count = suite.fetch_node_count()
        tokens = suite.fetch_share_tokens(list(range(1, count + 1))) if count else []
    typed = build_eip712_message("Order", ORDER_FIELDS, state.domain, {})
    contracts = {k: v for k, v in suite.manifest.contracts.model_dump().items() if v}
    return JSONResponse({
        "block": clock.block, "chain_id": clock.chain_id,
        "stablecoin": {"address": str(suite.manifest.contracts.Stablecoin),
                       "symbol": state.coin.symbol, "decimals": state.coin.decimals},
        "share_decimals": SHARE_DECIMALS,
        "epoch": {"genesis": clock.genesis, "length": clock.epoch_length,
                  "current": clock.current_epoch, "ends_at": clock.epoch_ends_at},
        "chain_time": clock.chain_time, "challenge_period": clock.challenge_period,
        "unlock_period": clock.unlock_period, "paused": clock.paused,
        "contracts": contracts, "abis": state.abis,
        "share_tokens": {str(i + 1): Web3.to_checksum_address(t) for i, t in enumerate(tokens)},
        "share_token_of_node": "share_tokens[node_id], or NodeRegistry.share_token(node_id)",
        "market": {"domain": typed["domain"], "types": typed["types"],
                   "primaryType": "Order", "share_unit": str(SHARE_UNIT)},
        "max_claim_tokens": MAX_CLAIM_TOKENS, "max_order_body": MAX_ORDER_BODY,
        "index": state.get_index_json(),
    })  # fmt: skip


def _sort_key(sort: str) -> Callable[[dict[str, Any]], Any]:
    """The board's sort keys; rows without the value come last either way."""

    def value(row: dict[str, Any]) -> Any:
        if sort == "price":
            return int(row["price_per_1k"]["base_units"])
        if sort == "latency":
            return row["latency_ms"]
        if sort == "uptime":
            return row["uptime_bps"]
        if sort == "capacity":
            return row["capacity_rps"]
        return row["node_id"]

    return value


def _sort_rows(rows: list[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
    descending = sort.startswith("-")
    name = sort.lstrip("-")
    if name == "rank":
        return rows[::-1] if descending else rows
    value = _sort_key(name)
    known = [r for r in rows if value(r) is not None]
    missing = [r for r in rows if value(r) is None]
    known.sort(key=lambda r: (value(r), r["node_id"]), reverse=descending)
    return known + missing


def get_board(request: Request) -> Response:
    """``GET /api/board``."""
    q = Query(request, ["region", "max_price", "max_latency", "recent", "sort", "limit", "offset"])
    region = q.get_text("region")
    max_price = q.get_int("max_price", None, 0, 2**256 - 1)
    max_latency = q.get_int("max_latency", None, 0, 2**63 - 1)
    recent = q.get_int("recent", 12, 1, 100)
    sorts = [*BOARD_SORTS, *(f"-{s}" for s in BOARD_SORTS)]
    sort = q.get_choice("sort", sorts, "rank") or "rank"
    limit, offset = q.get_page(BOARD_LIMIT, BOARD_LIMIT)
    state = _state(request)
    with state.chain() as suite, state.db() as db:
        block = _head(suite)
        board = build_board(
            db, suite, region=region, max_price=max_price, max_latency=max_latency,
            recent=recent or 12, token=state.coin,
        )  # fmt: skip
    rows = _sort_rows([build_board_row_json(r, board) for r in board.rows], sort)
    return JSONResponse({
        "block": block, "total": len(rows), "regions": board.regions,
        "empty_reason": board.empty_reason, "symbol": board.token.symbol,
        "decimals": board.token.decimals, "rows": page(rows, limit, offset),
    })  # fmt: skip


def get_node(request: Request) -> Response:
    """``GET /api/nodes/{node_id}``."""
    node_id = parse_int(request.path_params["node_id"], "node_id", 1, 2**63 - 1)
    q = Query(request, ["epochs", "holders_limit", "holders_offset", "book_limit"])
    epochs = q.get_int("epochs", 48, 1, MAX_EPOCHS) or 48
    holders_limit = q.get_int("holders_limit", 20, 1, PAGE_LIMIT) or 20
    holders_offset = q.get_int("holders_offset", 0, 0, None) or 0
    book_limit = q.get_int("book_limit", DEFAULT_PAGE, 1, PAGE_LIMIT) or DEFAULT_PAGE
    state = _state(request)
    coin = state.coin
    head = _get_head(request)
    with state.chain() as suite, state.db() as db:
        clock = fetch_clock(suite, head)
        record = suite.fetch_node(node_id)  # NodeNotFound: 404
        final = _fetch_finalized(db, node_id)
        (view,) = fetch_node_views(suite, clock, [node_id], [record], final)
        node = build_status_json(clock, coin, [view], None, None, None)["nodes"][0]
        share = suite.share_at(record.share_token)
        supply = int(share.call("totalSupply"))
        documents = fetch_board_metadata(
            [record.metadata_uri], allow_files=is_local_chain_id(suite.manifest.chain_id)
        )
        meta, meta_status = documents[record.metadata_uri]
        node.update(
            attestor=record.attestor, share_token=record.share_token, region=record.region,
            metadata_uri=record.metadata_uri, metadata=meta_status,
            endpoint=meta.endpoint if meta else None, models=meta.models if meta else None,
            gpu=meta.gpu if meta else None, capacity_rps=meta.capacity_rps if meta else None,
            registered_epoch=record.registered_epoch, supply=str(supply),
            pending_cut_epoch=record.pending_cut_epoch,
        )  # fmt: skip
        series = _fetch_node_epochs(db, suite, node_id, clock.current_epoch, epochs, head)
        history = _fetch_history(db, node_id, clock.genesis, clock.epoch_length)
        holders = _fetch_holders(db, suite, node_id, record.share_token, supply)
        offerings = fetch_offerings(suite, node_id, (clock.block, clock.chain_time))
        book = fetch_book(db, suite, state.domain, tokens=[record.share_token],
                          now=clock.chain_time)  # fmt: skip
        baskets = [
            {"basket": b.address, "symbol": b.symbol, "name": b.name, "weight": str(c.weight)}
            for b in state.get_baskets(suite, clock.block)
            for c in b.components
            if c.node_id == node_id
        ]
    return JSONResponse({
        "block": clock.block, "symbol": coin.symbol, "decimals": coin.decimals,
        "share_decimals": SHARE_DECIMALS, "node": node, "epochs": series, "history": history,
        "holders": {"total": len(holders), "rows": page(holders, holders_limit, holders_offset)},
        "offerings": build_offerings_json(offerings, coin)["offerings"],
        "book": {"total": len(book),
                 "rows": [build_book_row_json(e) for e in page(book, book_limit, 0)]},
        "baskets": baskets,
    })  # fmt: skip


def _fetch_finalized(db: Connection, node_id: int) -> set[tuple[int, int]]:
    """The node's epochs the index holds as finalized (final: never read again)."""
    u = idx.usage.c
    query = select(u.epoch).where(u.node_id == node_id, u.state == "finalized")
    return {(node_id, int(epoch)) for epoch in db.execute(query).scalars()}


def _fetch_node_epochs(
    db: Connection,
    suite: Suite,
    node_id: int,
    current: int,
    epochs: int,
    head: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The node's latest ``epochs`` epochs with a report or channel revenue (the operator
    report's rows), oldest first; none while the index does not know the node yet."""
    known = db.execute(
        select(idx.nodes.c.node_id).where(idx.nodes.c.node_id == node_id)
    ).scalar_one_or_none()
    if known is None:
        return []
    report = build_report(
        db, suite, node_ids=[node_id], from_epoch=max(0, current - epochs + 1), head=head
    )
    return [
        {"epoch": r.epoch, "starts": report.get_epoch_start(r.epoch), "inferences": r.inferences,
         "revenue": str(r.revenue), "usage_revenue": str(r.usage_revenue),
         "channel_revenue": str(r.channel_revenue), "holders": str(r.holders),
         "operator_cut": str(r.operator_cut), "protocol_fee": str(r.protocol_fee),
         "latency_ms": r.latency_ms, "uptime_bps": r.uptime_bps, "state": r.state,
         "disputed": r.disputed}
        for r in sorted(report.rows, key=lambda r: r.epoch)
    ]  # fmt: skip


def _fetch_history(
    db: Connection, node_id: int, genesis: int, epoch_length: int
) -> list[dict[str, Any]]:
    """The node's registration, price changes and cut proposals, oldest first (index):
    a price's ``value`` is a decimal string of stablecoin base units, a cut's basis
    points (an integer)."""
    e = idx.other_events.c
    rows = db.execute(
        select(e.block, e.name, e.args)
        .where(e.node_id == node_id)
        .where(e.name.in_(["NodeRegistered", "PriceSet", "OperatorCutProposed"]))
        .order_by(e.block, e.log_index)
    )
    history = []
    for block, name, text in rows:
        args = json.loads(text)
        if name == "NodeRegistered":
            history += [
                {"block": block, "kind": "registered", "value": str(int(args["price_per_1k"])),
                 "what": "price", "from_epoch": None, "effective_at": None},
                {"block": block, "kind": "registered", "value": int(args["operator_cut_bps"]),
                 "what": "cut", "from_epoch": None, "effective_at": None},
            ]  # fmt: skip
            continue
        kind = "price" if name == "PriceSet" else "cut"
        # a price is an amount (a decimal string of base units); a cut, basis points
        value: str | int = (str(int(args["price_per_1k"])) if kind == "price"
                            else int(args["cut_bps"]))  # fmt: skip
        epoch = int(args["from_epoch"])
        at = genesis + epoch * epoch_length
        history.append({"block": block, "kind": kind, "value": value, "what": kind,
                        "from_epoch": epoch, "effective_at": at})  # fmt: skip
    return history


def _fetch_holders(
    db: Connection, suite: Suite, node_id: int, token: str, supply: int
) -> list[dict[str, Any]]:
    """Every holder of the node's shares now, largest first: who ever received some (the
    index's transfers), with its balance read from the chain."""
    t = idx.transfers.c
    found = sorted(
        {str(r) for (r,) in db.execute(select(t.receiver).where(t.node_id == node_id).distinct())}
    )
    if not found:
        return []
    share = suite.share_at(token)
    balances = suite.reader.many([share.read("balanceOf", h) for h in found])
    rows = [
        {"holder": Web3.to_checksum_address(h), "shares": int(b),
         "share_bps": int(b) * 10_000 // max(1, supply)}
        for h, b in zip(found, balances, strict=True)
        if int(b) > 0
    ]  # fmt: skip
    rows.sort(key=lambda r: (-int(str(r["shares"])), str(r["holder"])))
    return [{**r, "shares": str(r["shares"])} for r in rows]


def _get_holdings(
    db: Connection, suite: Suite, holder: str, among: list[int] | None, report: Report, block: int
) -> list[Holding]:
    """``holder``'s holdings at ``block``: its report's positions when the index is at that
    block (read once), read from the chain otherwise (an index behind, or empty: a report
    then knows no nodes)."""
    m = idx.meta.c
    last = db.execute(select(m.value).where(m.key == "last_block")).scalar()
    if report.block != block or last is None or int(last) != block:
        return fetch_portfolio(suite, holder, among=among, block=block)
    held = [p for p in report.positions if p.shares or p.claimable]
    n = idx.nodes.c  # the index is at the head: it knows every node held
    query = select(n.node_id, n.share_token).where(n.node_id.in_([p.node_id for p in held]))
    tokens = {int(node): str(token) for node, token in db.execute(query)}
    return [Holding(p.node_id, tokens[p.node_id], p.shares, p.supply, p.claimable, p.vesting)
            for p in held]  # fmt: skip


def get_portfolio(request: Request) -> Response:
    """``GET /api/portfolio/{address}``."""
    holder = parse_address_parameter(request.path_params["address"], "address")
    q = Query(request, ["epochs"])
    epochs = q.get_int("epochs", 24, 1, MAX_EPOCHS) or 24
    state = _state(request)
    head = _get_head(request)
    with state.chain() as suite, state.db() as db:
        clock = fetch_clock(suite, head)
        block = clock.block
        among = fetch_nodes_received(db, suite, holder, to_block=block)
        report = build_report(db, suite, investor=holder,
                              from_epoch=max(0, clock.current_epoch - epochs + 1),
                              among=among, capital=False, head=head)  # fmt: skip
        holdings = _get_holdings(db, suite, holder, among, report, block)
        units = fetch_basket_holdings(suite, holder, block)
        offerings = state.get_offerings(suite, (block, clock.chain_time))
        commitments = fetch_commitments(suite, holder, offerings)
        book = fetch_book(db, suite, state.domain, maker=holder, now=clock.chain_time)
    orders = [build_open_order_json(e.status, e.label, "book", e.id) for e in book]
    data = build_portfolio_json(holder, holdings, units, commitments, orders, state.coin)
    positions = {p.node_id: p for p in report.positions}
    span = report.summary.yield_seconds if report.summary else 0
    for row in data["holdings"]:
        node_id = row["node_id"]
        earned = [e for e in report.earnings if e.node_id == node_id]
        total = sum(e.earned for e in earned)
        position = positions.get(node_id)
        row.update(
            share_bps=int(row["shares"]) * 10_000 // max(1, int(row["supply"])),
            vesting_ends_at=position.vesting_ends_at if position else None,
            earned=[{"epoch": e.epoch, "starts": report.get_epoch_start(e.epoch),
                     "earned": str(e.earned), "state": e.state} for e in earned],
            earned_in_epochs=str(total),
            annualised=str(total * SECONDS_PER_YEAR // span if span else 0),
            yield_seconds=span,
        )  # fmt: skip
    tokens = [h.share_token for h in holdings if h.claimable] + [
        b.basket for b in units if b.claimable
    ]
    data["block"] = block
    data["claim"] = {"claimer": suite.claimer.address, "tokens": tokens,
                     "max_tokens": MAX_CLAIM_TOKENS, "receiver_default": holder}  # fmt: skip
    return JSONResponse(data)


def get_offerings(request: Request) -> Response:
    """``GET /api/offerings``."""
    q = Query(request, ["node", "state", "investor", "limit", "offset"])
    node = q.get_int("node", None, 1, 2**63 - 1)
    wanted = q.get_choice("state", OFFERING_STATES, None)
    who = q.get_address("investor")
    limit, offset = q.get_page()
    state = _state(request)
    with state.chain() as suite:
        block = _head(suite)
        views = [v for v in fetch_offerings(suite, node) if wanted is None or v.state == wanted]
        shown = page(views, limit, offset)
        commitments = fetch_commitments(suite, who, shown) if who and shown else []
    data = build_offerings_json(shown, state.coin, who, commitments)
    data.update(block=shown[0].block if shown else block, total=len(views))
    return JSONResponse(data)


def get_offering(request: Request) -> Response:
    """``GET /api/offerings/{address}``."""
    address = parse_address_parameter(request.path_params["address"], "address")
    q = Query(request, ["investor"])
    who = q.get_address("investor")
    state = _state(request)
    with state.chain() as suite:
        view = fetch_offering(suite, address)  # NotAnOffering: 404
        commitments = fetch_commitments(suite, who, [view]) if who else []
    data = build_offerings_json([view], state.coin, who, commitments)
    data["block"] = view.block
    return JSONResponse(data)


def get_book(request: Request) -> Response:
    """``GET /api/book``."""
    q = Query(request, ["token", "node", "side", "maker", "state", "limit", "offset"])
    token = q.get_address("token")
    node = q.get_int("node", None, 1, 2**63 - 1)
    side = q.get_choice("side", ["sell", "buy"], None)
    maker = q.get_address("maker")
    only_open = q.get_choice("state", ["open", "all"], "open") == "open"
    limit, offset = q.get_page()
    state = _state(request)
    with state.chain() as suite, state.db() as db:
        block = _head(suite)
        tokens = [token] if token else None
        if node is not None:
            count = suite.fetch_node_count()
            if node > count:
                raise ApiError(404, "not_found", f"no node {node} (registered: 1..{count})",
                               "node")  # fmt: skip
            of_node = Web3.to_checksum_address(suite.fetch_share_tokens([node])[0])
            tokens = [t for t in (tokens or [of_node]) if t == of_node]
        entries = fetch_book(db, suite, state.domain, tokens=tokens, maker=maker,
                             sell=None if side is None else side == "sell",
                             only_open=only_open)  # fmt: skip
    return JSONResponse({
        "block": block, "total": len(entries), "decimals": state.coin.decimals,
        "share_decimals": SHARE_DECIMALS,
        "rows": [build_book_row_json(e) for e in page(entries, limit, offset)],
    })  # fmt: skip


async def post_order(request: Request) -> Response:
    """``POST /api/orders``: check and store a signed order (nothing stored on refusal)."""
    if request.method != "POST":
        raise ApiError(405, "method_not_allowed", f"{request.method} is not allowed on "
                       "/api/orders: POST a signed order")  # fmt: skip
    Query(request, [])
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise ApiError(415, "unsupported_media_type",
                       "send the order as Content-Type: application/json")  # fmt: skip
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_ORDER_BODY:
        raise _too_large()
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_ORDER_BODY:
                raise _too_large()
    except ClientDisconnect:
        raise ApiError(400, "bad_json", "the client went away before the body was read") from None
    try:
        data = json.loads(bytes(body))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_json", f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object with 'order' and "
                       "'signature'")  # fmt: skip
    state = _state(request)
    return await run_in_threadpool(_submit, state, data)


def _too_large() -> ApiError:
    return ApiError(413, "body_too_large", f"the body is over {MAX_ORDER_BODY} bytes: an order "
                    "with its signature and permit is well under 2 KiB")  # fmt: skip


def _submit(state: WebState, data: Mapping[str, Any]) -> Response:
    signed, named = parse_submission(dict(data))
    with state.chain() as suite, state.db() as db:
        status = check_submission(suite, signed, state.domain, named)
        clock = fetch_clock(suite)
        order_id, stored = store_order(db, signed, state.domain, chain_time=clock.chain_time)
        state.forget_cached()
        block = clock.block
        entries = fetch_book(db, suite, state.domain, tokens=[signed.share],
                             maker=signed.maker, only_open=False)  # fmt: skip
        entry = next((e for e in entries if e.id == order_id), None)
        if entry is None:  # pragma: no cover - stored just now
            label = fetch_token_labels(suite, [signed.share])[signed.share]
            entry = BookEntry(order_id, int(time.time()), status, label)
    return JSONResponse(
        {"block": block, "stored": stored, "row": build_book_row_json(entry)},
        status_code=201 if stored else 200,
    )


def get_channels(request: Request) -> Response:
    """``GET /api/channels/{customer}``."""
    customer = parse_address_parameter(request.path_params["customer"], "customer")
    Query(request, [])
    state = _state(request)
    with state.chain() as suite, state.db() as db:
        clock = fetch_clock(suite, _get_head(request))
        channels = fetch_customer_channels(suite, clock, customer)
        data = build_status_json(clock, state.coin, [], None, None, channels)
        signers = _fetch_app_signers(db, suite, customer, [c.node_id for c in channels])
        grace = int(suite.channels.call("CLOSE_GRACE"))
    for row in data["channels"]:
        row["app_signers"] = signers.get(row["node_id"], [])
    return JSONResponse({
        "block": clock.block, "customer": customer, "clock": data["clock"],
        "stablecoin": data["stablecoin"], "channels": data["channels"], "close_grace": grace,
    })  # fmt: skip


def _fetch_app_signers(
    db: Connection, suite: Suite, customer: str, node_ids: Sequence[int]
) -> dict[int, list[dict[str, Any]]]:
    """The app signers ``customer`` ever authorised on each channel (the index's
    SignerAuthorized events), with until when each signs now (the chain)."""
    if not node_ids:
        return {}
    e = idx.other_events.c
    rows = db.execute(
        select(e.node_id, e.args)
        .where(e.name == "SignerAuthorized", e.node_id.in_(list(node_ids)))
        .order_by(e.block, e.log_index)
    )
    pairs: list[tuple[int, str]] = []
    for node_id, text in rows:
        args = json.loads(text)
        if str(args.get("customer", "")).lower() == customer.lower():
            pair = (int(node_id), Web3.to_checksum_address(args["signer"]))
            if pair not in pairs:
                pairs.append(pair)
    if not pairs:
        return {}
    reads = [suite.channels.read("signer_valid_until", customer, n, s) for n, s in pairs]
    found: dict[int, list[dict[str, Any]]] = {}
    for (node_id, signer), until in zip(pairs, suite.reader.many(reads), strict=True):
        found.setdefault(node_id, []).append({"signer": signer, "valid_until": int(until)})
    return found


def get_operator(request: Request) -> Response:
    """``GET /api/operator/{address}``."""
    operator = parse_address_parameter(request.path_params["address"], "address")
    Query(request, [])
    state = _state(request)
    with state.chain() as suite:
        clock = fetch_clock(suite, _get_head(request))
        node_ids = fetch_operated(suite, operator)
        owed = fetch_owed(suite, operator)
        views = fetch_node_views(suite, clock, node_ids) if node_ids else []
        attestors = {r.node_id: r.attestor for r in suite.fetch_nodes(node_ids)} if node_ids else {}
    data = build_status_json(clock, state.coin, views, owed, None, None)
    for row in data["nodes"]:
        row["attestor"] = attestors[row["node_id"]]
    data["block"] = clock.block
    return JSONResponse(data)


def get_health(request: Request) -> Response:
    """``GET /api/health``."""
    Query(request, [])
    state = _state(request)
    with state.chain() as suite:
        block = _head(suite)
    return JSONResponse({"ok": True, "block": block, "index": state.get_index_json(),
                         "cache": state.get_cache_json()})  # fmt: skip


# ----------------------------------------------------------------- static files

_MISSING_BUNDLE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>EdgeShare: the web app is not built</title>
</head><body><h1>The web app is not built</h1>
<p>This edgeshare has no built front end (edgeshare/web/static/index.html is missing).
Build it with <code>make web</code> in a checkout, or install a released package.</p>
<p>The JSON API works without it: <a href="/api/config">/api/config</a>,
<a href="/api/board">/api/board</a>.</p></body></html>
"""


def get_index(request: Request) -> Response:
    """``/``: the front end's index.html, or a 503 page saying how to build it."""
    index = _state(request).static_dir / "index.html"
    if not index.is_file():
        return HTMLResponse(_MISSING_BUNDLE, status_code=503)
    return FileResponse(index, media_type="text/html; charset=utf-8")


def get_static(request: Request) -> Response:
    """A file of the built front end (``/app.js``, ``/app.css``, ...)."""
    root = _state(request).static_dir
    name = str(request.path_params["path"])
    if name == "api" or name.startswith("api/"):
        raise ApiError(404, "not_found", f"no such endpoint: /{name[:120]} (see docs/WEB.md)")
    parts = name.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts) or "\\" in name:
        raise ApiError(404, "not_found", f"no file /{name[:80]}")
    path = root.joinpath(*parts)
    if not path.is_file():
        raise ApiError(404, "not_found", f"no file /{name[:80]}")
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if kind in ("text/javascript", "application/javascript", "text/css", "text/html"):
        kind += "; charset=utf-8"
    return FileResponse(path, media_type=kind)


# ---------------------------------------------------------- errors and headers


class SecurityHeaders:
    """ASGI middleware: the security headers on every response, ``Cache-Control:
    no-store`` on the API's."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the headers to the response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_api = str(scope.get("path", "")).startswith("/api")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in SECURITY_HEADERS} | {b"cache-control"}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                headers += SECURITY_HEADERS
                headers.append((b"cache-control", b"no-store" if is_api else b"no-cache"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def _on_api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return build_error(exc.status, exc.code, exc.message, exc.parameter)


def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return build_error(405, "method_not_allowed",
                           f"{request.method} is not allowed on {request.url.path}")  # fmt: skip
    if exc.status_code == 404:
        return build_error(404, "not_found", f"no such route: {request.url.path[:120]}")
    return build_error(exc.status_code, "http_error", str(exc.detail))


def _on_library_error(_request: Request, exc: Exception) -> Response:
    """The library's errors: a refused order (422), a missing node or offering (404), bad
    input (400), the chain or the index failing (503)."""
    if isinstance(exc, OrderRefused):
        return build_error(422, exc.code, str(exc), exc.parameter)
    if isinstance(exc, NodeNotFound):
        return build_error(404, "not_found", str(exc), "node_id")
    if isinstance(exc, NotAnOffering):
        return build_error(404, "not_found", str(exc), "address")
    if isinstance(exc, InputError):
        return build_error(400, "bad_parameter", str(exc))
    log.warning("request failed: %s", exc)
    return build_error(503, "unavailable", f"the chain or the index cannot be read now: {exc}")


def _on_network_error(_request: Request, exc: Exception) -> Response:
    return build_error(503, "unavailable", f"the chain's RPC endpoint is not answering: "
                       f"{type(exc).__name__}")  # fmt: skip


def _guard(endpoint: Callable[[Request], Any]) -> Callable[[Request], Any]:
    """Turn an unexpected exception into a 500 in the error shape (inside the headers
    middleware, unlike Starlette's own 500 page)."""
    import asyncio
    import functools

    if asyncio.iscoroutinefunction(endpoint):

        @functools.wraps(endpoint)
        async def run_async(request: Request) -> Any:
            try:
                return await endpoint(request)
            except (ApiError, HTTPException, EdgeShareError, requests.RequestException):
                raise
            except Exception:
                log.exception("unexpected error in %s", request.url.path)
                return build_error(500, "internal", "unexpected server error (logged)")

        return run_async

    @functools.wraps(endpoint)
    def run(request: Request) -> Any:
        try:
            return endpoint(request)
        except (ApiError, HTTPException, EdgeShareError, requests.RequestException):
            raise
        except Exception:
            log.exception("unexpected error in %s", request.url.path)
            return build_error(500, "internal", "unexpected server error (logged)")

    return run


def _cached(endpoint: Callable[[Request], Response]) -> Callable[[Request], Response]:
    """A read whose body is kept while the chain's head, the index and the book stay where
    they were (a page polled by many browsers is read once per block)."""
    import functools

    @functools.wraps(endpoint)
    def run(request: Request) -> Response:
        state = _state(request)
        version, header = state.get_version()
        key = (request.url.path, tuple(request.query_params.multi_items()), *version)
        body = state.get_cached(endpoint.__name__, key)
        if body is None:
            request.state.head = header
            response = endpoint(request)
            if response.status_code != 200:
                return response
            body = bytes(response.body)
            state.put_cached(key, body)
        return Response(body, media_type="application/json")

    return run


# ------------------------------------------------------------------------ app


def build_state(config: WebConfig, suite: Suite, static_dir: Path | None = None) -> WebState:
    """The routes' shared state: the index opened (created or migrated), the book's table
    created, the market's domain and the ABIs read once."""
    with idx.open_db(config.db_url):
        pass  # creates or migrates the index schema
    engine = idx.build_engine(config.db_url)
    create_book(engine)
    abis = {name: load_artifact(artifact).abi for name, artifact in ABI_NAMES.items()}
    sync_suite = None
    if config.sync and config.rpc_url:
        sync_suite = Suite.load(connect(config.rpc_url), suite.manifest)
    return WebState(
        config=config, suite=suite, engine=engine, domain=fetch_market_domain(suite),
        coin=suite.fetch_stablecoin_token(), abis=abis,
        static_dir=static_dir if static_dir is not None else get_static_dir(),
        sync_suite=sync_suite,
    )  # fmt: skip


def build_app(config: WebConfig, suite: Suite, *, static_dir: Path | None = None) -> Starlette:
    """The web app (``app.state.web`` is its ``WebState``). The background indexer runs
    while the app's lifespan does (uvicorn, or ``with TestClient(app)``)."""
    state = build_state(config, suite, static_dir)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        state.start_sync()
        try:
            yield
        finally:
            state.stop_sync()
            state.engine.dispose()

    routes = [
        Route("/api/config", _guard(get_config)),
        Route("/api/health", _guard(get_health)),
        Route("/api/board", _guard(_cached(get_board))),
        Route("/api/nodes/{node_id}", _guard(_cached(get_node))),
        Route("/api/portfolio/{address}", _guard(_cached(get_portfolio))),
        Route("/api/offerings", _guard(_cached(get_offerings))),
        Route("/api/offerings/{address}", _guard(_cached(get_offering))),
        Route("/api/book", _guard(_cached(get_book))),
        Route("/api/orders", _guard(post_order), methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        Route("/api/channels/{customer}", _guard(_cached(get_channels))),
        Route("/api/operator/{address}", _guard(_cached(get_operator))),
        Route("/", get_index),
        Route("/{path:path}", _guard(get_static)),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ApiError: _on_api_error,
            HTTPException: _on_http_error,
            EdgeShareError: _on_library_error,
            requests.RequestException: _on_network_error,
        },
    )
    app.add_middleware(SecurityHeaders)
    app.state.web = state
    return app


def serve(
    config: WebConfig, suite: Suite, *, on_listen: Callable[[str], None] | None = None
) -> None:
    """Build the app and serve it with uvicorn until SIGINT or SIGTERM; ``on_listen`` gets
    the URL once the port is bound.

    Raises:
        InputError: the port cannot be bound.
    """
    sock = bind_socket(config.host, config.port)
    try:
        app = build_app(config, suite)
        with _stop_quietly():
            run_uvicorn(
                app, sock, config.host, graceful_seconds=5, on_listen=on_listen, trailing_slash=True
            )
    finally:
        sock.close()


class _Stopped(Exception):
    """SIGINT or SIGTERM, raised again by uvicorn once it has stopped gracefully."""


def _raise_stopped(_signum: int, _frame: FrameType | None) -> None:
    raise _Stopped


@contextmanager
def _stop_quietly() -> Iterator[None]:
    """uvicorn stops gracefully on SIGINT/SIGTERM, then raises the signal again: here that
    ends ``serve`` normally (a stop asked for is not a failure), so the caller goes on (the
    demo stops its chain)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in signals}
    try:
        yield
    except _Stopped:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
