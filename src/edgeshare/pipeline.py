"""Sending transactions from one key, one or many at once, and seeing every one mined.

This is the one write path: ``Transactor.send`` is a pipeline of one. Transactions are
signed with consecutive nonces and sent in JSON-RPC batches. A transaction the node
refuses at send time for its fee (the base fee rose during a burst: "max fee per gas
less than block base fee", "underpriced", "fee too low") is re-priced from the chain's
fees, bumped, and sent again at once, never above the fee ceiling, so no nonce is left as
a gap.

Receipts are polled once per new block: ``eth_blockNumber``, then, when it moved, the
receipts of the new blocks (``eth_getBlockReceipts``) or, where the node lacks that,
``eth_getTransactionReceipt`` for every hash still missing, in one batch.

A transaction can also fail to be mined without any error: a node drops it from its
pool, or the base fee rises above what it offers (a block full of our own registrations
raises the base fee 12.5% each), or its tip is too small. When no new receipt arrives for
a while, every transaction still missing is sent again, and one whose fee no longer
covers the base fee, that the node refuses as underpriced, or that has waited long is
replaced: the same nonce, signed again with fees raised by at least 12.5% (nodes require
10% to accept a replacement). Every hash ever sent for a nonce is watched, so whichever
version is mined is found. On a local anvil that automines, a stall also asks it to mine
a block: it mines on a transaction's arrival, and what a burst bigger than a block left
over waits for an arrival that may not come.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import Web3RPCError

from edgeshare.chain import is_local_chain_id
from edgeshare.errors import TransactionFailed
from edgeshare.rpc import RpcClient, RpcError
from edgeshare.tx import (
    GAS_HEADROOM_DEN,
    GAS_HEADROOM_NUM,
    TIME_LOOKAHEAD,
    WORST_CASE_EXTRA_GAS,
    Planned,
    Receipt,
    Transactor,
)
from edgeshare.units import format_utc

Progress = Callable[[str, int, int], None]
_log = logging.getLogger("edgeshare.pipeline")

RESEND_AFTER = 5.0
"""Seconds without a new receipt before what is missing is sent again."""
NUDGE_AFTER = 0.5
"""Seconds without a new receipt before a local development chain is asked to mine."""
REPLACE_AFTER = 60.0
"""Seconds a transaction may wait at a fee the chain accepts before it is replaced anyway
(its tip may be too small to be picked)."""
POLL_LOCAL, POLL_REMOTE = 0.05, 0.5
"""Seconds between two looks at the block number, on a local chain and on any other."""
MAX_BLOCKS_PER_POLL = 16
"""The most new blocks whose receipts are read whole; more, and only our hashes are asked."""
REPRICE_ROUNDS = 5
"""Times in a row a transaction refused at send time for its fee is re-priced at once."""
BUMP_NUM, BUMP_DEN = 9, 8  # a replacement offers at least 12.5% more
_UNDERPRICED = ("underpriced", "less than block base fee", "fee too low", "fee cap too low")
_ALREADY_IN = ("already known", "already imported", "known transaction")
_NONCE_TOO_LOW = "nonce too low"
_GANACHE_NONCE = re.compile(r"account has nonce of: (\d+) tx has nonce of: (\d+)")
"""Ganache's refusal of a nonce ("the tx doesn't have the correct nonce. account has nonce
of: 12 tx has nonce of: 5"): too low when the second is below the first."""


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


def _to_call(sender: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """A transaction as an ``eth_estimateGas`` / ``eth_call`` object."""
    call: dict[str, Any] = {"from": sender}
    if body.get("to"):
        call["to"] = body["to"]
    if body.get("data"):
        call["data"] = HexBytes(body["data"]).to_0x_hex()
    if body.get("value"):
        call["value"] = hex(int(body["value"]))
    return call


def estimate_all(
    tx: Transactor,
    rpc: RpcClient,
    txs: Sequence[Mapping[str, Any]],
    what: str,
    units: Sequence[int] | None,
) -> list[int]:
    """Gas limits for every transaction, estimated in JSON-RPC batches; raises on any revert.

    A transaction runs after it is estimated, and what it does can depend on the time it
    runs (a NodeShare transfer releases the revenue vested since the last block, writing
    slots that were zero; a finalize finds more epochs due). So each one is estimated twice
    in the same batch: at the latest block, and at ``TIME_LOOKAHEAD`` seconds past the
    later of that block's time and this machine's clock (a block override of ``time``).
    The limit is the larger estimate plus 20%. Where the node has no block overrides (or the
    later estimate reverts, e.g. a report's deadline would have passed), the latest estimate
    gets ``WORST_CASE_EXTRA_GAS`` on top instead.

    Where the transactions are one call over ``units`` items each (every item checked
    beforehand), one transaction of each distinct size is estimated and serves all of
    that size.
    """
    sender = tx.signer.address
    if units is not None:
        sample = {u: i for i, u in reversed(list(enumerate(units)))}
        picked = list(sample.values())
    else:
        picked = list(range(len(txs)))
    later, block_limit = _later_time(tx, rpc)
    calls: list[tuple[str, list[Any]]] = [
        ("eth_estimateGas", [_to_call(sender, txs[i])]) for i in picked
    ]
    if later is not None:
        overrides = {"time": hex(later)}
        calls += [
            ("eth_estimateGas", [_to_call(sender, txs[i]), "latest", None, overrides])
            for i in picked
        ]
    replies = rpc.batch(calls)
    found: dict[int, int] = {}
    for n, index in enumerate(picked):
        result = replies[n]
        if isinstance(result, RpcError):
            where = f"{what}:" if len(txs) > 1 else what
            which = f" transaction {index}" if len(txs) > 1 else ""
            after = (
                f" (a dry run applies none of the {len(tx.planned)} transaction(s) planned "
                "before it, so one that needs them cannot be simulated)"
                if tx.dry_run and tx.planned
                else ""
            )
            raise TransactionFailed(f"{where}{which} would revert: {result.message}{after}")
        now = int(result, 16)
        future = replies[len(picked) + n] if later is not None else None
        if isinstance(future, str):
            found[index] = max(now, int(future, 16)) * GAS_HEADROOM_NUM // GAS_HEADROOM_DEN
            continue
        if isinstance(future, RpcError):
            _log.warning(
                "%s: it would revert if mined after %s (%s); it may fail if it waits",
                what, format_utc(later or 0), future.message,
            )  # fmt: skip
        found[index] = now * GAS_HEADROOM_NUM // GAS_HEADROOM_DEN + WORST_CASE_EXTRA_GAS
    if block_limit:  # never more than a block holds (an estimate that fits, fits there)
        found = {i: min(gas, block_limit) for i, gas in found.items()}
    if units is not None:
        by_size = {units[i]: gas for i, gas in found.items()}
        return [by_size[u] for u in units]
    return [found[i] for i in range(len(txs))]


_TIMESTAMP_CODE = "0x4260005260206000f3"
"""Code that returns the block's timestamp (TIMESTAMP, MSTORE, RETURN 32 bytes)."""
_PROBE = "0x00000000000000000000000000000000000e5e55"
"""Where the probe's code is put for one call (a state override; nothing is deployed)."""


def _later_time(tx: Transactor, rpc: RpcClient) -> tuple[int | None, int]:
    """(when the transactions will run at the earliest that matters, the block gas limit).

    The time is ``TIME_LOOKAHEAD`` past the later of the latest block's time and this
    machine's clock; None where the node does not apply a block override of ``time``
    (probed once per Transactor: code that returns the block's time, put at an unused
    address by a state override, must return the overridden time).
    """
    block = rpc.call("eth_getBlockByNumber", ["latest", False])
    later = max(int(block["timestamp"], 16), int(time.time())) + TIME_LOOKAHEAD
    if tx._block_overrides is None:
        probe = {"from": tx.signer.address, "to": _PROBE, "data": "0x"}
        code = {_PROBE: {"code": _TIMESTAMP_CODE}}
        (reply,) = rpc.batch([("eth_call", [probe, "latest", code, {"time": hex(later)}])])
        tx._block_overrides = (
            isinstance(reply, str) and len(reply) >= 66 and (int(reply, 16) == later)
        )
    return (later if tx._block_overrides else None), int(block.get("gasLimit", "0x0"), 16)


def send_pipelined(
    tx: Transactor,
    rpc: RpcClient,
    to: str | Sequence[str],
    datas: Sequence[str],
    what: str,
    progress: Progress,
    units: Sequence[int] | None = None,
) -> list[Receipt]:
    """Send one transaction per calldata with consecutive nonces, then await all receipts.

    Args:
        tx: Who sends.
        rpc: The endpoint's client (``edgeshare.rpc.get_rpc``).
        to: One target for all, or one per calldata.
        datas: 0x-hex calldata, one per transaction.
        what: A short description for error messages.
        progress: Called with ("sent" | "mined", done, total).
        units: Items per transaction, when all are one call over that many items (one
            gas estimate per distinct size).

    Returns:
        The receipts, in the order of ``datas``.
    """
    targets = [to] * len(datas) if isinstance(to, str) else list(to)
    txs = [{"to": t, "data": d} for t, d in zip(targets, datas, strict=True)]
    return send_transactions(tx, txs, what, progress, units, rpc)


def send_transactions(
    tx: Transactor,
    txs: Sequence[Mapping[str, Any]],
    what: str,
    progress: Progress | None = None,
    units: Sequence[int] | None = None,
    rpc: RpcClient | None = None,
) -> list[Receipt]:
    """Send transactions (``to`` and/or ``data``, ``value`` optional) with consecutive
    nonces, then await all receipts.

    Gas is estimated before anything is sent; a transaction that would revert stops
    everything with its reason and nothing is sent. Signed transactions go out in
    JSON-RPC batches (a node that holds the key instead gets them one by one).

    Returns:
        The receipts of the mined, successful transactions, in the order of ``txs``.
    """
    if not txs:
        return []
    rpc = rpc or tx.rpc
    report = progress or (lambda _s, _d, _t: None)
    gas = estimate_all(tx, rpc, txs, what, units)
    if tx.dry_run:
        return _plan(tx, txs, gas, what)
    fees = tx.build_fees()
    start_block = int(rpc.call("eth_blockNumber", []), 16)
    flights = []
    for i, (item, estimate) in enumerate(zip(txs, gas, strict=True)):
        body = {
            "from": tx.signer.address, "value": int(item.get("value", 0)),
            "gas": estimate,
            "nonce": tx.take_nonce(), "chainId": tx.chain_id,
        }  # fmt: skip
        if item.get("to"):
            body["to"] = Web3.to_checksum_address(item["to"])
        if item.get("data"):
            body["data"] = HexBytes(item["data"]).to_0x_hex()
        flights.append(Flight(index=i, body=body, fees=dict(fees)))
    if tx.signer.is_local:
        _send_signed(tx, rpc, flights, what)
    else:
        for flight in flights:
            try:
                sent = tx.w3.eth.send_transaction({**flight.body, **flight.fees})  # type: ignore[typeddict-item]
            except (Web3RPCError, ValueError) as exc:
                raise TransactionFailed(f"{what}: the node refused it: {exc}") from None
            flight.hashes.append(HexBytes(sent).to_0x_hex())
            flight.sent_at = time.monotonic()
    report("sent", len(flights), len(flights))
    return wait_flights(tx, rpc, flights, what, report, start_block)


def _plan(
    tx: Transactor, txs: Sequence[Mapping[str, Any]], gas: Sequence[int], what: str
) -> list[Receipt]:
    """A dry run's end: record what would be sent, return simulated receipts."""
    for item, limit in zip(txs, gas, strict=True):
        data = HexBytes(item.get("data") or b"").to_0x_hex()
        to = Web3.to_checksum_address(item["to"]) if item.get("to") else None
        tx.planned.append(Planned(what, to, data, int(item.get("value", 0)), limit))
    return [Receipt.simulated(limit) for limit in gas]


def _send_signed(tx: Transactor, rpc: RpcClient, flights: Sequence[Flight], what: str) -> None:
    """Sign and send every flight; re-price at once what is refused for its fee, and renumber
    once if every nonce was taken by another process since it was read."""
    for attempt in (1, 2):
        for flight in flights:
            _sign(tx, flight)
        replies = rpc.batch([("eth_sendRawTransaction", [f.raw]) for f in flights], chunk=100)
        priced_out: list[Flight] = []
        maybe_ours: list[Flight] = []
        for flight, reply in zip(flights, replies, strict=True):
            if not isinstance(reply, RpcError) or _says(reply, _ALREADY_IN):
                continue
            if _is_nonce_too_low(reply):
                # can answer a retried request about our own transaction: looked up below
                maybe_ours.append(flight)
            elif _says(reply, _UNDERPRICED):
                priced_out.append(flight)
            else:
                raise TransactionFailed(
                    f"{what}: transaction {flight.index} (nonce {flight.nonce}) was refused: "
                    f"{reply.message}"
                )
        taken = _not_known(rpc, maybe_ours)
        if not taken:
            _reprice(tx, rpc, priced_out, what)
            return
        if attempt == 1 and len(taken) == len(flights):
            # another process used this key since we read its nonce: read it again once
            tx.forget_nonce()
            for flight in flights:
                flight.body["nonce"] = tx.take_nonce()
            continue
        first = min(taken, key=lambda f: f.nonce)
        raise TransactionFailed(
            f"{what}: nonce {first.nonce} was used by a transaction this run did not send "
            "(is another process using this key?)"
        )


def _not_known(rpc: RpcClient, flights: Sequence[Flight]) -> list[Flight]:
    """The flights whose latest hash the node has never seen."""
    if not flights:
        return []
    found = rpc.batch([("eth_getTransactionByHash", [f.hashes[-1]]) for f in flights])
    return [f for f, tx in zip(flights, found, strict=True) if not isinstance(tx, dict)]


def _reprice(tx: Transactor, rpc: RpcClient, refused: Sequence[Flight], what: str) -> None:
    """Sign again with the chain's fees (bumped) and send what was refused for its fee, a
    few rounds at most; what stays refused, or is at the ceiling, waits for the stall
    handling (and times out naming the ceiling)."""
    todo = list(refused)
    for _round in range(REPRICE_ROUNDS):
        if not todo:
            return
        fees_now = tx.build_fees()
        todo = [f for f in todo if _replace(tx, f, fees_now)]
        replies = rpc.batch([("eth_sendRawTransaction", [f.raw]) for f in todo], chunk=100)
        again = []
        for flight, reply in zip(todo, replies, strict=True):
            if (
                not isinstance(reply, RpcError)
                or _says(reply, _ALREADY_IN)
                or _is_nonce_too_low(reply)
            ):
                continue
            if _says(reply, _UNDERPRICED):
                again.append(flight)
                continue
            raise TransactionFailed(
                f"{what}: transaction {flight.index} (nonce {flight.nonce}) was refused: "
                f"{reply.message}"
            )
        todo = again


def _sign(tx: Transactor, flight: Flight) -> None:
    raw = tx.signer.sign_transaction({**flight.body, **flight.fees})
    flight.raw = "0x" + raw.hex()
    flight.hashes.append(Web3.keccak(raw).to_0x_hex())
    flight.sent_at = time.monotonic()


def _says(error: RpcError, words: Sequence[str]) -> bool:
    message = error.message.lower()
    return any(w in message for w in words)


def _is_nonce_too_low(error: RpcError) -> bool:
    """The node refused a nonce already used (geth, anvil: "nonce too low"; Ganache: its
    own words, with both nonces)."""
    found = _GANACHE_NONCE.search(error.message)
    return _says(error, (_NONCE_TOO_LOW,)) or (
        found is not None and int(found.group(2)) < int(found.group(1))
    )


@dataclass
class _Watch:
    """What the receipt poller knows: the last block read, and what the node supports."""

    block: int
    by_block: bool | None = None
    """Whether ``eth_getBlockReceipts`` works here (None: not tried yet)."""


def _fetch_receipts(
    rpc: RpcClient, waiting: Sequence[Flight], watch: _Watch, head: int
) -> dict[int, dict[str, Any]]:
    """Receipts of waiting flights mined in blocks ``watch.block + 1 .. head``, by index."""
    wanted = {h: f for f in waiting for h in f.hashes}
    found: dict[int, dict[str, Any]] = {}
    if watch.by_block is not False and 0 < head - watch.block <= MAX_BLOCKS_PER_POLL:
        blocks = list(range(watch.block + 1, head + 1))
        replies = rpc.batch([("eth_getBlockReceipts", [hex(b)]) for b in blocks])
        for number, reply in zip(blocks, replies, strict=True):
            if isinstance(reply, RpcError):
                watch.by_block = False  # not served here: ask by hash below
                break
            if not isinstance(reply, list):
                break  # this block is not served yet: read it at the next look
            watch.by_block = True
            for receipt in reply:
                flight = wanted.get(HexBytes(receipt["transactionHash"]).to_0x_hex())
                if flight is not None:
                    found[flight.index] = receipt
            watch.block = number
        if watch.by_block is not False:
            return found
    found.update(_fetch_by_hash(rpc, waiting))
    watch.block = head
    return found


def _fetch_by_hash(rpc: RpcClient, waiting: Sequence[Flight]) -> dict[int, dict[str, Any]]:
    """Receipts of waiting flights, asked for by every hash they were sent as (one batch)."""
    asked = [(f, h) for f in waiting for h in f.hashes]
    replies = rpc.batch([("eth_getTransactionReceipt", [h]) for _, h in asked])
    return {f.index: r for (f, _), r in zip(asked, replies, strict=True) if isinstance(r, dict)}


def wait_flights(
    tx: Transactor,
    rpc: RpcClient,
    flights: Sequence[Flight],
    what: str,
    progress: Progress,
    start_block: int,
) -> list[Receipt]:
    """Watch new blocks until every flight has a receipt; resend and replace what is stuck.

    Gives up when no new receipt has come for ``tx.timeout`` seconds, naming the first
    nonce still missing; raises if any transaction reverted.
    """
    receipts: dict[int, dict[str, Any]] = {}
    last_progress = last_resend = last_nudge = time.monotonic()
    local = is_local_chain_id(tx.chain_id)
    poll = POLL_LOCAL if local else POLL_REMOTE
    nudge: bool | None = None if local else False
    watch = _Watch(block=start_block)
    while len(receipts) < len(flights):
        waiting = [f for f in flights if f.index not in receipts]
        head = int(rpc.call("eth_blockNumber", []), 16)
        if head < watch.block:  # the chain was reorganised below what was read
            watch.block = head - 1
        if head > watch.block:
            receipts.update(_fetch_receipts(rpc, waiting, watch, head))
        progress("mined", len(receipts), len(flights))
        now = time.monotonic()
        if len(receipts) > len(flights) - len(waiting):
            last_progress = last_resend = last_nudge = now
            continue
        if now - last_progress > tx.timeout:
            receipts.update(_fetch_by_hash(rpc, waiting))
            if len(receipts) > len(flights) - len(waiting):
                continue
            first = min(waiting, key=lambda f: f.nonce)
            ceiling = (
                f" (offering the most allowed: {tx.max_fee_per_gas // 10**9} gwei per gas)"
                if tx.max_fee_per_gas is not None and _at_ceiling(tx, first)
                else ""
            )
            raise TransactionFailed(
                f"{what}: {len(waiting)} transaction(s) not mined after {tx.timeout:.0f}s "
                f"without progress; first nonce {first.nonce}, no receipt for "
                f"{first.hashes[-1]}" + ceiling
            )
        if now - last_nudge > NUDGE_AFTER:
            if nudge is None:
                nudge = _is_automining(rpc)
            if nudge:
                # anvil's automine mines when a transaction arrives; ready ones left over
                # from a burst bigger than a block wait for an arrival that may not come
                rpc.batch([("evm_mine", [])])
            last_nudge = now
        if now - last_resend > RESEND_AFTER:
            # a block may have been replaced at a height already read: ask by hash
            found = _fetch_by_hash(rpc, waiting)
            if found:
                receipts.update(found)
                continue
            if tx.signer.is_local:
                _resend(tx, rpc, waiting, what)
            last_resend = now
        time.sleep(poll)
    ordered = [Receipt.from_rpc(receipts[f.index]) for f in flights]
    for flight, receipt in zip(flights, ordered, strict=True):
        if receipt.status != 1:
            raise TransactionFailed(explain_revert(rpc, flight.body, receipt, what))
    if tx.confirmations > 1:
        _wait_confirmations(tx, rpc, max(r.block_number for r in ordered), what, poll)
    return ordered


def explain_revert(rpc: RpcClient, body: Mapping[str, Any], receipt: Receipt, what: str) -> str:
    """Why a mined transaction reverted: out of gas (with the limit it had), or the
    contract's reason, found by replaying the call on the state before its block at that
    block's time."""
    limit = int(body.get("gas", 0))
    where = f"{what} reverted in transaction {receipt.tx_hash} (block {receipt.block_number})"
    if limit and receipt.gas_used >= limit * 63 // 64:
        return (
            f"{where}: it ran out of gas (limit {limit:,}, used {receipt.gas_used:,}); "
            "the chain's state changed between the estimate and the run"
        )
    call = _to_call(str(body["from"]), body)
    if limit:
        call["gas"] = hex(limit)
    try:
        mined = rpc.call("eth_getBlockByNumber", [hex(receipt.block_number), False])
        overrides = {"time": mined["timestamp"]}
        before = hex(receipt.block_number - 1)
        (reply,) = rpc.batch([("eth_call", [call, before, None, overrides])])
        if isinstance(reply, RpcError) and not _says(reply, ("revert", "execution")):
            (reply,) = rpc.batch([("eth_call", [call, before])])  # no block overrides here
    except Exception as exc:  # the explanation must not hide the failure itself
        return f"{where} (gas used {receipt.gas_used:,} of {limit:,}; no reason: {exc})"
    if isinstance(reply, RpcError):
        return f"{where}: {reply.message} (gas used {receipt.gas_used:,} of {limit:,})"
    return (
        f"{where} (gas used {receipt.gas_used:,} of {limit:,}); replayed on the state before "
        "its block it succeeds, so a transaction earlier in that block changed what it saw"
    )


def _wait_confirmations(
    tx: Transactor, rpc: RpcClient, mined_in: int, what: str, poll: float
) -> None:
    target = mined_in + tx.confirmations - 1
    deadline = time.monotonic() + tx.timeout
    while int(rpc.call("eth_blockNumber", []), 16) < target:
        if time.monotonic() > deadline:
            raise TransactionFailed(f"{what}: fewer than {tx.confirmations} confirmations")
        time.sleep(max(poll, 0.2))


def _is_automining(rpc: RpcClient) -> bool:
    """True for a local anvil that mines on each transaction's arrival (not one with
    interval or manual mining, whose owner chose when blocks come)."""
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
    resent = [f for f in waiting if f.raw and f.nonce >= mined_nonce]
    replies = rpc.batch([("eth_sendRawTransaction", [f.raw]) for f in resent])
    again = [
        flight
        for flight, reply in zip(resent, replies, strict=True)
        if isinstance(reply, RpcError) and _says(reply, _UNDERPRICED)
    ]
    _reprice(tx, rpc, again, what)


def _at_ceiling(tx: Transactor, flight: Flight) -> bool:
    return tx.max_fee_per_gas is not None and _fee_cap(flight.fees) >= tx.max_fee_per_gas


def _replace(tx: Transactor, flight: Flight, fees_now: dict[str, int]) -> bool:
    """Sign ``flight`` again with raised fees, capped at the ceiling; False (and nothing
    changed) when it already offers the ceiling."""
    fees = raise_fees(flight.fees, fees_now)
    cap = tx.max_fee_per_gas
    if cap is not None and _fee_cap(fees) > cap:
        if _fee_cap(flight.fees) >= cap:
            return False  # already at the ceiling the user set; wait (and time out) instead
        fees = {k: min(v, cap) for k, v in fees.items()}
    flight.fees = fees
    _sign(tx, flight)
    return True
