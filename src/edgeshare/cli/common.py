"""Options and plumbing shared by every command: where the chain is, who signs."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from web3 import Web3

from edgeshare.chain import ENGINES, LocalChain, build_dev_keys, connect, get_network_url
from edgeshare.config import Settings, load_settings
from edgeshare.deploy import get_default_manifest_path, read_manifest
from edgeshare.errors import InputError, KeyUnavailable
from edgeshare.signer import Signer, load_signer_from_env, load_signer_from_keystore
from edgeshare.suite import Suite
from edgeshare.tx import Transactor

RpcUrl = Annotated[
    str | None,
    typer.Option(
        "--rpc-url",
        help="JSON-RPC URL of the chain (default: $EDGESHARE_RPC_URL, else $ETH_RPC_URL).",
        show_default=False,
    ),
]
Network = Annotated[
    str | None,
    typer.Option(
        "--network",
        help="anvil or ganache (started locally), or a network of edgeshare.toml "
        "(or of brownie's config).",
        show_default=False,
    ),
]
PrivateKeyEnv = Annotated[
    str | None,
    typer.Option(
        "--private-key-env",
        help="Name of the environment variable holding the private key.",
        show_default=False,
    ),
]
Keystore = Annotated[
    Path | None,
    typer.Option(
        "--keystore",
        help="Encrypted JSON keystore; password from EDGESHARE_KEYSTORE_PASSWORD or a prompt.",
        show_default=False,
    ),
]
ManifestPath = Annotated[
    Path | None,
    typer.Option(
        "--manifest",
        help="Manifest path (default: deployments/<chain_id>.json).",
        show_default=False,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Check and simulate every transaction, send nothing; print what would be sent "
        "and its gas.",
    ),
]
BaseUnits = Annotated[
    bool,
    typer.Option("--base-units", help="Amounts are typed in base units, not whole tokens."),
]
Confirmations = Annotated[
    int, typer.Option("--confirmations", min=1, help="Blocks to wait for after each transaction.")
]


@dataclass(frozen=True)
class Target:
    """Where a command will run: a URL, or a local engine to start."""

    url: str | None
    engine: str | None
    settings: Settings = field(default_factory=Settings)
    """What the environment and edgeshare.toml say."""

    @property
    def is_started_here(self) -> bool:
        """True when the command starts (and stops) the chain itself."""
        return self.engine is not None


def build_target(rpc_url: str | None, network: str | None, *, start_local: bool = True) -> Target:
    """Resolve ``--rpc-url``/``--network``; with neither, a local anvil is started.

    Commands that act on an existing suite pass ``start_local=False``: a chain started
    for them would hold no suite.
    """
    if rpc_url and network:
        raise InputError("give --rpc-url or --network, not both")
    settings = load_settings()
    if rpc_url:
        return Target(url=rpc_url, engine=None, settings=settings)
    if network is None and settings.rpc_url:
        return Target(url=settings.rpc_url, engine=None, settings=settings)
    if network in ENGINES or (network is None and start_local):
        if not start_local:
            raise InputError(f"--network {network} starts a new, empty chain; give --rpc-url")
        return Target(url=None, engine=network or "anvil", settings=settings)
    if network is None:
        raise InputError(
            "give --rpc-url URL or --network NAME of the chain the suite is on "
            "(or set EDGESHARE_RPC_URL)"
        )
    named = settings.get_network(network, os.environ)
    url = named.rpc_url if named else get_network_url(network)
    return Target(url=url, engine=None, settings=settings)


DbUrl = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Index database: sqlite:///PATH (or a plain path) or postgresql://USER@HOST/DB "
        "(default: sqlite:///index/<chain_id>.db).",
        show_default=False,
    ),
]


def get_index_depth(network: str | None, given: int | None = None) -> int | None:
    """Blocks the index stays behind the head: ``given`` (``--confirmations``), else the
    named network's ``confirmations`` in edgeshare.toml, else None (the index's default)."""
    if given is not None or network is None:
        return given
    found = load_settings().networks.get(network)
    return found.confirmations if found else None


@contextmanager
def open_suite(rpc_url: str | None, network: str | None, manifest: Path | None) -> Iterator[Suite]:
    """Connect to an existing chain and bind the manifest's suite."""
    target = build_target(rpc_url, network, start_local=False)
    with open_chain(target) as w3:
        yield load_suite(w3, manifest)


@contextmanager
def open_sender(
    rpc_url: str | None,
    network: str | None,
    private_key_env: str | None,
    keystore: Path | None,
    manifest: Path | None,
    confirmations: int,
    dry_run: bool = False,
) -> Iterator[tuple[Suite, Transactor]]:
    """For commands that send: the key is loaded before the chain is touched, then the
    manifest's suite and a Transactor for that key (one that only simulates when
    ``dry_run``; the command prints ``tx.planned`` with ``console.print_planned``)."""
    target = build_target(rpc_url, network, start_local=False)
    signer = load_signer(private_key_env, keystore, target)
    with open_chain(target) as w3:
        tx = Transactor(
            w3,
            signer,
            confirmations,
            max_fee_per_gas=target.settings.max_fee_per_gas,
            dry_run=dry_run,
        )
        yield load_suite(w3, manifest), tx


def load_suite(w3: Web3, manifest: Path | None) -> Suite:
    """The suite of the manifest (default ``deployments/<chain_id>.json``)."""
    path = manifest or get_default_manifest_path(int(w3.eth.chain_id))
    found = read_manifest(path)
    if found is None:
        raise InputError(f"no manifest at {path}: deploy first, or pass --manifest")
    return Suite.load(w3, found)


def load_signer(private_key_env: str | None, keystore: Path | None, target: Target) -> Signer:
    """The signing key: from an env var or keystore; a chain started here has dev keys."""
    if private_key_env and keystore:
        raise KeyUnavailable("give --private-key-env or --keystore, not both")
    if private_key_env:
        return load_signer_from_env(private_key_env)
    if keystore:
        return load_signer_from_keystore(keystore, target.settings.keystore_password)
    if target.is_started_here:
        return Signer.from_key(build_dev_keys(1)[0])
    raise KeyUnavailable("no signing key: pass --private-key-env VAR or --keystore FILE")


@contextmanager
def open_chain(target: Target) -> Iterator[Web3]:
    """Connect to the target, starting and finally stopping a local engine if needed."""
    timeout = target.settings.rpc_timeout
    if target.engine is None:
        yield connect(str(target.url), timeout)
        return
    with LocalChain(target.engine) as chain:  # type: ignore[arg-type]
        yield connect(chain.url, timeout)


def get_option_error(exc: ValidationError, options: Mapping[str, str]) -> InputError:
    """A settings model's first validation error as the command-line option it came from
    (``options``: field name -> option; else ``--field-name``), with pydantic's prefix off."""
    first = exc.errors()[0]
    name = str(first["loc"][0]) if first["loc"] else ""
    option = options.get(name, "--" + name.replace("_", "-"))
    message = str(first["msg"]).removeprefix("Value error, ")
    return InputError(f"{option}: {message}")
