"""Malformed files, each format with its own corpus: every variant gets a message that
names the problem, exit code 2, and nothing sent (no block mined, no nonce used).

The formats are the five a user hands the tools: the node list (NODES.yaml), the usage
CSV, the signed-reports JSON, the vouchers JSON and the deployment manifest (the
configuration every command reads). The CLI runs in-process here (the same ``main`` the
installed command runs) so that ~100 variants take seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edgeshare.attestation import sign
from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.channels import (
    VouchersFile,
    build_voucher,
    fetch_channels_domain,
    send_deposit,
    sign_voucher,
)
from edgeshare.deploy import build_params, deploy_suite
from edgeshare.signer import Signer
from edgeshare.suite import (
    NodeSpec,
    Suite,
    UsageReport,
    fetch_domain_of,
    send_increase_time,
    send_mint_mock,
    send_register_node,
)
from edgeshare.tx import Transactor
from edgeshare.usage import write_reports_file
from tests.inproc import run_main

KEYS = build_dev_keys(4)
ENV = {"OPERATOR_KEY": KEYS[0], "ATTESTOR_KEY": KEYS[2], "PAYER_KEY": KEYS[3]}
OPERATOR = Signer.from_key(KEYS[1]).address
ATTESTOR = Signer.from_key(KEYS[2]).address
EPOCH = 60


@dataclass
class World:
    url: str
    manifest: Path
    reports: dict[str, Any]
    """A valid signed-reports file, as JSON data."""
    vouchers: dict[str, Any]
    """A valid vouchers file (the payer's channel to node 1), as JSON data."""

    def sent_anything(self, before: tuple[int, list[int]]) -> bool:
        return self.state() != before

    def state(self) -> tuple[int, list[int]]:
        w3 = connect(self.url)
        nonces = [int(w3.eth.get_transaction_count(Signer.from_key(k).address)) for k in KEYS]
        return int(w3.eth.block_number), nonces


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("bad-inputs")
    with LocalChain("anvil") as chain:
        w3 = connect(chain.url)
        issuer = Transactor(w3, Signer.from_key(KEYS[0]))
        params = build_params(None, epoch_length=EPOCH, challenge_period=3_600)
        suite = Suite.load(w3, deploy_suite(issuer, params, tmp / "m.json").manifest)
        spec = NodeSpec(operator=OPERATOR, attestor=ATTESTOR, shares=10**21, price_per_1k=1_000,
                        operator_cut_bps=1_000, region="Jakarta")  # fmt: skip
        send_register_node(issuer, suite, spec)
        send_mint_mock(issuer, suite, Signer.from_key(KEYS[3]).address, 10**15)
        send_increase_time(w3, 10 * EPOCH)
        domain = fetch_domain_of(suite)
        deadline = int(w3.eth.get_block("latest")["timestamp"]) + 86_400
        reports = [
            sign(UsageReport(node_id=1, epoch=e, inferences=1_000, revenue=1_000, latency_ms=40,
                             uptime_bps=9_990, deadline=deadline), KEYS[2], domain)
            for e in range(3)
        ]  # fmt: skip
        write_reports_file(tmp / "reports.json", domain, reports)
        customer = Transactor(w3, Signer.from_key(KEYS[3]))
        send_deposit(customer, suite, 1, 5_000)
        voucher = build_voucher(suite, customer.signer.address, 1, 2_000, deadline)
        channels_domain = fetch_channels_domain(suite)
        signed = sign_voucher(voucher, KEYS[3], channels_domain)
        vouchers = VouchersFile(domain=channels_domain, vouchers=[signed])
        yield World(
            chain.url,
            tmp / "m.json",
            json.loads((tmp / "reports.json").read_text()),
            json.loads(vouchers.model_dump_json(by_alias=True)),
        )


def run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str]:
    return run_main(capsys, monkeypatch, ENV, *args)


def _assert_refused(
    world: World, code: int, output: str, expect: str, before: tuple[int, list[int]]
) -> None:
    assert code == 2, output
    assert "error:" in output and "Traceback" not in output, output
    assert expect.lower() in output.lower(), f"expected {expect!r} in:\n{output}"
    assert not world.sent_anything(before)
    for key in KEYS:
        assert key[2:] not in output.lower()


# ------------------------------------------------------------------------ NODES.yaml

GOOD_FIELDS = {
    "operator": f'"{OPERATOR}"', "attestor": f'"{ATTESTOR}"', "shares": "1000",
    "price_per_1k": "1000", "operator_cut_bps": "1000", "region": "Jakarta",
    "external_id": "jk-1",
}  # fmt: skip
GOOD_NODE = "".join(
    ("  - " if i == 0 else "    ") + f"{k}: {v}\n" for i, (k, v) in enumerate(GOOD_FIELDS.items())
)


def _node(**changes: str) -> str:
    """NODES.yaml with one entry: the good one with ``changes`` ("<drop>" removes)."""
    fields = {**GOOD_FIELDS, **changes}
    kept = [(k, v) for k, v in fields.items() if v != "<drop>"]
    lines = [("  - " if i == 0 else "    ") + f"{k}: {v}" for i, (k, v) in enumerate(kept)]
    return "nodes:\n" + "\n".join(lines) + "\n"


BAD_CHECKSUM = OPERATOR[:2] + OPERATOR[2:].swapcase()  # every letter flipped
NODES_CORPUS: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "must be a mapping"),
    "comment only": (b"# nothing here\n", "must be a mapping"),
    "a list": (b"- a\n- b\n", "must be a mapping"),
    "no nodes": (b"nodes: []\n", "nodes"),
    "nodes a mapping": (b"nodes:\n  a: 1\n", "nodes"),
    "missing attestor": (_node(attestor="<drop>").encode(), "attestor"),
    "missing external id": (_node(external_id="<drop>").encode(), "external_id"),
    "unknown field": (_node(colour="red").encode(), "unknown field"),
    "negative shares": (_node(shares="-5").encode(), "shares"),
    "below one share": (_node(shares="0.5").encode(), "less than one whole share"),
    "zero shares": (_node(shares="0").encode(), "shares"),
    "text shares": (_node(shares="lots").encode(), "shares"),
    "boolean shares": (_node(shares="true").encode(), "shares"),
    "huge shares": (_node(shares=str(2**300)).encode(), "shares"),
    "price finer than the coin": (_node(price_per_1k="0.0000005").encode(), "has 7 decimals"),
    "price as an exponent": (_node(price_per_1k="1e-3").encode(), "price_per_1k"),
    "negative price": (_node(price_per_1k="-1").encode(), "price_per_1k"),
    "price above the registry cap": (_node(price_per_1k=str(2**168)).encode(), "price_per_1k"),
    "cut above cap": (_node(operator_cut_bps="5001").encode(), "operator_cut_bps"),
    "bad checksum": (_node(operator=f'"{BAD_CHECKSUM}"').encode(), "checksum"),
    "not hex": (_node(operator='"0x' + "zz" * 20 + '"').encode(), "operator"),
    "short address": (_node(operator='"0x1234"').encode(), "operator"),
    "region too long": (_node(region="R" * 33).encode(), "region"),
    "duplicate external id": (
        ("nodes:\n" + GOOD_NODE + GOOD_NODE).encode(),
        "external_id",
    ),
    "truncated": (_node().encode()[:60], "not valid YAML"),
    "utf-16": (_node().encode("utf-16"), "not UTF-8"),
    "binary": (bytes(range(256)), "not UTF-8"),
    "bad indentation": (b"nodes:\n  - operator: x\n     attestor: y\n", "not valid YAML"),
}


@pytest.mark.parametrize("name", NODES_CORPUS)
def test_nodes_yaml__malformed__exit_2_nothing_sent(
    name: str,
    world: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    content, expect = NODES_CORPUS[name]
    path = tmp_path / "NODES.yaml"
    path.write_bytes(content)
    before = world.state()
    code, output = run(capsys, monkeypatch, "nodes", "register", str(path), "--rpc-url",
                       world.url, "--private-key-env", "OPERATOR_KEY",
                       "--manifest", str(world.manifest))  # fmt: skip
    _assert_refused(world, code, output, expect, before)


# ------------------------------------------------------------------------- usage CSV

HEADER = "node_id,epoch,inferences,latency_ms,uptime_bps"
CSV_CORPUS: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "empty"),
    "header only": (f"{HEADER}\n".encode(), "no rows"),
    "missing column": (b"node_id,epoch,inferences,latency_ms\n1,0,10,40\n", "missing"),
    "unknown column": (f"{HEADER},colour\n1,0,10,40,9990,red\n".encode(), "unknown"),
    "duplicate column": (f"{HEADER},epoch\n1,0,10,40,9990,0\n".encode(), "header"),
    "negative inferences": (f"{HEADER}\n1,0,-5,40,9990\n".encode(), "inferences"),
    "fractional inferences": (f"{HEADER}\n1,0,1.5,40,9990\n".encode(), "inferences"),
    "text inferences": (f"{HEADER}\n1,0,abc,40,9990\n".encode(), "inferences"),
    "huge inferences": (f"{HEADER}\n1,0,{2**70},40,9990\n".encode(), "inferences"),
    "uptime above 100%": (f"{HEADER}\n1,0,10,40,10001\n".encode(), "uptime_bps"),
    "latency above uint32": (f"{HEADER}\n1,0,10,{2**32},9990\n".encode(), "latency_ms"),
    "too few fields": (f"{HEADER}\n1,0,10,40\n".encode(), "expected 5 fields"),
    "too many fields": (f"{HEADER}\n1,0,10,40,9990,7\n".encode(), "expected 5 fields"),
    "empty field": (f"{HEADER}\n1,,10,40,9990\n".encode(), "epoch"),
    "duplicate row": (f"{HEADER}\n1,0,10,40,9990\n1,0,11,40,9990\n".encode(), "also on line"),
    "node zero": (f"{HEADER}\n0,0,10,40,9990\n".encode(), "node_id"),
    "unknown node": (f"{HEADER}\n99,0,10,40,9990\n".encode(), "node 99 is not registered"),
    "epoch not ended": (f"{HEADER}\n1,999999,10,40,9990\n".encode(), "not ended"),
    "wrong revenue": (f"{HEADER},revenue\n1,0,10,40,9990,11\n".encode(), "revenue"),
    "fractional revenue": (f"{HEADER},revenue\n1,0,10,40,9990,1.5\n".encode(), "revenue"),
    "negative revenue": (f"{HEADER},revenue\n1,0,10,40,9990,-10\n".encode(), "revenue"),
    "semicolons": (b"node_id;epoch;inferences;latency_ms;uptime_bps\n1;0;10;40;9990\n", "header"),
    "truncated": (f"{HEADER}\n1,0,10,40,9990\n2,0,1".encode(), "line 3"),
    "utf-16": (f"{HEADER}\n1,0,10,40,9990\n".encode("utf-16"), "not UTF-8"),
    "binary": (b"\x00\x01\x02" * 50, "not a text file"),
}


@pytest.mark.parametrize("name", CSV_CORPUS)
def test_usage_csv__malformed__exit_2_nothing_signed_or_sent(
    name: str,
    world: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    content, expect = CSV_CORPUS[name]
    path, out = tmp_path / "usage.csv", tmp_path / "signed.json"
    path.write_bytes(content)
    before = world.state()
    code, output = run(capsys, monkeypatch, "attest", "sign", str(path), "--attestor-key-env",
                       "ATTESTOR_KEY", "-o", str(out), "--rpc-url", world.url,
                       "--manifest", str(world.manifest))  # fmt: skip
    _assert_refused(world, code, output, expect, before)
    assert not out.exists()


# ------------------------------------------------------------------ signed reports JSON


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = data
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is _DROP:
            del target[last]
        else:
            target[int(last) if last.isdigit() else last] = value

    return apply


_DROP = object()


def _swap_case(mapping: dict[str, Any], key: str) -> None:
    """Break an address's EIP-55 checksum by swapping the case of its letters."""
    mapping[key] = mapping[key][:2] + mapping[key][2:].swapcase()


def _spoil_json(good: dict[str, Any], change: Any) -> bytes:
    """A corpus variant of the ``good`` JSON file: given bytes, the text cut in half
    ("truncate"), in UTF-16 ("utf-16"), or the data changed in place by ``change``."""
    text = json.dumps(good)
    if isinstance(change, bytes):
        return change
    if change == "truncate":
        return text[: len(text) // 2].encode()
    if change == "utf-16":
        return text.encode("utf-16")
    data = json.loads(text)
    change(data)
    return json.dumps(data).encode()


OTHER_KEY_SIGNATURE = "0x" + "11" * 65
REPORTS_CORPUS: dict[str, tuple[Any, str]] = {
    "empty": (b"", "empty"),
    "not json": (b"hello", "reports.json"),
    "a list": (b"[]", "reports.json"),
    "missing domain": (_set("domain", _DROP), "domain"),
    "no reports": (_set("reports", []), "no reports"),
    "unknown top-level field": (_set("colour", "red"), "unknown field"),
    "unknown report field": (_set("reports.0.colour", "red"), "unknown field"),
    "negative revenue": (_set("reports.0.revenue", -1), "revenue"),
    "fractional revenue": (_set("reports.0.revenue", 1.5), "revenue"),
    "text revenue": (_set("reports.0.revenue", "abc"), "revenue"),
    "boolean revenue": (_set("reports.0.revenue", True), "revenue"),
    "huge revenue": (_set("reports.0.revenue", 2**300), "revenue"),
    "short signature": (_set("reports.0.signature", "0x1234"), "signature"),
    "signature not hex": (_set("reports.0.signature", "0x" + "zz" * 65), "signature"),
    "signature of garbage": (_set("reports.0.signature", OTHER_KEY_SIGNATURE), "report 0"),
    "tampered revenue": (_set("reports.0.inferences", 2_000), "report 0"),
    "another chain": (_set("domain.chain_id", 1), "signed for chain 1"),
    "bad domain checksum": (lambda d: _swap_case(d["domain"], "verifying_contract"), "checksum"),
    "duplicate report": (lambda d: d["reports"].append(d["reports"][0]), "both for node 1"),
    "deadline passed": (_set("reports.0.deadline", 1), "deadline"),
    "unknown node": (_set("reports.0.nodeId", 42), "unknown node"),
    "truncated": ("truncate", "reports.json"),
    "utf-16": ("utf-16", "not UTF-8"),
}


@pytest.mark.parametrize("name", REPORTS_CORPUS)
def test_reports_json__malformed__exit_2_nothing_sent(
    name: str,
    world: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    change, expect = REPORTS_CORPUS[name]
    path = tmp_path / "reports.json"
    path.write_bytes(_spoil_json(world.reports, change))
    before = world.state()
    code, output = run(capsys, monkeypatch, "attest", "post", str(path), "--rpc-url", world.url,
                       "--private-key-env", "PAYER_KEY",
                       "--manifest", str(world.manifest))  # fmt: skip
    _assert_refused(world, code, output, expect, before)


# -------------------------------------------------------------------------- vouchers

VOUCHERS_CORPUS: dict[str, tuple[Any, str]] = {
    "empty": (b"", "empty"),
    "not json": (b"hello", "vouchers.json"),
    "a list": (b"[]", "vouchers.json"),
    "missing domain": (_set("domain", _DROP), "domain"),
    "no vouchers": (_set("vouchers", []), "no vouchers"),
    "unknown top-level field": (_set("colour", "red"), "unknown field"),
    "unknown voucher field": (_set("vouchers.0.colour", "red"), "unknown field"),
    "negative cumulative": (_set("vouchers.0.cumulative", -1), "cumulative"),
    "fractional cumulative": (_set("vouchers.0.cumulative", 1.5), "cumulative"),
    "text cumulative": (_set("vouchers.0.cumulative", "abc"), "cumulative"),
    "cumulative of 2**128": (_set("vouchers.0.cumulative", 2**128), "cumulative"),
    "generation above uint32": (_set("vouchers.0.generation", 2**32), "generation"),
    "node 0": (_set("vouchers.0.nodeId", 0), "nodeId"),
    "customer not an address": (_set("vouchers.0.customer", "alice"), "customer"),
    "customer bad checksum": (lambda d: _swap_case(d["vouchers"][0], "customer"), "checksum"),
    "short signature": (_set("vouchers.0.signature", "0x1234"), "signature"),
    "signature not hex": (_set("vouchers.0.signature", "0x" + "zz" * 65), "signature"),
    "signature of garbage": (_set("vouchers.0.signature", OTHER_KEY_SIGNATURE), "voucher 0"),
    "tampered cumulative": (_set("vouchers.0.cumulative", 4_000), "neither the customer"),
    "unknown node": (_set("vouchers.0.nodeId", 42), "voucher 0"),
    "another chain": (_set("domain.chain_id", 1), "signed for chain 1"),
    "truncated": ("truncate", "vouchers.json"),
    "utf-16": ("utf-16", "not UTF-8"),
}


@pytest.mark.parametrize("name", VOUCHERS_CORPUS)
def test_vouchers_json__malformed__exit_2_nothing_sent(
    name: str,
    world: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    change, expect = VOUCHERS_CORPUS[name]
    path = tmp_path / "vouchers.json"
    path.write_bytes(_spoil_json(world.vouchers, change))
    before = world.state()
    code, output = run(capsys, monkeypatch, "channel", "redeem", str(path), "--rpc-url",
                       world.url, "--private-key-env", "ATTESTOR_KEY",
                       "--manifest", str(world.manifest))  # fmt: skip
    _assert_refused(world, code, output, expect, before)


def test_vouchers_json__the_good_file_redeems(
    world: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The corpus' base file is valid: only the changes make it fail (a dry run, so the
    world stays as it is for the other tests)."""
    path = tmp_path / "vouchers.json"
    path.write_text(json.dumps(world.vouchers))
    code, output = run(capsys, monkeypatch, "channel", "redeem", str(path), "--dry-run",
                       "--rpc-url", world.url, "--private-key-env", "ATTESTOR_KEY",
                       "--manifest", str(world.manifest))  # fmt: skip
    assert code == 0, output
    assert "would redeem 1 voucher(s) for 0.002 USDC" in output, output


# -------------------------------------------------------------------------- manifest


def _manifest_change(name: str) -> Callable[[dict[str, Any]], Any]:
    def swap(address: str) -> str:
        return address[:2] + address[2:].swapcase()

    changes: dict[str, Callable[[dict[str, Any]], Any]] = {
        "missing contracts": lambda m: m.pop("contracts"),
        "unknown field": lambda m: m.update(colour="red"),
        "chain id text": lambda m: m.update(chain_id="abc"),
        "chain id negative": lambda m: m.update(chain_id=-1),
        "another chain": lambda m: m.update(chain_id=1),
        "router bad checksum": lambda m: m["contracts"].update(
            RevenueRouter=swap(m["contracts"]["RevenueRouter"])
        ),
        "router not hex": lambda m: m["contracts"].update(RevenueRouter="0x" + "zz" * 20),
        "router without code": lambda m: m["contracts"].update(RevenueRouter="0x" + "42" * 20),
        "router missing": lambda m: m["contracts"].update(RevenueRouter=None),
        "block fractional": lambda m: m.update(block=1.5),
        "fee above cap": lambda m: m["params"].update(protocol_fee_bps=5_000),
        "epoch length zero": lambda m: m["params"].update(epoch_length=0),
        "deployer not an address": lambda m: m.update(deployer="alice"),
        "mock flag as text": lambda m: m.update(stablecoin_is_mock="yes"),
        "pending nonce negative": lambda m: m.update(
            pending={"contract": "NodeRegistry", "address": m["deployer"], "nonce": -1}
        ),
        "params unknown field": lambda m: m["params"].update(colour="red"),
    }
    return changes[name]


MANIFEST_EXPECT = {
    "empty": "manifest", "not json": "manifest", "a list": "manifest", "truncated": "manifest",
    "utf-16": "manifest", "binary": "manifest",
    "missing contracts": "contracts", "unknown field": "colour", "chain id text": "chain_id",
    "chain id negative": "chain_id", "another chain": "chain 1",
    "router bad checksum": "checksum", "router not hex": "RevenueRouter",
    "router missing": "incomplete", "router without code": "has no code",
    "block fractional": "block",
    "fee above cap": "protocol_fee_bps", "epoch length zero": "epoch_length",
    "deployer not an address": "deployer", "mock flag as text": "stablecoin_is_mock",
    "pending nonce negative": "nonce", "params unknown field": "colour",
}  # fmt: skip


@pytest.mark.parametrize("name", MANIFEST_EXPECT)
def test_manifest__malformed__exit_2_nothing_sent(
    name: str,
    world: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = world.manifest.read_text()
    raw = {
        "empty": b"", "not json": b"{oops", "a list": b"[1, 2]",
        "truncated": text[: len(text) // 2].encode(), "utf-16": text.encode("utf-16"),
        "binary": bytes(range(256)),
    }  # fmt: skip
    if name in raw:
        content = raw[name]
    else:
        data = json.loads(text)
        _manifest_change(name)(data)
        content = json.dumps(data).encode()
    path = tmp_path / "manifest.json"
    path.write_bytes(content)
    reports = tmp_path / "reports.json"
    reports.write_text(json.dumps(world.reports))
    before = world.state()
    code, output = run(capsys, monkeypatch, "attest", "post", str(reports), "--rpc-url",
                       world.url, "--private-key-env", "PAYER_KEY",
                       "--manifest", str(path))  # fmt: skip
    _assert_refused(world, code, output, MANIFEST_EXPECT[name], before)


def test_corpora__at_least_20_variants_each() -> None:
    sizes = [len(NODES_CORPUS), len(CSV_CORPUS), len(REPORTS_CORPUS), len(MANIFEST_EXPECT)]
    assert min(sizes) >= 20, sizes
