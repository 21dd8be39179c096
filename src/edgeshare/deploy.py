"""Deploying the suite, idempotently, from and into a manifest.

Order: Stablecoin (the mock, on local chains only, unless one is given), the NodeShare
blueprint, PortfolioClaimer, NodeRegistry, RevenueRouter, PaymentChannels, the Basket blueprint
and BasketFactory, ShareMarket, the ShareOffering blueprint and OfferingFactory, then the
one-time links
registry -> router and router -> channels. The
manifest is rewritten after every step, so a run that dies halfway is finished by the
next run. A manifest address is reused only if the code there is the code we would
deploy; anything else there is an error, never silently replaced.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import rlp  # type: ignore[import-untyped]
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
from edgeshare.contracts import Reader, get_codec
from edgeshare.errors import ChainMismatch, DeploymentError, InputError, NotLocalChain
from edgeshare.models import (
    ContractAddresses,
    DeployParams,
    Manifest,
    PendingDeployment,
    read_text_file,
)
from edgeshare.rpc import get_rpc
from edgeshare.tx import Transactor

MOCK_NAME, MOCK_SYMBOL, MOCK_DECIMALS = "Mock USDC (local chains only)", "USDC", 6
MOCK_TOKEN = (MOCK_NAME, MOCK_SYMBOL, MOCK_DECIMALS)
ZERO_ADDRESS = "0x" + "00" * 20
BLUEPRINTS = {
    "NodeShareBlueprint": "NodeShare",
    "BasketBlueprint": "Basket",
    "ShareOfferingBlueprint": "ShareOffering",
}
"""The manifest's EIP-5202 blueprints, by the contract each one creates."""

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
    if path.is_dir():
        raise InputError(
            f"manifest {path} is a directory; give the manifest file, e.g. "
            f"{path / '<chain_id>.json'}"
        )
    text = read_text_file(path)
    try:
        return Manifest.model_validate_json(text)
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


def _has_expected_code(w3: Web3, address: str, contract: str, evm: EvmVersion) -> bool:
    code = bytes(w3.eth.get_code(Web3.to_checksum_address(address)))
    if not code:
        return False
    if contract in BLUEPRINTS:
        source = BLUEPRINTS[contract]
        expected = BLUEPRINT_PREAMBLE + bytes(HexBytes(load_artifact(source, evm).bytecode))
        if code != expected:
            raise DeploymentError(f"{address} holds a different {source} blueprint")
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
    run = _Deployment.start(tx, params, manifest_path, dry_run, on_step)
    evm = run.evm
    p = run.params
    if run.use_mock:
        run.ensure("Stablecoin", lambda: _init_code("MockStablecoin", evm, *MOCK_TOKEN))
    else:
        run.record(DeployStep("Stablecoin", "reused", str(p.stablecoin)))
    run.ensure("NodeShareBlueprint", lambda: _blueprint_code("NodeShare", evm))
    run.ensure("PortfolioClaimer", lambda: _init_code("PortfolioClaimer", evm))
    run.ensure(
        "NodeRegistry",
        lambda: _init_code(
            "NodeRegistry", evm, run.addresses["NodeShareBlueprint"], p.epoch_length,
            p.unlock_period, run.addresses["PortfolioClaimer"],
        ),
    )  # fmt: skip
    run.ensure(
        "RevenueRouter",
        lambda: _init_code(
            "RevenueRouter", evm, run.addresses["NodeRegistry"], run.addresses["Stablecoin"],
            p.protocol_fee_bps, p.treasury, p.challenge_period,
        ),
    )  # fmt: skip
    run.ensure(
        "PaymentChannels",
        lambda: _init_code("PaymentChannels", evm, run.addresses["RevenueRouter"]),
    )
    run.ensure("BasketBlueprint", lambda: _blueprint_code("Basket", evm))
    run.ensure(
        "BasketFactory",
        lambda: _init_code(
            "BasketFactory", evm, run.addresses["NodeRegistry"], run.addresses["BasketBlueprint"]
        ),
    )
    run.ensure(
        "ShareMarket",
        lambda: _init_code(
            "ShareMarket", evm, run.addresses["NodeRegistry"], run.addresses["Stablecoin"],
            run.addresses["RevenueRouter"], run.addresses["BasketFactory"], p.market_fee_bps,
        ),
    )  # fmt: skip
    run.ensure("ShareOfferingBlueprint", lambda: _blueprint_code("ShareOffering", evm))
    run.ensure(
        "OfferingFactory",
        lambda: _init_code(
            "OfferingFactory", evm, run.addresses["NodeRegistry"], run.addresses["RevenueRouter"],
            run.addresses["ShareOfferingBlueprint"], p.offering_fee_bps,
        ),
    )  # fmt: skip
    run.save()
    run.link_router()
    run.link_channels()
    return DeployResult(run.save(), run.steps, manifest_path)


def _init_code(name: str, evm: EvmVersion, *args: Any) -> bytes:
    """A contract's init code followed by its constructor arguments."""
    code = bytes(HexBytes(load_artifact(name, evm).bytecode))
    return code + get_codec(name).encode_constructor(*args)


def _blueprint_code(name: str, evm: EvmVersion) -> bytes:
    """The EIP-5202 blueprint deployment code of ``name``."""
    return bytes(HexBytes(load_artifact(name, evm).blueprint_bytecode))


@dataclass
class _Deployment:
    """One run of ``deploy_suite``: what the manifest holds and what this run did."""

    tx: Transactor
    params: DeployParams
    path: Path
    dry_run: bool
    on_step: Callable[[DeployStep], None] | None
    existing: Manifest | None
    use_mock: bool
    evm: EvmVersion
    addresses: dict[str, Any]
    block: int
    pending: PendingDeployment | None
    steps: list[DeployStep] = field(default_factory=list)
    redeployed: bool = False
    """Once a contract is new, everything built on it is new too."""

    @classmethod
    def start(
        cls,
        tx: Transactor,
        params: DeployParams,
        path: Path,
        dry_run: bool,
        on_step: Callable[[DeployStep], None] | None,
    ) -> _Deployment:
        """Check the chain against the manifest and the parameters; nothing is sent."""
        w3, chain_id = tx.w3, tx.chain_id
        existing = read_manifest(path)
        if existing is not None and existing.chain_id != chain_id:
            raise ChainMismatch(
                f"manifest {path} is for chain {existing.chain_id}, "
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
        evm: EvmVersion = params.evm_version or get_evm_version_for(str(w3.client_version))
        treasury = Web3.to_checksum_address(params.treasury or tx.signer.address)
        params = params.model_copy(update={"treasury": treasury, "evm_version": evm})
        addresses = dict(existing.contracts.model_dump()) if existing else {}
        if not use_mock:
            addresses["Stablecoin"] = params.stablecoin
        return cls(
            tx, params, path, dry_run, on_step, existing, use_mock, evm, addresses,
            block=existing.block if existing else 0,
            pending=existing.pending if existing else None,
        )  # fmt: skip

    def record(self, step: DeployStep) -> None:
        """Note a step and tell the caller."""
        self.steps.append(step)
        if self.on_step:
            self.on_step(step)

    def save(self) -> Manifest:
        """The manifest as it stands, written to disk (except in a dry run)."""
        manifest = Manifest(
            chain_id=self.tx.chain_id,
            deployer=self.existing.deployer if self.existing else self.tx.signer.address,
            block=self.block,
            params=self.params,
            contracts=ContractAddresses(**self.addresses),
            stablecoin_is_mock=self.use_mock,
            pending=self.pending,
        )
        if not self.dry_run:
            write_manifest(manifest, self.path)
        return manifest

    def ensure(self, contract: str, build: Callable[[], bytes]) -> None:
        """Reuse ``contract`` if the manifest's address holds its code, recover it from
        an interrupted run, or deploy it."""
        current = self.addresses.get(contract)
        if (
            current
            and not self.redeployed
            and _has_expected_code(self.tx.w3, current, contract, self.evm)
        ):
            self.record(DeployStep(contract, "reused", current))
            return
        if self.pending is not None and self.pending.contract == contract and not self.dry_run:
            # an earlier run was stopped after sending this creation: find what it made
            found = _find_pending(self.tx, self.pending, contract, self.evm)
            self.pending = None
            if found:
                self.addresses[contract] = found
                self.save()
                self.record(DeployStep(contract, "recovered", found))
                return
        self.redeployed = True
        if self.dry_run:
            self.addresses[contract] = None
            self.record(DeployStep(contract, "would deploy"))
            return
        self._deploy(contract, build())

    def _deploy(self, contract: str, code: bytes) -> None:
        nonce = self.tx.peek_nonce()
        address = get_create_address(self.tx.signer.address, nonce)
        self.pending = PendingDeployment(contract=contract, address=address, nonce=nonce)
        self.save()  # before sending: a kill after the send can then find the contract
        address, receipt = self.tx.deploy(code, f"deploy {contract}")
        self.addresses[contract] = address
        self.block = receipt.block_number
        self.pending = None
        self.save()
        self.record(DeployStep(contract, "deployed", address, receipt.gas_used))

    def link_router(self) -> None:
        """The one-time link registry -> router (refused if linked elsewhere)."""
        self._link("NodeRegistry", "router", "RevenueRouter", "link the registry to the router")

    def link_channels(self) -> None:
        """The one-time link router -> channels (refused if linked elsewhere)."""
        what = "link the router to the payment channels"
        self._link("RevenueRouter", "channels", "PaymentChannels", what)

    def _link(self, owner: str, field: str, target: str, what: str) -> None:
        """Set ``owner``'s once-only ``field`` to the manifest's ``target`` (through
        ``set_<field>``), unless it already points there; another address is an error."""
        step = f"{owner}.set_{field}"
        if self.dry_run and self.redeployed:
            self.record(DeployStep(step, "would link"))
            return
        address = str(self.addresses[target])
        contract = Reader(get_rpc(self.tx.w3)).contract(owner, str(self.addresses[owner]))
        linked = contract.call(field)
        if linked == address:
            return
        if linked != ZERO_ADDRESS:
            raise DeploymentError(
                f"{owner} {contract.address} is linked to {field} {linked}, "
                f"not to the manifest's {address}"
            )
        if self.dry_run:
            self.record(DeployStep(step, "would link"))
            return
        receipt = self.tx.send(contract.tx(f"set_{field}", address), what)
        self.block = receipt.block_number
        self.save()
        self.record(DeployStep(step, "linked", address, receipt.gas_used))
