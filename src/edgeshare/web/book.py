"""The web API's order book: signed orders people submit, kept in the index database and
served with what the market says of each now.

A submission is checked before it is stored: its fields (``edgeshare.orders.SignedOrder``),
its domain (when the body names one, it must be this market's), its signature (EIP-712 in
this market's domain, recovering to the maker) and the market's own ``check`` (the order
must be open now: not expired, cancelled, filled, of an old nonce; its maker holding and
having approved, or permitted, its leg). A refusal stores nothing. A maker's expired
orders are deleted when it submits another, and it keeps at most
``MAX_LIVE_ORDERS_PER_MAKER`` unexpired ones; the book is served with each order's state
checked against the chain at read time (``check_orders``), so a filled or cancelled order
drops out of the open book by itself (an expired one is not even read).

The table has its own schema (``BOOK_METADATA``): the indexer's migrations, which may drop
and rebuild its event tables, never touch it. Several ``edgeshare serve`` processes sharing
one PostgreSQL database share the book; the order hash is unique, so a resubmission (or
two at once) keeps one row.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError

from edgeshare.attestation import Eip712Domain
from edgeshare.errors import InputError
from edgeshare.indexer import Amount
from edgeshare.orders import (
    BAD_SIGNATURE,
    CANCELLED,
    EXPIRED,
    FILLED,
    OLD_NONCE,
    REASON_TEXTS,
    OrderStatus,
    SignedOrder,
    TokenLabel,
    check_orders,
    fetch_token_labels,
    get_order_digest,
    get_signature_problem,
)
from edgeshare.roles import fetch_chain_time
from edgeshare.suite import Suite
from edgeshare.web.views import build_book_order_json

BOOK_METADATA = MetaData()
web_orders = Table(
    "web_orders",
    BOOK_METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("chain_id", BigInteger, nullable=False),
    Column("market", Text, nullable=False),
    Column("order_hash", Text, nullable=False),
    Column("maker", Text, nullable=False),
    Column("share", Text, nullable=False),
    Column("sell", Boolean, nullable=False),
    Column("price_per_share", Amount, nullable=False),
    Column("expiry", BigInteger, nullable=False),
    Column("body", Text, nullable=False),  # the SignedOrder's JSON
    Column("submitted_at", BigInteger, nullable=False),
    UniqueConstraint("market", "order_hash", name="web_orders_market_hash"),
)
ORDER_KEYS = ("maker", "share", "sell", "amount", "price_per_share", "min_fill", "expiry",
              "nonce", "salt")  # fmt: skip
REFUSAL_CODES = {EXPIRED: "expired", CANCELLED: "cancelled", OLD_NONCE: "cancelled",
                 FILLED: "filled", BAD_SIGNATURE: "bad_signature"}  # fmt: skip
"""The error code of a refusal for the market's reasons (any other: ``not_fillable``)."""
SUBMISSION_KEYS = frozenset({"order", "signature", "permit", "domain"})
MAX_LIVE_ORDERS_PER_MAKER = 200
"""Unexpired orders one maker may keep in the book: a maker cannot grow it without end
(each order is checked against the chain whenever the book is read)."""


class OrderRefused(InputError):
    """A submitted order the book does not take; nothing was stored."""

    def __init__(self, code: str, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        """``bad_order``, ``wrong_domain``, ``bad_signature``, ``expired``, ``cancelled``,
        ``filled``, ``not_fillable`` or ``too_many_orders``."""
        self.parameter = parameter
        """The body field at fault (``order.amount``, ``signature``, ...), if one is."""


@dataclass(frozen=True)
class BookEntry:
    """One stored order and what the market says of it now."""

    id: int
    submitted_at: int
    status: OrderStatus
    label: TokenLabel


def create_book(engine: Engine) -> None:
    """Create the book's table if it is missing."""
    BOOK_METADATA.create_all(engine)


# ------------------------------------------------------------------ submissions


def parse_submission(data: Any) -> tuple[SignedOrder, Eip712Domain | None]:
    """The signed order (and the domain it names, if any) of a ``POST /api/orders`` body:
    ``{"order": {...}, "signature": "0x...", "permit": {...}|null, "domain": {...}}``.

    Raises:
        OrderRefused: ``bad_order``, naming the field.
    """
    if not isinstance(data, dict):
        raise OrderRefused("bad_order", "the body must be a JSON object with 'order' and "
                           "'signature'")  # fmt: skip
    unknown = sorted(set(data) - SUBMISSION_KEYS)
    if unknown:
        raise OrderRefused("bad_order", f"unknown field {unknown[0]!r} (allowed: order, "
                           "signature, permit, domain)", unknown[0])  # fmt: skip
    order = data.get("order")
    if not isinstance(order, dict):
        raise OrderRefused("bad_order", "'order' must be an object of the Order fields "
                           f"({', '.join(ORDER_KEYS)})", "order")  # fmt: skip
    if "signature" not in data:
        raise OrderRefused("bad_order", "'signature' is missing (the maker's "
                           "eth_signTypedData_v4 result)", "signature")  # fmt: skip
    fields = {**order, "signature": data["signature"]}
    if data.get("permit") is not None:
        fields["permit"] = data["permit"]
    try:
        signed = SignedOrder.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(p) for p in first["loc"]]
        where = (
            ".".join(loc) if loc[:1] in (["signature"], ["permit"]) else ".".join(["order", *loc])
        )
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown field"
        elif first["type"] == "missing":
            message = "missing"
        raise OrderRefused("bad_order", f"{where}: {message}", where) from None
    domain = None
    if data.get("domain") is not None:
        domain = _parse_domain(data["domain"])
    return signed, domain


def _parse_domain(value: Any) -> Eip712Domain:
    """A body's ``domain`` (the ``eth_signTypedData_v4`` spelling or ours)."""
    if not isinstance(value, dict):
        raise OrderRefused("bad_order", "'domain' must be an object", "domain")
    renamed = {"chainId": "chain_id", "verifyingContract": "verifying_contract"}
    fields = {renamed.get(k, k): v for k, v in value.items()}
    try:
        if isinstance(fields.get("chain_id"), str) and str(fields["chain_id"]).isdigit():
            fields["chain_id"] = int(fields["chain_id"])
        return Eip712Domain.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(["domain", *(str(p) for p in first["loc"])])
        raise OrderRefused(
            "bad_order", f"{where}: {str(first['msg']).removeprefix('Value error, ')}", where
        ) from None


def check_submission(
    suite: Suite, signed: SignedOrder, domain: Eip712Domain, named: Eip712Domain | None = None
) -> OrderStatus:
    """What the market says of a submitted order now, if the book takes it.

    Raises:
        OrderRefused: ``wrong_domain`` (``named`` is another market's), ``bad_signature``,
            ``expired``, ``cancelled``, ``filled`` or ``not_fillable`` (any other reason the
            market's ``check`` gives).
    """
    if named is not None and named != domain:
        raise OrderRefused(
            "wrong_domain",
            f"the order was signed for chain {named.chain_id} market "
            f"{named.verifying_contract} ({named.name!r} version {named.version!r}); this is "
            f"chain {domain.chain_id} market {domain.verifying_contract} "
            f"({domain.name!r} version {domain.version!r})",
            "domain",
        )
    problem = get_signature_problem(signed, domain)
    if problem:
        parameter = "permit" if problem.startswith("permit") else "signature"
        raise OrderRefused(
            "bad_signature" if parameter == "signature" else "bad_order",
            f"{problem} (checked in chain {domain.chain_id}'s market "
            f"{domain.verifying_contract}: an order signed for another chain or market "
            "recovers to another address)",
            parameter,
        )
    (status,) = check_orders(suite, [signed], domain=domain)
    if status.is_open:
        return status
    code = REFUSAL_CODES.get(status.reason, "not_fillable")
    text = REASON_TEXTS.get(status.reason, f"reason {status.reason}")
    raise OrderRefused(code, f"the market refuses the order now ({status.state}): {text}")


def store_order(
    db: Connection,
    signed: SignedOrder,
    domain: Eip712Domain,
    now: int | None = None,
    *,
    chain_time: int | None = None,
) -> tuple[int, bool]:
    """Keep ``signed`` in the book: (its id, True) or, when the same order is already
    there, (that one's id, False). ``chain_time`` (default: ``now``, else this machine's
    clock) is what expiries are compared with to count the maker's live orders.

    Raises:
        OrderRefused: ``too_many_orders``, the maker keeps ``MAX_LIVE_ORDERS_PER_MAKER``
            unexpired orders already.
    """
    digest = "0x" + get_order_digest(signed, domain).hex()
    market = domain.verifying_contract
    row = {
        "chain_id": domain.chain_id, "market": market, "order_hash": digest,
        "maker": signed.maker, "share": signed.share, "sell": signed.sell,
        "price_per_share": signed.price_per_share, "expiry": signed.expiry,
        "body": signed.model_dump_json(), "submitted_at": int(now or time.time()),
    }  # fmt: skip
    existing = _find(db, market, digest)
    if existing is not None:
        return existing, False
    _require_room(db, market, signed.maker, int(now or time.time()) if chain_time is None
                  else chain_time)  # fmt: skip
    try:
        with db.begin_nested() if db.in_transaction() else db.begin():
            found = db.execute(web_orders.insert().values(**row)).inserted_primary_key
    except IntegrityError:  # another process stored it just now
        again = _find(db, market, digest)
        if again is None:  # pragma: no cover - the unique key held, so it is there
            raise
        return again, False
    if db.in_transaction():
        db.commit()
    assert found is not None
    return int(found[0]), True


def _require_room(db: Connection, market: str, maker: str, now: int) -> None:
    """Drop the maker's expired orders (never open again), then refuse its order once it
    keeps ``MAX_LIVE_ORDERS_PER_MAKER`` unexpired ones: a maker's rows stay bounded."""
    c = web_orders.c
    with db.begin_nested() if db.in_transaction() else db.begin():
        db.execute(web_orders.delete().where(c.market == market, c.maker == maker,
                                             c.expiry < now))  # fmt: skip
    if db.in_transaction():
        db.commit()
    live = db.execute(
        select(func.count()).where(c.market == market, c.maker == maker, c.expiry > now)
    ).scalar_one()
    if db.in_transaction():
        db.commit()
    if live >= MAX_LIVE_ORDERS_PER_MAKER:
        raise OrderRefused(
            "too_many_orders",
            f"{maker} already keeps {live} unexpired orders in this book (at most "
            f"{MAX_LIVE_ORDERS_PER_MAKER}; a cancelled or filled order counts until it "
            "expires)",
            "order.maker",
        )


def _find(db: Connection, market: str, digest: str) -> int | None:
    c = web_orders.c
    found = db.execute(
        select(c.id).where(c.market == market, c.order_hash == digest)
    ).scalar_one_or_none()
    if db.in_transaction():
        db.commit()  # end the read's implicit transaction before a write
    return None if found is None else int(found)


# ------------------------------------------------------------------------ reads


def fetch_book(
    db: Connection,
    suite: Suite,
    domain: Eip712Domain,
    *,
    tokens: Sequence[str] | None = None,
    maker: str | None = None,
    sell: bool | None = None,
    only_open: bool = True,
    now: int | None = None,
) -> list[BookEntry]:
    """The market's stored orders matching the filters, each checked against the chain
    now (any taker): sells cheapest first, then buys dearest first, then oldest first.
    ``now``: the chain's time, when the caller read it already."""
    c = web_orders.c
    query = select(c.id, c.submitted_at, c.body).where(c.market == domain.verifying_contract)
    if tokens is not None:
        query = query.where(c.share.in_(list(tokens)))
    if maker is not None:
        query = query.where(c.maker == maker)
    if sell is not None:
        query = query.where(c.sell == sell)
    if only_open:  # an expired order is never open again: not even read
        query = query.where(c.expiry >= (fetch_chain_time(suite) if now is None else now))
    rows = list(db.execute(query.order_by(c.id)))
    if db.in_transaction():
        db.commit()
    if not rows:
        return []
    orders = [SignedOrder.model_validate(json.loads(body)) for _, _, body in rows]
    statuses = check_orders(suite, orders, domain=domain)
    labels = fetch_token_labels(suite, [o.share for o in orders])
    entries = [
        BookEntry(int(id_), int(at), s, labels[s.order.share])
        for (id_, at, _), s in zip(rows, statuses, strict=True)
        if s.is_open or not only_open
    ]
    entries.sort(
        key=lambda e: (
            not e.status.order.sell,
            e.status.order.price_per_share
            if e.status.order.sell
            else -e.status.order.price_per_share,
            e.id,
        )
    )
    return entries


def build_book_row_json(entry: BookEntry) -> dict[str, Any]:
    """One order of ``GET /api/book``: the row of ``edgeshare trade book --json`` (its
    ``file`` ``"book"``, its ``index`` the book id) and the book's own fields (see
    docs/WEB.md)."""
    s = entry.status
    return {
        **build_book_order_json(s, entry.label, "book", entry.id),
        "id": entry.id, "reason_text": s.describe(), "permit_covers": s.permit_covers,
        "submitted_at": entry.submitted_at, "order": s.order.model_dump(mode="json"),
    }  # fmt: skip
