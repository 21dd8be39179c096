// A node: per-epoch charts, price and cut history with a pending cut, holders, open
// offerings, order book and basket memberships.
import { get } from "./api.js";
import { BarChart } from "./chart.js";
import { fmtBps, fmtShares, fmtTime, fmtUnits, short } from "./format.js";
import { Card, html, Loaded, Table, useLoad } from "./ui.js";

function Charts({ d }) {
  const pts = (key) => d.epochs.map((e) => ({ t: e.starts, label: e.epoch, value: BigInt(e[key] ?? 0) }));
  const money = (v) => fmtUnits(v, d.decimals);
  const count = (v) => fmtUnits(v, 0);
  return html`<div class="charts">
    <${BarChart} testid="chart-revenue" title="Revenue per epoch" unit=${d.symbol} points=${pts("revenue")} fmt=${money} />
    <${BarChart} testid="chart-inferences" title="Inferences per epoch" unit="inferences" points=${pts("inferences")} fmt=${count} />
    <${BarChart} testid="chart-latency" title="Attested p50 latency" unit="ms" points=${pts("latency_ms")} fmt=${count} />
    <${BarChart} testid="chart-uptime" title="Uptime" unit="%" points=${pts("uptime_bps")} fmt=${(v) => fmtBps(v)} />
  </div>`;
}

function historyValue(h, d) {
  const what = h.what || h.kind;
  const text = what === "price" ? `price ${fmtUnits(h.value, d.decimals)} ${d.symbol} per 1k` : what === "cut" ? `operator cut ${fmtBps(h.value)}` : `${what} ${h.value}`;
  return h.kind === "registered" ? `registered: ${text}` : text;
}

export function NodePage({ id }) {
  const load = useLoad(() => get(`nodes/${encodeURIComponent(id)}`, { epochs: 48 }), [id]);
  return html`<${Loaded} load=${load}>${(d) => {
    const n = d.node;
    return html`<div data-testid="node-page">
      <h1>Node ${n.node_id} <span class="muted">${n.region}</span></h1>
      <div class="facts" data-testid="node-facts">
        <div><span>status</span><b>${n.status}</b></div>
        <div><span>price per 1k</span><b data-testid="node-price">${fmtUnits(n.price_per_1k, d.decimals)} ${d.symbol}</b></div>
        <div><span>operator cut</span><b>${fmtBps(n.operator_cut_bps)}</b></div>
        <div><span>operator</span><b title=${n.operator}>${short(n.operator)}</b></div>
        <div><span>GPU</span><b>${n.gpu || "–"}</b></div>
        <div><span>capacity</span><b>${n.capacity_rps ?? "–"} req/s</b></div>
        <div><span>models</span><b>${(n.models || []).join(", ") || "–"}</b></div>
        <div><span>endpoint</span><b class="wrap">${n.endpoint || "–"}</b></div>
      </div>
      ${n.pending_cut_from > 0 && html`<p class="notice" data-testid="pending-cut">The operator's cut rises to ${fmtBps(n.pending_cut_bps)} from ${fmtTime(n.pending_cut_from)}${n.pending_cut_epoch !== undefined ? ` (epoch ${n.pending_cut_epoch})` : ""}.</p>`}
      <${Card} title="Per epoch"><${Charts} d=${d} /></${Card}>
      <${Card} title="Price and cut history" testid="history">
        <${Table} testid="history-table" head=${["block", "change", "from epoch", "applies from"]} empty="no change recorded"
          rows=${d.history.map((h) => html`<tr data-testid="history-row" data-what=${h.what || h.kind} data-value=${h.value}><td>${h.block}</td><td>${historyValue(h, d)}</td><td>${h.from_epoch ?? "registration"}</td><td>${h.effective_at ? fmtTime(h.effective_at) : "at registration"}</td></tr>`)} />
      </${Card}>
      <${Card} title=${`Holders (${d.holders.total})`} testid="holders">
        <${Table} testid="holders-table" head=${["holder", "shares", "of supply"]}
          rows=${d.holders.rows.map((h) => html`<tr><td><a href=${`#/portfolio/${h.holder}`}>${h.holder}</a></td><td class="num">${fmtShares(h.shares, d.share_decimals)}</td><td class="num">${fmtBps(h.share_bps)}</td></tr>`)} />
      </${Card}>
      <${Card} title="Offerings" testid="node-offerings">
        <${Table} testid="node-offerings-table" head=${["offering", "state", "price per share", "committed", "ends"]} empty="no offering"
          rows=${d.offerings.map((o) => html`<tr><td><a href="#/offerings">${short(o.address)}</a></td><td>${o.state}</td><td class="num">${fmtUnits(o.price_per_share, d.decimals)}</td><td class="num">${fmtUnits(o.total_committed, d.decimals)} / ${fmtUnits(o.hard_cap, d.decimals)}</td><td>${fmtTime(o.end)}</td></tr>`)} />
      </${Card}>
      <${Card} title=${`Order book (${d.book.total})`} testid="node-book">
        <${Table} testid="node-book-table" head=${["side", "remaining", `price per share (${d.symbol})`, "maker", "expires"]} empty="no open order"
          rows=${d.book.rows.map((o) => html`<tr><td>${o.side}</td><td class="num">${fmtShares(o.remaining, d.share_decimals)}</td><td class="num">${fmtUnits(o.price_per_share, d.decimals)}</td><td>${short(o.maker)}</td><td>${fmtTime(o.expiry)}</td></tr>`)} />
        <p><a href="#/trade">Trade</a></p>
      </${Card}>
      <${Card} title="Baskets" testid="node-baskets">
        <${Table} testid="node-baskets-table" head=${["basket", "symbol", "shares per unit"]} empty="in no basket"
          rows=${d.baskets.map((b) => html`<tr><td>${short(b.basket)}</td><td>${b.symbol}</td><td class="num">${fmtShares(b.weight, d.share_decimals)}</td></tr>`)} />
      </${Card}>
      <p class="muted">as of block ${d.block}</p>
    </div>`;
  }}</${Loaded}>`;
}
