"""Compiled contracts: ABI, init code and blueprint init code, compiled from ``contracts/``.

Every deployment goes through here, whoever asks (CLI, brownie scripts, demo, tests),
so the code on chain is always what the sources say. Output is cached in
``build/edgeshare/`` under a key made of the compiler version, the settings and the
content of every source file, so an edited contract is never deployed stale.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from edgeshare.errors import ArtifactError

EVM_VERSION = "shanghai"  # Ganache 7.9.2 implements shanghai at most
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


def _source_key(contracts_dir: Path) -> str:
    import vyper

    digest = hashlib.sha256(f"{vyper.__version__}|{EVM_VERSION}".encode())
    for path in sorted(contracts_dir.rglob("*.vy*")):
        digest.update(path.relative_to(contracts_dir).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _compile(contracts_dir: Path, relpath: str) -> dict[str, Any]:
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
            settings=Settings(evm_version=EVM_VERSION),
            output_formats=["abi", "bytecode", "blueprint_bytecode", "bytecode_runtime"],
        )
    except VyperException as exc:
        raise ArtifactError(f"cannot compile {relpath}: {exc}") from exc
    return out


@cache
def load_artifact(name: str) -> Artifact:
    """Compile (or read from the cache) one of the suite's contracts.

    Args:
        name: A key of ``CONTRACTS``, e.g. ``"NodeRegistry"``.

    Returns:
        The contract's ABI, init code and blueprint code.
    """
    if name not in CONTRACTS:
        raise ArtifactError(f"unknown contract {name!r}; known: {', '.join(CONTRACTS)}")
    contracts_dir = get_contracts_dir()
    cache_dir = get_project_root() / "build" / "edgeshare" / _source_key(contracts_dir)
    cached = cache_dir / f"{name}.json"
    if cached.exists():
        data = json.loads(cached.read_text())
    else:
        out = _compile(contracts_dir, CONTRACTS[name])
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
