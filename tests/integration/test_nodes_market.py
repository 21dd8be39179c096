"""Node lists in whole units with node metadata, and the price board a developer picks a
node from: `edgeshare nodes register [--dry-run]` and `edgeshare market`, run in-process
against a chain of their own.

Each test reproduces a complaint of issue 13 that main had before this change: amounts in
nodes.yaml were base units (`shares: 1000000` registered a millionth of a share, `0.45`
was refused); `endpoint:` was an unknown field and the board showed no operator, endpoint,
models, GPU or capacity; a node with no attested usage ranked first; `--region SG` gave an
empty table without the known regions; `--max-price 0.35` was refused; a changed price
re-ran as "already registered" without a word; there was no `--dry-run`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgeshare.attestation import sign
from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.deploy import build_params, deploy_suite
from edgeshare.metadata import fetch_metadata, get_uri_hash
from edgeshare.signer import Signer
from edgeshare.suite import (
    Suite,
    UsageReport,
    fetch_domain_of,
    send_increase_time,
    send_mint_mock,
    send_settle,
)
from edgeshare.tx import Transactor
from tests.inproc import run_main, run_main_streams

KEYS = build_dev_keys(5)
REGISTRAR_KEY, OPERATOR_KEY, ATTESTOR_KEY, PAYER_KEY, DEVELOPER_KEY = KEYS
OPERATOR = Signer.from_key(OPERATOR_KEY).address
ATTESTOR = Signer.from_key(ATTESTOR_KEY).address
NEW_ATTESTOR = Signer.from_key(DEVELOPER_KEY).address
ENV = {"REGISTRAR_KEY": REGISTRAR_KEY, "OPERATOR_KEY": OPERATOR_KEY}
EPOCH = 60
SHARE = 10**18


@dataclass
class World:
    url: str
    manifest: Path
    suite: Suite
    registrar: Transactor

    def state(self) -> tuple[int, int]:
        """The block number and the registrar's nonce: what a send would change."""
        w3 = self.suite.w3
        return int(w3.eth.block_number), int(
            w3.eth.get_transaction_count(self.registrar.signer.address)
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("nodes-market")
    with LocalChain("anvil", accounts=len(KEYS)) as chain:
        w3 = connect(chain.url)
        registrar = Transactor(w3, Signer.from_key(REGISTRAR_KEY))
        params = build_params(None, epoch_length=EPOCH, challenge_period=3_600)
        suite = Suite.load(w3, deploy_suite(registrar, params, tmp / "m.json").manifest)
        yield World(chain.url, tmp / "m.json", suite, registrar)


def entry(**over: Any) -> dict[str, Any]:
    """A node list entry as a person writes it (whole units); ``None`` drops a field."""
    fields: dict[str, Any] = {
        "external_id": "sg-h100-01",
        "operator": OPERATOR,
        "attestor": ATTESTOR,
        "shares": 1_000_000,
        "price_per_1k": 0.45,
        "operator_cut_bps": 1500,
        "region": "Singapore",
    }
    fields.update(over)
    return {k: v for k, v in fields.items() if v is not None}


def write_nodes(path: Path, *entries: dict[str, Any]) -> Path:
    """Write a node list the way a person would: YAML numbers (0.45) left bare."""
    path.write_text(yaml.safe_dump({"nodes": list(entries)}, sort_keys=False))
    return path


def cli(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    world: World,
    *args: str,
    key: str | None = "REGISTRAR_KEY",
) -> tuple[int, str]:
    extra = ["--rpc-url", world.url, "--manifest", str(world.manifest)]
    if key:
        extra += ["--private-key-env", key]
    return run_main(capsys, monkeypatch, ENV, *args, *extra)


def register_json(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    world: World,
    path: Path,
    *flags: str,
) -> tuple[int, Any, str]:
    """``nodes register PATH --json``: (exit code, stdout as JSON or None, stderr)."""
    return _run_json(capsys, monkeypatch, world, "nodes", "register", str(path), *flags,
                     "--private-key-env", "REGISTRAR_KEY")  # fmt: skip


def market_json(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    world: World,
    db: Path,
    *flags: str,
) -> tuple[int, Any, str]:
    return _run_json(capsys, monkeypatch, world, "market", "--db", f"sqlite:///{db}", *flags)


def _run_json(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    world: World,
    *args: str,
) -> tuple[int, Any, str]:
    where = ["--rpc-url", world.url, "--manifest", str(world.manifest)]
    code, out, err = run_main_streams(capsys, monkeypatch, ENV, *args, "--json", *where)
    return code, json.loads(out) if code == 0 and out.strip() else None, err


# ------------------------------------------------------------ amounts in whole units


def test_register__whole_units__one_million_shares_at_045_usdc(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    path = write_nodes(tmp_path / "nodes.yaml", entry(external_id="whole-1"))
    assert "price_per_1k: 0.45" in path.read_text()  # a YAML float, as people write it
    code, done, err = register_json(capsys, monkeypatch, world, path)
    assert code == 0, err
    node = world.suite.fetch_node(done[0]["node_id"])
    assert node.price_per_1k == 450_000  # 0.45 of a 6-decimal stablecoin
    supply = world.suite.share_at(node.share_token).call("totalSupply")
    assert supply == 1_000_000 * SHARE
    assert done[0]["shares"] == {"base_units": str(10**24), "decimals": 18}
    assert done[0]["price"] == "0.45 USDC per 1k inferences"


def test_register__below_one_share__refused_unless_base_units(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    before = world.state()
    small = write_nodes(tmp_path / "small.yaml", entry(external_id="tiny-1", shares=0.5))
    code, output = cli(capsys, monkeypatch, world, "nodes", "register", str(small))
    assert code == 2, output
    assert "nodes[0].shares" in output and "less than one whole share" in output
    assert '"500000000000000000 base"' in output  # what to write to mean base units
    assert world.state() == before
    explicit = write_nodes(tmp_path / "base.yaml", entry(external_id="tiny-2", shares="1000 base"))
    code, done, err = register_json(capsys, monkeypatch, world, explicit)
    assert code == 0, err
    token = world.suite.fetch_node(done[0]["node_id"]).share_token
    assert world.suite.share_at(token).call("totalSupply") == 1000


def test_register__every_problem__one_pass_with_chain_checks(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    before = world.state()
    path = write_nodes(
        tmp_path / "bad.yaml",
        entry(external_id="p-0", price_per_1k="0.0000005"),  # 7 decimals: USDC has 6
        entry(external_id="p-1", endpoint="ftp://sg1.example.com"),
        entry(external_id="p-2", capacity_rps=0, models=["llama-3-8b", ""]),
        entry(external_id="p-3", gpu="", endpoint="https://user:pw@sg1.example.com/v1"),
        entry(external_id="p-4", shares=1.5, price_per_1k=1e-5),  # 1.5 shares are fine
    )
    # the operator is not the registrar: that is found in the same pass
    code, output = cli(capsys, monkeypatch, world, "nodes", "register", str(path),
                       key="OPERATOR_KEY")  # fmt: skip
    assert code == 2, output
    for expect in (
        "nodes[0].price_per_1k: 0.0000005 has 7 decimals; the token has 6 (USDC)",
        "nodes[1].endpoint",
        "nodes[2].capacity_rps",
        "nodes[2].models",
        "nodes[3].gpu",
        "must not carry credentials",
        "nodes[4].price_per_1k",  # YAML writes 1.0e-05: an exponent, never a float
        "is not the registry's registrar",
    ):
        assert expect in output, f"{expect!r} missing in:\n{output}"
    assert "8 problem(s), nothing was sent" in output
    assert "Traceback" not in output
    assert world.state() == before


# ------------------------------------------------------------------ node metadata


def test_register__metadata__data_uri_then_file_uri_with_hash(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    small = {"endpoint": "https://sg1.example.com/v1", "models": ["llama-3-8b"], "gpu": "H100",
             "capacity_rps": 250}  # fmt: skip
    large = {**small, "models": [f"model-with-a-long-name-{i}" for i in range(8)]}
    path = write_nodes(
        tmp_path / "nodes.yaml",
        entry(external_id="meta-1", **small),
        entry(external_id="meta-2", **large),
    )
    code, done, err = register_json(capsys, monkeypatch, world, path)
    assert code == 0, err
    first, second = (world.suite.fetch_node(r["node_id"]) for r in done)
    assert first.metadata_uri.startswith("data:application/json;base64,")
    assert second.metadata_uri.startswith("file:///")
    for node, fields in ((first, small), (second, large)):
        assert len(node.metadata_uri.encode()) <= 256
        assert get_uri_hash(node.metadata_uri) is not None
        assert fetch_metadata(node.metadata_uri).model_dump(exclude_none=True) == fields
    written = list(tmp_path.glob("node-metadata-*.json"))
    assert len(written) == 1 and written[0].as_uri() in second.metadata_uri
    # canonical: sorted keys, no spaces
    assert written[0].read_text() == json.dumps(large, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"endpoint": "sg1.example.com"}, "nodes[0].endpoint"),
        ({"models": []}, "nodes[0].models"),
        ({"models": ["a", "a"]}, "listed twice"),
        ({"capacity_rps": -5}, "nodes[0].capacity_rps"),
        ({"capacity_rps": 2.5}, "nodes[0].capacity_rps"),
        ({"endpoint": "https://x.example", "metadata_uri": "ftp://x/doc.json"},
         "nodes[0].metadata_uri"),
    ],
)  # fmt: skip
def test_register__bad_metadata_field__exit_2_nothing_sent(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], message: str,
) -> None:  # fmt: skip
    before = world.state()
    path = write_nodes(tmp_path / "n.yaml", entry(external_id="bad-meta", **fields))
    code, output = cli(capsys, monkeypatch, world, "nodes", "register", str(path))
    assert code == 2 and message in output, output
    assert "Traceback" not in output and world.state() == before


# ------------------------------------------------------- re-registering, dry runs


def test_register__terms_differ__shows_each_and_the_command(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    path = tmp_path / "nodes.yaml"
    write_nodes(path, entry(external_id="diff-1", endpoint="https://a.example.com"))
    code, done, err = register_json(capsys, monkeypatch, world, path)
    assert code == 0, err
    node_id = done[0]["node_id"]
    write_nodes(path, entry(external_id="diff-1", endpoint="https://b.example.com",
                            price_per_1k=0.5, operator_cut_bps=1000, attestor=NEW_ATTESTOR,
                            shares=2_000_000, region="Jakarta"))  # fmt: skip
    before = world.state()
    code, output = cli(capsys, monkeypatch, world, "nodes", "register", str(path))
    assert code == 0, output
    assert world.state() == before  # nothing sent
    for expect in (
        "already registered, terms differ",
        '{"endpoint":"https://a.example.com"}',  # the documents, not base64
        '{"endpoint":"https://b.example.com"}',
        f"edgeshare operator set-price {node_id} 0.5",
        f"edgeshare operator propose-cut {node_id} 10%",
        f"edgeshare operator rotate-attestor {node_id} {NEW_ATTESTOR}",
        f"edgeshare operator set-metadata {node_id}",
        "0.45 USDC per 1k inferences",
        "share supply is fixed",
        "region is fixed",
    ):
        assert expect in output, f"{expect!r} missing in:\n{output}"
    code, again, err = register_json(capsys, monkeypatch, world, path)
    fields = {d["field"]: d for d in again[0]["differences"]}
    assert set(fields) == {"price_per_1k", "operator_cut_bps", "attestor", "metadata",
                           "shares", "region"}  # fmt: skip
    assert fields["shares"]["command"] is None and fields["region"]["command"] is None
    # the same terms again: no difference
    write_nodes(path, entry(external_id="diff-1", endpoint="https://a.example.com"))
    code, same, err = register_json(capsys, monkeypatch, world, path)
    assert code == 0 and same[0]["action"] == "already registered", err
    assert same[0]["differences"] == []


def test_register__dry_run__checksums_units_gas_and_sends_nothing(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    count = world.suite.fetch_node_count()
    before = world.state()
    path = write_nodes(
        tmp_path / "nodes.yaml",
        entry(external_id="dry-1", operator=OPERATOR.lower(), attestor=ATTESTOR.lower(),
              endpoint="https://dry.example.com", models=[f"m{i}" * 20 for i in range(6)]),
    )  # fmt: skip
    code, output = cli(capsys, monkeypatch, world, "nodes", "register", str(path), "--dry-run")
    assert code == 0, output
    assert OPERATOR in output and ATTESTOR in output  # checksummed
    assert "written without its checksum" in output
    assert "1,000,000 shares" in output and "0.45 USDC per 1k inferences" in output
    assert "nothing was sent" in output
    code, plan, err = register_json(capsys, monkeypatch, world, path, "--dry-run")
    assert code == 0, err
    assert plan["dry_run"] is True and plan["sent"] == 0
    (node,) = plan["nodes"]
    assert node["action"] == "would register" and node["operator"] == OPERATOR
    assert node["gas"] > 1_000_000  # registering creates a share token: ~2M gas
    assert [t["gas"] for t in plan["transactions"]] == [node["gas"]]
    assert world.state() == before and world.suite.fetch_node_count() == count
    assert not list(tmp_path.glob("node-metadata-*.json"))  # no file written either


def test_nodes_list__manifest_is_a_directory__message_not_traceback(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = world.manifest.parent
    code, output = run_main(capsys, monkeypatch, ENV, "nodes", "list", "--rpc-url", world.url,
                            "--manifest", str(directory))  # fmt: skip
    assert code == 2 and "is a directory" in output and "Traceback" not in output, output


# ------------------------------------------------------------------- the board


def test_market__metadata_units_new_last_and_known_regions(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    meta = {"endpoint": "https://accra.example.com/v1", "models": ["llama-3-8b"],
            "gpu": "L4", "capacity_rps": 40}  # fmt: skip
    path = write_nodes(
        tmp_path / "nodes.yaml",
        entry(external_id="accra-new", region="Accra", price_per_1k=0.1, **meta),
        entry(external_id="accra-used", region="Accra", price_per_1k=0.3),
    )
    code, done, err = register_json(capsys, monkeypatch, world, path)
    assert code == 0, err
    fresh, used = (r["node_id"] for r in done)
    # the attestor reports an epoch of the expensive node; a payer settles it
    suite, w3 = world.suite, world.suite.w3
    send_increase_time(w3, 2 * EPOCH)
    payer = Transactor(w3, Signer.from_key(PAYER_KEY))
    send_mint_mock(world.registrar, suite, payer.signer.address, 10**12)
    epoch = int(suite.registry.call("current_epoch")) - 1
    deadline = int(w3.eth.get_block("latest")["timestamp"]) + 86_400
    report = UsageReport(node_id=used, epoch=epoch, inferences=10_000, revenue=3_000_000,
                         latency_ms=35, uptime_bps=9_990, deadline=deadline)  # fmt: skip
    send_settle(payer, suite, [sign(report, ATTESTOR_KEY, fetch_domain_of(suite))])

    db = tmp_path / "index.db"
    code, board, err = market_json(capsys, monkeypatch, world, db, "--region", "accra")
    assert code == 0, err
    assert [r["node_id"] for r in board] == [used, fresh]  # the cheaper one is new: last
    assert [r["new"] for r in board] == [False, True]
    top, last = board
    assert top["price"] == "0.3 USDC per 1k inferences"
    assert top["price_per_1k"] == {"base_units": "300000", "decimals": 6}
    assert top["latency_ms"] == 35 and top["operator"] == OPERATOR
    assert {k: last[k] for k in meta} == meta and last["metadata"] == "verified"
    assert top["endpoint"] is None and top["metadata"] == "none"

    code, cheap, err = market_json(capsys, monkeypatch, world, db, "--max-price", "0.35")
    assert code == 0, err
    assert cheap and all(int(r["price_per_1k"]["base_units"]) <= 350_000 for r in cheap)
    code, _, err = market_json(capsys, monkeypatch, world, db, "--max-price", "0.0000001")
    assert code == 2 and "has 7 decimals" in err

    code, none, err = market_json(capsys, monkeypatch, world, db, "--region", "SG")
    assert code == 0 and none == []
    assert "no active node in region 'SG'" in err and "Accra" in err and "Singapore" in err
    code, output = cli(capsys, monkeypatch, world, "market", "--db", f"sqlite:///{db}",
                       "--region", "Accra", key=None)  # fmt: skip
    assert code == 0, output
    for expect in ("https://accra.example.com/v1", "llama-3-8b", "L4", "40 rps", "new",
                   "0.1 USDC per 1k inferences"):  # fmt: skip
        assert expect in output, f"{expect!r} missing in:\n{output}"
