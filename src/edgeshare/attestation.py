"""Signed usage reports: the EIP-712 type, digests, signing and recovery.

``UsageReport`` mirrors the contract's struct field for field; the EIP-712 type string
and type list are built from it, never typed a second time. Digests are computed here
directly (every field is a uint, so the encoding is 32-byte words) and checked against
eth_account's general typed-data encoder and against the router's ``report_digest`` in
the tests. Signing and recovery use libsecp256k1 through coincurve directly, with the
router's rules (low-s, v of 27 or 28); eth_account checks them in the tests.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Annotated, Any

from coincurve import PrivateKey as CurveKey
from coincurve import PublicKey as CurvePublicKey
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field

from edgeshare.contracts import Contract
from edgeshare.errors import InputError
from edgeshare.models import Address, StrictModel, to_checksum

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
MAX_REPORT_REVENUE = 2**96 - 1  # what one report's revenue may be (RevenueRouter)
MAX_UPTIME_BPS = 10_000


class AbiType(str):
    """Annotation marker: the Solidity type of a field in the EIP-712 struct."""

    __slots__ = ()


def _parse_uint(value: Any) -> int:
    """Integers only: a JSON/YAML int, or a string of decimal digits (for big values)."""
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        raise ValueError("must be an integer number of base units, not a fraction")
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit() and text.isascii():
            return int(text)
        raise ValueError(f"must be a non-negative whole number, got {value!r}")
    raise ValueError(f"must be an integer, got {type(value).__name__}")


def at_most(limit: int) -> AfterValidator:
    """An exact integer upper bound (pydantic's own ``le`` prints big bounds as floats)."""

    def check(value: int) -> int:
        if value > limit:
            raise ValueError(f"must be at most {limit}, got {value}")
        return value

    return AfterValidator(check)


def _non_negative(value: int) -> int:
    if value < 0:
        raise ValueError(f"must not be negative, got {value}")
    return value


_UINT = (BeforeValidator(_parse_uint), AfterValidator(_non_negative))
Uint256 = Annotated[int, *_UINT, at_most(2**256 - 1), AbiType("uint256")]
Uint64 = Annotated[int, *_UINT, at_most(2**64 - 1), AbiType("uint64")]
Uint32 = Annotated[int, *_UINT, at_most(2**32 - 1), AbiType("uint32")]
Uint16 = Annotated[int, *_UINT, at_most(2**16 - 1), AbiType("uint16")]


class UsageReport(StrictModel):
    """What a node's attestor signs for one epoch (EIP-712 primary type ``UsageReport``)."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, populate_by_name=True, serialize_by_alias=True
    )

    node_id: Annotated[Uint256, Field(alias="nodeId", ge=1)]
    """The node, as registered."""
    epoch: Annotated[Uint64, Field(alias="epoch")]
    """The epoch the usage happened in; it must have ended before settlement."""
    version: Annotated[Uint32, Field(alias="version")] = 0
    """0 for the first report of an epoch; a correction of a disputed report is signed
    with the disputed report's version plus one (the router accepts nothing else)."""
    inferences: Annotated[Uint64, Field(alias="inferences")]
    """Inferences served in the epoch."""
    revenue: Annotated[Uint256, Field(alias="revenue"), at_most(MAX_REPORT_REVENUE)]
    """Stablecoin base units: inferences * price_per_1k // 1000 at the epoch's price."""
    latency_ms: Annotated[Uint32, Field(alias="latencyMs")]
    """The node's p50 latency in the epoch, milliseconds."""
    uptime_bps: Annotated[Uint16, Field(alias="uptimeBps"), at_most(MAX_UPTIME_BPS)]
    """Uptime in the epoch, basis points (at most 10,000)."""
    deadline: Annotated[Uint64, Field(alias="deadline")]
    """Unix time after which the signature is void."""

    def as_tuple(self) -> tuple[int, ...]:
        """The report as the contract's struct tuple, in field order."""
        return tuple(getattr(self, name) for name in UsageReport.model_fields)


def _abi_type(name: str) -> str:
    for item in UsageReport.model_fields[name].metadata:
        if isinstance(item, AbiType):
            return str(item)
    raise TypeError(f"UsageReport.{name} has no AbiType")  # pragma: no cover - a coding bug


EIP712_FIELDS: list[dict[str, str]] = [
    {"name": str(field.alias), "type": _abi_type(name)}
    for name, field in UsageReport.model_fields.items()
]
"""The EIP-712 type of UsageReport, as eth_account and ethers.js take it."""
TYPE_STRING = "UsageReport(" + ",".join(f"{f['type']} {f['name']}" for f in EIP712_FIELDS) + ")"
TYPE_HASH = keccak(text=TYPE_STRING)
DOMAIN_TYPE_HASH = keccak(
    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)


class Eip712Domain(StrictModel):
    """A contract's EIP-712 domain (EIP-5267): the router's for usage reports, the
    payment channels' for vouchers."""

    name: str
    """"EdgeShare" (the router) or "EdgeShare Channels"."""
    version: str
    """Always "1"."""
    chain_id: Annotated[int, Field(ge=1)]
    """The chain the contract lives on."""
    verifying_contract: Address
    """The contract that checks the signatures."""

    def get_separator(self) -> bytes:
        """The domain separator."""
        return keccak(
            DOMAIN_TYPE_HASH
            + keccak(text=self.name)
            + keccak(text=self.version)
            + self.chain_id.to_bytes(32, "big")
            + bytes(12)
            + bytes.fromhex(self.verifying_contract[2:])
        )

    def as_eip712(self) -> dict[str, Any]:
        """The domain as eth_account / ethers.js take it."""
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


class SignedReport(UsageReport):
    """A report with its attestor's signature (r || s || v, 65 bytes, hex)."""

    signature: Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{130}$")]
    """The attestor's EIP-712 signature."""

    def get_report(self) -> UsageReport:
        """The report without its signature (already validated: not validated again)."""
        return UsageReport.model_construct(
            **{name: getattr(self, name) for name in UsageReport.model_fields}
        )

    def get_signature_bytes(self) -> bytes:
        """The signature as 65 bytes."""
        return bytes.fromhex(self.signature[2:])


class SignedReportsFile(StrictModel):
    """The file ``edgeshare attest sign`` writes and ``edgeshare attest post`` reads."""

    domain: Eip712Domain
    """The domain every report was signed for."""
    reports: list[SignedReport]
    """The signed reports."""


def pack_signatures(reports: Sequence[SignedReport]) -> bytes:
    """The signatures of ``reports`` as ``settle_many`` takes them: 65 bytes each, in order."""
    return b"".join(r.get_signature_bytes() for r in reports)


def get_struct_hash(report: UsageReport) -> bytes:
    """hashStruct(report): the type hash and every field as a 32-byte word."""
    return keccak(TYPE_HASH + b"".join(v.to_bytes(32, "big") for v in report.as_tuple()))


def get_digest(report: UsageReport, domain: Eip712Domain, separator: bytes | None = None) -> bytes:
    """The EIP-712 digest of ``report`` in ``domain`` (pass ``separator`` to reuse it)."""
    sep = separator if separator is not None else domain.get_separator()
    return keccak(b"\x19\x01" + sep + get_struct_hash(report))


def build_eip712_message(
    primary: str, fields: list[dict[str, str]], domain: Eip712Domain, message: dict[str, Any]
) -> dict[str, Any]:
    """A full EIP-712 message of type ``primary`` (for wallets' ``eth_signTypedData_v4``,
    eth_account and ethers.js)."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            primary: fields,
        },
        "primaryType": primary,
        "domain": domain.as_eip712(),
        "message": message,
    }


def build_typed_data(report: UsageReport, domain: Eip712Domain) -> dict[str, Any]:
    """The full EIP-712 message of ``report``, for wallets and other clients."""
    return build_eip712_message(
        "UsageReport", EIP712_FIELDS, domain, report.model_dump(by_alias=True)
    )


@functools.lru_cache(maxsize=64)
def _curve_key(secret: bytes) -> CurveKey:
    # parsing a key derives its public key (an EC multiplication): once per attestor key
    return CurveKey(secret)


def sign_digest(digest: bytes, key: bytes | str) -> bytes:
    """Sign a 32-byte EIP-712 digest with ``key``: r || s || v, low-s, v = 27 or 28
    (libsecp256k1), the form every signature check of the suite accepts."""
    secret = bytes(HexBytes(key)) if isinstance(key, str) else key
    rs_recid = _curve_key(secret).sign_recoverable(digest, hasher=None)
    return rs_recid[:64] + bytes([rs_recid[64] + 27])


def recover_digest(digest: bytes, sig: bytes) -> str:
    """The address that signed ``digest``, under the contracts' rules.

    Raises:
        InputError: the signature is not 65 bytes, is high-s, has a bad v, or recovers
            nothing.
    """
    if len(sig) != 65:
        raise InputError(f"a signature is 65 bytes, got {len(sig)}")
    r, s, v = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
    if v not in (27, 28):
        raise InputError(f"signature v must be 27 or 28, got {v}")
    if not 0 < s <= SECP256K1_N // 2 or not 0 < r < SECP256K1_N:
        raise InputError("signature is not canonical (s must be in the lower half of the curve)")
    try:
        public_key = CurvePublicKey.from_signature_and_message(
            sig[:64] + bytes([v - 27]), digest, hasher=None
        ).format(compressed=False)
    except Exception:
        raise InputError("signature recovers no key") from None
    return to_checksum(keccak(public_key[1:])[12:])


def sign(
    report: UsageReport, key: bytes | str, domain: Eip712Domain, separator: bytes | None = None
) -> SignedReport:
    """Sign ``report`` with the attestor's ``key`` (libsecp256k1: low-s, v = 27 or 28)."""
    signature = sign_digest(get_digest(report, domain, separator), key)
    # the report is a validated model and the signature is 65 bytes we just made
    fields = {name: getattr(report, name) for name in UsageReport.model_fields}
    return SignedReport.model_construct(**fields, signature="0x" + signature.hex())


def recover(signed: SignedReport, domain: Eip712Domain, separator: bytes | None = None) -> str:
    """The address that signed ``signed``, under the same rules as the router.

    Raises:
        InputError: the signature is malformed, high-s, has a bad v, or recovers nothing.
    """
    digest = get_digest(signed.get_report(), domain, separator)
    return recover_digest(digest, signed.get_signature_bytes())


def fetch_domain(router: Contract) -> Eip712Domain:
    """Read a contract's EIP-712 domain from its ``eip712Domain()`` (EIP-5267)."""
    fields, name, version, chain_id, contract, _salt, _ext = router.call("eip712Domain")
    if bytes(fields) != b"\x0f":
        raise InputError(
            f"unexpected EIP-712 domain fields {bytes(fields).hex()} at {router.address}"
        )
    return Eip712Domain(
        name=name, version=version, chain_id=chain_id, verifying_contract=str(contract)
    )
