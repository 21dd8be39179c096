"""Where things stand in time: the chain's clock, epochs, pending reports, vesting, a
node's recent channel revenue and a customer's payment channels.

Everything here is read from the chain at one point (the latest block); chain time, not
this machine's clock, decides what is due. A local chain that mines no blocks keeps its
clock still, which ``Clock.lag`` shows.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from edgeshare.chain import is_local_chain_id
from edgeshare.channels import fetch_channels, fetch_customer_nodes
from edgeshare.contracts import Call
from edgeshare.models import StrictModel
from edgeshare.poster import PENDING, Record, as_record, fetch_records, read_records
from edgeshare.suite import NodeRecord, Suite
from edgeshare.units import format_duration

STALE_CLOCK = 60
"""Seconds the chain's clock may lag this machine's before the tools say so."""
MAX_EPOCHS_SCANNED = 1_000
"""Pending reports are looked for in a node's most recent epochs, at most this many."""
CHANNEL_EPOCHS_SHOWN = 4
"""A node's channel revenue is shown for the current epoch and the ones before it, this
many in all."""


class Clock(StrictModel):
    """The chain's time and the suite's epoch at the latest block."""

    chain_id: int
    block: int
    chain_time: int
    """The latest block's timestamp (what contracts see)."""
    wall_time: int
    """This machine's clock when it was read."""
    epoch_length: int
    genesis: int
    current_epoch: int
    epoch_ends_at: int
    paused: bool
    """The suite is paused (no settlement, finalizing or registration)."""
    challenge_period: int
    unlock_period: int

    @property
    def lag(self) -> int:
        """Seconds the chain's clock is behind this machine's (an idle local chain)."""
        return max(0, self.wall_time - self.chain_time)

    def epoch_start(self, epoch: int) -> int:
        """When ``epoch`` starts (unix time)."""
        return self.genesis + epoch * self.epoch_length

    def describe_lag(self) -> str | None:
        """Why chain time stands behind this machine's, and what moves it (None: it does
        not lag by more than ``STALE_CLOCK``)."""
        if self.lag <= STALE_CLOCK:
            return None
        hint = (
            "this local chain mines no blocks while idle; `edgeshare dev advance "
            "SECONDS|--epochs N` moves it (or any transaction mines a block)"
            if is_local_chain_id(self.chain_id)
            else "it moves with the next block"
        )
        return (
            f"the chain's clock is {format_duration(self.lag)} behind this machine's: no "
            f"block was mined since; contracts see chain time; {hint}"
        )


class PendingReport(StrictModel):
    """A settled report inside (or past) its challenge window, not finalized yet."""

    node_id: int
    epoch: int
    revenue: int
    """What its payer paid: the report's revenue less the epoch's channel revenue."""
    finalizable_at: int
    due: bool
    """Its window has passed: ``attest finalize`` (anyone) pays it out now."""


class EpochRevenue(StrictModel):
    """A node's channel revenue of one epoch."""

    epoch: int
    amount: int
    """What customers' vouchers redeemed in the epoch paid the node (split at once)."""
    current: bool
    """The epoch is still going: more can be redeemed into it."""


class NodeView(StrictModel):
    """One node's terms, pending reports, vesting and recent channel revenue."""

    node_id: int
    status: str
    operator: str
    price_per_1k: int
    next_price_per_1k: int
    operator_cut_bps: int
    next_operator_cut_bps: int
    pending_cut_bps: int
    pending_cut_from: int
    """When a pending cut increase applies (unix time; 0: none pending)."""
    pending: list[PendingReport]
    unvested: int
    """Holders' revenue received and not yet claimable."""
    vesting_ends_at: int
    operator_owed: int
    """What the router owes the node's operator now (its cuts from every node it runs,
    and any refund), withdrawable with ``edgeshare withdraw``."""
    channel_revenue: list[EpochRevenue]
    """Channel revenue of the node's most recent epochs, the current one first."""


class ChannelView(StrictModel):
    """A customer's payment channel to one node."""

    node_id: int
    state: str
    """``open``; ``closing`` (a close was requested: the node redeems until
    ``withdrawable_at``); ``withdrawable`` (the grace, or a retired node's final window,
    is over); ``empty`` (nothing deposited in this generation, e.g. after a withdrawal)."""
    deposited: int
    """Deposited in this generation."""
    redeemed: int
    """Redeemed by the node in this generation (its last voucher's cumulative amount)."""
    unredeemed: int
    """Still the customer's: what further vouchers can draw on, or withdraw takes back."""
    generation: int
    """What the channel's vouchers must name."""
    closes_at: int
    """When a requested close ends the node's grace (0: no close requested)."""
    withdrawable_at: int
    """When the customer can withdraw the rest (0: not until a close is requested)."""
    low_balance_threshold: int
    """Below it a redemption logs LowBalance (0: no threshold)."""
    low_balance: bool
    """Something is deposited and the unredeemed rest is below the threshold: top the
    channel up."""


class Position(StrictModel):
    """An investor's standing in one node."""

    node_id: int
    shares: int
    supply: int
    claimable: int
    vesting: int
    """The investor's part of what is still vesting (at its shares now; rounded down)."""
    vesting_ends_at: int


def fetch_clock(suite: Suite, head: Mapping[str, Any] | None = None) -> Clock:
    """The chain's clock and the suite's epoch at ``head`` (a block header as
    ``eth_getBlockByNumber`` returns it; default: the newest block, read here). The pause
    flag is read at "latest" (a provider behind a load balancer may not know a block
    number it just named)."""
    k = suite.fetch_constants()
    if head is None:
        head = suite.rpc.call("eth_getBlockByNumber", ["latest", False])
    paused = suite.registry.call("paused")
    block = int(head["number"], 16)
    chain_time = int(head["timestamp"], 16)
    epoch = max(0, (chain_time - k.genesis) // k.epoch_length)
    return Clock(
        chain_id=suite.manifest.chain_id,
        block=block,
        chain_time=chain_time,
        wall_time=int(time.time()),
        epoch_length=k.epoch_length,
        genesis=k.genesis,
        current_epoch=epoch,
        epoch_ends_at=k.genesis + (epoch + 1) * k.epoch_length,
        paused=bool(paused),
        challenge_period=k.challenge_period,
        unlock_period=k.unlock_period,
    )


def fetch_pending(
    suite: Suite,
    clock: Clock,
    nodes: Sequence[tuple[int, int]],
    final: Collection[tuple[int, int]] = (),
) -> list[PendingReport]:
    """Pending reports of ``nodes`` ((node id, registered epoch) pairs), oldest first.
    ``final``: (node, epoch) pairs known to be finalized (an index's), not read: a
    finalized epoch never changes again."""
    keys = _get_pending_keys(clock, nodes, final)
    return _get_pending(clock, keys, fetch_records(suite, keys))


def _get_pending_keys(
    clock: Clock, nodes: Sequence[tuple[int, int]], final: Collection[tuple[int, int]]
) -> list[tuple[int, int]]:
    """The (node, epoch) pairs ``fetch_pending`` reads: each node's epochs since it
    registered (at most ``MAX_EPOCHS_SCANNED`` back), less those known to be final."""
    known = set(final)
    return [
        (node_id, epoch)
        for node_id, registered in nodes
        for epoch in range(
            max(registered, clock.current_epoch - MAX_EPOCHS_SCANNED), clock.current_epoch + 1
        )
        if (node_id, epoch) not in known
    ]


def _get_pending(
    clock: Clock, keys: Sequence[tuple[int, int]], records: Sequence[Record]
) -> list[PendingReport]:
    """The pending ones of ``records`` (the router's records of ``keys``), oldest first."""
    found = [
        PendingReport(
            node_id=node_id,
            epoch=epoch,
            revenue=record.revenue,
            finalizable_at=record.finalizable_at,
            due=record.finalizable_at <= clock.chain_time,
        )
        for (node_id, epoch), record in zip(keys, records, strict=True)
        if record.state == PENDING
    ]
    return sorted(found, key=lambda p: (p.finalizable_at, p.node_id, p.epoch))


def fetch_channel_revenue(
    suite: Suite, clock: Clock, nodes: Sequence[tuple[int, int]]
) -> dict[int, list[EpochRevenue]]:
    """Channel revenue of ``nodes`` ((node id, registered epoch) pairs) in their most
    recent epochs (``CHANNEL_EPOCHS_SHOWN``), the current one first."""
    keys = _get_channel_keys(clock, nodes)
    amounts = suite.reader.many(_read_channel_revenue(suite, keys))
    return _get_channel_revenue(clock, nodes, keys, amounts)


def _get_channel_keys(clock: Clock, nodes: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The (node, epoch) pairs ``fetch_channel_revenue`` reads, each node's newest first."""
    now = clock.current_epoch
    keys = []
    for node_id, registered in nodes:
        oldest = max(registered, now - CHANNEL_EPOCHS_SHOWN + 1)
        keys += [(node_id, epoch) for epoch in range(now, oldest - 1, -1)]
    return keys


def _read_channel_revenue(suite: Suite, keys: Sequence[tuple[int, int]]) -> list[Call]:
    return [suite.router.read("channel_revenue", n, e) for n, e in keys]


def _get_channel_revenue(
    clock: Clock,
    nodes: Sequence[tuple[int, int]],
    keys: Sequence[tuple[int, int]],
    amounts: Sequence[Any],
) -> dict[int, list[EpochRevenue]]:
    """``amounts`` (the channel revenue of ``keys``) by node."""
    found: dict[int, list[EpochRevenue]] = {node_id: [] for node_id, _ in nodes}
    for (node_id, epoch), amount in zip(keys, amounts, strict=True):
        found[node_id].append(
            EpochRevenue(epoch=epoch, amount=int(amount), current=epoch == clock.current_epoch)
        )
    return found


def fetch_node_views(
    suite: Suite,
    clock: Clock,
    node_ids: Sequence[int],
    records: Sequence[NodeRecord] | None = None,
    final: Collection[tuple[int, int]] = (),
) -> list[NodeView]:
    """Terms, pending reports, vesting and recent channel revenue of each node
    (``records``: the nodes' registry records, when the caller read them already;
    ``final``: epochs known to be finalized, see ``fetch_pending``), read together in
    one set of batches."""
    records = list(records) if records is not None else suite.fetch_nodes(node_ids)
    registered = [(r.node_id, r.registered_epoch) for r in records]
    pending_keys = _get_pending_keys(clock, registered, final)
    channel_keys = _get_channel_keys(clock, registered)
    shares = [suite.share_at(r.share_token) for r in records]
    unvested, ends, owed, settled, amounts = suite.reader.gather([
        [share.read("unvested") for share in shares],
        [share.read("vesting_ends_at") for share in shares],
        [suite.router.read("owed", r.operator) for r in records],
        read_records(suite, pending_keys),
        _read_channel_revenue(suite, channel_keys),
    ])  # fmt: skip
    pending = _get_pending(clock, pending_keys, [as_record(f) for f in settled])
    channel = _get_channel_revenue(clock, registered, channel_keys, amounts)
    return [
        NodeView(
            node_id=r.node_id,
            status=r.status,
            operator=str(r.operator),
            price_per_1k=r.price_per_1k,
            next_price_per_1k=r.next_price_per_1k,
            operator_cut_bps=r.operator_cut_bps,
            next_operator_cut_bps=r.next_operator_cut_bps,
            pending_cut_bps=r.pending_cut_bps,
            pending_cut_from=clock.epoch_start(r.pending_cut_epoch) if r.pending_cut_epoch else 0,
            pending=[p for p in pending if p.node_id == r.node_id],
            unvested=int(left),
            vesting_ends_at=int(end),
            operator_owed=int(owing),
            channel_revenue=channel[r.node_id],
        )
        for r, left, end, owing in zip(records, unvested, ends, owed, strict=True)
    ]


def fetch_customer_channels(
    suite: Suite, clock: Clock, customer: str, node_ids: Sequence[int] | None = None
) -> list[ChannelView]:
    """``customer``'s channels to ``node_ids`` (default: every node it has deposited into,
    found in the channels' Deposited logs), as the chain holds them now, by node."""
    nodes = list(node_ids) if node_ids is not None else fetch_customer_nodes(suite, customer)
    views = []
    for c in fetch_channels(suite, [(customer, n) for n in nodes]):
        if c.deposited == 0:
            state = "empty"
        elif c.is_closed_at(clock.chain_time):
            state = "withdrawable"
        elif c.withdrawable_at:
            state = "closing"
        else:
            state = "open"
        views.append(
            ChannelView(
                node_id=c.node_id,
                state=state,
                deposited=c.deposited,
                redeemed=c.redeemed,
                unredeemed=c.unredeemed,
                generation=c.generation,
                closes_at=c.closes_at,
                withdrawable_at=c.withdrawable_at,
                low_balance_threshold=c.low_balance_threshold,
                low_balance=c.deposited > 0 and c.unredeemed < c.low_balance_threshold,
            )
        )
    return views


def fetch_operated(suite: Suite, operator: str) -> list[int]:
    """Ids of the nodes ``operator`` operates now."""
    return [r.node_id for r in suite.fetch_nodes() if r.operator.lower() == operator.lower()]


def fetch_positions(suite: Suite, investor: str) -> list[Position]:
    """Every node where ``investor`` holds shares or has revenue to claim."""
    count = suite.fetch_node_count()
    ids = list(range(1, count + 1))
    found = suite.fetch_positions(investor, suite.fetch_share_tokens(ids))
    positions = [
        Position(node_id=node_id, shares=p.balance, supply=p.supply, claimable=p.claimable,
                 vesting=p.vesting, vesting_ends_at=p.vesting_ends_at)
        for node_id, p in zip(ids, found, strict=True)
        if p.balance or p.claimable
    ]  # fmt: skip
    return positions
