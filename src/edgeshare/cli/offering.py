"""``edgeshare offering``: an operator sells shares of its node at a fixed price, in escrow.

Operators: ``create``. Investors: ``commit`` and ``cancel`` while the offering is open,
then ``claim`` the shares (it succeeded) or ``refund`` the commitment (it failed); anyone
may claim or refund for an investor (``--for``), and ``finish`` pays the operator and the
treasury. ``status`` shows one offering, a node's or all, with the progress against the
soft and hard caps. Amounts are whole units (stablecoin for prices and caps, shares with
18 decimals); every command is a thin layer over ``edgeshare.offerings``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

import typer

from edgeshare import offerings as lib
from edgeshare.cli import console
from edgeshare.cli.common import BaseUnits, Json, ManifestPath, Network, RpcUrl, open_suite
from edgeshare.cli.roles import NodeId, Outcome, sends
from edgeshare.errors import InputError
from edgeshare.models import parse_address
from edgeshare.roles import Action
from edgeshare.suite import Suite, get_share_token
from edgeshare.tx import Transactor
from edgeshare.units import SHARE_DECIMALS, Token, format_bps, format_duration
from edgeshare.web.views import build_offerings_json

app = typer.Typer(
    help="Share offerings: an operator sells a node's shares at a fixed price, in escrow.",
    no_args_is_help=True,
)

_AMOUNTS = frozenset(
    {
        "shares", "price_per_share", "soft_cap", "hard_cap", "investor_cap", "total_committed",
        "shares_sold", "shares_delivered", "total_refunded", "remaining", "fee", "amount",
        "committed", "shares_due", "refund_due", "paid", "proceeds", "shares_returned",
        "operator_paid",
    }
)  # fmt: skip
"""Amounts in base units (stablecoin or shares): exact strings in ``--json``."""

OfferingArg = Annotated[
    str, typer.Argument(help="The offering's address (`edgeshare offering status` lists them).")
]
ForInvestor = Annotated[
    str | None,
    typer.Option(
        "--for",
        help="Deliver or refund for this investor (anyone may; it is always paid to the "
        "investor). Default: yourself.",
        show_default=False,
    ),
]


def _outcome(action: Action, sentence: str) -> Outcome:
    """The action with its amounts as exact strings (for ``--json``) and its sentence."""
    details = console.amounts_as_strings(action.details, _AMOUNTS)
    return replace(action, details={**details, "share_decimals": SHARE_DECIMALS}), sentence


def _progress(coin: Token, total: int, soft_cap: int, hard_cap: int) -> str:
    return (
        f"{coin.format(total)} committed, {format_bps(total * 10_000 // soft_cap)} of the "
        f"soft cap {coin.format(soft_cap)}, {format_bps(total * 10_000 // hard_cap)} of the "
        f"hard cap {coin.format(hard_cap)}"
    )


# ---------------------------------------------------------------- operators ----


@sends(app, "create")
def create(
    tx: Transactor,
    suite: Suite,
    node_id: NodeId,
    shares: Annotated[str, typer.Argument(help="Shares to offer, in whole shares (e.g. 100).")],
    price: Annotated[str, typer.Argument(help="Stablecoin per whole share, e.g. 2.5.")],
    soft_cap: Annotated[
        str,
        typer.Option(
            "--soft-cap", help="Stablecoin the commitments must reach for the sale to succeed."
        ),
    ],
    end: Annotated[
        str,
        typer.Option(
            "--end",
            help="When the window closes: unix seconds, ISO-8601 UTC (2026-12-01T16:00Z), or "
            "a duration after the start (7d, 12h).",
        ),
    ],
    hard_cap: Annotated[
        str | None,
        typer.Option(
            "--hard-cap",
            help="The most that can be committed (default: what every share offered costs).",
            show_default=False,
        ),
    ] = None,
    start: Annotated[
        str,
        typer.Option(
            "--start",
            help="When the window opens: 'now', unix seconds, ISO-8601 UTC, or a duration "
            "from now (2h).",
        ),
    ] = "now",
    investor_cap: Annotated[
        str | None,
        typer.Option(
            "--investor-cap",
            help="The most one investor may commit (default: no cap).",
            show_default=False,
        ),
    ] = None,
    base_units: BaseUnits = False,
) -> Outcome:
    """Offer shares of your node at a fixed price (approves the factory for them if
    needed): investors commit until the end; at the end the sale succeeds if the soft cap
    was reached, else every investor is refunded and the shares come back."""
    coin, unit = suite.fetch_stablecoin_token(), get_share_token(node_id)
    offered = unit.parse(shares, "SHARES", base_units=base_units)
    per_share = coin.parse(price, "PRICE", base_units=base_units)
    soft = coin.parse(soft_cap, "--soft-cap", base_units=base_units)
    if hard_cap is None:
        hard = offered * per_share // lib.SHARE_UNIT
    else:
        hard = coin.parse(hard_cap, "--hard-cap", base_units=base_units)
    cap = 0 if investor_cap is None else coin.parse(investor_cap, "--investor-cap",
                                                     base_units=base_units)  # fmt: skip
    _, now = lib.fetch_head(suite)
    opens = lib.parse_time(start, "--start", now=now)
    closes = lib.parse_time(end, "--end", now=now, after=opens)
    action = lib.send_create_offering(
        tx, suite, node_id, offered, per_share, soft, hard, opens, closes, cap
    )
    address = action.details.get("offering") or "(address on sending)"
    limit = f", at most {coin.format(cap)} per investor" if cap else ""
    return _outcome(
        action,
        f"offering {address}: {unit.format(offered)} at {coin.format(per_share)} per share, "
        f"soft cap {coin.format(soft)}, hard cap {coin.format(hard)}{limit}; open from "
        f"{lib.format_time(opens)} to {lib.format_time(closes)}",
    )


# ---------------------------------------------------------------- investors ----


@sends(app, "commit")
def commit(
    tx: Transactor,
    suite: Suite,
    offering: OfferingArg,
    amount: Annotated[str, typer.Argument(help="Stablecoin in whole units, e.g. 250 or 2.5.")],
    base_units: BaseUnits = False,
) -> Outcome:
    """Commit stablecoin to an open offering (approves the offering if needed); you can
    cancel it until the end."""
    coin = suite.fetch_stablecoin_token()
    value = coin.parse(amount, "AMOUNT", base_units=base_units)
    action = lib.send_commit(tx, suite, offering, value)
    d = action.details
    unit = get_share_token(int(d["node_id"]))
    progress = _progress(coin, int(d["total_committed"]), int(d["soft_cap"]), int(d["hard_cap"]))
    return _outcome(
        action,
        f"committed {coin.format(value)} to offering {d['offering']}: yours is "
        f"{coin.format(int(d['committed']))} (buys {unit.format(int(d['shares']))}); "
        f"{progress}",
    )


@sends(app, "cancel")
def cancel(
    tx: Transactor,
    suite: Suite,
    offering: OfferingArg,
    amount: Annotated[
        str | None, typer.Argument(help="Stablecoin in whole units (default: all you committed).")
    ] = None,
    base_units: BaseUnits = False,
) -> Outcome:
    """Take back some or all of your commitment, in full, before the offering ends."""
    coin = suite.fetch_stablecoin_token()
    value = None if amount is None else coin.parse(amount, "AMOUNT", base_units=base_units)
    action = lib.send_cancel(tx, suite, offering, value)
    d = action.details
    progress = _progress(coin, int(d["total_committed"]), int(d["soft_cap"]), int(d["hard_cap"]))
    return _outcome(
        action,
        f"cancelled {coin.format(int(d['amount']))} of your commitment to offering "
        f"{d['offering']}: yours is {coin.format(int(d['committed']))}; {progress}",
    )


@sends(app, "claim")
def claim(
    tx: Transactor, suite: Suite, offering: OfferingArg, for_investor: ForInvestor = None
) -> Outcome:
    """Receive the shares your commitment bought, once the offering has succeeded."""
    action = lib.send_claim_shares(tx, suite, offering, for_investor)
    d = action.details
    unit, coin = get_share_token(int(d["node_id"])), suite.fetch_stablecoin_token()
    return _outcome(
        action,
        f"delivered {unit.format(int(d['shares']))} to {d['investor']} for "
        f"{coin.format(int(d['paid']))} committed to offering {d['offering']}",
    )


@sends(app, "refund")
def refund(
    tx: Transactor, suite: Suite, offering: OfferingArg, for_investor: ForInvestor = None
) -> Outcome:
    """Get your whole commitment back, once the offering has failed."""
    action = lib.send_refund(tx, suite, offering, for_investor)
    d = action.details
    coin = suite.fetch_stablecoin_token()
    return _outcome(
        action,
        f"refunded {coin.format(int(d['amount']))} to {d['investor']} from offering "
        f"{d['offering']}",
    )


@sends(app, "finish")
def finish(tx: Transactor, suite: Suite, offering: OfferingArg) -> Outcome:
    """Close an ended offering's books (anyone, once): the proceeds less the fee to the
    operator, the fee to the treasury, the unsold shares back; or, if it failed, every
    share back to the operator (investors' refunds stay in the offering)."""
    action = lib.send_finish(tx, suite, offering)
    d = action.details
    unit, coin = get_share_token(int(d["node_id"])), suite.fetch_stablecoin_token()
    back = f"{unit.format(int(d['shares_returned']))} back to the operator {d['operator']}"
    if d["succeeded"]:
        paid = coin.format(int(d["operator_paid"]))
        sentence = (
            f"finished offering {d['offering']} (succeeded): {paid} to the operator, "
            f"{coin.format(int(d['fee']))} fee to the treasury "
            f"{d['treasury']}, {back}"
        )
    else:
        sentence = f"finished offering {d['offering']} (failed): {back}"
    return _outcome(action, sentence)


# -------------------------------------------------------------------- status ----


def _window(view: lib.OfferingView) -> str:
    now = view.chain_time
    if view.state == "PENDING":
        return f"opens {lib.format_time(view.start)} (in {format_duration(view.start - now)})"
    if view.state == "OPEN":
        return f"closes {lib.format_time(view.end)} (in {format_duration(view.end - now)})"
    return f"ended {lib.format_time(view.end)}"


@app.command("status")
def status(
    offering: Annotated[
        str | None, typer.Argument(help="One offering (default: all, or a node's with --node).")
    ] = None,
    node: Annotated[
        int | None, typer.Option("--node", min=1, help="Only this node's offerings.")
    ] = None,
    investor: Annotated[
        str | None,
        typer.Option(
            "--investor", help="Also what this investor committed and is due.", show_default=False
        ),
    ] = None,
    rpc_url: RpcUrl = None,
    network: Network = None,
    manifest: ManifestPath = None,
    json_output: Json = False,
) -> None:
    """Offerings: state, price, commitments against the soft and hard caps, window,
    shares sold; with --investor, that investor's commitments, shares due and refunds due."""
    if offering is not None and node is not None:
        raise InputError("give an OFFERING or --node, not both")
    who = parse_address(investor, "--investor") if investor else None
    with open_suite(rpc_url, network, manifest) as suite:
        if offering is not None:
            views = [lib.fetch_offering(suite, offering)]
        else:
            views = lib.fetch_offerings(suite, node)
        commitments = lib.fetch_commitments(suite, who, views) if who else []
        coin = suite.fetch_stablecoin_token()
    if json_output:
        console.print_json(build_offerings_json(views, coin, who, commitments))
        return
    if not views:
        scope = f"node {node}" if node else "this suite"
        console.out.print(f"{scope} has no offerings: `edgeshare offering create` makes one")
        return
    if len(views) == 1 and offering is not None:
        _print_one(views[0], coin)
    else:
        _print_many(views, coin)
    if who:
        _print_commitments(who, commitments, coin)


def _print_one(view: lib.OfferingView, coin: Token) -> None:
    unit = get_share_token(view.node_id)
    cap = coin.format(view.investor_cap) if view.investor_cap else "none"
    rows: list[list[Any]] = [
        ["node", view.node_id],
        ["operator", view.operator],
        ["state", view.state + (" (finished)" if view.finished else "")],
        ["window", f"{lib.format_time(view.start)} to {lib.format_time(view.end)}"],
        ["", _window(view)],
        ["price", f"{coin.format(view.price_per_share)} per share"],
        ["shares offered", unit.format(view.shares)],
        ["shares sold", unit.format(view.shares_sold)],
        ["committed", coin.format(view.total_committed)],
        ["soft cap", f"{coin.format(view.soft_cap)} ({format_bps(view.soft_cap_bps)} reached)"],
        ["hard cap", f"{coin.format(view.hard_cap)} ({format_bps(view.hard_cap_bps)} reached)"],
        ["still open to commit", coin.format(view.remaining)],
        ["investor cap", cap],
        ["fee", f"{format_bps(view.fee_bps)} of the proceeds"],
        ["shares delivered", unit.format(view.shares_delivered)],
        ["refunded", coin.format(view.total_refunded)],
    ]
    console.print_table(f"offering {view.address}", ["", ""], rows)


def _print_many(views: list[lib.OfferingView], coin: Token) -> None:
    rows = [
        [
            v.address,
            v.node_id,
            v.state + (" (finished)" if v.finished else ""),
            f"{coin.format(v.price_per_share)}",
            f"{coin.format(v.total_committed)}",
            f"{format_bps(v.soft_cap_bps)} of {coin.format(v.soft_cap)}",
            f"{format_bps(v.hard_cap_bps)} of {coin.format(v.hard_cap)}",
            _window(v),
        ]
        for v in views
    ]
    console.print_table(
        "offerings",
        ["offering", "node", "state", "price/share", "committed", "soft cap", "hard cap",
         "window"],
        rows,
    )  # fmt: skip


def _print_commitments(who: str, commitments: list[lib.Commitment], coin: Token) -> None:
    if not commitments:
        console.out.print(f"{who} has no commitments in these offerings")
        return
    rows = []
    for c in commitments:
        unit = get_share_token(c.offering.node_id)
        if c.shares_due:
            due = f"claim {unit.format(c.shares_due)}"
        elif c.refund_due:
            due = f"refund {coin.format(c.refund_due)}"
        elif c.claimed:
            due = "delivered" if c.offering.state == "SUCCEEDED" else "refunded"
        else:
            due = "after the end"
        rows.append(
            [c.offering.address, c.offering.node_id, c.offering.state,
             coin.format(c.committed), unit.format(c.shares), due]
        )  # fmt: skip
    console.print_table(
        f"commitments of {who}",
        ["offering", "node", "state", "committed", "buys", "due"],
        rows,
    )
