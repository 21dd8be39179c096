"""Payment channels as brownie scripts (the same library as `edgeshare channel`).

Customers:
brownie run scripts/channel.py deposit NODE_ID AMOUNT [manifest.json] --network NAME
brownie run scripts/channel.py authorize|revoke NODE_ID SIGNER [manifest.json]
brownie run scripts/channel.py close|withdraw NODE_ID [manifest.json]
brownie run scripts/channel.py voucher NODE_ID CUMULATIVE OUT.json [manifest.json]
Operators (or the node's attestor):
brownie run scripts/channel.py redeem VOUCHERS.json [manifest.json]

AMOUNT and CUMULATIVE are whole stablecoin units (2.5). Signing a voucher needs a key
this process holds ($EDGESHARE_PRIVATE_KEY, or an account with its key in brownie).
"""

from __future__ import annotations

from pathlib import Path

from edgeshare import channels
from edgeshare.brownie_support import get_signer, get_suite, get_transactor
from edgeshare.errors import InputError, KeyUnavailable
from edgeshare.roles import Action, fetch_chain_time


def _done(action: Action) -> Action:
    print(f"{action.what}: transaction {action.transaction} ({action.gas:,} gas)")
    return action


def deposit(node_id: str, amount: str, manifest: str = "") -> Action:
    """Open or top up this account's channel to the node."""
    suite = get_suite(manifest)
    value = suite.fetch_stablecoin_token().parse(amount, "AMOUNT")
    return _done(channels.send_deposit(get_transactor(), suite, int(node_id), value))


def authorize(node_id: str, signer: str, manifest: str = "") -> Action:
    """Let an app's key sign vouchers for this account's channel."""
    suite = get_suite(manifest)
    return _done(channels.send_authorize_signer(get_transactor(), suite, int(node_id), signer))


def revoke(node_id: str, signer: str, manifest: str = "") -> Action:
    """Revoke an app key (its vouchers stop paying after the grace period)."""
    suite = get_suite(manifest)
    return _done(channels.send_revoke_signer(get_transactor(), suite, int(node_id), signer))


def close(node_id: str, manifest: str = "") -> Action:
    """Start closing the channel: the node may redeem during the grace period."""
    return _done(channels.send_request_close(get_transactor(), get_suite(manifest), int(node_id)))


def withdraw(node_id: str, manifest: str = "") -> Action:
    """Withdraw the unredeemed rest once the grace period is over."""
    suite = get_suite(manifest)
    return _done(channels.send_withdraw_channel(get_transactor(), suite, int(node_id)))


def voucher(node_id: str, cumulative: str, out: str, manifest: str = "") -> channels.SignedVoucher:
    """Sign a voucher for this account's channel and write it as a vouchers file."""
    suite = get_suite(manifest)
    signer = get_signer()
    if not signer.is_local:
        raise KeyUnavailable("signing a voucher needs a key here: set EDGESHARE_PRIVATE_KEY")
    path = Path(out)
    if path.exists():
        raise InputError(f"{path} exists: choose another name or remove it first")
    value = suite.fetch_stablecoin_token().parse(cumulative, "CUMULATIVE")
    deadline = fetch_chain_time(suite) + channels.DEFAULT_VOUCHER_LIFETIME
    built = channels.build_voucher(suite, signer.address, int(node_id), value, deadline)
    domain = channels.fetch_channels_domain(suite)
    signed = channels.sign_voucher(built, signer.export_key(), domain)
    file = channels.VouchersFile(domain=domain, vouchers=[signed])
    path.write_text(file.model_dump_json(by_alias=True, indent=2) + "\n")
    print(f"wrote a voucher for {cumulative} to node {node_id} to {path}")
    return signed


def redeem(vouchers: str, manifest: str = "") -> channels.RedeemResult:
    """Redeem the latest voucher of every channel in the file (safe to run again)."""
    suite = get_suite(manifest)
    parsed = channels.read_vouchers_file(Path(vouchers))
    result = channels.redeem_vouchers(get_transactor(), suite, parsed.vouchers, parsed.domain)
    amount = suite.fetch_stablecoin_token().format(result.amount)
    print(f"redeemed {result.redeemed} voucher(s) for {amount}; {len(result.skipped)} skipped")
    return result
