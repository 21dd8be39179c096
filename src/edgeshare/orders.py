"""Signed orders for node shares (and baskets): the share market's off-chain half.

A maker builds an order (``build_order``), signs it (``sign_order``; EIP-712 in the
market's domain, "EdgeShare Market" version 1) and hands the file to anyone
(``write_orders_file``). A taker reads it (``read_orders_file``) and fills it
(``send_fill``), whole or in parts; the maker may cancel it (``send_cancel``) or every
order it signed so far at once (``send_cancel_all``). ``check_orders`` asks the chain
what each order is now (open, filled, cancelled, expired, ...) as the market's own
``check`` decides it. A sell order may carry an EIP-2612 permit of the maker's shares for
the market (``sign_permit``), so the maker sends no approval: the taker submits it first.

``Order`` mirrors the contract's struct field for field; its EIP-712 type is built from
it. The rules and reason codes are the contract's (docs/SPEC.md, "Share market"):
``ShareMarket.vy`` decides every fill through one function, which ``check`` exposes, and
nothing here sends a fill that ``check`` refuses.

Amounts are integers of base units: shares (and basket units) have 18 decimals,
``price_per_share`` is stablecoin base units per whole share (10**18 base units).

Order files (what ``edgeshare trade sell|buy`` write) are JSON::

    {"domain": {"name": "EdgeShare Market", "version": "1", "chain_id": 1,
                "verifying_contract": "0x..."},
     "orders": [{"maker": "0x...", "share": "0x...", "sell": true,
                 "amount": "10000000000000000000", "price_per_share": "2500000",
                 "min_fill": "0", "expiry": 1767225600, "nonce": "0", "salt": "123...",
                 "signature": "0x...", "permit": {...}}]}

``domain`` may be left out; a file may also be one signed order object by itself (what
another client may write). The uint256 fields are written as decimal strings (every
share amount and salt is beyond what a JavaScript number holds exactly) and read as
strings or integers.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from eth_utils.crypto import keccak
from pydantic import Field, PlainSerializer

from edgeshare.attestation import (
    AbiType,
    Eip712Domain,
    Uint64,
    Uint256,
    build_eip712_message,
    fetch_domain,
    recover_digest,
    sign_digest,
)
from edgeshare.contracts import Contract
from edgeshare.errors import CallFailed, InputError, raise_problems
from edgeshare.models import Address, StrictModel, parse_address, read_json_problems, read_text_file
from edgeshare.roles import Action, fetch_chain_time
from edgeshare.rpc import RpcError
from edgeshare.suite import Suite
from edgeshare.tx import Planned, Transactor
from edgeshare.units import SHARE_DECIMALS, Token

SHARE_UNIT = 10**18
"""``price_per_share`` is stablecoin base units per this many share base units."""
UINT256_MAX = 2**256 - 1
UINT64_MAX = 2**64 - 1
DEFAULT_ORDER_LIFETIME = 7 * 86_400
"""An order's expiry when none is given: 7 days after the chain's time."""
MARKET_DOMAIN_NAME = "EdgeShare Market"
"""The market's EIP-712 domain name (version "1")."""
_ZERO = "0x" + "00" * 20

# The market's reason codes (ShareMarket.vy), in the order its `_quote` checks them.
OK = 0
NOT_TRADABLE = 1
EXPIRED = 2
CANCELLED = 3
OLD_NONCE = 4
BAD_SIGNATURE = 5
SELF_TRADE = 6
ZERO_AMOUNT = 7
FILLED = 8
OVERFILL = 9
BELOW_MIN_FILL = 10
DUST = 11
ZERO_COST = 12
COST_OVERFLOW = 13
MAKER_BALANCE = 14
MAKER_ALLOWANCE = 15
TAKER_BALANCE = 16
TAKER_ALLOWANCE = 17

REASON_STATES = {
    OK: "open",
    NOT_TRADABLE: "not tradable",
    EXPIRED: "expired",
    CANCELLED: "cancelled",
    OLD_NONCE: "old nonce",
    BAD_SIGNATURE: "bad signature",
    SELF_TRADE: "own order",
    ZERO_AMOUNT: "zero amount",
    FILLED: "filled",
    OVERFILL: "above remaining",
    BELOW_MIN_FILL: "below min fill",
    DUST: "leaves dust",
    ZERO_COST: "zero cost",
    COST_OVERFLOW: "cost overflows",
    MAKER_BALANCE: "maker balance short",
    MAKER_ALLOWANCE: "maker allowance short",
    TAKER_BALANCE: "taker balance short",
    TAKER_ALLOWANCE: "taker allowance short",
}
"""The short name of each reason code: what ``trade book`` shows as an order's state."""
REASON_TEXTS = {
    OK: "it fills",
    NOT_TRADABLE: "the token is neither a share of this suite's registry nor a basket of "
    "its factory",
    EXPIRED: "the order is past its expiry",
    CANCELLED: "the maker cancelled the order",
    OLD_NONCE: "the maker cancelled all its orders since (cancel-all): the order's nonce is "
    "not the maker's current one",
    BAD_SIGNATURE: "the signature is not the maker's",
    SELF_TRADE: "the taker is the order's maker",
    ZERO_AMOUNT: "the fill is of nothing",
    FILLED: "nothing of the order remains: it was filled in full",
    OVERFILL: "the fill is above what remains of the order",
    BELOW_MIN_FILL: "the fill is below the order's min_fill and not the whole remainder",
    DUST: "the fill would leave a remainder below the order's min_fill",
    ZERO_COST: "the fill would cost nothing (rounded down)",
    COST_OVERFLOW: "amount * price_per_share overflows",
    MAKER_BALANCE: "the maker lacks its leg (shares of a sell order, stablecoin of a buy order)",
    MAKER_ALLOWANCE: "the maker has not approved the market for its leg",
    TAKER_BALANCE: "the taker lacks its leg (stablecoin for a sell order, shares for a buy order)",
    TAKER_ALLOWANCE: "the taker has not approved the market for its leg",
}
"""What each reason code means, for messages."""
VOID_REASONS = frozenset({NOT_TRADABLE, EXPIRED, CANCELLED, OLD_NONCE, BAD_SIGNATURE, FILLED})
"""Reasons no fill of the order can ever get past (whatever the amount, whoever fills)."""


class OrderNotFillable(InputError):
    """The market would refuse the fill (``reason`` is its code); nothing was sent."""

    def __init__(self, message: str, reason: int) -> None:
        super().__init__(message)
        self.reason = reason


_as_decimal = PlainSerializer(str, return_type=str, when_used="json")
BigUint = Annotated[Uint256, _as_decimal]
"""A uint256 read from a JSON integer or decimal string, written as a decimal string."""


class Order(StrictModel):
    """What a maker signs: EIP-712 primary type ``Order`` of the share market."""

    maker: Annotated[Address, AbiType("address")]
    """Who signs, sells (``sell``) or buys, and pays or is paid; an EOA."""
    share: Annotated[Address, AbiType("address")]
    """The token traded: a node share of the suite's registry, or a basket of its factory."""
    sell: Annotated[bool, AbiType("bool")]
    """True: the maker sells shares and the taker pays; false: the maker buys and pays."""
    amount: Annotated[BigUint, Field(ge=1)]
    """Share base units (18 decimals) the order trades at most, over all its fills."""
    price_per_share: BigUint
    """Stablecoin base units per whole share (10**18 share base units)."""
    min_fill: BigUint
    """The smallest fill, except one that takes the whole remainder (0: any)."""
    expiry: Uint64
    """Unix time; the order fills while the chain's time is at most this."""
    nonce: BigUint
    """The maker's market nonce when signing: ``cancel_all`` moves it on, voiding the order."""
    salt: BigUint
    """Random: makes two otherwise equal orders two orders."""

    def as_tuple(self) -> tuple[Any, ...]:
        """The order as the contract's struct tuple, in field order."""
        return tuple(getattr(self, name) for name in Order.model_fields)

    def get_full_cost(self) -> int:
        """The stablecoin a fill of the whole order costs (the market's rounding: up for a
        sell order, down for a buy order, in the maker's favour)."""
        return get_fill_cost(self, self.amount)


def get_fill_cost(order: Order, amount: int) -> int:
    """What a fill of ``amount`` share base units of ``order`` costs the buyer, rounded
    as the market rounds (toward the maker)."""
    value = amount * order.price_per_share
    cost, rest = divmod(value, SHARE_UNIT)
    return cost + 1 if order.sell and rest else cost


def _abi_type(name: str) -> str:
    for item in Order.model_fields[name].metadata:
        if isinstance(item, AbiType):
            return str(item)
    raise TypeError(f"Order.{name} has no AbiType")  # pragma: no cover - a coding bug


ORDER_FIELDS: list[dict[str, str]] = [
    {"name": name, "type": _abi_type(name)} for name in Order.model_fields
]
"""The EIP-712 type of Order, as eth_account and ethers.js take it."""
ORDER_TYPE_STRING = "Order(" + ",".join(f"{f['type']} {f['name']}" for f in ORDER_FIELDS) + ")"
ORDER_TYPE_HASH = keccak(text=ORDER_TYPE_STRING)
PERMIT_TYPE_STRING = (
    "Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"
)
PERMIT_TYPE_HASH = keccak(text=PERMIT_TYPE_STRING)

_HEX32 = r"^0x[0-9a-fA-F]{64}$"


class Permit(StrictModel):
    """An EIP-2612 permit by a sell order's maker: it lets the market move ``value`` of
    the order's shares. The owner is the order's maker, the token the order's share, the
    spender the market; the taker submits it before the fill."""

    value: BigUint
    """The allowance it sets, in share base units (at least what the fill takes)."""
    nonce: BigUint
    """The maker's permit nonce of the share token when signing (each permit uses one)."""
    deadline: BigUint
    """Unix time after which the permit is void."""
    v: Annotated[int, Field(ge=27, le=28)]
    """Signature recovery id."""
    r: Annotated[str, Field(pattern=_HEX32)]
    """Signature r, 32 bytes hex."""
    s: Annotated[str, Field(pattern=_HEX32)]
    """Signature s, 32 bytes hex (low half of the curve order)."""

    def get_signature_bytes(self) -> bytes:
        """The signature as r || s || v (65 bytes)."""
        return bytes.fromhex(self.r[2:]) + bytes.fromhex(self.s[2:]) + bytes([self.v])


class SignedOrder(Order):
    """An order with its maker's signature (r || s || v, 65 bytes, hex), and optionally a
    permit of the maker's shares for the market (sell orders only)."""

    signature: Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{130}$")]
    """The maker's EIP-712 signature."""
    permit: Permit | None = None
    """An EIP-2612 permit of the shares for the market (a sell order's maker need then
    send no approval)."""

    def get_order(self) -> Order:
        """The order without its signature (already validated: not validated again)."""
        return Order.model_construct(**{n: getattr(self, n) for n in Order.model_fields})

    def get_signature_bytes(self) -> bytes:
        """The signature as 65 bytes."""
        return bytes.fromhex(self.signature[2:])


class OrdersFile(StrictModel):
    """What ``edgeshare trade sell|buy`` write and ``trade fill|cancel|book`` read."""

    domain: Eip712Domain | None = None
    """The market's domain the orders were signed for (None: this suite's market)."""
    orders: list[SignedOrder]
    """The signed orders."""


# ------------------------------------------------------------------ signing ----


def _word(abi_type: str, value: Any) -> bytes:
    if abi_type == "address":
        return bytes(12) + bytes.fromhex(str(value)[2:])
    return int(value).to_bytes(32, "big")


def get_order_digest(order: Order, domain: Eip712Domain, separator: bytes | None = None) -> bytes:
    """The EIP-712 digest of ``order`` in ``domain``: the market's ``order_hash(order)``,
    its key in ``filled`` and ``cancelled``."""
    sep = separator if separator is not None else domain.get_separator()
    words = b"".join(_word(f["type"], getattr(order, f["name"])) for f in ORDER_FIELDS)
    return keccak(b"\x19\x01" + sep + keccak(ORDER_TYPE_HASH + words))


def build_order_typed_data(order: Order, domain: Eip712Domain) -> dict[str, Any]:
    """The full EIP-712 message, for wallets (``eth_signTypedData_v4``) and other clients."""
    message = {name: getattr(order, name) for name in Order.model_fields}
    return build_eip712_message("Order", ORDER_FIELDS, domain, message)


def sign_order(
    order: Order, key: bytes | str, domain: Eip712Domain, permit: Permit | None = None
) -> SignedOrder:
    """Sign ``order`` with its maker's ``key`` (libsecp256k1: low-s, v of 27 or 28), with
    ``permit`` attached (see ``sign_permit``).

    Raises:
        InputError: ``key`` is not the maker's, or a permit for a buy order.
    """
    if permit is not None and not order.sell:
        raise InputError("a permit goes with a sell order (it lets the market move the shares)")
    signature = sign_digest(get_order_digest(order, domain), key)
    fields = {name: getattr(order, name) for name in Order.model_fields}
    signed = SignedOrder.model_construct(**fields, signature="0x" + signature.hex(), permit=permit)
    signer = recover_order_signer(signed, domain)
    if signer != order.maker:
        raise InputError(f"the key is {signer}'s, not the maker's ({order.maker})")
    return signed


def recover_order_signer(signed: SignedOrder, domain: Eip712Domain) -> str:
    """Who signed ``signed`` (the market's rules: low-s, v of 27 or 28).

    Raises:
        InputError: the signature is malformed or recovers nothing.
    """
    return recover_digest(get_order_digest(signed, domain), signed.get_signature_bytes())


def fetch_market_domain(suite: Suite) -> Eip712Domain:
    """The market's EIP-712 domain, read from the chain (EIP-5267)."""
    return fetch_domain(suite.market)


def get_permit_digest(
    owner: str, spender: str, value: int, nonce: int, deadline: int, domain: Eip712Domain
) -> bytes:
    """The EIP-2612 digest of a permit in a share token's ``domain``."""
    words = _word("address", owner) + _word("address", spender)
    words += b"".join(_word("uint256", n) for n in (value, nonce, deadline))
    return keccak(b"\x19\x01" + domain.get_separator() + keccak(PERMIT_TYPE_HASH + words))


def sign_permit(
    suite: Suite, key: bytes | str, owner: str, share_token: str, value: int, deadline: int
) -> Permit:
    """Sign an EIP-2612 permit letting the market move ``value`` of ``owner``'s shares of
    ``share_token`` until ``deadline``, with ``owner``'s ``key``; reads the token's domain
    (its name, version "1") and the owner's permit nonce.

    A permit sets the allowance (it does not add to it), and each uses the owner's next
    permit nonce: of two permits signed for one token before either is used, only one
    can be.

    Raises:
        InputError: ``key`` is not ``owner``'s, or a value or deadline out of range.
    """
    owner = parse_address(owner, "owner")
    if not 0 < value <= UINT256_MAX or not 0 <= deadline <= UINT256_MAX:
        raise InputError("a permit's value must be 1 to 2**256 - 1 and its deadline a uint256")
    token = suite.share_at(share_token)
    nonce = int(token.call("nonces", owner))
    domain = fetch_domain(token)
    digest = get_permit_digest(owner, suite.market.address, value, nonce, deadline, domain)
    sig = sign_digest(digest, key)
    signer = recover_digest(digest, sig)
    if signer != owner:
        raise InputError(f"the key is {signer}'s, not the owner's ({owner})")
    return Permit(
        value=value,
        nonce=nonce,
        deadline=deadline,
        v=sig[64],
        r="0x" + sig[:32].hex(),
        s="0x" + sig[32:64].hex(),
    )


# --------------------------------------------------------------- building ----


def build_order(
    suite: Suite,
    maker: str,
    share_token: str,
    sell: bool,
    amount: int,
    price_per_share: int,
    min_fill: int = 0,
    expiry: int | None = None,
    salt: int | None = None,
) -> Order:
    """An order of ``maker`` to sell (``sell``) or buy ``amount`` share base units of
    ``share_token`` at ``price_per_share`` stablecoin base units per whole share, checked
    as the market will check it; the nonce is the maker's current one.

    Args:
        suite: The deployed suite.
        maker: Who signs.
        share_token: A node share of the suite, or a basket of its factory.
        sell: True to sell, False to buy.
        amount: Share base units, at most, over all fills.
        price_per_share: Stablecoin base units per whole share (10**18 base units).
        min_fill: The smallest fill but the last (0: any).
        expiry: Unix time until which it fills (default: 7 days from the chain's time).
        salt: Any uint256 (default: 256 random bits).

    Raises:
        InputError: an address, amount, price, min fill or expiry that is out of range,
            or a token that does not trade on the market.
    """
    maker = parse_address(maker, "maker")
    share_token = parse_address(share_token, "token")
    if maker == _ZERO:
        raise InputError("the maker must not be the zero address")
    if not 0 < amount <= UINT256_MAX:
        raise InputError(f"the amount must be more than 0 share base units, got {amount}")
    if not 0 < price_per_share <= UINT256_MAX:
        raise InputError(
            f"the price must be more than 0 stablecoin base units, got {price_per_share}"
        )
    if not 0 <= min_fill <= amount:
        raise InputError(
            f"the min fill ({min_fill} base units) must be 0 to the amount ({amount} base units)"
        )
    if amount * price_per_share > UINT256_MAX:
        raise InputError("amount * price per share overflows a uint256: the market cannot fill it")
    if salt is not None and not 0 <= salt <= UINT256_MAX:
        raise InputError("the salt must be a uint256")
    tradable, nonce = suite.reader.many(
        [suite.market.read("is_tradable", share_token), suite.market.read("nonces", maker)]
    )
    if not tradable:
        raise InputError(
            f"{share_token} does not trade on the market: it is neither a node share of this "
            "suite's registry nor a basket of its factory"
        )
    now = fetch_chain_time(suite)
    due = now + DEFAULT_ORDER_LIFETIME if expiry is None else expiry
    if not now < due <= UINT64_MAX:
        raise InputError(f"the expiry ({due}) must be after the chain's time ({now})")
    order = Order(
        maker=maker,
        share=share_token,
        sell=sell,
        amount=amount,
        price_per_share=price_per_share,
        min_fill=min_fill,
        expiry=due,
        nonce=int(nonce),
        salt=secrets.randbits(256) if salt is None else salt,
    )
    if order.get_full_cost() == 0:
        raise InputError(
            "a fill of the whole order would cost nothing (the price times the amount is "
            "below one stablecoin base unit): raise the price or the amount"
        )
    return order


# ------------------------------------------------------------------- files ----


def get_orders_file_text(domain: Eip712Domain | None, orders: Sequence[SignedOrder]) -> str:
    """An orders file's JSON (no ``permit`` key where there is none)."""
    file = OrdersFile(domain=domain, orders=list(orders))
    return file.model_dump_json(indent=2, exclude_none=True) + "\n"


def write_orders_file(
    path: Path, domain: Eip712Domain | None, orders: Sequence[SignedOrder]
) -> None:
    """Write an orders file; an existing file is never overwritten.

    Raises:
        InputError: ``path`` exists.
    """
    if path.exists():
        raise InputError(f"{path} exists: choose another name or remove it first")
    path.write_text(get_orders_file_text(domain, orders))


def _is_orders_file(text: str) -> bool:
    try:
        data = json.loads(text)
    except ValueError:
        return True  # reported as not JSON by the orders-file model
    return not isinstance(data, dict) or "orders" in data or "domain" in data


def read_orders_file_problems(path: Path) -> tuple[OrdersFile | None, list[str]]:
    """Parse an orders file, or one signed order object: (the file, []) or (None, every
    problem, each naming the file and the field)."""
    if _is_orders_file(read_text_file(path)):
        return read_json_problems(path, OrdersFile)
    single, problems = read_json_problems(path, SignedOrder)
    return (OrdersFile(orders=[single]) if single is not None else None), problems


def read_orders_file(path: Path) -> OrdersFile:
    """Read and validate an orders file (or one signed order object), naming every problem.

    Raises:
        InputError: unreadable, not JSON, or not an orders file (each problem named).
    """
    parsed, problems = read_orders_file_problems(path)
    if parsed is None:
        raise_problems(problems)
    assert parsed is not None
    if not parsed.orders:
        raise InputError(f"{path} holds no orders")
    return parsed


@dataclass(frozen=True)
class FiledOrder:
    """An order and where it was read from."""

    path: Path
    index: int
    """Its place in the file's ``orders``."""
    order: SignedOrder
    domain: Eip712Domain | None
    """The domain its file names (None: none named)."""


def read_orders(paths: Sequence[Path]) -> list[FiledOrder]:
    """Every order of ``paths``: files, or folders whose ``*.json`` files are all orders
    files; an order found twice is listed once.

    Raises:
        InputError: every problem of every file at once.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.glob("*.json") if p.is_file()))
        else:
            files.append(path)
    problems: list[str] = []
    found: list[FiledOrder] = []
    seen: set[tuple[Any, ...]] = set()
    for file in files:
        parsed, errors = read_orders_file_problems(file)
        problems.extend(errors)
        for i, order in enumerate(parsed.orders if parsed else []):
            key = (order.as_tuple(), order.signature.lower())
            if key not in seen:
                seen.add(key)
                found.append(FiledOrder(file, i, order, parsed.domain if parsed else None))
    raise_problems(problems)
    if not found and not files:
        raise InputError(f"no *.json files in {', '.join(str(p) for p in paths)}")
    return found


def get_signature_problem(order: SignedOrder, domain: Eip712Domain) -> str:
    """Why ``order``'s signature is not its maker's in ``domain`` ("" when it is)."""
    try:
        signer = recover_order_signer(order, domain)
    except InputError as exc:
        return f"signature: {exc}"
    if signer != order.maker:
        return (
            f"signature: signed by {signer}, not by the maker {order.maker} "
            "(a tampered order or signature?)"
        )
    if order.permit is not None and not order.sell:
        return "permit: a buy order carries no permit"
    return ""


def find_order_problems(
    orders: Sequence[FiledOrder], domain: Eip712Domain, maker: str | None = None
) -> list[str]:
    """Every order signed for another market or chain, not signed by its maker (a
    tampered or malformed signature), or (with ``maker``) not ``maker``'s."""
    problems: list[str] = []
    who = parse_address(maker, "maker") if maker is not None else None
    for filed in orders:
        where = f"{filed.path}: order {filed.index}"
        order = filed.order
        if filed.domain is not None and filed.domain != domain:
            problems.append(
                f"{where}: signed for chain {filed.domain.chain_id} market "
                f"{filed.domain.verifying_contract}, but this suite is chain {domain.chain_id} "
                f"market {domain.verifying_contract}"
            )
            continue
        problem = get_signature_problem(order, domain)
        if problem:
            problems.append(f"{where}: {problem}")
        if who is not None and order.maker != who:
            problems.append(f"{where}: made by {order.maker}, not by you ({who})")
    return problems


def _require_signed_by_maker(order: SignedOrder, domain: Eip712Domain) -> None:
    problem = get_signature_problem(order, domain)
    if problem:
        raise InputError(f"the order's {problem}; nothing was sent")


# ------------------------------------------------------------------- state ----


@dataclass(frozen=True)
class OrderStatus:
    """What the market says of an order now."""

    order: SignedOrder
    order_hash: str
    """The order's digest, 0x-hex (the market's key for it)."""
    filled: int
    """Share base units filled so far."""
    remaining: int
    """Share base units still to fill (0 once filled in full)."""
    reason: int
    """The market's verdict on a fill of the remainder (``OK`` or a reason code); for an
    order whose permit covers the maker's side, the verdict once the permit is submitted
    (the taker's side)."""
    cost: int
    """The stablecoin a fill of the remainder costs the buyer (0 while unknown)."""
    permit_covers: bool = False
    """The maker has not approved the market for its shares, but the order's permit is
    still usable and covers the remainder: a fill submits it first."""
    taker_known: bool = True
    """False when no taker was named: the taker's own balance and allowance (reasons
    ``TAKER_BALANCE`` and ``TAKER_ALLOWANCE``) do not count against the order."""

    @property
    def is_open(self) -> bool:
        """True when the remainder could be filled now (by a taker with the stablecoin or
        shares and the approval, when none was named)."""
        if self.reason == OK:
            return True
        return not self.taker_known and self.reason in (TAKER_BALANCE, TAKER_ALLOWANCE)

    @property
    def state(self) -> str:
        """``open``, or why it is not (``filled``, ``cancelled``, ``expired``, ...)."""
        return "open" if self.is_open else REASON_STATES.get(self.reason, f"reason {self.reason}")

    def describe(self) -> str:
        """The state in words."""
        permit = " (with the maker's permit)" if self.permit_covers else ""
        if self.is_open:
            return "open" + permit
        return f"{self.state}{permit}: {REASON_TEXTS.get(self.reason, f'reason {self.reason}')}"


@dataclass(frozen=True)
class TakerLeg:
    """What the taker of a fill holds and lets the market move of its leg."""

    need: int
    """Base units of the leg: the cost in stablecoin from a sell order, the shares into
    a buy order."""
    balance: int
    allowance: int
    """The taker's allowance to the market."""

    @property
    def reason(self) -> int:
        """The market's verdict on the taker's side (``OK``, ``TAKER_BALANCE`` or
        ``TAKER_ALLOWANCE``)."""
        if self.balance < self.need:
            return TAKER_BALANCE
        return TAKER_ALLOWANCE if self.allowance < self.need else OK


def fetch_taker_legs(
    suite: Suite, fills: Sequence[tuple[Order, int, int]], taker: str
) -> list[TakerLeg]:
    """The taker's leg of each fill ((order, amount, cost)), in one batch: the market
    checks it after the maker's, so ``check`` does not report it while the maker's
    allowance is short (which a permit may fix first)."""
    calls = []
    for order, _, _ in fills:
        leg = suite.stablecoin if order.sell else suite.share_at(order.share)
        calls += [leg.read("balanceOf", taker), leg.read("allowance", taker, suite.market.address)]
    found = suite.reader.many(calls) if calls else []
    return [
        TakerLeg(cost if order.sell else amount, int(found[2 * i]), int(found[2 * i + 1]))
        for i, (order, amount, cost) in enumerate(fills)
    ]


def _parse_domain(result: Any) -> Eip712Domain:
    """An ``eip712Domain()`` result (EIP-5267) as a domain."""
    _fields, name, version, chain_id, contract, _salt, _extensions = result
    return Eip712Domain(
        name=name, version=version, chain_id=int(chain_id), verifying_contract=str(contract)
    )


def _check_call(suite: Suite, order: SignedOrder, amount: int, taker: str) -> Any:
    return suite.market.read("check", order.as_tuple(), order.get_signature_bytes(), amount, taker)


def check_orders(
    suite: Suite,
    orders: Sequence[SignedOrder],
    taker: str | None = None,
    domain: Eip712Domain | None = None,
) -> list[OrderStatus]:
    """What the market says of each order now, for a fill of its remainder by ``taker``
    (None: any taker; its own balance and allowance do not count).

    The reads go out in one JSON-RPC batch (the market's ``check`` of the whole order,
    what it has filled, and for orders with a permit the maker's permit nonce and the
    token's domain), and one more for orders already partly filled (``check`` of the
    remainder). The decisions are the market's own ``check``.

    Args:
        suite: The deployed suite.
        orders: Signed orders.
        taker: Who would fill.
        domain: The market's domain (read from the chain when not given).
    """
    if not orders:
        return []
    domain = domain or fetch_market_domain(suite)
    separator = domain.get_separator()
    who = parse_address(taker, "taker") if taker else _ZERO
    digests = [get_order_digest(o, domain, separator) for o in orders]
    market = suite.market
    calls = []
    for order, digest in zip(orders, digests, strict=True):
        calls.append(market.read("filled", digest))
        calls.append(_check_call(suite, order, order.amount, who))
    permitted = sorted({(o.share, o.maker) for o in orders if o.permit is not None and o.sell})
    tokens = sorted({share for share, _ in permitted})
    calls += [suite.share_at(share).read("nonces", maker) for share, maker in permitted]
    calls += [suite.share_at(t).read("eip712Domain") for t in tokens]
    results = suite.reader.try_many(calls)
    n, m = len(orders), len(permitted)
    for call, result in zip(calls[: 2 * n], results, strict=False):
        if isinstance(result, RpcError):
            raise CallFailed(f"{call.describe()} failed: {result.message}", result.message)
    filled = [int(results[2 * i]) for i in range(n)]
    verdicts = [(int(results[2 * i + 1][0]), int(results[2 * i + 1][1])) for i in range(n)]
    permit_nonces = {
        key: None if isinstance(value, RpcError) else int(value)
        for key, value in zip(permitted, results[2 * n : 2 * n + m], strict=True)
    }
    token_domains = {
        t: None if isinstance(d, RpcError) else _parse_domain(d)
        for t, d in zip(tokens, results[2 * n + m :], strict=True)
    }
    # orders partly filled: the whole order is above the remainder; ask for the remainder
    partial = [
        i
        for i, order in enumerate(orders)
        if verdicts[i][1] == OVERFILL and 0 < filled[i] < order.amount
    ]
    if partial:
        again = suite.reader.many(
            [_check_call(suite, orders[i], orders[i].amount - filled[i], who) for i in partial]
        )
        for i, (cost, reason) in zip(partial, again, strict=True):
            verdicts[i] = (int(cost), int(reason))
    now = fetch_chain_time(suite) if permitted else 0
    covered = []
    for i, order in enumerate(orders):
        if order.permit is not None and order.sell and verdicts[i][1] == MAKER_ALLOWANCE:
            nonce = permit_nonces.get((order.share, order.maker))
            remaining = max(order.amount - filled[i], 0)
            if not _get_permit_problem(
                suite, order, remaining, now, nonce, token_domains.get(order.share)
            ):
                covered.append(i)
    # the permit clears the maker's side: what decides is the taker's
    fills = [(orders[i], orders[i].amount - filled[i], verdicts[i][0]) for i in covered]
    for i, leg in zip(covered, fetch_taker_legs(suite, fills, who), strict=True):
        verdicts[i] = (verdicts[i][0], leg.reason)
    return [
        OrderStatus(
            order=order,
            order_hash="0x" + digests[i].hex(),
            filled=filled[i],
            remaining=max(order.amount - filled[i], 0),
            reason=verdicts[i][1],
            cost=verdicts[i][0],
            permit_covers=i in covered,
            taker_known=taker is not None,
        )
        for i, order in enumerate(orders)
    ]


def _get_permit_problem(
    suite: Suite,
    order: SignedOrder,
    amount: int,
    now: int,
    nonce: int | None,
    token_domain: Eip712Domain | None,
) -> str:
    """Why ``order``'s permit cannot let the market move ``amount`` shares ("" if it can)."""
    permit = order.permit
    if permit is None:
        return "the order carries no permit"
    if permit.value < amount:
        return f"the permit allows {permit.value} base units, the fill takes {amount}"
    if permit.deadline < now:
        return "the permit is past its deadline"
    if nonce is None or permit.nonce != nonce:
        return (
            f"the permit was signed with the maker's permit nonce {permit.nonce}, which is now "
            f"{nonce}: it was used or replaced"
        )
    if token_domain is None:
        return "the share token has no EIP-712 domain"
    digest = get_permit_digest(
        order.maker, suite.market.address, permit.value, permit.nonce, permit.deadline, token_domain
    )
    try:
        signer = recover_digest(digest, permit.get_signature_bytes())
    except InputError as exc:
        return f"the permit's signature: {exc}"
    if signer != order.maker:
        return f"the permit is signed by {signer}, not by the maker {order.maker}"
    return ""


@dataclass(frozen=True)
class TokenLabel:
    """How a traded token is named to people."""

    address: str
    symbol: str
    """``ESN<id>`` for a node's share; a basket's own symbol."""
    node_id: int | None
    """The node of a share (None: a basket, or not a share)."""

    @property
    def token(self) -> Token:
        """For amounts: 18 decimals and the symbol."""
        return Token(SHARE_DECIMALS, self.symbol)

    def describe(self) -> str:
        """``node 3`` for a share, ``basket ASIA`` for a basket."""
        return f"node {self.node_id}" if self.node_id is not None else f"basket {self.symbol}"


def fetch_token_labels(suite: Suite, tokens: Sequence[str]) -> dict[str, TokenLabel]:
    """Each token's symbol and, for a node share, its node id (one batch)."""
    unique = sorted(set(tokens))
    calls = []
    for t in unique:
        calls += [suite.share_at(t).read("NODE_ID"), suite.share_at(t).read("symbol")]
    results = suite.reader.try_many(calls)
    labels = {}
    for i, t in enumerate(unique):
        node_id, symbol = results[2 * i], results[2 * i + 1]
        labels[t] = TokenLabel(
            address=t,
            symbol=str(symbol) if not isinstance(symbol, RpcError) else t[:10],
            node_id=int(node_id) if not isinstance(node_id, RpcError) else None,
        )
    return labels


# ----------------------------------------------------------------- sending ----


def _refuse(reason: int, what: str = "the order cannot be filled now") -> OrderNotFillable:
    state = REASON_STATES.get(reason, f"reason {reason}")
    text = REASON_TEXTS.get(reason, "")
    return OrderNotFillable(f"{what}: {state} ({text}); nothing was sent", reason)


def send_approve_market(
    tx: Transactor, suite: Suite, token: Contract, amount: int, what: str
) -> Action | None:
    """Approve the market for ``amount`` of ``token`` (the stablecoin or a share) unless
    the signer's allowance already covers it; None when nothing was needed. The approval
    sets the allowance, which every order of the signer in that token draws on."""
    allowance = int(token.call("allowance", tx.signer.address, suite.market.address))
    if allowance >= amount:
        return None
    receipt = tx.send(token.tx("approve", suite.market.address, amount), what)
    return Action(what, receipt.tx_hash, receipt.gas_used, {"amount": amount})


def _require_permit(suite: Suite, signed: SignedOrder, amount: int) -> Permit:
    """The order's permit, if it lets the market move ``amount`` of the maker's shares now."""
    share = suite.share_at(signed.share)
    if not signed.sell or signed.permit is None:
        raise _refuse(MAKER_ALLOWANCE)
    nonce, found = suite.reader.many(
        [share.read("nonces", signed.maker), share.read("eip712Domain")]
    )
    now = fetch_chain_time(suite)
    problem = _get_permit_problem(suite, signed, amount, now, int(nonce), _parse_domain(found))
    if problem:
        raise OrderNotFillable(
            "the order cannot be filled now: the maker has not approved the market for its "
            f"shares, and {problem}; nothing was sent",
            MAKER_ALLOWANCE,
        )
    return signed.permit


def _share_units(suite: Suite, order: Order) -> Token:
    return fetch_token_labels(suite, [order.share])[order.share].token


def send_fill(
    tx: Transactor, suite: Suite, signed: SignedOrder, amount: int | None = None
) -> Action:
    """Fill ``amount`` share base units of ``signed`` (None: the whole remainder) with
    the signer as taker: it buys from a sell order (paying the stablecoin) or sells into
    a buy order (delivering the shares).

    Checked first with the market's ``check``; a fill it would refuse is not sent, and
    the reason is named. Before the fill, when needed: the maker's permit (a sell
    order's, when the maker's allowance is short), then the taker's approval of the
    market for its own leg (the stablecoin cost, or the shares).

    Raises:
        OrderNotFillable: the market would refuse the fill (the reason named).
        InputError: the order is not signed by its maker, or the signer is its maker.
    """
    taker = tx.signer.address
    domain = fetch_market_domain(suite)
    _require_signed_by_maker(signed, domain)
    if taker == signed.maker:
        raise InputError(f"{taker} made this order: a maker cannot fill its own order")
    (status,) = check_orders(suite, [signed], taker, domain)
    if status.reason in VOID_REASONS:
        raise _refuse(status.reason)
    size = status.remaining if amount is None else amount
    cost, reason = status.cost, MAKER_ALLOWANCE if status.permit_covers else status.reason
    if size != status.remaining:
        (verdict,) = suite.reader.many([_check_call(suite, signed, size, taker)])
        cost, reason = int(verdict[0]), int(verdict[1])
    if reason not in (OK, MAKER_ALLOWANCE, TAKER_BALANCE, TAKER_ALLOWANCE):
        shown = _share_units(suite, signed).format(size)
        raise _refuse(reason, f"a fill of {shown} cannot go through")
    market, share = suite.market, suite.share_at(signed.share)
    permit = _require_permit(suite, signed, size) if reason == MAKER_ALLOWANCE else None
    (leg,) = fetch_taker_legs(suite, [(signed, size, cost)], taker)
    if leg.reason == TAKER_BALANCE:
        unit = suite.fetch_stablecoin_token() if signed.sell else _share_units(suite, signed)
        verb = "costs" if signed.sell else "delivers"
        raise OrderNotFillable(
            f"the fill {verb} {unit.format(leg.need)}; {taker} holds {unit.format(leg.balance)}; "
            "nothing was sent",
            TAKER_BALANCE,
        )
    sent: list[str] = []
    if permit is not None:
        call = share.tx(
            "permit", signed.maker, market.address, permit.value, permit.deadline, permit.v,
            bytes.fromhex(permit.r[2:]), bytes.fromhex(permit.s[2:]),
        )  # fmt: skip
        sent.append(tx.send(call, "submit the maker's permit for its shares").tx_hash)
    if leg.reason == TAKER_ALLOWANCE:
        label = "the stablecoin" if signed.sell else "the shares"
        token = suite.stablecoin if signed.sell else share
        call = token.tx("approve", market.address, leg.need)
        sent.append(tx.send(call, f"approve the market for {label}").tx_hash)
    side = "buy from" if signed.sell else "sell into"
    what = f"{side} order {status.order_hash[:10]}"
    fill = market.tx("fill", signed.as_tuple(), signed.get_signature_bytes(), size)
    details: dict[str, Any] = {
        "order_hash": status.order_hash,
        "sell": signed.sell,
        "share": signed.share,
        "amount": size,
        "cost": cost,
        "remaining": status.remaining - size,
        "permit_submitted": permit is not None,
        "approved": leg.reason == TAKER_ALLOWANCE,
        "transactions": [h for h in sent if h],
    }
    if tx.dry_run and sent:
        # the fill needs what comes before it, which a dry run does not apply: checked above
        tx.planned.append(Planned(what, market.address, fill["data"], 0, 0))
        return Action(what, "", 0, details)
    if sent:
        # what was just sent cleared the way; anything else is a change by someone else
        (verdict,) = suite.reader.many([_check_call(suite, signed, size, taker)])
        if int(verdict[1]) != OK:
            reason = int(verdict[1])
            raise OrderNotFillable(
                f"the fill was not sent: the order changed since it was checked: "
                f"{REASON_STATES.get(reason)} ({REASON_TEXTS.get(reason)}); "
                f"{len(sent)} transaction(s) before it were sent",
                reason,
            )
    receipt = tx.send(fill, what)
    if not receipt.is_simulated:
        (event,) = market.events(receipt, "OrderFilled")
        for name in ("amount", "cost", "fee", "remaining"):
            details[name] = int(event[name])
        details["transactions"].append(receipt.tx_hash)
    return Action(what, receipt.tx_hash, receipt.gas_used, details)


def send_cancel(tx: Transactor, suite: Suite, order: Order) -> Action:
    """Cancel one of the signer's orders for good. Checked first: the signer must be the
    maker, and the order not already void (cancelled, filled in full, expired, or of an
    old nonce), so no transaction is sent that changes nothing.

    Raises:
        InputError: the signer is not the maker, the order is already void, or (for a
            signed order) its signature is not the maker's.
    """
    signer = tx.signer.address
    if signer != order.maker:
        raise InputError(
            f"{signer} is not the order's maker ({order.maker}): only its maker cancels it"
        )
    domain = fetch_market_domain(suite)
    if isinstance(order, SignedOrder):
        _require_signed_by_maker(order, domain)
    digest = get_order_digest(order, domain)
    market = suite.market
    cancelled, nonce, filled = suite.reader.many(
        [
            market.read("cancelled", digest),
            market.read("nonces", order.maker),
            market.read("filled", digest),
        ]
    )
    void = ""
    if cancelled:
        void = "already cancelled"
    elif int(nonce) != order.nonce:
        void = f"already void: signed with nonce {order.nonce}, yours is now {int(nonce)}"
    elif int(filled) >= order.amount:
        void = "already filled in full"
    elif fetch_chain_time(suite) > order.expiry:
        void = "already expired"
    if void:
        raise InputError(f"the order is {void}: cancelling it would change nothing")
    what = f"cancel order 0x{digest.hex()[:8]}"
    receipt = tx.send(market.tx("cancel", order.as_tuple()), what)
    return Action(what, receipt.tx_hash, receipt.gas_used, {"order_hash": "0x" + digest.hex()})


def send_cancel_all(tx: Transactor, suite: Suite) -> Action:
    """Void every order the signer signed so far, at once (its market nonce moves on;
    orders built afterwards carry the new one)."""
    nonce = int(suite.market.call("nonces", tx.signer.address))
    what = "cancel all your orders"
    receipt = tx.send(suite.market.tx("cancel_all"), what)
    details: dict[str, Any] = {"nonce": nonce + 1}
    if not receipt.is_simulated:
        (event,) = suite.market.events(receipt, "AllOrdersCancelled")
        details["nonce"] = int(event["nonce"])
    return Action(what, receipt.tx_hash, receipt.gas_used, details)


def sign_market_order(
    suite: Suite, key: bytes | str, order: Order, with_permit: bool = False
) -> tuple[Eip712Domain, SignedOrder]:
    """Sign ``order`` with its maker's ``key`` in the suite's market domain (read from
    the chain); with ``with_permit`` (sell orders), attach a permit of the whole amount
    for the market, valid until the order's expiry. Returns (the domain, the order).

    Raises:
        InputError: ``key`` is not the maker's, or a permit for a buy order.
    """
    if with_permit and not order.sell:
        raise InputError("a permit goes with a sell order (it lets the market move the shares)")
    domain = fetch_market_domain(suite)
    permit = None
    if with_permit:
        permit = sign_permit(suite, key, order.maker, order.share, order.amount, order.expiry)
    return domain, sign_order(order, key, domain, permit)


@dataclass(frozen=True)
class MakerOrder:
    """One of a maker's orders from its files, as the market stands now."""

    filed: FiledOrder
    status: OrderStatus
    label: TokenLabel


def fetch_orders_of(suite: Suite, maker: str, paths: Sequence[Path]) -> list[MakerOrder]:
    """``maker``'s open orders among the orders files (or folders) ``paths``, checked
    against the chain (any taker): what the portfolio and the investor report list.

    Raises:
        InputError: a malformed file (every problem named).
    """
    who = parse_address(maker, "maker").lower()
    mine = [f for f in read_orders(paths) if f.order.maker.lower() == who]
    if not mine:
        return []
    statuses = check_orders(suite, [f.order for f in mine])
    labels = fetch_token_labels(suite, [f.order.share for f in mine])
    return [
        MakerOrder(f, s, labels[f.order.share])
        for f, s in zip(mine, statuses, strict=True)
        if s.is_open
    ]
