"""Payment-channel vouchers signed by an independent client (ethers.js v6,
tests/interop/sign_voucher.mjs): the Python side reads them as a vouchers file, computes
the chain's digest, accepts them in the gateway's cached check, and the node's operator
redeems them; signed with the customer's own key, and with an app key it authorised."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.channels import (
    SKIP_BAD_SIGNATURE,
    UNKNOWN_TO_CACHE,
    SignedVoucher,
    VoucherChecker,
    check_on_chain,
    fetch_channel,
    fetch_channels_domain,
    get_voucher_digest,
    read_vouchers_file,
    recover_voucher_signer,
    redeem_vouchers,
    send_authorize_signer,
    send_deposit,
    sign_voucher,
)
from edgeshare.deploy import build_params, deploy_suite
from edgeshare.roles import fetch_chain_time
from edgeshare.signer import Signer
from edgeshare.suite import NodeSpec, Suite, send_mint_mock, send_register_node
from edgeshare.tx import Transactor
from tests.inproc import run_main, snapshot_and_revert

ROOT = Path(__file__).resolve().parents[2]
EPOCH = 3_600
CHALLENGE = 3_600
USDC = 10**6
DEPOSIT = 25 * USDC
OWNER, OPERATOR, ATTESTOR, CUSTOMER, APP = range(5)
NODE = 1


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A suite with one node, and a customer who deposited 25 USDC into a channel to it."""
    keys = build_dev_keys(5)
    with LocalChain("anvil") as chain:
        w3 = connect(chain.url)
        owner = Transactor(w3, Signer.from_key(keys[OWNER]))
        manifest = tmp_path_factory.mktemp("channels-interop") / "manifest.json"
        params = build_params(None, epoch_length=EPOCH, challenge_period=CHALLENGE)
        suite = Suite.load(w3, deploy_suite(owner, params, manifest).manifest)
        spec = NodeSpec(
            operator=address(keys, OPERATOR),
            attestor=address(keys, ATTESTOR),
            shares=1_000 * 10**18,
            price_per_1k=2 * USDC,
            operator_cut_bps=1_000,
            region="Lagos",
        )
        assert send_register_node(owner, suite, spec) == NODE
        send_mint_mock(owner, suite, address(keys, CUSTOMER), 100 * USDC)
        customer = Transactor(w3, Signer.from_key(keys[CUSTOMER]))
        assert send_deposit(customer, suite, NODE, DEPOSIT).details["unredeemed"] == DEPOSIT
        yield {"chain": chain, "w3": w3, "suite": suite, "manifest": manifest, "keys": keys}


@pytest.fixture(autouse=True)
def fresh(world: dict[str, Any]) -> Iterator[None]:
    yield from snapshot_and_revert(world["w3"])


def address(keys: list[str], who: int) -> str:
    return Signer.from_key(keys[who]).address


def sign_with_ethers(world: dict[str, Any], key: str, voucher: dict[str, Any]) -> dict[str, Any]:
    """Run the ethers.js client: it signs ``voucher`` (numbers as decimal strings)."""
    proc = subprocess.run(
        [
            "node",
            str(ROOT / "tests" / "interop" / "sign_voucher.mjs"),
            world["chain"].url,
            world["suite"].channels.address,
            json.dumps(voucher),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "INTEROP_KEY": key},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def read_ethers_file(out: dict[str, Any], path: Path) -> tuple[Any, SignedVoucher]:
    """The ethers client's vouchers file, read as `edgeshare channel redeem` reads it."""
    path.write_text(json.dumps(out["file"]))
    parsed = read_vouchers_file(path)
    (signed,) = parsed.vouchers
    return parsed.domain, signed


def assert_same_digest(suite: Suite, out: dict[str, Any], signed: SignedVoucher) -> None:
    digest = get_voucher_digest(signed.get_voucher(), fetch_channels_domain(suite))
    assert out["digest"] == "0x" + digest.hex()
    assert bytes(suite.channels.call("voucher_digest", signed.as_tuple())) == digest


def channel_revenue_of_block(suite: Suite, tx_hash: str) -> int:
    """The node's channel revenue in the epoch of the block ``tx_hash`` was mined in."""
    block = int(suite.rpc.call("eth_getTransactionReceipt", [tx_hash])["blockNumber"], 16)
    epoch = int(suite.registry.call("current_epoch", block=block))
    return int(suite.router.call("channel_revenue", NODE, epoch))


def voucher_message(customer: str, cumulative: int, deadline: int) -> dict[str, str]:
    return {
        "nodeId": str(NODE),
        "customer": customer,
        "generation": "0",
        "cumulative": str(cumulative),
        "deadline": str(deadline),
    }


def test_customer_key__ethers_voucher_checks_and_redeems_with_the_cli(
    world: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    suite, keys = world["suite"], world["keys"]
    customer = address(keys, CUSTOMER)
    now = fetch_chain_time(suite)
    amount = 4 * USDC + 250_000
    out = sign_with_ethers(world, keys[CUSTOMER], voucher_message(customer, amount, now + 600))
    assert out["signer"] == customer
    path = tmp_path / "vouchers.json"
    domain, signed = read_ethers_file(out, path)
    assert domain == fetch_channels_domain(suite)
    assert (signed.node_id, signed.customer, signed.cumulative) == (NODE, customer, amount)
    assert_same_digest(suite, out, signed)
    # RFC 6979 on both sides: the very same signature as the Python signer's
    assert (
        signed.signature.lower()
        == sign_voucher(signed.get_voucher(), keys[CUSTOMER], domain).signature
    )
    # the gateway's cached check accepts it, as the chain would
    checker = VoucherChecker.load(suite, NODE, [customer])
    verdict = checker.check(signed, now)
    assert verdict.ok and verdict.amount == amount, verdict.describe()
    assert check_on_chain(suite, [signed], address(keys, OPERATOR)) == [(amount, 0)]
    # the operator redeems the ethers client's file as it is
    env = {"OPERATOR_KEY": keys[OPERATOR]}
    code, text = run_main(
        capsys,
        monkeypatch,
        env,
        *("channel", "redeem", str(path), "--json", "--private-key-env", "OPERATOR_KEY"),
        *("--rpc-url", world["chain"].url, "--manifest", str(world["manifest"])),
    )
    assert code == 0, text
    result = json.loads(text)
    assert (result["redeemed"], result["amount"], result["skipped"]) == (1, str(amount), [])
    (tx_hash,) = result["transactions"]
    assert channel_revenue_of_block(suite, tx_hash) == amount
    channel = fetch_channel(suite, customer, NODE)
    assert (channel.redeemed, channel.unredeemed) == (amount, DEPOSIT - amount)


def test_app_key__ethers_voucher_pays_once_the_customer_authorised_the_key(
    world: dict[str, Any], tmp_path: Path
) -> None:
    suite, keys, w3 = world["suite"], world["keys"], world["w3"]
    customer, app = address(keys, CUSTOMER), address(keys, APP)
    operator = address(keys, OPERATOR)
    now = fetch_chain_time(suite)
    amount = 7 * USDC
    out = sign_with_ethers(world, keys[APP], voucher_message(customer, amount, now + 600))
    assert out["signer"] == app
    domain, signed = read_ethers_file(out, tmp_path / "vouchers.json")
    assert_same_digest(suite, out, signed)
    assert recover_voucher_signer(signed, domain) == app
    # not authorised yet: the chain and the checker (once it knows the key) refuse it
    checker = VoucherChecker.load(suite, NODE, [customer])
    assert checker.check(signed, now).reason == UNKNOWN_TO_CACHE
    checker.refresh(suite, [customer], [app])
    assert checker.check(signed, now).reason == SKIP_BAD_SIGNATURE
    assert check_on_chain(suite, [signed], operator) == [(0, SKIP_BAD_SIGNATURE)]
    # the customer authorises the app's key: the same voucher now pays
    send_authorize_signer(Transactor(w3, Signer.from_key(keys[CUSTOMER])), suite, NODE, app)
    checker.refresh(suite, [customer], [app])
    verdict = checker.check(signed, now)
    assert verdict.ok and verdict.amount == amount, verdict.describe()
    assert check_on_chain(suite, [signed], operator) == [(amount, 0)]
    result = redeem_vouchers(
        Transactor(w3, Signer.from_key(keys[OPERATOR])), suite, [signed], domain
    )
    assert (result.redeemed, result.amount, result.skipped) == (1, amount, [])
    (tx_hash,) = result.transactions
    assert channel_revenue_of_block(suite, tx_hash) == amount
    assert fetch_channel(suite, customer, NODE).redeemed == amount
