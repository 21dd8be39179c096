// Reads through the wallet's provider (so the page talks to no host but the app's) and
// the approval a Python sender would send first.
import { decodeResult, encode } from "./contracts.js";
import { call, requireAccount, rpc } from "./wallet.js";

/** owner's allowance of `token` to `spender` (BigInt). */
export async function allowance(token, owner, spender) {
  const data = await call(token, encode("Stablecoin", "allowance", [owner, spender]), owner);
  return BigInt(decodeResult("Stablecoin", "allowance", data)[0]);
}

/** owner's balance of `token` (BigInt). */
export async function balanceOf(token, owner) {
  const data = await call(token, encode("Stablecoin", "balanceOf", [owner]), owner);
  return BigInt(decodeResult("Stablecoin", "balanceOf", data)[0]);
}

/** [] when the allowance covers `amount`, else the approve transaction. */
export async function approveSteps(token, spender, amount, label) {
  const owner = await requireAccount();
  if ((await allowance(token, owner, spender)) >= amount) return [];
  return [{ to: token, data: encode("Stablecoin", "approve", [spender, amount]), label }];
}

/** The latest block's timestamp (unix seconds), through the wallet. */
export async function chainNow() {
  const block = await rpc("eth_getBlockByNumber", ["latest", false]);
  return Number(block.timestamp);
}
