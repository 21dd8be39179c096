// Shared pieces of the pages: htm bound to preact, data loading, the transaction status
// line, forms and tables.
import htm from "htm";
import { h } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import { sendTx } from "./wallet.js";

export const html = htm.bind(h);

/** Load `fn()` when `deps` change: {data, error, loading, reload}. */
export function useLoad(fn, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true, error: null }));
    fn().then(
      (data) => live && setState({ data, error: null, loading: false }),
      (error) => live && setState({ data: null, error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/** A loading line, an error box or the content. */
export function Loaded({ load, children }) {
  if (load.error) return html`<${ErrorBox} error=${load.error} />`;
  if (!load.data) return html`<p class="muted" data-testid="loading">Loading…</p>`;
  return children(load.data);
}

export function ErrorBox({ error, testid = "error" }) {
  if (!error) return null;
  const text = typeof error === "string" ? error : error.message;
  return html`<p class="error" role="alert" data-testid=${testid}>${text}</p>`;
}

/** The state of the last transaction(s) of a form. */
export function TxStatus({ tx, testid = "tx-status" }) {
  if (!tx) return null;
  const text = tx.message || (tx.state === "simulating" ? `${tx.label}: checking with eth_call…` : tx.label);
  return html`<div class=${`tx tx-${tx.state}`} data-testid=${testid} data-state=${tx.state} data-done=${tx.done ? "1" : "0"} data-step=${tx.step ? `${tx.step}/${tx.steps}` : ""} role="status">
    <span>${tx.steps > 1 ? `step ${tx.step} of ${tx.steps}: ` : ""}${text}</span>
    ${tx.reason && html`<span class="reason" data-testid="tx-reason">${tx.reason}</span>`}
    ${tx.hash && html`<code class="hash" data-testid="tx-hash">${tx.hash}</code>`}
  </div>`;
}

/**
 * [status, run]: run(buildSteps) builds the steps (may throw an input Error, shown as
 * such), sends them in turn and calls `done` when all confirmed.
 */
export function useTx(done) {
  const [tx, setTx] = useState(null);
  const run = useCallback(
    async (build) => {
      let steps;
      try {
        steps = await build();
      } catch (err) {
        setTx({ state: "invalid", label: "", message: err.message });
        return false;
      }
      if (!steps || !steps.length) return false;
      for (const [i, step] of steps.entries()) {
        const receipt = await sendTx(step, (s) => setTx({ ...s, step: i + 1, steps: steps.length }));
        if (!receipt) return false;
      }
      setTx((s) => ({ ...s, done: true }));
      if (done) done();
      return true;
    },
    [done],
  );
  return [tx, run, setTx];
}

/** A labelled input. */
export function Field({ label, value, onInput, testid, placeholder, type = "text", hint }) {
  return html`<label class="field">
    <span>${label}</span>
    <input type=${type} value=${value} placeholder=${placeholder || ""} data-testid=${testid}
      onInput=${(e) => onInput(e.currentTarget.value)} inputmode=${type === "text" ? "decimal" : undefined} />
    ${hint && html`<small class="muted">${hint}</small>`}
  </label>`;
}

/** A table that scrolls inside its own box on narrow screens. */
export function Table({ head, rows, testid, empty = "nothing here" }) {
  if (!rows.length) return html`<p class="muted" data-testid=${`${testid}-empty`}>${empty}</p>`;
  return html`<div class="table-wrap"><table data-testid=${testid}>
    <thead><tr>${head.map((c) => html`<th>${c}</th>`)}</tr></thead>
    <tbody>${rows}</tbody>
  </table></div>`;
}

export function Card({ title, children, testid }) {
  return html`<section class="card" data-testid=${testid}>${title && html`<h2>${title}</h2>`}${children}</section>`;
}

/** A progress bar of `value` against `max` (BigInt), with marks. */
export function Progress({ value, max, marks = [], testid }) {
  const pct = max > 0n ? Number((value * 10000n) / max) / 100 : 0;
  return html`<div class="progress" data-testid=${testid} data-value=${String(value)} data-max=${String(max)}>
    <div class="bar" style=${{ width: `${Math.min(100, pct)}%` }}></div>
    ${marks.map((m) => html`<div class="mark" title=${m.label} style=${{ left: `${max > 0n ? Number((m.at * 10000n) / max) / 100 : 0}%` }}><span>${m.label}</span></div>`)}
  </div>`;
}
