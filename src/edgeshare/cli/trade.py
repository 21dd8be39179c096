"""``edgeshare trade``: buy and sell node shares (and baskets) on signed orders.

Makers: ``sell`` and ``buy`` sign an order and write it as JSON (to ``--out`` or
stdout); it costs nothing and sends nothing, unless ``--approve`` asks to approve the
market for the maker's leg (a seller may attach a permit instead: ``--permit``).
``cancel`` voids one order, ``cancel-all`` every order signed so far. Takers: ``fill``
fills an order whole or in part, approving the market for the taker's leg if needed;
``book`` lists orders files with their state on chain. Every command is a thin layer
over ``edgeshare.orders``.

Amounts are whole shares (``--amount 2.5``: 18 decimals) and prices are stablecoin per
whole share (``--price 2.5`` USDC); ``--base-units`` reads both as base units.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgeshare import orders as lib
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
    open_suite,
)
from edgeshare.cli.roles import print_action
from edgeshare.errors import InputError, KeyUnavailable, raise_problems
from edgeshare.models import parse_address
from edgeshare.roles import Action, fetch_chain_time
from edgeshare.suite import Suite
from edgeshare.tx import Transactor
from edgeshare.units import Token, format_utc, parse_duration
from edgeshare.web.views import build_book_order_json

app = typer.Typer(
    help="Trade node shares and baskets on signed orders: sell, buy, fill, cancel, book.",
    no_args_is_help=True,
)

_AMOUNTS = frozenset(
    {"amount", "cost", "fee", "remaining", "filled", "min_fill", "price_per_share"}
)
"""Amounts in ``--json``: exact base units as strings."""
MIN_LIFETIME = 60
"""An order lives at least a minute."""

NodeOption = Annotated[
    int | None, typer.Option("--node", min=1, help="Trade this node's shares.", show_default=False)
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", help="Trade this token: a basket (or a node share) address.",
                 show_default=False),
]  # fmt: skip
AmountOption = Annotated[
    str, typer.Option("--amount", help="Whole shares (or basket units), e.g. 10 or 2.5.")
]
PriceOption = Annotated[
    str, typer.Option("--price", help="Stablecoin per whole share, e.g. 2.5 (USDC).")
]
MinFillOption = Annotated[
    str,
    typer.Option("--min-fill", help="The smallest fill in whole shares, except the last (0: any)."),
]
ExpiresOption = Annotated[
    str,
    typer.Option("--expires-in", help="How long the order fills: seconds, or 90m, 12h, 7d."),
]
ApproveOption = Annotated[
    bool,
    typer.Option(
        "--approve",
        help="Approve the market for your leg (the shares you sell, the stablecoin you pay) "
        "if your allowance is short: sends one transaction.",
    ),
]
OutOption = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="Write the order here instead of printing it.",
                 show_default=False),
]  # fmt: skip
OrderFile = Annotated[Path, typer.Argument(help="An orders file (from `trade sell|buy`).")]
IndexOption = Annotated[
    int | None,
    typer.Option(
        "--index", min=0, help="Which order of the file (needed when it holds several).",
        show_default=False,
    ),
]  # fmt: skip


# ------------------------------------------------------------------ makers ----


def _resolve_token(suite: Suite, node: int | None, token: str | None) -> lib.TokenLabel:
    if (node is None) == (token is None):
        raise InputError("name what to trade: --node N or --token ADDRESS (one of them)")
    address = suite.fetch_share_tokens([node])[0] if node else parse_address(str(token), "--token")
    return lib.fetch_token_labels(suite, [address])[address]


def _make(
    sell: bool,
    node: int | None,
    token: str | None,
    amount: str,
    price: str,
    min_fill: str,
    expires_in: str,
    permit: bool,
    approve: bool,
    out: Path | None,
    base_units: bool,
    sending: dict[str, Any],
) -> None:
    lifetime = parse_duration(expires_in, "--expires-in")
    if lifetime < MIN_LIFETIME:
        raise InputError(f"--expires-in: at least {MIN_LIFETIME} seconds, got {lifetime}")
    if out is not None and out.exists():
        raise InputError(f"{out} exists: choose another name or remove it first")
    if permit and approve:
        raise InputError("give --permit or --approve, not both")
    json_output, dry_run = sending.pop("json_output"), sending["dry_run"]
    with open_sender(**sending) as (suite, tx):
        if not tx.signer.is_local:
            raise KeyUnavailable("signing an order needs the key here: --private-key-env or "
                                 "--keystore")  # fmt: skip
        label = _resolve_token(suite, node, token)
        coin = suite.fetch_stablecoin_token()
        shares = label.token
        order = lib.build_order(
            suite,
            tx.signer.address,
            label.address,
            sell,
            shares.parse(amount, "--amount", base_units=base_units),
            coin.parse(price, "--price", base_units=base_units),
            shares.parse(min_fill, "--min-fill", base_units=base_units),
            fetch_chain_time(suite) + lifetime,
        )
        key = tx.signer.export_key()
        domain, signed = lib.sign_market_order(suite, key, order, with_permit=permit)
        approval = None
        if approve:
            leg = suite.share_at(label.address) if sell else suite.stablecoin
            need = order.amount if sell else order.get_full_cost()
            what = "approve the market for your " + ("shares" if sell else "stablecoin")
            approval = lib.send_approve_market(tx, suite, leg, need, what)
        status = None if dry_run else lib.check_orders(suite, [signed], None, domain)[0]
    side = "sell" if sell else "buy"
    summary = (
        f"{side} {shares.format(order.amount)} ({label.describe()}) at "
        f"{coin.format(order.price_per_share)} per share, "
        f"{coin.format(order.get_full_cost())} in all; fills until {format_utc(order.expiry)}"
    )
    if dry_run:
        console.print_planned(tx.planned, json_output)
        if not json_output:
            console.note(f"would sign and write an order to {summary} (nothing was written)")
        return
    assert status is not None
    if not status.is_open:
        console.warn(f"the order cannot fill yet ({status.state}): {_hint(status, sell)}")
    text = lib.get_orders_file_text(domain, [signed])
    if out is None:
        console.print_text(text)
        return
    out.write_text(text)
    if json_output:
        console.print_json(
            {"file": str(out), "order_hash": status.order_hash, "side": side,
             "token": label.address, "amount": str(order.amount),
             "price_per_share": str(order.price_per_share), "min_fill": str(order.min_fill),
             "expiry": order.expiry, "state": status.state,
             "approval": approval.transaction if approval else None,
             "decimals": {"stablecoin": coin.decimals, "shares": shares.decimals}}
        )  # fmt: skip
        return
    if approval is not None:
        console.note(f"{approval.what}: transaction {approval.transaction} ({approval.gas:,} gas)")
    console.note(f"wrote an order to {summary} to {out}")


def _hint(status: lib.OrderStatus, sell: bool) -> str:
    if status.reason == lib.MAKER_ALLOWANCE:
        leg = "your shares" if sell else "the stablecoin"
        fix = "sign it again with --permit or --approve" if sell else "sign it again with --approve"
        return f"the market may not take {leg} yet: {fix}"
    if status.reason == lib.MAKER_BALANCE:
        return "you do not hold " + ("the shares" if sell else "its cost") + " yet"
    return status.describe()


def _sending(
    rpc_url: str | None,
    network: str | None,
    private_key_env: str | None,
    keystore: Path | None,
    manifest: Path | None,
    confirmations: int,
    dry_run: bool,
    json_output: bool,
) -> dict[str, Any]:
    return {
        "rpc_url": rpc_url, "network": network, "private_key_env": private_key_env,
        "keystore": keystore, "manifest": manifest, "confirmations": confirmations,
        "dry_run": dry_run, "json_output": json_output,
    }  # fmt: skip


@app.command("sell")
def sell(
    amount: AmountOption,
    price: PriceOption,
    node: NodeOption = None,
    token: TokenOption = None,
    min_fill: MinFillOption = "0",
    expires_in: ExpiresOption = "7d",
    permit: Annotated[
        bool,
        typer.Option(
            "--permit",
            help="Attach a permit of your shares for the market (EIP-2612): you send no "
            "approval, the taker submits it.",
        ),
    ] = False,
    approve: ApproveOption = False,
    out: OutOption = None,
    base_units: BaseUnits = False,
    rpc_url: RpcUrl = None,
    network: Network = None,
    private_key_env: PrivateKeyEnv = None,
    keystore: Keystore = None,
    manifest: ManifestPath = None,
    confirmations: Confirmations = 1,
    dry_run: DryRun = False,
    json_output: Json = False,
) -> None:
    """Sign an order to sell shares at a price per share, and write it as JSON. Anyone
    holding the file can fill it until it expires, fills or you cancel it."""
    sending = _sending(rpc_url, network, private_key_env, keystore, manifest, confirmations,
                       dry_run, json_output)  # fmt: skip
    _make(True, node, token, amount, price, min_fill, expires_in, permit, approve, out,
          base_units, sending)  # fmt: skip


@app.command("buy")
def buy(
    amount: AmountOption,
    price: PriceOption,
    node: NodeOption = None,
    token: TokenOption = None,
    min_fill: MinFillOption = "0",
    expires_in: ExpiresOption = "7d",
    approve: ApproveOption = False,
    out: OutOption = None,
    base_units: BaseUnits = False,
    rpc_url: RpcUrl = None,
    network: Network = None,
    private_key_env: PrivateKeyEnv = None,
    keystore: Keystore = None,
    manifest: ManifestPath = None,
    confirmations: Confirmations = 1,
    dry_run: DryRun = False,
    json_output: Json = False,
) -> None:
    """Sign an order to buy shares at a price per share, and write it as JSON. The market
    takes your stablecoin at each fill: approve it (--approve)."""
    sending = _sending(rpc_url, network, private_key_env, keystore, manifest, confirmations,
                       dry_run, json_output)  # fmt: skip
    _make(False, node, token, amount, price, min_fill, expires_in, False, approve, out,
          base_units, sending)  # fmt: skip


def _pick(parsed: lib.OrdersFile, path: Path, index: int | None) -> lib.FiledOrder:
    count = len(parsed.orders)
    if index is None and count != 1:
        raise InputError(f"{path} holds {count} orders: pick one with --index 0..{count - 1}")
    at = 0 if index is None else index
    if not 0 <= at < count:
        raise InputError(f"--index {at}: {path} holds {count} order(s) (0..{count - 1})")
    return lib.FiledOrder(path, at, parsed.orders[at], parsed.domain)


def _print_action(
    tx: Transactor, action: Action, sentence: str, json_output: bool, decimals: dict[str, int]
) -> None:
    print_action(tx, action, sentence, json_output, decimals, _AMOUNTS)


# ------------------------------------------------------------------ takers ----


@app.command("fill")
def fill(
    file: OrderFile,
    amount: Annotated[
        str | None,
        typer.Option(
            "--amount",
            help="Whole shares to fill (default: all that remains).",
            show_default=False,
        ),
    ] = None,
    index: IndexOption = None,
    base_units: BaseUnits = False,
    rpc_url: RpcUrl = None,
    network: Network = None,
    private_key_env: PrivateKeyEnv = None,
    keystore: Keystore = None,
    manifest: ManifestPath = None,
    confirmations: Confirmations = 1,
    dry_run: DryRun = False,
    json_output: Json = False,
) -> None:
    """Fill an order: buy from a sell order (you pay the stablecoin) or sell into a buy
    order (you deliver the shares). Checked on chain first: a fill the market would
    refuse is not sent, and the reason is named. Submits the maker's permit and approves
    the market for your leg first, when needed."""
    filed = _pick(lib.read_orders_file(file), file, index)
    opened = open_sender(
        rpc_url, network, private_key_env, keystore, manifest, confirmations, dry_run=dry_run
    )
    with opened as (suite, tx):
        domain = lib.fetch_market_domain(suite)
        raise_problems(lib.find_order_problems([filed], domain))
        order = filed.order
        label = lib.fetch_token_labels(suite, [order.share])[order.share]
        size = label.token.parse(amount, "--amount", base_units=base_units) if amount else None
        action = lib.send_fill(tx, suite, order, size)
        coin = suite.fetch_stablecoin_token()
    d = action.details
    shares = label.token
    verb = ("buy" if order.sell else "sell") if dry_run else ("bought" if order.sell else "sold")
    fee = f" (the seller's fee: {coin.format(int(d['fee']))})" if "fee" in d else ""
    left = int(d["remaining"])
    rest = f"{shares.format(left)} of the order remain" if left else "the order is filled"
    sentence = (
        f"{verb} {shares.format(int(d['amount']))} ({label.describe()}) for "
        f"{coin.format(int(d['cost']))}{fee}; {rest}"
    )
    decimals = {"stablecoin": coin.decimals, "shares": shares.decimals}
    _print_action(tx, action, sentence, json_output, decimals)


@app.command("cancel")
def cancel(
    file: OrderFile,
    index: IndexOption = None,
    rpc_url: RpcUrl = None,
    network: Network = None,
    private_key_env: PrivateKeyEnv = None,
    keystore: Keystore = None,
    manifest: ManifestPath = None,
    confirmations: Confirmations = 1,
    dry_run: DryRun = False,
    json_output: Json = False,
) -> None:
    """Cancel one of your orders for good (one transaction). To void every order you
    signed so far at once: `trade cancel-all`."""
    filed = _pick(lib.read_orders_file(file), file, index)
    opened = open_sender(
        rpc_url, network, private_key_env, keystore, manifest, confirmations, dry_run=dry_run
    )
    with opened as (suite, tx):
        domain = lib.fetch_market_domain(suite)
        raise_problems(lib.find_order_problems([filed], domain))
        action = lib.send_cancel(tx, suite, filed.order)
        decimals = suite.fetch_stablecoin_token().decimals
    sentence = f"order {action.details['order_hash'][:10]} of {file} is cancelled"
    _print_action(tx, action, sentence, json_output, {"stablecoin": decimals, "shares": 18})


@app.command("cancel-all")
def cancel_all(
    rpc_url: RpcUrl = None,
    network: Network = None,
    private_key_env: PrivateKeyEnv = None,
    keystore: Keystore = None,
    manifest: ManifestPath = None,
    confirmations: Confirmations = 1,
    dry_run: DryRun = False,
    json_output: Json = False,
) -> None:
    """Void every order you signed so far, at once (one transaction); orders you sign
    afterwards fill as usual."""
    opened = open_sender(
        rpc_url, network, private_key_env, keystore, manifest, confirmations, dry_run=dry_run
    )
    with opened as (suite, tx):
        action = lib.send_cancel_all(tx, suite)
        decimals = suite.fetch_stablecoin_token().decimals
    sentence = (
        f"every order {tx.signer.address} signed before is void; new orders carry nonce "
        f"{action.details['nonce']}"
    )
    _print_action(tx, action, sentence, json_output, {"stablecoin": decimals, "shares": 18})


# -------------------------------------------------------------------- book ----


@app.command("book")
def book(
    paths: Annotated[
        list[Path], typer.Argument(help="Orders files, or folders of *.json orders files.")
    ],
    taker: Annotated[
        str | None,
        typer.Option(
            "--taker",
            help="Check for this taker (its balance and allowance count too).",
            show_default=False,
        ),
    ] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only the open orders.")] = False,
    rpc_url: RpcUrl = None,
    network: Network = None,
    manifest: ManifestPath = None,
    json_output: Json = False,
) -> None:
    """The orders of files or folders, checked against the chain: side, token, price,
    what remains, maker and state (open, filled, cancelled, expired, old nonce, bad
    signature, maker balance or allowance short, ...). Sells first, cheapest first,
    then buys, dearest first, per token."""
    found = lib.read_orders(paths)
    who = parse_address(taker, "--taker") if taker else None
    with open_suite(rpc_url, network, manifest) as suite:
        domain = lib.fetch_market_domain(suite)
        for f in found:
            if f.domain is not None and f.domain != domain:
                console.warn(
                    f"{f.path}: order {f.index} was signed for chain {f.domain.chain_id} market "
                    f"{f.domain.verifying_contract}, not this suite's: it cannot fill here"
                )
        statuses = lib.check_orders(suite, [f.order for f in found], who, domain)
        labels = lib.fetch_token_labels(suite, [f.order.share for f in found])
        coin = suite.fetch_stablecoin_token()
    rows = [(f, s) for f, s in zip(found, statuses, strict=True) if s.is_open or not open_only]
    rows.sort(key=lambda r: _book_key(r[1], labels))
    if json_output:
        console.print_json(
            {"orders": [build_book_order_json(s, labels[f.order.share], str(f.path), f.index)
                        for f, s in rows],
             "decimals": {"stablecoin": coin.decimals, "shares": 18}}
        )  # fmt: skip
        return
    if not rows:
        console.out.print("no open orders" if open_only else "no orders")
        return
    console.print_table(
        "order book",
        ["side", "token", "price per share", "remaining", "maker", "state", "order"],
        [_book_row(f, s, labels[f.order.share], coin) for f, s in rows],
    )


def _book_key(status: lib.OrderStatus, labels: dict[str, lib.TokenLabel]) -> tuple[Any, ...]:
    order = status.order
    label = labels[order.share]
    price = order.price_per_share if order.sell else -order.price_per_share
    return (label.node_id is None, label.node_id or 0, label.symbol, not order.sell, price)


def _book_row(
    filed: lib.FiledOrder, status: lib.OrderStatus, label: lib.TokenLabel, coin: Token
) -> list[Any]:
    order = status.order
    return [
        "sell" if order.sell else "buy",
        label.describe(),
        coin.format(order.price_per_share),
        label.token.format(status.remaining),
        order.maker,
        status.describe().split(":")[0],
        f"{filed.path.name}#{filed.index}",
    ]
