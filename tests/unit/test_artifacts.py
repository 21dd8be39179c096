"""The compiled contracts shipped as package data (src/edgeshare/compiled): what
``load_artifact`` returns, and that the committed JSON is what contracts/ compiles to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeshare import _build_artifacts as builder
from edgeshare.artifacts import (
    CONTRACTS,
    EVM_VERSIONS,
    get_evm_version_for,
    get_package_data_dir,
    load_artifact,
)
from edgeshare.errors import ArtifactError


@pytest.fixture(scope="module")
def built() -> dict[str, str]:
    """What ``make artifacts`` would write now, compiled from contracts/ with Vyper."""
    return builder.build_artifacts()


def test_committed_artifacts__match_what_contracts_compile_to(built: dict[str, str]) -> None:
    """Fails when a contract changed and `make artifacts` was not run (and committed)."""
    stale = builder.find_stale(built)
    assert stale == [], f"stale package data {stale}: run `make artifacts` and commit the result"
    assert len(built) == len(CONTRACTS) * len(EVM_VERSIONS)


def test_find_stale__names_changed_missing_and_extra_files(
    built: dict[str, str], tmp_path: Path
) -> None:
    assert builder.write_artifacts(built, tmp_path) == sorted(built)
    assert builder.find_stale(built, tmp_path) == []
    changed, missing = sorted(built)[:2]
    (tmp_path / changed).write_text(built[changed].replace('"bytecode": "0x', '"bytecode": "0x00'))
    (tmp_path / missing).unlink()
    (tmp_path / "cancun" / "Removed.json").write_text("{}\n")
    assert builder.find_stale(built, tmp_path) == sorted([changed, missing, "cancun/Removed.json"])
    assert builder.main(["--check", "--out", str(tmp_path)]) == 1
    assert builder.write_artifacts(built, tmp_path) == sorted(
        [changed, missing, "cancun/Removed.json"]
    )
    assert not (tmp_path / "cancun" / "Removed.json").exists()
    assert builder.main(["--check", "--out", str(tmp_path)]) == 0


@pytest.mark.parametrize("evm_version", EVM_VERSIONS)
@pytest.mark.parametrize("name", CONTRACTS)
def test_load_artifact__reads_the_package_data(name: str, evm_version: str) -> None:
    artifact = load_artifact(name, evm_version)  # type: ignore[arg-type]
    data = json.loads(
        get_package_data_dir().joinpath(f"{evm_version}/{name}.json").read_text(encoding="utf-8")
    )
    assert (artifact.name, data["evm_version"], data["source"]) == (
        name,
        evm_version,
        f"contracts/{CONTRACTS[name]}",
    )
    assert artifact.abi == data["abi"] and artifact.abi
    for code in (artifact.bytecode, artifact.blueprint_bytecode, artifact.bytecode_runtime):
        assert code.startswith("0x") and len(code) > 2
        bytes.fromhex(code[2:])
    # a blueprint's code is the EIP-5202 preamble and the init code (deploy.py checks it)
    assert artifact.blueprint_bytecode.endswith("fe7100" + artifact.bytecode[2:])


@pytest.mark.parametrize("name", CONTRACTS)
def test_evm_versions__share_the_abi_not_the_code(name: str) -> None:
    cancun, shanghai = load_artifact(name, "cancun"), load_artifact(name, "shanghai")
    assert cancun.abi == shanghai.abi
    assert cancun.bytecode != shanghai.bytecode


def test_load_artifact__refuses_unknown_names_and_evm_versions() -> None:
    with pytest.raises(ArtifactError, match="unknown contract 'Nope'"):
        load_artifact("Nope")
    with pytest.raises(ArtifactError, match="unknown EVM version 'prague'"):
        load_artifact("NodeShare", "prague")  # type: ignore[arg-type]


def test_get_evm_version_for__builds_for_shanghai_on_ganache_only() -> None:
    assert get_evm_version_for("Ganache/v7.9.2/EthereumJS TestRPC/v7.9.2/ethereum-js") == (
        "shanghai"
    )
    assert get_evm_version_for("anvil/v1.4.1") == "cancun"
