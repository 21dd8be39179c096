// An independent client: ethers.js v6 reads the router's EIP-712 domain (EIP-5267),
// then signs a UsageReport with the type as docs/SPEC.md publishes it.
// Usage: INTEROP_KEY=0x... node sign_report.mjs RPC_URL ROUTER '{"nodeId": "1", ...}'
import { ethers } from "ethers";

const [rpcUrl, router, reportJson] = process.argv.slice(2);
const provider = new ethers.JsonRpcProvider(rpcUrl);
const abi = [
  "function eip712Domain() view returns (bytes1 fields, string name, string version, uint256 chainId, address verifyingContract, bytes32 salt, uint256[] extensions)",
];
const d = await new ethers.Contract(router, abi, provider).eip712Domain();
const domain = { name: d.name, version: d.version, chainId: d.chainId, verifyingContract: d.verifyingContract };
const types = {
  UsageReport: [
    { name: "nodeId", type: "uint256" },
    { name: "epoch", type: "uint64" },
    { name: "version", type: "uint32" },
    { name: "inferences", type: "uint64" },
    { name: "revenue", type: "uint256" },
    { name: "latencyMs", type: "uint32" },
    { name: "uptimeBps", type: "uint16" },
    { name: "deadline", type: "uint64" },
  ],
};
const report = JSON.parse(reportJson);
const wallet = new ethers.Wallet(process.env.INTEROP_KEY);
const signature = await wallet.signTypedData(domain, types, report);
const digest = ethers.TypedDataEncoder.hash(domain, types, report);
console.log(JSON.stringify({ signature, digest, signer: wallet.address, chainId: d.chainId.toString() }));
