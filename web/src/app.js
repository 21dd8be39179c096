// EdgeShare's web app: the shell (navigation, wallet) and the hash router.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { Board, prefetchBoard } from "./board.js";
import { Channels } from "./channels.js";
import { cfg, loadConfig } from "./config.js";
import { short } from "./format.js";
import { NodePage } from "./node.js";
import { Offerings } from "./offerings.js";
import { Operator } from "./operator.js";
import { Portfolio } from "./portfolio.js";
import { useStore } from "./store.js";
import { Trade } from "./trade.js";
import { html } from "./ui.js";
import { connect, discover, ensureChain, wallet } from "./wallet.js";

const PAGES = [
  ["board", "Board"],
  ["portfolio", "Portfolio"],
  ["offerings", "Offerings"],
  ["trade", "Trade"],
  ["channels", "Channels"],
  ["operator", "Operator"],
];

function parseRoute() {
  const parts = window.location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  return { page: parts[0] || "board", arg: parts[1] ? decodeURIComponent(parts[1]) : null };
}

function WalletBar() {
  const w = useStore(wallet);
  const wrong = w.account && w.chainId !== null && w.chainId !== cfg().chain_id;
  return html`<div class="wallet" data-testid="wallet">
    ${w.account
      ? html`<span data-testid="account" data-address=${w.account} title=${w.account}>${short(w.account)}</span>
          <span class=${wrong ? "chain wrong" : "chain"} data-testid="chain" data-chain=${w.chainId}>chain ${w.chainId}</span>
          ${wrong && html`<button data-testid="switch-chain" onClick=${() => ensureChain().catch(() => {})}>Switch to chain ${cfg().chain_id}</button>`}`
      : html`${w.providers.length > 1
          ? w.providers.map((p) => html`<button data-testid="connect" data-wallet=${p.rdns} onClick=${() => connect(p.uuid)}>Connect ${p.name}</button>`)
          : html`<button data-testid="connect" onClick=${() => connect()}>Connect wallet</button>`}`}
    ${w.error && html`<span class="error" role="alert" data-testid="wallet-error">${w.error}</span>`}
  </div>`;
}

function Page({ route }) {
  switch (route.page) {
    case "node":
      return html`<${NodePage} id=${route.arg} />`;
    case "portfolio":
      return html`<${Portfolio} address=${route.arg} />`;
    case "offerings":
      return html`<${Offerings} />`;
    case "trade":
      return html`<${Trade} />`;
    case "channels":
      return html`<${Channels} />`;
    case "operator":
      return html`<${Operator} />`;
    case "board":
      return html`<${Board} />`;
    default:
      return html`<p class="error" data-testid="not-found">No page "${route.page}".</p>`;
  }
}

function App() {
  const [route, setRoute] = useState(parseRoute());
  useEffect(() => {
    const on = () => setRoute(parseRoute());
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  const c = cfg();
  return html`<div class="shell">
    <header>
      <a class="brand" href="#/board">EdgeShare</a>
      <nav>${PAGES.map(([id, name]) => html`<a href=${`#/${id}`} class=${route.page === id ? "active" : ""} data-testid=${`nav-${id}`}>${name}</a>`)}</nav>
      <${WalletBar} />
    </header>
    <main data-testid="main" data-page=${route.page}><${Page} route=${route} /></main>
    <footer class="muted">chain ${c.chain_id} · ${c.stablecoin.symbol} ${c.stablecoin.address}</footer>
  </div>`;
}

async function start() {
  discover();
  if (parseRoute().page === "board") prefetchBoard();
  const root = document.getElementById("app");
  try {
    await loadConfig();
  } catch (err) {
    root.textContent = `EdgeShare cannot start: ${err.message}`;
    root.className = "error";
    return;
  }
  root.textContent = "";
  render(html`<${App} />`, root);
  document.body.dataset.ready = "1";
}

start();
