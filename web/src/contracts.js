// Contract interfaces: the ABIs the API serves (from the compiled artifacts), with the
// few functions the app calls written out as a fallback, and revert decoding.
import { AbiCoder, Interface, dataSlice } from "ethers";

const ORDER = "(address maker,address share,bool sell,uint256 amount,uint256 price_per_share,uint256 min_fill,uint64 expiry,uint256 nonce,uint256 salt)";

const FALLBACK = {
  Stablecoin: [
    "function approve(address spender, uint256 amount) returns (bool)",
    "function allowance(address owner, address spender) view returns (uint256)",
    "function balanceOf(address owner) view returns (uint256)",
  ],
  NodeShare: [
    "function claim() returns (uint256)",
    "function claim_to(address receiver) returns (uint256)",
    "function permit(address owner, address spender, uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s)",
    "function approve(address spender, uint256 amount) returns (bool)",
    "function allowance(address owner, address spender) view returns (uint256)",
    "function balanceOf(address owner) view returns (uint256)",
  ],
  PortfolioClaimer: ["function claim_many(address[] tokens, address receiver) returns (uint256)"],
  ShareOffering: [
    "function commit(uint256 amount)",
    "function cancel(uint256 amount)",
    "function claim_shares() returns (uint256)",
    "function refund() returns (uint256)",
  ],
  PaymentChannels: [
    "function deposit(uint256 node_id, uint256 amount)",
    "function authorize_signer(uint256 node_id, address signer)",
    "function request_close(uint256 node_id) returns (uint256)",
    "function withdraw(uint256 node_id) returns (uint256)",
  ],
  ShareMarket: [
    `function fill(${ORDER} order, bytes signature, uint256 amount) returns (uint256)`,
    `function cancel(${ORDER} order)`,
    "function nonces(address maker) view returns (uint256)",
  ],
  NodeRegistry: [
    "function set_price(uint256 node_id, uint256 price_per_1k)",
    "function propose_operator_cut(uint256 node_id, uint256 cut_bps)",
    "function rotate_attestor(uint256 node_id, address new_attestor)",
  ],
  RevenueRouter: ["function withdraw(address receiver) returns (uint256)"],
};

const cache = new Map();
let served = {};

/** Use the ABIs of /api/config (name -> ABI list). */
export function setAbis(abis) {
  served = abis || {};
  cache.clear();
}

/** The ethers Interface of contract `name` (the served ABI, else the fallback). */
export function iface(name) {
  if (!cache.has(name)) {
    const abi = served[name] || FALLBACK[name];
    cache.set(name, new Interface(abi));
  }
  return cache.get(name);
}

/** Calldata for `name.fn(...args)`. */
export function encode(name, fn, args = []) {
  return iface(name).encodeFunctionData(fn, args);
}

/** Decode a call result. */
export function decodeResult(name, fn, data) {
  return iface(name).decodeFunctionResult(fn, data);
}

function findData(err) {
  const seen = new Set();
  const queue = [err];
  while (queue.length) {
    const e = queue.shift();
    if (!e || typeof e !== "object" || seen.has(e)) continue;
    seen.add(e);
    if (typeof e.data === "string" && /^0x[0-9a-fA-F]*$/.test(e.data)) return e.data;
    for (const key of ["data", "error", "info", "cause"]) queue.push(e[key]);
  }
  return null;
}

const PANICS = { 0x01: "assertion failed", 0x11: "arithmetic overflow", 0x12: "division by zero", 0x32: "index out of bounds" };

/** The reason a call reverted with, in words, from an EIP-1193 error or revert data. */
export function decodeRevert(err) {
  const data = typeof err === "string" ? err : findData(err);
  if (data && data.length >= 10) {
    const selector = data.slice(0, 10).toLowerCase();
    try {
      if (selector === "0x08c379a0") return AbiCoder.defaultAbiCoder().decode(["string"], dataSlice(data, 4))[0];
      if (selector === "0x4e487b71") {
        const code = Number(AbiCoder.defaultAbiCoder().decode(["uint256"], dataSlice(data, 4))[0]);
        return `panic: ${PANICS[code] || `code ${code}`}`;
      }
    } catch {
      /* fall through to the ABIs */
    }
    for (const name of Object.keys(served)) {
      try {
        const parsed = iface(name).parseError(data);
        if (parsed) return `${parsed.name}(${parsed.args.map(String).join(", ")})`;
      } catch {
        /* not this contract's error */
      }
    }
    return `reverted with data ${data.slice(0, 18)}…`;
  }
  if (data === "0x") return "reverted without a reason";
  const message = (err && (err.message || String(err))) || "reverted";
  return message.replace(/^execution reverted:?\s*/i, "") || "reverted without a reason";
}
