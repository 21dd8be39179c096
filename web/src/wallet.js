// The browser wallet: EIP-6963 discovery (window.ethereum as a fallback), connecting,
// the chain check, signing typed data and the transaction lifecycle (simulate with
// eth_call, send, poll the receipt through the wallet, decode a revert).
import { toQuantity } from "ethers";
import { decodeRevert } from "./contracts.js";
import { Store } from "./store.js";

export const REJECTED = "rejected in the wallet";

export const wallet = new Store({
  providers: [],
  provider: null,
  info: null,
  account: null,
  chainId: null,
  error: null,
});

let wantedChain = null;

/** The chain id the app is for (from /api/config). */
export function setWantedChain(chainId) {
  wantedChain = Number(chainId);
}

const announced = new Map();

function onAnnounce(event) {
  const detail = event.detail;
  if (!detail || !detail.info || !detail.provider) return;
  announced.set(detail.info.uuid, detail);
  wallet.set({ providers: [...announced.values()].map((d) => d.info) });
}

/** Start EIP-6963 discovery. */
export function discover() {
  window.addEventListener("eip6963:announceProvider", onAnnounce);
  window.dispatchEvent(new Event("eip6963:requestProvider"));
}

function isRejection(err) {
  return err && (err.code === 4001 || err.code === "ACTION_REJECTED");
}

function describe(err) {
  if (isRejection(err)) return REJECTED;
  return (err && err.message) || String(err);
}

/** A raw EIP-1193 request to the connected wallet. */
export async function rpc(method, params = []) {
  return request(method, params);
}

async function request(method, params = []) {
  const provider = wallet.get().provider;
  if (!provider) throw new Error("no wallet connected");
  return provider.request({ method, params });
}

const listening = new WeakSet();

function listen(provider) {
  if (!provider.on || listening.has(provider)) return;
  listening.add(provider);
  provider.on("accountsChanged", (accounts) => wallet.set({ account: accounts[0] || null }));
  provider.on("chainChanged", (id) => wallet.set({ chainId: Number(id) }));
}

/** Connect to the wallet `uuid` (EIP-6963), else the first announced, else window.ethereum. */
export async function connect(uuid) {
  const chosen = (uuid && announced.get(uuid)) || [...announced.values()][0];
  const provider = chosen ? chosen.provider : window.ethereum;
  if (!provider) {
    wallet.set({ error: "no browser wallet found: install one (any EIP-1193 wallet) and reload" });
    return false;
  }
  wallet.set({ provider, info: chosen ? chosen.info : { name: "injected wallet" }, error: null });
  try {
    const accounts = await provider.request({ method: "eth_requestAccounts", params: [] });
    const chainId = Number(await provider.request({ method: "eth_chainId", params: [] }));
    wallet.set({ account: accounts[0] || null, chainId });
    listen(provider);
    await ensureChain();
    return true;
  } catch (err) {
    wallet.set({ error: isRejection(err) ? `connecting was ${REJECTED}` : describe(err) });
    return false;
  }
}

/** Make sure the wallet is on the app's chain, asking it to switch if not. */
export async function ensureChain() {
  const now = Number(await request("eth_chainId"));
  wallet.set({ chainId: now });
  if (wantedChain === null || now === wantedChain) return;
  try {
    await request("wallet_switchEthereumChain", [{ chainId: toQuantity(wantedChain) }]);
  } catch (err) {
    const why = isRejection(err) ? `switching was ${REJECTED}` : err.code === 4902 ? `the wallet does not know chain ${wantedChain}` : describe(err);
    const message = `the wallet is on chain ${now}, this app is on chain ${wantedChain}: ${why}`;
    wallet.set({ error: message });
    throw new Error(message);
  }
  const after = Number(await request("eth_chainId"));
  wallet.set({ chainId: after, error: null });
  if (after !== wantedChain) throw new Error(`the wallet stayed on chain ${after}; this app is on chain ${wantedChain}`);
}

/** The connected account, connecting first if needed. */
export async function requireAccount() {
  if (!wallet.get().account) {
    const ok = await connect();
    if (!ok) throw new Error(wallet.get().error || "connect a wallet first");
  }
  await ensureChain();
  return wallet.get().account;
}

/** eth_call through the wallet; returns the result data. */
export async function call(to, data, from, block = "latest") {
  return request("eth_call", [{ from: from || wallet.get().account || undefined, to, data }, block]);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitReceipt(hash) {
  for (let i = 0; i < 1200; i += 1) {
    const receipt = await request("eth_getTransactionReceipt", [hash]);
    if (receipt) return receipt;
    await sleep(i < 20 ? 150 : 500);
  }
  throw new Error(`no receipt for ${hash} after 10 minutes`);
}

/**
 * Send a transaction the safe way. `update` receives {state, label, hash, reason, message}:
 * simulating -> (refused: the simulation reverted, nothing sent) | pending -> confirmed |
 * reverted; rejected (4001); error. Resolves to the receipt, or null when nothing was mined
 * as wanted.
 */
export async function sendTx({ to, data, label }, update) {
  const say = (state, extra = {}) => update({ state, label, ...extra });
  let from;
  try {
    from = await requireAccount();
  } catch (err) {
    say(isRejection(err) ? "rejected" : "error", { message: describe(err) });
    return null;
  }
  say("simulating");
  try {
    await call(to, data, from);
  } catch (err) {
    if (isRejection(err)) {
      say("rejected", { message: REJECTED });
      return null;
    }
    const reason = decodeRevert(err);
    say("refused", { reason, message: `${label} would revert: ${reason}; nothing was sent` });
    return null;
  }
  let hash;
  try {
    hash = await request("eth_sendTransaction", [{ from, to, data }]);
  } catch (err) {
    if (isRejection(err)) say("rejected", { message: `${label}: ${REJECTED}; nothing was sent` });
    else say("error", { message: `${label}: ${describe(err)}` });
    return null;
  }
  say("pending", { hash, message: `${label}: pending (${hash})` });
  let receipt;
  try {
    receipt = await waitReceipt(hash);
  } catch (err) {
    say("error", { hash, message: describe(err) });
    return null;
  }
  if (Number(receipt.status) === 1) {
    say("confirmed", { hash, message: `${label}: confirmed in block ${Number(receipt.blockNumber)}` });
    return receipt;
  }
  let reason = "reverted without a reason";
  try {
    await call(to, data, from, toQuantity(Number(receipt.blockNumber) - 1));
  } catch (err) {
    reason = decodeRevert(err);
  }
  say("reverted", { hash, reason, message: `${label}: reverted in block ${Number(receipt.blockNumber)}: ${reason}` });
  return null;
}

/** Run transactions one after the other (an approval, then the action); true if all confirmed. */
export async function sendAll(steps, update) {
  for (const step of steps) {
    const receipt = await sendTx(step, update);
    if (!receipt) return false;
  }
  return true;
}

function jsonSafe(value) {
  return JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
}

/** Sign EIP-712 typed data with eth_signTypedData_v4; throws Error(REJECTED) on 4001. */
export async function signTypedData(typed) {
  const from = await requireAccount();
  try {
    return await request("eth_signTypedData_v4", [from, jsonSafe(typed)]);
  } catch (err) {
    throw new Error(isRejection(err) ? `signing was ${REJECTED}` : describe(err));
  }
}
