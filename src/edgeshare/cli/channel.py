"""``edgeshare channel``: customers pay nodes directly through prepaid channels.

Customers: ``deposit``, ``authorize``/``revoke`` an app's key, ``low-balance``, ``close``,
``withdraw``, ``status`` and ``voucher`` (prints a signed voucher as JSON). Operators
(or the node's attestor): ``redeem`` vouchers files, safe to run again. Every command is
a thin layer over ``edgeshare.channels``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgeshare import channels as lib
from edgeshare.cli import console
from edgeshare.cli.common import (
    BaseUnits,
    Confirmations,
    DryRun,
    Json,
    Keystore,
    ManifestPath,
    Network,
    PrivateKeyEnv,
    RpcUrl,
    build_target,
    load_signer,
    load_suite,
    open_chain,
    open_sender,
)
from edgeshare.cli.roles import AccountArg, NodeId, Outcome, sends
from edgeshare.errors import InputError
from edgeshare.models import parse_address
from edgeshare.roles import fetch_chain_time
from edgeshare.status import ChannelView, fetch_clock, fetch_customer_channels
from edgeshare.suite import Suite
from edgeshare.tx import Transactor
from edgeshare.units import Token, format_duration, format_utc

app = typer.Typer(
    help="Prepaid payment channels: customers pay a node per use with signed vouchers.",
    no_args_is_help=True,
)

_AMOUNTS = frozenset(
    {"amount", "deposited", "redeemed", "unredeemed", "low_balance_threshold", "cumulative"}
)


def _amount(coin: Token, text: str, name: str, base_units: bool) -> int:
    value = coin.parse(text, name, base_units=base_units)
    if not 0 < value <= lib.MAX_AMOUNT:
        raise InputError(f"{name} must be more than 0 and below 2**128 base units")
    return value


# ---------------------------------------------------------------- customers ----


@sends(app, "deposit")
def deposit(
    tx: Transactor,
    suite: Suite,
    node_id: NodeId,
    amount: Annotated[str, typer.Argument(help="Stablecoin in whole units, e.g. 25 or 2.5.")],
    base_units: BaseUnits = False,
) -> Outcome:
    """Open or top up your channel to a node (approves the channels contract if needed).
    A deposit while a close is pending cancels the close."""
    coin = suite.fetch_stablecoin_token()
    value = _amount(coin, amount, "AMOUNT", base_units)
    action = lib.send_deposit(tx, suite, node_id, value)
    left = action.details.get("unredeemed", value)
    cancelled = " (the pending close is cancelled)" if action.details.get("close_cancelled") else ""
    return action, (
        f"deposited {coin.format(value)} into your channel to node {node_id}: "
        f"{coin.format(left)} unredeemed{cancelled}"
    )


@sends(app, "authorize")
def authorize(tx: Transactor, suite: Suite, node_id: NodeId, signer: AccountArg) -> Outcome:
    """Let an app's key sign vouchers for your channel to a node (your wallet is then not
    asked for every request; revoke it with `channel revoke`)."""
    action = lib.send_authorize_signer(tx, suite, node_id, signer)
    return (
        action,
        f"{action.details['signer']} may sign vouchers for your channel to node {node_id}",
    )


@sends(app, "revoke")
def revoke(tx: Transactor, suite: Suite, node_id: NodeId, signer: AccountArg) -> Outcome:
    """Revoke an app key: what it signed stays redeemable for the grace period (one epoch
    plus the challenge period), nothing it signs pays afterwards."""
    action = lib.send_revoke_signer(tx, suite, node_id, signer)
    when = action.details.get("effective_at")
    at = f" from {format_utc(int(when))}" if when else " after the grace period"
    return action, f"{action.details['signer']} is revoked for node {node_id}{at}"


@sends(app, "low-balance")
def low_balance(
    tx: Transactor,
    suite: Suite,
    node_id: NodeId,
    threshold: Annotated[str, typer.Argument(help="Warn below this many whole units (0: never).")],
    base_units: BaseUnits = False,
) -> Outcome:
    """Have the chain log LowBalance (and `channel status` warn) when a redemption takes your
    unredeemed deposit below a threshold."""
    coin = suite.fetch_stablecoin_token()
    value = coin.parse(threshold, "THRESHOLD", base_units=base_units)
    action = lib.send_set_low_balance(tx, suite, node_id, value)
    return action, f"the channel to node {node_id} warns below {coin.format(value)}"


@sends(app, "close")
def close(tx: Transactor, suite: Suite, node_id: NodeId) -> Outcome:
    """Start closing your channel to a node: the node may still redeem during the grace
    period, then `channel withdraw` returns the rest."""
    action = lib.send_request_close(tx, suite, node_id)
    closes_at = int(action.details["closes_at"])
    grace = format_duration(int(action.details["grace"]))
    return action, (
        f"closing your channel to node {node_id}: the node may redeem for {grace}; "
        f"withdraw from {format_utc(closes_at)}"
    )


@sends(app, "withdraw")
def withdraw(tx: Transactor, suite: Suite, node_id: NodeId) -> Outcome:
    """Withdraw what is left in your channel to a node once its grace period is over."""
    coin = suite.fetch_stablecoin_token()
    action = lib.send_withdraw_channel(tx, suite, node_id)
    return action, f"withdrew {coin.format(int(action.details['amount']))} from node {node_id}"


Customer = Annotated[
    str | None,
    typer.Option(
        "--customer",
        help="Whose channel (default: the key's address). With an app key, the customer it "
        "signs for.",
    ),
]


@app.command("status")
def status(
    node: Annotated[
        int | None, typer.Argument(help="One node (default: every node)", min=1)
    ] = None,
    customer: Customer = None,
    private_key_env: PrivateKeyEnv = None,
    keystore: Keystore = None,
    rpc_url: RpcUrl = None,
    network: Network = None,
    manifest: ManifestPath = None,
    json_output: Json = False,
) -> None:
    """Your channels: deposited, redeemed, unredeemed, generation, close and withdrawal
    times, and a warning below your low-balance threshold."""
    if customer is None and not (private_key_env or keystore):
        raise InputError("whose channels? pass --customer ADDRESS (or your key)")
    target = build_target(rpc_url, network, start_local=False)
    who = (
        parse_address(customer, "--customer")
        if customer
        else load_signer(private_key_env, keystore, target).address
    )
    with open_chain(target) as w3:
        suite = load_suite(w3, manifest)
        clock = fetch_clock(suite)
        records = fetch_customer_channels(suite, clock, who, [node] if node else None)
        coin = suite.fetch_stablecoin_token()
    now = clock.chain_time
    if json_output:
        rows = [console.amounts_as_strings(r.model_dump(), _AMOUNTS) for r in records]
        console.print_json(
            {"customer": who, "now": now, "channels": rows, "decimals": coin.decimals}
        )
        return
    if not records:
        console.out.print(f"{who} has no channels")
        return
    table = [
        [
            r.node_id,
            coin.format(r.deposited),
            coin.format(r.redeemed),
            coin.format(r.unredeemed),
            r.generation,
            _describe_state(r, now),
        ]
        for r in records
    ]
    console.print_table(
        f"channels of {who}",
        ["node", "deposited", "redeemed", "unredeemed", "generation", "state"],
        table,
    )
    for r in records:
        if r.low_balance:
            console.warn(
                f"node {r.node_id}: {coin.format(r.unredeemed)} left, below your threshold "
                f"{coin.format(r.low_balance_threshold)}: `edgeshare channel deposit {r.node_id} "
                "AMOUNT`"
            )


def _describe_state(view: ChannelView, now: int) -> str:
    if view.state == "closing":
        left = format_duration(view.withdrawable_at - now)
        return f"closing: withdraw from {format_utc(view.withdrawable_at)} ({left})"
    if view.state == "withdrawable":
        return "withdrawable: `edgeshare channel withdraw`"
    return view.state


@app.command("voucher")
def voucher(
    node_id: NodeId,
    cumulative: Annotated[
        str,
        typer.Argument(help="What you owe the node on this channel so far, in whole units."),
    ],
    customer: Customer = None,
    expires_in: Annotated[
        int,
        typer.Option("--expires-in", min=60, help="Seconds the voucher stays redeemable."),
    ] = lib.DEFAULT_VOUCHER_LIFETIME,
    base_units: BaseUnits = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of printing.")
    ] = None,
    private_key_env: PrivateKeyEnv = None,
    keystore: Keystore = None,
    rpc_url: RpcUrl = None,
    network: Network = None,
    manifest: ManifestPath = None,
    json_output: Json = False,
) -> None:
    """Sign a voucher for your channel and print it as JSON (a vouchers file that
    `channel redeem` takes). Signs with your key, or with an app key you authorised
    (then pass --customer). Sends nothing."""
    target = build_target(rpc_url, network, start_local=False)
    signer = load_signer(private_key_env, keystore, target)
    who = parse_address(customer, "--customer") if customer else signer.address
    if output is not None and output.exists():
        raise InputError(f"{output} exists: choose another name or remove it first")
    with open_chain(target) as w3:
        suite = load_suite(w3, manifest)
        coin = suite.fetch_stablecoin_token()
        value = _amount(coin, cumulative, "CUMULATIVE", base_units)
        now = fetch_chain_time(suite)
        built = lib.build_voucher(suite, who, node_id, value, now + expires_in)
        if who.lower() != signer.address.lower():
            until = int(suite.channels.call("signer_valid_until", who, node_id, signer.address))
            if until <= now:
                raise InputError(
                    f"{signer.address} is not authorised to sign for {who}'s channel to node "
                    f"{node_id}: the customer runs `edgeshare channel authorize {node_id} "
                    f"{signer.address}`"
                )
        domain = lib.fetch_channels_domain(suite)
    signed = lib.sign_voucher(built, signer.export_key(), domain)
    text = lib.VouchersFile(domain=domain, vouchers=[signed]).model_dump_json(
        by_alias=True, indent=2
    )
    if output is None:
        console.print_text(text)
        return
    output.write_text(text + "\n")
    if json_output:
        console.print_json(
            {"file": str(output), "node_id": node_id, "customer": who,
             "cumulative": str(value), "deadline": signed.deadline, "decimals": coin.decimals}
        )  # fmt: skip
        return
    console.note(f"wrote a voucher for {coin.format(value)} to node {node_id} to {output}")


# -------------------------------------------------------------------- nodes ----


@app.command("redeem")
def redeem(
    files: Annotated[
        list[Path], typer.Argument(help="Vouchers files (from `channel voucher` or a gateway).")
    ],
    batch_size: Annotated[int, typer.Option(help="Vouchers per transaction (1-100).")] = 100,
    rpc_url: RpcUrl = None,
    network: Network = None,
    private_key_env: PrivateKeyEnv = None,
    keystore: Keystore = None,
    manifest: ManifestPath = None,
    confirmations: Confirmations = 1,
    dry_run: DryRun = False,
    json_output: Json = False,
) -> None:
    """Redeem the latest voucher of every channel in the files (as the node's operator or
    attestor). What would pay nothing is skipped and named: safe to run again."""
    parsed = [lib.read_vouchers_file(path) for path in files]
    if any(p.domain != parsed[0].domain for p in parsed):
        raise InputError("the files were signed for different channels contracts or chains")
    vouchers = [v for p in parsed for v in p.vouchers]
    if not vouchers:
        raise InputError("the files hold no vouchers")
    opened = open_sender(
        rpc_url, network, private_key_env, keystore, manifest, confirmations, dry_run=dry_run
    )
    with opened as (suite, tx), console.progress(disabled=json_output) as progress:
        result = lib.redeem_vouchers(
            tx, suite, vouchers, parsed[0].domain, batch_size=batch_size, on_progress=progress
        )
        coin = suite.fetch_stablecoin_token()
    if dry_run:
        console.print_planned(tx.planned, json_output)
    skipped = [_skip_row(v, reason) for v, reason in result.skipped]
    if json_output:
        data: dict[str, Any] = {
            "vouchers": result.total,
            "redeemed": result.redeemed,
            "amount": str(result.amount),
            "superseded": result.superseded,
            "skipped": skipped,
            "transactions": result.transactions,
            "gas_used": result.gas_used,
            "decimals": coin.decimals,
            "dry_run": dry_run,
        }
        console.print_json(data)
        return
    verb = "would redeem" if dry_run else "redeemed"
    console.out.print(
        f"{verb} {result.redeemed} voucher(s) for {coin.format(result.amount)} in "
        f"{len(result.transactions)} transaction(s); {result.superseded} superseded by a later "
        f"voucher of the same channel, {len(result.skipped)} skipped"
    )
    for row in skipped:
        console.note(
            f"skipped node {row['node_id']} customer {row['customer']} cumulative "
            f"{coin.format(int(row['cumulative']))}: {row['why']}"
        )


def _skip_row(v: lib.SignedVoucher, reason: int) -> dict[str, Any]:
    return {
        "node_id": v.node_id,
        "customer": v.customer,
        "cumulative": str(v.cumulative),
        "reason": reason,
        "why": lib.SKIP_REASONS.get(reason, f"reason {reason}"),
    }
