"""Operator and investor reports, from the index database and the chain.

Every amount is an integer in stablecoin base units. A report's fee, operator cut and
holders' revenue are computed per report exactly as the router does at finalization,
so the totals of a report equal the on-chain totals to the base unit. Formats: a table,
CSV, JSON, and one self-contained HTML page (inline SVG charts, no scripts, no network)
that an operator can send to investors.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy import Connection, select
from web3 import Web3

from edgeshare import indexer as idx
from edgeshare.rpc import RpcError
from edgeshare.suite import Suite

MAX_BPS = 10_000
STATES = ("pending", "finalized", "disputed")


@dataclass
class EpochRow:
    """One node's usage and money in one epoch."""

    node_id: int
    epoch: int
    inferences: int
    revenue: int
    operator_cut: int
    protocol_fee: int
    holders: int
    latency_ms: int
    uptime_bps: int
    state: str
    disputed: bool


@dataclass
class NodeTotals:
    """One node's totals over the report's epochs (disputed revenue excluded)."""

    node_id: int
    region: str
    inferences: int = 0
    revenue: int = 0
    operator_cut: int = 0
    protocol_fee: int = 0
    holders: int = 0
    disputed_revenue: int = 0
    disputes: int = 0
    pending_revenue: int = 0
    holders_claimed: int = 0
    holders_unclaimed: int = 0


@dataclass
class Position:
    """An investor's holding in one node."""

    node_id: int
    region: str
    shares: int
    supply: int
    claimed: int
    claimable: int


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
    rows: list[EpochRow] = field(default_factory=list)
    nodes: list[NodeTotals] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain data; amounts stay integers (rows copied shallowly: a report of a thousand
        nodes has a hundred thousand of them, and ``dataclasses.asdict`` deep-copies)."""
        data = {name: getattr(self, name) for name in REPORT_FIELDS}
        for name in ("rows", "nodes", "positions"):
            data[name] = [dict(vars(item)) for item in data[name]]
        return data


REPORT_FIELDS = [f.name for f in fields(Report)]


def split(revenue: int, fee_bps: int, cut_bps: int) -> tuple[int, int, int]:
    """(fee, operator cut, holders) of one report, rounded as the router rounds."""
    fee = revenue * fee_bps // MAX_BPS
    cut = revenue * cut_bps // MAX_BPS
    return fee, cut, revenue - fee - cut


def _token_meta(suite: Suite) -> tuple[int, str]:
    coin = suite.stablecoin
    decimals, symbol = suite.reader.try_many([coin.read("decimals"), coin.read("symbol")])
    if isinstance(decimals, RpcError) or isinstance(symbol, RpcError):
        return 0, "units"  # a token without the optional metadata
    return int(decimals), str(symbol)


def build_report(
    db: Connection,
    suite: Suite,
    *,
    operator: str | None = None,
    node_ids: list[int] | None = None,
    investor: str | None = None,
    from_epoch: int | None = None,
    to_epoch: int | None = None,
) -> Report:
    """Build the report of an operator (all their nodes), of given nodes, or of an investor."""
    nodes = {
        r[0]: r
        for r in db.execute(
            select(
                idx.nodes.c.node_id,
                idx.nodes.c.operator,
                idx.nodes.c.region,
                idx.nodes.c.share_token,
            )
        )
    }
    subject: str
    if investor is not None:
        kind, subject = "investor", str(Web3.to_checksum_address(investor))
    elif operator is not None:
        kind, subject = "operator", str(Web3.to_checksum_address(operator))
    else:
        kind, subject = "nodes", ",".join(str(n) for n in node_ids or [])
    decimals, symbol = _token_meta(suite)
    fee_bps = int(suite.router.call("PROTOCOL_FEE_BPS"))
    report = Report(
        kind, subject, suite.manifest.chain_id, decimals, symbol, fee_bps, from_epoch, to_epoch
    )

    if investor is not None:
        held = []
        claimed_by_node = _sum_claims(db, holder=subject)
        ids = sorted(nodes)
        shares = [suite.share_at(nodes[n][3]) for n in ids]
        values = suite.reader.each(
            shares, ("balanceOf", subject), ("totalSupply",), ("claimable", subject)
        )
        for node_id, (balance, supply, claimable) in zip(ids, values, strict=True):
            region = nodes[node_id][2]
            claimed = claimed_by_node.get(node_id, 0)
            if balance == 0 and claimed == 0:
                continue
            held.append(node_id)
            report.positions.append(Position(node_id, region, balance, supply, claimed, claimable))
        selected = held
    elif operator is not None:
        selected = sorted(n for n, r in nodes.items() if r[1] == subject)
    else:
        selected = sorted(node_ids or [])

    totals = {n: NodeTotals(n, nodes[n][2]) for n in selected if n in nodes}
    u = idx.usage.c
    query = select(u.node_id, u.epoch, u.inferences, u.revenue, u.latency_ms, u.uptime_bps,
                   u.operator_cut_bps, u.state)  # fmt: skip
    if len(totals) < len(nodes):
        query = query.where(u.node_id.in_(list(totals)))
    if from_epoch is not None:
        query = query.where(u.epoch >= from_epoch)
    if to_epoch is not None:
        query = query.where(u.epoch <= to_epoch)
    # read in key order (no sort in the database), shown epoch by epoch (sorted below)
    for node_id, epoch, inferences, revenue, latency, uptime, cut_bps, state in db.execute(
        query.order_by(u.node_id, u.epoch)
    ):
        if node_id not in totals:
            continue
        disputed = state == "disputed"
        fee, cut, holders = (0, 0, 0) if disputed else split(revenue, fee_bps, cut_bps)
        report.rows.append(EpochRow(node_id, epoch, inferences, revenue, cut, fee, holders,
                                    latency, uptime, state, disputed))  # fmt: skip
        t = totals[node_id]
        if disputed:
            t.disputes += 1
            t.disputed_revenue += revenue
            continue
        t.inferences += inferences
        t.revenue += revenue
        t.operator_cut += cut
        t.protocol_fee += fee
        t.holders += holders
        if state == "pending":
            t.pending_revenue += revenue
    report.rows.sort(key=lambda r: (r.epoch, r.node_id))
    shares = [suite.share_at(nodes[n][3]) for n in totals]
    distributed_of = dict(
        zip(totals, suite.reader.each(shares, ("total_distributed",)), strict=True)
    )
    # what was claimed is the sum of the RevenueClaimed events (no on-chain counter)
    claimed_of = _sum_claims(db)
    for node_id, t in totals.items():
        (distributed,) = distributed_of[node_id]
        t.holders_claimed = claimed_of.get(node_id, 0)
        t.holders_unclaimed = distributed - t.holders_claimed
    report.nodes = [totals[n] for n in sorted(totals)]
    return report


def _sum_claims(db: Connection, holder: str | None = None) -> dict[int, int]:
    """Revenue claimed per node (by ``holder``, or by everyone), summed exactly here: SQLite
    would sum the decimal text as floats."""
    c = idx.claims.c
    query = select(c.node_id, c.amount)
    if holder is not None:
        query = query.where(c.holder == holder)
    totals: dict[int, int] = {}
    for node_id, amount in db.execute(query):
        totals[node_id] = totals.get(node_id, 0) + amount
    return totals


def format_units(amount: int, decimals: int) -> str:
    """An exact decimal string of a base-unit amount (integer arithmetic only)."""
    if decimals == 0:
        return f"{amount:,}"
    whole, frac = divmod(abs(amount), 10**decimals)
    sign = "-" if amount < 0 else ""
    return f"{sign}{whole:,}.{frac:0{decimals}d}"


def format_bps(bps: int) -> str:
    """Basis points as an exact percentage string, e.g. 9_987 -> "99.87%"."""
    return f"{bps // 100}.{bps % 100:02d}%"


ROW_FIELDS = ["node_id", "epoch", "inferences", "revenue", "operator_cut", "protocol_fee", "holders",
              "latency_ms", "uptime_bps", "state", "disputed"]  # fmt: skip


def render_csv(report: Report) -> str:
    """One CSV row per node and epoch; amounts in base units."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ROW_FIELDS)
    for row in report.rows:
        writer.writerow([getattr(row, f) for f in ROW_FIELDS])
    return out.getvalue()


def render_json(report: Report) -> str:
    """The whole report as JSON, one row per line; amounts are exact integers."""
    parts = []
    for key, value in report.as_dict().items():
        if isinstance(value, list) and value:
            items = ",\n    ".join(json.dumps(item) for item in value)
            text = f"[\n    {items}\n  ]"
        else:
            text = json.dumps(value)
        parts.append(f"  {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


# --------------------------------------------------------------------------- HTML

PALETTE = ["#2563eb", "#16a34a", "#ea580c", "#9333ea", "#0891b2", "#dc2626", "#ca8a04", "#4f46e5"]


def _svg_bars(title: str, series: dict[str, dict[int, int]], x_labels: list[int], unit: str) -> str:
    """Grouped bars: one group per x label, one bar per series."""
    width, height, left, bottom, top = 760, 260, 70, 30, 30
    peak = max([v for s in series.values() for v in s.values()] + [1])
    plot_w, plot_h = width - left - 10, height - top - bottom
    group_w = plot_w / max(1, len(x_labels))
    bar_w = max(1.0, group_w * 0.8 / max(1, len(series)))
    parts = [f'<svg class="chart" role="img" aria-label="{html.escape(title)}" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
             f'<title>{html.escape(title)}</title>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" stroke="#999"/>',
             f'<text x="{left - 6}" y="{top + 4}" font-size="10" text-anchor="end">{peak:,}</text>',
             f'<text x="{left - 6}" y="{top + plot_h}" font-size="10" text-anchor="end">0</text>',
             f'<text x="4" y="14" font-size="11" fill="#555">{html.escape(unit)}</text>']  # fmt: skip
    for gi, x in enumerate(x_labels):
        gx = left + gi * group_w + group_w * 0.1
        for si, values in enumerate(series.values()):
            value = values.get(x, 0)
            h = plot_h * value / peak  # drawing coordinates only; the amounts stay exact
            parts.append(f'<rect x="{gx + si * bar_w:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}" '
                         f'height="{h:.1f}" fill="{PALETTE[si % len(PALETTE)]}"><title>{value:,}</title></rect>')  # fmt: skip
        if len(x_labels) <= 31 or gi % max(1, len(x_labels) // 20) == 0:
            parts.append(f'<text x="{gx + group_w * 0.4:.1f}" y="{height - 12}" font-size="10" '
                         f'text-anchor="middle">{x}</text>')  # fmt: skip
    parts.append("</svg>")
    legend = "".join(f'<span class="key"><i style="background:{PALETTE[i % len(PALETTE)]}"></i>{html.escape(name)}</span>'
                     for i, name in enumerate(series))  # fmt: skip
    return f'<figure><figcaption>{html.escape(title)}</figcaption>{"".join(parts)}<div class="legend">{legend}</div></figure>'


def render_html(report: Report) -> str:
    """One self-contained page: summary, three charts, the per-epoch table."""
    d, sym = report.decimals, report.symbol

    def money(value: int) -> str:
        return f"{format_units(value, d)} {html.escape(sym)}"

    epochs = sorted({r.epoch for r in report.rows})
    revenue: dict[str, dict[int, int]] = defaultdict(dict)
    usage: dict[str, dict[int, int]] = defaultdict(dict)
    for r in report.rows:
        if not r.disputed:
            revenue[f"node {r.node_id}"][r.epoch] = r.revenue
            usage[f"node {r.node_id}"][r.epoch] = r.inferences
    node_ids = [t.node_id for t in report.nodes]
    claimed_chart = {
        "claimed": {t.node_id: t.holders_claimed for t in report.nodes},
        "unclaimed": {t.node_id: t.holders_unclaimed for t in report.nodes},
    }
    total = sum(t.revenue for t in report.nodes)
    head = (f"<h1>EdgeShare {html.escape(report.kind)} report</h1>"
            f"<p class=sub>{html.escape(report.subject)} &middot; chain {report.chain_id} &middot; "
            f"epochs {epochs[0] if epochs else '-'} to {epochs[-1] if epochs else '-'} &middot; "
            f"protocol fee {report.protocol_fee_bps} bps</p>")  # fmt: skip
    cards = "".join(f"<div class=card><b>{v}</b><span>{k}</span></div>" for k, v in [
        ("revenue", money(total)),
        ("inferences", f"{sum(t.inferences for t in report.nodes):,}"),
        ("to holders", money(sum(t.holders for t in report.nodes))),
        ("operator cut", money(sum(t.operator_cut for t in report.nodes))),
        ("disputed reports", str(sum(t.disputes for t in report.nodes))),
    ])  # fmt: skip
    node_rows = "".join(
        f"<tr><td>{t.node_id}</td><td>{html.escape(t.region)}</td><td>{t.inferences:,}</td><td>{money(t.revenue)}</td>"
        f"<td>{money(t.operator_cut)}</td><td>{money(t.protocol_fee)}</td><td>{money(t.holders)}</td>"
        f"<td>{money(t.holders_claimed)}</td><td>{money(t.holders_unclaimed)}</td><td>{t.disputes}</td></tr>"
        for t in report.nodes
    )
    positions = ""
    if report.positions:
        positions = "<h2>Positions</h2><table><tr><th>node</th><th>region</th><th>shares</th><th>of supply</th><th>claimed</th><th>claimable</th></tr>" + "".join(
            f"<tr><td>{p.node_id}</td><td>{html.escape(p.region)}</td><td>{format_units(p.shares, 18)}</td>"
            f"<td>{format_bps(p.shares * 10_000 // max(1, p.supply))}</td><td>{money(p.claimed)}</td><td>{money(p.claimable)}</td></tr>"
            for p in report.positions
        ) + "</table>"  # fmt: skip
    epoch_rows = "".join(
        f"<tr{' class=disputed' if r.disputed else ''}><td>{r.node_id}</td><td>{r.epoch}</td><td>{r.inferences:,}</td>"
        f"<td>{money(r.revenue)}</td><td>{money(r.operator_cut)}</td><td>{money(r.protocol_fee)}</td>"
        f"<td>{money(r.holders)}</td><td>{r.latency_ms}</td><td>{format_bps(r.uptime_bps)}</td><td>{r.state}</td></tr>"
        for r in report.rows
    )
    style = """body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#111}
h1{margin:0}.sub{color:#555;margin-top:4px}.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 14px;min-width:150px}.card b{display:block;font-size:17px}
.card span{color:#666;font-size:12px}table{border-collapse:collapse;width:100%;margin:8px 0 24px;font-size:12px}
th,td{border-bottom:1px solid #eee;padding:4px 6px;text-align:right}th{background:#f6f6f6}
tr.disputed td{color:#b91c1c;text-decoration:line-through}figure{margin:12px 0 20px}
figcaption{font-weight:600;margin-bottom:4px}.legend{font-size:12px}.key{margin-right:12px}
.key i{display:inline-block;width:10px;height:10px;margin-right:4px}"""
    charts = (
        _svg_bars("Revenue per epoch per node", dict(revenue), epochs, f"base units of {sym}")
        + _svg_bars("Utilisation: inferences per epoch per node", dict(usage), epochs, "inferences")
        + _svg_bars(
            "Holder revenue claimed vs unclaimed", claimed_chart, node_ids, f"base units of {sym}"
        )
    )
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>EdgeShare {html.escape(report.kind)} report</title>"
            f"<style>{style}</style></head><body>{head}<div class=cards>{cards}</div>{charts}"
            f"<h2>Nodes</h2><table><tr><th>node</th><th>region</th><th>inferences</th><th>revenue</th><th>operator cut</th>"
            f"<th>protocol fee</th><th>to holders</th><th>claimed</th><th>unclaimed</th><th>disputes</th></tr>{node_rows}</table>"
            f"{positions}<h2>Per epoch</h2><table><tr><th>node</th><th>epoch</th><th>inferences</th><th>revenue</th>"
            f"<th>operator cut</th><th>fee</th><th>to holders</th><th>latency ms</th><th>uptime</th><th>state</th></tr>"
            f"{epoch_rows}</table><p class=sub>All amounts are exact; base units of {html.escape(sym)} with {d} decimals.</p>"
            "</body></html>")  # fmt: skip
