"""The node agent on its own anvil: nodes whose metrics come from a ``prometheus_client``
registry the test controls (vLLM's names), reports built from what the metrics show,
signed, posted and settled; kills at every step and restarts that end with exactly the
reports of a run without kills; catch-up after downtime; write mode for a separate payer;
a remote signer; bad configs; ``agent status``; and a real-time run stopped by SIGTERM.

Chain time is moved by mining blocks at chosen timestamps (``evm_mine``), so scrape
times, and with them every figure, are the same in every run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from edgeshare.agent import (
    FAILPOINT_ENV,
    FAILPOINTS,
    Agent,
    load_agent_config,
    open_agent,
    read_status,
)
from edgeshare.chain import LocalChain, build_dev_keys, connect, get_free_port
from edgeshare.channels import (
    Voucher,
    fetch_channel,
    fetch_channels_domain,
    send_authorize_signer,
    send_deposit,
    send_revoke_signer,
    sign_voucher,
)
from edgeshare.contracts import get_codec
from edgeshare.deploy import build_params, deploy_suite
from edgeshare.gateway import ChannelUse, VoucherStore
from edgeshare.roles import advance_time
from edgeshare.signer import Signer
from edgeshare.suite import NodeSpec, Suite, send_mint_mock, send_register_node
from edgeshare.tx import Transactor
from tests.inproc import run_main, run_main_streams

EPOCH = 300
INTERVAL = 60
GRACE = 10
PRICE = 2_000_000  # 2 USDC per 1,000 inferences
USDC = 10**6
OWNER, ATTESTOR, CUSTOMER, STRANGER = 0, 1, 2, 3
FIRST_OPERATOR = 4  # node k's operator (and payer) is dev account FIRST_OPERATOR + k - 1
PASSWORD = "correct horse"


def address(keys: list[str], who: int) -> str:
    return Signer.from_key(keys[who]).address


class Metrics:
    """A vLLM-like exposition served from a registry of our own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.success = Counter(
            "vllm:request_success",
            "Finished requests.",
            ["model_name", "finished_reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "vllm:e2e_request_latency_seconds",
            "End-to-end latency.",
            ["model_name"],
            buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.port = get_free_port()
        self.server, _ = start_http_server(self.port, "127.0.0.1", self.registry)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def serve(self, count: int, seconds: float = 0.3) -> None:
        """``count`` requests finished, each taking ``seconds``."""
        self.success.labels(model_name="m", finished_reason="stop").inc(count)
        for _ in range(count):
            self.latency.labels(model_name="m").observe(seconds)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class World:
    chain: LocalChain
    suite: Suite
    manifest: Path
    keys: list[str]
    keystore: Path
    """The attestor's keystore (password ``PASSWORD`` in $ATTESTOR_PASSWORD)."""
    nodes: int = 0

    @property
    def env(self) -> dict[str, str]:
        """Every operator's key by variable name, and the attestor's password."""
        names = {f"OPERATOR_{i}_KEY": k for i, k in enumerate(self.keys)}
        return {**names, "ATTESTOR_PASSWORD": PASSWORD}

    def operator_of(self, node_id: int) -> int:
        return FIRST_OPERATOR + node_id - 1

    def register(self) -> int:
        """A new node at ``PRICE``, attested by ATTESTOR, run by its own operator."""
        owner = Transactor(self.suite.w3, Signer.from_key(self.keys[OWNER]))
        spec = NodeSpec(
            operator=address(self.keys, self.operator_of(self.nodes + 1)),
            attestor=address(self.keys, ATTESTOR),
            shares=1_000 * 10**18,
            price_per_1k=PRICE,
            operator_cut_bps=1_000,
            region="Lagos",
        )
        self.nodes = send_register_node(owner, self.suite, spec)
        send_mint_mock(owner, self.suite, spec.operator, 100 * USDC)
        return self.nodes

    def now(self) -> int:
        block = self.suite.rpc.call("eth_getBlockByNumber", ["latest", False])
        return int(block["timestamp"], 16)

    def mine_at(self, timestamp: int) -> None:
        """Mine a block at exactly ``timestamp`` (later than the latest block)."""
        assert timestamp > self.now(), (timestamp, self.now())
        self.suite.rpc.call("evm_mine", [{"timestamp": timestamp}])

    def epoch_start(self, epoch: int) -> int:
        genesis, length = self.suite.reader.many(
            [self.suite.registry.read("GENESIS"), self.suite.registry.read("EPOCH_LENGTH")]
        )
        return int(genesis) + epoch * int(length)

    def next_epoch(self, margin: int = 60) -> int:
        """The first epoch that starts at least ``margin`` seconds from now."""
        now = self.now()
        epoch = (now - self.epoch_start(0)) // EPOCH + 1
        while self.epoch_start(epoch) < now + margin:
            epoch += 1
        return epoch


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A suite with 5-minute epochs; a customer with 100 USDC; the attestor's keystore."""
    keys = build_dev_keys(30)
    folder = tmp_path_factory.mktemp("agent")
    with LocalChain("anvil", accounts=30) as chain:
        w3 = connect(chain.url)
        owner = Transactor(w3, Signer.from_key(keys[OWNER]))
        params = build_params(None, epoch_length=EPOCH, challenge_period=3_600, unlock_period=EPOCH)
        manifest = folder / "manifest.json"
        suite = Suite.load(w3, deploy_suite(owner, params, manifest).manifest)
        send_mint_mock(owner, suite, address(keys, CUSTOMER), 100 * USDC)
        keystore = folder / "attestor.json"
        encrypted = Account.encrypt(keys[ATTESTOR], PASSWORD, kdf="pbkdf2", iterations=2)
        keystore.write_text(json.dumps(encrypted))
        yield World(chain, suite, manifest, keys, keystore)


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    served = Metrics()
    yield served
    served.close()


def write_config(
    world: World,
    folder: Path,
    nodes: list[dict[str, Any]],
    *,
    agent: dict[str, Any] | None = None,
    attestor: str | None = None,
    payer: str | None = None,
    extra: str = "",
) -> Path:
    """An agent.toml for ``nodes`` (dicts of [[node]] keys)."""
    settings = {
        "state": str(folder / "agent.db"),
        "scrape_interval": INTERVAL,
        "grace": GRACE,
        "listen": "",
        **(agent or {}),
    }
    first = nodes[0]["id"]
    lines = [
        "[chain]",
        f'rpc_url = "{world.chain.url}"',
        f'manifest = "{world.manifest}"',
        "",
        "[agent]",
        *(f"{k} = {json.dumps(v)}" for k, v in settings.items()),
        "",
        "[attestor]",
        attestor or f'keystore = "{world.keystore}"\npassword_env = "ATTESTOR_PASSWORD"',
        "",
    ]
    if payer != "":
        lines += ["[payer]", payer or f'key_env = "OPERATOR_{world.operator_of(first)}_KEY"', ""]
    for node in nodes:
        lines.append("[[node]]")
        for k, v in node.items():
            lines.append(f"{k} = {json.dumps(v)}")
        lines.append("")
    path = folder / "agent.toml"
    path.write_text("\n".join(lines) + extra)
    return path


def settled_events(world: World, node_id: int) -> dict[int, dict[str, Any]]:
    """The router's UsageSettled events of ``node_id``, by epoch."""
    event = get_codec("RevenueRouter").event("UsageSettled")
    logs = world.suite.rpc.call(
        "eth_getLogs",
        [
            {
                "address": world.suite.router.address,
                "fromBlock": "0x0",
                "toBlock": "latest",
                "topics": ["0x" + event.topic.hex(), "0x" + node_id.to_bytes(32, "big").hex()],
            }
        ],
    )
    found: dict[int, dict[str, Any]] = {}
    for log in logs:
        args = event.decode(log["topics"], log["data"])
        assert int(args["epoch"]) not in found, "two reports settled for one epoch"
        found[int(args["epoch"])] = {
            k: int(args[k])
            for k in ("version", "inferences", "revenue", "latency_ms", "uptime_bps")
        }
    return found


def line_of(path: Path, fragment: str) -> int:
    """The number of the first line of ``path`` that holds ``fragment``."""
    lines = path.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if fragment in line)


def open_in_process(world: World, config: Path) -> Agent:
    return open_agent(load_agent_config(config), {**os.environ, **world.env})


# --------------------------------------------------------------------- in-process


def test_run_once__reports_settle_with_what_the_metrics_showed(
    world: World, metrics: Metrics, tmp_path: Path
) -> None:
    node = world.register()
    config = write_config(
        world, tmp_path, [{"id": node, "metrics_url": metrics.url, "preset": "vllm"}]
    )
    metrics.serve(5)  # served before monitoring began: not this agent's to count
    agent = open_in_process(world, config)
    e0 = world.next_epoch()
    start = world.epoch_start(e0)
    try:
        world.mine_at(start + 30)
        agent.run_once()
        metrics.serve(12, 0.3)
        world.mine_at(start + 150)
        agent.run_once()
        metrics.serve(3, 0.7)
        world.mine_at(start + 270)
        agent.run_once()
        metrics.serve(4)  # after the epoch's last scrape: counted in the next epoch
        world.mine_at(start + EPOCH + 30)  # e0 ended 30 s ago (grace 10 s)
        agent.run_once()
    finally:
        agent.close()
    records = settled_events(world, node)
    # 15 inferences; p50 of 12 x 0.3 s and 3 x 0.7 s: rank 7.5 in (0.25, 0.5] -> 0.25 +
    # 0.25 * 7.5/12 = 406.25 ms -> 407; scrapes in 3 of the epoch's 5 slots
    assert records == {
        e0: {"version": 0, "inferences": 15, "revenue": 15 * PRICE // 1_000, "latency_ms": 407,
             "uptime_bps": 6_000},
    }  # fmt: skip
    status = read_status(load_agent_config(config))
    (mine,) = status.nodes
    assert mine.reports["settled"] == 1 and not mine.pending and not mine.held
    assert mine.next_epoch == e0 + 1
    assert mine.next_epoch_ends_at == world.epoch_start(e0 + 2)


def test_downtime__every_ended_epoch_is_reported_after_a_restart(
    world: World, metrics: Metrics, tmp_path: Path
) -> None:
    node = world.register()
    config = write_config(
        world, tmp_path, [{"id": node, "metrics_url": metrics.url, "preset": "vllm"}]
    )
    metrics.serve(1)
    e0 = world.next_epoch()
    start = world.epoch_start(e0)
    agent = open_in_process(world, config)
    try:
        world.mine_at(start + 30)
        agent.run_once()
        metrics.serve(7, 0.2)
        world.mine_at(start + 150)
        agent.run_once()
    finally:
        agent.close()  # the agent is down for the rest of e0, all of e1 and e2
    metrics.serve(9, 2.0)  # counted in the epoch of the next scrape (e3)
    world.mine_at(world.epoch_start(e0 + 3) + 30)
    agent = open_in_process(world, config)
    try:
        agent.run_once()
    finally:
        agent.close()
    records = settled_events(world, node)
    # e0: 7 at 0.2 s (p50 in (0.1, 0.25]: 0.1 + 0.15 * 3.5/7 = 175 ms), 2 slots of 5;
    # e1, e2: nothing scraped: no inferences, no latency to measure, all slots down
    assert records == {
        e0: {"version": 0, "inferences": 7, "revenue": 14_000, "latency_ms": 175,
             "uptime_bps": 4_000},
        e0 + 1: {"version": 0, "inferences": 0, "revenue": 0, "latency_ms": 0, "uptime_bps": 0},
        e0 + 2: {"version": 0, "inferences": 0, "revenue": 0, "latency_ms": 0, "uptime_bps": 0},
    }  # fmt: skip
    (mine,) = read_status(load_agent_config(config)).nodes
    assert mine.reports["settled"] == 3 and mine.next_epoch == e0 + 3


def test_no_latency_with_inferences__held_not_invented(
    world: World, metrics: Metrics, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    node = world.register()
    spec = {"preset": "vllm", "latency_histogram": "vllm:not_exposed_seconds"}
    config = write_config(world, tmp_path, [{"id": node, "metrics_url": metrics.url, **spec}])
    metrics.serve(2)
    e0 = world.next_epoch()
    agent = open_in_process(world, config)
    try:
        world.mine_at(world.epoch_start(e0) + 30)
        agent.run_once()
        metrics.serve(6)
        world.mine_at(world.epoch_start(e0) + 150)
        agent.run_once()
        world.mine_at(world.epoch_start(e0 + 1) + 30)
        agent.run_once()
    finally:
        agent.close()
    assert settled_events(world, node) == {}
    code, out, _ = run_main_streams(
        capsys, monkeypatch, {}, "agent", "status", "--config", str(config), "--json"
    )
    assert code == 0
    (mine,) = json.loads(out)["nodes"]
    assert mine["reports"]["held"] == 1 and mine["pending"] == []
    (held,) = mine["held"]
    assert held["epoch"] == e0 and held["state"] == "held"
    assert "6 inferences but no latency" in held["reason"]
    assert "vllm:not_exposed_seconds is not exposed" in held["reason"]
    code, out = run_main(capsys, monkeypatch, {}, "agent", "status", "--config", str(config))
    assert code == 0 and f"epoch {e0}: held: 6 inferences but no latency" in out


def test_write_mode__files_that_attest_post_settles(
    world: World, metrics: Metrics, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    nodes = [world.register(), world.register()]
    reports = tmp_path / "outbox"
    config = write_config(
        world,
        tmp_path,
        [{"id": n, "metrics_url": metrics.url, "preset": "vllm"} for n in nodes],
        agent={"mode": "write", "reports_dir": str(reports)},
        payer="",
    )
    metrics.serve(1)
    e0 = world.next_epoch()
    agent = open_in_process(world, config)
    try:
        world.mine_at(world.epoch_start(e0) + 30)
        agent.run_once()
        metrics.serve(20, 0.3)
        world.mine_at(world.epoch_start(e0) + 250)
        agent.run_once()
        world.mine_at(world.epoch_start(e0 + 1) + 30)
        agent.run_once()
        written = reports / f"epoch-{e0}.json"
        assert json.loads(written.read_text())["domain"]["name"] == "EdgeShare"
        (first, second) = read_status(load_agent_config(config)).nodes
        assert first.reports["written"] == second.reports["written"] == 1
        # the separate payer posts the file, as it would any `attest sign` output
        env = {"PAYER_KEY": world.keys[world.operator_of(nodes[0])]}
        code, out = run_main(
            capsys, monkeypatch, env, "attest", "post", str(written), "--private-key-env",
            "PAYER_KEY", "--rpc-url", world.chain.url, "--manifest", str(world.manifest),
            "--json",
        )  # fmt: skip
        assert code == 0, out
        assert json.loads(out[out.index("{") :])["settled"] == 2
        world.mine_at(world.epoch_start(e0 + 1) + 60)
        agent.run_once()
    finally:
        agent.close()
    for node in nodes:
        assert settled_events(world, node)[e0]["inferences"] == 20
    status = read_status(load_agent_config(config))
    assert [n.reports["settled"] for n in status.nodes] == [1, 1]


def test_remote_signer__anvil_signs_typed_data_for_the_attestor(
    world: World, metrics: Metrics, tmp_path: Path
) -> None:
    node = world.register()
    remote = f'signer_url = "{world.chain.url}"\naddress = "{address(world.keys, ATTESTOR)}"'
    config = write_config(
        world, tmp_path, [{"id": node, "metrics_url": metrics.url, "preset": "vllm"}],
        attestor=remote,
    )  # fmt: skip
    metrics.serve(1)
    e0 = world.next_epoch()
    agent = open_in_process(world, config)
    try:
        world.mine_at(world.epoch_start(e0) + 30)
        agent.run_once()
        metrics.serve(11, 0.3)
        world.mine_at(world.epoch_start(e0) + 150)
        agent.run_once()
        world.mine_at(world.epoch_start(e0 + 1) + 30)
        agent.run_once()
    finally:
        agent.close()
    assert settled_events(world, node)[e0]["inferences"] == 11


def test_remote_signer__a_signature_of_another_key_is_refused() -> None:
    from edgeshare.attestation import Eip712Domain, UsageReport, get_digest, sign_digest
    from edgeshare.remote_signer import RemoteSigner, RemoteSignerError

    keys = build_dev_keys(2)
    domain = Eip712Domain(
        name="EdgeShare", version="1", chain_id=31337, verifying_contract="0x" + "11" * 20
    )
    report = UsageReport(
        node_id=1, epoch=2, inferences=3, revenue=6, latency_ms=4, uptime_bps=5, deadline=6
    )
    answers: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert body["method"] == "eth_signTypedData_v4"
        assert json.loads(body["params"][1])["message"]["inferences"] == "3"
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": answers[-1]})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    signer = RemoteSigner("http://signer.invalid", address(keys, 0), client=client)
    digest = get_digest(report, domain)
    answers.append("0x" + sign_digest(digest, keys[1]).hex())
    with pytest.raises(RemoteSignerError, match=r"signed with .* not "):
        signer.sign_report(report, domain)
    good = sign_digest(digest, keys[0])
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high_s = good[:32] + (n - int.from_bytes(good[32:64], "big")).to_bytes(32, "big")
    answers.append("0x" + (high_s + bytes([55 - good[64]])).hex())
    with pytest.raises(RemoteSignerError, match="not canonical"):
        signer.sign_report(report, domain)
    answers.append("0x" + good[:64].hex() + f"{good[64] - 27:02x}")  # v as 0/1 is taken
    assert signer.sign_report(report, domain).signature == "0x" + good.hex()


# -------------------------------------------------------------------------- config


def test_config__a_private_key_in_the_file_is_refused_and_not_shown(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    key = world.keys[ATTESTOR]
    config = write_config(
        world, tmp_path, [{"id": 1, "metrics_url": "http://127.0.0.1:1/metrics"}],
        attestor=f'keystore = "{key}"\npassword_env = "ATTESTOR_PASSWORD"',
    )  # fmt: skip
    code, out = run_main(capsys, monkeypatch, {}, "agent", "run", "--once", "--config", str(config))
    assert code == 2
    line = line_of(config, "keystore = ")
    assert f"line {line}, attestor.keystore: looks like a private key (not shown)" in out
    assert key[2:] not in out and key[2:].upper() not in out.upper().replace(" ", "")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda t: t.replace("metrics_url", "metrcs_url"),
            "line {metrcs_url}, node.0.metrcs_url: unknown key",
        ),
        (
            lambda t: t.replace('mode = "post"', 'mode = "both"'),
            "line {mode}, agent.mode: Input should be 'post' or 'write'",
        ),
        (lambda t: t + "\n[extra]\nx = 1\n", "line {[extra]}, extra: unknown key"),
        (
            lambda t: t.replace('key_env = "', 'key_env = "$'),
            "payer.key_env: takes the NAME of an environment variable",
        ),
        (lambda t: t.replace('preset = "vllm"', 'preset = "vlm"'), "unknown metrics preset 'vlm'"),
        (lambda t: t.replace("scrape_interval = 60", "scrape_interval = 0"), "greater than or"),
        (lambda t: t.replace("[payer]", "[payr]"), "line {[payr]}, payr: unknown key"),
    ],
)
def test_config__bad_file__names_line_and_key_exit_2(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, change: Any, message: str,
) -> None:  # fmt: skip
    config = write_config(
        world, tmp_path, [{"id": 1, "metrics_url": "http://127.0.0.1:1/m", "preset": "vllm"}],
        agent={"mode": "post"},
    )  # fmt: skip
    config.write_text(change(config.read_text()))
    code, out = run_main(capsys, monkeypatch, {}, "agent", "run", "--once", "--config", str(config))
    assert code == 2, out
    for name in re.findall(r"\{([^}]+)\}", message):
        message = message.replace("{" + name + "}", str(line_of(config, name)))
    assert message in out, out


def test_config__keys_and_chain_are_checked_before_starting(
    world: World, metrics: Metrics, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    node = world.register()
    nodes = [{"id": node, "metrics_url": metrics.url, "preset": "vllm"}]

    def check(**kwargs: Any) -> str:
        config = write_config(world, tmp_path, nodes, **kwargs)
        code, out = run_main(
            capsys, monkeypatch, world.env, "agent", "check", "--config", str(config)
        )
        assert code == 2, out
        return out

    missing = tmp_path / "nowhere.json"
    out = check(attestor=f'keystore = "{missing}"\npassword_env = "ATTESTOR_PASSWORD"')
    assert f"keystore {missing} does not exist" in out
    out = check(attestor=f'keystore = "{world.keystore}"\npassword_env = "NOT_SET_ANYWHERE"')
    assert "attestor.password_env names NOT_SET_ANYWHERE, which is not set" in out
    stranger = address(world.keys, STRANGER)
    out = check(attestor=f'signer_url = "{world.chain.url}"\naddress = "{stranger}"')
    assert f"node {node}'s attestor on chain is {address(world.keys, ATTESTOR)}" in out
    assert f"the configured attestor is {stranger}" in out
    out = check(payer=f'key_env = "OPERATOR_{STRANGER}_KEY"')
    assert f"the payer {stranger} is neither its operator" in out
    nodes.append({"id": 999, "metrics_url": metrics.url, "preset": "vllm"})
    assert "node 999 is not registered" in check()
    nodes.pop()
    config = write_config(world, tmp_path, nodes)
    code, out, err = run_main_streams(
        capsys, monkeypatch, world.env, "agent", "check", "--config", str(config), "--json"
    )
    assert code == 0, err
    assert json.loads(out)["attestor"] == address(world.keys, ATTESTOR)


def test_run__attestor_mismatch__the_command_exits_2(world: World, tmp_path: Path) -> None:
    metrics = Metrics()
    try:
        node = world.register()
        stranger = address(world.keys, STRANGER)
        config = write_config(
            world, tmp_path, [{"id": node, "metrics_url": metrics.url, "preset": "vllm"}],
            attestor=f'signer_url = "{world.chain.url}"\naddress = "{stranger}"',
        )  # fmt: skip
        proc = subprocess.run(
            ["edgeshare", "agent", "run", "--once", "--config", str(config)],
            capture_output=True, text=True, timeout=120, env={**os.environ, **world.env},
            check=False,
        )  # fmt: skip
    finally:
        metrics.close()
    assert proc.returncode == 2, proc.stderr
    assert "attestor on chain is" in proc.stderr and "the agent did not start" in proc.stderr


# ----------------------------------------------------------------- kills, restarts


def _start_agent(
    config: Path, env: dict[str, str], failpoint: str | None, *, once: bool = True
) -> subprocess.Popen[str]:
    extra = {FAILPOINT_ENV: failpoint} if failpoint else {}
    return subprocess.Popen(
        ["edgeshare", "agent", "run", "--config", str(config), *(["--once"] if once else [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env, **extra},
    )


def _events(stderr: str) -> list[dict[str, Any]]:
    """The agent's log lines (every one must be a JSON object)."""
    return [json.loads(line) for line in stderr.splitlines() if line.strip()]


def test_redeem__a_revoked_app_key_s_voucher_never_blocks_the_others(
    world: World, metrics: Metrics, tmp_path: Path
) -> None:
    """A customer's app key signed the voucher its gateway kept; the customer revoked the
    key and the revocation took effect. The agent leaves that voucher out (it pays nothing
    now) and still redeems the other customer's in the same run; before, the one bad
    signature made every redemption of the node refuse the whole set."""
    suite, keys = world.suite, world.keys
    node = world.register()
    owner = Transactor(suite.w3, Signer.from_key(keys[OWNER]))
    revoker, other = (Transactor(suite.w3, Signer.from_key(keys[i])) for i in (29, 27))
    app = Signer.from_key(keys[28])
    for customer in (revoker, other):
        send_mint_mock(owner, suite, customer.signer.address, 5 * USDC)
        send_deposit(customer, suite, node, 5 * USDC)
    send_authorize_signer(revoker, suite, node, app.address)
    domain = fetch_channels_domain(suite)
    store = VoucherStore(tmp_path / "gateway.db")
    for customer, key in ((revoker, keys[28]), (other, keys[27])):
        who = customer.signer.address
        voucher = Voucher(node_id=node, customer=who, generation=0, cumulative=USDC,
                          deadline=2**40)  # fmt: skip
        signed = sign_voucher(voucher, key, domain)
        use = ChannelUse(units=500, owed_k=USDC * 1_000, cumulative=USDC, deadline=2**40,
                         signature=signed.signature)  # fmt: skip
        store.record(node, who, 0, use)
    store.close()
    send_revoke_signer(revoker, suite, node, app.address)
    advance_time(suite, int(suite.channels.call("CLOSE_GRACE")) + 1)  # the revocation holds
    entry = {"id": node, "metrics_url": metrics.url, "preset": "vllm",
             "gateway_db": str(tmp_path / "gateway.db")}  # fmt: skip
    config = write_config(world, tmp_path, [entry])
    agent = open_in_process(world, config)
    try:
        agent.run_once()
    finally:
        agent.close()
    assert fetch_channel(suite, other.signer.address, node).redeemed == USDC
    assert fetch_channel(suite, revoker.signer.address, node).redeemed == 0
    (mine,) = read_status(load_agent_config(config)).nodes
    assert mine.last_redemption is not None and mine.last_redemption.state == "done"


def test_sigkill_at_every_step__restarts_end_with_the_reports_of_a_run_without_kills(
    world: World, metrics: Metrics, tmp_path: Path
) -> None:
    """One node per scenario (the same metrics for all): a run without kills, and one run
    per failpoint in which every ``--once`` iteration is killed there when it gets there,
    then restarted without the failpoint. Four iterations: two in e0, one in e1 (e0 is
    due; a voucher to redeem), then downtime until e3 (e1 and e2 are due; a new voucher)."""
    interval = 100  # slots of 100 s: a scrape may come late by up to 49 s and stay in its slot
    scenarios: list[str | None] = [None, *FAILPOINTS]
    nodes = {fp: world.register() for fp in scenarios}
    suite, keys = world.suite, world.keys
    customer = Transactor(suite.w3, Signer.from_key(keys[CUSTOMER]))
    for node in nodes.values():
        send_deposit(customer, suite, node, 5 * USDC)
    configs = {}
    for fp, node in nodes.items():
        folder = tmp_path / (fp or "no_kill")
        folder.mkdir()
        entry = {
            "id": node, "metrics_url": metrics.url, "preset": "vllm",
            "gateway_db": str(folder / "gateway.db"),
        }  # fmt: skip
        configs[fp] = write_config(world, folder, [entry], agent={"scrape_interval": interval})
    domain = fetch_channels_domain(suite)

    def give_voucher(cumulative: int) -> None:
        """The gateway of each node took a voucher for ``cumulative`` from the customer."""
        who = address(keys, CUSTOMER)
        for fp, node in nodes.items():
            generation = fetch_channel(suite, who, node).generation
            voucher = Voucher(
                node_id=node, customer=who, generation=generation, cumulative=cumulative,
                deadline=2**40,
            )  # fmt: skip
            signed = sign_voucher(voucher, keys[CUSTOMER], domain)
            store = VoucherStore(tmp_path / (fp or "no_kill") / "gateway.db")
            use = ChannelUse(
                units=cumulative // 2_000, owed_k=cumulative * 1_000, cumulative=cumulative,
                deadline=voucher.deadline, signature=signed.signature,
            )  # fmt: skip
            store.record(node, who, generation, use)
            store.close()

    e0 = world.next_epoch()
    start = world.epoch_start(e0)
    steps = [
        (start + 50, lambda: metrics.serve(5)),
        (start + 150, lambda: metrics.serve(10, 0.3)),
        (start + EPOCH + 50, lambda: (metrics.serve(4, 0.7), give_voucher(USDC))),
        (start + 3 * EPOCH + 50, lambda: (metrics.serve(6), give_voucher(2 * USDC))),
    ]
    kills = dict.fromkeys(FAILPOINTS, 0)
    for at, before in steps:
        before()
        world.mine_at(at)
        running = {fp: _start_agent(configs[fp], world.env, fp) for fp in scenarios}
        again = {}
        for fp, proc in running.items():
            _, err = proc.communicate(timeout=180)
            if fp is not None and proc.returncode == -signal.SIGKILL:
                assert _events(err)[-1] == {**_events(err)[-1], "event": "failpoint", "step": fp}
                kills[fp] += 1
                again[fp] = _start_agent(configs[fp], world.env, None)
            else:
                assert proc.returncode == 0, (fp, err)
        for fp, proc in again.items():
            _, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, (fp, err)
    assert all(kills.values()), kills  # every failpoint was reached
    # e0: 10 at 0.3 s (p50 375 ms), scraped in 2 of 3 slots; e1: 4 at 0.7 s (750 ms), 1
    # slot of 3; e2: no scrape; the 6 served during the downtime belong to e3 (not due)
    expected = {
        e0: {"version": 0, "inferences": 10, "revenue": 20_000, "latency_ms": 375,
             "uptime_bps": 6_666},
        e0 + 1: {"version": 0, "inferences": 4, "revenue": 8_000, "latency_ms": 750,
                 "uptime_bps": 3_333},
        e0 + 2: {"version": 0, "inferences": 0, "revenue": 0, "latency_ms": 0, "uptime_bps": 0},
    }  # fmt: skip
    who = address(keys, CUSTOMER)
    for fp, node in nodes.items():
        assert settled_events(world, node) == expected, fp
        assert fetch_channel(suite, who, node).redeemed == 2 * USDC, fp
        (mine,) = read_status(load_agent_config(configs[fp])).nodes
        assert mine.reports["settled"] == 3 and not mine.pending, fp
        assert mine.last_redemption is not None and mine.last_redemption.state == "done", fp


# ------------------------------------------------------------------------ real time


def test_run__real_time__reports_each_epoch_serves_health_and_stops_on_sigterm(
    world: World, metrics: Metrics, tmp_path: Path
) -> None:
    """A suite with 6-second epochs on a chain mining a block every second, and the agent
    as systemd runs it: no ``--once``, until SIGTERM."""
    keys, operator = world.keys, 29
    owner = Transactor(world.suite.w3, Signer.from_key(keys[OWNER]))
    params = build_params(None, epoch_length=6, challenge_period=3_600, unlock_period=6)
    manifest = tmp_path / "fast.json"
    suite = Suite.load(world.suite.w3, deploy_suite(owner, params, manifest).manifest)
    spec = NodeSpec(
        operator=address(keys, operator), attestor=address(keys, ATTESTOR), shares=10**21,
        price_per_1k=PRICE, operator_cut_bps=1_000, region="Accra",
    )  # fmt: skip
    node = send_register_node(owner, suite, spec)
    send_mint_mock(owner, suite, spec.operator, 100 * USDC)
    fast = World(world.chain, suite, manifest, keys, world.keystore)
    port = get_free_port()
    config = write_config(
        fast, tmp_path, [{"id": node, "metrics_url": metrics.url, "preset": "vllm"}],
        agent={"scrape_interval": 2, "grace": 1, "listen": f"127.0.0.1:{port}"},
        payer=f'key_env = "OPERATOR_{operator}_KEY"',
    )  # fmt: skip
    metrics.serve(1)
    suite.rpc.call("evm_setIntervalMining", [1])
    proc = _start_agent(config, world.env, None, once=False)
    try:
        first = None
        deadline = time.monotonic() + 30
        while first is None and time.monotonic() < deadline:
            time.sleep(0.5)
            if (tmp_path / "agent.db").exists():
                first = read_status(load_agent_config(config)).nodes[0].monitored_from
        assert first is not None, "no scrape in 30 s"
        metrics.serve(3, 0.3)
        deadline = time.monotonic() + 90
        settled: dict[int, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            settled = settled_events(fast, node)
            if len(settled) >= 3 and sum(r["inferences"] for r in settled.values()) == 3:
                break
            time.sleep(1)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        exposed = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        suite.rpc.call("evm_setAutomine", [True])
    assert proc.returncode == 0, err
    assert sum(r["inferences"] for r in settled.values()) == 3, (settled, err[-3000:])
    genesis = int(suite.registry.call("GENESIS"))
    assert sorted(settled) == list(range((first - genesis) // 6, max(settled) + 1))  # none skipped
    assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    assert f'edgeshare_agent_scrapes_total{{node="{node}",result="ok"}}' in exposed
    assert f'edgeshare_agent_reports{{node="{node}",state="settled"}}' in exposed
    events = _events(err)
    names = [e["event"] for e in events]
    for name in ("started", "listening", "scrape", "epoch_built", "report_signed",
                 "reports_posted", "settled"):  # fmt: skip
        assert name in names, name
    stopping = next(e for e in events if e["event"] == "stopping")
    assert stopping["signal"] == "SIGTERM" and names[-1] == "stopped"


def test_config__the_example_in_deploy_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "agent.toml"
    config = load_agent_config(example)
    assert [n.id for n in config.node] == [1, 2, 3]
    assert config.node[2].get_spec().success_labels == {"model": "llama-3-8b"}
    assert config.agent.mode == "post" and config.payer is not None
