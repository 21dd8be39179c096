"""The deployed suite as Python objects, and the operations every role performs.

The CLI, the brownie scripts, the demo and the tests all act through these functions,
so each transaction is built in exactly one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntFlag
from typing import Annotated

from faster_eth_abi.exceptions import DecodingError
from pydantic import Field
from web3 import Web3

from edgeshare.attestation import (
    Eip712Domain,
    SignedReport,
    UsageReport,
    fetch_domain,
    pack_signatures,
)
from edgeshare.contracts import BlockId, Contract, Reader
from edgeshare.errors import ChainMismatch, InputError, NodeNotFound
from edgeshare.models import MAX_OPERATOR_CUT_BPS, Address, Manifest, StrictModel
from edgeshare.pipeline import send_pipelined
from edgeshare.rpc import RpcClient, RpcError, get_rpc
from edgeshare.tx import Receipt, Transactor
from edgeshare.units import SHARE_DECIMALS, Token

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


@dataclass(frozen=True)
class SharePosition:
    """A holder's position in one node share token, as the token's views return it in
    one block (``Suite.fetch_positions``)."""

    balance: int
    supply: int
    claimable: int
    unvested: int
    """The token's revenue still vesting (all holders')."""
    vesting_ends_at: int
    """When that vesting ends (unix time; in the past when nothing vests)."""
    total_distributed: int
    """All the revenue the token has distributed to its holders."""

    @property
    def vesting(self) -> int:
        """The holder's part of what still vests, at its balance, rounded down (as the
        token's release rounds)."""
        return self.unvested * self.balance // max(1, self.supply)


@dataclass(frozen=True)
class SuiteConstants:
    """The suite's immutables, fixed at deployment (``Suite.fetch_constants``)."""

    genesis: int
    """Unix time epoch 0 starts."""
    epoch_length: int
    """Seconds per epoch."""
    unlock_period: int
    """Seconds a finalized epoch's holders' revenue vests over."""
    challenge_period: int
    """Seconds a posted usage report can be disputed."""
    protocol_fee_bps: int


CLAIMER_MAX_TOKENS = 64
"""PortfolioClaimer.MAX_TOKENS: tokens per ``claim_many`` and per ``positions`` call."""
_POSITION_FIELDS = (
    "balance", "supply", "claimable", "unvested", "vesting_ends_at", "total_distributed"
)  # fmt: skip
_POSITION_READS = (
    "balanceOf", "totalSupply", "claimable", "unvested", "vesting_ends_at", "total_distributed"
)  # fmt: skip


@dataclass
class Suite:
    """Handles on one deployed suite: every read goes through ``reader`` (JSON-RPC
    batches of ``eth_call``), every call is encoded by the contracts' codecs."""

    w3: Web3
    manifest: Manifest
    reader: Reader
    registry: Contract
    router: Contract
    stablecoin: Contract
    channels: Contract
    claimer: Contract
    baskets: Contract
    offerings: Contract
    market: Contract
    _share_tokens: dict[int, str] = field(default_factory=dict, repr=False)
    _stablecoin_token: Token | None = field(default=None, repr=False)
    _constants: SuiteConstants | None = field(default=None, repr=False)

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
        rpc = get_rpc(w3)
        core = [str(c.NodeRegistry), str(c.RevenueRouter)]
        codes = rpc.batch([("eth_getCode", [address, "latest"]) for address in core])
        for name, address, code in zip(("NodeRegistry", "RevenueRouter"), core, codes, strict=True):
            if isinstance(code, RpcError):
                raise code
            if code in (None, "0x", "0x0"):
                raise ChainMismatch(
                    f"the manifest's {name} {address} has no code on chain {chain_id}: "
                    "a manifest of another deployment, or a chain that was reset?"
                )
        reader = Reader(rpc)
        return cls(
            w3=w3,
            manifest=manifest,
            reader=reader,
            registry=reader.contract("NodeRegistry", str(c.NodeRegistry)),
            router=reader.contract("RevenueRouter", str(c.RevenueRouter)),
            stablecoin=reader.contract("MockStablecoin", str(c.Stablecoin)),
            channels=reader.contract("PaymentChannels", str(c.PaymentChannels)),
            claimer=reader.contract("PortfolioClaimer", str(c.PortfolioClaimer)),
            baskets=reader.contract("BasketFactory", str(c.BasketFactory)),
            offerings=reader.contract("OfferingFactory", str(c.OfferingFactory)),
            market=reader.contract("ShareMarket", str(c.ShareMarket)),
        )

    @property
    def rpc(self) -> RpcClient:
        """The JSON-RPC client every read and pipelined send goes through."""
        return self.reader.rpc

    def fetch_stablecoin_token(self) -> Token:
        """The stablecoin's decimals and symbol (read once), for amounts people read; a
        token without ERC-20's optional metadata counts in ``units`` with 0 decimals."""
        if self._stablecoin_token is None:
            coin = self.stablecoin
            reads = [coin.read("decimals"), coin.read("symbol")]
            decimals, symbol = self.reader.try_many(reads)
            if isinstance(decimals, RpcError) or isinstance(symbol, RpcError):
                self._stablecoin_token = Token(0, "units")
            else:
                self._stablecoin_token = Token(int(decimals), str(symbol))
        return self._stablecoin_token

    def fetch_constants(self) -> SuiteConstants:
        """The registry's calendar and the router's fee and challenge period (immutable:
        read once, in one batch)."""
        if self._constants is None:
            reg, router = self.registry, self.router
            values = self.reader.many([
                reg.read("GENESIS"), reg.read("EPOCH_LENGTH"), reg.read("UNLOCK_PERIOD"),
                router.read("CHALLENGE_PERIOD"), router.read("PROTOCOL_FEE_BPS"),
            ])  # fmt: skip
            self._constants = SuiteConstants(*(int(v) for v in values))
        return self._constants

    def fetch_positions(
        self, holder: str, share_tokens: Sequence[str], block: BlockId = "latest"
    ) -> list[SharePosition]:
        """``holder``'s position in each share token, in order, all read at ``block``: one
        ``PortfolioClaimer.positions`` call per 64 tokens, the calls in one JSON-RPC batch
        (six reads of each token otherwise). A claimer without that view (deployed before
        it, or not yet at ``block``) is read around: each token's six views, in one batch."""
        if not share_tokens:
            return []
        holder = Web3.to_checksum_address(holder)
        tokens = list(share_tokens)
        chunks = [tokens[i : i + CLAIMER_MAX_TOKENS]
                  for i in range(0, len(tokens), CLAIMER_MAX_TOKENS)]  # fmt: skip
        calls = [self.claimer.read("positions", holder, chunk) for chunk in chunks]
        try:
            replies = self.reader.try_many(calls, block=block)
        except DecodingError:  # no claimer code at ``block``: an empty reply
            replies = []
        if not replies or any(isinstance(r, RpcError) for r in replies):
            return self._fetch_positions_by_field(holder, tokens, block)
        found = [p for reply in replies for p in reply]
        return [SharePosition(*(int(p[k]) for k in _POSITION_FIELDS)) for p in found]

    def _fetch_positions_by_field(
        self, holder: str, tokens: list[str], block: BlockId
    ) -> list[SharePosition]:
        reads = [(name, holder) if name in ("balanceOf", "claimable") else (name,)
                 for name in _POSITION_READS]  # fmt: skip
        rows = self.reader.each([self.share_at(t) for t in tokens], *reads, block=block)
        return [SharePosition(*(int(v) for v in row)) for row in rows]

    def share(self, node_id: int) -> Contract:
        """The NodeShare token of ``node_id`` (its address is read once: it never changes)."""
        return self.share_at(self.fetch_share_tokens([node_id])[0])

    def share_at(self, address: str) -> Contract:
        """A NodeShare token at ``address``."""
        return self.reader.contract("NodeShare", address)

    def fetch_share_tokens(self, node_ids: Sequence[int]) -> list[str]:
        """The share token of each node (one batch for those not read before)."""
        unknown = sorted({n for n in node_ids if n not in self._share_tokens})
        if unknown:
            self._check_ids(unknown)
            calls = [self.registry.read("share_token", n) for n in unknown]
            self._share_tokens.update(zip(unknown, self.reader.many(calls), strict=True))
        return [self._share_tokens[n] for n in node_ids]

    def fetch_node_count(self, block: BlockId = "latest") -> int:
        """How many nodes are registered (ids are 1..count), as of ``block``."""
        return int(self.registry.call("node_count", block=block))

    def _check_ids(self, node_ids: Sequence[int], count: int | None = None) -> None:
        bad = [n for n in node_ids if not 1 <= n <= (count or 0)]
        if bad and count is None:
            count = self.fetch_node_count()
            bad = [n for n in node_ids if not 1 <= n <= count]
        if bad:
            raise NodeNotFound(f"no node {bad[0]} (registered: 1..{count})")

    def fetch_node(self, node_id: int) -> NodeRecord:
        """One node's record; raises NodeNotFound for an unknown id."""
        return self.fetch_nodes([node_id])[0]

    def fetch_nodes(self, node_ids: Sequence[int] | None = None) -> list[NodeRecord]:
        """The records of ``node_ids`` (default: every node), in JSON-RPC batches."""
        count = self.fetch_node_count()
        ids = list(range(1, count + 1)) if node_ids is None else list(node_ids)
        self._check_ids(ids, count)
        infos = self.reader.many([self.registry.read("node", n) for n in ids])
        records = [
            NodeRecord(
                node_id=n, **{**info, "status": str(NodeStatus(info["status"]).name).lower()}
            )
            for n, info in zip(ids, infos, strict=True)
        ]
        self._share_tokens.update((r.node_id, r.share_token) for r in records)
        return records

    def fetch_operator(self, node_id: int) -> str:
        """The node's operator now."""
        return str(self.registry.call("payout_terms", node_id)["operator"])

    def fetch_claimable(self, node_id: int, holder: str) -> int:
        """Stablecoin base units ``holder`` can claim from ``node_id`` now."""
        return int(self.share(node_id).call("claimable", holder))


def get_share_token(node_id: int) -> Token:
    """How a node's shares are shown: 18 decimals, symbol ``ESN<id>`` (the registry names
    every share token so)."""
    return Token(SHARE_DECIMALS, f"ESN{node_id}")


def send_register_node(tx: Transactor, suite: Suite, spec: NodeSpec) -> int:
    """Register a node (registrar only); returns its id (0 in a dry run)."""
    call = suite.registry.tx(
        "register_node",
        spec.operator,
        spec.attestor,
        spec.shares,
        spec.price_per_1k,
        spec.operator_cut_bps,
        spec.region,
        spec.metadata_uri,
        spec.get_external_id_hash(),
    )
    receipt = tx.send(call, f"register node in {spec.region}")
    if receipt.is_simulated:
        return 0
    return int(suite.registry.events(receipt, "NodeRegistered")[0]["node_id"])


def send_approve_if_needed(tx: Transactor, token: Contract, spender: str, amount: int) -> None:
    """Approve ``spender`` for ``amount`` unless the allowance already covers it."""
    if int(token.call("allowance", tx.signer.address, spender)) < amount:
        tx.send(token.tx("approve", spender, amount), "approve the stablecoin")


def send_mint_mock(tx: Transactor, suite: Suite, receiver: str, amount: int) -> Receipt:
    """Mint mock stablecoin (local chains; the deployer owns the mock)."""
    return tx.send(suite.stablecoin.tx("mint", receiver, amount), "mint mock stablecoin")


def fetch_domain_of(suite: Suite) -> Eip712Domain:
    """The router's EIP-712 domain, read from the chain."""
    return fetch_domain(suite.router)


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
    price = int(suite.registry.call("price_for_epoch", node_id, epoch))
    return UsageReport(
        node_id=node_id,
        epoch=epoch,
        inferences=inferences,
        revenue=inferences * price // 1_000,
        latency_ms=latency_ms,
        uptime_bps=uptime_bps,
        deadline=deadline,
    )


def fetch_dues(suite: Suite, reports: Sequence[SignedReport]) -> list[int]:
    """What the payer of each report pays: its revenue less the channel revenue already
    credited to its (node, epoch), never below 0 (the epoch has ended: no redemption can
    add to that credit any more)."""
    credits = suite.reader.many(
        [suite.router.read("channel_revenue", r.node_id, r.epoch) for r in reports]
    )
    return [r.revenue - min(r.revenue, int(c)) for r, c in zip(reports, credits, strict=True)]


def send_settle(tx: Transactor, suite: Suite, reports: list[SignedReport]) -> int:
    """Settle up to 100 signed reports in one transaction; returns what the payer paid
    (the reports' revenue less what channels paid in their epochs).

    For many reports, checks first and idempotent re-runs, use ``edgeshare.poster``.
    """
    total = sum(fetch_dues(suite, reports))
    send_approve_if_needed(tx, suite.stablecoin, suite.router.address, total)
    call = suite.router.tx(
        "settle_many", [r.get_report().as_tuple() for r in reports], pack_signatures(reports)
    )
    tx.send(call, f"settle {len(reports)} usage report(s)")
    return total


def send_finalize(tx: Transactor, suite: Suite, node_id: int, epochs: list[int]) -> int:
    """Finalize a node's pending epochs (100 per transaction); returns the gross finalized."""
    gross = 0
    for start in range(0, len(epochs), 100):
        part = epochs[start : start + 100]
        receipt = tx.send(suite.router.tx("finalize", node_id, part), f"finalize node {node_id}")
        gross += sum(int(e["gross"]) for e in suite.router.events(receipt, "RevenueSplit"))
    return gross


def send_transfer_shares(
    tx: Transactor, suite: Suite, node_id: int, receiver: str, amount: int
) -> None:
    """Transfer ``amount`` shares of ``node_id`` to ``receiver``."""
    call = suite.share(node_id).tx("transfer", receiver, amount)
    tx.send(call, f"transfer shares of node {node_id}")


def send_share_transfers(
    tx: Transactor, suite: Suite, node_id: int, transfers: Sequence[tuple[str, int]]
) -> None:
    """Transfer shares of ``node_id`` to many receivers ((receiver, amount) pairs), one
    transaction each, sent with consecutive nonces."""
    share = suite.share(node_id)
    datas = [share.calldata("transfer", to, amount) for to, amount in transfers]
    send_pipelined(
        tx, suite.rpc, share.address, datas, f"transfer shares of node {node_id}", lambda *_: None
    )


def send_claim(tx: Transactor, suite: Suite, node_id: int, receiver: str | None = None) -> int:
    """Claim the signer's revenue from ``node_id``; returns the amount paid."""
    share = suite.share(node_id)
    call = share.tx("claim") if receiver is None else share.tx("claim_to", receiver)
    receipt = tx.send(call, f"claim from node {node_id}")
    return sum(int(e["amount"]) for e in share.events(receipt, "RevenueClaimed"))


def send_increase_time(w3: Web3, seconds: int) -> None:
    """Advance a local chain's clock and mine a block (anvil and Ganache)."""
    w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
