"""The commands against an endpoint that behaves like a hosted one (tests/faultproxy.py):
rate limits inside batch replies, HTTP 429 with and without Retry-After, dropped
connections, slow replies, sends refused for their fee. Every command finishes with the
exact result it has without faults; an endpoint that never recovers is exit 1 with one
line that names the problem and no API key. And a burst during which the base fee
climbs past what the first fees offer is re-priced and mined with no nonce gap.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from web3 import Web3

from edgeshare import pipeline, rpc
from edgeshare.attestation import UsageReport, sign
from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.deploy import build_params, deploy_suite
from edgeshare.market import fetch_portfolio
from edgeshare.pipeline import send_pipelined
from edgeshare.signer import Signer
from edgeshare.suite import Suite, fetch_domain_of, send_increase_time, send_mint_mock
from edgeshare.tx import Transactor
from edgeshare.usage import write_reports_file
from tests.faultproxy import FaultProxy, Faults
from tests.inproc import run_main

EPOCH = 60
PRICE = 2_000
KEY_PATH = "/v3/SECRET-API-KEY"


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's waits, short enough for a test (the policy is the same)."""
    monkeypatch.setattr(rpc, "BACKOFF", 0.02)
    monkeypatch.setattr(rpc, "MAX_BACKOFF", 0.2)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A deployed suite with nothing registered yet; keys: deployer, operator, attestor,
    payer."""
    keys = build_dev_keys(4)
    workdir = tmp_path_factory.mktemp("hosted")
    with LocalChain("anvil") as chain:
        w3 = connect(chain.url)
        deployer = Transactor(w3, Signer.from_key(keys[0]))
        params = build_params(None, epoch_length=EPOCH, challenge_period=3_600)
        manifest = workdir / "manifest.json"
        suite = Suite.load(w3, deploy_suite(deployer, params, manifest).manifest)
        send_mint_mock(deployer, suite, Signer.from_key(keys[3]).address, 10**15)
        env = {"DEPLOYER_KEY": keys[0], "OPERATOR_KEY": keys[1], "PAYER_KEY": keys[3]}
        yield {"chain": chain, "w3": w3, "suite": suite, "manifest": manifest, "keys": keys,
               "env": env, "workdir": workdir, "deployer": deployer}  # fmt: skip


def _run(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    world: dict[str, Any],
    url: str,
    *args: str,
) -> tuple[int, str]:
    return run_main(
        capsys, monkeypatch, world["env"], *args, "--rpc-url", url,
        "--manifest", str(world["manifest"]),
    )  # fmt: skip


def _ok_json(result: tuple[int, str]) -> Any:
    code, output = result
    assert code == 0, output
    return json.loads(output)


def _nodes_file(world: dict[str, Any], count: int) -> Path:
    operator = Signer.from_key(world["keys"][1]).address
    attestor = Signer.from_key(world["keys"][2]).address
    nodes = [
        {"operator": operator, "attestor": attestor, "shares": 1, "price_per_1k": f"{PRICE} base",
         "operator_cut_bps": 1_000, "region": "Lagos", "external_id": f"edge-{i}"}
        for i in range(count)
    ]  # fmt: skip
    path = world["workdir"] / "nodes.yaml"
    path.write_text(yaml.safe_dump({"nodes": nodes}))
    return path


def _signed_reports(world: dict[str, Any], nodes: int, epochs: int) -> Path:
    w3, suite = world["w3"], world["suite"]
    deadline = int(w3.eth.get_block("latest")["timestamp"]) + 86_400
    domain = fetch_domain_of(suite)
    reports = [
        sign(
            UsageReport(node_id=node, epoch=epoch, inferences=1_000 + epoch,
                        revenue=(1_000 + epoch) * PRICE // 1_000, latency_ms=40,
                        uptime_bps=9_990, deadline=deadline),
            world["keys"][2], domain,
        )
        for node in range(1, nodes + 1)
        for epoch in range(epochs)
    ]  # fmt: skip
    path = world["workdir"] / "reports.json"
    write_reports_file(path, domain, reports)
    return path


def _mined_nonce(w3: Web3, key: str) -> int:
    return int(w3.eth.get_transaction_count(Signer.from_key(key).address, "latest"))


def test_hosted_endpoint__register_post_finalize_claim_index_report__exact_results(
    world: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    faults = Faults(
        rate_limit_item_every=7, http_429_every=11, retry_after="0", drop_every=13,
        slow_every=17, slow_seconds=0.2, refuse_fee_sends=2,
    )  # fmt: skip
    w3, suite = world["w3"], world["suite"]
    operator = Signer.from_key(world["keys"][1]).address
    nodes, epochs = 3, 6
    deployer_nonce = _mined_nonce(w3, world["keys"][0])
    with FaultProxy(world["chain"].url, faults) as proxy:
        url = proxy.url + KEY_PATH
        registered = _ok_json(_run(capsys, monkeypatch, world, url, "nodes", "register",
                                   str(_nodes_file(world, nodes)), "--private-key-env",
                                   "DEPLOYER_KEY", "--json"))  # fmt: skip
        assert faults.done["fee-refused"] == 2  # refused at send time, re-priced, re-sent
        send_increase_time(w3, (epochs + 1) * EPOCH)
        reports = _signed_reports(world, nodes, epochs)
        payer_nonce = _mined_nonce(w3, world["keys"][3])
        post = ("attest", "post", str(reports), "--private-key-env", "PAYER_KEY")
        posted = _ok_json(
            _run(capsys, monkeypatch, world, url, *post, "--batch-size", "5", "--json")
        )
        send_increase_time(w3, 3_600)  # the challenge window passes
        code, output = _run(capsys, monkeypatch, world, url, "attest", "finalize", str(reports),
                            "--private-key-env", "PAYER_KEY")  # fmt: skip
        assert code == 0, output
        send_increase_time(w3, 86_400)  # and the revenue vests
        owed = sum(h.claimable for h in fetch_portfolio(suite, operator))
        claimed = _ok_json(_run(capsys, monkeypatch, world, url, "claim",
                                "--private-key-env", "OPERATOR_KEY", "--json"))  # fmt: skip
        db_faulty = f"sqlite:///{world['workdir'] / 'faulty.db'}"
        indexed = _ok_json(_run(capsys, monkeypatch, world, url, "index", "--db", db_faulty,
                                "--json"))  # fmt: skip
        report = _ok_json(_run(capsys, monkeypatch, world, url, "report", "operator", operator,
                               "--format", "json", "--db", db_faulty))  # fmt: skip
    # every kind of fault happened
    kinds = {"rate-limited-item", "429", "drop", "slow", "fee-refused"}
    assert kinds <= set(faults.done), faults.done
    # registrations: each node once, no nonce gap
    assert sorted(r["node_id"] for r in registered) == [1, 2, 3]
    assert suite.fetch_node_count() == nodes
    assert _mined_nonce(w3, world["keys"][0]) == deployer_nonce + nodes
    # posting: every report settled once, one approval + one transaction per 5 reports
    assert posted["settled"] == nodes * epochs
    revenue = sum((1_000 + e) * PRICE // 1_000 for e in range(epochs)) * nodes
    assert int(posted["revenue"]) == revenue
    batches = -(-nodes * epochs // 5)
    assert _mined_nonce(w3, world["keys"][3]) >= payer_nonce + 1 + batches
    # claiming: exactly what was owed
    assert owed > 0 and int(claimed["total"]) == owed
    # the index and the report: the same numbers as read without faults
    db_clean = f"sqlite:///{world['workdir'] / 'clean.db'}"
    direct = world["chain"].url
    clean_index = _ok_json(_run(capsys, monkeypatch, world, direct, "index", "--db", db_clean,
                                "--json"))  # fmt: skip
    clean_report = _ok_json(_run(capsys, monkeypatch, world, direct, "report", "operator",
                                 operator, "--format", "json", "--db", db_clean))  # fmt: skip
    drop = {"db", "url", "db_url"}
    assert {k: v for k, v in indexed.items() if k not in drop} == {
        k: v for k, v in clean_index.items() if k not in drop
    }
    assert report == clean_report


@pytest.mark.parametrize("command", ["post", "index"])
def test_endpoint_that_never_recovers__exit_1_one_line_no_key(
    world: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    monkeypatch.setattr(rpc, "RETRIES", 2)
    args = {
        "post": ("attest", "post", str(_signed_reports(world, 1, 1)), "--private-key-env",
                 "PAYER_KEY"),
        "index": ("index", "--db", f"sqlite:///{world['workdir'] / 'down.db'}"),
    }[command]  # fmt: skip
    for faults in (Faults(down=True), Faults(rate_limit_item_every=1)):
        with FaultProxy(world["chain"].url, faults) as proxy:
            code, output = _run(capsys, monkeypatch, world, proxy.url + KEY_PATH, *args)
        lines = output.strip().splitlines()
        assert code == 1, output
        assert len(lines) == 1 and lines[0].startswith("error:"), output
        assert "kept failing" in lines[0] and ("HTTP 503" in lines[0] or "rate limited" in lines[0])
        assert "SECRET" not in output and "/v3" not in output and "Traceback" not in output


def test_burst__base_fee_climbs_during_it__refused_sends_repriced_no_nonce_gap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A block holds one transfer, so each raises the base fee 5% and the burst's later
    transfers are priced out while they wait; and 20 in the middle of it are refused at
    send time ("max fee per gas less than block base fee", by the proxy), with the ones
    after them already in the pool. Every one is re-priced, re-sent and mined, each nonce
    once."""
    monkeypatch.setattr(pipeline, "RESEND_AFTER", 1.0)
    keys = build_dev_keys(1)
    faults = Faults(refuse_fee_sends=20, refuse_fee_from=21)
    with (
        LocalChain("anvil", extra_args=("--gas-limit", "30000")) as chain,
        FaultProxy(chain.url, faults) as proxy,
    ):
        w3 = connect(proxy.url)
        tx = Transactor(w3, Signer.from_key(keys[0]), timeout=30)
        start = _mined_nonce(w3, keys[0])
        first_fee = tx.build_fees()["maxFeePerGas"]
        targets = [Web3.to_checksum_address(f"0x{0xE0A + i:040x}") for i in range(60)]
        receipts = send_pipelined(
            tx, tx.rpc, targets, ["0x"] * len(targets), "burst", lambda *_: None
        )
        assert faults.done["fee-refused"] == 20
        assert [r.status for r in receipts] == [1] * len(targets)
        assert _mined_nonce(w3, keys[0]) == start + len(targets)
        assert tx.rpc.call("txpool_content", [])["pending"] == {}
        mined = [w3.eth.get_transaction(r.tx_hash) for r in receipts]
        assert [int(m["nonce"]) for m in mined] == list(range(start, start + len(targets)))
        fees = [int(m["maxFeePerGas"]) for m in mined]
        assert fees[0] == first_fee and min(fees[20:40]) > first_fee  # re-priced at send
        assert int(w3.eth.get_block("latest")["baseFeePerGas"]) > first_fee
