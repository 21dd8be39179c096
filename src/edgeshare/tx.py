"""Building, signing, sending and confirming transactions, for every EdgeShare write.

Gas is estimated before anything is sent, so a call that would revert fails here with
the contract's reason and costs nothing. Fees are EIP-1559 where the chain has a base
fee, legacy otherwise. Nonces are tracked locally after the first read, so a batch of
transactions does not wait on the node between sends.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted, TransactionNotFound, Web3RPCError
from web3.types import TxReceipt

from edgeshare.errors import InputError, TransactionFailed
from edgeshare.signer import Signer

GAS_HEADROOM_NUM, GAS_HEADROOM_DEN = 6, 5  # send with 20% more gas than estimated
MAX_FEE_ENV = "EDGESHARE_MAX_FEE_GWEI"


def get_max_fee_per_gas() -> int | None:
    """The fee ceiling in wei per gas from ``EDGESHARE_MAX_FEE_GWEI`` (None: not set)."""
    raw = os.environ.get(MAX_FEE_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) == 0:
        raise InputError(f"{MAX_FEE_ENV} must be a whole number of gwei above 0, got {raw!r}")
    return int(raw) * 10**9


@dataclass
class Transactor:
    """Sends transactions from one signer on one chain.

    Args:
        w3: The connection.
        signer: Who signs and pays.
        confirmations: Blocks to wait for after the one holding the transaction.
        timeout: Seconds to wait for a receipt (for many at once: without a new one).
        max_fee_per_gas: The most wei per gas any transaction may offer, first versions
            and replacements of stuck ones alike (None: no ceiling; the commands read
            it from ``EDGESHARE_MAX_FEE_GWEI``).
    """

    w3: Web3
    signer: Signer
    confirmations: int = 0
    timeout: float = 120.0
    max_fee_per_gas: int | None = None
    _nonce: int | None = field(default=None, init=False, repr=False)
    _chain_id: int | None = field(default=None, init=False, repr=False)

    @property
    def chain_id(self) -> int:
        """The connected chain's id (read once)."""
        if self._chain_id is None:
            self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

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

    def send(self, tx: dict[str, Any], what: str) -> TxReceipt:
        """Estimate, sign, send and wait for one transaction.

        Args:
            tx: At least ``to`` and/or ``data``; ``value`` optional.
            what: A short description for error messages, e.g. ``"deploy NodeRegistry"``.

        Returns:
            The receipt of the mined, successful transaction.
        """
        tx = {"from": self.signer.address, "value": 0, **tx}
        try:
            estimate = int(self.w3.eth.estimate_gas(tx))  # type: ignore[arg-type]
        except ContractLogicError as exc:
            raise TransactionFailed(f"{what} would revert: {exc.message or exc}") from None
        except ValueError as exc:
            raise TransactionFailed(f"{what} would fail: {exc}") from None
        tx["gas"] = estimate * GAS_HEADROOM_NUM // GAS_HEADROOM_DEN
        tx.update(self.build_fees())
        tx["chainId"] = self.chain_id
        for attempt in (1, 2):
            tx["nonce"] = self._next_nonce()
            try:
                if self.signer.is_local:
                    raw = self.signer.sign_transaction(tx)
                    tx_hash = Web3.keccak(raw)
                    self._send_raw(raw, tx_hash)
                else:
                    tx_hash = HexBytes(self.w3.eth.send_transaction(tx))  # type: ignore[arg-type]
                break
            except (Web3RPCError, ValueError) as exc:
                # another process used this key since we read its nonce: read it again once
                if attempt == 2 or "nonce too low" not in str(exc).lower():
                    raise TransactionFailed(f"{what}: the node refused it: {exc}") from None
                self._nonce = None
        self._nonce = tx["nonce"] + 1
        return self.wait(HexBytes(tx_hash), what)

    def _send_raw(self, raw: bytes, tx_hash: HexBytes) -> None:
        """Send a signed transaction. A request retried after a lost reply can be told
        "already known" or "nonce too low" about this very transaction: that is success."""
        try:
            self.w3.eth.send_raw_transaction(raw)
        except (Web3RPCError, ValueError) as exc:
            message = str(exc).lower()
            if "already known" in message or "already imported" in message:
                return
            if "nonce too low" in message and self._is_known(tx_hash):
                return
            raise

    def _is_known(self, tx_hash: HexBytes) -> bool:
        try:
            self.w3.eth.get_transaction(tx_hash)
        except TransactionNotFound:
            return False
        return True

    def wait(self, tx_hash: HexBytes, what: str) -> TxReceipt:
        """Wait for a receipt and the configured confirmations; raise if it reverted."""
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=self.timeout, poll_latency=0.05
            )
        except TimeExhausted:
            raise TransactionFailed(
                f"{what}: no receipt for {tx_hash.to_0x_hex()} after {self.timeout:.0f}s"
            ) from None
        if receipt["status"] != 1:
            raise TransactionFailed(f"{what} reverted in transaction {tx_hash.to_0x_hex()}")
        if self.confirmations > 1:
            target = receipt["blockNumber"] + self.confirmations - 1
            deadline = time.monotonic() + self.timeout
            while self.w3.eth.block_number < target:
                if time.monotonic() > deadline:
                    raise TransactionFailed(
                        f"{what}: fewer than {self.confirmations} confirmations"
                    )
                time.sleep(0.2)
        return receipt

    def call(self, fn: ContractFunction, what: str) -> TxReceipt:
        """Send a contract function call as a transaction."""
        return self.send({"to": fn.address, "data": fn._encode_transaction_data()}, what)

    def deploy(self, data: str | bytes, what: str) -> tuple[ChecksumAddress, TxReceipt]:
        """Send a contract creation with the given init code; returns (address, receipt)."""
        receipt = self.send({"data": HexBytes(data).to_0x_hex()}, what)
        address = receipt["contractAddress"]
        if address is None:
            raise TransactionFailed(f"{what}: the receipt has no contract address")
        return Web3.to_checksum_address(address), receipt
