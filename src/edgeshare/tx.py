"""Building, signing, sending and confirming transactions, for every EdgeShare write.

Every transaction, one or many, takes the same path (``edgeshare.pipeline``): gas is
estimated before anything is sent, so a call that would revert fails here with the
contract's reason and costs nothing; fees are EIP-1559 where the chain has a base fee,
legacy otherwise; nonces are tracked locally after the first read, so a batch of
transactions does not wait on the node between sends; and every write ends in the same
``Receipt``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import Web3

from edgeshare.errors import TransactionFailed
from edgeshare.models import checksum_address
from edgeshare.rpc import RpcClient, get_rpc
from edgeshare.signer import Signer

GAS_HEADROOM_NUM, GAS_HEADROOM_DEN = 6, 5
"""Every transaction is sent with 20% more gas than the larger of its two estimates (see
``edgeshare.pipeline.estimate_all``)."""
TIME_LOOKAHEAD = 120
"""Seconds past the later of the latest block's time and this machine's clock at which
each transaction is also estimated: when it runs, time will have moved (a share
transfer then releases vested revenue, which writes slots that were zero)."""
WORST_CASE_EXTRA_GAS = 5 * 22_100
"""Added to an estimate where the node cannot estimate at a later time (no block
overrides): what the most time-dependent call, a NodeShare transfer's vesting checkpoint,
can add when it runs later: five slots written from zero (the accumulator, its carry, the
last-release time and both parties' corrections), 22,100 gas each."""


def _hex(value: Any) -> str:
    """JSON-RPC hex data as lower-case 0x-hex text (bytes are converted)."""
    return value.lower() if isinstance(value, str) else HexBytes(value).to_0x_hex()


def _int(value: Any) -> int:
    """A JSON-RPC quantity ("0x1a") as an int (ints pass through)."""
    return value if isinstance(value, int) else int(str(value), 16)


@dataclass(frozen=True)
class Log:
    """One event log of a mined transaction, as the node returned it."""

    address: str
    """The emitting contract, checksummed."""
    topics: tuple[str, ...]
    """0x-hex topics; the first is the event's signature hash (unless anonymous)."""
    data: str
    """0x-hex ABI-encoded non-indexed arguments."""
    block_number: int
    log_index: int
    block_hash: str
    tx_hash: str

    @classmethod
    def from_rpc(cls, raw: Mapping[str, Any]) -> Log:
        """A log from its JSON-RPC form (an item of a receipt's ``logs``)."""
        return cls(
            address=checksum_address(_hex(raw["address"])),
            topics=tuple(_hex(t) for t in raw["topics"]),
            data=_hex(raw["data"]),
            block_number=_int(raw["blockNumber"]),
            log_index=_int(raw["logIndex"]),
            block_hash=_hex(raw["blockHash"]),
            tx_hash=_hex(raw["transactionHash"]),
        )


@dataclass(frozen=True)
class Receipt:
    """The receipt of a mined transaction: what every EdgeShare write returns."""

    tx_hash: str
    """0x-hex transaction hash."""
    block_number: int
    block_hash: str
    status: int
    """1 for success, 0 for a revert."""
    gas_used: int
    effective_gas_price: int
    """Wei per gas actually paid."""
    contract_address: str | None
    """The created contract (checksummed) for a deployment, else None."""
    logs: tuple[Log, ...]

    @property
    def is_simulated(self) -> bool:
        """True for what a dry run returns instead of a mined receipt."""
        return self.tx_hash == ""

    @classmethod
    def simulated(cls, gas: int) -> Receipt:
        """The stand-in receipt of a dry run's transaction (no hash, block or logs)."""
        return cls("", 0, "", 1, gas, 0, None, ())

    @classmethod
    def from_rpc(cls, raw: Mapping[str, Any]) -> Receipt:
        """A receipt from its JSON-RPC form (``eth_getTransactionReceipt``'s result)."""
        created = raw.get("contractAddress")
        price = raw.get("effectiveGasPrice", raw.get("gasPrice", 0))
        return cls(
            tx_hash=_hex(raw["transactionHash"]),
            block_number=_int(raw["blockNumber"]),
            block_hash=_hex(raw["blockHash"]),
            status=_int(raw.get("status", 1)),
            gas_used=_int(raw["gasUsed"]),
            effective_gas_price=_int(price or 0),
            contract_address=checksum_address(_hex(created)) if created else None,
            logs=tuple(Log.from_rpc(log) for log in raw.get("logs", [])),
        )


@dataclass(frozen=True)
class Planned:
    """A transaction a dry run would have sent."""

    what: str
    to: str | None
    data: str
    value: int
    gas: int
    """The gas limit it would be sent with (estimate and margin)."""


@dataclass
class Transactor:
    """Sends transactions from one signer on one chain.

    Args:
        w3: The connection.
        signer: Who signs and pays.
        confirmations: Blocks to wait for after the one holding the transaction.
        timeout: Seconds to wait for a receipt (for many at once: without a new one).
        max_fee_per_gas: The most wei per gas any transaction may offer, first versions,
            re-priced ones and replacements of stuck ones alike (None: no ceiling; the
            commands read it from ``EDGESHARE_MAX_FEE_GWEI``).
    """

    w3: Web3
    signer: Signer
    confirmations: int = 0
    timeout: float = 120.0
    max_fee_per_gas: int | None = None
    dry_run: bool = False
    """Check and simulate every transaction, send none: ``planned`` lists what would be
    sent, and each send returns a simulated receipt (no hash, no logs)."""
    planned: list[Planned] = field(default_factory=list, init=False)
    _block_overrides: bool | None = field(default=None, init=False, repr=False)
    _nonce: int | None = field(default=None, init=False, repr=False)
    _chain_id: int | None = field(default=None, init=False, repr=False)
    _rpc: RpcClient | None = field(default=None, init=False, repr=False)

    @property
    def chain_id(self) -> int:
        """The connected chain's id (read once)."""
        if self._chain_id is None:
            self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

    @property
    def rpc(self) -> RpcClient:
        """The JSON-RPC client of this connection (``edgeshare.rpc.get_rpc``)."""
        if self._rpc is None:
            self._rpc = get_rpc(self.w3)
        return self._rpc

    def _next_nonce(self) -> int:
        if self._nonce is None:
            address = Web3.to_checksum_address(self.signer.address)
            self._nonce = int(self.w3.eth.get_transaction_count(address, "pending"))
        return self._nonce

    def peek_nonce(self) -> int:
        """The nonce the next transaction will use."""
        return self._next_nonce()

    def forget_nonce(self) -> None:
        """Read the nonce from the chain again before the next send (after a reorg)."""
        self._nonce = None

    def take_nonce(self) -> int:
        """Reserve the next nonce for a transaction this caller sends itself."""
        nonce = self._next_nonce()
        self._nonce = nonce + 1
        return nonce

    def build_fees(self) -> dict[str, int]:
        """EIP-1559 fee fields when the chain has a base fee, else a legacy gas price."""
        block = self.w3.eth.get_block("latest")
        base_fee = block.get("baseFeePerGas")
        cap = self.max_fee_per_gas
        if base_fee is None:
            price = int(self.w3.eth.gas_price)
            return {"gasPrice": price if cap is None else min(price, cap)}
        try:
            tip = int(self.w3.eth.max_priority_fee)
        except Exception:
            tip = 10**9
        max_fee = 2 * int(base_fee) + tip
        if cap is not None:
            max_fee = min(max_fee, cap)
        return {"maxFeePerGas": max_fee, "maxPriorityFeePerGas": min(tip, max_fee)}

    def send(self, tx: dict[str, Any], what: str) -> Receipt:
        """Estimate, sign, send and wait for one transaction (a pipeline of one).

        Args:
            tx: At least ``to`` and/or ``data``; ``value`` optional.
            what: A short description for error messages, e.g. ``"deploy NodeRegistry"``.

        Returns:
            The receipt of the mined, successful transaction.
        """
        from edgeshare.pipeline import send_transactions

        (receipt,) = send_transactions(self, [tx], what)
        return receipt

    def deploy(self, data: str | bytes, what: str) -> tuple[ChecksumAddress, Receipt]:
        """Send a contract creation with the given init code; returns (address, receipt)."""
        receipt = self.send({"data": HexBytes(data).to_0x_hex()}, what)
        if receipt.contract_address is None:
            raise TransactionFailed(f"{what}: the receipt has no contract address")
        return Web3.to_checksum_address(receipt.contract_address), receipt
