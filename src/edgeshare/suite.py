"""The deployed suite as Python objects, and the operations every role performs.

The CLI, the brownie scripts, the demo and the tests all act through these functions,
so each transaction is built in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag
from typing import Annotated, Any

from pydantic import Field
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from edgeshare.artifacts import load_artifact
from edgeshare.attestation import (
    Eip712Domain,
    SignedReport,
    UsageReport,
    fetch_domain,
    pack_signatures,
)
from edgeshare.errors import ChainMismatch, InputError, NodeNotFound
from edgeshare.models import MAX_OPERATOR_CUT_BPS, Address, Manifest, StrictModel
from edgeshare.tx import Transactor

UINT256_MAX = 2**256 - 1
MAX_PRICE = 2**168 - 1  # NodeRegistry.MAX_PRICE: packed beside cut, activity and epoch


class NodeStatus(IntFlag):
    """Mirrors the registry's ``NodeStatus`` flag."""

    ACTIVE = 1
    PAUSED = 2
    RETIRED = 4


class NodeSpec(StrictModel):
    """A node to register."""

    operator: Address
    """Runs the node and receives all its shares at registration."""
    attestor: Address
    """Signs the node's usage reports."""
    shares: Annotated[int, Field(ge=1, le=2**128)]
    """Share supply in 18-decimal base units."""
    price_per_1k: Annotated[int, Field(ge=0, le=MAX_PRICE)]
    """Stablecoin base units per 1,000 inferences."""
    operator_cut_bps: Annotated[int, Field(ge=0, le=MAX_OPERATOR_CUT_BPS)]
    """The operator's share of gross revenue in basis points."""
    region: Annotated[str, Field(min_length=1, max_length=32)]
    """Where the node serves."""
    metadata_uri: Annotated[str, Field(max_length=256)] = ""
    """Where the node's description is published."""
    external_id: Annotated[str, Field(max_length=200)] = ""
    """The operator's own id for the node; registering it twice is refused on chain."""

    def get_external_id_hash(self) -> bytes:
        """The bytes32 the registry keys the external id by (keccak256 of its text)."""
        return bytes(Web3.keccak(text=self.external_id)) if self.external_id else bytes(32)


class NodeRecord(StrictModel):
    """A registered node as the registry reports it."""

    node_id: int
    operator: Address
    pending_operator: Address
    """The account a handover waits for (the zero address: none)."""
    attestor: Address
    share_token: Address
    price_per_1k: int
    """The current epoch's price."""
    next_price_per_1k: int
    operator_cut_bps: int
    """The current epoch's operator cut."""
    next_operator_cut_bps: int
    pending_cut_bps: int
    """A pending cut increase (with ``pending_cut_epoch``; 0 and 0 when none)."""
    pending_cut_epoch: int
    """The first epoch the pending increase applies to."""
    status: str
    paused_by_registrar: bool
    registered_epoch: int
    region: str
    metadata_uri: str


@dataclass
class Suite:
    """Contract handles for one deployed suite."""

    w3: Web3
    manifest: Manifest
    registry: Contract
    router: Contract
    stablecoin: Contract

    @classmethod
    def load(cls, w3: Web3, manifest: Manifest) -> Suite:
        """Bind a manifest's addresses; the node must be on the manifest's chain."""
        chain_id = int(w3.eth.chain_id)
        if chain_id != manifest.chain_id:
            raise ChainMismatch(
                f"the manifest is for chain {manifest.chain_id}, the node is chain {chain_id}"
            )
        c = manifest.contracts
        missing = [name for name, address in c.model_dump().items() if not address]
        if missing:
            raise InputError(
                f"the manifest is incomplete: {', '.join(missing)} has no address; run "
                "`edgeshare deploy` with this manifest to finish the deployment"
            )
        for name in ("NodeRegistry", "RevenueRouter"):
            address = Web3.to_checksum_address(str(getattr(c, name)))
            if not w3.eth.get_code(address):
                raise ChainMismatch(
                    f"the manifest's {name} {address} has no code on chain {chain_id}: "
                    "a manifest of another deployment, or a chain that was reset?"
                )

        def bind(address: str | None, name: str) -> Contract:
            return w3.eth.contract(
                address=Web3.to_checksum_address(str(address)), abi=load_artifact(name).abi
            )

        return cls(
            w3=w3,
            manifest=manifest,
            registry=bind(c.NodeRegistry, "NodeRegistry"),
            router=bind(c.RevenueRouter, "RevenueRouter"),
            stablecoin=bind(c.Stablecoin, "MockStablecoin"),
        )

    def share(self, node_id: int) -> Contract:
        """The NodeShare token of ``node_id``."""
        address = Web3.to_checksum_address(self.fetch_node(node_id).share_token)
        return self.w3.eth.contract(address=address, abi=load_artifact("NodeShare").abi)

    def fetch_node_count(self) -> int:
        """How many nodes are registered (ids are 1..count)."""
        return int(self.registry.functions.node_count().call())

    def fetch_node(self, node_id: int) -> NodeRecord:
        """One node's record; raises NodeNotFound for an unknown id."""
        if not 1 <= node_id <= self.fetch_node_count():
            raise NodeNotFound(f"no node {node_id} (registered: 1..{self.fetch_node_count()})")
        raw: Any = self.registry.functions.node(node_id).call()
        names = [
            c["name"]
            for c in self.registry.get_function_by_name("node").abi["outputs"][0]["components"]
        ]
        fields = dict(zip(names, raw, strict=True))
        fields["status"] = str(NodeStatus(fields["status"]).name).lower()
        return NodeRecord(node_id=node_id, **fields)

    def fetch_operator(self, node_id: int) -> str:
        """The node's operator now."""
        terms: Any = self.registry.functions.payout_terms(node_id).call()
        return Web3.to_checksum_address(terms[0])

    def fetch_claimable(self, node_id: int, holder: str) -> int:
        """Stablecoin base units ``holder`` can claim from ``node_id`` now."""
        return int(self.share(node_id).functions.claimable(holder).call())


def send_register_node(tx: Transactor, suite: Suite, spec: NodeSpec) -> int:
    """Register a node (registrar only); returns its id."""
    fn = suite.registry.functions.register_node(
        spec.operator,
        spec.attestor,
        spec.shares,
        spec.price_per_1k,
        spec.operator_cut_bps,
        spec.region,
        spec.metadata_uri,
        spec.get_external_id_hash(),
    )
    receipt = tx.call(fn, f"register node in {spec.region}")
    events = suite.registry.events.NodeRegistered().process_receipt(receipt, errors=DISCARD)
    return int(events[0]["args"]["node_id"])


def send_approve_if_needed(tx: Transactor, token: Contract, spender: str, amount: int) -> None:
    """Approve ``spender`` for ``amount`` unless the allowance already covers it."""
    allowance = int(token.functions.allowance(tx.signer.address, spender).call())
    if allowance < amount:
        tx.call(token.functions.approve(spender, amount), "approve the stablecoin")


def send_mint_mock(tx: Transactor, suite: Suite, receiver: str, amount: int) -> None:
    """Mint mock stablecoin (local chains; the deployer owns the mock)."""
    tx.call(suite.stablecoin.functions.mint(receiver, amount), "mint mock stablecoin")


def fetch_domain_of(suite: Suite) -> Eip712Domain:
    """The router's EIP-712 domain, read from the chain."""
    return fetch_domain(suite.w3, suite.router.address)


def build_report(
    suite: Suite,
    node_id: int,
    epoch: int,
    inferences: int,
    latency_ms: int,
    uptime_bps: int,
    deadline: int,
) -> UsageReport:
    """A report whose revenue is inferences x the epoch's price, as the router requires."""
    price = int(suite.registry.functions.price_for_epoch(node_id, epoch).call())
    return UsageReport(
        node_id=node_id,
        epoch=epoch,
        inferences=inferences,
        revenue=inferences * price // 1_000,
        latency_ms=latency_ms,
        uptime_bps=uptime_bps,
        deadline=deadline,
    )


def send_settle(tx: Transactor, suite: Suite, reports: list[SignedReport]) -> int:
    """Settle up to 100 signed reports in one transaction; returns the revenue paid.

    For many reports, checks first and idempotent re-runs, use ``edgeshare.poster``.
    """
    total = sum(r.revenue for r in reports)
    send_approve_if_needed(tx, suite.stablecoin, suite.router.address, total)
    fn = suite.router.functions.settle_many(
        [r.get_report().as_tuple() for r in reports], pack_signatures(reports)
    )
    tx.call(fn, f"settle {len(reports)} usage report(s)")
    return total


def send_finalize(tx: Transactor, suite: Suite, node_id: int, epochs: list[int]) -> int:
    """Finalize a node's pending epochs (100 per transaction); returns the gross finalized."""
    gross = 0
    for start in range(0, len(epochs), 100):
        part = epochs[start : start + 100]
        receipt = tx.call(
            suite.router.functions.finalize(node_id, part), f"finalize node {node_id}"
        )
        events = suite.router.events.RevenueSplit().process_receipt(receipt, errors=DISCARD)
        gross += int(events[0]["args"]["gross"])
    return gross


def send_dispute(tx: Transactor, suite: Suite, node_id: int, epoch: int) -> int:
    """Dispute a pending report (guardian); returns the revenue owed back to its payer."""
    receipt = tx.call(
        suite.router.functions.dispute(node_id, epoch), f"dispute node {node_id} epoch {epoch}"
    )
    events = suite.router.events.RevenueDisputed().process_receipt(receipt, errors=DISCARD)
    return int(events[0]["args"]["revenue"])


def send_transfer_shares(
    tx: Transactor, suite: Suite, node_id: int, receiver: str, amount: int
) -> None:
    """Transfer ``amount`` shares of ``node_id`` to ``receiver``."""
    fn = suite.share(node_id).functions.transfer(receiver, amount)
    tx.call(fn, f"transfer shares of node {node_id}")


def send_claim(tx: Transactor, suite: Suite, node_id: int, receiver: str | None = None) -> int:
    """Claim the signer's revenue from ``node_id``; returns the amount paid."""
    share = suite.share(node_id)
    fn = share.functions.claim() if receiver is None else share.functions.claim_to(receiver)
    receipt = tx.call(fn, f"claim from node {node_id}")
    events = share.events.RevenueClaimed().process_receipt(receipt, errors=DISCARD)
    return int(events[0]["args"]["amount"]) if events else 0


def send_withdraw(tx: Transactor, suite: Suite, receiver: str | None = None) -> int:
    """Withdraw what the router owes the signer (operator or treasury); returns the amount."""
    fn = suite.router.functions.withdraw(receiver or tx.signer.address)
    receipt = tx.call(fn, "withdraw from the router")
    events = suite.router.events.Withdrawn().process_receipt(receipt, errors=DISCARD)
    return int(events[0]["args"]["amount"]) if events else 0


def send_increase_time(w3: Web3, seconds: int) -> None:
    """Advance a local chain's clock and mine a block (anvil and Ganache)."""
    w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
