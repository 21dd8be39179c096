// An independent client: ethers.js v6 reads the payment channels' EIP-712 domain
// (EIP-5267), then signs a Voucher with the type as docs/SPEC.md publishes it, and prints
// a vouchers file (what `edgeshare channel redeem` reads) with the digest and the signer.
// Usage: INTEROP_KEY=0x... node sign_voucher.mjs RPC_URL CHANNELS '{"nodeId": "1", ...}'
import { ethers } from "ethers";

const [rpcUrl, channels, voucherJson] = process.argv.slice(2);
const provider = new ethers.JsonRpcProvider(rpcUrl);
const abi = [
  "function eip712Domain() view returns (bytes1 fields, string name, string version, uint256 chainId, address verifyingContract, bytes32 salt, uint256[] extensions)",
];
const d = await new ethers.Contract(channels, abi, provider).eip712Domain();
const domain = { name: d.name, version: d.version, chainId: d.chainId, verifyingContract: d.verifyingContract };
const types = {
  Voucher: [
    { name: "nodeId", type: "uint256" },
    { name: "customer", type: "address" },
    { name: "generation", type: "uint32" },
    { name: "cumulative", type: "uint256" },
    { name: "deadline", type: "uint64" },
  ],
};
const voucher = JSON.parse(voucherJson);
const wallet = new ethers.Wallet(process.env.INTEROP_KEY);
const signature = await wallet.signTypedData(domain, types, voucher);
const digest = ethers.TypedDataEncoder.hash(domain, types, voucher);
const file = {
  domain: { name: d.name, version: d.version, chain_id: Number(d.chainId), verifying_contract: d.verifyingContract },
  vouchers: [{ ...voucher, signature }],
};
console.log(JSON.stringify({ file, digest, signer: wallet.address }));
