// Our own SVG charts: one series per chart, y axis in units with ticks, dates on x.
import { fmtShortTime, toBig } from "./format.js";
import { html } from "./ui.js";

const W = 560;
const H = 220;
const PAD = { left: 64, right: 12, top: 14, bottom: 44 };

/** The smallest 1, 2 or 5 x 10^k (BigInt) at least `n`. */
function niceStep(n) {
  if (n <= 1n) return 1n;
  let p = 1n;
  while (p * 10n < n) p *= 10n;
  for (const m of [1n, 2n, 5n, 10n]) if (p * m >= n) return p * m;
  return p * 10n;
}

/** y ticks: 0, step, 2 step, ... up to at least `max`. */
export function buildTicks(max) {
  const step = niceStep((max + 3n) / 4n);
  const ticks = [];
  for (let v = 0n; ticks.length < 6; v += step) {
    ticks.push(v);
    if (v >= max) break;
  }
  return ticks;
}

/**
 * A bar chart of `points` ({t: unix time, label, value: BigInt or integer}), y shown with
 * `fmt` and titled with its `unit`.
 */
export function BarChart({ title, unit, points, fmt, testid }) {
  const values = points.map((p) => toBig(p.value));
  const max = values.reduce((a, b) => (b > a ? b : a), 0n);
  const ticks = buildTicks(max);
  const top = ticks[ticks.length - 1] || 1n;
  const iw = W - PAD.left - PAD.right;
  const ih = H - PAD.top - PAD.bottom;
  const bw = points.length ? iw / points.length : iw;
  const y = (v) => PAD.top + ih - (Number((v * 100000n) / (top || 1n)) / 100000) * ih;
  const every = Math.max(1, Math.ceil(points.length / 6));
  return html`<figure class="chart" data-testid=${testid}>
    <figcaption>${title} <span class="muted">(${unit})</span></figcaption>
    <svg viewBox=${`0 0 ${W} ${H}`} role="img" aria-label=${`${title} per epoch, in ${unit}`} preserveAspectRatio="xMidYMid meet">
      ${ticks.map(
        (t) => html`<g>
          <line x1=${PAD.left} x2=${W - PAD.right} y1=${y(t)} y2=${y(t)} class="grid" />
          <text x=${PAD.left - 6} y=${y(t) + 4} class="tick" text-anchor="end">${fmt(t)}</text>
        </g>`,
      )}
      ${points.map((p, i) => {
        const v = values[i];
        const x = PAD.left + i * bw;
        return html`<rect x=${x + bw * 0.12} width=${Math.max(1, bw * 0.76)} y=${y(v)} height=${Math.max(0, PAD.top + ih - y(v))} class="bar">
          <title>${`epoch ${p.label} (${fmtShortTime(p.t)} UTC): ${fmt(v)} ${unit}`}</title>
        </rect>`;
      })}
      ${points.map((p, i) =>
        i % every === 0
          ? html`<text x=${PAD.left + i * bw + bw / 2} y=${H - PAD.bottom + 16} class="tick" text-anchor="middle">${fmtShortTime(p.t)}</text>`
          : null,
      )}
      <line x1=${PAD.left} x2=${PAD.left} y1=${PAD.top} y2=${PAD.top + ih} class="axis" />
      <line x1=${PAD.left} x2=${W - PAD.right} y1=${PAD.top + ih} y2=${PAD.top + ih} class="axis" />
      <text x=${PAD.left + iw / 2} y=${H - 6} class="label" text-anchor="middle">epoch start (UTC)</text>
    </svg>
  </figure>`;
}
