// An independent client: ethers.js v6 reads the share market's EIP-712 domain (EIP-5267)
// and signs an Order with the type as docs/SPEC.md publishes it; for a sell order it may
// also sign an EIP-2612 permit of the shares for the market, in the share token's own
// domain. It prints one signed order object (what `edgeshare trade fill` reads), with the
// digest and the signer.
// Usage: INTEROP_KEY=0x... node sign_order.mjs RPC_URL MARKET '{"maker": "0x...", ...}' [permit]
import { ethers } from "ethers";

const [rpcUrl, market, orderJson, withPermit] = process.argv.slice(2);
const provider = new ethers.JsonRpcProvider(rpcUrl);
const abi = [
  "function eip712Domain() view returns (bytes1 fields, string name, string version, uint256 chainId, address verifyingContract, bytes32 salt, uint256[] extensions)",
  "function nonces(address owner) view returns (uint256)",
];
async function domainOf(address) {
  const d = await new ethers.Contract(address, abi, provider).eip712Domain();
  return { name: d.name, version: d.version, chainId: d.chainId, verifyingContract: d.verifyingContract };
}
const types = {
  Order: [
    { name: "maker", type: "address" },
    { name: "share", type: "address" },
    { name: "sell", type: "bool" },
    { name: "amount", type: "uint256" },
    { name: "price_per_share", type: "uint256" },
    { name: "min_fill", type: "uint256" },
    { name: "expiry", type: "uint64" },
    { name: "nonce", type: "uint256" },
    { name: "salt", type: "uint256" },
  ],
};
const order = JSON.parse(orderJson);
const wallet = new ethers.Wallet(process.env.INTEROP_KEY);
const domain = await domainOf(market);
const signature = await wallet.signTypedData(domain, types, order);
const digest = ethers.TypedDataEncoder.hash(domain, types, order);
const signed = { ...order, signature };
if (withPermit === "permit") {
  const permitTypes = {
    Permit: [
      { name: "owner", type: "address" },
      { name: "spender", type: "address" },
      { name: "value", type: "uint256" },
      { name: "nonce", type: "uint256" },
      { name: "deadline", type: "uint256" },
    ],
  };
  const nonce = await new ethers.Contract(order.share, abi, provider).nonces(order.maker);
  const permit = { owner: order.maker, spender: domain.verifyingContract, value: order.amount,
                   nonce: nonce.toString(), deadline: order.expiry };
  const sig = ethers.Signature.from(
    await wallet.signTypedData(await domainOf(order.share), permitTypes, permit));
  signed.permit = { value: permit.value, nonce: permit.nonce, deadline: permit.deadline,
                    v: sig.v, r: sig.r, s: sig.s };
}
console.log(JSON.stringify({ order: signed, digest, signer: wallet.address }));
