# pragma version 0.4.3
"""
@title EIP-712 domain, typed-data hashing and signature recovery
@custom:contract-name eip712
@license MIT
@notice Shared by NodeShare (EIP-2612 permit), RevenueRouter (signed usage
        reports) and PaymentChannels (customers' vouchers). Builds the domain separator once at deployment and rebuilds it
        only if the chain id changes (a fork), exposes it through EIP-5267
        `eip712Domain()`, and recovers signers with the checks every signature
        path of the suite needs.
@custom:security Signatures are accepted only with a low `s` (EIP-2), `v` in
        {27, 28} and a non-zero recovered address, so no signature has a second,
        malleated form that the contracts would also accept.
"""

# keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
_DOMAIN_TYPE_HASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
# secp256k1n / 2 (0x7FFF...20A0): the largest `s` of a canonical (low-s) signature.
_MAX_S: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168

_NAME: immutable(String[96])
_VERSION: immutable(String[8])
_HASHED_NAME: immutable(bytes32)
_HASHED_VERSION: immutable(bytes32)
_CACHED_CHAIN_ID: immutable(uint256)
_CACHED_SELF: immutable(address)
_CACHED_DOMAIN_SEPARATOR: immutable(bytes32)


@deploy
def __init__(name: String[96], version: String[8]):
    """
    @notice Fixes the domain's name and version and caches the separator.
    @param name The EIP-712 domain name.
    @param version The EIP-712 domain version.
    """
    _NAME = name
    _VERSION = version
    _HASHED_NAME = keccak256(name)
    _HASHED_VERSION = keccak256(version)
    _CACHED_CHAIN_ID = chain.id
    _CACHED_SELF = self
    _CACHED_DOMAIN_SEPARATOR = self._build_domain_separator()


@external
@view
def DOMAIN_SEPARATOR() -> bytes32:
    """
    @notice The EIP-712 domain separator of this contract on this chain.
    @return The 32-byte domain separator.
    """
    return self._domain_separator()


@external
@view
def eip712Domain() -> (bytes1, String[96], String[8], uint256, address, bytes32, DynArray[uint256, 1]):
    """
    @notice The EIP-5267 description of this contract's EIP-712 domain.
    @return Fields bitmap (name, version, chainId, verifyingContract), name,
            version, chain id, verifying contract, salt (unused), extensions (none).
    """
    return (0x0f, _NAME, _VERSION, chain.id, self, empty(bytes32), [])


@internal
@view
def _domain_separator() -> bytes32:
    if chain.id == _CACHED_CHAIN_ID and self == _CACHED_SELF:
        return _CACHED_DOMAIN_SEPARATOR
    return self._build_domain_separator()


@internal
@view
def _build_domain_separator() -> bytes32:
    return keccak256(abi_encode(_DOMAIN_TYPE_HASH, _HASHED_NAME, _HASHED_VERSION, chain.id, self))


@internal
@view
def _hash_typed_data(struct_hash: bytes32) -> bytes32:
    return keccak256(concat(b"\x19\x01", self._domain_separator(), struct_hash))


@internal
@view
def _recover(digest: bytes32, v: uint256, r: uint256, s: uint256) -> address:
    assert s <= _MAX_S, "eip712: signature s is high"
    assert v == 27 or v == 28, "eip712: signature v is invalid"
    signer: address = ecrecover(digest, v, r, s)
    assert signer != empty(address), "eip712: signature is invalid"
    return signer


@internal
@view
def _try_recover(digest: bytes32, v: uint256, r: uint256, s: uint256) -> address:
    # `_recover` without the reverts, for batches that skip a bad signature and go on:
    # the zero address for any signature `_recover` refuses.
    if s > _MAX_S or (v != 27 and v != 28):
        return empty(address)
    return ecrecover(digest, v, r, s)
