// A portfolio: positions, basket units, offerings committed, open orders; Claim all in
// one transaction (the PortfolioClaimer), to the holder or another address.
import { getAddress, isAddress } from "ethers";
import { useState } from "preact/hooks";
import { get } from "./api.js";
import { encode } from "./contracts.js";
import { fmtBps, fmtShares, fmtTime, fmtUnits, toBig } from "./format.js";
import { useStore } from "./store.js";
import { Card, ErrorBox, Field, html, Loaded, Table, TxStatus, useLoad, useTx } from "./ui.js";
import { wallet } from "./wallet.js";

/** The transaction(s) of a Claim all: one claim_many (a lone token: its own claim). */
export function buildClaimSteps(claim, holder, receiver) {
  const to = receiver ? getAddress(receiver) : getAddress(holder);
  const self = to === getAddress(holder);
  const tokens = claim.tokens;
  if (!tokens.length) throw new Error("nothing to claim");
  if (tokens.length === 1) {
    const data = self ? encode("NodeShare", "claim", []) : encode("NodeShare", "claim_to", [to]);
    return [{ to: tokens[0], data, label: "claim revenue" }];
  }
  const steps = [];
  for (let i = 0; i < tokens.length; i += claim.max_tokens) {
    const part = tokens.slice(i, i + claim.max_tokens);
    steps.push({ to: claim.claimer, data: encode("PortfolioClaimer", "claim_many", [part, to]), label: `claim revenue from ${part.length} tokens` });
  }
  return steps;
}

function Earned({ h, d }) {
  const recent = h.earned.slice(-6);
  return html`<span class="earned">${recent.map((e) => html`<span title=${`epoch ${e.epoch} (${fmtTime(e.starts)}), ${e.state}`}>${fmtUnits(e.earned, d.decimals)}</span>`)}</span>`;
}

function Holdings({ d }) {
  return html`<${Table} testid="holdings-table" empty="no shares"
    head=${["node", "shares", "of supply", `claimable (${d.symbol})`, `vesting (${d.symbol})`, "vesting ends", `earned per epoch, recent (${d.symbol})`, `trailing yield (${d.symbol}/year)`]}
    rows=${d.holdings.map((h) => html`<tr data-testid="holding" data-node=${h.node_id} data-shares=${h.shares} data-supply=${h.supply} data-claimable=${h.claimable} data-vesting=${h.vesting} data-token=${h.share_token}>
      <td><a href=${`#/node/${h.node_id}`}>node ${h.node_id}</a></td>
      <td class="num">${fmtShares(h.shares, 18)}</td>
      <td class="num">${fmtBps(h.share_bps)}</td>
      <td class="num" data-testid="holding-claimable">${fmtUnits(h.claimable, d.decimals)}</td>
      <td class="num">${fmtUnits(h.vesting, d.decimals)}</td>
      <td>${h.vesting_ends_at ? fmtTime(h.vesting_ends_at) : "–"}</td>
      <td><${Earned} h=${h} d=${d} /></td>
      <td class="num">${fmtUnits(h.annualised, d.decimals)}</td>
    </tr>`)} />`;
}

function ClaimAll({ d, reload }) {
  const w = useStore(wallet);
  const [to, setTo] = useState("");
  const [tx, run] = useTx(reload);
  const mine = w.account && getAddress(w.account) === getAddress(d.holder);
  const claim = () =>
    run(async () => {
      if (to.trim() && !isAddress(to.trim())) throw new Error(`claim to: "${to}" is not an address`);
      return buildClaimSteps(d.claim, d.holder, to.trim() || null);
    });
  return html`<${Card} title="Claim" testid="claim-card">
    <p>Claimable now: <b data-testid="total-claimable" data-base-units=${d.total_claimable}>${fmtUnits(d.total_claimable, d.decimals)} ${d.symbol}</b>
      · still vesting: <b data-testid="total-vesting" data-base-units=${d.total_vesting}>${fmtUnits(d.total_vesting, d.decimals)} ${d.symbol}</b></p>
    ${mine
      ? html`<div class="row">
          <${Field} label="Claim to (optional: another address)" value=${to} onInput=${setTo} testid="claim-to" placeholder=${d.holder} />
          <button data-testid="claim-all" disabled=${toBig(d.total_claimable) === 0n} onClick=${claim}>Claim all (${d.claim.tokens.length} token${d.claim.tokens.length === 1 ? "" : "s"}, ${d.claim.tokens.length > d.claim.max_tokens ? `${Math.ceil(d.claim.tokens.length / d.claim.max_tokens)} transactions` : "one transaction"})</button>
        </div>`
      : html`<p class="muted">Connect this address's wallet to claim.</p>`}
    <${TxStatus} tx=${tx} />
  </${Card}>`;
}

function View({ address }) {
  const load = useLoad(() => get(`portfolio/${encodeURIComponent(address)}`, { epochs: 24 }), [address]);
  return html`<${Loaded} load=${load}>${(d) => html`<div data-testid="portfolio" data-holder=${d.holder} data-block=${d.block}>
    <p class="muted">${d.holder} · as of block ${d.block}</p>
    <${ClaimAll} d=${d} reload=${load.reload} />
    <${Card} title="Positions" testid="positions"><${Holdings} d=${d} /></${Card}>
    <${Card} title="Basket units" testid="baskets">
      <${Table} testid="baskets-table" empty="no basket units" head=${["basket", "units", "of supply", `claimable (${d.symbol})`]}
        rows=${d.baskets.map((b) => html`<tr data-testid="basket" data-basket=${b.basket} data-units=${b.units} data-claimable=${b.claimable}>
          <td>${b.symbol}</td><td class="num">${fmtShares(b.units, 18)}</td><td class="num">${b.supply !== "0" ? fmtBps((toBig(b.units) * 10000n) / toBig(b.supply)) : "–"}</td><td class="num">${fmtUnits(b.claimable, d.decimals)}</td></tr>`)} />
    </${Card}>
    <${Card} title="Offerings committed" testid="commitments">
      <${Table} testid="commitments-table" empty="no commitment" head=${["offering", "node", "state", `committed (${d.symbol})`, "buys (shares)", "due now"]}
        rows=${d.offerings.map((c) => html`<tr data-testid="commitment" data-offering=${c.offering} data-committed=${c.committed}>
          <td><a href="#/offerings">${c.offering.slice(0, 10)}…</a></td><td>${c.node_id}</td><td>${c.state}</td><td class="num">${fmtUnits(c.committed, d.decimals)}</td><td class="num">${fmtShares(c.shares, 18)}</td>
          <td>${c.shares_due !== "0" ? `${fmtShares(c.shares_due, 18)} shares (claim)` : c.refund_due !== "0" ? `${fmtUnits(c.refund_due, d.decimals)} ${d.symbol} (refund)` : c.claimed ? "settled" : "–"}</td></tr>`)} />
    </${Card}>
    <${Card} title="Open orders" testid="orders">
      <${Table} testid="orders-table" empty="no open order" head=${["side", "token", "remaining", `price per share (${d.symbol})`, "expires"]}
        rows=${d.orders.map((o) => html`<tr data-testid="order" data-hash=${o.order_hash}><td>${o.side}</td><td>${o.symbol}</td><td class="num">${fmtShares(o.remaining, 18)}</td><td class="num">${fmtUnits(o.price_per_share, d.decimals)}</td><td>${fmtTime(o.expiry)}</td></tr>`)} />
    </${Card}>
  </div>`}</${Loaded}>`;
}

export function Portfolio({ address }) {
  const w = useStore(wallet);
  const [typed, setTyped] = useState(address || "");
  const [problem, setProblem] = useState(null);
  const shown = address || w.account;
  const go = (e) => {
    e.preventDefault();
    if (!isAddress(typed.trim())) {
      setProblem(`"${typed}" is not an address (0x and 40 hex digits)`);
      return;
    }
    setProblem(null);
    window.location.hash = `#/portfolio/${getAddress(typed.trim())}`;
  };
  return html`<div data-testid="portfolio-page">
    <h1>Portfolio</h1>
    <form class="row" onSubmit=${go}>
      <${Field} label="Any address" value=${typed} onInput=${setTyped} testid="portfolio-address" placeholder="0x…" />
      <button type="submit" data-testid="portfolio-go">Show</button>
    </form>
    <${ErrorBox} error=${problem} />
    ${shown ? html`<${View} key=${shown} address=${shown} />` : html`<p class="muted">Connect a wallet or type an address.</p>`}
  </div>`;
}
