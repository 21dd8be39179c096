"""`edgeshare attest sign` and `edgeshare attest post` as a user runs them, on their own
anvil; and the same report signed by an independent client (ethers.js v6)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from edgeshare.attestation import SignedReport, UsageReport, get_digest, recover, sign
from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.deploy import build_params, deploy_suite
from edgeshare.signer import Signer
from edgeshare.suite import (
    NodeSpec,
    Suite,
    fetch_domain_of,
    send_increase_time,
    send_mint_mock,
    send_register_node,
    send_settle,
)
from edgeshare.tx import Transactor

ROOT = Path(__file__).resolve().parents[2]
EPOCH = 60
PRICES = {1: 500_000, 2: 120_000, 3: 1_000}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A suite with three nodes, ten ended epochs, and a funded payer."""
    keys = build_dev_keys(4)
    with LocalChain("anvil") as chain:
        w3 = connect(chain.url)
        deployer = Transactor(w3, Signer.from_key(keys[0]))
        manifest = tmp_path_factory.mktemp("attest") / "manifest.json"
        result = deploy_suite(
            deployer, build_params(None, epoch_length=EPOCH, challenge_period=3_600), manifest
        )
        suite = Suite.load(w3, result.manifest)
        attestor = Signer.from_key(keys[2])
        for node_id, price in PRICES.items():
            spec = NodeSpec(
                operator=Signer.from_key(keys[1]).address,
                attestor=attestor.address,
                shares=10**21,
                price_per_1k=price,
                operator_cut_bps=1_000,
                region="Mumbai",
            )
            assert send_register_node(deployer, suite, spec) == node_id
        send_mint_mock(deployer, suite, Signer.from_key(keys[3]).address, 10**15)
        send_increase_time(w3, 10 * EPOCH)
        yield {"chain": chain, "w3": w3, "suite": suite, "manifest": manifest, "keys": keys}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["edgeshare", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )


def _env(world: dict[str, Any]) -> dict[str, str]:
    return {"ATTESTOR_KEY": world["keys"][2], "PAYER_KEY": world["keys"][3]}


def _write_csv(
    path: Path, rows: list[str], header: str = "node_id,epoch,inferences,latency_ms,uptime_bps"
) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _sign(
    world: dict[str, Any], csv_path: Path, out: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "attest",
        "sign",
        str(csv_path),
        "--attestor-key-env",
        "ATTESTOR_KEY",
        "-o",
        str(out),
        "--rpc-url",
        world["chain"].url,
        "--manifest",
        str(world["manifest"]),
        *extra,
        env=_env(world),
    )


def _post(world: dict[str, Any], reports: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "attest",
        "post",
        str(reports),
        "--private-key-env",
        "PAYER_KEY",
        "--rpc-url",
        world["chain"].url,
        "--manifest",
        str(world["manifest"]),
        *extra,
        env=_env(world),
    )


def _nonce(world: dict[str, Any]) -> int:
    payer = Signer.from_key(world["keys"][3]).address
    return int(world["w3"].eth.get_transaction_count(Web3.to_checksum_address(payer)))


def test_sign_then_post__settles_everything_once(world: dict[str, Any], tmp_path: Path) -> None:
    rows = [f"{n},{e},{1_000 * n + e},{40 + e},9990" for n in (1, 2, 3) for e in range(0, 6)]
    reports = tmp_path / "reports.json"
    signed = _sign(world, _write_csv(tmp_path / "usage.csv", rows), reports, "--json")
    assert signed.returncode == 0, signed.stderr
    data = json.loads(reports.read_text())
    assert len(data["reports"]) == 18
    suite: Suite = world["suite"]
    domain = fetch_domain_of(suite)
    attestor = Signer.from_key(world["keys"][2]).address
    for item in data["reports"]:
        report = SignedReport.model_validate(item)
        assert report.revenue == report.inferences * PRICES[report.node_id] // 1_000
        assert recover(report, domain) == attestor
    posted = _post(world, reports, "--batch-size", "5", "--json")
    assert posted.returncode == 0, posted.stderr
    result = json.loads(posted.stdout)
    assert (result["settled"], result["already_settled"], len(result["transactions"])) == (18, 0, 4)
    assert int(result["revenue"]) == sum(r["revenue"] for r in data["reports"])
    for n in (1, 2, 3):
        for e in range(6):
            assert suite.router.call("is_settled", n, e)
    nonce = _nonce(world)
    again = _post(world, reports, "--json")
    assert again.returncode == 0, again.stderr
    assert (json.loads(again.stdout)["settled"], json.loads(again.stdout)["already_settled"]) == (
        0,
        18,
    )
    assert _nonce(world) == nonce


def test_post__skips_what_was_settled_elsewhere(world: dict[str, Any], tmp_path: Path) -> None:
    reports = tmp_path / "reports.json"
    assert (
        _sign(
            world,
            _write_csv(tmp_path / "u.csv", [f"3,{e},77,50,10000" for e in (6, 7, 8)]),
            reports,
        ).returncode
        == 0
    )
    first = SignedReport.model_validate(json.loads(reports.read_text())["reports"][0])
    payer = Transactor(world["w3"], Signer.from_key(world["keys"][3]))
    send_settle(payer, world["suite"], [first])
    posted = _post(world, reports, "--json")
    assert posted.returncode == 0, posted.stderr
    assert (json.loads(posted.stdout)["settled"], json.loads(posted.stdout)["already_settled"]) == (
        2,
        1,
    )


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        (
            ["1,0,12.5,40,9990"],
            None,
            "line 2, field inferences: must be a non-negative whole number",
        ),
        (["1,0,-3,40,9990"], None, "line 2, field inferences"),
        (["1,0,10,40,10001"], None, "line 2, field uptime_bps: must be at most 10000"),
        (["1,0,18446744073709551616,40,9990"], None, "must be at most 18446744073709551615"),
        (["1,0,10,40"], None, "line 2: expected 5 fields"),
        (["1,0,10,40,9990", "1,0,11,40,9990"], None, "line 3: node 1 epoch 0 is also on line 2"),
        (["1,0,10,40,9990"], "node_id,epoch,inferences,latency_ms", "missing ['uptime_bps']"),
        (
            ["1,0,10,40,9990,1"],
            "node_id,epoch,inferences,latency_ms,uptime_bps,tip",
            "unknown ['tip']",
        ),
        ([], None, "has a header but no rows"),
        (["99,0,10,40,9990"], None, "line 2, field node_id: node 99 is not registered"),
        (["1,100000,10,40,9990"], None, "line 2, field epoch: epoch 100000 has not ended"),
        (
            ["1,0,10,40,9990,6"],
            "node_id,epoch,inferences,latency_ms,uptime_bps,revenue",
            "field revenue: 6 base units (0.000006 USDC) != inferences x price = 5000 (0.005 USDC)",
        ),
        (["0,0,10,40,9990"], None, "line 2, field node_id"),
        (["1,0x10,10,40,9990"], None, "line 2, field epoch"),
    ],
)
def test_sign__bad_csv__names_line_and_field_exit_2_nothing_written(
    world: dict[str, Any], tmp_path: Path, rows: list[str], header: str | None, message: str
) -> None:
    usage = _write_csv(tmp_path / "usage.csv", rows, *([header] if header else []))
    out = tmp_path / "out.json"
    result = _sign(world, usage, out)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert str(usage) in result.stderr or "usage.csv" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"\xff\xfe\x00n\x00o", "is not UTF-8 text"),
        (b"node_id,epoch\xe9\n", "is not UTF-8"),
    ],
)
def test_sign__unreadable_csv__exit_2(
    world: dict[str, Any], tmp_path: Path, content: bytes, message: str
) -> None:
    usage = tmp_path / "usage.csv"
    usage.write_bytes(content)
    result = _sign(world, usage, tmp_path / "out.json")
    assert result.returncode == 2 and message in result.stderr


def test_sign__key_that_is_not_the_attestor__exit_2(world: dict[str, Any], tmp_path: Path) -> None:
    usage = _write_csv(tmp_path / "usage.csv", ["1,1,10,40,9990"])
    result = run_cli(
        "attest",
        "sign",
        str(usage),
        "--attestor-key-env",
        "PAYER_KEY",
        "-o",
        str(tmp_path / "o.json"),
        "--rpc-url",
        world["chain"].url,
        "--manifest",
        str(world["manifest"]),
        env=_env(world),
    )
    assert result.returncode == 2
    assert "attestor is" in result.stderr


def _good_file(world: dict[str, Any], tmp_path: Path, epoch: int) -> tuple[Path, dict[str, Any]]:
    reports = tmp_path / "reports.json"
    assert (
        _sign(world, _write_csv(tmp_path / "u.csv", [f"2,{epoch},300,50,9999"]), reports).returncode
        == 0
    )
    return reports, json.loads(reports.read_text())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["reports"][0].update(revenue=36.5), "must be an integer number of base units"),
        (lambda d: d["reports"][0].update(tip=1), "reports.0.tip: unknown field"),
        (lambda d: d["reports"][0].update(signature="0x1234"), "reports.0.signature"),
        (lambda d: d["reports"][0].pop("deadline"), "reports.0.deadline: Field required"),
        (lambda d: d.update(reports=[]), "holds no reports"),
        (lambda d: d["domain"].update(chain_id=1), "signed for chain 1"),
        (lambda d: d["reports"][0].update(inferences=301), "signed by 0x"),
        (
            lambda d: d["reports"].append(dict(d["reports"][0])),
            "reports 0 and 1 are both for node 2",
        ),
    ],
)
def test_post__bad_file__exit_2_and_nothing_sent(
    world: dict[str, Any], tmp_path: Path, mutate: Any, message: str
) -> None:
    reports, data = _good_file(world, tmp_path, 9)
    mutate(data)
    reports.write_text(json.dumps(data))
    nonce = _nonce(world)
    result = _post(world, reports)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert _nonce(world) == nonce
    assert not world["suite"].router.call("is_settled", 2, 9)


def test_post__truncated_file__exit_2(world: dict[str, Any], tmp_path: Path) -> None:
    reports, _ = _good_file(world, tmp_path, 9)
    reports.write_text(reports.read_text()[:100])
    result = _post(world, reports)
    assert result.returncode == 2 and "Invalid JSON" in result.stderr


def test_post__passed_deadline__exit_2_and_nothing_sent(
    world: dict[str, Any], tmp_path: Path
) -> None:
    reports = tmp_path / "r.json"
    assert (
        _sign(
            world, _write_csv(tmp_path / "u.csv", ["1,9,10,40,9990"]), reports, "--valid-for", "5"
        ).returncode
        == 0
    )
    send_increase_time(world["w3"], 10)
    nonce = _nonce(world)
    result = _post(world, reports)
    assert result.returncode == 2
    assert "deadline" in result.stderr and "has passed" in result.stderr
    assert _nonce(world) == nonce


def test_post__without_key_or_target__exit_2(world: dict[str, Any], tmp_path: Path) -> None:
    reports, _ = _good_file(world, tmp_path, 9)
    no_key = run_cli(
        "attest",
        "post",
        str(reports),
        "--rpc-url",
        world["chain"].url,
        "--manifest",
        str(world["manifest"]),
    )
    assert no_key.returncode == 2 and "no signing key" in no_key.stderr
    no_target = run_cli(
        "attest", "post", str(reports), "--private-key-env", "PAYER_KEY", env=_env(world)
    )
    assert no_target.returncode == 2 and "give --rpc-url" in no_target.stderr


def test_ethers_client__signs_the_same_and_the_router_accepts_it(world: dict[str, Any]) -> None:
    suite: Suite = world["suite"]
    key = world["keys"][2]
    report = UsageReport(
        node_id=2,
        epoch=8,
        inferences=4_321,
        revenue=4_321 * 120_000 // 1_000,
        latency_ms=61,
        uptime_bps=9_876,
        deadline=2**40,
    )
    message = json.dumps({k: str(v) for k, v in report.model_dump(by_alias=True).items()})
    proc = subprocess.run(
        [
            "node",
            str(ROOT / "tests" / "interop" / "sign_report.mjs"),
            world["chain"].url,
            suite.router.address,
            message,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "INTEROP_KEY": key},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    ethers_out = json.loads(proc.stdout)
    domain = fetch_domain_of(suite)
    ours = sign(report, key, domain)
    assert ethers_out["digest"] == "0x" + get_digest(report, domain).hex()
    assert (
        ethers_out["digest"]
        == "0x" + bytes(suite.router.call("report_digest", report.as_tuple())).hex()
    )
    assert ethers_out["signature"].lower() == ours.signature.lower()
    from_ethers = SignedReport(**report.model_dump(), signature=ethers_out["signature"])
    payer = Transactor(world["w3"], Signer.from_key(world["keys"][3]))
    assert send_settle(payer, suite, [from_ethers]) == report.revenue
    assert suite.router.call("is_settled", 2, 8)
