"""Small library helpers whose mistakes would be silent: address checksums written into
the index, URLs in error messages, the RPC timeout setting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from web3 import Web3

from edgeshare.config import RPC_TIMEOUT_ENV, load_settings
from edgeshare.errors import InputError
from edgeshare.models import to_checksum
from edgeshare.rpc import redact_urls


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=20, max_size=20))
def test_to_checksum__equals_eth_utils(raw: bytes) -> None:
    assert to_checksum(raw) == Web3.to_checksum_address(raw)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://eth-sepolia.g.alchemy.com/v2/KEY123", "https://eth-sepolia.g.alchemy.com/..."),
        ("at http://u:pw@host:8545/x?apikey=K, retrying", "at http://host:8545/... retrying"),
        ("https://rpc.example/?key=K", "https://rpc.example/..."),
        ("local http://127.0.0.1:8545 and http://127.0.0.1:8545/", "local http://127.0.0.1:8545 and http://127.0.0.1:8545/"),
    ],
)  # fmt: skip
def test_redact_urls__keeps_scheme_and_host_only(text: str, shown: str) -> None:
    assert redact_urls(text) == shown
    assert "KEY123" not in redact_urls(text) and "pw" not in redact_urls(text)


def test_rpc_timeout__from_environment_or_default() -> None:
    assert load_settings({}).rpc_timeout is None
    assert load_settings({RPC_TIMEOUT_ENV: "2.5"}).rpc_timeout == 2.5
    for bad in ("0", "-1", "soon", "99999"):
        with pytest.raises(InputError, match=RPC_TIMEOUT_ENV):
            load_settings({RPC_TIMEOUT_ENV: bad})


@pytest.mark.parametrize(
    ("message", "too_low"),
    [
        ("nonce too low", True),  # geth, anvil
        ("Nonce too low: next nonce 12, tx nonce 5", True),
        # Ganache: the demo's agents send with an operator's key the demo also uses
        (
            "the tx doesn't have the correct nonce. account has nonce of: 12 tx has nonce of: 5",
            True,
        ),
        (
            "the tx doesn't have the correct nonce. account has nonce of: 5 tx has nonce of: 12",
            False,
        ),
        ("insufficient funds for gas * price + value", False),
    ],
)
def test_nonce_too_low__every_node_s_words(message: str, too_low: bool) -> None:
    from edgeshare.pipeline import _is_nonce_too_low
    from edgeshare.rpc import RpcError

    assert _is_nonce_too_low(RpcError(-32000, message)) is bool(too_low)
