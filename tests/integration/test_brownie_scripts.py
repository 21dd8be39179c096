"""The brownie scripts act through the library on brownie's active network."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from brownie import web3

from edgeshare.errors import InputError

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_deploy_script__deploys_then_reuses(tmp_path: Path, deployer: Any) -> None:
    deploy = load_script("deploy")
    path = tmp_path / "manifest.json"
    manifest = deploy.main(str(path))
    assert manifest.is_complete() and manifest.deployer == deployer.address
    assert manifest.chain_id == web3.eth.chain_id
    nonce = web3.eth.get_transaction_count(deployer.address)
    assert deploy.main(str(path)) == manifest
    assert web3.eth.get_transaction_count(deployer.address) == nonce


def test_scripts__register_post_claim_report_as_brownie_account(
    tmp_path: Path, deployer: Any, attestor: Any, attestor_key: str
) -> None:
    from edgeshare.attestation import UsageReport, sign
    from edgeshare.suite import fetch_domain_of, send_increase_time
    from edgeshare.usage import write_reports_file

    manifest = str(tmp_path / "manifest.json")
    load_script("deploy").main(manifest)
    nodes = tmp_path / "nodes.yaml"
    nodes.write_text(
        f"nodes:\n  - external_id: br-1\n    operator: {deployer.address}\n"
        f"    attestor: {attestor.address}\n    shares: 1000\n    price_per_1k: 2000 base\n"
        "    operator_cut_bps: 0\n    region: Dhaka\n"
    )
    done = load_script("register_nodes").main(str(nodes), manifest)
    assert [r.action for r in done] == ["registered"]
    assert [r.action for r in load_script("register_nodes").main(str(nodes), manifest)] == [
        "already registered"
    ]
    from edgeshare.brownie_support import get_suite

    suite = get_suite(manifest)
    send_increase_time(web3, 2 * 86_400)
    domain = fetch_domain_of(suite)
    report = UsageReport(
        node_id=done[0].node_id, epoch=0, inferences=500, revenue=1_000,
        latency_ms=10, uptime_bps=10_000, deadline=2**40,
    )  # fmt: skip
    reports = tmp_path / "reports.json"
    write_reports_file(reports, domain, [sign(report, attestor_key, domain)])
    coin = suite.stablecoin
    _send(coin.tx("mint", deployer.address, 10**9), deployer.address)
    posted = load_script("post_attestations").main(str(reports), manifest)
    assert (posted.settled, posted.revenue) == (1, 1_000)
    assert load_script("post_attestations").main(str(reports), manifest).settled == 0
    send_increase_time(web3, 2 * 86_400)  # past the default one-day challenge window
    _send(suite.router.tx("finalize", done[0].node_id, [0]), deployer.address)
    send_increase_time(web3, 2 * 86_400)  # and the one-day unlock period
    claims = load_script("claim").main(manifest)
    assert [(c.node_id, c.receiver) for c in claims] == [(done[0].node_id, deployer.address)]
    assert 1_000 * 95 // 100 - 1 <= claims[0].amount <= 1_000 * 95 // 100
    out = tmp_path / "operator.json"
    db = f"sqlite:///{tmp_path / 'index.db'}"
    report_obj = load_script("report").main("operator", deployer.address, str(out), manifest, db)
    assert report_obj.nodes[0].revenue == 1_000 and out.exists()


def _send(call: dict[str, str], sender: str) -> None:
    """Send through the dev node's own account (brownie's way), independent of ours."""
    tx_hash = web3.eth.send_transaction({**call, "from": sender})  # type: ignore[typeddict-item]
    assert web3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)["status"] == 1


def test_role_scripts__operator_guardian_registrar_owner_act_through_the_library(
    tmp_path: Path, deployer: Any, attestor: Any, treasury: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgeshare.brownie_support import get_suite, get_transactor
    from edgeshare.chain import build_dev_keys
    from edgeshare.suite import NodeSpec, send_mint_mock, send_register_node

    manifest = str(tmp_path / "manifest.json")
    load_script("deploy").main(manifest)
    suite = get_suite(manifest)
    spec = NodeSpec(
        operator=deployer.address, attestor=attestor.address, shares=10**21,
        price_per_1k=2_000, operator_cut_bps=0, region="Dhaka",
    )  # fmt: skip
    node_id = send_register_node(get_transactor(), suite, spec)
    decimals = int(suite.stablecoin.call("decimals"))
    load_script("operator").set_price(str(node_id), "0.45", manifest)
    assert suite.fetch_node(node_id).next_price_per_1k == 45 * 10**decimals // 100
    load_script("operator").propose_cut(str(node_id), "2.5", manifest)
    assert suite.fetch_node(node_id).next_operator_cut_bps == 0  # an increase waits a week
    assert suite.fetch_node(node_id).pending_cut_bps == 250
    load_script("registrar").pause(str(node_id), manifest)
    assert suite.fetch_node(node_id).status == "paused"
    load_script("registrar").resume(str(node_id), manifest)
    load_script("guardian").pause(manifest)
    assert suite.registry.call("paused") is True
    load_script("guardian").unpause(manifest)
    load_script("owner").set_treasury(treasury.address, manifest)
    assert suite.router.call("treasury") == treasury.address
    # a customer's channel: deposit, voucher, the operator (the same account here) redeems
    decimals_unit = 10**decimals
    send_mint_mock(get_transactor(), suite, deployer.address, 10 * decimals_unit)
    monkeypatch.setenv("EDGESHARE_PRIVATE_KEY", build_dev_keys(1)[0])  # vouchers need a key
    channel = load_script("channel")
    channel.deposit(str(node_id), "5", manifest)
    vouchers = tmp_path / "vouchers.json"
    channel.voucher(str(node_id), "1.5", str(vouchers), manifest)
    result = channel.redeem(str(vouchers), manifest)
    assert result.amount == 15 * decimals_unit // 10
    assert channel.redeem(str(vouchers), manifest).amount == 0
    channel.close(str(node_id), manifest)
    # a basket over the node: create, mint, harvest (nothing owed yet: refused), redeem
    basket = load_script("basket")
    made = basket.create("Dhaka basket", "ESBD", f"{node_id}:2", manifest)
    address = made.details["basket"]
    basket.mint(address, "3", manifest)
    assert int(suite.share(node_id).call("balanceOf", address)) == 6 * 10**18
    with pytest.raises(InputError, match="nothing to harvest"):
        basket.harvest(address, manifest)
    basket.redeem(address, "3", manifest)
    assert int(suite.share(node_id).call("balanceOf", address)) == 0
