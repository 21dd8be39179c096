// Formatting and parsing of amounts, times and percentages. Money is BigInt in base
// units: whole units are parsed with ethers' parseUnits and shown with formatUnits.
import { formatUnits, parseUnits } from "ethers";

/** An amount from the API: a decimal string, a number of base units, or {base_units}. */
export function toBig(value) {
  if (value === null || value === undefined || value === "") return 0n;
  if (typeof value === "bigint") return value;
  if (typeof value === "object" && "base_units" in value) return BigInt(value.base_units);
  if (typeof value === "object" && "amount" in value) return BigInt(value.amount);
  return BigInt(value);
}

function group(whole) {
  const neg = whole.startsWith("-");
  const digits = neg ? whole.slice(1) : whole;
  return (neg ? "-" : "") + digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** Base units as whole units with thousands separators, exact (no trailing zeros). */
export function fmtUnits(value, decimals, { places } = {}) {
  const text = formatUnits(toBig(value), decimals);
  let [whole, frac = ""] = text.split(".");
  frac = frac.replace(/0+$/, "");
  if (places !== undefined && frac.length > places) frac = frac.slice(0, places);
  return frac ? `${group(whole)}.${frac}` : group(whole);
}

/** A stablecoin amount with its symbol: "12.5 USDC". */
export function fmtCoin(value, coin, opts) {
  return `${fmtUnits(value, coin.decimals, opts)} ${coin.symbol}`;
}

/** Shares (18 decimals), shown with at most 4 decimals unless exact is asked. */
export function fmtShares(value, decimals = 18, exact = false) {
  return fmtUnits(value, decimals, exact ? {} : { places: 4 });
}

/**
 * Whole units typed by a person, as base units. Throws an Error naming `name` when the
 * text is not a non-negative number with at most `decimals` decimals.
 */
export function parseAmount(text, decimals, name, { allowZero = false } = {}) {
  const typed = String(text ?? "").trim();
  // commas only between groups of three digits (1,500.25), as the CLI reads them: "1,5" is
  // refused, never read as 15
  if (!/^(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$|^\.\d+$/.test(typed)) {
    throw new Error(`${name}: "${text}" is not an amount (whole units, like 1,500.25)`);
  }
  const clean = typed.replace(/,/g, "");
  const frac = clean.split(".")[1] ?? "";
  if (frac.length > decimals) throw new Error(`${name}: at most ${decimals} decimals`);
  const value = parseUnits(clean.startsWith(".") ? `0${clean}` : clean, decimals);
  if (!allowZero && value === 0n) throw new Error(`${name}: must be more than 0`);
  return value;
}

/** An integer typed by a person (a node id, basis points), within [min, max]. */
export function parseInteger(text, name, min = 0, max = Number.MAX_SAFE_INTEGER) {
  const clean = String(text ?? "").trim();
  if (!/^\d+$/.test(clean)) throw new Error(`${name}: "${text}" is not a whole number`);
  const value = Number(clean);
  if (value < min || value > max) throw new Error(`${name}: must be ${min} to ${max}`);
  return value;
}

/** A percentage typed by a person ("12.5" or "12.5%") as basis points. */
export function parseBps(text, name) {
  const clean = String(text ?? "").trim().replace(/%$/, "");
  if (!/^\d+(\.\d{1,2})?$/.test(clean)) throw new Error(`${name}: "${text}" is not a percentage like 12.5`);
  const bps = Number(parseUnits(clean, 2));
  if (bps > 10000) throw new Error(`${name}: at most 100%`);
  return bps;
}

/** Basis points as an exact percentage: 9987 -> "99.87%". */
export function fmtBps(bps) {
  if (bps === null || bps === undefined) return "–";
  const n = BigInt(bps);
  const whole = n / 100n;
  const part = n % 100n;
  return part ? `${whole}.${part.toString().padStart(2, "0")}%` : `${whole}%`;
}

/** part / whole as an exact percentage with 2 decimals (BigInt arithmetic). */
export function fmtShare(part, whole) {
  const w = toBig(whole);
  if (w === 0n) return "–";
  return fmtBps((toBig(part) * 10000n) / w);
}

/** A unix time as "2026-12-01 16:00 UTC". */
export function fmtTime(ts) {
  if (!ts) return "–";
  const d = new Date(Number(ts) * 1000);
  return `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** A date for a chart axis: "12-01 16:00". */
export function fmtShortTime(ts) {
  const d = new Date(Number(ts) * 1000);
  return d.toISOString().slice(5, 16).replace("T", " ");
}

/** Seconds as the two largest units: "1d 4h". */
export function fmtDuration(seconds) {
  let s = Math.max(0, Number(seconds));
  const parts = [];
  for (const [size, unit] of [[86400, "d"], [3600, "h"], [60, "m"], [1, "s"]]) {
    if (s >= size || (unit === "s" && !parts.length)) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join(" ");
}

/** 0x1234…abcd */
export function short(address) {
  if (!address) return "";
  return `${address.slice(0, 6)}…${address.slice(-4)}`;
}
