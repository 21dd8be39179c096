// The board: active nodes with price, latency, uptime, region, endpoint, models, GPU
// and capacity; filters and sorting; new nodes marked.
import { useRef, useState } from "preact/hooks";
import { get, prefetch } from "./api.js";
import { coin } from "./config.js";
import { fmtBps, fmtUnits, parseAmount, parseInteger } from "./format.js";
import { ErrorBox, html, useLoad } from "./ui.js";

const SORTS = [
  ["rank", "rank (recent revenue)"],
  ["price", "price, lowest first"],
  ["-price", "price, highest first"],
  ["latency", "latency, lowest first"],
  ["-uptime", "uptime, highest first"],
  ["-capacity", "capacity, highest first"],
  ["node", "node id"],
];

const FIRST_QUERY = { sort: "rank" };

/** Ask for the board the page will show first (called before the app's config loads). */
export function prefetchBoard() {
  prefetch("board", FIRST_QUERY);
}

function Row({ r }) {
  return html`<tr data-testid="board-row" data-node=${r.node_id}>
    <td><a href=${`#/node/${r.node_id}`}>${r.node_id}</a>${r.new && html` <span class="badge" data-testid="new-badge">new</span>`}</td>
    <td>${r.region}</td>
    <td class="num" data-base-units=${r.price_per_1k.base_units}>${fmtUnits(r.price_per_1k.base_units, r.price_per_1k.decimals)}</td>
    <td class="num">${r.latency_ms === null ? "–" : r.latency_ms}</td>
    <td class="num">${r.uptime_bps === null ? "–" : fmtBps(r.uptime_bps)}</td>
    <td class="num">${fmtBps(r.operator_cut_bps)}</td>
    <td class="wrap">${r.endpoint || "–"}</td>
    <td class="wrap">${r.models ? r.models.join(", ") : "–"}</td>
    <td>${r.gpu || "–"}</td>
    <td class="num">${r.capacity_rps ?? "–"}</td>
  </tr>`;
}

export function Board() {
  const form = useRef({ region: "", maxPrice: "", maxLatency: "", sort: "rank" });
  const [, redraw] = useState(0);
  const [query, setQuery] = useState(FIRST_QUERY);
  const [problem, setProblem] = useState(null);
  const load = useLoad(() => get("board", query), [JSON.stringify(query)]);
  const c = coin();

  const edit = (patch) => {
    form.current = { ...form.current, ...patch };
    redraw((n) => n + 1);
  };
  const apply = (patch = {}) => {
    edit(patch);
    const f = form.current;
    try {
      const q = { sort: f.sort };
      if (f.region) q.region = f.region;
      if (f.maxPrice.trim()) q.max_price = parseAmount(f.maxPrice, c.decimals, "max price", { allowZero: true }).toString();
      if (f.maxLatency.trim()) q.max_latency = parseInteger(f.maxLatency, "max latency (ms)");
      setProblem(null);
      setQuery(q);
    } catch (err) {
      setProblem(err.message);
    }
  };
  const f = form.current;
  const data = load.data;
  return html`<div data-testid="board-page">
    <h1>Price board</h1>
    <form class="filters" onSubmit=${(e) => { e.preventDefault(); apply(); }}>
      <label class="field"><span>Region</span>
        <select data-testid="filter-region" value=${f.region} onChange=${(e) => apply({ region: e.currentTarget.value })}>
          <option value="">all regions</option>
          ${(data ? data.regions : []).map((r) => html`<option value=${r}>${r}</option>`)}
        </select></label>
      <label class="field"><span>Max price (${c.symbol} per 1k)</span>
        <input data-testid="filter-max-price" value=${f.maxPrice} inputmode="decimal" onInput=${(e) => edit({ maxPrice: e.currentTarget.value })} onChange=${() => apply()} /></label>
      <label class="field"><span>Max latency (ms)</span>
        <input data-testid="filter-max-latency" value=${f.maxLatency} inputmode="numeric" onInput=${(e) => edit({ maxLatency: e.currentTarget.value })} onChange=${() => apply()} /></label>
      <label class="field"><span>Sort</span>
        <select data-testid="sort" value=${f.sort} onChange=${(e) => apply({ sort: e.currentTarget.value })}>
          ${SORTS.map(([v, t]) => html`<option value=${v}>${t}</option>`)}
        </select></label>
      <button type="submit" data-testid="filter-apply">Apply</button>
    </form>
    <${ErrorBox} error=${problem} testid="filter-error" />
    <${ErrorBox} error=${load.error} />
    ${data && html`<p class="muted" data-testid="board-summary">${data.rows.length} of ${data.total} nodes · as of block ${data.block}</p>`}
    ${data && !data.rows.length && html`<p class="muted" data-testid="board-empty">${data.empty_reason || "no node matches"}</p>`}
    ${data && data.rows.length > 0 && html`<div class="table-wrap"><table data-testid="board-table">
      <thead><tr><th>node</th><th>region</th><th>price per 1k (${data.symbol})</th><th>p50 latency (ms)</th><th>uptime</th><th>operator cut</th><th>endpoint</th><th>models</th><th>GPU</th><th>capacity (req/s)</th></tr></thead>
      <tbody>${data.rows.map((r) => html`<${Row} key=${r.node_id} r=${r} />`)}</tbody>
    </table></div>`}
  </div>`;
}
