"""The JSON the CLI's ``--json`` and the web API share: one builder per view, so what a
page shows equals what the command prints for the same address and block.

Every amount is an exact integer of base units, written as a decimal string (or, for the
board's prices, ``{"base_units": "...", "decimals": N}``, as ``edgeshare market --json``
has always written them). Nothing here reads the chain: the callers fetch through the
library (``edgeshare.market``, ``edgeshare.status``, ``edgeshare.offerings``, ...) and hand
the results over.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from edgeshare.baskets import BasketHolding
from edgeshare.market import Board, BoardRow, Holding
from edgeshare.offerings import Commitment, OfferingView
from edgeshare.orders import OrderStatus, TokenLabel
from edgeshare.status import ChannelView, Clock, NodeView, Position
from edgeshare.units import SHARE_DECIMALS, Token, amount_json, amounts_as_strings, format_price

if TYPE_CHECKING:
    from edgeshare.client import SeenLatency

# ---------------------------------------------------------------------- the board


def build_board_row_json(
    row: BoardRow, board: Board, seen: SeenLatency | None = None
) -> dict[str, Any]:
    """A board row (``edgeshare market --json``, ``GET /api/board``): amounts as exact base
    units (strings) with decimals; ``seen_latency_ms`` and ``seen_calls`` are what this
    machine's client saw (null and 0 when it never called the node)."""
    decimals = board.token.decimals
    meta = row.metadata
    return {
        "node_id": row.node_id,
        "operator": row.operator,
        "region": row.region,
        "price_per_1k": amount_json(row.price_per_1k, decimals),
        "next_price_per_1k": amount_json(row.next_price_per_1k, decimals),
        "price": format_price(row.price_per_1k, board.token),
        "symbol": board.token.symbol,
        "operator_cut_bps": row.operator_cut_bps,
        "latency_ms": row.latency_ms,
        "seen_latency_ms": seen.p50_ms if seen else None,
        "seen_calls": seen.count if seen else 0,
        "uptime_bps": row.uptime_bps,
        "epochs_attested": row.epochs_attested,
        "new": row.is_new,
        "endpoint": meta.endpoint if meta else None,
        "models": meta.models if meta else None,
        "gpu": meta.gpu if meta else None,
        "capacity_rps": meta.capacity_rps if meta else None,
        "metadata_uri": row.metadata_uri,
        "metadata": row.metadata_status,
    }


# ---------------------------------------------------------------------- the book

BOOK_AMOUNTS = frozenset(
    {"amount", "cost", "fee", "remaining", "filled", "min_fill", "price_per_share"}
)
"""The amounts of an order book row (strings of base units)."""


def build_book_order_json(
    status: OrderStatus, label: TokenLabel, file: str, index: int
) -> dict[str, Any]:
    """An order of the book (``edgeshare trade book --json``; the core of ``GET
    /api/book``'s rows): ``file`` and ``index`` say where it is kept (an orders file and
    its place there; the web API's book: ``"book"`` and its id)."""
    order = status.order
    row: dict[str, Any] = {
        "file": file, "index": index, "order_hash": status.order_hash,
        "side": "sell" if order.sell else "buy", "token": order.share, "symbol": label.symbol,
        "node_id": label.node_id, "maker": order.maker, "price_per_share": order.price_per_share,
        "amount": order.amount, "filled": status.filled, "remaining": status.remaining,
        "min_fill": order.min_fill, "expiry": order.expiry, "state": status.state,
        "reason": status.reason, "cost": status.cost, "permit": order.permit is not None,
    }  # fmt: skip
    return amounts_as_strings(row, BOOK_AMOUNTS)  # type: ignore[no-any-return]


# ------------------------------------------------------------------ the portfolio

PORTFOLIO_AMOUNTS = frozenset(
    {"shares", "supply", "claimable", "total_claimable", "vesting", "total_vesting", "units",
     "committed", "shares_due", "refund_due", "remaining", "cost", "price_per_share"}
)  # fmt: skip
"""The portfolio's amounts (strings of base units in its JSON)."""


def build_commitment_json(c: Commitment) -> dict[str, object]:
    """One offering commitment of a portfolio (integers: see ``PORTFOLIO_AMOUNTS``)."""
    view = c.offering
    return {
        "offering": view.address, "node_id": view.node_id, "state": view.state, "end": view.end,
        "committed": c.committed, "shares": c.shares, "claimed": c.claimed,
        "shares_due": c.shares_due, "refund_due": c.refund_due,
    }  # fmt: skip


def build_open_order_json(
    status: OrderStatus, label: TokenLabel, file: str, index: int
) -> dict[str, object]:
    """One open order of a portfolio: ``file`` and ``index`` say where it is kept (an
    orders file and its place there; the web API's book: ``"book"`` and its id)."""
    order = status.order
    return {
        "file": file, "index": index, "order_hash": status.order_hash,
        "side": "sell" if order.sell else "buy", "token": order.share, "symbol": label.symbol,
        "node_id": label.node_id, "price_per_share": order.price_per_share,
        "remaining": status.remaining, "cost": status.cost, "expiry": order.expiry,
    }  # fmt: skip


def build_portfolio_json(
    holder: str,
    holdings: Sequence[Holding],
    units: Sequence[BasketHolding],
    commitments: Sequence[Commitment],
    open_orders: Sequence[dict[str, object]],
    coin: Token,
) -> dict[str, Any]:
    """``edgeshare portfolio ADDRESS --json`` (and the core of ``GET /api/portfolio``):
    ``open_orders`` built with ``build_open_order_json``."""
    total = sum(h.claimable for h in holdings) + sum(b.claimable for b in units)
    vesting = sum(h.vesting for h in holdings)
    data = {"holder": holder, "total_claimable": total, "total_vesting": vesting,
            "decimals": coin.decimals, "symbol": coin.symbol,
            "holdings": [dict(h.__dict__) for h in holdings],
            "baskets": [dict(b.__dict__) for b in units],
            "offerings": [build_commitment_json(c) for c in commitments],
            "orders": list(open_orders)}  # fmt: skip
    return amounts_as_strings(data, PORTFOLIO_AMOUNTS)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------- the status

STATUS_AMOUNTS = frozenset(
    {"price_per_1k", "next_price_per_1k", "unvested", "revenue", "shares", "supply",
     "claimable", "vesting", "operator_owed", "amount", "deposited", "redeemed", "unredeemed",
     "low_balance_threshold"}
)  # fmt: skip
"""The amounts of ``edgeshare status --json``."""


def build_status_json(
    clock: Clock,
    coin: Token,
    views: Sequence[NodeView],
    owed: int | None,
    positions: Sequence[Position] | None,
    channels: Sequence[ChannelView] | None,
) -> dict[str, Any]:
    """``edgeshare status --json``: the clock, the nodes, what an operator can withdraw,
    an investor's positions and a customer's channels (each part only when asked)."""
    data: dict[str, Any] = {
        "clock": clock.model_dump(),
        "stablecoin": {"symbol": coin.symbol, "decimals": coin.decimals},
        "share_decimals": SHARE_DECIMALS,
        "nodes": [v.model_dump() for v in views],
    }
    if owed is not None:
        data["withdrawable"] = str(owed)
    if positions is not None:
        data["positions"] = [p.model_dump() for p in positions]
    if channels is not None:
        data["channels"] = [c.model_dump() for c in channels]
    return amounts_as_strings(data, STATUS_AMOUNTS)  # type: ignore[no-any-return]


# -------------------------------------------------------------------- the offerings

OFFERING_AMOUNTS = frozenset(
    {"shares", "price_per_share", "soft_cap", "hard_cap", "investor_cap", "total_committed",
     "shares_sold", "shares_delivered", "total_refunded", "remaining", "fee", "amount",
     "committed", "shares_due", "refund_due", "paid", "proceeds", "shares_returned",
     "operator_paid"}
)  # fmt: skip
"""The amounts of ``edgeshare offering ... --json``."""


def build_offering_row(view: OfferingView) -> dict[str, Any]:
    """One offering's fields and progress (integers: see ``OFFERING_AMOUNTS``)."""
    data = view.model_dump()
    data.update(
        remaining=view.remaining,
        soft_cap_bps=view.soft_cap_bps,
        hard_cap_bps=view.hard_cap_bps,
        soft_cap_reached=view.total_committed >= view.soft_cap,
    )
    return data


def build_offerings_json(
    views: Sequence[OfferingView],
    coin: Token,
    investor: str | None = None,
    commitments: Sequence[Commitment] = (),
) -> dict[str, Any]:
    """``edgeshare offering status [OFFERING] [--investor A] --json``."""
    data: dict[str, Any] = {
        "offerings": amounts_as_strings([build_offering_row(v) for v in views], OFFERING_AMOUNTS),
        "decimals": coin.decimals,
        "share_decimals": SHARE_DECIMALS,
    }
    if investor:
        rows = [
            {**c.model_dump(exclude={"offering"}), "offering": c.offering.address,
             "node_id": c.offering.node_id, "state": c.offering.state}
            for c in commitments
        ]  # fmt: skip
        data.update(investor=investor, commitments=amounts_as_strings(rows, OFFERING_AMOUNTS))
    return data
