// Operator: its nodes, pending reports and when each becomes final, withdraw its cut,
// set price, propose a cut, rotate the attestor.
import { getAddress, isAddress } from "ethers";
import { useState } from "preact/hooks";
import { get } from "./api.js";
import { address } from "./config.js";
import { encode } from "./contracts.js";
import { fmtBps, fmtDuration, fmtTime, fmtUnits, parseAmount, parseBps, short } from "./format.js";
import { useStore } from "./store.js";
import { Card, Field, html, Loaded, Table, TxStatus, useLoad, useTx } from "./ui.js";
import { wallet } from "./wallet.js";

function NodeActions({ n, d, reload }) {
  const [price, setPrice] = useState("");
  const [cut, setCut] = useState("");
  const [attestor, setAttestor] = useState("");
  const [tx, run] = useTx(reload);
  const reg = address("NodeRegistry");
  const dec = d.stablecoin.decimals;
  const setPriceTx = () => run(async () => {
    const value = parseAmount(price, dec, `price per 1k (${d.stablecoin.symbol})`, { allowZero: true });
    return [{ to: reg, data: encode("NodeRegistry", "set_price", [n.node_id, value]), label: `set node ${n.node_id}'s price to ${fmtUnits(value, dec)} per 1k` }];
  });
  const cutTx = () => run(async () => {
    const bps = parseBps(cut, "operator cut (%)");
    return [{ to: reg, data: encode("NodeRegistry", "propose_operator_cut", [n.node_id, bps]), label: `propose a cut of ${fmtBps(bps)} for node ${n.node_id}` }];
  });
  const attestorTx = () => run(async () => {
    if (!isAddress(attestor.trim())) throw new Error(`attestor: "${attestor}" is not an address`);
    return [{ to: reg, data: encode("NodeRegistry", "rotate_attestor", [n.node_id, getAddress(attestor.trim())]), label: `rotate node ${n.node_id}'s attestor` }];
  });
  return html`<div class="actions-grid">
    <div class="row"><${Field} label=${`New price per 1k (${d.stablecoin.symbol})`} value=${price} onInput=${setPrice} testid="set-price-value" /><button data-testid="set-price" onClick=${setPriceTx}>Set price</button></div>
    <div class="row"><${Field} label="Propose cut (%)" value=${cut} onInput=${setCut} testid="propose-cut-value" /><button data-testid="propose-cut" onClick=${cutTx}>Propose cut</button></div>
    <div class="row"><${Field} label="New attestor" value=${attestor} onInput=${setAttestor} testid="rotate-attestor-value" /><button data-testid="rotate-attestor" onClick=${attestorTx}>Rotate attestor</button></div>
    <${TxStatus} tx=${tx} />
  </div>`;
}

function OperatorNode({ n, d, reload }) {
  const dec = d.stablecoin.decimals;
  const now = d.clock.chain_time;
  return html`<${Card} title=${`Node ${n.node_id} (${n.status})`} testid="operator-node">
    <div class="facts" data-node=${n.node_id}>
      <div><span>price per 1k</span><b>${fmtUnits(n.price_per_1k, dec)} ${d.stablecoin.symbol}${n.next_price_per_1k !== n.price_per_1k ? ` → ${fmtUnits(n.next_price_per_1k, dec)} next epoch` : ""}</b></div>
      <div><span>cut</span><b>${fmtBps(n.operator_cut_bps)}</b></div>
      <div><span>pending cut</span><b data-testid="pending-cut">${n.pending_cut_from ? `${fmtBps(n.pending_cut_bps)} from ${fmtTime(n.pending_cut_from)}` : "none"}</b></div>
      <div><span>attestor</span><b title=${n.attestor}>${short(n.attestor)}</b></div>
      <div><span>unvested</span><b>${fmtUnits(n.unvested, dec)}${n.vesting_ends_at ? ` until ${fmtTime(n.vesting_ends_at)}` : ""}</b></div>
    </div>
    <h3>Pending reports</h3>
    <${Table} testid="pending-table" empty="nothing pending" head=${["epoch", `revenue (${d.stablecoin.symbol})`, "final at", ""]}
      rows=${n.pending.map((p) => html`<tr data-testid="pending-report" data-epoch=${p.epoch}><td>${p.epoch}</td><td class="num">${fmtUnits(p.revenue, dec)}</td><td>${fmtTime(p.finalizable_at)}</td><td>${p.due ? "due: anyone can finalize" : `in ${fmtDuration(p.finalizable_at - now)}`}</td></tr>`)} />
    <${NodeActions} n=${n} d=${d} reload=${reload} />
  </${Card}>`;
}

function Withdraw({ d, who, reload }) {
  const [tx, run] = useTx(reload);
  const go = () => run(async () => [{ to: address("RevenueRouter"), data: encode("RevenueRouter", "withdraw", [who]), label: "withdraw your cut" }]);
  return html`<${Card} title="Your cut" testid="withdraw-card">
    <p>Withdrawable: <b data-testid="withdrawable" data-base-units=${d.withdrawable}>${fmtUnits(d.withdrawable, d.stablecoin.decimals)} ${d.stablecoin.symbol}</b></p>
    <button data-testid="withdraw-cut" disabled=${d.withdrawable === "0"} onClick=${go}>Withdraw</button>
    <${TxStatus} tx=${tx} />
  </${Card}>`;
}

export function Operator() {
  const w = useStore(wallet);
  const who = w.account;
  const load = useLoad(() => (who ? get(`operator/${encodeURIComponent(who)}`) : Promise.resolve(null)), [who]);
  if (!who) return html`<div data-testid="operator-page"><h1>Operator</h1><p class="muted">Connect the operator's wallet.</p></div>`;
  return html`<div data-testid="operator-page">
    <h1>Operator</h1>
    <${Loaded} load=${load}>${(d) => html`<div>
      <${Withdraw} d=${d} who=${who} reload=${load.reload} />
      ${d.nodes.length ? d.nodes.map((n) => html`<${OperatorNode} key=${n.node_id} n=${n} d=${d} reload=${load.reload} />`) : html`<p class="muted">${who} operates no node.</p>`}
      <p class="muted">as of block ${d.block}</p>
    </div>`}</${Loaded}>
  </div>`;
}
