"""A public testnet, simulated: anvil as Sepolia (chain id 11155111), a block every 2
seconds instead of instant mining, a non-zero base fee. Deploy (against an existing
stablecoin), register, sign and post, finalize, claim, a customer's channel deposit and
voucher redeemed by the operator, all through the CLI with EIP-1559 fees and two
confirmations; and a manifest of another chain is refused."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode
from hexbytes import HexBytes

from edgeshare.artifacts import load_artifact
from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.signer import Signer
from edgeshare.tx import Transactor

SEPOLIA = 11155111
EPOCH = 10


def _skip_time(w3: Any, seconds: int) -> None:
    """Move the chain's clock on (anvil) and wait for a block that shows it."""
    target = int(w3.eth.get_block("latest")["timestamp"]) + seconds
    w3.provider.make_request("evm_increaseTime", [seconds])
    while int(w3.eth.get_block("latest")["timestamp"]) < target:
        time.sleep(0.5)


@pytest.fixture(scope="module")
def sepolia() -> Iterator[LocalChain]:
    extra = ("--block-base-fee-per-gas", "1000000000")
    with LocalChain("anvil", chain_id=SEPOLIA, block_time=2, extra_args=extra) as chain:
        yield chain


def run(*args: str, env: dict[str, str]) -> Any:
    result = subprocess.run(
        ["edgeshare", *args, "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_testnet_flow__deploy_register_post_finalize_claim(
    sepolia: LocalChain, tmp_path: Path
) -> None:
    keys = build_dev_keys(5)
    env = {"DEPLOYER": keys[0], "OPERATOR": keys[1], "ATTESTOR": keys[2], "PAYER": keys[3]}
    w3 = connect(sepolia.url)
    assert w3.eth.get_block("latest")["baseFeePerGas"] > 0
    # the testnet's stablecoin exists before EdgeShare does
    deployer = Transactor(w3, Signer.from_key(keys[0]), confirmations=2)
    mock = load_artifact("MockStablecoin")
    usdc, _ = deployer.deploy(
        HexBytes(mock.bytecode) + encode(["string", "string", "uint8"], ["Test USDC", "tUSDC", 6]),
        "deploy tUSDC",
    )
    chain = ["--rpc-url", sepolia.url]
    manifest = tmp_path / "sepolia.json"
    common = [*chain, "--manifest", str(manifest), "--confirmations", "2"]

    deployed = run(
        "deploy",
        *common,
        "--private-key-env",
        "DEPLOYER",
        "--stablecoin",
        usdc,
        "--epoch-length",
        str(EPOCH),
        "--challenge-period",
        "3600",
        "--unlock-period",
        str(EPOCH),
        env=env,
    )
    assert (
        deployed["manifest"]["chain_id"] == SEPOLIA
        and not deployed["manifest"]["stablecoin_is_mock"]
    )
    registry_tx = w3.eth.get_transaction_receipt(
        w3.eth.get_block(deployed["manifest"]["block"])["transactions"][0]
    )
    assert registry_tx["type"] == 2  # EIP-1559

    operator, attestor = Signer.from_key(keys[1]).address, Signer.from_key(keys[2]).address
    nodes = tmp_path / "nodes.yaml"
    nodes.write_text(
        f"nodes:\n  - external_id: sep-1\n    operator: {operator}\n    attestor: {attestor}\n"
        "    shares: 1000\n    price_per_1k: 250000 base\n    operator_cut_bps: 1000\n"
        "    region: Singapore\n"
    )
    registered = run(
        "nodes", "register", str(nodes), *common, "--private-key-env", "DEPLOYER", env=env
    )
    assert registered[0]["action"] == "registered"

    payer = Signer.from_key(keys[3]).address
    coin = w3.eth.contract(address=usdc, abi=mock.abi)
    deployer.send({"to": usdc, "data": coin.encode_abi("mint", [payer, 10**12])}, "mint tUSDC")
    registry = w3.eth.contract(
        address=deployed["manifest"]["contracts"]["NodeRegistry"],
        abi=load_artifact("NodeRegistry").abi,
    )
    genesis = registry.functions.GENESIS().call()
    first = registry.functions.registered_epoch(1).call()  # the node's first epoch
    while w3.eth.get_block("latest")["timestamp"] < genesis + (first + 2) * EPOCH:
        time.sleep(1)  # its first two epochs end
    usage = tmp_path / "usage.csv"
    usage.write_text(
        "node_id,epoch,inferences,latency_ms,uptime_bps\n"
        f"1,{first},40000,35,9990\n1,{first + 1},52000,33,9995\n"
    )
    reports = tmp_path / "reports.json"
    run(
        "attest",
        "sign",
        str(usage),
        "--attestor-key-env",
        "ATTESTOR",
        "-o",
        str(reports),
        *chain,
        "--manifest",
        str(manifest),
        env=env,
    )
    posted = run("attest", "post", str(reports), *common, "--private-key-env", "PAYER", env=env)
    assert posted["settled"] == 2 and int(posted["revenue"]) == (40_000 + 52_000) * 250_000 // 1_000
    settle = w3.eth.get_transaction(posted["transactions"][0])
    assert settle["type"] == 2 and settle["maxFeePerGas"] > 10**9
    _skip_time(w3, 3_600)  # the one-hour challenge window passes
    finalized = run(
        "attest", "finalize", str(reports), *common, "--private-key-env", "PAYER", env=env
    )
    assert finalized["finalized"] == 2
    _skip_time(w3, EPOCH)  # the revenue vests over one epoch
    claimed = run("claim", *common, "--private-key-env", "OPERATOR", env=env)
    # per report: 5% fee and 10% cut, each rounded down; the operator holds every share
    revenues = [40_000 * 250_000 // 1_000, 52_000 * 250_000 // 1_000]
    holders = sum(r - r * 500 // 10_000 - r * 1_000 // 10_000 for r in revenues)
    assert holders - 1 <= int(claimed["total"]) <= holders  # docs/SPEC.md "Rounding"
    assert coin.functions.balanceOf(operator).call() == int(claimed["total"])
    again = run("attest", "post", str(reports), *common, "--private-key-env", "PAYER", env=env)
    assert again["settled"] == 0 and again["already_settled"] == 2

    # a customer pays the node directly through a channel, from its own machine (key)
    customer = Signer.from_key(keys[4]).address
    deployer.send({"to": usdc, "data": coin.encode_abi("mint", [customer, 10**8])}, "mint tUSDC")
    env["CUSTOMER"] = keys[4]
    deposited = run("channel", "deposit", "1", "2.5", *common, "--private-key-env", "CUSTOMER",
                    env=env)  # fmt: skip
    assert deposited["details"]["unredeemed"] == "2500000"
    voucher = tmp_path / "voucher.json"
    signed = run("channel", "voucher", "1", "1.25", "-o", str(voucher), *chain, "--manifest",
                 str(manifest), "--private-key-env", "CUSTOMER", env=env)  # fmt: skip
    assert signed["cumulative"] == "1250000"
    # the operator, on its machine, redeems the file it was sent; again redeems nothing
    redeemed = run("channel", "redeem", str(voucher), *common, "--private-key-env", "OPERATOR",
                   env=env)  # fmt: skip
    assert redeemed["redeemed"] == 1 and redeemed["amount"] == "1250000"
    again = run("channel", "redeem", str(voucher), *common, "--private-key-env", "OPERATOR",
                env=env)  # fmt: skip
    assert again["redeemed"] == 0 and again["skipped"][0]["reason"] == 5
    _skip_time(w3, EPOCH)  # the channel revenue vests over one epoch
    claimed = run("claim", *common, "--private-key-env", "OPERATOR", env=env)
    paid = 1_250_000
    holders = paid - paid * 500 // 10_000 - paid * 1_000 // 10_000
    assert holders - 1 <= int(claimed["total"]) <= holders


def test_testnet__manifest_of_another_chain__refused(sepolia: LocalChain, tmp_path: Path) -> None:
    manifest = tmp_path / "local.json"
    manifest.write_text(
        json.dumps(
            {
                "chain_id": 31337,
                "deployer": "0x" + "11" * 20,
                "block": 1,
                "params": {},
                "contracts": {"Stablecoin": "0x" + "22" * 20},
                "stablecoin_is_mock": True,
            }
        )
    )
    result = subprocess.run(
        ["edgeshare", "nodes", "list", "--rpc-url", sepolia.url, "--manifest", str(manifest)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "manifest is for chain 31337, the node is chain 11155111" in result.stderr
