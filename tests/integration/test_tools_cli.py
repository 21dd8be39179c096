"""The tools people use, run as they run them: `edgeshare nodes|market|shares|portfolio|
claim|index|report|demo` against a chain holding a finished demo story."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from web3 import Web3

from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.demo import get_keys_needed, run_demo
from edgeshare.deploy import read_manifest
from edgeshare.signer import Signer
from edgeshare.suite import Suite

NODES, INVESTORS, EPOCHS = 3, 5, 4


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("tools")
    keys = build_dev_keys(get_keys_needed(NODES, INVESTORS) + 1)
    with LocalChain("anvil", accounts=len(keys)) as chain:
        w3 = connect(chain.url)
        summary = run_demo(
            w3,
            keys,
            nodes=NODES,
            investors=INVESTORS,
            epochs=EPOCHS,
            seed=3,
            reports_dir=None,
            workdir=workdir,
        )
        manifest = workdir / "manifest.json"
        suite = Suite.load(w3, read_manifest(manifest))  # type: ignore[arg-type]
        env = {f"KEY_{i}": k for i, k in enumerate(keys)}
        yield {
            "chain": chain,
            "w3": w3,
            "suite": suite,
            "manifest": manifest,
            "keys": keys,
            "env": env,
            "summary": summary,
            "workdir": workdir,
        }


def cli(
    world: dict[str, Any], *args: str, key: int | None = None
) -> subprocess.CompletedProcess[str]:
    extra = ["--rpc-url", world["chain"].url, "--manifest", str(world["manifest"])]
    if key is not None:
        extra += ["--private-key-env", f"KEY_{key}"]
    return subprocess.run(
        ["edgeshare", *args, *extra],
        capture_output=True,
        text=True,
        env={**os.environ, **world["env"]},
        timeout=300,
        check=False,
    )


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def address(world: dict[str, Any], index: int) -> str:
    return Signer.from_key(world["keys"][index]).address


OPERATOR = 1
INVESTOR = 1 + NODES  # the first investor
NEWCOMER = get_keys_needed(NODES, INVESTORS)  # funded, never used by the demo


# ------------------------------------------------------------------ nodes


def _nodes_yaml(world: dict[str, Any], path: Path, entries: list[dict[str, Any]]) -> Path:
    lines = ["nodes:"]
    for entry in entries:
        lines.append(f"  - external_id: {entry.get('external_id', 'x')}")
        for key, value in entry.items():
            if key != "external_id":
                lines.append(f"    {key}: {value}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _entry(world: dict[str, Any], **over: Any) -> dict[str, Any]:
    entry = {
        "external_id": "lagos-b200-01",
        "operator": address(world, OPERATOR),
        "attestor": address(world, OPERATOR),
        "shares": 1000,  # whole shares
        "price_per_1k": 0.45,  # whole USDC
        "operator_cut_bps": 1500,
        "region": "Lagos",
        "metadata_uri": "ipfs://n",
    }
    entry.update(over)
    return entry


def test_nodes_register__registers_once_then_skips(world: dict[str, Any], tmp_path: Path) -> None:
    suite: Suite = world["suite"]
    before = suite.fetch_node_count()
    path = _nodes_yaml(
        world,
        tmp_path / "nodes.yaml",
        [
            _entry(world, external_id="lagos-b200-01"),
            _entry(world, external_id="lima-h100-07", region="Lima"),
        ],
    )
    first = ok_json(cli(world, "nodes", "register", str(path), "--json", key=0))
    assert [r["action"] for r in first] == ["registered", "registered"]
    assert [r["node_id"] for r in first] == [before + 1, before + 2]
    assert suite.fetch_node(before + 2).region == "Lima"
    again = ok_json(cli(world, "nodes", "register", str(path), "--json", key=0))
    assert [r["action"] for r in again] == ["already registered"] * 2
    assert [r["node_id"] for r in again] == [before + 1, before + 2]
    assert suite.fetch_node_count() == before + 2


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"shares": 0.5}, "less than one whole share"),
        ({"price_per_1k": "0.0000001"}, "nodes[0].price_per_1k: 0.0000001 has 7 decimals"),
        ({"price_per_1k": -1}, "nodes[0].price_per_1k"),
        ({"operator_cut_bps": 5001}, "nodes[0].operator_cut_bps"),
        ({"operator": "0x70997970c51812dc3a010c7d01b50e0d17dc79C8"}, "invalid EIP-55 checksum"),
        ({"attestor": "0x1234"}, "nodes[0].attestor"),
        ({"color": "blue"}, "nodes[0].color: unknown field"),
        ({"shares": '"many"'}, "nodes[0].shares"),
        ({"region": '""'}, "nodes[0].region"),
        ({"external_id": '""'}, "nodes[0].external_id"),
    ],
)
def test_nodes_register__bad_entry__exit_2_nothing_sent(
    world: dict[str, Any], tmp_path: Path, over: dict[str, Any], message: str
) -> None:
    suite: Suite = world["suite"]
    before = suite.fetch_node_count()
    path = _nodes_yaml(
        world, tmp_path / "nodes.yaml", [_entry(world, external_id="ok-1"), _entry(world, **over)]
    )
    result = cli(world, "nodes", "register", str(path), key=0)
    assert result.returncode == 2, result.stderr
    assert message.replace("nodes[0]", "nodes[1]") in result.stderr
    assert suite.fetch_node_count() == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "must be a mapping with a 'nodes' list"),
        (b"nodes: [\n  - {a: 1", "is not valid YAML"),
        (b"\xff\xfenodes", "is not UTF-8 text"),
        (b"nodes: []\n", "nodes"),
        (b"- just\n- a list\n", "must be a mapping"),
    ],
)
def test_nodes_register__bad_file__exit_2(
    world: dict[str, Any], tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "nodes.yaml"
    path.write_bytes(content)
    result = cli(world, "nodes", "register", str(path), key=0)
    assert result.returncode == 2 and message in result.stderr


def test_nodes_register__duplicate_external_id__exit_2(
    world: dict[str, Any], tmp_path: Path
) -> None:
    path = _nodes_yaml(
        world,
        tmp_path / "n.yaml",
        [_entry(world, external_id="same"), _entry(world, external_id="same")],
    )
    result = cli(world, "nodes", "register", str(path), key=0)
    assert (
        result.returncode == 2
        and "'same' of operator" in result.stderr
        and "is also nodes[0]" in result.stderr
    )


def test_nodes_list__shows_every_node(world: dict[str, Any]) -> None:
    listed = ok_json(cli(world, "nodes", "list", "--json"))
    suite: Suite = world["suite"]
    assert len(listed) == suite.fetch_node_count()
    assert listed[0] == json.loads(suite.fetch_node(1).model_dump_json())


# ----------------------------------------------------------------- market


def test_market__cheapest_first_and_filters(world: dict[str, Any], tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'm.db'}"
    board = ok_json(cli(world, "market", "--json", "--db", db))
    prices = [int(row["price_per_1k"]["base_units"]) for row in board]
    attested = [p for p, row in zip(prices, board, strict=True) if not row["new"]]
    fresh = [p for p, row in zip(prices, board, strict=True) if row["new"]]
    assert prices == sorted(attested) + sorted(fresh) and len(board) >= NODES  # new ones last
    assert all(row["latency_ms"] is not None for row in board if row["node_id"] <= NODES)
    assert all(row["new"] == (row["node_id"] > NODES) for row in board)
    cheapest = ok_json(cli(world, "market", "--json", "--db", db, "--top", "1"))
    assert cheapest == board[:1]
    region = board[-1]["region"]
    in_region = ok_json(cli(world, "market", "--json", "--db", db, "--region", region.upper()))
    assert in_region and all(r["region"] == region for r in in_region)
    cap = prices[len(prices) // 2]
    capped = ok_json(cli(world, "market", "--json", "--db", db, "--max-price", str(cap),
                         "--base-units"))  # fmt: skip
    assert capped and all(int(r["price_per_1k"]["base_units"]) <= cap for r in capped)
    fast = sorted(r["latency_ms"] for r in board if r["latency_ms"] is not None)[0]
    quick = ok_json(cli(world, "market", "--json", "--db", db, "--max-latency", str(fast)))
    assert quick and all(r["latency_ms"] is not None and r["latency_ms"] <= fast for r in quick)
    bad = cli(world, "market", "--db", db, "--top", "0")
    assert bad.returncode == 2


# --------------------------------------------------- portfolio, shares, claim


def test_portfolio__matches_the_chain(world: dict[str, Any]) -> None:
    suite: Suite = world["suite"]
    investor = address(world, INVESTOR)
    data = ok_json(cli(world, "portfolio", investor, "--json"))
    assert data["holder"] == investor and data["holdings"]
    for h in data["holdings"]:
        share = suite.share(h["node_id"])
        assert int(h["shares"]) == share.call("balanceOf", investor)
        assert int(h["claimable"]) == share.call("claimable", investor)
    assert int(data["total_claimable"]) == sum(int(h["claimable"]) for h in data["holdings"])
    assert data["decimals"] == 6
    assert cli(world, "portfolio", "0x1234").returncode == 2


def test_shares_transfer__moves_all_and_refuses_bad_amounts(world: dict[str, Any]) -> None:
    suite: Suite = world["suite"]
    operator, newcomer = address(world, OPERATOR), address(world, NEWCOMER)
    share = suite.share(1)
    balance = share.call("balanceOf", operator)
    moved = ok_json(cli(world, "shares", "transfer", "1", newcomer, "1000", "--json", key=OPERATOR))
    # whole shares: 1000 means a thousand shares of 18 decimals
    assert moved["amount"] == str(1000 * 10**18) and share.call("balanceOf", newcomer) == 10**21
    assert share.call("balanceOf", operator) == balance - 10**21
    base = ok_json(
        cli(world, "shares", "transfer", "1", newcomer, "5", "--base-units", "--json", key=OPERATOR)
    )
    assert base["amount"] == "5" and share.call("balanceOf", newcomer) == 10**21 + 5
    for amount, message in (
        ("1.0000000000000000001", "has 19 decimals; the token has 18"),
        ("1e5", "whole units"),
        (str(balance * 2), "holds"),
        ("-3", "No such option: -3"),
    ):
        result = cli(world, "shares", "transfer", "1", newcomer, amount, key=OPERATOR)
        assert result.returncode == 2 and message in result.stderr
    everything = ok_json(
        cli(world, "shares", "transfer", "1", operator, "all", "--json", key=NEWCOMER)
    )
    assert everything["amount"] == str(10**21 + 5) and share.call("balanceOf", newcomer) == 0


def test_claim__pays_what_was_claimable_then_nothing(world: dict[str, Any]) -> None:
    suite: Suite = world["suite"]
    operator = address(world, OPERATOR)
    owed = {n: suite.share(n).call("claimable", operator) for n in range(1, NODES + 1)}
    before = suite.stablecoin.call("balanceOf", operator)
    claimed = ok_json(cli(world, "claim", "--json", key=OPERATOR))
    paid = {c["node_id"]: int(c["amount"]) for c in claimed["claims"]}
    assert paid == {n: a for n, a in owed.items() if a > 0} and int(claimed["total"]) > 0
    assert suite.stablecoin.call("balanceOf", operator) == before + int(claimed["total"])
    nothing = ok_json(cli(world, "claim", "--json", key=OPERATOR))
    assert nothing == {"total": "0", "decimals": 6, "claims": []}


def test_claim__named_node_to_another_address(world: dict[str, Any]) -> None:
    suite: Suite = world["suite"]
    holder, newcomer = address(world, 2), address(world, NEWCOMER)  # node 2's operator keeps 30%
    owed = suite.share(2).call("claimable", holder)
    assert owed > 0
    before = suite.stablecoin.call("balanceOf", newcomer)
    claimed = ok_json(cli(world, "claim", "--node", "2", "--to", newcomer, "--json", key=2))
    assert [(c["node_id"], int(c["amount"]), c["receiver"]) for c in claimed["claims"]] == [
        (2, owed, newcomer)
    ]
    assert suite.stablecoin.call("balanceOf", newcomer) == before + owed
    assert suite.share(2).call("claimable", holder) == 0
    unknown = cli(world, "claim", "--node", "99", key=2)
    assert unknown.returncode == 2 and "no node 99" in unknown.stderr


# --------------------------------------------------------- index, reports


def test_index__resumes_from_where_it_stopped(world: dict[str, Any], tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'i.db'}"
    first = ok_json(cli(world, "index", "--db", db, "--chunk", "7", "--json"))
    assert first["events"] > 0 and first["chunks"] > 1
    again = ok_json(cli(world, "index", "--db", db, "--json"))
    assert again["events"] == 0 and again["from_block"] == first["to_block"] + 1
    assert cli(world, "index", "--db", "postgres://x/y").returncode == 2


def _split_logs(suite: Suite) -> list[Any]:
    """RevenueSplit logs read through web3, independently of the library's reader."""
    from edgeshare.artifacts import load_artifact

    abi = load_artifact("RevenueRouter").abi
    router = suite.w3.eth.contract(address=suite.router.address, abi=abi)  # type: ignore[call-overload]
    return list(router.events.RevenueSplit().get_logs(from_block=0))


def test_report_operator__totals_equal_the_chain_exactly(
    world: dict[str, Any], tmp_path: Path
) -> None:
    suite: Suite = world["suite"]
    db = f"sqlite:///{tmp_path / 'r.db'}"
    nodes = [str(n) for n in range(1, NODES + 1)]
    args = ["report", "operator", "--format", "json", "--db", db]
    for n in nodes:
        args += ["--node", n]
    report = ok_json(cli(world, *args))
    splits = _split_logs(suite)
    for totals in report["nodes"]:
        mine = [e["args"] for e in splits if e["args"]["node_id"] == totals["node_id"]]
        # amounts are exact base-unit strings
        revenue, pending = int(totals["revenue"]), int(totals["pending_revenue"])
        assert revenue - pending == sum(a["gross"] for a in mine)
        assert int(totals["operator_cut"]) == sum(a["operator_cut"] for a in mine)
        assert int(totals["protocol_fee"]) == sum(a["protocol_fee"] for a in mine)
        assert int(totals["holders"]) == sum(a["holders"] for a in mine)
        assert int(totals["holders"]) == suite.share(totals["node_id"]).call("total_distributed")
    disputed = [r for r in report["rows"] if r["disputed"]]
    assert len(disputed) == 1 and (disputed[0]["node_id"], disputed[0]["epoch"]) == tuple(
        world["summary"].disputed_report
    )
    assert len(report["rows"]) == NODES * EPOCHS
    operator = address(world, OPERATOR)
    by_operator = ok_json(
        cli(world, "report", "operator", operator, "--format", "json", "--db", db)
    )
    owned = [
        n
        for n in range(1, suite.fetch_node_count() + 1)
        if suite.fetch_node(n).operator == operator
    ]
    assert [t["node_id"] for t in by_operator["nodes"]] == owned and 1 in owned


@pytest.mark.parametrize("fmt", ["csv", "table", "html"])
def test_report_formats(world: dict[str, Any], tmp_path: Path, fmt: str) -> None:
    result = cli(
        world,
        "report",
        "operator",
        "--node",
        "1",
        "--format",
        fmt,
        "--db",
        f"sqlite:///{tmp_path / 'f.db'}",
    )
    assert result.returncode == 0, result.stderr
    if fmt == "csv":
        epochs = result.stdout.split("# epochs\n")[1].split("\n\n")[0].strip().splitlines()
        assert epochs[0].startswith("epoch,starts (UTC),node,inferences,revenue (USDC)")
        assert len(epochs) == EPOCHS + 1
    elif fmt == "html":
        assert result.stdout.startswith("<!doctype html>") and "<svg" in result.stdout
    else:
        assert "Totals per node" in result.stdout


def test_report__bad_input__exit_2(world: dict[str, Any]) -> None:
    assert cli(world, "report", "operator").returncode == 2
    assert cli(world, "report", "operator", "--node", "1", "--format", "pdf").returncode == 2
    assert cli(world, "report", "investor", "0xnothex").returncode == 2


def test_report_investor__positions_and_nodes_held(world: dict[str, Any], tmp_path: Path) -> None:
    investor = address(world, INVESTOR)
    report = ok_json(
        cli(
            world,
            "report",
            "investor",
            investor,
            "--format",
            "json",
            "--db",
            f"sqlite:///{tmp_path / 'v.db'}",
        )
    )
    suite: Suite = world["suite"]
    assert report["positions"]
    for p in report["positions"]:
        assert int(p["shares"]) == suite.share(p["node_id"]).call("balanceOf", investor)
    assert {r["node_id"] for r in report["rows"]} == {p["node_id"] for p in report["positions"]}


# The HTML reports in a real browser: tests/integration/test_reports.py (20 nodes).


# -------------------------------------------------------------------- demo


def _demo(engine: str, seed: int, tmp_path: Path) -> Any:
    result = subprocess.run(
        [
            "edgeshare",
            "demo",
            "--nodes",
            "2",
            "--investors",
            "3",
            "--epochs",
            "3",
            "--seed",
            str(seed),
            "--engine",
            engine,
            "--json",
            "--reports-dir",
            str(tmp_path / f"reports-{engine}-{seed}"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_demo__on_anvil__same_seed_same_numbers(tmp_path: Path) -> None:
    first, second = _demo("anvil", 11, tmp_path), _demo("anvil", 11, tmp_path)
    assert first == {**second, "reports_written": first["reports_written"]}
    assert first["reports_settled"] == 6 and first["dust"] >= 0
    # node 2 ran the node software: its 3 epochs were metered from real requests through
    # its gateway, signed and settled by its agent, and its vouchers redeemed
    assert first["live_nodes"] == [2] and first["live_reports"] == 3
    assert first["live_requests"] > 0
    live = next(n for n in first["nodes"] if n["node_id"] == 2)
    assert live["inferences"] == first["live_requests"] and live["channels"] > 0
    assert _demo("anvil", 12, tmp_path)["paid_in"] != first["paid_in"]
    written = [Path(p).name for p in first["reports_written"]]
    assert "operator-report.html" in written and "investor-report.json" in written


def test_demo__on_ganache(tmp_path: Path) -> None:
    summary = _demo("ganache", 11, tmp_path)
    assert summary["chain_id"] == 1337 and summary["reports_settled"] == 6
    assert summary["live_reports"] == 3
    anvil = _demo("anvil", 11, tmp_path)
    assert summary["paid_in"] == anvil["paid_in"] and summary["nodes"] == anvil["nodes"]


__all__ = ["Web3"]


def test_index__halves_a_range_the_node_refuses(world: dict[str, Any], tmp_path: Path) -> None:
    from edgeshare.indexer import Indexer, open_db
    from edgeshare.rpc import RpcClient, RpcError, get_rpc

    class Picky(RpcClient):
        """A node that answers at most 5 blocks of logs per request, like a hosted RPC."""

        def batch(self, calls: list[tuple[str, list[Any]]], chunk: int = 200) -> list[Any]:
            method, params = calls[0]
            if method == "eth_getLogs":
                span = int(params[0]["toBlock"], 16) - int(params[0]["fromBlock"], 16)
                if span >= 5:
                    return [RpcError(-32005, "query returned more than 10000 results")]
            return super().batch(calls, chunk)

    suite: Suite = world["suite"]
    reference = f"sqlite:///{tmp_path / 'ref.db'}"
    picky = f"sqlite:///{tmp_path / 'picky.db'}"
    with open_db(reference) as db:
        expected = Indexer(suite, db, get_rpc(suite.w3)).run()
        usage = db.execute(text("SELECT * FROM usage ORDER BY node_id, epoch")).fetchall()
    with open_db(picky) as db:
        result = Indexer(suite, db, Picky(world["chain"].url), chunk=10_000).run()
        assert result.events == expected.events and result.to_block == expected.to_block
        assert db.execute(text("SELECT * FROM usage ORDER BY node_id, epoch")).fetchall() == usage


def test_bad_input__other_commands__exit_2(world: dict[str, Any], tmp_path: Path) -> None:
    missing = cli(world, "attest", "finalize", str(tmp_path / "none.json"), key=0)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    no_manifest = subprocess.run(
        ["edgeshare", "nodes", "list", "--rpc-url", world["chain"].url, "--manifest",
         str(tmp_path / "none.json")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert no_manifest.returncode == 2 and "no manifest at" in no_manifest.stderr
    for args in (["--nodes", "0"], ["--nodes", "51"], ["--epochs", "0"], ["--engine", "hardhat"]):
        demo = subprocess.run(["edgeshare", "demo", *args], capture_output=True, text=True,
                              timeout=120, check=False)  # fmt: skip
        assert demo.returncode == 2, (args, demo.stderr)


def test_index__of_an_earlier_chain__is_refused(tmp_path: Path) -> None:
    """A restarted local chain redeploys at the same addresses; its old index must not be reused."""
    db = f"sqlite:///{tmp_path / 'old.db'}"
    for round_ in (1, 2):
        with LocalChain("anvil", accounts=get_keys_needed(1, 1)) as chain:
            w3 = connect(chain.url)
            run_demo(w3, build_dev_keys(get_keys_needed(1, 1)), nodes=1, investors=1, epochs=1,
                     seed=round_, reports_dir=None, workdir=tmp_path / str(round_))  # fmt: skip
            result = subprocess.run(
                ["edgeshare", "index", "--rpc-url", chain.url, "--manifest",
                 str(tmp_path / str(round_) / "manifest.json"), "--db", db],
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            if round_ == 1:
                assert result.returncode == 0, result.stderr
            else:
                assert result.returncode == 2
                assert "does not match this chain" in result.stderr


def test_index__attributes_each_report_to_the_attestor_in_force(
    world: dict[str, Any], tmp_path: Path
) -> None:
    from edgeshare.attestation import sign
    from edgeshare.indexer import open_db, sync_index
    from edgeshare.suite import build_report, send_increase_time, send_settle
    from edgeshare.tx import Transactor

    suite: Suite = world["suite"]
    node_id = 3
    old = suite.fetch_node(node_id).attestor
    operator = Transactor(world["w3"], Signer.from_key(world["keys"][node_id]))
    new_key = world["keys"][NEWCOMER]
    operator.send(suite.registry.tx("rotate_attestor", node_id, address(world, NEWCOMER)), "rotate")
    send_increase_time(world["w3"], 3 * 7_200)
    epoch = EPOCHS + 1
    report = build_report(suite, node_id, epoch, 10, 20, 9_999, 2**40)
    payer = Transactor(world["w3"], Signer.from_key(world["keys"][0]))
    send_settle(payer, suite, [sign(report, new_key, fetch_domain_of(suite))])
    url, _ = sync_index(suite, f"sqlite:///{tmp_path / 'a.db'}", chunk=3)
    with open_db(url) as db:
        rows = dict(
            db.execute(
                text("SELECT epoch, attestor FROM usage WHERE node_id = :node"), {"node": node_id}
            ).fetchall()
        )
    assert rows[epoch] == address(world, NEWCOMER)
    assert all(rows[e] == old for e in range(EPOCHS))


from edgeshare.suite import fetch_domain_of  # noqa: E402
