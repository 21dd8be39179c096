"""The price board's attested latency and the latency this machine saw: `edgeshare market`
run in-process against a chain of its own, three nodes in one region.

Node A has three attested epochs: 50 ms, then one without inferences (the node agent
reports latency 0 there: nothing was measured), then 60 ms. Node B's only attested epoch
has no inferences. Node C has no attested usage (new). The client database holds calls
to A on this suite and calls to B on another suite only.

Before this change the zero-inference epoch's 0 ms counted towards the median: A's p50
was 50 ms (of 0, 50, 60) and B's 0 ms, so B met any latency bound; and the board had no
column for what the client saw.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edgeshare.attestation import sign
from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.client import CLIENT_DB_ENV, ClientStore, get_suite_key
from edgeshare.deploy import build_params, deploy_suite
from edgeshare.roles import advance_time
from edgeshare.signer import Signer
from edgeshare.suite import (
    NodeSpec,
    Suite,
    build_report,
    fetch_domain_of,
    send_mint_mock,
    send_register_node,
    send_settle,
)
from edgeshare.tx import Transactor
from tests.inproc import run_main_streams

KEYS = build_dev_keys(4)
REGISTRAR_KEY, OPERATOR_KEY, ATTESTOR_KEY, PAYER_KEY = KEYS
EPOCH = 3_600
USDC = 10**6
REGION = "Lagos"
# name: price per 1k; the board ranks A, then B (attested, dearer), then C (new)
PRICES = {"A": 100_000, "B": 200_000, "C": 300_000}
# name: (inferences, latency ms, uptime bps) of each attested epoch, oldest first
EPOCHS = {
    "A": [(1_000, 50, 10_000), (0, 0, 4_000), (1_000, 60, 9_000)],
    "B": [(0, 0, 0)],
    "C": [],
}
SEEN_A = [30, 10, 20]
"""Latencies (ms) of the client's calls to A: p50 20 ms (nearest rank) over 3 calls."""


@dataclass
class World:
    url: str
    manifest: Path
    suite: Suite
    nodes: dict[str, int]
    """Each node's id by name."""
    index: Path
    client_db: Path
    """A client database with calls to A (this suite) and to B (another suite)."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("market-board")
    with LocalChain("anvil", accounts=len(KEYS)) as chain:
        w3 = connect(chain.url)
        registrar = Transactor(w3, Signer.from_key(REGISTRAR_KEY))
        params = build_params(None, epoch_length=EPOCH, challenge_period=3_600)
        manifest = tmp / "m.json"
        suite = Suite.load(w3, deploy_suite(registrar, params, manifest).manifest)
        nodes = {
            name: send_register_node(registrar, suite, NodeSpec(
                operator=Signer.from_key(OPERATOR_KEY).address,
                attestor=Signer.from_key(ATTESTOR_KEY).address,
                shares=10**21, price_per_1k=price, operator_cut_bps=1_000, region=REGION,
                external_id=f"board-{name}",
            ))
            for name, price in PRICES.items()
        }  # fmt: skip
        _attest(suite, registrar, nodes)
        client_db = tmp / "client.db"
        store = ClientStore(client_db)
        try:
            for ms in SEEN_A:
                store.add_latency(get_suite_key(suite), nodes["A"], ms, 200)
            store.add_latency("1:0x000000000000000000000000000000000000dead", nodes["B"], 5, 200)
        finally:
            store.close()
        yield World(chain.url, manifest, suite, nodes, tmp / "index.db", client_db)


def _attest(suite: Suite, registrar: Transactor, nodes: dict[str, int]) -> None:
    """The attestor signs each node's epochs; a payer settles the paid ones, the attestor
    the free ones (the router takes a zero-revenue report only from the node's own)."""
    first = int(suite.registry.call("current_epoch"))
    advance_time(suite, 3 * EPOCH)
    w3 = suite.w3
    payer = Transactor(w3, Signer.from_key(PAYER_KEY))
    attestor = Transactor(w3, Signer.from_key(ATTESTOR_KEY))
    send_mint_mock(registrar, suite, payer.signer.address, 1_000 * USDC)
    deadline = int(w3.eth.get_block("latest")["timestamp"]) + 86_400
    domain = fetch_domain_of(suite)
    paid, free = [], []
    for name, epochs in EPOCHS.items():
        for offset, (inferences, latency, uptime) in enumerate(epochs):
            report = build_report(suite, nodes[name], first + offset, inferences, latency,
                                  uptime, deadline)  # fmt: skip
            (paid if report.revenue else free).append(sign(report, ATTESTOR_KEY, domain))
    send_settle(payer, suite, paid)
    send_settle(attestor, suite, free)


@pytest.fixture(autouse=True)
def no_default_client_db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The default client database is a missing file: never this machine's own."""
    monkeypatch.setenv(CLIENT_DB_ENV, str(tmp_path / "default-client.db"))


def market(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    world: World,
    *flags: str,
) -> tuple[int, str, str]:
    """``edgeshare market FLAGS`` on the world's chain and index: (exit code, stdout,
    stderr)."""
    where = ["--rpc-url", world.url, "--manifest", str(world.manifest),
             "--db", f"sqlite:///{world.index}"]  # fmt: skip
    return run_main_streams(capsys, monkeypatch, {}, "market", *flags, *where)


def market_json(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    world: World,
    *flags: str,
) -> dict[str, dict[str, Any]]:
    """``edgeshare market --json FLAGS``: its rows by node name."""
    code, out, err = market(capsys, monkeypatch, world, "--json", *flags)
    assert code == 0, err
    names = {node_id: name for name, node_id in world.nodes.items()}
    return {names[row["node_id"]]: row for row in json.loads(out)}


# ------------------------------------------------------------- attested latency


def test_market__zero_inference_epoch__latency_ignored_uptime_and_epoch_counted(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = market(capsys, monkeypatch, world, "--json", "--region", REGION)
    assert code == 0, err
    assert [row["node_id"] for row in json.loads(out)] == [world.nodes[n] for n in "ABC"]
    board = market_json(capsys, monkeypatch, world, "--region", REGION)
    a, b, c = board["A"], board["B"], board["C"]
    # the median of 50 and 60 (index len // 2), not of 0, 50 and 60
    assert a["latency_ms"] == 60
    assert a["uptime_bps"] == (10_000 + 4_000 + 9_000) // 3  # every epoch: 7,666
    assert a["epochs_attested"] == 3 and a["new"] is False
    # attested, but never measured: no latency, yet not new
    assert b["latency_ms"] is None
    assert (b["uptime_bps"], b["epochs_attested"], b["new"]) == (0, 1, False)
    assert (c["latency_ms"], c["uptime_bps"], c["epochs_attested"], c["new"]) == (
        None, None, 0, True,
    )  # fmt: skip
    # a node with no measured latency does not meet a latency bound
    bounded = market_json(capsys, monkeypatch, world, "--max-latency", "100")
    assert set(bounded) == {"A"}
    assert market_json(capsys, monkeypatch, world, "--max-latency", "59") == {}
    # the latest two epochs: the free one and 60 ms
    latest = market_json(capsys, monkeypatch, world, "--recent", "2")["A"]
    assert (latest["latency_ms"], latest["uptime_bps"], latest["epochs_attested"]) == (
        60, (4_000 + 9_000) // 2, 2,
    )  # fmt: skip


# --------------------------------------------------------- latency the client saw


def test_market__client_db__seen_p50_and_calls_per_node_of_this_suite(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    board = market_json(capsys, monkeypatch, world, "--client-db", str(world.client_db))
    assert (board["A"]["seen_latency_ms"], board["A"]["seen_calls"]) == (20, len(SEEN_A))
    assert board["A"]["latency_ms"] == 60  # the attested one stays beside it
    # B was called on another suite only; C never
    for name in "BC":
        assert (board[name]["seen_latency_ms"], board[name]["seen_calls"]) == (None, 0)

    code, out, err = market(capsys, monkeypatch, world, "--client-db", str(world.client_db))
    assert code == 0, err
    assert "seen p50" in out
    (row_a,) = [line for line in out.splitlines() if "20 ms (3 calls)" in line]
    assert "60 ms" in row_a and "0.1 USDC per 1k inferences" in row_a
    (row_b,) = [line for line in out.splitlines() if "0.2 USDC per 1k inferences" in line]
    assert "ms (" not in row_b  # no seen latency for B


def test_market__client_db_from_environment__seen_p50_shown(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CLIENT_DB_ENV, str(world.client_db))
    board = market_json(capsys, monkeypatch, world)
    assert (board["A"]["seen_latency_ms"], board["A"]["seen_calls"]) == (20, len(SEEN_A))


@pytest.mark.parametrize("flag", [True, False], ids=["missing --client-db", "missing default"])
def test_market__no_client_db__no_seen_column_and_null(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, flag: bool,
) -> None:  # fmt: skip
    missing = tmp_path / "absent" / "client.db"
    monkeypatch.setenv(CLIENT_DB_ENV, str(missing))  # the default is missing as well
    flags = ["--client-db", str(missing)] if flag else []
    board = market_json(capsys, monkeypatch, world, *flags)
    assert set(board) == set(PRICES)
    for row in board.values():
        assert row["seen_latency_ms"] is None and row["seen_calls"] == 0
    code, out, err = market(capsys, monkeypatch, world, *flags)
    assert code == 0, err
    assert "p50 latency" in out and "seen p50" not in out
    assert not missing.exists() and not missing.parent.exists()  # nothing was created
