"""The wheel, installed as a user installs it: a clean virtualenv outside the repository,
its dependencies from the package index, no Vyper, no brownie; then that venv's
``edgeshare`` deploys, registers a node, signs a usage report, posts it and claims on a
local anvil.

The wheel is built the way ``make dist`` builds it, from a copy of the files a wheel is
made of, so the test neither writes into the working tree nor races a ``make dist``.
pip resolves the wheel's own (ranged) dependencies, constrained to requirements.lock:
the versions the rest of the suite is tested with, and mostly in pip's cache already.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from edgeshare.artifacts import load_artifact
from edgeshare.chain import LocalChain, build_dev_keys, connect, find_engine
from edgeshare.reports import split
from edgeshare.signer import Signer
from edgeshare.suite import send_increase_time

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EPOCH, CHALLENGE, UNLOCK = 60, 3_600, 60
PRICE_PER_1K = 450_000  # base units per 1,000 inferences
OPERATOR_CUT_BPS = 1_500
INFERENCES = 20_000
DEPLOYER, OPERATOR, ATTESTOR, PAYER = range(4)
# what the venv must not hold: the wheel's point is to run without them
DEV_ONLY = ("vyper", "brownie", "pytest", "hypothesis", "solcx")


def _run(
    cmd: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _clean_env(venv: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a user with only this venv: no PYTHONPATH, no dev .venv on PATH."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), "/usr/local/bin", "/usr/bin", "/bin"])
    return {**env, **(extra or {})}


def build_wheel(out: Path, staging: Path) -> Path:
    """``make dist``'s ``pip wheel`` on a copy of src/, pyproject.toml, README and LICENSE."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(ROOT / "src", staging / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, staging / name)
    _ok(
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--wheel-dir",
                str(out),
                str(staging),
            ],
            env={**os.environ},
            cwd=staging,
        )
    )
    (wheel,) = out.glob("edgeshare-*.whl")
    return wheel


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv outside the repository with the freshly built wheel installed."""
    base = tmp_path_factory.mktemp("wheel")
    assert not base.resolve().is_relative_to(ROOT)
    wheel = build_wheel(base / "dist", base / "staging")
    venv = base / "venv"
    # the interpreter the dev .venv was made from, without the dev .venv's packages
    python = getattr(sys, "_base_executable", sys.executable)
    _ok(_run([python, "-m", "venv", str(venv)], env=_clean_env(venv), cwd=base))
    _ok(
        _run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--constraint",
                str(ROOT / "requirements.lock"),
                str(wheel),
            ],
            env=_clean_env(venv),
            cwd=base,
        )
    )
    return venv


@pytest.fixture(scope="module")
def chain() -> Iterator[LocalChain]:
    with LocalChain("anvil", accounts=4) as local:  # anvil runs with a temporary HOME
        yield local


def test_wheel__carries_the_compiled_contracts_and_no_dev_tools(venv: Path, tmp_path: Path) -> None:
    probe = (
        "import importlib.util, json, edgeshare\n"
        "from edgeshare.artifacts import load_artifact\n"
        "a = load_artifact('NodeRegistry', 'shanghai')\n"
        f"missing = [m for m in {DEV_ONLY!r} if importlib.util.find_spec(m) is None]\n"
        "from edgeshare.web.api import get_static_dir\n"
        "web = {p.name: p.read_text() for p in get_static_dir().iterdir()}\n"
        "print(json.dumps({'file': edgeshare.__file__, 'bytecode': a.bytecode,"
        " 'missing': missing, 'web': web}))\n"
    )
    out = json.loads(
        _ok(_run([str(venv / "bin" / "python"), "-c", probe], env=_clean_env(venv), cwd=tmp_path))
    )
    assert Path(out["file"]).is_relative_to(venv)  # the installed copy, not src/
    assert out["bytecode"] == load_artifact("NodeRegistry", "shanghai").bytecode
    assert out["missing"] == list(DEV_ONLY)
    # the web app's built front end ships inside (no Node.js at run time)
    static = ROOT / "src" / "edgeshare" / "web" / "static"
    assert out["web"] == {p.name: p.read_text() for p in static.iterdir()}
    assert {"index.html", "app.js", "app.css"} <= set(out["web"])
    vyper = _run(
        [str(venv / "bin" / "python"), "-c", "import vyper"], env=_clean_env(venv), cwd=tmp_path
    )
    assert vyper.returncode != 0 and "No module named 'vyper'" in vyper.stderr


def test_wheel_cli__deploys_registers_signs_posts_and_claims(
    venv: Path, chain: LocalChain, tmp_path: Path
) -> None:
    keys = build_dev_keys(4)
    addresses = [Signer.from_key(k).address for k in keys]
    env = _clean_env(venv, {f"KEY_{i}": k for i, k in enumerate(keys)})
    manifest = tmp_path / "manifest.json"
    where = ["--rpc-url", chain.url, "--manifest", str(manifest)]

    def cli(*args: str, key: int | None = None) -> Any:
        signer = ["--private-key-env", f"KEY_{key}"] if key is not None else []
        cmd = [str(venv / "bin" / "edgeshare"), *args, *where, *signer, "--json"]
        return json.loads(_ok(_run(cmd, env=env, cwd=tmp_path)) or "null")

    cli(
        "deploy",
        "--epoch-length",
        str(EPOCH),
        "--challenge-period",
        str(CHALLENGE),
        "--unlock-period",
        str(UNLOCK),
        key=DEPLOYER,
    )
    contracts = json.loads(manifest.read_text())["contracts"]
    w3 = connect(chain.url)
    for name in ("NodeRegistry", "RevenueRouter"):
        code = bytes(w3.eth.get_code(Web3.to_checksum_address(contracts[name])))
        assert code.startswith(bytes.fromhex(load_artifact(name).bytecode_runtime[2:]))

    (tmp_path / "nodes.yaml").write_text(
        "nodes:\n"
        "  - external_id: wheel-node-01\n"
        f"    operator: {addresses[OPERATOR]}\n"
        f"    attestor: {addresses[ATTESTOR]}\n"
        "    shares: 1000\n"  # whole shares
        f"    price_per_1k: {PRICE_PER_1K} base\n"
        f"    operator_cut_bps: {OPERATOR_CUT_BPS}\n"
        "    region: Lagos\n"
    )
    cli("nodes", "register", str(tmp_path / "nodes.yaml"), key=DEPLOYER)

    # the chain's side of the story: the payer's stablecoin, and time passing
    revenue = INFERENCES * PRICE_PER_1K // 1_000
    mock = w3.eth.contract(
        address=Web3.to_checksum_address(contracts["Stablecoin"]),
        abi=load_artifact("MockStablecoin").abi,
    )
    mint = mock.functions.mint(addresses[PAYER], revenue)
    w3.eth.wait_for_transaction_receipt(mint.transact({"from": addresses[DEPLOYER]}))
    send_increase_time(w3, 2 * EPOCH)

    usage = tmp_path / "usage.csv"
    usage.write_text(f"node_id,epoch,inferences,latency_ms,uptime_bps\n1,0,{INFERENCES},40,9990\n")
    reports = tmp_path / "reports.json"
    cli("attest", "sign", str(usage), "--attestor-key-env", f"KEY_{ATTESTOR}", "-o", str(reports))
    (signed,) = json.loads(reports.read_text())["reports"]
    assert signed["revenue"] == revenue

    posted = cli("attest", "post", str(reports), key=PAYER)
    assert (posted["settled"], int(posted["revenue"])) == (1, revenue)
    assert int(mock.functions.balanceOf(addresses[PAYER]).call()) == 0

    send_increase_time(w3, CHALLENGE + EPOCH)
    finalized = cli("attest", "finalize", str(reports), key=PAYER)
    assert finalized["finalized"] == 1
    send_increase_time(w3, UNLOCK + EPOCH)

    before = int(mock.functions.balanceOf(addresses[OPERATOR]).call())
    claimed = cli("claim", key=OPERATOR)
    after = int(mock.functions.balanceOf(addresses[OPERATOR]).call())
    assert [c["node_id"] for c in claimed["claims"]] == [1]
    assert after - before == int(claimed["total"]) > 0
    # the operator holds every share, so all of the holders' part is theirs (rounded down)
    fee_bps = int(json.loads(manifest.read_text())["params"]["protocol_fee_bps"])
    _, _, holders = split(revenue, fee_bps, OPERATOR_CUT_BPS)
    assert holders - 1 <= int(claimed["total"]) <= holders


def test_sdk_guide_example__runs_with_the_wheel(venv: Path, tmp_path: Path) -> None:
    """docs/SDK.md's example, as written, in the clean venv (it starts its own anvil)."""
    guide = (ROOT / "docs" / "SDK.md").read_text()
    section = guide.split("## A whole round on a local anvil", 1)[1].split("\n## ", 1)[0]
    (example,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    (tmp_path / "example.py").write_text(example)
    anvil_dir = str(Path(find_engine("anvil")[0]).parent)
    env = _clean_env(venv)
    env["PATH"] = os.pathsep.join([env["PATH"], anvil_dir])
    out = _ok(_run([str(venv / "bin" / "python"), "example.py"], env=env, cwd=tmp_path))
    assert "settled 1 report(s), 9000000 base units" in out
    assert re.search(r"node 1: claimed (7199999|7200000) base units", out)  # floor dust
    # the CSV's epoch row: epoch, its date, node, inferences, then amounts in USDC (the
    # revenue, of it from the usage report and from channels, cut, fee, holders)
    row = (
        r"\n0,\d{4}-\d\d-\d\d \d\d:\d\d UTC,1,20000,9\.000000,9\.000000,0\.000000,"
        r"1\.350000,0\.450000,7\.200000,40,"
    )
    assert re.search(row + r"99\.90%,finalized", out), out
