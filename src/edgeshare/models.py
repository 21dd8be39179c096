"""pydantic models for everything EdgeShare reads from or writes to a file.

Money is always an integer number of base units; addresses are checksummed on
validation and a mixed-case address with a wrong checksum is rejected (a typo'd
address must never be "fixed" into someone else's).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from Crypto.Hash import keccak as keccak256
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from edgeshare.errors import InputError

_M = TypeVar("_M", bound=BaseModel)

MAX_BPS = 10_000
MAX_OPERATOR_CUT_BPS = 5_000
MAX_PROTOCOL_FEE_BPS = 2_000
MAX_MARKET_FEE_BPS = 100
"""ShareMarket.MAX_FEE_BPS: the share market's fee cap, 1% of a fill's stablecoin leg."""
MAX_OFFERING_FEE_BPS = 1_000
"""OfferingFactory.MAX_FEE_BPS: the offerings' fee cap, 10% of the proceeds."""
MAX_PERIOD = 30 * 86_400
MIN_CHALLENGE_PERIOD = 3_600  # RevenueRouter.MIN_CHALLENGE_PERIOD
UINT256_MAX = 2**256 - 1


_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_VALID: dict[str, str] = {}
"""Addresses already validated -> their checksummed form (the same few recur in bulk)."""


def _checksum(value: Any) -> str:
    """``value`` checksummed, if it is an address (see ``checksum_address``)."""
    if not isinstance(value, str):
        raise ValueError("an address must be a 0x-prefixed string of 40 hex digits")
    found = _VALID.get(value)
    if found is not None:
        return found
    if not _HEX_ADDRESS.fullmatch(value):
        raise ValueError(f"{value!r} is not a 0x-prefixed address of 40 hex digits")
    body = value[2:]
    checksummed = to_checksum(bytes.fromhex(body))
    mixed_case = body != body.lower() and body != body.upper()
    if mixed_case and value != checksummed:
        raise ValueError(f"{value} has an invalid EIP-55 checksum (a typo?)")
    if len(_VALID) > 100_000:
        _VALID.clear()
    _VALID[value] = checksummed
    return checksummed


def checksum_address(value: str) -> str:
    """The EIP-55 form of a 0x-prefixed hex address; raises ValueError for anything else,
    or for a mixed-case address whose checksum is wrong. Cached: the same few addresses
    recur in every receipt and log."""
    return _checksum(value)


Address = Annotated[str, BeforeValidator(_checksum)]
"""An EIP-55 checksummed address; all-lower and all-upper case input is accepted."""

# a hex digit of the hash that is 8 or more marks an upper-case position: 0xff, else 0x00
_CASE_MASK = bytes.maketrans(b"0123456789abcdef", b"\x00" * 8 + b"\xff" * 8)


def to_checksum(raw: bytes) -> str:
    """The EIP-55 form of a 20-byte address: each hex digit is upper-cased where the same
    position of keccak256(lower-case hex) is 8 or more; done as whole-string integer
    masking (eth_utils goes through several conversions and costs ~3x as much, and the
    indexer and signature recovery checksum every address they meet)."""
    low = raw.hex().encode()
    marks = keccak256.new(data=low, digest_bits=256).digest().hex()[:40].encode()
    mask = int.from_bytes(marks.translate(_CASE_MASK), "big")
    mixed = (int.from_bytes(low, "big") & ~mask) | (int.from_bytes(low.upper(), "big") & mask)
    return "0x" + mixed.to_bytes(40, "big").decode()


def read_text_file(path: Path, encoding: str = "utf-8") -> str:
    """The text of an input file the user named; a missing or non-UTF-8 file is bad input."""
    try:
        return path.read_bytes().decode(encoding)
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not a file") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    except PermissionError:
        raise InputError(f"{path} cannot be read: permission denied") from None
    except OSError as exc:
        raise InputError(f"{path} cannot be read: {exc.strerror or exc}") from None


class StrictModel(BaseModel):
    """Base of every model: unknown fields are errors, no silent coercion of types."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def read_json_problems(path: Path, model: type[_M]) -> tuple[_M | None, list[str]]:
    """Parse the JSON file ``path`` as ``model``: (the model, []) or (None, every problem,
    each naming the file and the field)."""
    text = read_text_file(path)
    if not text.strip():
        return None, [f"{path} is empty"]
    try:
        return model.model_validate_json(text), []
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(file)"
            message = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown field"
            problems.append(f"{path}: {where}: {message}")
        return None, problems


class DeployParams(StrictModel):
    """The parameters a suite is deployed with; recorded in the manifest."""

    epoch_length: Annotated[int, Field(ge=1, le=MAX_PERIOD)] = 86_400
    """Seconds per usage epoch."""
    challenge_period: Annotated[int, Field(ge=MIN_CHALLENGE_PERIOD, le=MAX_PERIOD)] = 86_400
    """Seconds during which settled revenue can be disputed before it is paid out (>= 1 h)."""
    unlock_period: Annotated[int, Field(ge=1, le=MAX_PERIOD)] = 86_400
    """Seconds over which each node's new revenue vests to holders (at least one epoch)."""
    protocol_fee_bps: Annotated[int, Field(ge=0, le=MAX_PROTOCOL_FEE_BPS)] = 500
    """Protocol fee in basis points of gross revenue."""
    market_fee_bps: Annotated[int, Field(ge=0, le=MAX_MARKET_FEE_BPS)] = 10
    """The share market's fee, basis points of each fill's stablecoin leg, paid by the
    seller to the treasury."""
    offering_fee_bps: Annotated[int, Field(ge=0, le=MAX_OFFERING_FEE_BPS)] = 100
    """The offerings' fee, basis points of a successful offering's proceeds."""
    treasury: Address | None = None
    """Where protocol fees accrue; the deployer when not given."""
    stablecoin: Address | None = None
    """An existing stablecoin; when not given a mock one is deployed (local chains only)."""
    evm_version: Literal["cancun", "shanghai"] | None = None
    """What the contracts are built for; when not given, ``shanghai`` on Ganache and
    ``cancun`` everywhere else; the manifest records what was chosen."""

    @model_validator(mode="after")
    def _unlock_covers_an_epoch(self) -> DeployParams:
        if self.unlock_period < self.epoch_length:
            raise ValueError(
                f"unlock_period ({self.unlock_period} s) must be at least one epoch "
                f"({self.epoch_length} s), so that holding shares for a moment around a "
                "finalization captures no revenue"
            )
        return self


class ContractAddresses(StrictModel):
    """Addresses of the deployed suite, by contract name."""

    Stablecoin: Address | None = None
    """The stablecoin revenue is paid in (the mock one on local chains)."""
    NodeShareBlueprint: Address | None = None
    """EIP-5202 blueprint from which every NodeShare is created."""
    PortfolioClaimer: Address | None = None
    """Claims a holder's revenue from many share tokens and baskets in one transaction."""
    NodeRegistry: Address | None = None
    """The node registry, which holds the roles."""
    RevenueRouter: Address | None = None
    """The revenue router, which holds and splits the stablecoin."""
    PaymentChannels: Address | None = None
    """Customers' prepaid channels to nodes, redeemed by signed vouchers."""
    BasketBlueprint: Address | None = None
    """EIP-5202 blueprint from which every Basket is created."""
    BasketFactory: Address | None = None
    """Creates baskets over the suite's node shares."""
    ShareMarket: Address | None = None
    """Fills signed orders for shares and basket units, delivery against payment."""
    ShareOfferingBlueprint: Address | None = None
    """EIP-5202 blueprint from which every ShareOffering is created."""
    OfferingFactory: Address | None = None
    """Creates offerings through which operators sell their nodes' shares."""


class PendingDeployment(StrictModel):
    """A contract creation sent but not yet seen mined when the manifest was written.

    The address of a created contract depends only on the deployer and its nonce, so a
    run that was killed after sending can find the contract it created, instead of
    creating a second one.
    """

    contract: str
    """Which contract of the suite."""
    address: Address
    """Where it will live."""
    nonce: Annotated[int, Field(ge=0)]
    """The deployer's nonce that creates it."""


class Manifest(StrictModel):
    """What ``edgeshare deploy`` wrote: where the suite lives and how it was configured."""

    chain_id: Annotated[int, Field(ge=1)]
    """The chain the suite is deployed on."""
    deployer: Address
    """The account that deployed it (and holds owner, registrar and guardian)."""
    block: Annotated[int, Field(ge=0)]
    """The block of the latest deployment transaction."""
    params: DeployParams
    """Parameters the contracts were deployed with."""
    contracts: ContractAddresses
    """Addresses of the deployed contracts."""
    stablecoin_is_mock: bool = False
    """True when Stablecoin is the MockStablecoin deployed by EdgeShare."""
    pending: PendingDeployment | None = None
    """A deployment in flight when this was written (None once it is recorded)."""

    def is_complete(self) -> bool:
        """True when every contract of the suite has an address."""
        return all(getattr(self.contracts, name) for name in ContractAddresses.model_fields)


def parse_address(value: str, name: str) -> str:
    """A checksummed address from user input, or an InputError naming ``name``."""
    from pydantic import TypeAdapter, ValidationError

    try:
        return str(TypeAdapter(Address).validate_python(value))
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise InputError(f"{name}: {message}") from None
