// Trade: sign a sell or buy order (eth_signTypedData_v4) and hand it to the API's book;
// the book; fill (with the taker's approval first) and cancel.
import { getAddress, isAddress } from "ethers";
import { useState } from "preact/hooks";
import { get, post } from "./api.js";
import { approveSteps, chainNow } from "./chain.js";
import { address, cfg, coin, shareToken } from "./config.js";
import { decodeResult, encode } from "./contracts.js";
import { fmtShares, fmtTime, fmtUnits, parseAmount, parseInteger, short, toBig } from "./format.js";
import { useStore } from "./store.js";
import { Card, ErrorBox, Field, html, Loaded, Table, TxStatus, useLoad, useTx } from "./ui.js";
import { call, requireAccount, sendAll, signTypedData, wallet } from "./wallet.js";

const SHARE = 10n ** 18n;
const FIELDS = ["maker", "share", "sell", "amount", "price_per_share", "min_fill", "expiry", "nonce", "salt"];

/** What a fill of `amount` costs the buyer (the market rounds toward the maker). */
export function fillCost(order, amount) {
  const value = amount * toBig(order.price_per_share);
  const cost = value / SHARE;
  return order.sell && value % SHARE !== 0n ? cost + 1n : cost;
}

function orderTuple(o) {
  return [o.maker, o.share, o.sell, toBig(o.amount), toBig(o.price_per_share), toBig(o.min_fill), BigInt(o.expiry), toBig(o.nonce), toBig(o.salt)];
}

function randomSalt() {
  const words = new Uint32Array(4);
  crypto.getRandomValues(words);
  return words.reduce((acc, w) => (acc << 32n) | BigInt(w), 0n);
}

function MakeOrder({ reload }) {
  const c = coin();
  const [f, setF] = useState({ side: "sell", node: "", amount: "", price: "", hours: "24" });
  const [tx, setTx] = useState(null);
  const [made, setMade] = useState(null);
  const set = (k) => (v) => setF((s) => ({ ...s, [k]: v }));
  const submit = async (e) => {
    e.preventDefault();
    setMade(null);
    let order;
    let approvals;
    try {
      const node = parseInteger(f.node, "node", 1);
      const share = shareToken(node);
      if (!share) throw new Error(`node: no node ${node}`);
      const amount = parseAmount(f.amount, 18, "amount (shares)");
      const price = parseAmount(f.price, c.decimals, `price per share (${c.symbol})`);
      const hours = parseInteger(f.hours, "expires in (hours)", 1, 24 * 365);
      const maker = getAddress(await requireAccount());
      const market = address("ShareMarket");
      const nonce = BigInt(decodeResult("ShareMarket", "nonces", await call(market, encode("ShareMarket", "nonces", [maker]), maker))[0]);
      const sell = f.side === "sell";
      order = { maker, share, sell, amount, price_per_share: price, min_fill: 0n, expiry: (await chainNow()) + hours * 3600, nonce, salt: randomSalt() };
      const leg = sell ? share : c.address;
      const need = sell ? amount : fillCost(order, amount);
      approvals = await approveSteps(leg, market, need, `approve the market for your ${sell ? "shares" : c.symbol}`);
    } catch (err) {
      setTx({ state: "invalid", label: "", message: err.message });
      return;
    }
    if (approvals.length && !(await sendAll(approvals, setTx))) return;
    try {
      const m = cfg().market;
      const message = Object.fromEntries(FIELDS.map((k) => [k, typeof order[k] === "bigint" ? order[k].toString() : order[k]]));
      setTx({ state: "signing", label: "sign the order", message: "sign the order in your wallet…" });
      const signature = await signTypedData({ types: m.types, primaryType: m.primaryType || "Order", domain: m.domain, message });
      const res = await post("orders", { order: message, signature, domain: m.domain });
      setMade(res.row);
      setTx({ state: "confirmed", label: "order", message: `order ${res.row.order_hash.slice(0, 10)}… ${res.stored ? "is in the book" : "was already in the book"}` });
      reload();
    } catch (err) {
      setTx({ state: /rejected in the wallet/.test(err.message) ? "rejected" : "error", label: "order", message: err.message });
    }
  };
  return html`<${Card} title="Sign an order" testid="make-order">
    <form class="grid-form" onSubmit=${submit}>
      <label class="field"><span>Side</span><select data-testid="order-side" value=${f.side} onChange=${(e) => set("side")(e.currentTarget.value)}>
        <option value="sell">sell shares</option><option value="buy">buy shares</option></select></label>
      <${Field} label="Node" value=${f.node} onInput=${set("node")} testid="order-node" />
      <${Field} label="Amount (shares)" value=${f.amount} onInput=${set("amount")} testid="order-amount" />
      <${Field} label=${`Price per share (${c.symbol})`} value=${f.price} onInput=${set("price")} testid="order-price" />
      <${Field} label="Expires in (hours)" value=${f.hours} onInput=${set("hours")} testid="order-hours" />
      <button type="submit" data-testid="order-sign">Sign and submit</button>
    </form>
    <${TxStatus} tx=${tx} />
    ${made && html`<p data-testid="order-made" data-hash=${made.order_hash}>In the book: ${made.side} ${fmtShares(made.remaining, 18)} ${made.symbol} at ${fmtUnits(made.price_per_share, c.decimals)} ${c.symbol}</p>`}
  </${Card}>`;
}

function BookRow({ o, me, run }) {
  const c = coin();
  const [amount, setAmount] = useState("");
  const mine = me && getAddress(me) === getAddress(o.maker);
  const fill = () =>
    run(async () => {
      const size = amount.trim() ? parseAmount(amount, 18, "amount to fill (shares)") : toBig(o.remaining);
      if (size > toBig(o.remaining)) throw new Error(`amount to fill: at most ${fmtShares(o.remaining, 18, true)} shares remain`);
      const market = address("ShareMarket");
      const order = o.order;
      const leg = order.sell ? c.address : order.share;
      const need = order.sell ? fillCost(order, size) : size;
      const label = order.sell ? `approve the market for ${c.symbol}` : "approve the market for your shares";
      const p = order.permit;
      const permit = o.permit_covers && p
        ? [{ to: order.share, data: encode("NodeShare", "permit", [order.maker, market, toBig(p.value), toBig(p.deadline), p.v, p.r, p.s]), label: "submit the maker's permit for its shares" }]
        : [];
      return [
        ...permit,
        ...(await approveSteps(leg, market, need, label)),
        { to: market, data: encode("ShareMarket", "fill", [orderTuple(order), order.signature, size]), label: `${order.sell ? "buy from" : "sell into"} order ${o.order_hash.slice(0, 10)}` },
      ];
    });
  const cancel = () => run(async () => [{ to: address("ShareMarket"), data: encode("ShareMarket", "cancel", [orderTuple(o.order)]), label: `cancel order ${o.order_hash.slice(0, 10)}` }]);
  return html`<tr data-testid="book-row" data-hash=${o.order_hash} data-side=${o.side} data-state=${o.state}>
    <td>${o.side}</td><td>${o.symbol}${o.node_id ? ` (node ${o.node_id})` : ""}</td>
    <td class="num" data-base-units=${o.remaining}>${fmtShares(o.remaining, 18)}</td>
    <td class="num">${fmtUnits(o.price_per_share, c.decimals)}</td>
    <td class="num">${fmtUnits(o.cost, c.decimals)}</td>
    <td title=${o.maker}>${short(o.maker)}</td><td>${fmtTime(o.expiry)}</td><td>${o.state}</td>
    <td class="actions">
      ${!mine && o.state === "open" && html`<input class="small" placeholder="all" value=${amount} data-testid="fill-amount" onInput=${(e) => setAmount(e.currentTarget.value)} /><button data-testid="fill" onClick=${fill}>Fill</button>`}
      ${mine && html`<button class="secondary" data-testid="cancel-order" onClick=${cancel}>Cancel</button>`}
    </td>
  </tr>`;
}

export function Trade() {
  const w = useStore(wallet);
  const [token, setToken] = useState("");
  const [problem, setProblem] = useState(null);
  const load = useLoad(() => get("book", { token: isAddress(token) ? token : "", limit: 200 }), [token]);
  const [bookTx, runBook] = useTx(load.reload);
  const c = coin();
  return html`<div data-testid="trade-page">
    <h1>Trade</h1>
    <${MakeOrder} reload=${load.reload} />
    <${Card} title="Order book" testid="book">
      <div class="row"><${Field} label="Token (share or basket address; empty: all)" value=${token} testid="book-token"
        onInput=${(v) => { setProblem(v && !isAddress(v) ? `token: "${v}" is not an address` : null); setToken(v); }} />
        <button class="secondary" data-testid="book-reload" onClick=${load.reload}>Reload</button></div>
      <${ErrorBox} error=${problem} />
      <${TxStatus} tx=${bookTx} />
      <${Loaded} load=${load}>${(d) => html`<${Table} testid="book-table" empty="no open order"
        head=${["side", "token", "remaining (shares)", `price per share (${c.symbol})`, `cost of the rest (${c.symbol})`, "maker", "expires", "state", ""]}
        rows=${d.rows.map((o) => html`<${BookRow} key=${o.order_hash} o=${o} me=${w.account} run=${runBook} />`)} />`}</${Loaded}>
    </${Card}>
  </div>`;
}
