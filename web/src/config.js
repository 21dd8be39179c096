// The app's configuration (GET /api/config), loaded once at start.
import { get } from "./api.js";
import { setAbis } from "./contracts.js";
import { setWantedChain } from "./wallet.js";

let config = null;

/** Load /api/config and set up the ABIs and the wanted chain. */
export async function loadConfig() {
  config = await get("config");
  setAbis(config.abis);
  setWantedChain(config.chain_id);
  return config;
}

/** The loaded config. */
export function cfg() {
  return config;
}

/** A suite contract's address by its name in config.contracts ("ShareMarket", ...). */
export function address(name) {
  const found = config.contracts[name];
  if (!found) throw new Error(`the server's config has no ${name} address`);
  return found;
}

/** The stablecoin: {address, symbol, decimals}. */
export function coin() {
  return config.stablecoin;
}

/** Share token of node `id`. */
export function shareToken(id) {
  return config.share_tokens ? config.share_tokens[String(id)] : null;
}

/** The API's chain time as of the config (seconds). */
export function chainTime() {
  return config.chain_time;
}
