"""Operator and investor reports, from the index database and the chain.

Every amount is an integer in base units: stablecoin base units for money, 18-decimal
base units for shares. A report's fee, operator cut and holders' revenue are computed per
report exactly as the router does at finalization, so the totals of a report equal the
on-chain totals to the base unit. A report is as of one block, the index's last: every
chain read is made at that block, so the figures agree with each other.

People read whole units (``12.345678 USDC``, ``250,000 shares``) and epochs as UTC dates;
``--json`` keeps exact base units as strings next to the decimals. Formats: a table, CSV
(the same sections as the table), JSON, and one self-contained HTML page
(``edgeshare.report_html``).

The investor report is about the investor. Its headline is the investor's own claimed,
claimable, vesting and total earned revenue; its positions are every node where it holds
shares, has revenue to claim, has claimed, or earned in the epochs shown. Per epoch, its
share of a node's holders' revenue is ``holders * balance // supply`` with ``balance``
the investor's shares when that revenue was distributed (at the epoch's finalization;
for a pending epoch, as of the report's block), replayed from the indexed ``Transfer``
events. Distributed revenue then vests over the unlock period: shares sold while it
vests take the unvested part with them, so these per-epoch figures are an attribution
whose sum equals what the investor receives (to a base unit per epoch) when it kept its
shares until the revenue vested. The trailing yield is the revenue earned in the epochs
shown, annualised over their span (365-day years); as a percentage (basis points) it
needs what the shares cost, which the chain does not know (``cost_basis``).

A node's revenue of an epoch comes from its usage report and from payment channels. The
report's payer pays only what the epoch's channel revenue did not (``usage_revenue``, the
router's ``due``), which is split at finalization (or refunded if disputed); customers'
vouchers redeemed in the epoch (``channel_revenue``) were split at once, each redemption
with the epoch's operator cut, and are never disputed. Each part is split as the router
split it, so fee, cut and holders' revenue still add up to the chain's to the base unit.
An epoch with channel revenue and no settled report is shown with the state
``no report``; the operator report also shows what each customer's vouchers paid each
node. The investor's share of channel revenue is taken at its balance when each
redemption was distributed.
"""

from __future__ import annotations

import csv
import io
import json
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Select, func, select
from web3 import Web3

from edgeshare import indexer as idx
from edgeshare.baskets import fetch_basket_holdings, fetch_claimed
from edgeshare.errors import NodeNotFound
from edgeshare.offerings import (
    fetch_commitments,
    fetch_offering_addresses,
    fetch_offering_views,
)
from edgeshare.orders import fetch_orders_of
from edgeshare.suite import SharePosition, Suite
from edgeshare.units import (
    SHARE_DECIMALS,
    Token,
    format_bps,
    format_duration,
    format_units,
    format_utc,
)

__all__ = [
    "Report",
    "build_report",
    "build_sections",
    "render_csv",
    "render_json",
    "split",
]

MAX_BPS = 10_000
NO_REPORT = "no report"
"""The state of an epoch row with channel revenue and no settled usage report."""
STATES = ("pending", "finalized", "disputed", NO_REPORT)
SECONDS_PER_YEAR = 365 * 86_400

# Money fields (stablecoin base units) and share fields (18 decimals): strings in JSON.
MONEY_FIELDS = frozenset({
    "revenue", "operator_cut", "protocol_fee", "holders", "disputed_revenue", "pending_revenue",
    "holders_claimed", "holders_unclaimed", "claimed", "claimable", "vesting", "earned",
    "total_earned", "earned_in_epochs", "annualised", "cost_basis", "usage_revenue",
    "channel_revenue", "redeemed", "committed", "refund_due", "price_per_share",
})  # fmt: skip
SHARE_FIELDS = frozenset({"shares", "supply", "units", "shares_due", "remaining"})


@dataclass
class EpochRow:
    """One node's usage and money in one epoch: its settled usage report's, its channel
    revenue's, or both."""

    node_id: int
    epoch: int
    inferences: int
    revenue: int
    """``usage_revenue + channel_revenue`` (a disputed report's part included: see
    ``counted_revenue``)."""
    operator_cut: int
    """Of the report's revenue (unless disputed) and of the channel revenue, each split
    as the router split it; so are ``protocol_fee`` and ``holders``."""
    protocol_fee: int
    holders: int
    latency_ms: int
    uptime_bps: int
    state: str
    """The usage report's: pending, finalized, disputed, or ``no report``."""
    disputed: bool
    """The usage report was disputed (its payer was refunded; channel revenue stands)."""
    starts: str = ""
    """When the epoch began (UTC, ISO 8601)."""
    usage_revenue: int = 0
    """What the usage report's payer paid: inferences x price less the epoch's channel
    revenue, never below 0 (the router's ``due``)."""
    channel_revenue: int = 0
    """What customers' vouchers redeemed in the epoch paid the node."""

    @property
    def counted_revenue(self) -> int:
        """The revenue that stands: the channel revenue, and the report's unless disputed."""
        return self.channel_revenue + (0 if self.disputed else self.usage_revenue)


@dataclass
class NodeTotals:
    """One node's totals over the report's epochs (disputed revenue excluded)."""

    node_id: int
    region: str
    inferences: int = 0
    revenue: int = 0
    """``usage_revenue + channel_revenue``."""
    usage_revenue: int = 0
    channel_revenue: int = 0
    operator_cut: int = 0
    protocol_fee: int = 0
    holders: int = 0
    disputed_revenue: int = 0
    disputes: int = 0
    pending_revenue: int = 0
    holders_claimed: int = 0
    holders_unclaimed: int = 0


@dataclass
class CustomerRevenue:
    """What one customer's vouchers paid one node in the epochs shown."""

    node_id: int
    customer: str
    redeemed: int
    vouchers: int
    """Vouchers redeemed (each pays what it adds to the channel's redeemed total)."""
    first_epoch: int
    last_epoch: int


@dataclass
class ChannelTotals:
    """A (node, epoch)'s channel revenue and the router's splits of it, summed."""

    amount: int = 0
    protocol_fee: int = 0
    operator_cut: int = 0
    holders: int = 0


NO_CHANNEL_REVENUE = ChannelTotals()
"""The channel revenue of an epoch that has none (read, never added to)."""


@dataclass
class Position:
    """An investor's holding in one node, and what it earned there."""

    node_id: int
    region: str
    shares: int
    """Its balance as of the report's block."""
    supply: int
    claimed: int
    """Claimed by the investor, ever (the indexed ``RevenueClaimed`` events)."""
    claimable: int
    """Claimable now (vested)."""
    vesting: int
    """Its share of the node's unvested revenue at its current balance (rounded down)."""
    vesting_ends_at: int | None
    """When the node's unvested revenue is fully released (unix time; None: nothing vests)."""
    earned: int = 0
    """Its share of the holders' revenue of the epochs shown (see the module's notes)."""


@dataclass
class BasketPosition:
    """An investor's units of one basket, and what they earned."""

    basket: str
    symbol: str
    units: int
    supply: int
    claimed: int
    """Claimed from the basket, ever (its RevenueClaimed logs)."""
    claimable: int
    earned: int = field(init=False)
    """Everything the units earned: claimed plus claimable."""

    def __post_init__(self) -> None:
        self.earned = self.claimed + self.claimable


@dataclass
class OfferingPosition:
    """An investor's commitment to one offering, and what it is due."""

    offering: str
    node_id: int
    state: str
    committed: int
    shares: int
    """Share base units the commitment buys (rounded down)."""
    shares_due: int
    refund_due: int


@dataclass
class OpenOrder:
    """One of the investor's signed orders that could fill now (from its orders files)."""

    order_hash: str
    side: str
    token: str
    symbol: str
    remaining: int
    """Share (or basket) base units still to fill."""
    price_per_share: int
    expiry: int
    file: str


@dataclass
class Earning:
    """An investor's share of one node's holders' revenue in one epoch."""

    node_id: int
    epoch: int
    starts: str
    shares: int
    """The investor's balance when the epoch's revenue was distributed."""
    supply: int
    holders: int
    """The node's holders' revenue of the epoch (every holder)."""
    earned: int
    state: str


@dataclass
class InvestorSummary:
    """The investor's own figures: the headline of its report."""

    claimed: int
    claimable: int
    vesting: int
    vesting_ends_at: int | None
    total_earned: int
    """claimed + claimable + vesting."""
    earned_in_epochs: int
    """Its share of the holders' revenue of the epochs shown (disputed reports' excluded)."""
    yield_from_epoch: int | None
    yield_to_epoch: int | None
    yield_seconds: int
    """The span of the epochs the yield is derived from."""
    annualised: int
    """earned_in_epochs * 365 days // yield_seconds (0 when no epoch is shown)."""
    cost_basis: int | None = None
    yield_bps: int | None = None
    """annualised * 10,000 // cost_basis, when the cost basis is given."""


@dataclass
class Report:
    """An operator's or an investor's report."""

    kind: str
    subject: str
    chain_id: int
    decimals: int
    symbol: str
    protocol_fee_bps: int
    from_epoch: int | None
    to_epoch: int | None
    block: int = 0
    """The block the report is as of (the index's last)."""
    block_time: int = 0
    genesis: int = 0
    epoch_length: int = 1
    share_decimals: int = SHARE_DECIMALS
    empty_reason: str | None = None
    """Why the report has nothing to show, when it has not."""
    summary: InvestorSummary | None = None
    rows: list[EpochRow] = field(default_factory=list)
    nodes: list[NodeTotals] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    earnings: list[Earning] = field(default_factory=list)
    customers: list[CustomerRevenue] = field(default_factory=list)
    """What each customer's vouchers paid each node (not in an investor's report)."""
    baskets: list[BasketPosition] = field(default_factory=list)
    """An investor's basket units (only in an investor's report)."""
    offerings: list[OfferingPosition] = field(default_factory=list)
    """An investor's offering commitments (only in an investor's report)."""
    orders: list[OpenOrder] = field(default_factory=list)
    """An investor's open orders, among the orders files given (as the market is now)."""

    @property
    def token(self) -> Token:
        """The stablecoin the report's money is counted in."""
        return Token(self.decimals, self.symbol)

    def get_epoch_start(self, epoch: int) -> int:
        """The unix time epoch ``epoch`` began."""
        return self.genesis + epoch * self.epoch_length

    def get_epoch_label(self, epoch: int) -> str:
        """``5 (2025-01-01 10:00 UTC)``."""
        return f"{epoch} ({format_utc(self.get_epoch_start(epoch))})"

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON; money and shares as exact base-unit strings (rows copied
        shallowly: a report of a thousand nodes has a hundred thousand of them)."""
        data: dict[str, Any] = {}
        for name in REPORT_FIELDS:
            value = getattr(self, name)
            if name in ("rows", "nodes", "positions", "earnings", "customers", "baskets",
                        "offerings", "orders"):  # fmt: skip
                value = [_json_item(item) for item in value]
            elif name == "summary":
                value = None if value is None else _json_item(value)
            data[name] = value
        data["block_time_utc"] = get_iso(self.block_time)
        return data


REPORT_FIELDS = [f.name for f in fields(Report)]


_AMOUNT_KEYS: dict[type, tuple[str, ...]] = {}
"""Per row type, its fields that are money or shares (found once per type)."""


def _json_item(item: object) -> dict[str, Any]:
    """A row's fields, amounts as strings of base units (exact in any JSON reader)."""
    data: dict[str, Any] = vars(item)
    keys = _AMOUNT_KEYS.get(type(item))
    if keys is None:
        keys = tuple(k for k in data if k in MONEY_FIELDS or k in SHARE_FIELDS)
        _AMOUNT_KEYS[type(item)] = keys
    # a new dict: the row itself keeps its integers
    return data | {k: str(data[k]) for k in keys if type(data[k]) is int}


def get_iso(timestamp: int) -> str:
    """``2025-01-01T10:00:00Z``."""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def split(revenue: int, fee_bps: int, cut_bps: int) -> tuple[int, int, int]:
    """(fee, operator cut, holders) of one report, rounded as the router rounds."""
    fee = revenue * fee_bps // MAX_BPS
    cut = revenue * cut_bps // MAX_BPS
    return fee, cut, revenue - fee - cut


# --------------------------------------------------------------------------- building


def fetch_as_of(
    db: Connection, suite: Suite, head: Mapping[str, Any] | None = None
) -> tuple[int, int]:
    """(block, unix time) of the index's last block: what a report is as of. ``head``: a
    block header the caller read already (used when it is that block)."""
    m = idx.meta.c
    last = db.execute(select(m.value).where(m.key == "last_block")).scalar()
    block = int(last) if last is not None else int(suite.rpc.call("eth_blockNumber", []), 16)
    header = head if head is not None and int(head["number"], 16) == block else None
    if header is None:
        header = suite.rpc.call("eth_getBlockByNumber", [hex(block), False])
    return block, int(header["timestamp"], 16)


def _start_report(
    db: Connection,
    suite: Suite,
    kind: str,
    subject: str,
    epochs: tuple[int | None, int | None],
    head: Mapping[str, Any] | None = None,
) -> Report:
    """A report's header: token, fee, epoch calendar, the block it is as of."""
    block, block_time = fetch_as_of(db, suite, head)
    token = suite.fetch_stablecoin_token()
    k = suite.fetch_constants()
    return Report(
        kind, subject, suite.manifest.chain_id, token.decimals, token.symbol, k.protocol_fee_bps,
        *epochs, block=block, block_time=block_time, genesis=k.genesis,
        epoch_length=max(1, k.epoch_length),
    )  # fmt: skip


def build_report(
    db: Connection,
    suite: Suite,
    *,
    operator: str | None = None,
    node_ids: list[int] | None = None,
    investor: str | None = None,
    from_epoch: int | None = None,
    to_epoch: int | None = None,
    cost_basis: int | None = None,
    orders: Sequence[Path] = (),
    among: Sequence[int] | None = None,
    capital: bool = True,
    head: Mapping[str, Any] | None = None,
) -> Report:
    """Build the report of an operator (all their nodes), of given nodes, or of an investor.

    Args:
        db: The index (brought up to date by the caller).
        suite: The deployed suite; every read is made at the index's last block.
        operator: Report every node this operator runs.
        node_ids: Or these nodes (each must be registered: ``NodeNotFound`` otherwise).
        investor: Or this investor's own report.
        from_epoch: First epoch shown (default: the first with a settled report or
            channel revenue).
        to_epoch: Last epoch shown (default: the last with either).
        cost_basis: What the investor paid for its shares (stablecoin base units), for a
            yield in basis points.
        orders: Orders files or folders, where the investor's open orders are looked for.
        among: With ``investor``: the only nodes it may have positions in (those it ever
            received shares of, ``edgeshare.market.fetch_nodes_received``); default: all.
        capital: With ``investor``: read its basket units, offering commitments and open
            orders too (False: the caller reads them its own way).
        head: The chain's newest block header, when the caller read it (spares reading
            it again when the index is at that block).

    Returns:
        The report; ``empty_reason`` says why when it has nothing to show.
    """
    if investor is not None:
        kind, subject = "investor", str(Web3.to_checksum_address(investor))
        nodes = _fetch_index_nodes(db, ids=among)
    elif operator is not None:
        kind, subject = "operator", str(Web3.to_checksum_address(operator))
        nodes = _fetch_index_nodes(db, operator=subject)
    else:
        kind, subject = "nodes", ",".join(str(n) for n in node_ids or [])
        nodes = _fetch_index_nodes(db, ids=node_ids or [])
    report = _start_report(db, suite, kind, subject, (from_epoch, to_epoch), head)
    distributed: dict[int, int] | None = None  # read with the investor's positions
    if investor is not None:
        held = _investor_candidates(db, suite, report, nodes, among)
        selected = sorted(held)
        distributed = {n: p.total_distributed for n, p in held.items()}
    elif operator is not None:
        selected = sorted(nodes)
    else:
        selected = _check_node_ids(db, node_ids or [], nodes)
    channel = _add_usage(db, report, {n: nodes[n][2] for n in selected})
    _add_holder_claims(db, suite, report, {n: nodes[n][3] for n in selected}, distributed)
    if investor is not None:
        _add_earnings(db, report, {n: int(nodes[n][4] or 0) for n in selected}, channel)
        if capital:
            _add_capital(suite, report, orders)
        report.summary = build_investor_summary(report, cost_basis)
    else:
        _add_customers(db, report, selected)
    report.empty_reason = _get_empty_reason(report, lambda: _count_index_nodes(db))
    return report


def _fetch_index_nodes(
    db: Connection, *, operator: str | None = None, ids: Sequence[int] | None = None
) -> dict[int, Any]:
    """The index's node rows (id, operator, region, share token, shares) by id: all of
    them, or those of ``operator``, or those among ``ids`` (a report reads only the nodes
    it is about: 1,000 rows cost more than the rest of a one-node report)."""
    n = idx.nodes.c
    query = select(n.node_id, n.operator, n.region, n.share_token, n.shares)
    if operator is not None:
        query = query.where(n.operator == operator)
    if ids is not None:
        query = query.where(n.node_id.in_(sorted(set(ids))))
    return {int(r[0]): r for r in db.execute(query)}


def _count_index_nodes(db: Connection) -> int:
    return int(db.execute(select(func.count()).select_from(idx.nodes)).scalar() or 0)


def _add_capital(suite: Suite, report: Report, orders: Sequence[Path]) -> None:
    """The investor's basket units (with what they earned) and offering commitments, read
    from the chain at the report's block, and its open orders among ``orders`` (as the
    market stands now: orders live off chain)."""
    holder = report.subject
    held = fetch_basket_holdings(suite, holder, report.block)
    claimed = fetch_claimed(suite, [b.basket for b in held], holder, report.block)
    report.baskets = [
        BasketPosition(b.basket, b.symbol, b.units, b.supply, claimed[b.basket], b.claimable)
        for b in held
    ]
    views = fetch_offering_views(
        suite,
        fetch_offering_addresses(suite, block=report.block),
        (report.block, report.block_time),
    )
    report.offerings = [
        OfferingPosition(c.offering.address, c.offering.node_id, c.offering.state, c.committed,
                         c.shares, c.shares_due, c.refund_due)
        for c in fetch_commitments(suite, holder, views)
    ]  # fmt: skip
    report.orders = [
        OpenOrder(o.status.order_hash, "sell" if o.status.order.sell else "buy",
                  o.status.order.share, o.label.symbol, o.status.remaining,
                  o.status.order.price_per_share, o.status.order.expiry,
                  f"{o.filed.path}#{o.filed.index}")
        for o in (fetch_orders_of(suite, holder, orders) if orders else [])
    ]  # fmt: skip


def _check_node_ids(db: Connection, node_ids: list[int], nodes: dict[int, Any]) -> list[int]:
    """The node ids, sorted; an unknown one (not among ``nodes``, the index's rows of
    these ids) is refused (not a valid query)."""
    unknown = sorted(set(node_ids) - set(nodes))
    if unknown:
        newest = db.execute(select(func.max(idx.nodes.c.node_id))).scalar()
        known = f"nodes 1 to {newest}" if newest is not None else "no nodes"
        raise NodeNotFound(
            f"node {', '.join(map(str, unknown))} is not registered (the index has {known})"
        )
    return sorted(set(node_ids))


def _investor_candidates(
    db: Connection,
    suite: Suite,
    report: Report,
    nodes: dict[int, Any],
    among: Sequence[int] | None = None,
) -> dict[int, SharePosition]:
    """Every node where the investor holds shares, can claim, has claimed or ever held
    shares, with its position there read from the chain at the report's block (added to
    the report's positions)."""
    subject = report.subject
    claimed_by_node = _sum_claims(db, holder=subject)
    t = idx.transfers.c
    ever_held = {
        n for (n,) in db.execute(select(t.node_id).where(t.receiver == subject).distinct())
    }
    ids = sorted(nodes) if among is None else sorted(set(nodes) & set(among))
    found = suite.fetch_positions(subject, [nodes[n][3] for n in ids], block=report.block)
    held = {}
    for node_id, p in zip(ids, found, strict=True):
        claimed = claimed_by_node.get(node_id, 0)
        if not (p.balance or p.claimable or claimed or node_id in ever_held):
            continue
        held[node_id] = p
        report.positions.append(Position(
            node_id, nodes[node_id][2], p.balance, p.supply, claimed, p.claimable, p.vesting,
            p.vesting_ends_at if p.unvested else None,
        ))  # fmt: skip
    return held


def _in_epochs(query: Select[Any], epoch: Any, report: Report) -> Select[Any]:
    """``query`` limited to the report's epochs (``epoch``: the column)."""
    if report.from_epoch is not None:
        query = query.where(epoch >= report.from_epoch)
    if report.to_epoch is not None:
        query = query.where(epoch <= report.to_epoch)
    return query


def _fetch_channel_revenue(
    db: Connection, report: Report, node_ids: list[int]
) -> dict[tuple[int, int], ChannelTotals]:
    """Channel revenue per (node, epoch) shown and the router's splits of it, summed here
    (SQLite would sum the decimal text as floats)."""
    c = idx.channel_revenue.c
    query = select(c.node_id, c.epoch, c.amount, c.protocol_fee, c.operator_cut, c.holders)
    found: dict[tuple[int, int], ChannelTotals] = {}
    for node_id, epoch, amount, fee, cut, holders in db.execute(
        _in_epochs(query.where(c.node_id.in_(node_ids)), c.epoch, report)
    ).all():
        t = found.setdefault((node_id, epoch), ChannelTotals())
        t.amount += amount
        t.protocol_fee += fee
        t.operator_cut += cut
        t.holders += holders
    return found


def _add_usage(
    db: Connection, report: Report, regions: dict[int, str]
) -> dict[tuple[int, int], ChannelTotals]:
    """Per node and epoch rows (a settled usage report, channel revenue, or both) and per
    node totals of the selected nodes; returns the channel revenue per (node, epoch)."""
    totals = {n: NodeTotals(n, region) for n, region in regions.items()}
    if not totals:
        return {}
    channel = _fetch_channel_revenue(db, report, list(totals))
    u = idx.usage.c
    query = select(u.node_id, u.epoch, u.inferences, u.revenue, u.latency_ms, u.uptime_bps,
                   u.operator_cut_bps, u.state).where(u.node_id.in_(list(totals)))  # fmt: skip
    fee_bps, add = report.protocol_fee_bps, report.rows.append
    starts: dict[int, str] = {}

    def get_start(epoch: int) -> str:
        start = starts.get(epoch)
        if start is None:
            start = starts[epoch] = get_iso(report.get_epoch_start(epoch))
        return start

    # read in key order (no sort in the database), shown epoch by epoch (sorted below)
    # fetched whole: row by row, SQLAlchemy's cursor costs more than the rows' own work
    for node_id, epoch, inferences, due, latency, uptime, cut_bps, state in db.execute(
        _in_epochs(query, u.epoch, report).order_by(u.node_id, u.epoch)
    ).all():
        disputed = state == "disputed"
        fee, cut, holders = (0, 0, 0) if disputed else split(due, fee_bps, cut_bps)
        paid = channel.get((node_id, epoch), NO_CHANNEL_REVENUE)
        row = EpochRow(node_id, epoch, inferences, due + paid.amount, cut + paid.operator_cut,
                       fee + paid.protocol_fee, holders + paid.holders, latency, uptime, state,
                       disputed, get_start(epoch), due, paid.amount)  # fmt: skip
        add(row)
        _add_to_totals(totals[node_id], row)
    reported = {(r.node_id, r.epoch) for r in report.rows}
    for (node_id, epoch), paid in channel.items():
        if (node_id, epoch) in reported:
            continue
        row = EpochRow(node_id, epoch, 0, paid.amount, paid.operator_cut, paid.protocol_fee,
                       paid.holders, 0, 0, NO_REPORT, False, get_start(epoch), 0,
                       paid.amount)  # fmt: skip
        add(row)
        _add_to_totals(totals[node_id], row)
    report.rows.sort(key=attrgetter("epoch", "node_id"))
    report.nodes = [totals[n] for n in sorted(totals)]
    return channel


def _add_to_totals(t: NodeTotals, row: EpochRow) -> None:
    """Count one row in its node's totals (a disputed report only as a dispute; the
    channel revenue of its epoch stands)."""
    t.channel_revenue += row.channel_revenue
    t.revenue += row.counted_revenue
    t.operator_cut += row.operator_cut
    t.protocol_fee += row.protocol_fee
    t.holders += row.holders
    if row.disputed:
        t.disputes += 1
        t.disputed_revenue += row.usage_revenue
        return
    t.inferences += row.inferences
    t.usage_revenue += row.usage_revenue
    if row.state == "pending":
        t.pending_revenue += row.usage_revenue


def _add_customers(db: Connection, report: Report, node_ids: list[int]) -> None:
    """What each customer's vouchers paid each selected node in the epochs shown, the
    largest customers of each node first."""
    r = idx.channel_redemptions.c
    query = select(r.node_id, r.customer, r.epoch, r.amount).where(r.node_id.in_(node_ids))
    found: dict[tuple[int, str], CustomerRevenue] = {}
    for node_id, customer, epoch, amount in db.execute(_in_epochs(query, r.epoch, report)).all():
        c = found.get((node_id, customer))
        if c is None:
            c = found[(node_id, customer)] = CustomerRevenue(node_id, customer, 0, 0, epoch, epoch)
        c.redeemed += amount
        c.vouchers += 1
        c.first_epoch, c.last_epoch = min(c.first_epoch, epoch), max(c.last_epoch, epoch)
    report.customers = sorted(found.values(), key=lambda c: (c.node_id, -c.redeemed, c.customer))


def _add_holder_claims(
    db: Connection,
    suite: Suite,
    report: Report,
    share_tokens: dict[int, str],
    distributed: dict[int, int] | None = None,
) -> None:
    """Every holder's claimed and unclaimed revenue per node (all of it, not only the
    epochs shown): claimed is the sum of the RevenueClaimed events (no on-chain counter).
    ``distributed``: each node's ``total_distributed`` at the report's block, when the
    caller read it already."""
    if not report.nodes:
        return
    ids = [t.node_id for t in report.nodes]
    if distributed is None:
        shares = [suite.share_at(share_tokens[n]) for n in ids]
        values = suite.reader.each(shares, ("total_distributed",), block=report.block)
        distributed = {n: int(total) for n, (total,) in zip(ids, values, strict=True)}
    claimed_of = _sum_claims(db, node_ids=ids)
    for t in report.nodes:
        t.holders_claimed = claimed_of.get(t.node_id, 0)
        t.holders_unclaimed = distributed[t.node_id] - t.holders_claimed


def _sum_claims(
    db: Connection, holder: str | None = None, node_ids: list[int] | None = None
) -> dict[int, int]:
    """Revenue claimed per node (by ``holder``, or by everyone; of ``node_ids``, or of every
    node), summed exactly here: SQLite would sum the decimal text as floats."""
    c = idx.claims.c
    query = select(c.node_id, c.amount)
    if holder is not None:
        query = query.where(c.holder == holder)
    if node_ids is not None:
        query = query.where(c.node_id.in_(node_ids))
    totals: dict[int, int] = {}
    for node_id, amount in db.execute(query).all():
        totals[node_id] = totals.get(node_id, 0) + amount
    return totals


Mark = tuple[int, int]
"""(block, log index): a point in the chain's event order."""


def _fetch_balance_history(
    db: Connection, holder: str, node_ids: list[int]
) -> dict[int, tuple[list[Mark], list[int]]]:
    """Per node, the points where ``holder``'s balance changed and the balance after each,
    replayed from the indexed Transfer events (the mint included)."""
    t = idx.transfers.c
    query = (
        select(t.node_id, t.block, t.log_index, t.sender, t.receiver, t.value)
        .where(t.node_id.in_(node_ids))
        .where((t.sender == holder) | (t.receiver == holder))
        .order_by(t.block, t.log_index)
    )
    history: dict[int, tuple[list[Mark], list[int]]] = {}
    for node_id, block, log_index, sender, receiver, value in db.execute(query).all():
        marks, balances = history.setdefault(node_id, ([], []))
        balance = balances[-1] if balances else 0
        balance += (value if receiver == holder else 0) - (value if sender == holder else 0)
        marks.append((block, log_index))
        balances.append(balance)
    return history


def _fetch_distributions(
    db: Connection, node_ids: list[int], until_block: int
) -> dict[tuple[int, int], Mark]:
    """When each (node, epoch)'s revenue went to its holders (its RevenueFinalized event),
    for those up to ``until_block``, the last block in which the holder's balance changed:
    a later one sees the holder's latest balance, which is what a missing one is given."""
    s = idx.usage_states.c
    query = (
        select(s.node_id, s.epoch, s.block, s.log_index)
        .where(s.node_id.in_(node_ids))
        .where(s.state == "finalized")
        .where(s.block <= until_block)
    )
    return {(n, e): (b, i) for n, e, b, i in db.execute(query).all()}


def _fetch_channel_credits(
    db: Connection, node_ids: list[int], until_block: int
) -> dict[tuple[int, int], list[tuple[Mark, int]]]:
    """When each (node, epoch)'s channel revenue went to its holders and how much each
    time (every redemption is distributed at once), for those up to ``until_block``, as
    ``_fetch_distributions``."""
    c = idx.channel_revenue.c
    query = (
        select(c.node_id, c.epoch, c.block, c.log_index, c.holders)
        .where(c.node_id.in_(node_ids))
        .where(c.block <= until_block)
    )
    found: dict[tuple[int, int], list[tuple[Mark, int]]] = {}
    for n, e, b, i, holders in db.execute(query).all():
        found.setdefault((n, e), []).append(((b, i), holders))
    return found


def _get_distributions(
    row: EpochRow, finalized_at: Mark, credits: list[tuple[Mark, int]], channel: int, now: Mark
) -> list[tuple[Mark, int]]:
    """(when, holders' revenue) of each distribution of ``row``'s revenue: its usage
    report's at finalization (none if disputed), each redemption's when it was credited;
    ``channel`` is the row's channel holders' revenue, of which credits not listed (after
    the investor's last balance change) are at ``now``."""
    parts = []
    if row.state in ("pending", "finalized"):
        parts.append((finalized_at, row.holders - channel))
    parts += credits
    listed = sum(holders for _, holders in credits)
    if channel > listed:
        parts.append((now, channel - listed))
    return parts


def _build_earning(
    row: EpochRow,
    parts: list[tuple[Mark, int]],
    history: tuple[list[Mark], list[int]],
    supply: int,
) -> Earning | None:
    """The investor's share of ``row``'s distributions ``parts`` at its balance at each
    (None: it held nothing at any): the distributions at one balance are summed, then
    rounded down as a claim rounds."""
    marks, balances = history
    at_balance: dict[int, int] = defaultdict(int)
    last = max(parts)[0]
    shares = 0
    for mark, holders in parts:
        i = bisect_right(marks, mark)
        balance = balances[i - 1] if i else 0
        at_balance[balance] += holders
        if mark == last:
            shares = balance
    if not any(at_balance):
        return None
    earned = sum(holders * b // max(1, supply) for b, holders in at_balance.items())
    return Earning(row.node_id, row.epoch, row.starts, shares, supply, row.holders, earned,
                   row.state)  # fmt: skip


def _add_earnings(
    db: Connection,
    report: Report,
    supplies: dict[int, int],
    channel: dict[tuple[int, int], ChannelTotals],
) -> None:
    """The investor's share of each shown epoch's holders' revenue (module notes)."""
    ids = sorted(supplies)
    if not ids:
        return
    history = _fetch_balance_history(db, report.subject, ids)
    last_change = max((marks[-1][0] for marks, _ in history.values()), default=-1)
    held = sorted(history)
    finalized = _fetch_distributions(db, held, last_change) if history else {}
    credited = _fetch_channel_credits(db, held, last_change) if history else {}
    now: Mark = (report.block + 1, 0)  # after every balance change: the latest balance
    by_node: dict[int, int] = defaultdict(int)
    add = report.earnings.append
    for row in report.rows:
        found = history.get(row.node_id)
        if found is None:
            continue  # never held: earns nothing
        key = (row.node_id, row.epoch)
        paid = channel.get(key, NO_CHANNEL_REVENUE).holders
        parts = _get_distributions(row, finalized.get(key, now), credited.get(key, []), paid, now)
        earning = _build_earning(row, parts, found, supplies[row.node_id]) if parts else None
        if earning is None:
            continue  # nothing was distributed, or it held no shares then
        add(earning)
        by_node[row.node_id] += earning.earned
    for p in report.positions:
        p.earned = by_node.get(p.node_id, 0)


def build_investor_summary(report: Report, cost_basis: int | None = None) -> InvestorSummary:
    """The investor's headline from its positions and per-epoch earnings.

    The yield is derived from the epochs shown: what it earned in them, times a 365-day
    year over their span (first to last shown epoch, whole epochs), rounded down.
    """
    p = report.positions
    claimed, claimable = sum(x.claimed for x in p), sum(x.claimable for x in p)
    vesting = sum(x.vesting for x in p)
    ends = [x.vesting_ends_at for x in p if x.vesting and x.vesting_ends_at is not None]
    shown = sorted({r.epoch for r in report.rows if r.counted_revenue or not r.disputed})
    span = (shown[-1] - shown[0] + 1) * report.epoch_length if shown else 0
    earned = sum(e.earned for e in report.earnings)
    annualised = earned * SECONDS_PER_YEAR // span if span else 0
    yield_bps = annualised * MAX_BPS // cost_basis if cost_basis else None
    return InvestorSummary(
        claimed, claimable, vesting, max(ends) if ends else None, claimed + claimable + vesting,
        earned, shown[0] if shown else None, shown[-1] if shown else None, span, annualised,
        cost_basis, yield_bps,
    )  # fmt: skip


def _get_empty_reason(report: Report, count_nodes: Callable[[], int]) -> str | None:
    """Why a report has nothing to show (None when it has something); ``count_nodes``
    counts the index's nodes (asked only to say so)."""
    span = _describe_range(report)
    if report.kind == "investor" and not report.positions:
        return (
            f"{report.subject} holds no shares, has nothing to claim and has never held "
            f"shares of any of the {count_nodes()} nodes (as of block {report.block})"
        )
    if report.kind == "operator" and not report.nodes:
        return f"{report.subject} operates none of the {count_nodes()} registered nodes"
    if not report.rows:
        return (
            f"no usage report was settled and no channel revenue was redeemed for these "
            f"nodes in {span}"
        )
    return None


def _describe_range(report: Report) -> str:
    """``epochs 3 to 7``, ``epochs from 3``, ``any epoch``."""
    a, b = report.from_epoch, report.to_epoch
    if a is not None and b is not None:
        return f"epochs {a} to {b}"
    if a is not None:
        return f"epochs from {a}"
    if b is not None:
        return f"epochs up to {b}"
    return "any epoch"


# --------------------------------------------------------------------------- sections


@dataclass
class Section:
    """One table of a report: the same content in the table, CSV and HTML formats."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[str]]


def _cells(human: bool, decimals: int) -> tuple[Callable[[int], str], Callable[[int], str]]:
    """(money, shares) cell formatters: whole units with symbol and separators for people,
    plain exact decimals for CSV (a spreadsheet reads them as numbers)."""
    if human:
        return (lambda v: format_units(v, decimals)), (lambda v: format_units(v, SHARE_DECIMALS))

    def plain(d: int) -> Callable[[int], str]:
        return lambda v: format_units(v, d, exact=True).replace(",", "")

    return plain(decimals), plain(SHARE_DECIMALS)


def _time(timestamp: int | None) -> str:
    return "-" if timestamp is None else format_utc(timestamp)


def build_sections(report: Report, *, human: bool = True) -> list[Section]:
    """Every table of the report, in order: header, headline, positions, nodes, epochs,
    then the investor's earnings per epoch, or each customer's channel revenue."""
    money, _ = _cells(human, report.decimals)
    unit = f" ({report.symbol})"
    sections = [_header_section(report)]
    sections.append(Section("summary", "Headline", ["figure", "value"],
                            [[k, v] for k, v in get_headline(report, human)]))  # fmt: skip
    if report.kind == "investor":
        sections.append(_positions_section(report, human))
        sections.append(_baskets_section(report, human))
        sections.append(_offerings_section(report, human))
        sections.append(_orders_section(report, human))
    sections.append(Section(
        "nodes", "Totals per node",
        ["node", "region", "inferences", "revenue" + unit, "from usage reports" + unit,
         "from channels" + unit, "operator cut" + unit, "protocol fee" + unit,
         "to holders" + unit, "holders claimed" + unit, "holders unclaimed" + unit, "disputes"],
        [[str(t.node_id), t.region, f"{t.inferences:,}" if human else str(t.inferences),
          money(t.revenue), money(t.usage_revenue), money(t.channel_revenue),
          money(t.operator_cut), money(t.protocol_fee), money(t.holders),
          money(t.holders_claimed), money(t.holders_unclaimed), str(t.disputes)]
         for t in report.nodes],
    ))  # fmt: skip
    sections.append(_epochs_section(report, human))
    if report.kind == "investor":
        sections.append(_earnings_section(report, human))
    else:
        sections.append(_customers_section(report, human))
    return sections


def _epochs_section(report: Report, human: bool) -> Section:
    money, _ = _cells(human, report.decimals)
    unit = f" ({report.symbol})"
    rows = []
    for r in report.rows:
        reported = r.state != NO_REPORT  # else no latency or uptime was attested
        rows.append([
            str(r.epoch), _time(report.get_epoch_start(r.epoch)), str(r.node_id),
            f"{r.inferences:,}" if human else str(r.inferences), money(r.revenue),
            money(r.usage_revenue), money(r.channel_revenue), money(r.operator_cut),
            money(r.protocol_fee), money(r.holders), str(r.latency_ms) if reported else "-",
            format_bps(r.uptime_bps) if reported else "-", r.state,
        ])  # fmt: skip
    return Section(
        "epochs", "Per epoch and node",
        ["epoch", "starts (UTC)", "node", "inferences", "revenue" + unit,
         "from usage report" + unit, "from channels" + unit, "operator cut" + unit,
         "fee" + unit, "to holders" + unit, "latency ms", "uptime", "state"],
        rows,
    )  # fmt: skip


def _customers_section(report: Report, human: bool) -> Section:
    money, _ = _cells(human, report.decimals)
    return Section(
        "customers", "Channel revenue per customer",
        ["node", "customer", "vouchers redeemed", f"paid ({report.symbol})", "first epoch",
         "last epoch"],
        [[str(c.node_id), c.customer, f"{c.vouchers:,}" if human else str(c.vouchers),
          money(c.redeemed), str(c.first_epoch), str(c.last_epoch)] for c in report.customers],
    )  # fmt: skip


def _header_section(report: Report) -> Section:
    """What the report is of, as of when, on which chain, in which units."""
    epochs = sorted({r.epoch for r in report.rows})
    shown = (f"{report.get_epoch_label(epochs[0])} to {report.get_epoch_label(epochs[-1])}"
             if epochs else _describe_range(report))  # fmt: skip
    rows = [
        ["report", report.kind],
        ["subject", report.subject],
        ["chain id", str(report.chain_id)],
        ["as of block", str(report.block)],
        ["as of time", format_utc(report.block_time)],
        ["epochs", shown],
        ["epoch length", f"{report.epoch_length:,} s"],
        ["protocol fee", format_bps(report.protocol_fee_bps)],
        ["amounts", f"whole {report.symbol} ({report.decimals} decimals), exact"],
    ]
    if report.empty_reason:
        rows.append(["note", report.empty_reason])
    return Section("report", "Report", ["field", "value"], rows)


def get_headline(report: Report, human: bool = True) -> list[tuple[str, str]]:
    """The headline figures: the investor's own, or the nodes' totals for an operator."""
    money, _ = _cells(human, report.decimals)
    sym = f" {report.symbol}" if human else ""
    s = report.summary
    if s is not None:
        figures = [
            ("claimed", money(s.claimed) + sym),
            ("claimable now", money(s.claimable) + sym),
            ("vesting", money(s.vesting) + sym),
            ("vesting ends", _time(s.vesting_ends_at)),
            ("total earned (claimed + claimable + vesting)", money(s.total_earned) + sym),
            ("earned in the epochs shown", money(s.earned_in_epochs) + sym),
            (f"annualised ({get_yield_basis(report)})", money(s.annualised) + sym + " per year"),
        ]
        if s.yield_bps is not None and s.cost_basis is not None:
            figures.append((f"yield on a cost of {money(s.cost_basis)}{sym}",
                            format_bps(s.yield_bps) + " per year"))  # fmt: skip
        return figures
    n = report.nodes
    return [
        ("revenue", money(sum(t.revenue for t in n)) + sym),
        ("from usage reports", money(sum(t.usage_revenue for t in n)) + sym),
        ("from channels", money(sum(t.channel_revenue for t in n)) + sym),
        ("inferences", f"{sum(t.inferences for t in n):,}"),
        ("to holders", money(sum(t.holders for t in n)) + sym),
        ("operator cut", money(sum(t.operator_cut for t in n)) + sym),
        ("protocol fee", money(sum(t.protocol_fee for t in n)) + sym),
        ("disputed reports", str(sum(t.disputes for t in n))),
    ]


def get_yield_basis(report: Report) -> str:
    """How the yield was derived: ``from epochs 0 to 11: 12 epochs, 1d, scaled to 365 days``."""
    s = report.summary
    if s is None or s.yield_from_epoch is None or s.yield_to_epoch is None:
        return "no epoch shown"
    count = s.yield_to_epoch - s.yield_from_epoch + 1
    return (f"from epochs {s.yield_from_epoch} to {s.yield_to_epoch}: {count} epochs, "
            f"{format_duration(s.yield_seconds)}, scaled to 365 days")  # fmt: skip


def _positions_section(report: Report, human: bool) -> Section:
    money, shares = _cells(human, report.decimals)
    unit = f" ({report.symbol})"
    return Section(
        "positions", "Positions",
        ["node", "region", "shares", "of supply", "claimed" + unit, "claimable" + unit,
         "vesting" + unit, "vesting ends", "earned in epochs shown" + unit],
        [[str(p.node_id), p.region, shares(p.shares),
          format_bps(p.shares * MAX_BPS // max(1, p.supply)), money(p.claimed),
          money(p.claimable), money(p.vesting), _time(p.vesting_ends_at), money(p.earned)]
         for p in report.positions],
    )  # fmt: skip


def _baskets_section(report: Report, human: bool) -> Section:
    money, shares = _cells(human, report.decimals)
    unit = f" ({report.symbol})"
    return Section(
        "baskets", "Baskets",
        ["basket", "symbol", "units", "of supply", "claimed" + unit, "claimable" + unit,
         "earned" + unit],
        [[b.basket, b.symbol, shares(b.units), format_bps(b.units * MAX_BPS // max(1, b.supply)),
          money(b.claimed), money(b.claimable), money(b.earned)] for b in report.baskets],
    )  # fmt: skip


def _offerings_section(report: Report, human: bool) -> Section:
    money, shares = _cells(human, report.decimals)
    unit = f" ({report.symbol})"
    return Section(
        "offerings", "Offerings committed to",
        ["offering", "node", "state", "committed" + unit, "buys (shares)",
         "shares to claim", "refund due" + unit],
        [[o.offering, str(o.node_id), o.state.lower(), money(o.committed), shares(o.shares),
          shares(o.shares_due), money(o.refund_due)] for o in report.offerings],
    )  # fmt: skip


def _orders_section(report: Report, human: bool) -> Section:
    money, shares = _cells(human, report.decimals)
    return Section(
        "orders", "Open orders",
        ["side", "token", "remaining", f"price per share ({report.symbol})", "expires (UTC)",
         "file"],
        [[o.side, o.symbol, shares(o.remaining), money(o.price_per_share), _time(o.expiry),
          o.file] for o in report.orders],
    )  # fmt: skip


def _earnings_section(report: Report, human: bool) -> Section:
    money, shares = _cells(human, report.decimals)
    unit = f" ({report.symbol})"
    return Section(
        "earnings", "Your revenue per epoch",
        ["epoch", "starts (UTC)", "node", "your shares", "of supply", "to all holders" + unit,
         "yours" + unit, "state"],
        [[str(e.epoch), _time(report.get_epoch_start(e.epoch)), str(e.node_id),
          shares(e.shares),
          format_bps(e.shares * MAX_BPS // max(1, e.supply)), money(e.holders),
          money(e.earned), e.state] for e in report.earnings],
    )  # fmt: skip


# --------------------------------------------------------------------------- CSV, JSON


def render_csv(report: Report) -> str:
    """The report's sections, each as ``# key`` then a header row and its rows, separated
    by a blank line; amounts are exact decimals in whole units (the header names the
    token), times UTC."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for i, section in enumerate(build_sections(report, human=False)):
        if i:
            out.write("\n")
        out.write(f"# {section.key}\n")
        writer.writerow(section.columns)
        writer.writerows(section.rows)
    return out.getvalue()


def render_json(report: Report) -> str:
    """The whole report as JSON, one row per line; money and shares are exact base-unit
    strings (``decimals`` and ``share_decimals`` say how to read them)."""
    parts = []
    for key, value in report.as_dict().items():
        if isinstance(value, list) and value:
            items = ",\n    ".join(json.dumps(item) for item in value)
            text = f"[\n    {items}\n  ]"
        else:
            text = json.dumps(value)
        parts.append(f"  {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(parts) + "\n}\n"
