"""Deploying the suite, idempotently, from and into a manifest.

Order: Stablecoin (the mock, on local chains only, unless one is given), the NodeShare
blueprint, NodeRegistry, RevenueRouter, then the one-time link registry -> router. The
manifest is rewritten after every step, so a run that dies halfway is finished by the
next run. A manifest address is reused only if the code there is the code we would
deploy; anything else there is an error, never silently replaced.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import rlp  # type: ignore[import-untyped]
from eth_abi.abi import encode
from hexbytes import HexBytes
from pydantic import ValidationError
from web3 import Web3

from edgeshare.artifacts import (
    BLUEPRINT_PREAMBLE,
    EvmVersion,
    get_evm_version_for,
    load_artifact,
)
from edgeshare.chain import is_local_chain_id
from edgeshare.errors import ChainMismatch, DeploymentError, InputError, NotLocalChain
from edgeshare.models import ContractAddresses, DeployParams, Manifest, PendingDeployment
from edgeshare.tx import Transactor

MOCK_NAME, MOCK_SYMBOL, MOCK_DECIMALS = "Mock USD", "mUSD", 6
ZERO_ADDRESS = "0x" + "00" * 20

Action = Literal["deployed", "reused", "recovered", "linked", "would deploy", "would link"]


@dataclass(frozen=True)
class DeployStep:
    """What happened (or, in a dry run, would happen) to one contract."""

    contract: str
    action: Action
    address: str | None = None
    gas_used: int | None = None


@dataclass(frozen=True)
class DeployResult:
    """The manifest after deployment and the steps taken."""

    manifest: Manifest
    steps: list[DeployStep]
    path: Path


def get_default_manifest_path(chain_id: int) -> Path:
    """``deployments/<chain_id>.json`` under the current directory."""
    return Path("deployments") / f"{chain_id}.json"


def read_manifest(path: Path) -> Manifest | None:
    """The manifest at ``path``, or None if there is none; a malformed one is an error."""
    if not path.exists():
        return None
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InputError(f"manifest {path} is invalid: {problems}") from None


def write_manifest(manifest: Manifest, path: Path) -> None:
    """Write atomically: a crash leaves the old manifest or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n")
    tmp.replace(path)


def build_params(existing: Manifest | None, **overrides: Any) -> DeployParams:
    """The parameters to deploy with: the manifest's, changed by explicit overrides.

    An override that contradicts a manifest's recorded parameter is an error: the
    deployed contracts hold it immutably.
    """
    base = existing.params.model_dump() if existing else DeployParams().model_dump()
    for name, value in overrides.items():
        if value is None:
            continue
        if name not in DeployParams.model_fields:
            raise InputError(f"unknown deployment parameter {name!r}")
        if existing is not None and existing.params.model_dump()[name] is not None:
            old = existing.params.model_dump()[name]
            if str(old).lower() != str(value).lower():
                raise InputError(
                    f"{name} = {value} contradicts the manifest ({old}); the deployed "
                    "contracts cannot change it. Use another --manifest to deploy a new suite."
                )
        base[name] = value
    try:
        return DeployParams.model_validate(base)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise InputError(f"invalid {field}: {err['msg']}") from None


def _encode_args(abi: list[dict[str, Any]], args: list[Any]) -> bytes:
    ctor = next((item for item in abi if item["type"] == "constructor"), None)
    types = [i["type"] for i in ctor["inputs"]] if ctor else []
    return encode(types, args)


def _has_expected_code(w3: Web3, address: str, contract: str, evm: EvmVersion) -> bool:
    code = bytes(w3.eth.get_code(Web3.to_checksum_address(address)))
    if not code:
        return False
    if contract == "NodeShareBlueprint":
        expected = BLUEPRINT_PREAMBLE + bytes(HexBytes(load_artifact("NodeShare", evm).bytecode))
        if code != expected:
            raise DeploymentError(f"{address} holds a different NodeShare blueprint")
        return True
    name = {"Stablecoin": "MockStablecoin"}.get(contract, contract)
    runtime = bytes(HexBytes(load_artifact(name, evm).bytecode_runtime))
    if not code.startswith(runtime):
        raise DeploymentError(f"the manifest's {contract} at {address} holds other code")
    return True


def get_create_address(sender: str, nonce: int) -> str:
    """The address of the contract that ``sender`` creates with ``nonce``."""
    encoded = rlp.encode([bytes(HexBytes(sender)), nonce])
    return Web3.to_checksum_address(Web3.keccak(encoded)[12:])


def _find_pending(
    tx: Transactor, pending: PendingDeployment, contract: str, evm: EvmVersion
) -> str | None:
    """The contract an interrupted run created, waiting while its creation is in flight;
    None when that nonce never created it (nothing was mined, or something else was)."""
    w3, sender = tx.w3, Web3.to_checksum_address(tx.signer.address)
    deadline = time.monotonic() + tx.timeout
    while int(w3.eth.get_transaction_count(sender, "latest")) <= pending.nonce:
        if int(w3.eth.get_transaction_count(sender, "pending")) <= pending.nonce:
            return None  # never reached the chain, or dropped: the nonce is free again
        if time.monotonic() > deadline:
            raise DeploymentError(
                f"the {contract} creation sent with nonce {pending.nonce} by an earlier run is "
                f"still not mined after {tx.timeout:.0f}s; run deploy again later"
            )
        time.sleep(0.5)
    if _has_expected_code(w3, pending.address, contract, evm):
        return pending.address
    return None


def deploy_suite(
    tx: Transactor,
    params: DeployParams,
    manifest_path: Path,
    *,
    dry_run: bool = False,
    on_step: Callable[[DeployStep], None] | None = None,
) -> DeployResult:
    """Deploy whatever of the suite the manifest at ``manifest_path`` lacks.

    Args:
        tx: Sends as the deployer, who ends up holding owner, registrar and guardian.
        params: Parameters; ``build_params`` reconciles them with an existing manifest.
        manifest_path: Read if present, rewritten after every step.
        dry_run: Report what would be deployed; send nothing, write nothing.
        on_step: Called after each step (for progress output).

    Returns:
        The final manifest and the steps.
    """
    w3 = tx.w3
    chain_id = tx.chain_id
    existing = read_manifest(manifest_path)
    if existing is not None and existing.chain_id != chain_id:
        raise ChainMismatch(
            f"manifest {manifest_path} is for chain {existing.chain_id}, "
            f"but the node is chain {chain_id}"
        )
    use_mock = params.stablecoin is None
    if use_mock and not is_local_chain_id(chain_id):
        raise NotLocalChain(
            f"chain {chain_id} is not a local chain: the mock stablecoin is for local "
            "chains only; pass --stablecoin with the real stablecoin's address"
        )
    if not use_mock and not w3.eth.get_code(Web3.to_checksum_address(str(params.stablecoin))):
        raise InputError(f"--stablecoin {params.stablecoin} has no code on chain {chain_id}")
    treasury = params.treasury or tx.signer.address
    evm: EvmVersion = params.evm_version or get_evm_version_for(str(w3.client_version))
    params = params.model_copy(
        update={"treasury": Web3.to_checksum_address(treasury), "evm_version": evm}
    )

    addresses = dict(existing.contracts.model_dump()) if existing else {}
    if not use_mock:
        addresses["Stablecoin"] = params.stablecoin
    block = existing.block if existing else 0
    pending = existing.pending if existing else None
    steps: list[DeployStep] = []
    redeployed = False  # once a contract is new, everything built on it is new too

    def record(step: DeployStep) -> None:
        steps.append(step)
        if on_step:
            on_step(step)

    def save() -> Manifest:
        manifest = Manifest(
            chain_id=chain_id,
            deployer=existing.deployer if existing else tx.signer.address,
            block=block,
            params=params,
            contracts=ContractAddresses(**addresses),
            stablecoin_is_mock=use_mock,
            pending=pending,
        )
        if not dry_run:
            write_manifest(manifest, manifest_path)
        return manifest

    def ensure(contract: str, build: Callable[[], bytes]) -> None:
        nonlocal redeployed, block, pending
        current = addresses.get(contract)
        if current and not redeployed and _has_expected_code(w3, current, contract, evm):
            record(DeployStep(contract, "reused", current))
            return
        if pending is not None and pending.contract == contract and not dry_run:
            # an earlier run was stopped after sending this creation: find what it made
            found = _find_pending(tx, pending, contract, evm)
            pending = None
            if found:
                addresses[contract] = found
                save()
                record(DeployStep(contract, "recovered", found))
                return
        redeployed = True
        if dry_run:
            addresses[contract] = None
            record(DeployStep(contract, "would deploy"))
            return
        nonce = tx.peek_nonce()
        pending = PendingDeployment(
            contract=contract, address=get_create_address(tx.signer.address, nonce), nonce=nonce
        )
        save()  # before sending: a kill after the send can then find the contract
        address, receipt = tx.deploy(build(), f"deploy {contract}")
        addresses[contract] = address
        block = int(receipt["blockNumber"])
        pending = None
        save()
        record(DeployStep(contract, "deployed", address, int(receipt["gasUsed"])))

    def ctor(name: str, *args: Any) -> Callable[[], bytes]:
        def build() -> bytes:
            artifact = load_artifact(name, evm)
            return bytes(HexBytes(artifact.bytecode)) + _encode_args(artifact.abi, list(args))

        return build

    if use_mock:
        ensure("Stablecoin", ctor("MockStablecoin", MOCK_NAME, MOCK_SYMBOL, MOCK_DECIMALS))
    else:
        record(DeployStep("Stablecoin", "reused", str(params.stablecoin)))
    ensure(
        "NodeShareBlueprint",
        lambda: bytes(HexBytes(load_artifact("NodeShare", evm).blueprint_bytecode)),
    )
    ensure(
        "NodeRegistry",
        lambda: ctor(
            "NodeRegistry",
            addresses["NodeShareBlueprint"],
            params.epoch_length,
            params.unlock_period,
        )(),
    )
    ensure(
        "RevenueRouter",
        lambda: ctor(
            "RevenueRouter",
            addresses["NodeRegistry"],
            addresses["Stablecoin"],
            params.protocol_fee_bps,
            params.treasury,
            params.challenge_period,
        )(),
    )
    manifest = save()

    if dry_run and redeployed:
        record(DeployStep("NodeRegistry.set_router", "would link"))
        return DeployResult(manifest, steps, manifest_path)
    registry = w3.eth.contract(
        address=Web3.to_checksum_address(str(addresses["NodeRegistry"])),
        abi=load_artifact("NodeRegistry").abi,
    )
    linked = registry.functions.router().call()
    if linked == ZERO_ADDRESS:
        if dry_run:
            record(DeployStep("NodeRegistry.set_router", "would link"))
        else:
            fn = registry.functions.set_router(addresses["RevenueRouter"])
            receipt = tx.call(fn, "link the registry to the router")
            block = int(receipt["blockNumber"])
            manifest = save()
            record(
                DeployStep("NodeRegistry.set_router", "linked", addresses["RevenueRouter"],
                           int(receipt["gasUsed"]))
            )  # fmt: skip
    elif linked != addresses["RevenueRouter"]:
        raise DeploymentError(
            f"NodeRegistry {addresses['NodeRegistry']} is linked to router {linked}, "
            f"not to the manifest's {addresses['RevenueRouter']}"
        )
    return DeployResult(manifest, steps, manifest_path)
