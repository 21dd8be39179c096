// Offerings: commit, cancel, claim shares, refund; progress against the soft and hard cap.
import { useState } from "preact/hooks";
import { get } from "./api.js";
import { approveSteps } from "./chain.js";
import { coin } from "./config.js";
import { encode } from "./contracts.js";
import { fmtShares, fmtTime, fmtUnits, parseAmount, toBig } from "./format.js";
import { useStore } from "./store.js";
import { Card, Field, html, Loaded, Progress, TxStatus, useLoad, useTx } from "./ui.js";
import { wallet } from "./wallet.js";

function Offering({ o, mine, reload }) {
  const c = coin();
  const [amount, setAmount] = useState("");
  const [tx, run] = useTx(reload);
  const committed = mine ? toBig(mine.committed) : 0n;
  const open = o.state === "OPEN";
  const ended = o.state === "SUCCEEDED" || o.state === "FAILED";
  const commit = () =>
    run(async () => {
      const value = parseAmount(amount, c.decimals, "amount to commit");
      const remaining = toBig(o.remaining);
      if (value > remaining) throw new Error(`amount to commit: above the hard cap; ${fmtUnits(remaining, c.decimals)} ${c.symbol} can still be committed`);
      return [
        ...(await approveSteps(c.address, o.address, value, "approve the offering")),
        { to: o.address, data: encode("ShareOffering", "commit", [value]), label: `commit ${fmtUnits(value, c.decimals)} ${c.symbol}` },
      ];
    });
  const cancel = () =>
    run(async () => {
      const value = amount.trim() ? parseAmount(amount, c.decimals, "amount to cancel") : committed;
      if (value === 0n) throw new Error("nothing committed to cancel");
      return [{ to: o.address, data: encode("ShareOffering", "cancel", [value]), label: `cancel ${fmtUnits(value, c.decimals)} ${c.symbol}` }];
    });
  const claimShares = () => run(async () => [{ to: o.address, data: encode("ShareOffering", "claim_shares", []), label: "claim the shares" }]);
  const refund = () => run(async () => [{ to: o.address, data: encode("ShareOffering", "refund", []), label: "refund the commitment" }]);
  const soft = toBig(o.soft_cap);
  const hard = toBig(o.hard_cap);
  return html`<${Card} testid="offering" >
    <div class="offering" data-testid=${`offering-${o.address}`} data-address=${o.address} data-state=${o.state}>
      <h2>Node ${o.node_id} · <span data-testid="offering-state">${o.state}</span></h2>
      <p>${fmtShares(o.shares, 18)} shares at ${fmtUnits(o.price_per_share, c.decimals)} ${c.symbol} each · ${fmtTime(o.start)} to ${fmtTime(o.end)}</p>
      <${Progress} testid="offering-progress" value=${toBig(o.total_committed)} max=${hard} marks=${[{ at: soft, label: "soft cap" }]} />
      <p class="muted"><span data-testid="offering-committed" data-base-units=${o.total_committed}>${fmtUnits(o.total_committed, c.decimals)}</span> of ${fmtUnits(hard, c.decimals)} ${c.symbol} (hard cap) · soft cap ${fmtUnits(soft, c.decimals)} ${c.symbol}${o.soft_cap_reached ? " reached" : ""}</p>
      ${mine && html`<p>You committed <b data-testid="my-commitment" data-base-units=${mine.committed}>${fmtUnits(mine.committed, c.decimals)} ${c.symbol}</b> for ${fmtShares(mine.shares, 18)} shares${mine.claimed ? " (settled)" : ""}.</p>`}
      <div class="row">
        ${open && html`<${Field} label=${`Amount (${c.symbol})`} value=${amount} onInput=${setAmount} testid="offering-amount" />`}
        ${open && html`<button data-testid="offering-commit" onClick=${commit}>Commit</button>`}
        ${open && committed > 0n && html`<button class="secondary" data-testid="offering-cancel" onClick=${cancel}>Cancel ${amount.trim() ? "amount" : "all"}</button>`}
        ${ended && o.state === "SUCCEEDED" && mine && !mine.claimed && committed > 0n && html`<button data-testid="offering-claim" onClick=${claimShares}>Claim shares</button>`}
        ${ended && o.state === "FAILED" && mine && !mine.claimed && committed > 0n && html`<button data-testid="offering-refund" onClick=${refund}>Refund</button>`}
      </div>
      <${TxStatus} tx=${tx} />
    </div>
  </${Card}>`;
}

export function Offerings() {
  const w = useStore(wallet);
  const load = useLoad(() => get("offerings", w.account ? { investor: w.account, limit: 200 } : { limit: 200 }), [w.account]);
  return html`<div data-testid="offerings-page">
    <h1>Offerings</h1>
    <${Loaded} load=${load}>${(d) => {
      const mine = new Map((d.commitments || []).map((c) => [c.offering, c]));
      if (!d.offerings.length) return html`<p class="muted">no offering</p>`;
      return html`<div>${d.offerings.map((o) => html`<${Offering} key=${o.address} o=${o} mine=${mine.get(o.address)} reload=${load.reload} />`)}</div>`;
    }}</${Loaded}>
  </div>`;
}
