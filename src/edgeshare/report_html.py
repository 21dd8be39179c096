"""The HTML form of a report: one self-contained page (inline SVG charts, no scripts, no
network) that an operator can send to investors.

Charts draw up to 20 series in 20 distinct colours (the smallest nodes beyond 19 as one
series), with y-axis ticks at round values in whole units and tooltips that name the
node, the epoch with its date, and the amount.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from edgeshare.reports import Report, Section, build_sections, get_headline
from edgeshare.units import format_units

__all__ = ["PALETTE", "build_ticks", "render_html"]

# Tableau 20: ten strong colours, then their light companions; all readable on white.
PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
]  # fmt: skip
MAX_SERIES = len(PALETTE)
"""At most this many series per chart; beyond it the smallest are drawn as one."""

Series = dict[str, dict[int, int]]


def build_ticks(peak: int, *, max_ticks: int = 5, floor: int = 1) -> list[int]:
    """Y-axis ticks from 0 at a round step (1, 2 or 5 times a power of ten base units,
    so round in whole units too), the last at or above ``peak``; at most ``max_ticks``
    steps. ``floor`` is the axis top when there is nothing to draw."""
    if peak <= 0:
        return [0, floor]
    power = 1
    while True:
        for k in (1, 2, 5):
            step = k * power
            count = -(-peak // step)  # rounds up: the top tick covers the peak
            if count <= max_ticks:
                return [i * step for i in range(count + 1)]
        power *= 10


def _limit_series(series: Series) -> Series:
    """At most MAX_SERIES series: the largest by total, then one of the rest."""
    if len(series) <= MAX_SERIES:
        return series
    ranked = sorted(series, key=lambda name: -sum(series[name].values()))
    kept, rest = ranked[: MAX_SERIES - 1], ranked[MAX_SERIES - 1 :]
    merged: dict[int, int] = defaultdict(int)
    for name in rest:
        for x, value in series[name].items():
            merged[x] += value
    out = {name: series[name] for name in series if name in kept}
    out[f"{len(rest)} other nodes"] = dict(merged)
    return out


@dataclass
class Chart:
    """What one chart draws and how it names things."""

    title: str
    series: Series
    x_values: list[int]
    unit: str
    """The y-axis unit (``USDC``, ``inferences``)."""
    amount: Callable[[int], str]
    """An amount as people read it (``1,500.25 USDC``)."""
    axis: Callable[[int], str]
    """A tick label (``1,500``)."""
    x_label: Callable[[int], list[str]]
    """The x-axis label's lines."""
    tooltip: Callable[[str, int, int], str]
    """(series, x, value) -> the bar's tooltip."""
    stacked: bool = True
    floor: int = 1


W, H, LEFT, RIGHT, TOP, BOTTOM = 760, 280, 90, 10, 28, 44


def _svg_axis(chart: Chart, ticks: list[int]) -> list[str]:
    """Gridlines and labels of the y axis, the unit above it."""
    plot_h = H - TOP - BOTTOM
    parts = [f'<text x="4" y="14" font-size="11" fill="#555">{html.escape(chart.unit)}</text>']
    for tick in ticks:
        y = TOP + plot_h - plot_h * tick / ticks[-1]  # drawing coordinates only
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" '
                     f'stroke="{"#999" if tick == 0 else "#e5e5e5"}"/>'
                     f'<text class="tick" x="{LEFT - 6}" y="{y + 3:.1f}" font-size="10" '
                     f'text-anchor="end">{html.escape(chart.axis(tick))}</text>')  # fmt: skip
    return parts


def _svg_bars(chart: Chart) -> str:
    """Bars, stacked (or grouped) per x value, one colour per series, with tooltips."""
    series = _limit_series(chart.series)
    xs = chart.x_values
    heights = [sum(s.get(x, 0) for s in series.values()) for x in xs] if chart.stacked else [
        v for s in series.values() for v in s.values()]  # fmt: skip
    ticks = build_ticks(max([*heights, 0]), floor=chart.floor)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    group_w = plot_w / max(1, len(xs))
    per_group = 1 if chart.stacked else max(1, len(series))
    bar_w = max(1.0, group_w * 0.8 / per_group)
    title = html.escape(chart.title)
    parts = [f'<svg class="chart" role="img" aria-label="{title}" viewBox="0 0 {W} {H}" '
             f'width="{W}" height="{H}" xmlns="http://www.w3.org/2000/svg"><title>{title}</title>',
             *_svg_axis(chart, ticks)]  # fmt: skip
    every = max(1, -(-len(xs) // 16))  # at most 16 x labels
    for gi, x in enumerate(xs):
        gx, base = LEFT + gi * group_w + group_w * 0.1, 0
        for si, (name, values) in enumerate(series.items()):
            value = values.get(x, 0)
            if value == 0:
                continue
            h = plot_h * value / ticks[-1]  # drawing coordinates only; the amounts stay exact
            bx = gx if chart.stacked else gx + si * bar_w
            y = TOP + plot_h - h - (plot_h * base / ticks[-1] if chart.stacked else 0)
            tip = html.escape(chart.tooltip(name, x, value))
            parts.append(f'<rect x="{bx:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                         f'fill="{PALETTE[si % MAX_SERIES]}" data-series="{html.escape(name)}">'
                         f"<title>{tip}</title></rect>")  # fmt: skip
            base += value if chart.stacked else 0
        if gi % every == 0:
            cx = gx + group_w * 0.4
            lines = "".join(f'<tspan x="{cx:.1f}" dy="{0 if i == 0 else 11}">{html.escape(t)}'
                            "</tspan>" for i, t in enumerate(chart.x_label(x)))  # fmt: skip
            parts.append(f'<text class="xlabel" x="{cx:.1f}" y="{H - BOTTOM + 14}" font-size="9" '
                         f'text-anchor="middle">{lines}</text>')  # fmt: skip
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key"><i style="background:{PALETTE[i % MAX_SERIES]}"></i>'
        f"{html.escape(name)}</span>"
        for i, name in enumerate(series)
    )
    return (f"<figure><figcaption>{title}</figcaption>{''.join(parts)}"
            f'<div class="legend">{legend}</div></figure>')  # fmt: skip


def _charts(report: Report) -> list[Chart]:
    """The report's charts: revenue per epoch per node (and, with channel revenue, per
    epoch from usage reports and from channels), utilisation per epoch per node, holders'
    claimed vs unclaimed per node, and for an investor its own revenue per epoch per node."""
    token, d = report.token, report.decimals
    epochs = sorted({r.epoch for r in report.rows})
    revenue: Series = defaultdict(dict)
    usage: Series = defaultdict(dict)
    sources: Series = {"usage reports": defaultdict(int), "channels": defaultdict(int)}
    for r in report.rows:
        if not r.disputed:
            usage[f"node {r.node_id}"][r.epoch] = r.inferences
            sources["usage reports"][r.epoch] += r.usage_revenue
        if r.counted_revenue or not r.disputed:
            revenue[f"node {r.node_id}"][r.epoch] = r.counted_revenue
        sources["channels"][r.epoch] += r.channel_revenue

    def x_epoch(epoch: int) -> list[str]:
        return [str(epoch), datetime.fromtimestamp(report.get_epoch_start(epoch), tz=UTC)
                .strftime("%m-%d %H:%M")]  # fmt: skip

    def epoch_tip(fmt: Callable[[int], str]) -> Callable[[str, int, int], str]:
        return lambda name, x, v: f"{name} · epoch {report.get_epoch_label(x)} · {fmt(v)}"

    def money_axis(v: int) -> str:
        return format_units(v, d)

    def count(v: int) -> str:
        return f"{v:,} inferences"

    unit = 10**d
    charts = [
        Chart("Revenue per epoch per node", dict(revenue), epochs, report.symbol,
              token.format, money_axis, x_epoch, epoch_tip(token.format), floor=unit),
        Chart("Utilisation: inferences per epoch per node", dict(usage), epochs, "inferences",
              count, lambda v: f"{v:,}", x_epoch, epoch_tip(count)),
        Chart("Holder revenue claimed vs unclaimed",
              {"claimed": {t.node_id: t.holders_claimed for t in report.nodes},
               "unclaimed": {t.node_id: t.holders_unclaimed for t in report.nodes}},
              [t.node_id for t in report.nodes], report.symbol, token.format, money_axis,
              lambda n: [f"node {n}"],
              lambda name, n, v: f"node {n} · {name} · {token.format(v)}", stacked=False,
              floor=unit),
    ]  # fmt: skip
    if any(r.channel_revenue for r in report.rows):
        charts.insert(1, Chart("Revenue per epoch: usage reports and channels",
                               {k: dict(v) for k, v in sources.items()}, epochs, report.symbol,
                               token.format, money_axis, x_epoch, epoch_tip(token.format),
                               floor=unit))  # fmt: skip
    if report.kind == "investor":
        mine: Series = defaultdict(dict)
        for e in report.earnings:
            mine[f"node {e.node_id}"][e.epoch] = e.earned
        charts.insert(0, Chart("Your revenue per epoch per node", dict(mine), epochs,
                               report.symbol, token.format, money_axis, x_epoch,
                               epoch_tip(token.format), floor=unit))  # fmt: skip
    return charts


def _html_table(section: Section) -> str:
    """A section as an HTML table (a disputed epoch struck through)."""
    state = section.columns.index("state") if "state" in section.columns else -1
    head = "".join(f"<th>{html.escape(c)}</th>" for c in section.columns)
    body = "".join(
        f"<tr{' class=disputed' if state >= 0 and row[state] == 'disputed' else ''}>"
        + "".join(f"<td>{html.escape(cell)}</td>" for cell in row)
        + "</tr>"
        for row in section.rows
    )
    return (f'<h2>{html.escape(section.title)}</h2><table data-section="{section.key}">'
            f"<tr>{head}</tr>{body}</table>")  # fmt: skip


def _html_cards(report: Report) -> str:
    """The headline as cards; each carries its exact base units for machines and tests."""
    exact: dict[str, int | None] = {}
    if report.summary is not None:
        s = report.summary
        exact = {"claimed": s.claimed, "claimable now": s.claimable, "vesting": s.vesting,
                 "total earned (claimed + claimable + vesting)": s.total_earned,
                 "earned in the epochs shown": s.earned_in_epochs}  # fmt: skip
    cards = []
    for label, value in get_headline(report):
        key = label.split(" (")[0].replace(" ", "_")
        data = f' data-base-units="{exact[label]}"' if exact.get(label) is not None else ""
        cards.append(f'<div class=card data-key="{html.escape(key)}"{data}>'
                     f"<b>{html.escape(value)}</b><span>{html.escape(label)}</span></div>")  # fmt: skip
    return f"<div class=cards>{''.join(cards)}</div>"


STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#111}
h1{margin:0}.sub{color:#555;margin-top:4px}.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 14px;min-width:150px}.card b{display:block;font-size:17px}
.card span{color:#666;font-size:12px}table{border-collapse:collapse;width:100%;margin:8px 0 24px;font-size:12px}
th,td{border-bottom:1px solid #eee;padding:4px 6px;text-align:right}th{background:#f6f6f6}
tr.disputed td{color:#b91c1c;text-decoration:line-through}figure{margin:12px 0 20px}
figcaption{font-weight:600;margin-bottom:4px}.legend{font-size:12px}.key{margin-right:12px;white-space:nowrap}
.key i{display:inline-block;width:10px;height:10px;margin-right:4px}"""


def render_html(report: Report) -> str:
    """One self-contained page: header, headline cards, charts, then every section as a
    table (the same content as the table and CSV formats)."""
    kind = html.escape(report.kind)
    sections = build_sections(report)
    header = {row[0]: row[1] for row in sections[0].rows}
    sub = " &middot; ".join(html.escape(x) for x in [
        report.subject, f"chain {report.chain_id}",
        f"as of block {report.block:,} ({header['as of time']})", f"epochs {header['epochs']}",
        f"protocol fee {header['protocol fee']}",
    ])  # fmt: skip
    note = (f"<p class=sub><b>{html.escape(report.empty_reason)}</b></p>"
            if report.empty_reason else "")  # fmt: skip
    if report.kind == "investor":
        note += f"<p class=sub>{html.escape(EARNINGS_NOTE)}</p>"
    charts = "".join(_svg_bars(c) for c in _charts(report))
    tables = "".join(_html_table(s) for s in sections[2:])
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>EdgeShare {kind} report</title><style>{STYLE}</style></head><body>"
            f"<h1>EdgeShare {kind} report</h1><p class=sub>{sub}</p>{note}{_html_cards(report)}"
            f"{charts}{tables}<p class=sub>All amounts are exact, in whole {html.escape(report.symbol)} "
            f"({report.decimals} decimals); times are UTC.</p></body></html>")  # fmt: skip


EARNINGS_NOTE = (
    "Your revenue per epoch is your share of the holders' revenue at your balance when it "
    "was distributed (finalized; pending epochs at your balance now; channel revenue when it "
    "was redeemed, for it is distributed at once). It then vests over the "
    "unlock period; shares sold while it vests take the unvested part with them. The yield "
    "is annualised from the epochs shown."
)
