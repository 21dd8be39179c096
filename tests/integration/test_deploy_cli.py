"""`edgeshare deploy`, run as a user runs it: the installed command, its own anvil."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.models import Manifest

KEY_VAR = "EDGESHARE_TEST_DEPLOYER_KEY"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        ["edgeshare", *args], capture_output=True, text=True, env=full_env, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def anvil() -> Iterator[LocalChain]:
    with LocalChain("anvil") as chain:
        yield chain


@pytest.fixture(scope="module")
def testnet_like() -> Iterator[LocalChain]:
    """An anvil that says it is Sepolia."""
    with LocalChain("anvil", chain_id=11155111) as chain:
        yield chain


@pytest.fixture
def deployer_env() -> dict[str, str]:
    return {KEY_VAR: build_dev_keys(1)[0]}


def _nonce(chain: LocalChain, address: str) -> int:
    return int(connect(chain.url).eth.get_transaction_count(Web3.to_checksum_address(address)))


def test_deploy__writes_manifest_with_every_contract(
    anvil: LocalChain, tmp_path: Path, deployer_env: dict[str, str]
) -> None:
    manifest_path = tmp_path / "m.json"
    result = run_cli(
        "deploy",
        "--rpc-url",
        anvil.url,
        "--private-key-env",
        KEY_VAR,
        "--manifest",
        str(manifest_path),
        "--epoch-length",
        "600",
        "--protocol-fee-bps",
        "250",
        "--json",
        env=deployer_env,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    manifest = Manifest.model_validate_json(manifest_path.read_text())
    assert out["manifest"] == json.loads(manifest_path.read_text())
    assert manifest.chain_id == 31337
    assert manifest.params.epoch_length == 600 and manifest.params.protocol_fee_bps == 250
    assert manifest.params.treasury == manifest.deployer
    assert manifest.stablecoin_is_mock and manifest.is_complete()
    w3 = connect(anvil.url)
    for name, address in manifest.contracts.model_dump().items():
        assert w3.eth.get_code(address), f"{name} has no code"
    assert manifest.block == w3.eth.block_number
    registry = w3.eth.contract(address=manifest.contracts.NodeRegistry, abi=_abi("NodeRegistry"))
    for role in ("owner", "registrar", "guardian"):
        assert getattr(registry.functions, role)().call() == manifest.deployer
    assert registry.functions.router().call() == manifest.contracts.RevenueRouter
    assert registry.functions.EPOCH_LENGTH().call() == 600
    router = w3.eth.contract(address=manifest.contracts.RevenueRouter, abi=_abi("RevenueRouter"))
    assert router.functions.channels().call() == manifest.contracts.PaymentChannels
    assert registry.functions.CLAIMER().call() == manifest.contracts.PortfolioClaimer
    assert [s["action"] for s in out["steps"]] == ["deployed"] * 11 + ["linked"] * 2


def _abi(name: str) -> Any:
    from edgeshare.artifacts import load_artifact

    return load_artifact(name).abi


def test_deploy__second_run__reuses_everything_and_sends_nothing(
    anvil: LocalChain, tmp_path: Path, deployer_env: dict[str, str]
) -> None:
    manifest_path = tmp_path / "m.json"
    args = [
        "deploy",
        "--rpc-url",
        anvil.url,
        "--private-key-env",
        KEY_VAR,
        "--manifest",
        str(manifest_path),
        "--json",
    ]
    assert run_cli(*args, env=deployer_env).returncode == 0
    first = manifest_path.read_text()
    deployer = json.loads(first)["deployer"]
    nonce = _nonce(anvil, deployer)
    again = run_cli(*args, env=deployer_env)
    assert again.returncode == 0, again.stderr
    assert [s["action"] for s in json.loads(again.stdout)["steps"]] == ["reused"] * 11
    assert _nonce(anvil, deployer) == nonce
    assert manifest_path.read_text() == first


def test_deploy__missing_contract__is_redeployed_with_what_depends_on_it(
    anvil: LocalChain, tmp_path: Path, deployer_env: dict[str, str]
) -> None:
    manifest_path = tmp_path / "m.json"
    args = [
        "deploy",
        "--rpc-url",
        anvil.url,
        "--private-key-env",
        KEY_VAR,
        "--manifest",
        str(manifest_path),
        "--json",
    ]
    assert run_cli(*args, env=deployer_env).returncode == 0
    data = json.loads(manifest_path.read_text())
    kept_coin, kept_blueprint = (
        data["contracts"]["Stablecoin"],
        data["contracts"]["NodeShareBlueprint"],
    )
    data["contracts"]["NodeRegistry"] = None  # as if the run died before deploying it
    data["contracts"]["RevenueRouter"] = None
    manifest_path.write_text(json.dumps(data))
    result = run_cli(*args, env=deployer_env)
    assert result.returncode == 0, result.stderr
    steps = [(s["contract"], s["action"]) for s in json.loads(result.stdout)["steps"]]
    assert steps == [
        ("Stablecoin", "reused"),
        ("NodeShareBlueprint", "reused"),
        ("PortfolioClaimer", "reused"),
        ("NodeRegistry", "deployed"),
        ("RevenueRouter", "deployed"),
        ("PaymentChannels", "deployed"),  # built on the new router
        ("BasketBlueprint", "deployed"),  # everything after a new contract is new
        ("BasketFactory", "deployed"),
        ("ShareMarket", "deployed"),
        ("ShareOfferingBlueprint", "deployed"),
        ("OfferingFactory", "deployed"),
        ("NodeRegistry.set_router", "linked"),
        ("RevenueRouter.set_channels", "linked"),
    ]
    final = Manifest.model_validate_json(manifest_path.read_text())
    assert (final.contracts.Stablecoin, final.contracts.NodeShareBlueprint) == (
        kept_coin,
        kept_blueprint,
    )
    assert final.is_complete()


def test_deploy__dry_run__sends_and_writes_nothing(
    anvil: LocalChain, tmp_path: Path, deployer_env: dict[str, str]
) -> None:
    manifest_path = tmp_path / "m.json"
    deployer = Web3().eth.account.from_key(deployer_env[KEY_VAR]).address
    nonce = _nonce(anvil, deployer)
    result = run_cli(
        "deploy",
        "--rpc-url",
        anvil.url,
        "--private-key-env",
        KEY_VAR,
        "--manifest",
        str(manifest_path),
        "--dry-run",
        "--json",
        env=deployer_env,
    )
    assert result.returncode == 0, result.stderr
    assert {s["action"] for s in json.loads(result.stdout)["steps"]} == {
        "would deploy",
        "would link",
    }
    assert not manifest_path.exists()
    assert _nonce(anvil, deployer) == nonce


def test_deploy__mock_stablecoin_on_non_local_chain__refused_with_nothing_sent(
    testnet_like: LocalChain, tmp_path: Path, deployer_env: dict[str, str]
) -> None:
    manifest_path = tmp_path / "m.json"
    result = run_cli(
        "deploy",
        "--rpc-url",
        testnet_like.url,
        "--private-key-env",
        KEY_VAR,
        "--manifest",
        str(manifest_path),
        env=deployer_env,
    )
    assert result.returncode == 2
    assert "chain 11155111 is not a local chain" in result.stderr
    assert "--stablecoin" in result.stderr
    assert not manifest_path.exists()
    assert connect(testnet_like.url).eth.block_number == 0


def test_deploy__missing_key_variable__exit_2_and_nothing_sent(
    anvil: LocalChain, tmp_path: Path
) -> None:
    block = connect(anvil.url).eth.block_number
    env = {k: v for k, v in os.environ.items() if k != "EDGESHARE_NO_SUCH_KEY"}
    result = subprocess.run(
        [
            "edgeshare",
            "deploy",
            "--rpc-url",
            anvil.url,
            "--private-key-env",
            "EDGESHARE_NO_SUCH_KEY",
            "--manifest",
            str(tmp_path / "m.json"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "EDGESHARE_NO_SUCH_KEY is not set" in result.stderr
    assert connect(anvil.url).eth.block_number == block
    assert not (tmp_path / "m.json").exists()


def test_deploy__remote_chain_without_any_key__exit_2(anvil: LocalChain, tmp_path: Path) -> None:
    result = run_cli("deploy", "--rpc-url", anvil.url, "--manifest", str(tmp_path / "m.json"))
    assert result.returncode == 2
    assert "no signing key" in result.stderr


def test_deploy__key_never_appears_in_output(
    anvil: LocalChain, tmp_path: Path, deployer_env: dict[str, str]
) -> None:
    key = deployer_env[KEY_VAR]
    result = run_cli(
        "deploy",
        "--rpc-url",
        anvil.url,
        "--private-key-env",
        KEY_VAR,
        "--manifest",
        str(tmp_path / "m.json"),
        env=deployer_env,
    )
    assert result.returncode == 0, result.stderr
    bad = run_cli(
        "deploy",
        "--rpc-url",
        anvil.url,
        "--private-key-env",
        KEY_VAR,
        "--manifest",
        str(tmp_path / "m.json"),
        env={KEY_VAR: key[:-2]},
    )
    assert bad.returncode == 2 and "not hold a valid" in bad.stderr
    for text in (result.stdout, result.stderr, bad.stdout, bad.stderr):
        assert key[2:].lower() not in text.lower()
        assert key[2:-2].lower() not in text.lower()


def test_deploy__manifest_of_another_chain__exit_2(
    anvil: LocalChain, tmp_path: Path, deployer_env: dict[str, str]
) -> None:
    manifest_path = tmp_path / "m.json"
    assert (
        run_cli(
            "deploy",
            "--rpc-url",
            anvil.url,
            "--private-key-env",
            KEY_VAR,
            "--manifest",
            str(manifest_path),
            env=deployer_env,
        ).returncode
        == 0
    )
    data = json.loads(manifest_path.read_text())
    data["chain_id"] = 5
    manifest_path.write_text(json.dumps(data))
    result = run_cli(
        "deploy",
        "--rpc-url",
        anvil.url,
        "--private-key-env",
        KEY_VAR,
        "--manifest",
        str(manifest_path),
        env=deployer_env,
    )
    assert result.returncode == 2
    assert "is for chain 5" in result.stderr


def test_deploy__parameter_contradicting_manifest__exit_2(
    anvil: LocalChain, tmp_path: Path, deployer_env: dict[str, str]
) -> None:
    manifest_path = tmp_path / "m.json"
    base = [
        "deploy",
        "--rpc-url",
        anvil.url,
        "--private-key-env",
        KEY_VAR,
        "--manifest",
        str(manifest_path),
    ]
    assert run_cli(*base, env=deployer_env).returncode == 0
    result = run_cli(*base, "--epoch-length", "60", env=deployer_env)
    assert result.returncode == 2
    assert "epoch_length = 60 contradicts the manifest (86400)" in result.stderr


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--protocol-fee-bps", "2001", "protocol_fee_bps"),
        ("--epoch-length", "0", "epoch_length"),
        ("--treasury", "0xAbCdEf0000000000000000000000000000000001", "invalid EIP-55 checksum"),
        ("--stablecoin", "0x1234", "not a 0x-prefixed address"),
    ],
)
def test_deploy__bad_parameter__exit_2_before_touching_the_chain(
    anvil: LocalChain,
    tmp_path: Path,
    deployer_env: dict[str, str],
    flag: str,
    value: str,
    message: str,
) -> None:
    block = connect(anvil.url).eth.block_number
    result = run_cli(
        "deploy",
        "--rpc-url",
        anvil.url,
        "--private-key-env",
        KEY_VAR,
        "--manifest",
        str(tmp_path / "m.json"),
        flag,
        value,
        env=deployer_env,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert connect(anvil.url).eth.block_number == block


def test_deploy__no_target__starts_and_stops_its_own_anvil(tmp_path: Path) -> None:
    result = run_cli("deploy", "--manifest", str(tmp_path / "m.json"))
    assert result.returncode == 0, result.stderr
    assert "NodeRegistry" in result.stdout
    assert "has been stopped" in result.stderr
    assert Manifest.model_validate_json((tmp_path / "m.json").read_text()).is_complete()


def test_deploy__on_ganache(tmp_path: Path) -> None:
    result = run_cli(
        "deploy", "--network", "ganache", "--manifest", str(tmp_path / "m.json"), "--json"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["manifest"]["chain_id"] == 1337
