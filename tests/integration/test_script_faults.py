"""The tools when a process or a chain dies halfway, or the RPC endpoint misbehaves.

Each test runs the installed ``edgeshare`` command (or the library call it makes) the
way an operator would, breaks something in the middle, runs it again, and checks that
nothing was lost and nothing was done twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from web3 import Web3

from edgeshare.attestation import sign
from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.deploy import build_params, deploy_suite, read_manifest
from edgeshare.errors import TransactionFailed
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

EPOCH = 60
PRICE = 3_000
KEYS = build_dev_keys(4)
DEPLOYER, PAYER = KEYS[0], KEYS[3]
SUITE_TXS = 13  # eleven contract creations and the two links


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["edgeshare", *args], capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "DEPLOYER_KEY": DEPLOYER, "PAYER_KEY": PAYER, **(env or {})},
    )  # fmt: skip


def _tx_count(url: str, key: str) -> int:
    return int(connect(url).eth.get_transaction_count(Signer.from_key(key).address, "latest"))


def _assert_one_suite(url: str, manifest_path: Path) -> None:
    """The manifest is complete, its contracts hold code, and the deployer sent exactly
    the transactions of one suite: no duplicate contract exists anywhere."""
    manifest = read_manifest(manifest_path)
    assert manifest is not None and manifest.is_complete() and manifest.pending is None
    w3 = connect(url)
    for address in manifest.contracts.model_dump().values():
        assert w3.eth.get_code(address)
    assert _tx_count(url, DEPLOYER) == SUITE_TXS


# ------------------------------------------------------------------- crash mid-deploy


def test_deploy_killed_after_sending__next_run_adopts_what_it_created(tmp_path: Path) -> None:
    """The process dies between sending the registry's creation and writing it down."""
    path = tmp_path / "m.json"
    with LocalChain("anvil") as chain:
        tx = Transactor(connect(chain.url), Signer.from_key(DEPLOYER))
        real_deploy = tx.deploy
        calls: list[str] = []

        def deploy_then_die(data: str | bytes, what: str) -> Any:
            calls.append(what)
            result = real_deploy(data, what)
            if what == "deploy NodeRegistry":
                raise KeyboardInterrupt  # killed before the manifest records it
            return result

        tx.deploy = deploy_then_die  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt):
            deploy_suite(tx, build_params(None, epoch_length=EPOCH), path)
        interrupted = read_manifest(path)
        assert interrupted is not None and interrupted.pending is not None
        assert interrupted.pending.contract == "NodeRegistry"
        assert interrupted.contracts.NodeRegistry is None

        again = deploy_suite(
            Transactor(connect(chain.url), Signer.from_key(DEPLOYER)),
            build_params(interrupted, epoch_length=EPOCH),
            path,
        )
        actions = {step.contract: step.action for step in again.steps}
        assert actions["NodeRegistry"] == "recovered"
        assert again.manifest.contracts.NodeRegistry == interrupted.pending.address
        _assert_one_suite(chain.url, path)


@pytest.mark.parametrize("kill_after", [1, 2, 3])
def test_deploy_process_killed__rerun_finishes_without_duplicates(
    kill_after: int, tmp_path: Path
) -> None:
    """`edgeshare deploy` is SIGKILLed once the manifest names ``kill_after`` contracts
    (blocks come every second, so creations are in flight at that moment)."""
    path = tmp_path / "m.json"
    with LocalChain("anvil", block_time=1) as chain:
        args = ["deploy", "--rpc-url", chain.url, "--private-key-env", "DEPLOYER_KEY",
                "--manifest", str(path), "--epoch-length", str(EPOCH)]  # fmt: skip
        proc = subprocess.Popen(
            ["edgeshare", *args], env={**os.environ, "DEPLOYER_KEY": DEPLOYER},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            manifest = read_manifest(path) if path.exists() else None
            known = sum(
                1 for a in (manifest.contracts.model_dump().values() if manifest else ()) if a
            )
            if known >= kill_after:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        rerun = run_cli(*args, "--json")
        assert rerun.returncode == 0, rerun.stderr
        _assert_one_suite(chain.url, path)


def test_chain_killed_mid_deploy__restarted_from_its_dump__rerun_finishes(tmp_path: Path) -> None:
    path, state = tmp_path / "m.json", tmp_path / "state.json"
    chain = LocalChain("anvil", extra_args=("--dump-state", str(state)))
    with chain:
        tx = Transactor(connect(chain.url), Signer.from_key(DEPLOYER))
        real_deploy = tx.deploy

        def deploy_until_chain_dies(data: str | bytes, what: str) -> Any:
            if what == "deploy RevenueRouter":
                chain.stop()  # anvil writes its state dump as it exits
            return real_deploy(data, what)

        tx.deploy = deploy_until_chain_dies  # type: ignore[method-assign]
        with pytest.raises(Exception, match=r"(?i)connect|refused|chain|unavailable"):
            deploy_suite(tx, build_params(None, epoch_length=EPOCH), path)
    assert state.exists()
    with LocalChain("anvil", extra_args=("--load-state", str(state))) as restarted:
        assert _tx_count(restarted.url, DEPLOYER) == 4  # what was mined before the kill
        rerun = run_cli("deploy", "--rpc-url", restarted.url, "--private-key-env",
                        "DEPLOYER_KEY", "--manifest", str(path), "--json")  # fmt: skip
        assert rerun.returncode == 0, rerun.stderr
        steps = {s["contract"]: s["action"] for s in json.loads(rerun.stdout)["steps"]}
        assert steps["NodeRegistry"] == "reused" and steps["RevenueRouter"] == "deployed"
        _assert_one_suite(restarted.url, path)


# --------------------------------------------------------------------- crash mid-post


@dataclass
class PostWorld:
    manifest: Path
    reports: Path
    count: int
    revenue: int


def _build_post_world(url: str, tmp: Path, nodes: int, epochs: int) -> PostWorld:
    """A suite with ``nodes`` nodes and a file of ``nodes * epochs`` signed reports."""
    w3 = connect(url)
    issuer = Transactor(w3, Signer.from_key(DEPLOYER))
    manifest = tmp / "m.json"
    params = build_params(None, epoch_length=EPOCH, challenge_period=3_600)
    suite = Suite.load(w3, deploy_suite(issuer, params, manifest).manifest)
    attestor = Signer.from_key(KEYS[2])
    for _ in range(nodes):
        spec = NodeSpec(
            operator=Signer.from_key(KEYS[1]).address, attestor=attestor.address,
            shares=10**18, price_per_1k=PRICE, operator_cut_bps=500, region="Manila",
        )  # fmt: skip
        send_register_node(issuer, suite, spec)
    send_mint_mock(issuer, suite, Signer.from_key(PAYER).address, 10**18)
    send_increase_time(w3, (epochs + 1) * EPOCH)
    domain = fetch_domain_of(suite)
    deadline = int(w3.eth.get_block("latest")["timestamp"]) + 30 * 86_400
    reports = [
        sign(UsageReport(node_id=n, epoch=e, inferences=500 + e, revenue=(500 + e) * PRICE // 1000,
                         latency_ms=35, uptime_bps=9_950, deadline=deadline), KEYS[2], domain)
        for n in range(1, nodes + 1) for e in range(epochs)
    ]  # fmt: skip
    path = tmp / "reports.json"
    write_reports_file(path, domain, reports)
    return PostWorld(manifest, path, len(reports), sum(r.revenue for r in reports))


def _settled_events(url: str, manifest: Path) -> list[tuple[int, int]]:
    """(node, epoch) of every UsageSettled event on the chain."""
    w3 = connect(url)
    m = read_manifest(manifest)
    assert m is not None
    from edgeshare.artifacts import load_artifact

    abi = load_artifact("RevenueRouter").abi
    router = w3.eth.contract(address=m.contracts.RevenueRouter, abi=abi)  # type: ignore[call-overload]
    logs = router.events.UsageSettled().get_logs(from_block=0)
    return [(log["args"]["node_id"], log["args"]["epoch"]) for log in logs]


def _claimable(url: str, manifest: Path, holder: str, nodes: int) -> int:
    m = read_manifest(manifest)
    assert m is not None
    suite = Suite.load(connect(url), m)
    return sum(int(suite.share(n).call("claimable", holder)) for n in range(1, nodes + 1))


def _coin_balance(url: str, manifest: Path, who: str) -> int:
    m = read_manifest(manifest)
    assert m is not None
    return int(Suite.load(connect(url), m).stablecoin.call("balanceOf", who))


def test_chain_killed_mid_post__restarted_from_dump__rerun_settles_exactly_the_rest(
    tmp_path: Path,
) -> None:
    """1,000 reports posted 10 per transaction into 1-second blocks that hold 6 of them;
    the chain is stopped partway (dumping its state) and the poster killed; after the
    restart a second run settles the missing reports and nothing twice."""
    state = tmp_path / "state.json"
    payer = Signer.from_key(PAYER).address
    # a zero base fee: full blocks do not price the queued settlements out (that is
    # test_chain_faults.py's subject), so the crash lands at a predictable point
    no_fee = ("--block-base-fee-per-gas", "0")
    chain = LocalChain("anvil", extra_args=("--dump-state", str(state), *no_fee))
    with chain:
        world = _build_post_world(chain.url, tmp_path, nodes=10, epochs=100)
        paid_before = _coin_balance(chain.url, world.manifest, payer)
        start_nonce = _tx_count(chain.url, PAYER)
        w3 = connect(chain.url)
        w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
        w3.provider.make_request("evm_setBlockGasLimit", [hex(3_000_000)])  # type: ignore[arg-type]
        w3.provider.make_request("evm_setIntervalMining", [1])  # type: ignore[arg-type]
        proc = subprocess.Popen(
            ["edgeshare", "attest", "post", str(world.reports), "--rpc-url", chain.url,
             "--private-key-env", "PAYER_KEY", "--manifest", str(world.manifest),
             "--batch-size", "10"],
            env={**os.environ, "PAYER_KEY": PAYER},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 180
        while _tx_count(chain.url, PAYER) < start_nonce + 40 and time.monotonic() < deadline:
            time.sleep(0.2)
        chain.stop()
        proc.kill()
        proc.wait()
    with LocalChain("anvil", extra_args=("--load-state", str(state), *no_fee)) as restarted:
        # anvil's dump keeps the blocks but not the clock offset the setup added
        w3 = connect(restarted.url)
        behind = int(w3.eth.get_block("latest")["timestamp"]) - int(time.time())
        if behind > 0:
            send_increase_time(w3, behind + 1)
        before = _settled_events(restarted.url, world.manifest)
        assert 0 < len(before) < world.count, "the crash did not land partway"
        rerun = run_cli("attest", "post", str(world.reports), "--rpc-url", restarted.url,
                        "--private-key-env", "PAYER_KEY", "--manifest", str(world.manifest),
                        "--batch-size", "10", "--json")  # fmt: skip
        assert rerun.returncode == 0, rerun.stderr
        result = json.loads(rerun.stdout)
        assert result["already_settled"] == len(before)
        assert result["settled"] == world.count - len(before)
        after = _settled_events(restarted.url, world.manifest)
        assert len(after) == len(set(after)) == world.count  # none twice, none lost
        spent = paid_before - _coin_balance(restarted.url, world.manifest, payer)
        assert spent == world.revenue  # paid once per report


# ------------------------------------------------------------------------ flaky RPC


@dataclass
class Faults:
    """What the proxy does to requests, by their sequence number."""

    permanent: bool = False
    lose_sends_only: bool = False
    """Only lose the reply of every other eth_sendRawTransaction, nothing else."""
    seen: int = 0
    done: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def pick(self, body: bytes) -> str:
        if self.lose_sends_only and b"eth_sendRawTransaction" not in body:
            return "ok"
        with self.lock:
            self.seen += 1
            n = self.seen
        if self.permanent:
            return "503"
        if self.lose_sends_only:
            kind = {2: "lost-reply"}
        else:
            kind = {5: "503", 11: "429", 13: "json-rate-limit", 37: "slow", 29: "lost-reply"}
        for every, name in kind.items():
            if n % every == 0:
                with self.lock:
                    self.done[name] = self.done.get(name, 0) + 1
                return name
        return "ok"


def _start_proxy(upstream: str, faults: Faults) -> tuple[ThreadingHTTPServer, str]:
    class Proxy(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            fault = faults.pick(body)
            if fault in ("503", "429"):
                self.send_response(int(fault))
                self.end_headers()
                return
            if fault == "json-rate-limit":
                error = {"code": -32005, "message": "rate limit exceeded, slow down"}
                reply = json.dumps({"jsonrpc": "2.0", "id": None, "error": error}).encode()
                self._reply(reply)
                return
            if fault == "slow":
                time.sleep(1.5)  # longer than the client waits; never forwarded
                self._reply(b"{}")
                return
            upstream_reply = requests.post(
                upstream, data=body, headers={"Content-Type": "application/json"}, timeout=60
            ).content
            if fault == "lost-reply":  # the node did it, the caller never hears
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self._reply(upstream_reply)

        def _reply(self, data: bytes) -> None:
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def flaky_world(tmp_path: Path) -> Iterator[tuple[LocalChain, PostWorld]]:
    with LocalChain("anvil") as chain:
        yield chain, _build_post_world(chain.url, tmp_path, nodes=4, epochs=10)


def test_flaky_rpc__deploy_post_and_claim_finish_with_everything_exactly_once(
    flaky_world: tuple[LocalChain, PostWorld], tmp_path: Path
) -> None:
    chain, world = flaky_world
    faults = Faults()
    server, url = _start_proxy(chain.url, faults)
    env = {"EDGESHARE_RPC_TIMEOUT": "1"}
    try:
        other = str(tmp_path / "other.json")
        deployed = run_cli("deploy", "--rpc-url", url, "--private-key-env", "DEPLOYER_KEY",
                           "--manifest", other, "--json", env=env)  # fmt: skip
        assert deployed.returncode == 0, deployed.stderr
        posted = run_cli("attest", "post", str(world.reports), "--rpc-url", url,
                         "--private-key-env", "PAYER_KEY", "--manifest", str(world.manifest),
                         "--batch-size", "5", "--json", env=env)  # fmt: skip
        assert posted.returncode == 0, posted.stderr
        send_increase_time(connect(chain.url), 3_600)  # the challenge window passes
        finalized = run_cli("attest", "finalize", str(world.reports), "--rpc-url", url,
                            "--private-key-env", "PAYER_KEY", "--manifest", str(world.manifest),
                            env=env)  # fmt: skip
        assert finalized.returncode == 0, finalized.stderr
        send_increase_time(connect(chain.url), 86_400)  # and the revenue vests
        owed = _claimable(chain.url, world.manifest, Signer.from_key(KEYS[1]).address, 4)
        claimed = run_cli("claim", "--rpc-url", url, "--private-key-env", "OPERATOR_KEY",
                          "--manifest", str(world.manifest), "--json",
                          env={**env, "OPERATOR_KEY": KEYS[1]})  # fmt: skip
        assert claimed.returncode == 0, claimed.stderr
    finally:
        server.shutdown()
    # every kind of fault happened, and still: one suite, every report settled once
    assert set(faults.done) == {"503", "429", "json-rate-limit", "slow", "lost-reply"}
    assert json.loads(posted.stdout)["settled"] == world.count
    settled = _settled_events(chain.url, world.manifest)
    assert len(settled) == len(set(settled)) == world.count
    other = read_manifest(tmp_path / "other.json")
    assert other is not None and other.is_complete()
    # the payer sent the approval and one transaction per 5 reports, nothing more
    # (and one finalize per node); the operator got exactly what it was owed
    assert _tx_count(chain.url, PAYER) == 1 + world.count // 5 + 4
    operator = Signer.from_key(KEYS[1]).address
    assert _coin_balance(chain.url, world.manifest, operator) == owed > 0


def test_rpc_failing_for_good__clear_message_nonzero_exit_nothing_sent(
    flaky_world: tuple[LocalChain, PostWorld],
) -> None:
    chain, world = flaky_world
    server, url = _start_proxy(chain.url, Faults(permanent=True))
    secret_url = url + "/v3/SECRET-API-KEY"
    try:
        started = time.monotonic()
        posted = run_cli("attest", "post", str(world.reports), "--rpc-url", secret_url,
                         "--private-key-env", "PAYER_KEY",
                         "--manifest", str(world.manifest))  # fmt: skip
        took = time.monotonic() - started
    finally:
        server.shutdown()
    assert posted.returncode == 1
    assert "error:" in posted.stderr and "Traceback" not in posted.stderr
    assert "503" in posted.stderr or "kept failing" in posted.stderr or "reach" in posted.stderr
    assert "SECRET-API-KEY" not in posted.stderr + posted.stdout
    assert took > 5  # it retried with backoff before giving up
    assert _tx_count(chain.url, PAYER) == 0
    assert _settled_events(chain.url, world.manifest) == []


def test_txs_sent_through_a_lost_reply_are_not_sent_twice(tmp_path: Path) -> None:
    """A signed transaction whose reply is lost is retried; the node answers "already
    known" or "nonce too low" about that same transaction, which is success."""
    with LocalChain("anvil") as chain:
        faults = Faults(lose_sends_only=True)
        server, url = _start_proxy(chain.url, faults)
        try:
            tx = Transactor(connect(url, timeout=1), Signer.from_key(DEPLOYER))
            for i in range(8):
                tx.send({"to": Web3.to_checksum_address("0x" + "42" * 20), "value": i}, "pay")
        finally:
            server.shutdown()
        assert faults.done.get("lost-reply", 0) >= 4  # every other send's first reply
        assert _tx_count(chain.url, DEPLOYER) == 8
        received = connect(chain.url).eth.get_balance(Web3.to_checksum_address("0x" + "42" * 20))
        assert received == sum(range(8))  # each payment made once


def test_no_receipt_ever__names_the_transaction(tmp_path: Path) -> None:
    with LocalChain("anvil") as chain:
        w3 = connect(chain.url)
        w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
        tx = Transactor(w3, Signer.from_key(DEPLOYER), timeout=2)
        with pytest.raises(TransactionFailed, match="no receipt for 0x"):
            tx.send({"to": Web3.to_checksum_address("0x" + "42" * 20), "value": 1}, "pay")
