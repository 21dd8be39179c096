"""Signing keys: read from an environment variable or a keystore, never from a flag.

A key is never printed, logged or put in an exception message; ``Signer``'s repr shows
only the address.
"""

from __future__ import annotations

import getpass
import json
import re
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import Hash32

from edgeshare.config import read_secret_env
from edgeshare.errors import KeyUnavailable


class Signer:
    """An account that signs transactions locally, or one the node holds unlocked.

    Args:
        account: A local account (signs here), or None for ``address`` unlocked on the node.
        address: Required when ``account`` is None.
    """

    def __init__(self, account: LocalAccount | None = None, address: str | None = None) -> None:
        if account is None and address is None:
            raise ValueError("a Signer needs an account or an address")
        self._account = account
        self.address: str = account.address if account is not None else str(address)

    @property
    def is_local(self) -> bool:
        """True when this process signs (False: the node signs for an unlocked account)."""
        return self._account is not None

    def sign_transaction(self, tx: dict[str, Any]) -> bytes:
        """Sign a complete transaction; returns the raw signed bytes."""
        if self._account is None:
            raise RuntimeError("an unlocked node account cannot sign here")
        signed = self._account.sign_transaction(tx)
        return bytes(signed.raw_transaction)

    def sign_message_hash(self, digest: bytes) -> bytes:
        """Sign a 32-byte digest (e.g. EIP-712); returns r || s || v (65 bytes)."""
        if self._account is None:
            raise RuntimeError("an unlocked node account cannot sign here")
        signed = self._account.unsafe_sign_hash(Hash32(digest))
        return bytes(signed.signature)

    def export_key(self) -> str:
        """The private key (hex), for signing libraries; never print or log it."""
        if self._account is None:
            raise RuntimeError("an unlocked node account has no key here")
        return "0x" + bytes(self._account.key).hex()

    def __repr__(self) -> str:
        kind = "local" if self.is_local else "unlocked"
        return f"Signer({self.address}, {kind})"

    @classmethod
    def from_key(cls, key: str) -> Signer:
        """A signer from a hex private key (as read from the environment)."""
        try:
            return cls(Account.from_key(key.strip()))
        except Exception:
            raise KeyUnavailable("the private key is not a valid 32-byte hex key") from None


_HEX_RUN = re.compile(r"[0-9a-fA-F]{32}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def check_env_name(var: str, option: str = "--private-key-env") -> None:
    """Refuse a value given where a variable *name* belongs, without ever showing it: a
    key typed (or expanded, ``$KEY``) in place of the name must not reach any output, and
    neither may anything else that is not a plain variable name."""
    if _HEX_RUN.search(var):
        raise KeyUnavailable(
            f"{option} takes the NAME of an environment variable, and what was given looks "
            "like a private key itself (not shown); pass the variable's name, e.g. "
            f"{option} DEPLOYER_KEY, not $DEPLOYER_KEY"
        )
    if not _ENV_NAME.match(var):
        raise KeyUnavailable(
            f"{option} takes the NAME of an environment variable (letters, digits and _, "
            "not starting with a digit); what was given is not one (not shown)"
        )


def load_signer_from_env(var: str, option: str = "--private-key-env") -> Signer:
    """Load a private key from the environment variable ``var`` (the user names it)."""
    check_env_name(var, option)
    value = read_secret_env(var)
    if not value:
        raise KeyUnavailable(
            f"environment variable {var} is not set (or empty); it must hold the private key"
        )
    try:
        return Signer.from_key(value)
    except KeyUnavailable:
        raise KeyUnavailable(
            f"environment variable {var} does not hold a valid 32-byte hex private key"
        ) from None


def load_signer_from_keystore(path: Path, password: str | None = None) -> Signer:
    """Decrypt a keystore with ``password``, or one asked for at a prompt (the command
    line passes ``EDGESHARE_KEYSTORE_PASSWORD`` when set)."""
    if not path.is_file():
        raise KeyUnavailable(f"keystore {path} does not exist")
    try:
        keyfile = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise KeyUnavailable(f"keystore {path} is not a JSON keystore: {exc}") from None
    if password is None:
        password = getpass.getpass(f"password for {path}: ")
    try:
        key = Account.decrypt(keyfile, password)
    except Exception:
        raise KeyUnavailable(
            f"cannot decrypt keystore {path}: wrong password or damaged file"
        ) from None
    return Signer(Account.from_key(key))
