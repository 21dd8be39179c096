"""Payment channels: customers pay nodes directly with signed cumulative vouchers.

A customer deposits stablecoin into a channel to one node (``send_deposit``) and signs
vouchers as it uses the node (``build_voucher``, ``sign_voucher``): each says "I owe this
node ``cumulative`` base units on this channel so far". The node's operator or attestor
redeems the latest voucher of each channel (``redeem_vouchers``); the chain pays the
difference to what was redeemed before and the router splits it at once. The node's
gateway checks every request's voucher against a cached copy of the chain's channel
state (``VoucherChecker``) without an RPC call.

``Voucher`` mirrors the contract's struct field for field; its EIP-712 type is built from
it. The checks here are the contract's (docs/SPEC.md, "Payment channels"); the reason
codes are ``PaymentChannels.SKIP_*``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from coincurve import PublicKey as CurvePublicKey
from eth_utils.crypto import keccak
from pydantic import ConfigDict, Field

from edgeshare.attestation import (
    SECP256K1_N,
    AbiType,
    Eip712Domain,
    Uint32,
    Uint64,
    Uint256,
    at_most,
    build_eip712_message,
    fetch_domain,
    recover_digest,
    sign_digest,
)
from edgeshare.contracts import get_codec
from edgeshare.errors import InputError, raise_problems
from edgeshare.models import Address, StrictModel, parse_address, read_json_problems
from edgeshare.roles import Action, fetch_chain_time
from edgeshare.rpc import RpcError
from edgeshare.suite import NodeStatus, Suite
from edgeshare.tx import Planned, Transactor

MAX_AMOUNT = 2**128 - 1
"""Deposits, cumulative amounts and thresholds are below 2**128 (PaymentChannels)."""
MAX_BATCH = 100
"""Vouchers per ``redeem_many`` at most."""
DEFAULT_VOUCHER_LIFETIME = 30 * 86_400
"""A voucher's deadline when none is given: 30 days after the chain's time."""

SKIP_NOT_NODE = 1
SKIP_EXPIRED = 2
SKIP_OLD_GENERATION = 3
SKIP_CLOSED = 4
SKIP_NOTHING_NEW = 5
SKIP_NOT_COVERED = 6
SKIP_BAD_SIGNATURE = 7
UNKNOWN_TO_CACHE = 8
"""Only ``VoucherChecker``: the customer or signer is not in its cache yet (refresh it)."""
BELOW_PRICE = 9
"""Only ``VoucherChecker``: the voucher adds less than the request costs."""
SKIP_REASONS = {
    SKIP_NOT_NODE: "no such node, or the caller is not its operator or attestor",
    SKIP_EXPIRED: "past its deadline",
    SKIP_OLD_GENERATION: "of another generation of the channel (it was withdrawn since)",
    SKIP_CLOSED: "the channel is closed: its grace period (or the node's retirement window) "
    "is over",
    SKIP_NOTHING_NEW: "pays nothing new: its cumulative amount was already redeemed",
    SKIP_NOT_COVERED: "the channel's deposit does not cover its cumulative amount",
    SKIP_BAD_SIGNATURE: "not signed by the customer or a signer it authorised",
    UNKNOWN_TO_CACHE: "the channel or signer is not in the cache yet",
    BELOW_PRICE: "adds less than the request costs",
}
"""What each reason code means, for messages."""

_ZERO = "0x" + "00" * 20


class Voucher(StrictModel):
    """What a customer (or its authorised signer) signs: EIP-712 primary type ``Voucher``."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, populate_by_name=True, serialize_by_alias=True
    )

    node_id: Annotated[Uint256, Field(alias="nodeId", ge=1)]
    """The node the channel pays."""
    customer: Annotated[Address, Field(alias="customer"), AbiType("address")]
    """Whose channel (who deposited)."""
    generation: Annotated[Uint32, Field(alias="generation")]
    """The channel's generation: bumped by every withdrawal, so vouchers of a closed
    channel never draw on a later deposit."""
    cumulative: Annotated[Uint256, Field(alias="cumulative"), at_most(MAX_AMOUNT)]
    """Stablecoin base units the customer owes the node on this channel so far."""
    deadline: Annotated[Uint64, Field(alias="deadline")]
    """Unix time after which the voucher cannot be redeemed."""

    def as_tuple(self) -> tuple[Any, ...]:
        """The voucher as the contract's struct tuple, in field order."""
        return (self.node_id, self.customer, self.generation, self.cumulative, self.deadline)


def _abi_type(name: str) -> str:
    for item in Voucher.model_fields[name].metadata:
        if isinstance(item, AbiType):
            return str(item)
    raise TypeError(f"Voucher.{name} has no AbiType")  # pragma: no cover - a coding bug


VOUCHER_FIELDS: list[dict[str, str]] = [
    {"name": str(f.alias), "type": _abi_type(name)} for name, f in Voucher.model_fields.items()
]
"""The EIP-712 type of Voucher, as eth_account and ethers.js take it."""
VOUCHER_TYPE_STRING = (
    "Voucher(" + ",".join(f"{f['type']} {f['name']}" for f in VOUCHER_FIELDS) + ")"
)
VOUCHER_TYPE_HASH = keccak(text=VOUCHER_TYPE_STRING)


class SignedVoucher(Voucher):
    """A voucher with its signature (r || s || v, 65 bytes, hex)."""

    signature: Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{130}$")]
    """The customer's (or its signer's) EIP-712 signature."""

    def get_voucher(self) -> Voucher:
        """The voucher without its signature (already validated: not validated again)."""
        return Voucher.model_construct(**{n: getattr(self, n) for n in Voucher.model_fields})

    def get_signature_bytes(self) -> bytes:
        """The signature as 65 bytes."""
        return bytes.fromhex(self.signature[2:])


class VouchersFile(StrictModel):
    """What ``edgeshare channel voucher`` prints and ``edgeshare channel redeem`` reads."""

    domain: Eip712Domain
    """The channels contract's domain every voucher was signed for."""
    vouchers: list[SignedVoucher]
    """The vouchers."""


def _words(node_id: int, customer: str, generation: int, cumulative: int, deadline: int) -> bytes:
    return (
        node_id.to_bytes(32, "big")
        + bytes(12)
        + bytes.fromhex(customer[2:])
        + generation.to_bytes(32, "big")
        + cumulative.to_bytes(32, "big")
        + deadline.to_bytes(32, "big")
    )


def get_voucher_digest(
    voucher: Voucher, domain: Eip712Domain, separator: bytes | None = None
) -> bytes:
    """The EIP-712 digest of ``voucher`` in ``domain`` (pass ``separator`` to reuse it)."""
    sep = separator if separator is not None else domain.get_separator()
    struct_hash = keccak(VOUCHER_TYPE_HASH + _words(*voucher.as_tuple()))
    return keccak(b"\x19\x01" + sep + struct_hash)


def build_voucher_typed_data(voucher: Voucher, domain: Eip712Domain) -> dict[str, Any]:
    """The full EIP-712 message, for wallets (``eth_signTypedData_v4``) and other clients."""
    return build_eip712_message(
        "Voucher", VOUCHER_FIELDS, domain, voucher.model_dump(by_alias=True)
    )


def sign_voucher(
    voucher: Voucher, key: bytes | str, domain: Eip712Domain, separator: bytes | None = None
) -> SignedVoucher:
    """Sign ``voucher`` with the customer's (or its authorised signer's) ``key``."""
    signature = sign_digest(get_voucher_digest(voucher, domain, separator), key)
    fields = {name: getattr(voucher, name) for name in Voucher.model_fields}
    return SignedVoucher.model_construct(**fields, signature="0x" + signature.hex())


def recover_voucher_signer(signed: SignedVoucher, domain: Eip712Domain) -> str:
    """Who signed ``signed`` (the contract's rules: low-s, v of 27 or 28).

    Raises:
        InputError: the signature is malformed or recovers nothing.
    """
    digest = get_voucher_digest(signed.get_voucher(), domain)
    return recover_digest(digest, signed.get_signature_bytes())


def fetch_channels_domain(suite: Suite) -> Eip712Domain:
    """The channels contract's EIP-712 domain, read from the chain (EIP-5267)."""
    return fetch_domain(suite.channels)


def read_vouchers_file(path: Path) -> VouchersFile:
    """Read and validate a vouchers file, naming every problem at once.

    Raises:
        InputError: unreadable, not JSON, or not a vouchers file (each problem named).
    """
    parsed, problems = read_json_problems(path, VouchersFile)
    if parsed is None:
        raise_problems(problems)
    assert parsed is not None
    return parsed


# ----------------------------------------------------------------- channel state ----


class ChannelRecord(StrictModel):
    """One customer's channel to one node, as the contract reports it."""

    customer: Address
    node_id: int
    deposited: int
    """Deposited in this generation (base units)."""
    redeemed: int
    """Redeemed in this generation: the cumulative amount of the last voucher paid."""
    unredeemed: int
    """Still the customer's: deposited - redeemed."""
    generation: int
    """What a voucher must name."""
    closes_at: int
    """When a requested close ends the node's grace (0: no close requested)."""
    withdrawable_at: int
    """When the customer can withdraw the rest (0: not until a close is requested)."""
    low_balance_threshold: int
    """A redemption that takes ``unredeemed`` below it logs LowBalance (0: never)."""

    def is_closed_at(self, now: int) -> bool:
        """True once vouchers no longer redeem: the grace or retirement window is over."""
        return self.withdrawable_at != 0 and now >= self.withdrawable_at


def fetch_channels(suite: Suite, pairs: Sequence[tuple[str, int]]) -> list[ChannelRecord]:
    """Each (customer, node)'s channel, in one batch of reads."""
    calls = [suite.channels.read("channel", customer, node_id) for customer, node_id in pairs]
    rows = suite.reader.many(calls) if calls else []
    return [
        ChannelRecord(customer=customer, node_id=node_id, **dict(row))
        for (customer, node_id), row in zip(pairs, rows, strict=True)
    ]


def fetch_channel(suite: Suite, customer: str, node_id: int) -> ChannelRecord:
    """One channel."""
    return fetch_channels(suite, [(customer, node_id)])[0]


def fetch_customer_nodes(suite: Suite, customer: str) -> list[int]:
    """The nodes ``customer`` has deposited to (from the channels' Deposited logs)."""
    topic = "0x" + bytes(12).hex() + customer.lower()[2:]
    event_topic = "0x" + get_codec("PaymentChannels").event("Deposited").topic.hex()
    logs = _get_logs(suite, [event_topic, topic])
    return sorted({int(log["topics"][2], 16) for log in logs})


def _get_logs(suite: Suite, topics: list[Any]) -> list[dict[str, Any]]:
    params = {
        "address": suite.channels.address,
        "fromBlock": hex(suite.manifest.block),
        "toBlock": "latest",
        "topics": topics,
    }
    try:
        return list(suite.rpc.call("eth_getLogs", [params]))
    except RpcError as exc:
        raise RpcError(
            exc.code,
            f"the node refused the deposit logs since block {suite.manifest.block} "
            f"({exc.message}); "
            "name the node instead: `edgeshare channel status NODE_ID`",
        ) from None


# ------------------------------------------------------------------ customers ----


def _require_node(suite: Suite, node_id: int) -> None:
    count = int(suite.registry.call("node_count"))
    if not 1 <= node_id <= count:
        raise InputError(f"node {node_id} does not exist (the registry has {count} node(s))")


def _require_amount(amount: int, what: str) -> None:
    if not 0 < amount <= MAX_AMOUNT:
        raise InputError(f"{what} must be 1 to 2**128 - 1 base units, got {amount}")


def send_deposit(tx: Transactor, suite: Suite, node_id: int, amount: int) -> Action:
    """Open or top up the signer's channel to ``node_id`` with ``amount`` base units,
    approving the channels contract first if needed. A deposit during a close's grace
    cancels the close."""
    _require_amount(amount, "the deposit")
    _require_node(suite, node_id)
    customer = tx.signer.address
    coin, channels = suite.stablecoin, suite.channels
    paused, retired, balance, allowance = suite.reader.many(
        [
            suite.registry.read("paused"),
            suite.registry.read("retired_from", node_id),
            coin.read("balanceOf", customer),
            coin.read("allowance", customer, channels.address),
        ]
    )
    if paused:
        raise InputError("the suite is paused: no deposits until the guardian resumes it")
    if retired:
        raise InputError(f"node {node_id} is retired: it takes no deposits")
    channel = fetch_channel(suite, customer, node_id)
    now = fetch_chain_time(suite)
    if channel.closes_at and now >= channel.closes_at:
        raise InputError(
            f"your channel to node {node_id} is closed (its grace ended): "
            f"`edgeshare channel withdraw {node_id}` first, then deposit again"
        )
    if channel.deposited + amount > MAX_AMOUNT:
        raise InputError("the channel's deposits would exceed 2**128 - 1 base units")
    unit = suite.fetch_stablecoin_token()
    if balance < amount:
        raise InputError(
            f"{customer} holds {unit.format(balance)}; the deposit needs {unit.format(amount)}"
        )
    what = f"deposit into the channel to node {node_id}"
    if allowance < amount:
        tx.send(coin.tx("approve", channels.address, amount), "approve the channels contract")
        if tx.dry_run:
            # the deposit needs the approval, which a dry run does not apply: checked above
            data = channels.calldata("deposit", node_id, amount)
            tx.planned.append(Planned(what, channels.address, data, 0, 0))
            return Action(what, "", 0, {"amount": amount})
    receipt = tx.send(channels.tx("deposit", node_id, amount), what)
    details: dict[str, Any] = {"amount": amount, "unredeemed": channel.unredeemed + amount}
    if not receipt.is_simulated:
        found = channels.events(receipt, "Deposited")
        details = {"amount": int(found[0]["amount"]), "unredeemed": int(found[0]["unredeemed"])}
        details["close_cancelled"] = bool(channels.events(receipt, "CloseCancelled"))
    return Action(what, receipt.tx_hash, receipt.gas_used, details)


def send_authorize_signer(tx: Transactor, suite: Suite, node_id: int, signer: str) -> Action:
    """Let ``signer`` (an app's hot key) sign vouchers for the signer's channel to ``node_id``."""
    signer = parse_address(signer, "signer")
    _require_node(suite, node_id)
    if signer.lower() == tx.signer.address.lower():
        raise InputError("you always sign for your own channel: authorise another key")
    if signer == _ZERO:
        raise InputError("the signer must not be the zero address")
    what = f"authorise {signer} to sign vouchers for node {node_id}"
    receipt = tx.send(suite.channels.tx("authorize_signer", node_id, signer), what)
    return Action(what, receipt.tx_hash, receipt.gas_used, {"signer": signer})


def send_revoke_signer(tx: Transactor, suite: Suite, node_id: int, signer: str) -> Action:
    """Revoke ``signer``: its vouchers stop paying after the channels' grace period."""
    signer = parse_address(signer, "signer")
    until = int(suite.channels.call("signer_valid_until", tx.signer.address, node_id, signer))
    if until <= fetch_chain_time(suite):
        raise InputError(f"{signer} is not authorised for your channel to node {node_id}")
    what = f"revoke {signer} for node {node_id}"
    receipt = tx.send(suite.channels.tx("revoke_signer", node_id, signer), what)
    details: dict[str, Any] = {"signer": signer}
    if not receipt.is_simulated:
        details["effective_at"] = int(
            suite.channels.events(receipt, "SignerRevoked")[0]["effective_at"]
        )
    return Action(what, receipt.tx_hash, receipt.gas_used, details)


def send_set_low_balance(tx: Transactor, suite: Suite, node_id: int, threshold: int) -> Action:
    """Ask for a LowBalance event when the channel's unredeemed deposit falls below
    ``threshold`` base units (0: never)."""
    if not 0 <= threshold <= MAX_AMOUNT:
        raise InputError(f"the threshold must be 0 to 2**128 - 1 base units, got {threshold}")
    _require_node(suite, node_id)
    what = f"set the low-balance threshold of the channel to node {node_id}"
    args = (node_id, threshold)
    receipt = tx.send(suite.channels.tx("set_low_balance_threshold", *args), what)
    return Action(what, receipt.tx_hash, receipt.gas_used, {"threshold": threshold})


def send_request_close(tx: Transactor, suite: Suite, node_id: int) -> Action:
    """Start closing the signer's channel to ``node_id``: the node can redeem during the
    grace period, then ``send_withdraw_channel`` pays the rest back."""
    channel = fetch_channel(suite, tx.signer.address, node_id)
    if channel.deposited == 0:
        raise InputError(f"you have no deposit in a channel to node {node_id}")
    if channel.closes_at:
        raise InputError(
            f"the close of your channel to node {node_id} was already requested; "
            f"you can withdraw from {channel.closes_at} (unix time)"
        )
    what = f"request closing the channel to node {node_id}"
    grace = int(suite.channels.call("CLOSE_GRACE"))
    receipt = tx.send(suite.channels.tx("request_close", node_id), what)
    details: dict[str, Any] = {"closes_at": fetch_chain_time(suite) + grace, "grace": grace}
    if not receipt.is_simulated:
        details["closes_at"] = int(suite.channels.events(receipt, "CloseRequested")[0]["closes_at"])
    return Action(what, receipt.tx_hash, receipt.gas_used, details)


def send_withdraw_channel(tx: Transactor, suite: Suite, node_id: int) -> Action:
    """Withdraw the unredeemed rest of the signer's channel to ``node_id`` once its grace
    (or a retired node's final window) has passed; the channel starts again empty."""
    channel = fetch_channel(suite, tx.signer.address, node_id)
    now = fetch_chain_time(suite)
    if channel.withdrawable_at == 0:
        raise InputError(
            f"request the close first (`edgeshare channel close {node_id}`); the node can "
            "redeem during the grace period, then you withdraw"
        )
    if now < channel.withdrawable_at:
        raise InputError(
            f"the grace period of your channel to node {node_id} runs until "
            f"{channel.withdrawable_at} (unix time; {channel.withdrawable_at - now} s from now)"
        )
    what = f"withdraw the channel to node {node_id}"
    receipt = tx.send(suite.channels.tx("withdraw", node_id), what)
    amount = channel.unredeemed
    if not receipt.is_simulated:
        amount = int(suite.channels.events(receipt, "ChannelWithdrawn")[0]["amount"])
    return Action(what, receipt.tx_hash, receipt.gas_used, {"amount": amount})


def build_voucher(
    suite: Suite, customer: str, node_id: int, cumulative: int, deadline: int | None = None
) -> Voucher:
    """A voucher for ``customer``'s channel to ``node_id`` at its current generation.

    Raises:
        InputError: no deposit, a closed channel, or a cumulative amount that the deposit
            does not cover or that was already redeemed.
    """
    channel = fetch_channel(suite, customer, node_id)
    now = fetch_chain_time(suite)
    unit = suite.fetch_stablecoin_token()
    if channel.deposited == 0:
        raise InputError(f"{customer} has no deposit in a channel to node {node_id}")
    if channel.is_closed_at(now):
        raise InputError(f"the channel of {customer} to node {node_id} is closed")
    if cumulative > channel.deposited:
        raise InputError(
            f"cumulative {unit.format(cumulative)} exceeds the channel's deposits "
            f"{unit.format(channel.deposited)}: deposit more first"
        )
    if cumulative <= channel.redeemed:
        raise InputError(
            f"cumulative {unit.format(cumulative)} is not above what was already redeemed "
            f"({unit.format(channel.redeemed)}): such a voucher pays nothing"
        )
    due = deadline if deadline is not None else now + DEFAULT_VOUCHER_LIFETIME
    return Voucher(
        node_id=node_id,
        customer=customer,
        generation=channel.generation,
        cumulative=cumulative,
        deadline=due,
    )


# -------------------------------------------------------------------- redeeming ----


@dataclass
class RedeemResult:
    """What one redeem run did."""

    total: int
    """Vouchers given."""
    redeemed: int = 0
    """Vouchers that paid."""
    amount: int = 0
    """Base units redeemed (the node's gross revenue from them)."""
    skipped: list[tuple[SignedVoucher, int]] = field(default_factory=list)
    """Vouchers that would pay nothing, with the reason code (``SKIP_REASONS``)."""
    superseded: int = 0
    """Vouchers left out because a later voucher of the same channel was given."""
    transactions: list[str] = field(default_factory=list)
    gas_used: int = 0


def _latest_per_channel(vouchers: Iterable[SignedVoucher]) -> tuple[list[SignedVoucher], int]:
    best: dict[tuple[int, str, int], SignedVoucher] = {}
    count = 0
    for v in vouchers:
        count += 1
        key = (v.node_id, v.customer.lower(), v.generation)
        if key not in best or v.cumulative > best[key].cumulative:
            best[key] = v
    latest = sorted(best.values(), key=lambda v: (v.node_id, v.customer.lower()))
    return latest, count - len(latest)


def find_signature_problems(
    suite: Suite, vouchers: Sequence[SignedVoucher], domain: Eip712Domain
) -> list[str]:
    """Every voucher whose signature is malformed, or recovers to neither its customer nor
    a signer the customer has authorised for the node (read from the chain in one batch)."""
    problems: list[str] = []
    delegated: list[tuple[int, SignedVoucher, str]] = []
    for i, v in enumerate(vouchers):
        try:
            signer = recover_voucher_signer(v, domain)
        except InputError as exc:
            problems.append(f"voucher {i} (node {v.node_id}, customer {v.customer}): {exc}")
            continue
        if signer.lower() != v.customer.lower():
            delegated.append((i, v, signer))
    reads = [
        suite.channels.read("signer_valid_until", v.customer, v.node_id, signer)
        for _, v, signer in delegated
    ]
    now = fetch_chain_time(suite) if reads else 0
    for (i, v, signer), until in zip(delegated, suite.reader.many(reads), strict=True):
        if int(until) <= now:
            problems.append(
                f"voucher {i} (node {v.node_id}, customer {v.customer}): signed by {signer}, "
                "which is neither the customer nor a signer it authorised (or it was revoked)"
            )
    return problems


def check_on_chain(
    suite: Suite, vouchers: Sequence[SignedVoucher], caller: str
) -> list[tuple[int, int]]:
    """(amount, reason) of each voucher as ``redeem_many`` would decide it now."""
    calls = [
        suite.channels.read("check", v.as_tuple(), v.get_signature_bytes(), caller)
        for v in vouchers
    ]
    return [(int(a), int(r)) for a, r in suite.reader.many(calls)] if calls else []


def redeem_vouchers(
    tx: Transactor,
    suite: Suite,
    vouchers: Sequence[SignedVoucher],
    domain: Eip712Domain,
    *,
    batch_size: int = MAX_BATCH,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> RedeemResult:
    """Redeem the latest voucher of every channel among ``vouchers``, skipping those
    that would pay nothing now (already redeemed, not covered, expired, of a withdrawn or
    closed channel): running it again redeems nothing twice. A voucher that is not the
    customer's or an authorised signer's, or of a node the signer does not run, is an
    error in the input: nothing is sent, and every such voucher is named.

    Args:
        tx: The node's operator or attestor.
        suite: The deployed suite.
        vouchers: Signed vouchers (any order, any channels and nodes).
        domain: The domain the vouchers were signed for: must be this suite's channels'.
        batch_size: Vouchers per transaction (1 to 100).
        on_progress: Called with (stage, done, total).

    Raises:
        InputError: a domain of another chain or contract, a bad batch size, or
            vouchers that are badly signed or not the signer's to redeem.
    """
    if not 1 <= batch_size <= MAX_BATCH:
        raise InputError(f"batch size must be 1 to {MAX_BATCH}, got {batch_size}")
    chain_domain = fetch_channels_domain(suite)
    if chain_domain != domain:
        raise InputError(
            f"the vouchers were signed for chain {domain.chain_id} channels "
            f"{domain.verifying_contract}, but this suite is chain {chain_domain.chain_id} "
            f"channels {chain_domain.verifying_contract}"
        )
    raise_problems(find_signature_problems(suite, vouchers, domain))
    latest, superseded = _latest_per_channel(vouchers)
    result = RedeemResult(total=len(vouchers), superseded=superseded)
    verdicts = check_on_chain(suite, latest, tx.signer.address)
    raise_problems(
        [
            f"node {v.node_id} customer {v.customer}: {SKIP_REASONS[SKIP_NOT_NODE]} "
            f"({tx.signer.address} redeems)"
            for v, (_, reason) in zip(latest, verdicts, strict=True)
            if reason == SKIP_NOT_NODE
        ]
    )
    payable = []
    for voucher, (amount, reason) in zip(latest, verdicts, strict=True):
        if reason:
            result.skipped.append((voucher, reason))
        elif amount:
            payable.append(voucher)
    progress = on_progress or (lambda _stage, _done, _total: None)
    batches = [payable[i : i + batch_size] for i in range(0, len(payable), batch_size)]
    for done, batch in enumerate(batches):
        progress("redeem vouchers", done, len(batches))
        args = ([v.as_tuple() for v in batch], b"".join(v.get_signature_bytes() for v in batch))
        receipt = tx.send(suite.channels.tx("redeem_many", *args), "redeem vouchers")
        result.gas_used += receipt.gas_used
        if receipt.is_simulated:
            continue
        result.transactions.append(receipt.tx_hash)
        paid = suite.channels.events(receipt, "VoucherRedeemed")
        result.redeemed += len(paid)
        result.amount += sum(int(e["amount"]) for e in paid)
        for skipped in suite.channels.events(receipt, "VoucherSkipped"):
            # someone redeemed between our check and the block: name it, it paid nothing
            match = next(
                v
                for v in batch
                if v.customer.lower() == str(skipped["customer"]).lower()
                and v.node_id == int(skipped["node_id"])
            )
            result.skipped.append((match, int(skipped["reason"])))
    if tx.dry_run:
        result.redeemed = len(payable)
        result.amount = sum(a for (a, r) in verdicts if not r)
    progress("redeem vouchers", len(batches), len(batches))
    return result


# ------------------------------------------------------- the gateway's hot path ----


@dataclass
class CachedChannel:
    """What ``VoucherChecker`` keeps of one customer's channel to its node."""

    deposited: int
    redeemed: int
    generation: int
    closes_at: int
    """0: open with no close requested; else when vouchers stop redeeming."""
    accepted: int = 0
    """The highest cumulative amount this checker accepted (served against) so far."""
    signers: dict[bytes, int] = field(default_factory=dict)
    """Authorised signers (20-byte addresses) and until when their vouchers are valid."""


@dataclass(frozen=True)
class VoucherVerdict:
    """A voucher's check: what it adds, or why it is refused (a ``SKIP_REASONS`` code)."""

    amount: int
    reason: int = 0

    @property
    def ok(self) -> bool:
        """True when the voucher would redeem (and, with a price, pays for the request)."""
        return self.reason == 0

    def describe(self) -> str:
        """The refusal in words ("" when accepted)."""
        return SKIP_REASONS.get(self.reason, f"reason {self.reason}") if self.reason else ""


@dataclass
class VoucherChecker:
    """Checks vouchers for one node the way ``redeem_many`` will, from cached chain state.

    ``check`` makes no RPC call: a customer or signer it has not seen yet is refused with
    ``UNKNOWN_TO_CACHE``, and ``refresh`` (off the hot path) reads it from the chain. The
    cache is refreshed after every redemption and deposit the gateway learns of.
    """

    node_id: int
    separator: bytes
    """The channels contract's EIP-712 domain separator."""
    closes_at: int
    """When a retired node's final window ends (0: not retired)."""
    channels: dict[bytes, CachedChannel] = field(default_factory=dict)

    @classmethod
    def load(cls, suite: Suite, node_id: int, customers: Sequence[str] = ()) -> VoucherChecker:
        """A checker for ``node_id``, with ``customers``' channels cached."""
        domain = fetch_channels_domain(suite)
        checker = cls(node_id=node_id, separator=domain.get_separator(), closes_at=0)
        checker.refresh(suite, customers)
        return checker

    def refresh(self, suite: Suite, customers: Sequence[str], signers: Sequence[str] = ()) -> None:
        """Read ``customers``' channels (and, for each, ``signers``' validity) again."""
        node = suite.fetch_node(self.node_id)
        if node.status == NodeStatus.RETIRED.name:
            retired = int(suite.registry.call("retired_from", self.node_id))
            grace = int(suite.channels.call("CLOSE_GRACE"))
            self.closes_at = int(suite.registry.call("epoch_start", retired)) + grace
        records = fetch_channels(suite, [(c, self.node_id) for c in customers])
        reads = [
            suite.channels.read("signer_valid_until", c, self.node_id, s)
            for c in customers
            for s in signers
        ]
        validity = iter(suite.reader.many(reads) if reads else [])
        for customer, record in zip(customers, records, strict=True):
            key = bytes.fromhex(customer[2:])
            cached = self.channels.get(key)
            accepted = cached.accepted if cached and cached.generation == record.generation else 0
            known = dict(cached.signers) if cached else {}
            self.channels[key] = CachedChannel(
                deposited=record.deposited,
                redeemed=record.redeemed,
                generation=record.generation,
                closes_at=record.closes_at,
                accepted=max(accepted, record.redeemed),
                signers=known,
            )
            for s in signers:
                self.channels[key].signers[bytes.fromhex(s[2:])] = int(next(validity))

    def check(self, voucher: SignedVoucher, now: int, price: int = 0) -> VoucherVerdict:
        """Check ``voucher`` at unix time ``now``; with ``price``, it must also add at
        least ``price`` over the last voucher this checker accepted."""
        return self.check_fields(
            voucher.node_id,
            voucher.customer,
            voucher.generation,
            voucher.cumulative,
            voucher.deadline,
            voucher.get_signature_bytes(),
            now,
            price,
        )

    def check_fields(
        self,
        node_id: int,
        customer: str,
        generation: int,
        cumulative: int,
        deadline: int,
        signature: bytes,
        now: int,
        price: int = 0,
    ) -> VoucherVerdict:
        """``check`` on the voucher's fields (the gateway parses them from a header)."""
        if node_id != self.node_id:
            return VoucherVerdict(0, SKIP_NOT_NODE)
        if now > deadline:
            return VoucherVerdict(0, SKIP_EXPIRED)
        key = bytes.fromhex(customer[2:])
        channel = self.channels.get(key)
        if channel is None:
            return VoucherVerdict(0, UNKNOWN_TO_CACHE)
        if generation != channel.generation:
            return VoucherVerdict(0, SKIP_OLD_GENERATION)
        if (channel.closes_at and now >= channel.closes_at) or (
            self.closes_at and now >= self.closes_at
        ):
            return VoucherVerdict(0, SKIP_CLOSED)
        if cumulative <= channel.redeemed:
            return VoucherVerdict(0, SKIP_NOTHING_NEW)
        if cumulative > channel.deposited or cumulative > MAX_AMOUNT:
            return VoucherVerdict(0, SKIP_NOT_COVERED)
        signer = _recover(
            self.separator, node_id, customer, generation, cumulative, deadline, signature
        )
        if signer is None:
            return VoucherVerdict(0, SKIP_BAD_SIGNATURE)
        if signer != key:
            until = channel.signers.get(signer)
            if until is None:
                return VoucherVerdict(0, UNKNOWN_TO_CACHE)
            if until <= now:
                return VoucherVerdict(0, SKIP_BAD_SIGNATURE)
        if price and cumulative - max(channel.accepted, channel.redeemed) < price:
            return VoucherVerdict(0, BELOW_PRICE)
        return VoucherVerdict(cumulative - channel.redeemed)

    def accept(self, customer: str, cumulative: int) -> None:
        """Note that the node served against a voucher of ``cumulative`` (see ``price``)."""
        channel = self.channels[bytes.fromhex(customer[2:])]
        channel.accepted = max(channel.accepted, cumulative)


def _recover(
    separator: bytes,
    node_id: int,
    customer: str,
    generation: int,
    cumulative: int,
    deadline: int,
    sig: bytes,
) -> bytes | None:
    # the contract's rules (low-s, v 27/28, a key), without exceptions for the hot path
    if len(sig) != 65 or sig[64] not in (27, 28):
        return None
    s = int.from_bytes(sig[32:64], "big")
    if not 0 < s <= SECP256K1_N // 2:
        return None
    struct_hash = keccak(
        VOUCHER_TYPE_HASH + _words(node_id, customer, generation, cumulative, deadline)
    )
    digest = keccak(b"\x19\x01" + separator + struct_hash)
    try:
        public_key = CurvePublicKey.from_signature_and_message(
            sig[:64] + bytes([sig[64] - 27]), digest, hasher=None
        ).format(compressed=False)
    except Exception:
        return None
    return keccak(public_key[1:])[12:]
