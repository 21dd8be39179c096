"""Compiled contracts: ABI, init code and blueprint init code, compiled from ``contracts/``.

Every deployment goes through here, whoever asks (CLI, brownie scripts, demo, tests),
so the code on chain is always what the sources say. Output is cached in
``build/edgeshare/`` under a key made of the compiler version, the settings and the
content of every source file, so an edited contract is never deployed stale.

Contracts are built for ``cancun`` (transient storage makes each reentrancy lock cost
~200 gas instead of ~5,000 with a storage lock) on anvil, testnets and mainnet. Ganache
7.9.2 implements nothing newer than ``shanghai``, so a suite deployed there is built for
``shanghai``; the manifest records which. The ABI is the same for both.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from edgeshare.errors import ArtifactError

EvmVersion = Literal["cancun", "shanghai"]
DEFAULT_EVM_VERSION: EvmVersion = "cancun"
GANACHE_EVM_VERSION: EvmVersion = "shanghai"  # Ganache 7.9.2 implements shanghai at most
CONTRACTS = {
    "NodeShare": "NodeShare.vy",
    "NodeRegistry": "NodeRegistry.vy",
    "RevenueRouter": "RevenueRouter.vy",
    "MockStablecoin": "testing/MockStablecoin.vy",
}


@dataclass(frozen=True)
class Artifact:
    """One compiled contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    """Init code, 0x-prefixed."""
    blueprint_bytecode: str
    """EIP-5202 blueprint deployment code, 0x-prefixed."""
    bytecode_runtime: str
    """Runtime code without immutables, 0x-prefixed: deployed code starts with it."""


BLUEPRINT_PREAMBLE = bytes.fromhex("fe7100")  # EIP-5202, version 0, no data section


def get_project_root() -> Path:
    """The repository root (holds ``contracts/``); ``EDGESHARE_ROOT`` overrides it."""
    env = os.environ.get("EDGESHARE_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[2]


def get_contracts_dir() -> Path:
    """Where the Vyper sources are."""
    path = get_project_root() / "contracts"
    if not path.is_dir():
        raise ArtifactError(f"contract sources not found at {path}; set EDGESHARE_ROOT")
    return path


def _source_key(contracts_dir: Path, evm_version: EvmVersion) -> str:
    import vyper

    digest = hashlib.sha256(f"{vyper.__version__}|{evm_version}".encode())
    for path in sorted(contracts_dir.rglob("*.vy*")):
        digest.update(path.relative_to(contracts_dir).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _compile(contracts_dir: Path, relpath: str, evm_version: EvmVersion) -> dict[str, Any]:
    from vyper.compiler import compile_from_file_input
    from vyper.compiler.input_bundle import FilesystemInputBundle
    from vyper.compiler.settings import Settings
    from vyper.exceptions import VyperException

    bundle = FilesystemInputBundle([contracts_dir])
    try:
        file_input = bundle.load_file(contracts_dir / relpath)
        out: dict[str, Any] = compile_from_file_input(
            file_input,
            input_bundle=bundle,
            settings=Settings(evm_version=evm_version),
            output_formats=["abi", "bytecode", "blueprint_bytecode", "bytecode_runtime"],
        )
    except VyperException as exc:
        raise ArtifactError(f"cannot compile {relpath}: {exc}") from exc
    return out


def get_evm_version_for(client_version: str) -> EvmVersion:
    """The EVM version to build for on a node that calls itself ``client_version``."""
    return (
        GANACHE_EVM_VERSION if client_version.lower().startswith("ganache") else DEFAULT_EVM_VERSION
    )


@cache
def load_artifact(name: str, evm_version: EvmVersion = DEFAULT_EVM_VERSION) -> Artifact:
    """Compile (or read from the cache) one of the suite's contracts.

    Args:
        name: A key of ``CONTRACTS``, e.g. ``"NodeRegistry"``.
        evm_version: ``cancun`` (default) or ``shanghai`` (Ganache).

    Returns:
        The contract's ABI, init code and blueprint code.
    """
    if name not in CONTRACTS:
        raise ArtifactError(f"unknown contract {name!r}; known: {', '.join(CONTRACTS)}")
    if evm_version not in ("cancun", "shanghai"):
        raise ArtifactError(f"unknown EVM version {evm_version!r}; known: cancun, shanghai")
    contracts_dir = get_contracts_dir()
    cache_dir = get_project_root() / "build" / "edgeshare" / _source_key(contracts_dir, evm_version)
    cached = cache_dir / f"{name}.json"
    if cached.exists():
        data = json.loads(cached.read_text())
    else:
        out = _compile(contracts_dir, CONTRACTS[name], evm_version)
        data = {
            "name": name,
            "abi": out["abi"],
            "bytecode": out["bytecode"],
            "blueprint_bytecode": out["blueprint_bytecode"],
            "bytecode_runtime": out["bytecode_runtime"],
        }
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(cached)
    return Artifact(**data)
