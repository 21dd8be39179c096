"""Sending many transactions from one key at once, and seeing every one of them mined.

Transactions are signed with consecutive nonces and sent in JSON-RPC batches, then their
receipts are polled in batches. A transaction can fail to be mined without any error: a
node drops it from its pool, or the base fee rises above what it offers (a block full of
our own registrations raises the base fee 12.5% each), or its tip is too small. When no
new receipt arrives for a while, every transaction still missing is sent again, and one
whose fee no longer covers the base fee, that the node refuses as underpriced, or that
has waited long is replaced: the same nonce, signed again with fees raised by at least
12.5% (nodes require 10% to accept a replacement). Every hash ever sent for a nonce is
polled, so whichever version is mined is found, and no nonce is left as a gap. On a local
anvil that automines, a stall also asks it to mine a block: it mines on a transaction's
arrival, and what a burst bigger than a block left over waits for an arrival that may
not come.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hexbytes import HexBytes
from web3 import Web3

from edgeshare.chain import is_local_chain_id
from edgeshare.errors import TransactionFailed
from edgeshare.rpc import RpcClient, RpcError
from edgeshare.tx import GAS_HEADROOM_DEN, GAS_HEADROOM_NUM, Transactor

Progress = Callable[[str, int, int], None]

RESEND_AFTER = 5.0
"""Seconds without a new receipt before what is missing is sent again."""
NUDGE_AFTER = 0.5
"""Seconds without a new receipt before a local development chain is asked to mine."""
REPLACE_AFTER = 60.0
"""Seconds a transaction may wait at a fee the chain accepts before it is replaced anyway
(its tip may be too small to be picked)."""
BUMP_NUM, BUMP_DEN = 9, 8  # a replacement offers at least 12.5% more
_UNDERPRICED = ("underpriced", "less than block base fee", "fee too low", "max fee per gas")
_ALREADY_IN = ("already known", "already imported", "known transaction")


@dataclass
class Flight:
    """One nonce's transaction and every version of it sent so far."""

    index: int
    body: dict[str, Any]
    """The transaction without its fee fields."""
    fees: dict[str, int]
    hashes: list[str] = field(default_factory=list)
    raw: str | None = None
    """The last signed version (None when the node holds the key)."""
    sent_at: float = 0.0
    """When the last version was signed and sent."""
    used_seen: int = 0
    """Stalls during which the nonce was used but no version of ours had a receipt."""

    @property
    def nonce(self) -> int:
        return int(self.body["nonce"])


def raise_fees(old: dict[str, int], now: dict[str, int]) -> dict[str, int]:
    """Fees for a replacement: at least 12.5% above ``old`` and at least what ``now`` asks."""
    if "gasPrice" in old:
        price = max(old["gasPrice"] * BUMP_NUM // BUMP_DEN + 1, now.get("gasPrice", 0))
        return {"gasPrice": price}
    tip = max(
        old["maxPriorityFeePerGas"] * BUMP_NUM // BUMP_DEN + 1, now.get("maxPriorityFeePerGas", 0)
    )
    max_fee = max(old["maxFeePerGas"] * BUMP_NUM // BUMP_DEN + 1, now.get("maxFeePerGas", 0), tip)
    return {"maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip}


def _fee_cap(fees: dict[str, int]) -> int:
    return fees.get("maxFeePerGas", fees.get("gasPrice", 0))


def estimate_all(
    tx: Transactor,
    rpc: RpcClient,
    targets: Sequence[str],
    datas: Sequence[str],
    what: str,
    units: Sequence[int] | None,
) -> list[int]:
    """Gas for every transaction, estimated in JSON-RPC batches; raises on any revert.

    Where the transactions are one call over ``units`` items each (every item checked
    beforehand), one transaction of each distinct size is estimated and serves all of
    that size.
    """
    sender = tx.signer.address
    if units is not None:
        sample = {u: i for i, u in reversed(list(enumerate(units)))}
        picked = list(sample.values())
    else:
        picked = list(range(len(datas)))
    calls = [("eth_estimateGas", [{"from": sender, "to": targets[i], "data": datas[i]}])
             for i in picked]  # fmt: skip
    found: dict[int, int] = {}
    for index, result in zip(picked, rpc.batch(calls), strict=True):
        if isinstance(result, RpcError):
            raise TransactionFailed(f"{what}: transaction {index} would revert: {result.message}")
        found[index] = int(result, 16)
    if units is not None:
        by_size = {units[i]: gas for i, gas in found.items()}
        return [by_size[u] for u in units]
    return [found[i] for i in range(len(datas))]


def send_pipelined(
    tx: Transactor,
    rpc: RpcClient,
    to: str | Sequence[str],
    datas: Sequence[str],
    what: str,
    progress: Progress,
    units: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """Send one transaction per calldata with consecutive nonces, then await all receipts.

    Gas is estimated before anything is sent; a transaction that would revert stops
    everything with its reason and nothing is sent. Signed transactions go out in
    JSON-RPC batches (a node that holds the key instead gets them one by one).

    Returns:
        The receipts (JSON-RPC dicts), in the order of ``datas``.
    """
    targets = [to] * len(datas) if isinstance(to, str) else list(to)
    if not datas:
        return []
    gas = estimate_all(tx, rpc, targets, datas, what, units)
    fees = tx.build_fees()
    flights = []
    for i, (target, data, estimate) in enumerate(zip(targets, datas, gas, strict=True)):
        body = {
            "from": tx.signer.address, "to": target, "data": data, "value": 0,
            "gas": estimate * GAS_HEADROOM_NUM // GAS_HEADROOM_DEN,
            "nonce": tx.take_nonce(), "chainId": tx.chain_id,
        }  # fmt: skip
        flights.append(Flight(index=i, body=body, fees=dict(fees)))
    if tx.signer.is_local:
        for flight in flights:
            _sign(tx, flight)
        replies = rpc.batch([("eth_sendRawTransaction", [f.raw]) for f in flights], chunk=100)
        for flight, reply in zip(flights, replies, strict=True):
            # "nonce too low" can answer a retried request about our own transaction;
            # wait_flights tells that apart from a nonce used by someone else
            if not isinstance(reply, RpcError) or _says(reply, (*_ALREADY_IN, "nonce too low")):
                continue
            if _says(reply, _UNDERPRICED) and _at_ceiling(tx, flight):
                continue  # the chain wants more than the user allows: wait, maybe time out
            raise TransactionFailed(
                f"{what}: transaction {flight.index} (nonce {flight.nonce}) was refused: "
                f"{reply.message}"
            )
    else:
        for flight in flights:
            sent = tx.w3.eth.send_transaction({**flight.body, **flight.fees})  # type: ignore[typeddict-item]
            flight.hashes.append(HexBytes(sent).to_0x_hex())
            flight.sent_at = time.monotonic()
    progress("sent", len(flights), len(flights))
    return wait_flights(tx, rpc, flights, what, progress)


def _sign(tx: Transactor, flight: Flight) -> None:
    raw = tx.signer.sign_transaction({**flight.body, **flight.fees})
    flight.raw = "0x" + raw.hex()
    flight.hashes.append(Web3.keccak(raw).to_0x_hex())
    flight.sent_at = time.monotonic()


def _says(error: RpcError, words: Sequence[str]) -> bool:
    message = error.message.lower()
    return any(w in message for w in words)


def wait_flights(
    tx: Transactor, rpc: RpcClient, flights: Sequence[Flight], what: str, progress: Progress
) -> list[dict[str, Any]]:
    """Poll receipts until every flight has one; resend and replace what is stuck.

    Gives up when no new receipt has come for ``tx.timeout`` seconds, naming the first
    nonce still missing; raises if any transaction reverted.
    """
    receipts: dict[int, dict[str, Any]] = {}
    last_progress = last_resend = last_nudge = time.monotonic()
    nudge = _is_automining(tx, rpc)
    while len(receipts) < len(flights):
        waiting = [f for f in flights if f.index not in receipts]
        asked = [(f, h) for f in waiting for h in f.hashes]
        replies = rpc.batch([("eth_getTransactionReceipt", [h]) for _, h in asked])
        for (flight, _), reply in zip(asked, replies, strict=True):
            if isinstance(reply, dict):
                receipts[flight.index] = reply
        progress("mined", len(receipts), len(flights))
        now = time.monotonic()
        if len(receipts) > len(flights) - len(waiting):
            last_progress = last_resend = last_nudge = now
            continue
        if now - last_progress > tx.timeout:
            first = min(waiting, key=lambda f: f.nonce)
            ceiling = (
                f" (offering the most allowed: {tx.max_fee_per_gas // 10**9} gwei per gas)"
                if tx.max_fee_per_gas is not None and _at_ceiling(tx, first)
                else ""
            )
            raise TransactionFailed(
                f"{what}: {len(waiting)} transaction(s) not mined after {tx.timeout:.0f}s "
                f"without progress; first nonce {first.nonce}, last hash {first.hashes[-1]}"
                + ceiling
            )
        if nudge and now - last_nudge > NUDGE_AFTER:
            # anvil's automine mines when a transaction arrives; ready ones left over
            # from a burst bigger than a block wait for an arrival that may not come
            rpc.batch([("evm_mine", [])])
            last_nudge = now
        if now - last_resend > RESEND_AFTER and tx.signer.is_local:
            _resend(tx, rpc, [f for f in waiting if f.index not in receipts], what)
            last_resend = now
        time.sleep(0.05)
    ordered = [receipts[f.index] for f in flights]
    for receipt in ordered:
        if int(receipt["status"], 16) != 1:
            raise TransactionFailed(f"{what}: transaction {receipt['transactionHash']} reverted")
    if tx.confirmations > 1:
        tx.wait(HexBytes(ordered[-1]["transactionHash"]), what)
    return ordered


def _is_automining(tx: Transactor, rpc: RpcClient) -> bool:
    """True for a local anvil that mines on each transaction's arrival (not one with
    interval or manual mining, whose owner chose when blocks come)."""
    if not is_local_chain_id(tx.chain_id):
        return False
    (reply,) = rpc.batch([("anvil_getAutomine", [])])
    return reply is True


def _resend(tx: Transactor, rpc: RpcClient, waiting: Sequence[Flight], what: str) -> None:
    """Send again what is missing; re-sign with raised fees what the chain will not take."""
    sender = tx.signer.address
    mined_nonce = int(rpc.call("eth_getTransactionCount", [sender, "latest"]), 16)
    fees_now = tx.build_fees()
    base = _fee_cap(fees_now)
    for flight in waiting:
        if flight.nonce < mined_nonce:
            # the nonce is used; our receipt should be visible at the next poll
            flight.used_seen += 1
            if flight.used_seen >= 3:
                raise TransactionFailed(
                    f"{what}: nonce {flight.nonce} was used by a transaction this run did not "
                    "send (is another process using this key?)"
                )
            continue
        stale = time.monotonic() - flight.sent_at > REPLACE_AFTER
        if _fee_cap(flight.fees) < base // 2 or stale:
            _replace(tx, flight, fees_now)
    replies = rpc.batch([("eth_sendRawTransaction", [f.raw]) for f in waiting if f.raw])
    again = []
    for flight, reply in zip([f for f in waiting if f.raw], replies, strict=True):
        if isinstance(reply, RpcError) and _says(reply, _UNDERPRICED):
            _replace(tx, flight, fees_now)
            again.append(flight)
    if again:
        for flight, reply in zip(
            again, rpc.batch([("eth_sendRawTransaction", [f.raw]) for f in again]), strict=True
        ):
            if not isinstance(reply, RpcError) or _says(reply, (*_ALREADY_IN, "nonce too low")):
                continue
            if _says(reply, _UNDERPRICED) and _at_ceiling(tx, flight):
                continue  # the chain wants more than the user allows: wait, maybe time out
            raise TransactionFailed(
                f"{what}: the replacement for nonce {flight.nonce} was refused: {reply.message}"
            )


def _at_ceiling(tx: Transactor, flight: Flight) -> bool:
    return tx.max_fee_per_gas is not None and _fee_cap(flight.fees) >= tx.max_fee_per_gas


def _replace(tx: Transactor, flight: Flight, fees_now: dict[str, int]) -> None:
    fees = raise_fees(flight.fees, fees_now)
    cap = tx.max_fee_per_gas
    if cap is not None and _fee_cap(fees) > cap:
        if _fee_cap(flight.fees) >= cap:
            return  # already at the ceiling the user set; wait (and time out) instead
        fees = {k: min(v, cap) for k, v in fees.items()}
    flight.fees = fees
    _sign(tx, flight)
