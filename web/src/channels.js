// Channels (customers): deposit, balance, authorise an app signer, close, withdraw.
import { isAddress } from "ethers";
import { useState } from "preact/hooks";
import { get } from "./api.js";
import { approveSteps } from "./chain.js";
import { address, coin } from "./config.js";
import { encode } from "./contracts.js";
import { fmtTime, fmtUnits, parseAmount, parseInteger, short } from "./format.js";
import { useStore } from "./store.js";
import { Card, Field, html, Loaded, Table, TxStatus, useLoad, useTx } from "./ui.js";
import { wallet } from "./wallet.js";

// valid_until is a JSON integer: the maximum uint256 (a float once parsed) while authorised
const FOREVER = 1e15;

function Channel({ ch, now, reload }) {
  const c = coin();
  const [tx, run] = useTx(reload);
  const channels = address("PaymentChannels");
  const close = () => run(async () => [{ to: channels, data: encode("PaymentChannels", "request_close", [ch.node_id]), label: `close the channel to node ${ch.node_id}` }]);
  const withdraw = () => run(async () => [{ to: channels, data: encode("PaymentChannels", "withdraw", [ch.node_id]), label: `withdraw the channel to node ${ch.node_id}` }]);
  const signers = (ch.app_signers || []).filter((s) => Number(s.valid_until) > Number(now));
  return html`<tr data-testid="channel" data-node=${ch.node_id} data-state=${ch.state} data-unredeemed=${ch.unredeemed}>
    <td>node ${ch.node_id}</td><td>${ch.state}</td>
    <td class="num">${fmtUnits(ch.deposited, c.decimals)}</td><td class="num">${fmtUnits(ch.redeemed, c.decimals)}</td>
    <td class="num" data-testid="channel-balance">${fmtUnits(ch.unredeemed, c.decimals)}</td>
    <td>${ch.withdrawable_at ? fmtTime(ch.withdrawable_at) : "–"}</td>
    <td data-testid="app-signers">${signers.map((s) => html`<span class="chip" title=${s.signer}>${short(s.signer)}${Number(s.valid_until) >= FOREVER ? "" : ` until ${fmtTime(s.valid_until)}`}</span>`)}</td>
    <td class="actions">
      ${ch.deposited !== "0" && !ch.closes_at && html`<button class="secondary" data-testid="channel-close" onClick=${close}>Close</button>`}
      ${ch.closes_at > 0 && html`<button data-testid="channel-withdraw" onClick=${withdraw}>Withdraw</button>`}
      <${TxStatus} tx=${tx} />
    </td>
  </tr>`;
}

function Deposit({ reload }) {
  const c = coin();
  const [node, setNode] = useState("");
  const [amount, setAmount] = useState("");
  const [tx, run] = useTx(reload);
  const deposit = (e) => {
    e.preventDefault();
    run(async () => {
      const id = parseInteger(node, "node", 1);
      const value = parseAmount(amount, c.decimals, `deposit (${c.symbol})`);
      const channels = address("PaymentChannels");
      return [
        ...(await approveSteps(c.address, channels, value, "approve the channels contract")),
        { to: channels, data: encode("PaymentChannels", "deposit", [id, value]), label: `deposit ${fmtUnits(value, c.decimals)} ${c.symbol} into the channel to node ${id}` },
      ];
    });
  };
  return html`<form class="row" onSubmit=${deposit} data-testid="deposit-form">
    <${Field} label="Node" value=${node} onInput=${setNode} testid="deposit-node" />
    <${Field} label=${`Amount (${c.symbol})`} value=${amount} onInput=${setAmount} testid="deposit-amount" />
    <button type="submit" data-testid="deposit">Deposit</button>
    <${TxStatus} tx=${tx} />
  </form>`;
}

function Authorise({ reload }) {
  const [node, setNode] = useState("");
  const [signer, setSigner] = useState("");
  const [tx, run] = useTx(reload);
  const go = (e) => {
    e.preventDefault();
    run(async () => {
      const id = parseInteger(node, "node", 1);
      if (!isAddress(signer.trim())) throw new Error(`app signer: "${signer}" is not an address`);
      return [{ to: address("PaymentChannels"), data: encode("PaymentChannels", "authorize_signer", [id, signer.trim()]), label: `authorise ${short(signer.trim())} for node ${id}` }];
    });
  };
  return html`<form class="row" onSubmit=${go} data-testid="authorise-form">
    <${Field} label="Node" value=${node} onInput=${setNode} testid="authorise-node" />
    <${Field} label="App signer address" value=${signer} onInput=${setSigner} testid="authorise-signer" />
    <button type="submit" data-testid="authorise">Authorise</button>
    <${TxStatus} tx=${tx} />
  </form>`;
}

export function Channels() {
  const w = useStore(wallet);
  const load = useLoad(() => (w.account ? get(`channels/${w.account}`) : Promise.resolve(null)), [w.account]);
  if (!w.account) return html`<div data-testid="channels-page"><h1>Channels</h1><p class="muted">Connect a wallet to see your channels.</p></div>`;
  return html`<div data-testid="channels-page">
    <h1>Channels</h1>
    <${Card} title="Deposit"><${Deposit} reload=${load.reload} /></${Card}>
    <${Loaded} load=${load}>${(d) => html`<${Card} title="Your channels" testid="channels">
      <${Table} testid="channels-table" empty="no channel"
        head=${["channel", "state", `deposited (${d.stablecoin.symbol})`, "redeemed", "balance", "withdrawable from", "app signers", ""]}
        rows=${d.channels.map((ch) => html`<${Channel} key=${ch.node_id} ch=${ch} now=${d.clock.chain_time} reload=${load.reload} />`)} />
      <p class="muted">Closing starts a grace of ${Math.round(d.close_grace / 60)} min for the node to redeem; then you withdraw the rest.</p>
    </${Card}>`}</${Loaded}>
    <${Card} title="Authorise an app signer"><${Authorise} reload=${load.reload} /></${Card}>
  </div>`;
}
