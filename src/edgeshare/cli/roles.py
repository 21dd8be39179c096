"""Every role's own commands: ``operator``, ``guardian``, ``registrar``, ``owner``,
``withdraw`` and, on local chains, ``dev``.

Each command is a small function of its own arguments that calls ``edgeshare.roles``;
``sends`` adds the options every sending command shares (chain, key, manifest,
confirmations, ``--dry-run``, ``--json``) and prints the outcome the same way for all.
"""

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

from edgeshare import roles
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
    open_sender,
)
from edgeshare.errors import InputError
from edgeshare.metadata import NodeMetadata
from edgeshare.models import parse_address
from edgeshare.roles import Action
from edgeshare.status import fetch_clock
from edgeshare.suite import NodeStatus, Suite
from edgeshare.tx import Transactor
from edgeshare.units import format_bps, format_price, format_utc, parse_bps

Outcome = tuple[Action, str]
"""What a command did and the sentence that says it in units people read."""

_SHARED = {
    "rpc_url": (RpcUrl, None),
    "network": (Network, None),
    "private_key_env": (PrivateKeyEnv, None),
    "keystore": (Keystore, None),
    "manifest": (ManifestPath, None),
    "confirmations": (Confirmations, 1),
    "dry_run": (DryRun, False),
    "json_output": (Json, False),
}


def sends(app: typer.Typer, name: str) -> Callable[[Callable[..., Outcome]], Callable[..., None]]:
    """Register ``fn(tx, suite, **its own args) -> (Action, sentence)`` as command ``name``
    of ``app``, with the shared sending options appended to its arguments."""

    def register(fn: Callable[..., Outcome]) -> Callable[..., None]:
        own = list(inspect.signature(fn, eval_str=True).parameters.values())[2:]

        @functools.wraps(fn)
        def command(**kwargs: Any) -> None:
            shared = {key: kwargs.pop(key) for key in _SHARED}
            opened = open_sender(
                shared["rpc_url"],
                shared["network"],
                shared["private_key_env"],
                shared["keystore"],
                shared["manifest"],
                shared["confirmations"],
                dry_run=shared["dry_run"],
            )
            with opened as (suite, tx):
                action, sentence = fn(tx, suite, **kwargs)
                decimals = suite.fetch_stablecoin_token().decimals
            _print(tx, action, sentence, shared["json_output"], decimals)

        params = own + [
            inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
            for key, (kind, default) in _SHARED.items()
        ]
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        app.command(name)(command)
        return command

    return register


_AMOUNTS = frozenset({"price_per_1k", "revenue", "amount", "unredeemed", "threshold"})
"""Details that are stablecoin amounts: exact strings of base units in ``--json``."""


def _print(tx: Transactor, action: Action, sentence: str, json_output: bool, decimals: int) -> None:
    print_action(tx, action, sentence, json_output, decimals)


def print_action(
    tx: Transactor,
    action: Action,
    sentence: str,
    json_output: bool,
    decimals: int | dict[str, int],
    amounts: frozenset[str] = _AMOUNTS,
) -> None:
    """What a sending command prints: the plan of a dry run, the action as JSON (the
    details under ``amounts`` as exact strings), or the sentence and the transaction."""
    if tx.dry_run:
        console.print_planned(tx.planned, json_output)
        if not json_output:
            console.note(f"would: {sentence}")
        return
    if json_output:
        details = console.amounts_as_strings(action.details, amounts)
        console.print_json(
            {"what": action.what, "transaction": action.transaction, "gas_used": action.gas,
             "details": details, "decimals": decimals}
        )  # fmt: skip
        return
    console.out.print(sentence)
    console.note(f"transaction {action.transaction} ({action.gas:,} gas)")


NodeId = Annotated[int, typer.Argument(help="The node's id.", min=1)]
AccountArg = Annotated[str, typer.Argument(help="An address (0x..., checksummed or lower case).")]


def _when(suite: Suite, epoch: int) -> str:
    return f"epoch {epoch} (starts {format_utc(fetch_clock(suite).epoch_start(epoch))})"


# ---------------------------------------------------------------- operator ----

operator_app = typer.Typer(help="What a node's operator does.", no_args_is_help=True)


@sends(operator_app, "set-price")
def set_price(
    tx: Transactor,
    suite: Suite,
    node_id: NodeId,
    price: Annotated[
        str, typer.Argument(help="Stablecoin per 1,000 inferences in whole units, e.g. 0.45.")
    ],
    base_units: BaseUnits = False,
) -> Outcome:
    """Set the node's price from the next epoch on (the current epoch keeps its price)."""
    coin = suite.fetch_stablecoin_token()
    value = coin.parse(price, "PRICE", base_units=base_units)
    action = roles.send_set_price(tx, suite, node_id, value)
    start = action.details.get("from_epoch")
    applies = f" from {_when(suite, int(start))}" if start is not None else ""
    return action, f"node {node_id} costs {format_price(value, coin)}{applies}"


@sends(operator_app, "propose-cut")
def propose_cut(
    tx: Transactor,
    suite: Suite,
    node_id: NodeId,
    percent: Annotated[
        str, typer.Argument(help="The operator's cut in percent (12.5) or '1250 bps'.")
    ],
) -> Outcome:
    """Propose a new operator cut: a decrease applies from the next epoch, an increase
    from the first epoch that starts at least 7 days from now (holders see it coming)."""
    bps = parse_bps(percent, "PERCENT")
    if bps > 5_000:
        raise InputError(f"PERCENT: {format_bps(bps)} is above the 50% cap")
    action = roles.send_propose_cut(tx, suite, node_id, bps)
    start = action.details.get("from_epoch")
    applies = f" from {_when(suite, int(start))}" if start is not None else ""
    return action, f"node {node_id}'s operator cut becomes {format_bps(bps)}{applies}"


@sends(operator_app, "rotate-attestor")
def rotate_attestor(tx: Transactor, suite: Suite, node_id: NodeId, attestor: AccountArg) -> Outcome:
    """Replace the key that signs the node's usage reports (the old key's reports are
    no longer accepted; sign what is unsettled again with the new one)."""
    new = parse_address(attestor, "ATTESTOR")
    return roles.send_rotate_attestor(tx, suite, node_id, new), f"node {node_id} attestor: {new}"


def _status(tx: Transactor, suite: Suite, node_id: int, status: NodeStatus) -> Outcome:
    action = roles.send_set_node_status(tx, suite, node_id, status)
    start = action.details.get("from_epoch")
    applies = f" from {_when(suite, int(start))}" if start is not None else ""
    name = {NodeStatus.ACTIVE: "active", NodeStatus.PAUSED: "paused"}.get(status, "retired")
    return action, f"node {node_id} is {name}{applies}"


@sends(operator_app, "pause")
def operator_pause(tx: Transactor, suite: Suite, node_id: NodeId) -> Outcome:
    """Pause the node from the next epoch on (reports for epochs it was active still settle)."""
    return _status(tx, suite, node_id, NodeStatus.PAUSED)


@sends(operator_app, "resume")
def operator_resume(tx: Transactor, suite: Suite, node_id: NodeId) -> Outcome:
    """Resume a node the operator paused, from the current epoch on."""
    return _status(tx, suite, node_id, NodeStatus.ACTIVE)


@sends(operator_app, "set-metadata")
def set_metadata(
    tx: Transactor,
    suite: Suite,
    node_id: NodeId,
    uri: Annotated[
        str | None,
        typer.Argument(
            help="Where the document is published (ipfs:// or https://).", show_default=False
        ),
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="The URL developers call.", show_default=False)
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", help="A model it serves (repeatable).")
    ] = None,
    gpu: Annotated[str | None, typer.Option(help="Its GPU.", show_default=False)] = None,
    capacity_rps: Annotated[
        int | None, typer.Option(help="Requests per second it sustains.", show_default=False)
    ] = None,
) -> Outcome:
    """Point the node at a new metadata document: give its fields (a local chain registers
    a data: URI of it) and, on a public chain, the URI where it is published; its content
    hash is registered with the URI."""
    from pydantic import ValidationError

    fields = {"endpoint": endpoint, "models": model or None, "gpu": gpu,
              "capacity_rps": capacity_rps}  # fmt: skip
    try:
        metadata = NodeMetadata.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise InputError(f"--{where.replace('_', '-')}: {error['msg']}") from None
    registered = roles.build_metadata_uri(suite, uri, metadata)
    action = roles.send_set_metadata(tx, suite, node_id, registered)
    return action, f"node {node_id} metadata: {registered}"


@sends(operator_app, "hand-over")
def hand_over(tx: Transactor, suite: Suite, node_id: NodeId, new_operator: AccountArg) -> Outcome:
    """Start handing the node to another operator (who runs `operator accept`); the zero
    address cancels."""
    new = parse_address(new_operator, "NEW_OPERATOR")
    action = roles.send_transfer_operator(tx, suite, node_id, new)
    return action, f"node {node_id} waits for {new} to accept it"


@sends(operator_app, "accept")
def accept(tx: Transactor, suite: Suite, node_id: NodeId) -> Outcome:
    """Take over a node handed to this key; its future cuts come here."""
    action = roles.send_accept_operator(tx, suite, node_id)
    return action, f"{tx.signer.address} operates node {node_id}"


def _withdraw(tx: Transactor, suite: Suite, to: str | None) -> Outcome:
    receiver = parse_address(to, "--to") if to else None
    action = roles.send_withdraw(tx, suite, receiver)
    amount = suite.fetch_stablecoin_token().format(int(action.details["amount"]))
    return action, f"withdrew {amount} to {action.details['receiver']}"


To = Annotated[
    str | None,
    typer.Option("--to", help="Send it to this address (default: the signer).", show_default=False),
]


@sends(operator_app, "withdraw")
def operator_withdraw(tx: Transactor, suite: Suite, to: To = None) -> Outcome:
    """Withdraw the operator's cuts that the router holds."""
    return _withdraw(tx, suite, to)


def withdraw_command(app: typer.Typer) -> None:
    """``edgeshare withdraw``: for the treasury, operators and refunded payers alike."""

    @sends(app, "withdraw")
    def withdraw(tx: Transactor, suite: Suite, to: To = None) -> Outcome:
        """Withdraw everything the router owes this key: protocol fees (treasury),
        operator cuts, or a disputed report's refund (its payer)."""
        return _withdraw(tx, suite, to)


# ---------------------------------------------------------------- guardian ----

guardian_app = typer.Typer(help="What the suite's guardian does.", no_args_is_help=True)


@sends(guardian_app, "dispute")
def dispute(
    tx: Transactor,
    suite: Suite,
    node_id: NodeId,
    epoch: Annotated[int, typer.Argument(help="The report's epoch.", min=0)],
) -> Outcome:
    """Void a pending report inside its challenge window; its payer can withdraw the
    revenue, and the epoch takes a corrected report (version one higher)."""
    action = roles.send_dispute(tx, suite, node_id, epoch)
    refund = suite.fetch_stablecoin_token().format(int(action.details.get("revenue", 0)))
    return action, f"disputed node {node_id} epoch {epoch}; {refund} owed back to its payer"


@sends(guardian_app, "pause")
def guardian_pause(tx: Transactor, suite: Suite) -> Outcome:
    """Pause the suite: no registration, settlement or finalizing; claims and withdrawals
    go on."""
    return roles.send_pause_suite(tx, suite, True), "the suite is paused"


@sends(guardian_app, "unpause")
def guardian_unpause(tx: Transactor, suite: Suite) -> Outcome:
    """Lift the suite's pause."""
    return roles.send_pause_suite(tx, suite, False), "the suite is running"


# --------------------------------------------------------------- registrar ----

registrar_app = typer.Typer(help="What the suite's registrar does.", no_args_is_help=True)


@sends(registrar_app, "pause")
def registrar_pause(tx: Transactor, suite: Suite, node_id: NodeId) -> Outcome:
    """Pause a node from the next epoch on; only the registrar can lift this pause."""
    return _status(tx, suite, node_id, NodeStatus.PAUSED)


@sends(registrar_app, "resume")
def registrar_resume(tx: Transactor, suite: Suite, node_id: NodeId) -> Outcome:
    """Resume a paused node from the current epoch on."""
    return _status(tx, suite, node_id, NodeStatus.ACTIVE)


@sends(registrar_app, "retire")
def retire(tx: Transactor, suite: Suite, node_id: NodeId) -> Outcome:
    """Retire a node for good from the next epoch on (what it earned still settles)."""
    return _status(tx, suite, node_id, NodeStatus.RETIRED)


# ------------------------------------------------------------------- owner ----

owner_app = typer.Typer(help="What the suite's owner does.", no_args_is_help=True)


@sends(owner_app, "set-registrar")
def set_registrar(tx: Transactor, suite: Suite, account: AccountArg) -> Outcome:
    """Appoint the registrar (registers, pauses, resumes and retires nodes)."""
    who = parse_address(account, "ACCOUNT")
    return roles.send_set_role(tx, suite, "registrar", who), f"registrar: {who}"


@sends(owner_app, "set-guardian")
def set_guardian(tx: Transactor, suite: Suite, account: AccountArg) -> Outcome:
    """Appoint the guardian (pauses the suite, disputes reports)."""
    who = parse_address(account, "ACCOUNT")
    return roles.send_set_role(tx, suite, "guardian", who), f"guardian: {who}"


@sends(owner_app, "set-treasury")
def set_treasury(tx: Transactor, suite: Suite, account: AccountArg) -> Outcome:
    """Move where future protocol fees accrue (fees owed so far stay with the old one)."""
    who = parse_address(account, "ACCOUNT")
    return roles.send_set_treasury(tx, suite, who), f"treasury: {who}"


@sends(owner_app, "transfer-ownership")
def transfer_ownership(tx: Transactor, suite: Suite, account: AccountArg) -> Outcome:
    """Propose a new owner, who must run `owner accept-ownership` (the zero address
    cancels a proposal)."""
    who = parse_address(account, "ACCOUNT")
    action = roles.send_transfer_ownership(tx, suite, who)
    return action, f"{who} can now accept ownership"


@sends(owner_app, "accept-ownership")
def accept_ownership(tx: Transactor, suite: Suite) -> Outcome:
    """Become the owner this key was proposed as."""
    return roles.send_accept_ownership(tx, suite), f"{tx.signer.address} owns the suite"


@sends(owner_app, "recover-excess")
def recover_excess(tx: Transactor, suite: Suite, receiver: AccountArg) -> Outcome:
    """Send stablecoin that reached the router by mistake (beyond what it owes and holds
    pending) to RECEIVER."""
    to = parse_address(receiver, "RECEIVER")
    action = roles.send_recover_excess(tx, suite, to)
    amount = suite.fetch_stablecoin_token().format(int(action.details.get("amount", 0)))
    return action, f"recovered {amount} to {to}"


# --------------------------------------------------------------------- dev ----

dev_app = typer.Typer(help="Local chains only: mock money and the clock.", no_args_is_help=True)


@sends(dev_app, "mint")
def mint(
    tx: Transactor,
    suite: Suite,
    address: AccountArg,
    amount: Annotated[str, typer.Argument(help="Whole units of the mock stablecoin, e.g. 1000.")],
    base_units: BaseUnits = False,
) -> Outcome:
    """Mint mock stablecoin (the key of the deployer, who owns the mock, signs)."""
    to = parse_address(address, "ADDRESS")
    coin = suite.fetch_stablecoin_token()
    value = coin.parse(amount, "AMOUNT", base_units=base_units)
    return roles.send_dev_mint(tx, suite, to, value), f"minted {coin.format(value)} to {to}"


def advance(
    seconds: Annotated[
        int | None, typer.Argument(help="Seconds to move the clock forward.", min=0)
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option("--epochs", min=1, help="Move to the start of the epoch N from now."),
    ] = None,
    rpc_url: RpcUrl = None,
    network: Network = None,
    manifest: ManifestPath = None,
    json_output: Json = False,
) -> None:
    """Move a local chain's clock forward and mine a block (an idle anvil mines nothing,
    so its time stands still)."""
    from edgeshare.cli.common import open_suite

    if (seconds is None) == (epochs is None):
        raise InputError("give SECONDS or --epochs N (one of them)")
    with open_suite(rpc_url, network, manifest) as suite:
        clock = fetch_clock(suite)
        if epochs is not None:
            seconds = clock.epoch_start(clock.current_epoch + epochs) - clock.chain_time
        now = roles.advance_time(suite, int(seconds or 0))
        after = fetch_clock(suite)
    if json_output:
        console.print_json({"chain_time": now, "current_epoch": after.current_epoch})
        return
    console.out.print(
        f"chain time {format_utc(now)}; epoch {after.current_epoch} ends "
        f"{format_utc(after.epoch_ends_at)}"
    )


dev_app.command("advance")(advance)
