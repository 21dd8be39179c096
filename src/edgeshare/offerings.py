"""Share offerings: an operator sells shares of its node at a fixed price, in escrow.

The operator creates an offering through the suite's factory (``send_create_offering``),
which moves the offered shares into it. Investors commit stablecoin between its start and
end (``send_commit``) and may take it back until the end (``send_cancel``). After the end
the offering has succeeded (the commitments reached the soft cap: each investor's shares
are delivered by ``send_claim_shares``) or failed (each investor is paid back by
``send_refund``); either way ``send_finish`` pays the operator and the treasury, or hands
back the operator's shares. Anyone may deliver or refund for an investor: it always pays
that investor.

Every check the contracts make is made here first, off chain, so a refused call names
its problem and sends nothing (docs/SPEC.md, "Offerings"). Reads go through
``suite.reader`` in JSON-RPC batches, all at one block.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from enum import IntFlag
from typing import Any

from edgeshare.contracts import Contract
from edgeshare.errors import InputError, NodeNotFound, raise_problems
from edgeshare.models import Address, StrictModel, parse_address
from edgeshare.roles import Action
from edgeshare.suite import Suite, get_share_token
from edgeshare.tx import Planned, Receipt, Transactor
from edgeshare.units import Token, format_duration, parse_duration
from edgeshare.units import format_utc as _format_utc

MAX_BPS = 10_000
SHARE_UNIT = 10**18
"""Share base units per whole share (every NodeShare has 18 decimals)."""
MAX_DURATION = 365 * 86_400
"""OfferingFactory.MAX_DURATION: the longest window, and how far ahead it may start."""
MAX_HARD_CAP = (2**256 - 1) // SHARE_UNIT
"""The largest hard cap (so no commitment times 10**18 overflows in the offering)."""
UINT256_MAX = 2**256 - 1


def format_time(timestamp: int) -> str:
    """A unix time as people read it (``2026-12-01 16:00 UTC``), or ``unix N`` for one
    no calendar holds."""
    try:
        return _format_utc(timestamp)
    except (OverflowError, OSError, ValueError):
        return f"unix {timestamp}"


class OfferingState(IntFlag):
    """Mirrors ``IShareOffering.OfferingState``."""

    PENDING = 1
    """Before START: nothing can be committed yet."""
    OPEN = 2
    """START <= now < END: commitments and cancels."""
    SUCCEEDED = 4
    """After END with the soft cap reached: shares to investors, proceeds to the operator."""
    FAILED = 8
    """After END below the soft cap: refunds to investors, shares back to the operator."""


class NotAnOffering(InputError, LookupError):
    """The address is not an offering this suite's factory created."""


class OfferingView(StrictModel):
    """One offering as the chain holds it (every field read at one block)."""

    address: Address
    """The ShareOffering contract."""
    node_id: int
    operator: Address
    """Who created it: receives the proceeds and the unsold shares (even after a handover)."""
    share_token: Address
    """The node's NodeShare token."""
    shares: int
    """Share base units offered (18 decimals), all held by the offering until delivered."""
    price_per_share: int
    """Stablecoin base units per whole share (10**18 share base units)."""
    soft_cap: int
    """Stablecoin base units the commitments must reach for the offering to succeed."""
    hard_cap: int
    """The most that can be committed in total (stablecoin base units)."""
    start: int
    """First second of the commitment window (unix time)."""
    end: int
    """First second after it (unix time): the outcome is decided here."""
    investor_cap: int
    """The most one investor may have committed (0: no cap)."""
    fee_bps: int
    """The protocol's fee on a successful offering's proceeds (basis points)."""
    state: str
    """``PENDING``, ``OPEN``, ``SUCCEEDED`` or ``FAILED`` (``OfferingState``)."""
    total_committed: int
    """Committed and not cancelled (stablecoin base units): the proceeds if it succeeds."""
    shares_sold: int
    """What the commitments buy (the sum of each investor's rounded-down shares)."""
    shares_delivered: int
    total_refunded: int
    finished: bool
    """``finish`` has run: the operator and the treasury were paid (or the shares returned)."""
    block: int
    """The block the view was read at."""
    chain_time: int
    """That block's time."""

    @property
    def remaining(self) -> int:
        """What can still be committed before the hard cap (stablecoin base units)."""
        return self.hard_cap - self.total_committed

    @property
    def fee(self) -> int:
        """The fee on the proceeds if the offering succeeds at its commitments now."""
        return self.total_committed * self.fee_bps // MAX_BPS

    @property
    def soft_cap_bps(self) -> int:
        """The commitments as basis points of the soft cap (rounded down)."""
        return self.total_committed * MAX_BPS // self.soft_cap

    @property
    def hard_cap_bps(self) -> int:
        """The commitments as basis points of the hard cap (rounded down)."""
        return self.total_committed * MAX_BPS // self.hard_cap

    def get_shares_for(self, amount: int) -> int:
        """Share base units a commitment of ``amount`` buys (rounded down, as the contract)."""
        return amount * SHARE_UNIT // self.price_per_share


class Commitment(StrictModel):
    """What one investor committed to one offering, and what it is due now."""

    offering: OfferingView
    investor: Address
    committed: int
    """Stablecoin base units committed and not cancelled (kept after delivery or refund)."""
    shares: int
    """Share base units the commitment buys (rounded down)."""
    claimed: bool
    """The shares were delivered (succeeded) or the commitment refunded (failed)."""
    shares_due: int
    """Share base units ``claim`` delivers now (succeeded and not delivered yet; else 0)."""
    refund_due: int
    """Stablecoin base units ``refund`` pays now (failed and not refunded yet; else 0)."""


# ----------------------------------------------------------------------- reads ----

_FIELDS = (
    ("node_id", "NODE_ID"),
    ("operator", "OPERATOR"),
    ("share_token", "SHARE"),
    ("shares", "SHARES"),
    ("price_per_share", "PRICE_PER_SHARE"),
    ("soft_cap", "SOFT_CAP"),
    ("hard_cap", "HARD_CAP"),
    ("start", "START"),
    ("end", "END"),
    ("investor_cap", "INVESTOR_CAP"),
    ("fee_bps", "FEE_BPS"),
    ("state", "state"),
    ("total_committed", "total_committed"),
    ("shares_sold", "shares_sold"),
    ("shares_delivered", "shares_delivered"),
    ("total_refunded", "total_refunded"),
    ("finished", "finished"),
)
"""Each OfferingView field and the offering's view that holds it."""


def get_offering_contract(suite: Suite, address: str) -> Contract:
    """A ShareOffering handle at ``address`` (not checked: see ``fetch_offering``)."""
    return suite.reader.contract("ShareOffering", address)


def fetch_head(suite: Suite) -> tuple[int, int]:
    """(number, time) of the latest block: what every read of a view is pinned to."""
    head = suite.rpc.call("eth_getBlockByNumber", ["latest", False])
    return int(head["number"], 16), int(head["timestamp"], 16)


def fetch_offering_views(
    suite: Suite, addresses: Sequence[str], head: tuple[int, int] | None = None
) -> list[OfferingView]:
    """The views of offerings already known to be genuine, in one batch of reads."""
    block, now = head or fetch_head(suite)
    contracts = [get_offering_contract(suite, a) for a in addresses]
    rows = suite.reader.each(contracts, *((view,) for _, view in _FIELDS), block=block)
    views = []
    for contract, row in zip(contracts, rows, strict=True):
        fields: dict[str, Any] = {
            name: value for (name, _), value in zip(_FIELDS, row, strict=True)
        }
        fields["state"] = str(OfferingState(int(fields["state"])).name)
        views.append(OfferingView(address=contract.address, block=block, chain_time=now, **fields))
    return views


def fetch_offering_addresses(
    suite: Suite, node_id: int | None = None, block: int | None = None
) -> list[str]:
    """Every offering of ``node_id`` (default: of every node), oldest first per node, from
    the factory's per-node count and index (the node count, then two batches of reads).

    Raises:
        NodeNotFound: ``node_id`` is not registered.
    """
    at = "latest" if block is None else block
    count = int(suite.registry.call("node_count", block=at))
    if node_id is not None and not 1 <= node_id <= count:
        raise NodeNotFound(f"no node {node_id} (registered: 1..{count})")
    node_ids = list(range(1, count + 1)) if node_id is None else [node_id]
    factory = suite.offerings
    counts = suite.reader.many([factory.read("offering_count", n) for n in node_ids], block=at)
    calls = [
        factory.read("offering_at", n, i)
        for n, offered in zip(node_ids, counts, strict=True)
        for i in range(int(offered))
    ]
    return [str(a) for a in suite.reader.many(calls, block=at)] if calls else []


def fetch_offerings(
    suite: Suite, node_id: int | None = None, head: tuple[int, int] | None = None
) -> list[OfferingView]:
    """Every offering of ``node_id`` (default: all the factory created), by node, oldest
    first, all read at the latest block (``head``: its (number, time), when the caller
    read it already).

    Raises:
        NodeNotFound: ``node_id`` is not registered.
    """
    head = head or fetch_head(suite)
    addresses = fetch_offering_addresses(suite, node_id, head[0])
    return fetch_offering_views(suite, addresses, head) if addresses else []


def fetch_offering(suite: Suite, address: str) -> OfferingView:
    """One offering.

    Raises:
        NotAnOffering: ``address`` is not an offering of this suite's factory.
    """
    checked = parse_address(address, "OFFERING")
    head = fetch_head(suite)
    if not suite.offerings.call("is_offering", checked, block=head[0]):
        raise NotAnOffering(
            f"{checked} is not an offering of this suite (its factory "
            f"{suite.offerings.address} did not create it): `edgeshare offering status` "
            "lists them"
        )
    return fetch_offering_views(suite, [checked], head)[0]


def fetch_commitments(
    suite: Suite, investor: str, offerings: Sequence[OfferingView] | None = None
) -> list[Commitment]:
    """What ``investor`` committed to each offering (default: every offering of the
    suite) and what is due to it now, for the offerings it has a commitment in.

    The reads are pinned to the block the views were read at.
    """
    who = parse_address(investor, "investor")
    views = list(offerings) if offerings is not None else fetch_offerings(suite)
    by_block: dict[int, list[OfferingView]] = {}
    for view in views:
        by_block.setdefault(view.block, []).append(view)
    found: dict[str, Commitment] = {}
    for block, group in by_block.items():
        contracts = [get_offering_contract(suite, v.address) for v in group]
        rows = suite.reader.each(
            contracts,
            ("committed", who),
            ("claimed", who),
            ("shares_for", who),
            block=block,
        )
        for view, (committed, claimed, shares) in zip(group, rows, strict=True):
            if int(committed) == 0:
                continue
            due = not bool(claimed)
            found[view.address] = Commitment(
                offering=view,
                investor=who,
                committed=int(committed),
                shares=int(shares),
                claimed=bool(claimed),
                shares_due=int(shares) if due and view.state == "SUCCEEDED" else 0,
                refund_due=int(committed) if due and view.state == "FAILED" else 0,
            )
    return [found[v.address] for v in views if v.address in found]


# ----------------------------------------------------------------- parsing times ----


def parse_time(text: str, name: str, *, now: int, after: int | None = None) -> int:
    """Unix seconds of a time typed as unix seconds (``1767225600``), ISO-8601
    (``2026-01-01T00:00Z``; without an offset it is read as UTC), ``now``, or a duration
    (``7d``) after ``after`` (default: ``now``).

    Raises:
        InputError: none of those.
    """
    raw = text.strip()
    if raw.lower() == "now":
        return now
    if raw.isascii() and raw.isdigit():
        return int(raw)
    try:
        return (now if after is None else after) + parse_duration(raw, name, bare_seconds=False)
    except InputError:
        pass  # not a duration: a date and time
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise InputError(
            f"{name}: expected unix seconds, an ISO-8601 UTC time like 2026-12-01T16:00Z, "
            f"'now', or a duration like 7d or 12h, got {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


# ----------------------------------------------------------------------- writes ----


def find_create_problems(
    shares: int,
    price_per_share: int,
    soft_cap: int,
    hard_cap: int,
    start: int,
    end: int,
    investor_cap: int,
    now: int,
    coin: Token,
    share: Token,
) -> list[str]:
    """Every term of an offering the factory would refuse at chain time ``now`` (its own
    checks; amounts in base units, named in the stablecoin ``coin`` and the node's
    ``share`` token)."""
    problems: list[str] = []
    if not 0 < shares <= UINT256_MAX:
        problems.append("the shares offered must be more than 0")
    if not 0 < price_per_share <= UINT256_MAX:
        problems.append("the price per share must be more than 0")
    if soft_cap <= 0:
        problems.append("the soft cap must be more than 0")
    if soft_cap > hard_cap:
        problems.append(
            f"the soft cap {coin.format(soft_cap)} is above the hard cap {coin.format(hard_cap)}"
        )
    if hard_cap > MAX_HARD_CAP:
        problems.append("the hard cap is too large (at most (2**256 - 1) // 10**18 base units)")
    elif 0 < price_per_share <= UINT256_MAX and hard_cap > 0 and shares > 0:
        buys = hard_cap * SHARE_UNIT // price_per_share
        if buys > shares:
            problems.append(
                f"the hard cap {coin.format(hard_cap)} buys {share.format(buys)} at "
                f"{coin.format(price_per_share)} per share, more than the "
                f"{share.format(shares)} offered: lower the hard cap to at most "
                f"{coin.format(shares * price_per_share // SHARE_UNIT)} or offer more shares"
            )
        if hard_cap * SHARE_UNIT < price_per_share:
            problems.append(
                f"the hard cap {coin.format(hard_cap)} buys nothing at "
                f"{coin.format(price_per_share)} per share (not one share base unit)"
            )
    if investor_cap < 0:
        problems.append("the investor cap must be 0 (no cap) or more")
    elif investor_cap != 0:
        if investor_cap > hard_cap:
            problems.append(
                f"the investor cap {coin.format(investor_cap)} is above the hard cap "
                f"{coin.format(hard_cap)}"
            )
        if price_per_share > 0 and investor_cap * SHARE_UNIT < price_per_share:
            problems.append(
                f"the investor cap {coin.format(investor_cap)} buys nothing at "
                f"{coin.format(price_per_share)} per share (not one share base unit)"
            )
    if not (0 <= start <= UINT256_MAX and 0 <= end <= UINT256_MAX):
        problems.append("the start and the end must be unix times (seconds from 1970)")
        return problems
    if start >= end:
        problems.append(
            f"the start ({format_time(start)}) is not before the end ({format_time(end)})"
        )
    if end <= now:
        problems.append(
            f"the end ({format_time(end)}) is not in the future (the chain's time is "
            f"{format_time(now)})"
        )
    if end - start > MAX_DURATION:
        problems.append(f"the window is longer than 365 days ({format_duration(end - start)})")
    if start > now + MAX_DURATION:
        problems.append(f"the start ({format_time(start)}) is more than 365 days ahead")
    return problems


def send_create_offering(
    tx: Transactor,
    suite: Suite,
    node_id: int,
    shares: int,
    price_per_share: int,
    soft_cap: int,
    hard_cap: int,
    start: int,
    end: int,
    investor_cap: int = 0,
) -> Action:
    """Offer ``shares`` of the signer's node ``node_id`` at ``price_per_share``, approving
    the factory for the shares first if needed. Amounts are base units: shares with 18
    decimals, the price in stablecoin per whole share, the caps in stablecoin.

    Returns:
        The action; ``details["offering"]`` is the new offering's address ("" in a dry run).

    Raises:
        InputError: a term the factory refuses (every one named), an unknown node, a
            signer that is not its operator, a node not active now and next epoch, a
            paused suite, or fewer shares held than offered.
    """
    block, now = fetch_head(suite)
    count, paused, epoch = suite.reader.many(
        [
            suite.registry.read("node_count"),
            suite.registry.read("paused"),
            suite.registry.read("current_epoch"),
        ],
        block=block,
    )
    coin, unit = suite.fetch_stablecoin_token(), get_share_token(node_id)
    raise_problems(
        find_create_problems(shares, price_per_share, soft_cap, hard_cap, start, end,
                             investor_cap, now, coin, unit)
    )  # fmt: skip
    if not 1 <= node_id <= int(count):
        raise InputError(f"node {node_id} does not exist (the registry has {count} node(s))")
    if paused:
        raise InputError("the suite is paused: no new offerings until the guardian resumes it")
    registry, factory = suite.registry, suite.offerings
    terms, now_terms, next_terms = suite.reader.many(
        [
            registry.read("payout_terms", node_id),
            registry.read("usage_terms", node_id, int(epoch)),
            registry.read("usage_terms", node_id, int(epoch) + 1),
        ]
    )
    me = tx.signer.address
    if str(terms["operator"]).lower() != me.lower():
        raise InputError(
            f"{me} is not the operator of node {node_id} ({terms['operator']}): only the "
            "node's operator offers its shares"
        )
    if not (now_terms["active"] and next_terms["active"]):
        raise InputError(
            f"node {node_id} is not active in this epoch and the next: a paused or retiring "
            "node's shares cannot be offered"
        )
    share = suite.share_at(str(terms["share_token"]))
    balance, allowance = suite.reader.many(
        [share.read("balanceOf", me), share.read("allowance", me, factory.address)]
    )
    if int(balance) < shares:
        raise InputError(f"{me} holds {unit.format(int(balance))}; the offering needs "
                         f"{unit.format(shares)}")  # fmt: skip
    args = (node_id, shares, price_per_share, soft_cap, hard_cap, start, end, investor_cap)
    what = f"offer {unit.format(shares)} of node {node_id}"
    details: dict[str, Any] = {
        "offering": "",
        "node_id": node_id,
        "shares": shares,
        "price_per_share": price_per_share,
        "soft_cap": soft_cap,
        "hard_cap": hard_cap,
        "start": start,
        "end": end,
        "investor_cap": investor_cap,
    }
    if int(allowance) < shares:
        tx.send(share.tx("approve", factory.address, shares), "approve the offering factory")
        if tx.dry_run:
            # the creation pulls the shares the approval allows, which a dry run does not
            # apply: every check the factory makes was made above
            data = factory.calldata("create_offering", *args)
            tx.planned.append(Planned(what, factory.address, data, 0, 0))
            return Action(what, "", 0, details)
    receipt = tx.send(factory.tx("create_offering", *args), what)
    if not receipt.is_simulated:
        event = factory.events(receipt, "OfferingCreated")[0]
        details.update(offering=str(event["offering"]), fee_bps=int(event["fee_bps"]),
                       index=int(event["index"]))  # fmt: skip
    return Action(what, receipt.tx_hash, receipt.gas_used, details)


def _require_open(view: OfferingView, doing: str) -> None:
    if view.state == "PENDING":
        raise InputError(
            f"offering {view.address} opens at {format_time(view.start)}: no {doing} before"
        )
    if view.state != "OPEN":
        raise InputError(
            f"offering {view.address} ended at {format_time(view.end)} ({view.state}): "
            f"no {doing} any more"
        )


def _require_ended(view: OfferingView, doing: str) -> None:
    if view.state in ("PENDING", "OPEN"):
        raise InputError(
            f"offering {view.address} ends at {format_time(view.end)}: no {doing} before "
            "(the outcome is decided there)"
        )


def send_commit(tx: Transactor, suite: Suite, offering: str, amount: int) -> Action:
    """Commit ``amount`` stablecoin base units of the signer's to ``offering``, approving
    the offering first if needed.

    Raises:
        InputError: not an offering, not open, a paused suite, a zero amount, the hard or
            investor cap exceeded, a commitment that buys no share, or too little stablecoin.
    """
    view = fetch_offering(suite, offering)
    me = tx.signer.address
    contract, coin = get_offering_contract(suite, view.address), suite.stablecoin
    paused, committed, balance, allowance = suite.reader.many(
        [
            suite.registry.read("paused"),
            contract.read("committed", me),
            coin.read("balanceOf", me),
            coin.read("allowance", me, view.address),
        ],
        block=view.block,
    )
    unit = suite.fetch_stablecoin_token()
    if amount <= 0:
        raise InputError("the amount to commit must be more than 0")
    _require_open(view, "commitments")
    if paused:
        raise InputError("the suite is paused: no commitments until the guardian resumes it")
    if amount > view.remaining:
        raise InputError(
            f"{unit.format(amount)} would exceed the hard cap {unit.format(view.hard_cap)}: "
            f"{unit.format(view.remaining)} can still be committed"
        )
    after = int(committed) + amount
    if view.investor_cap and after > view.investor_cap:
        room = max(0, view.investor_cap - int(committed))
        raise InputError(
            f"{unit.format(amount)} would take your commitment to {unit.format(after)}, above "
            f"the investor cap {unit.format(view.investor_cap)}: you can add {unit.format(room)}"
        )
    if view.get_shares_for(after) == 0:
        raise InputError(
            f"a commitment of {unit.format(after)} buys no share at "
            f"{unit.format(view.price_per_share)} per share: commit more"
        )
    if int(balance) < amount:
        raise InputError(f"{me} holds {unit.format(int(balance))}; the commitment needs "
                         f"{unit.format(amount)}")  # fmt: skip
    what = f"commit {unit.format(amount)} to offering {view.address}"
    details: dict[str, Any] = {
        "offering": view.address,
        "node_id": view.node_id,
        "amount": amount,
        "committed": after,
        "total_committed": view.total_committed + amount,
        "shares": view.get_shares_for(after),
        "soft_cap": view.soft_cap,
        "hard_cap": view.hard_cap,
    }
    if int(allowance) < amount:
        tx.send(coin.tx("approve", view.address, amount), "approve the offering")
        if tx.dry_run:
            # the commitment pulls what the approval allows, which a dry run does not
            # apply: every check the offering makes was made above
            data = contract.calldata("commit", amount)
            tx.planned.append(Planned(what, view.address, data, 0, 0))
            return Action(what, "", 0, details)
    receipt = tx.send(contract.tx("commit", amount), what)
    if not receipt.is_simulated:
        event = contract.events(receipt, "Committed")[0]
        details.update(committed=int(event["committed"]),
                       total_committed=int(event["total_committed"]))  # fmt: skip
        details["shares"] = view.get_shares_for(details["committed"])
    return Action(what, receipt.tx_hash, receipt.gas_used, details)


def send_cancel(tx: Transactor, suite: Suite, offering: str, amount: int | None = None) -> Action:
    """Take back ``amount`` stablecoin base units of the signer's commitment (default:
    all of it), before the offering's end.

    Raises:
        InputError: not an offering, ended, nothing committed, or more than committed.
    """
    view = fetch_offering(suite, offering)
    me = tx.signer.address
    contract = get_offering_contract(suite, view.address)
    committed = int(contract.call("committed", me, block=view.block))
    unit = suite.fetch_stablecoin_token()
    if view.state not in ("PENDING", "OPEN"):
        raise InputError(
            f"offering {view.address} ended at {format_time(view.end)} ({view.state}): "
            "commitments can no longer be cancelled"
            + ("; refund instead" if view.state == "FAILED" else "")
        )
    if committed == 0:
        raise InputError(f"{me} has nothing committed to offering {view.address}")
    value = committed if amount is None else amount
    if value <= 0:
        raise InputError("the amount to cancel must be more than 0")
    if value > committed:
        raise InputError(
            f"{unit.format(value)} is more than your commitment {unit.format(committed)}"
        )
    what = f"cancel {unit.format(value)} of the commitment to offering {view.address}"
    details: dict[str, Any] = {
        "offering": view.address,
        "node_id": view.node_id,
        "amount": value,
        "committed": committed - value,
        "total_committed": view.total_committed - value,
        "soft_cap": view.soft_cap,
        "hard_cap": view.hard_cap,
    }
    receipt = tx.send(contract.tx("cancel", value), what)
    if not receipt.is_simulated:
        event = contract.events(receipt, "Cancelled")[0]
        details.update(committed=int(event["committed"]),
                       total_committed=int(event["total_committed"]))  # fmt: skip
    return Action(what, receipt.tx_hash, receipt.gas_used, details)


def _investor_standing(
    suite: Suite, tx: Transactor, view: OfferingView, for_investor: str | None
) -> tuple[str, int, bool]:
    who = parse_address(for_investor, "investor") if for_investor else tx.signer.address
    contract = get_offering_contract(suite, view.address)
    committed, claimed = suite.reader.many(
        [contract.read("committed", who), contract.read("claimed", who)], block=view.block
    )
    return who, int(committed), bool(claimed)


def send_claim_shares(
    tx: Transactor, suite: Suite, offering: str, for_investor: str | None = None
) -> Action:
    """Deliver the shares of the signer's commitment (or ``for_investor``'s: anyone may
    deliver for an investor, always to that investor) once the offering has succeeded.

    Raises:
        InputError: not an offering, not ended, failed, nothing committed, or delivered.
    """
    view = fetch_offering(suite, offering)
    _require_ended(view, "delivery")
    if view.state == "FAILED":
        raise InputError(
            f"offering {view.address} failed (below its soft cap): no shares are delivered; "
            "`edgeshare offering refund` pays the commitment back"
        )
    who, committed, claimed = _investor_standing(suite, tx, view, for_investor)
    if committed == 0:
        raise InputError(f"{who} has nothing committed to offering {view.address}")
    if claimed:
        raise InputError(f"the shares of {who} in offering {view.address} were already delivered")
    contract = get_offering_contract(suite, view.address)
    mine = who.lower() == tx.signer.address.lower()
    call = contract.tx("claim_shares") if mine else contract.tx("claim_shares_for", who)
    unit = get_share_token(view.node_id)
    shares = view.get_shares_for(committed)
    what = f"deliver {unit.format(shares)} from offering {view.address} to {who}"
    receipt = tx.send(call, what)
    details: dict[str, Any] = {"offering": view.address, "node_id": view.node_id,
                               "investor": who, "shares": shares, "paid": committed}  # fmt: skip
    if not receipt.is_simulated:
        event = contract.events(receipt, "SharesClaimed")[0]
        details.update(shares=int(event["shares"]), paid=int(event["paid"]))
    return Action(what, receipt.tx_hash, receipt.gas_used, details)


def send_refund(
    tx: Transactor, suite: Suite, offering: str, for_investor: str | None = None
) -> Action:
    """Pay back the signer's whole commitment (or ``for_investor``'s: anyone may refund an
    investor, always to that investor) once the offering has failed.

    Raises:
        InputError: not an offering, not ended, succeeded, nothing committed, or refunded.
    """
    view = fetch_offering(suite, offering)
    _require_ended(view, "refund")
    if view.state == "SUCCEEDED":
        raise InputError(
            f"offering {view.address} succeeded (its soft cap was reached): nothing is "
            "refunded; `edgeshare offering claim` delivers the shares"
        )
    who, committed, claimed = _investor_standing(suite, tx, view, for_investor)
    if committed == 0:
        raise InputError(f"{who} has nothing committed to offering {view.address}")
    if claimed:
        raise InputError(f"{who} was already refunded by offering {view.address}")
    contract = get_offering_contract(suite, view.address)
    mine = who.lower() == tx.signer.address.lower()
    call = contract.tx("refund") if mine else contract.tx("refund_for", who)
    unit = suite.fetch_stablecoin_token()
    what = f"refund {unit.format(committed)} from offering {view.address} to {who}"
    receipt = tx.send(call, what)
    details: dict[str, Any] = {"offering": view.address, "node_id": view.node_id,
                               "investor": who, "amount": committed}  # fmt: skip
    if not receipt.is_simulated:
        details["amount"] = int(contract.events(receipt, "Refunded")[0]["amount"])
    return Action(what, receipt.tx_hash, receipt.gas_used, details)


def send_finish(tx: Transactor, suite: Suite, offering: str) -> Action:
    """Close an ended offering's books (anyone, once): if it succeeded, the proceeds less
    the fee to its operator, the fee to the treasury and the unsold shares to the operator;
    if it failed, every share back to the operator.

    Raises:
        InputError: not an offering, not ended, or already finished.
    """
    view = fetch_offering(suite, offering)
    _require_ended(view, "finish")
    if view.finished:
        raise InputError(f"offering {view.address} is already finished")
    contract = get_offering_contract(suite, view.address)
    succeeded = view.state == "SUCCEEDED"
    fee = view.fee if succeeded else 0
    details: dict[str, Any] = {
        "offering": view.address,
        "node_id": view.node_id,
        "succeeded": succeeded,
        "operator": view.operator,
        "treasury": str(suite.router.call("treasury")) if succeeded else "",
        "proceeds": view.total_committed if succeeded else 0,
        "fee": fee,
        "shares_returned": view.shares - view.shares_sold if succeeded else view.shares,
    }
    what = f"finish offering {view.address}"
    receipt: Receipt = tx.send(contract.tx("finish"), what)
    if not receipt.is_simulated:
        event = contract.events(receipt, "Finished")[0]
        details.update(
            succeeded=bool(event["succeeded"]),
            treasury=str(event["treasury"]) if event["succeeded"] else "",
            proceeds=int(event["proceeds"]),
            fee=int(event["fee"]),
            shares_returned=int(event["shares_returned"]),
        )
    details["operator_paid"] = int(details["proceeds"]) - int(details["fee"])
    return Action(what, receipt.tx_hash, receipt.gas_used, details)
