"""What brownie scripts need: the active network's Web3 and the account to act as.

Scripts stay thin: they get these two things here and call the same library functions
as the CLI.

brownie is an extra (``pip install 'edgeshare[brownie]'``): without it this module does not
import, with an ImportError that says so. Nothing the library or the CLI uses imports it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from web3 import Web3

from edgeshare.config import load_settings, read_secret_env
from edgeshare.deploy import get_default_manifest_path, read_manifest
from edgeshare.errors import InputError, KeyUnavailable
from edgeshare.signer import Signer, load_signer_from_env
from edgeshare.suite import Suite
from edgeshare.tx import Transactor

if importlib.util.find_spec("brownie") is None:
    raise ImportError(
        "edgeshare.brownie_support runs inside brownie: pip install 'edgeshare[brownie]'",
        name="brownie",
    )

KEY_ENV = "EDGESHARE_PRIVATE_KEY"


def get_web3() -> Web3:
    """brownie's connection to the active network (``brownie run ... --network NAME``)."""
    from brownie import web3
    from brownie.network.main import is_connected

    if not is_connected():
        raise KeyUnavailable("brownie is not connected to a network")
    return web3


def get_signer() -> Signer:
    """The account scripts act as.

    ``$EDGESHARE_PRIVATE_KEY`` when set; else brownie's first account, which is an
    unlocked dev account on a development network, or one added with
    ``accounts.load(...)`` on a live one.
    """
    if read_secret_env(KEY_ENV):
        return load_signer_from_env(KEY_ENV)
    from brownie import accounts

    if len(accounts) == 0:
        raise KeyUnavailable(
            f"no account: set {KEY_ENV} or load one in brownie (accounts.load(NAME))"
        )
    account = accounts[0]
    key = getattr(account, "private_key", None)
    if key:
        return Signer.from_key(str(key))
    return Signer(address=str(account.address))


def get_suite(manifest: str = "") -> Suite:
    """The suite of ``manifest`` (default ``deployments/<chain_id>.json``) on brownie's network."""
    w3 = get_web3()
    path = Path(manifest) if manifest else get_default_manifest_path(int(w3.eth.chain_id))
    found = read_manifest(path)
    if found is None:
        raise InputError(f"no manifest at {path}: run scripts/deploy.py first")
    return Suite.load(w3, found)


def get_transactor() -> Transactor:
    """A Transactor for the scripts' account on brownie's network."""
    return Transactor(get_web3(), get_signer(), max_fee_per_gas=load_settings().max_fee_per_gas)
