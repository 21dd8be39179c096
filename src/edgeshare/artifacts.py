"""Compiled contracts: ABI, init code and blueprint init code, shipped as package data.

Every deployment goes through here, whoever asks (CLI, brownie scripts, demo, tests).
Nothing is compiled at run time and nothing looks for a source checkout: the JSON under
``edgeshare/compiled/<evm_version>/<Name>.json`` is read with ``importlib.resources``, so
an installed wheel works anywhere and Vyper is not a runtime dependency.

The JSON is generated from ``contracts/`` by ``make artifacts``
(``python -m edgeshare._build_artifacts``, which needs the ``dev`` extra for Vyper) and
committed. It is committed rather than generated at install time so that
``pip install git+https://...`` and a plain ``pip install .`` work without Vyper and
without running make; ``tests/unit/test_artifacts.py`` compiles ``contracts/`` again
and fails when the committed JSON is stale, so the code on chain is always what the
sources say.

Contracts are built for ``cancun`` (transient storage makes each reentrancy lock cost
~200 gas instead of ~5,000 with a storage lock) on anvil, testnets and mainnet. Ganache
7.9.2 implements nothing newer than ``shanghai``, so a suite deployed there is built for
``shanghai``; the manifest records which. The ABI is the same for both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal, get_args

from edgeshare.errors import ArtifactError

EvmVersion = Literal["cancun", "shanghai"]
EVM_VERSIONS: tuple[EvmVersion, ...] = get_args(EvmVersion)
DEFAULT_EVM_VERSION: EvmVersion = "cancun"
GANACHE_EVM_VERSION: EvmVersion = "shanghai"  # Ganache 7.9.2 implements shanghai at most
CONTRACTS = {
    "NodeShare": "NodeShare.vy",
    "NodeRegistry": "NodeRegistry.vy",
    "RevenueRouter": "RevenueRouter.vy",
    "PaymentChannels": "PaymentChannels.vy",
    "PortfolioClaimer": "PortfolioClaimer.vy",
    "Basket": "Basket.vy",
    "BasketFactory": "BasketFactory.vy",
    "ShareMarket": "ShareMarket.vy",
    "ShareOffering": "ShareOffering.vy",
    "OfferingFactory": "OfferingFactory.vy",
    "MockStablecoin": "testing/MockStablecoin.vy",
}
"""The contracts shipped compiled: name -> source path under ``contracts/``."""
PACKAGE_DATA_DIR = "compiled"
"""The package-data folder of ``edgeshare`` that holds the compiled JSON."""
ARTIFACT_FIELDS = ("abi", "bytecode", "blueprint_bytecode", "bytecode_runtime")
"""The compiler outputs each artifact carries (Vyper's output format names)."""


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
    """The source checkout this module sits in, when it sits in one (``src/edgeshare/..``).

    Only used to find a checkout's own ``node_modules`` engines; artifacts never need it.
    In an installed wheel the path is simply somewhere without ``node_modules``.
    """
    return Path(__file__).resolve().parents[2]


def get_artifact_relpath(name: str, evm_version: EvmVersion) -> str:
    """Where ``name`` built for ``evm_version`` lives under the package-data folder."""
    return f"{evm_version}/{name}.json"


def get_package_data_dir() -> Traversable:
    """The package-data folder with the compiled JSON (inside the installed package)."""
    return resources.files("edgeshare").joinpath(PACKAGE_DATA_DIR)


def get_evm_version_for(client_version: str) -> EvmVersion:
    """The EVM version to build for on a node that calls itself ``client_version``."""
    return (
        GANACHE_EVM_VERSION if client_version.lower().startswith("ganache") else DEFAULT_EVM_VERSION
    )


@cache
def load_artifact(name: str, evm_version: EvmVersion = DEFAULT_EVM_VERSION) -> Artifact:
    """Read one of the suite's compiled contracts from the package data.

    Args:
        name: A key of ``CONTRACTS``, e.g. ``"NodeRegistry"``.
        evm_version: ``cancun`` (default) or ``shanghai`` (Ganache).

    Returns:
        The contract's ABI, init code, blueprint code and runtime code.

    Raises:
        ArtifactError: An unknown name or EVM version, or package data that is missing
            or unreadable (a broken install).
    """
    if name not in CONTRACTS:
        raise ArtifactError(f"unknown contract {name!r}; known: {', '.join(CONTRACTS)}")
    if evm_version not in EVM_VERSIONS:
        raise ArtifactError(
            f"unknown EVM version {evm_version!r}; known: {', '.join(EVM_VERSIONS)}"
        )
    relpath = get_artifact_relpath(name, evm_version)
    try:
        data = json.loads(get_package_data_dir().joinpath(relpath).read_text(encoding="utf-8"))
        fields = {key: data[key] for key in ARTIFACT_FIELDS}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(
            f"compiled contract edgeshare/{PACKAGE_DATA_DIR}/{relpath} is missing or "
            f"unreadable ({type(exc).__name__}: {exc}); reinstall edgeshare, or in a "
            "checkout run `make artifacts`"
        ) from None
    return Artifact(name=name, **fields)
