"""Signing EIP-712 messages with a key held elsewhere: a remote signer over JSON-RPC.

The agent's attestor key can stay in a signer service (a hardware-backed signer, a
KMS proxy, or, in tests, anvil's unlocked dev accounts) that answers
``eth_signTypedData_v4`` with ``[address, typedData]``, the typed data as a JSON string
(the convention of MetaMask and ethers.js) whose integers are decimal strings (uint256
values exceed JSON's safe integers). Nothing the service returns is trusted: every
signature is checked before use to be 65 bytes, low-s, and to recover to the expected
address for the digest computed here, so a signer that signs something else, or with
another key, is caught before anything is sent.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from edgeshare.attestation import (
    Eip712Domain,
    SignedReport,
    UsageReport,
    build_typed_data,
    get_digest,
    recover_digest,
)
from edgeshare.errors import EdgeShareError, InputError
from edgeshare.models import checksum_address
from edgeshare.rpc import redact_urls

DEFAULT_TIMEOUT = 10.0
"""Seconds per signing request."""


class RemoteSignerError(EdgeShareError, ConnectionError):
    """The remote signer could not be reached, refused, or returned a bad signature."""


def _stringify_ints(value: Any) -> Any:
    """``value`` with every integer as a decimal string (booleans kept)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return {k: _stringify_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify_ints(v) for v in value]
    return value


class RemoteSigner:
    """A signer service holding ``address``'s key, reached at ``url`` (JSON-RPC over HTTP).

    Args:
        url: The service's http(s) URL (it may carry credentials: it is shown only as
            its host in messages).
        address: The account whose signatures are expected.
        timeout: Seconds per request.
        client: An httpx client to reuse (default: one of this signer's own).
    """

    def __init__(
        self,
        url: str,
        address: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        client: httpx.Client | None = None,
    ) -> None:
        if not url.lower().startswith(("http://", "https://")):
            raise InputError("a remote signer URL must start with http:// or https://")
        self.url = url
        self.address: str = checksum_address(address)
        self._client = client or httpx.Client(timeout=timeout)
        self._id = 0

    def __repr__(self) -> str:
        return f"RemoteSigner({self.address} at {redact_urls(self.url)})"

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def sign_typed_data(self, typed_data: dict[str, Any], digest: bytes) -> bytes:
        """Have the service sign ``typed_data`` and check the result against ``digest``.

        Args:
            typed_data: The full EIP-712 message (types, primaryType, domain, message).
            digest: Its EIP-712 digest, computed by the caller from the same fields.

        Returns:
            The signature, r || s || v with v = 27 or 28.

        Raises:
            RemoteSignerError: the service is unreachable, answers an error, or returns a
                signature that is malformed, high-s, or not ``address``'s for ``digest``.
        """
        self._id += 1
        body = {
            "jsonrpc": "2.0",
            "id": self._id,
            "method": "eth_signTypedData_v4",
            "params": [self.address, json.dumps(_stringify_ints(typed_data))],
        }
        where = redact_urls(self.url)
        try:
            response = self._client.post(self.url, json=body)
            reply = response.json()
        except httpx.HTTPError as exc:
            raise RemoteSignerError(
                f"remote signer {where} unreachable: {type(exc).__name__}"
            ) from None
        except ValueError:
            raise RemoteSignerError(
                f"remote signer {where} answered HTTP {response.status_code} without JSON"
            ) from None
        if not isinstance(reply, dict):
            raise RemoteSignerError(f"remote signer {where} answered something not JSON-RPC")
        if reply.get("error") is not None:
            error = reply["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise RemoteSignerError(f"remote signer {where} refused to sign: {message}")
        result = reply.get("result")
        if not isinstance(result, str) or not result.startswith("0x") or len(result) != 132:
            raise RemoteSignerError(f"remote signer {where} returned no 65-byte signature")
        try:
            signature = bytearray(bytes.fromhex(result[2:]))
        except ValueError:
            raise RemoteSignerError(
                f"remote signer {where} returned a signature that is not hex"
            ) from None
        if signature[64] in (0, 1):  # some signers give the recovery id itself
            signature[64] += 27
        try:
            signer = recover_digest(digest, bytes(signature))
        except InputError as exc:
            raise RemoteSignerError(
                f"remote signer {where} returned a bad signature: {exc}"
            ) from None
        if signer != self.address:
            raise RemoteSignerError(
                f"remote signer {where} signed with {signer}, not {self.address}, or signed "
                "another message"
            )
        return bytes(signature)

    def sign_report(self, report: UsageReport, domain: Eip712Domain) -> SignedReport:
        """Sign a usage report (checked as ``sign_typed_data`` checks)."""
        digest = get_digest(report, domain)
        signature = self.sign_typed_data(build_typed_data(report, domain), digest)
        fields = {name: getattr(report, name) for name in UsageReport.model_fields}
        return SignedReport.model_construct(**fields, signature="0x" + signature.hex())
