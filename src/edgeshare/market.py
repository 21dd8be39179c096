"""The price board, investors' portfolios and claims.

The board ranks active nodes by price, then by the latency and uptime their attestors
reported over recent epochs (from the index), so a developer can pick the cheapest node
that meets a latency bound in a region; nodes with no attested usage yet come after the
others, marked new. Each row carries the node's metadata (endpoint, models, GPU,
capacity) read from its ``metadata_uri`` and checked against the URI's hash. Portfolio
and claim read balances and claimable revenue straight from the chain, in JSON-RPC batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, func, select
from web3 import Web3

from edgeshare import indexer as idx
from edgeshare.baskets import fetch_basket_holdings
from edgeshare.chain import is_local_chain_id
from edgeshare.contracts import BlockId, get_codec
from edgeshare.errors import NodeNotFound
from edgeshare.metadata import MetadataError, MetadataNotFetched, NodeMetadata, fetch_metadata
from edgeshare.pipeline import send_pipelined
from edgeshare.suite import CLAIMER_MAX_TOKENS, Suite
from edgeshare.tx import Transactor
from edgeshare.units import Token, format_price


@dataclass
class BoardRow:
    """One node on the price board."""

    node_id: int
    region: str
    price_per_1k: int
    """Stablecoin base units per 1,000 inferences this epoch."""
    next_price_per_1k: int
    latency_ms: int | None
    """Median attested latency over the recent epochs (None: no attested usage)."""
    uptime_bps: int | None
    epochs_attested: int
    operator_cut_bps: int
    operator: str = ""
    metadata_uri: str = ""
    metadata: NodeMetadata | None = None
    """The node's metadata document, read and checked against its hash."""
    metadata_status: str = "none"
    """``verified``, ``none`` (no URI), ``not fetched`` (http/ipfs) or what is wrong."""

    @property
    def is_new(self) -> bool:
        """True for a node with no attested usage yet (ranked after those with some)."""
        return self.epochs_attested == 0


@dataclass
class Board:
    """The price board and what it was built from."""

    rows: list[BoardRow]
    token: Token
    """The stablecoin prices are in."""
    regions: list[str]
    """The regions of the active nodes."""
    empty_reason: str | None = None
    """Why ``rows`` is empty (None when it is not)."""


def fetch_recent_usage(db: Connection, recent: int) -> dict[int, list[tuple[int | None, int]]]:
    """(latency ms, uptime bps) of each node's ``recent`` latest undisputed epochs, in one
    query (a window per node). The latency of an epoch without inferences is None: with
    nothing served there was nothing to measure (the agent reports 0 there)."""
    u = idx.usage
    rank = func.row_number().over(partition_by=u.c.node_id, order_by=u.c.epoch.desc())
    ranked = (
        select(u.c.node_id, u.c.inferences, u.c.latency_ms, u.c.uptime_bps, rank.label("rank"))
        .where(u.c.state != "disputed")
        .subquery()
    )
    query = select(
        ranked.c.node_id, ranked.c.inferences, ranked.c.latency_ms, ranked.c.uptime_bps
    ).where(ranked.c.rank <= recent)
    found: dict[int, list[tuple[int | None, int]]] = {}
    for node_id, inferences, latency, uptime in db.execute(query):
        found.setdefault(node_id, []).append((latency if inferences else None, uptime))
    return found


def fetch_board_metadata(
    uris: Sequence[str], *, allow_files: bool
) -> dict[str, tuple[NodeMetadata | None, str]]:
    """(document, status) of each distinct metadata URI (see ``fetch_metadata``)."""
    found: dict[str, tuple[NodeMetadata | None, str]] = {}
    for uri in uris:
        if uri in found:
            continue
        if not uri:
            found[uri] = (None, "none")
            continue
        try:
            found[uri] = (fetch_metadata(uri, allow_files=allow_files), "verified")
        except MetadataNotFetched:
            found[uri] = (None, "not fetched")
        except MetadataError as exc:
            found[uri] = (None, f"invalid: {exc}")
    return found


def build_board(
    db: Connection,
    suite: Suite,
    *,
    region: str | None = None,
    max_price: int | None = None,
    max_latency: int | None = None,
    top: int | None = None,
    recent: int = 12,
    token: Token | None = None,
) -> Board:
    """Active nodes matching the filters: those with attested usage first, cheapest first,
    then fastest, then most available; then the new ones (no attested usage), cheapest
    first. An unknown region gives an empty board whose reason names the known ones."""
    token = token or suite.fetch_stablecoin_token()
    attested = fetch_recent_usage(db, recent)
    active = [n for n in suite.fetch_nodes() if n.status == "active"]
    regions = sorted({n.region for n in active}, key=str.lower)
    if region is not None and region.lower() not in {r.lower() for r in regions}:
        known = ", ".join(regions) if regions else "none: no node is active"
        return Board(
            [], token, regions, f"no active node in region {region!r}; known regions: {known}"
        )
    rows = []
    for node in active:
        if region is not None and node.region.lower() != region.lower():
            continue
        if max_price is not None and node.price_per_1k > max_price:
            continue
        recent_rows = attested.get(node.node_id, [])
        latencies = [latency for latency, _ in recent_rows if latency is not None]
        uptimes = [uptime for _, uptime in recent_rows]
        median = sorted(latencies)[len(latencies) // 2] if latencies else None
        mean_uptime = sum(uptimes) // len(uptimes) if uptimes else None
        if max_latency is not None and (median is None or median > max_latency):
            continue
        rows.append(
            BoardRow(
                node.node_id, node.region, node.price_per_1k, node.next_price_per_1k, median,
                mean_uptime, len(recent_rows), node.operator_cut_bps, node.operator,
                node.metadata_uri,
            )
        )  # fmt: skip
    rows.sort(key=lambda r: (r.is_new, r.price_per_1k,
                             r.latency_ms if r.latency_ms is not None else 2**63,
                             -(r.uptime_bps or 0), r.node_id))  # fmt: skip
    rows = rows[:top] if top else rows
    documents = fetch_board_metadata(
        [r.metadata_uri for r in rows], allow_files=is_local_chain_id(suite.manifest.chain_id)
    )
    for row in rows:
        row.metadata, row.metadata_status = documents[row.metadata_uri]
    reason = None
    if not rows:
        asked = [
            f"region {region}" if region else "",
            f"price at most {format_price(max_price, token)}" if max_price is not None else "",
            f"p50 latency at most {max_latency} ms" if max_latency is not None else "",
        ]
        wanted = ", ".join(a for a in asked if a)
        reason = (f"no active node matches ({wanted})" if wanted else "no node is active") + (
            " (a node with no attested usage has no latency)" if max_latency is not None else ""
        )
    return Board(rows, token, regions, reason)


@dataclass
class Holding:
    """An address's shares and claimable revenue in one node."""

    node_id: int
    share_token: str
    shares: int
    supply: int
    claimable: int
    vesting: int = 0
    """Its part of the node's revenue still vesting (usage reports finalized and channel
    revenue redeemed lately), at its shares now, rounded down."""


def fetch_portfolio(
    suite: Suite,
    holder: str,
    node_ids: Sequence[int] | None = None,
    *,
    among: Sequence[int] | None = None,
    block: BlockId = "latest",
) -> list[Holding]:
    """Every node where ``holder`` has shares or claimable revenue (or the named nodes),
    with what it can claim and its part of what still vests. ``among`` (the nodes it ever
    received shares of, ``fetch_nodes_received``) spares reading every node: it cannot
    hold or claim anything in the others. Positions are read at ``block``."""
    holder = Web3.to_checksum_address(holder)
    count = suite.fetch_node_count(block)  # a node registered after ``block`` held nothing
    if node_ids:
        ids = list(node_ids)
    elif among is not None:
        ids = sorted(n for n in set(among) if 1 <= n <= count)
    else:
        ids = list(range(1, count + 1))
    for node_id in ids:
        if not 1 <= node_id <= count:
            raise NodeNotFound(f"no node {node_id} (registered: 1..{count})")
    if not ids:
        return []
    tokens = suite.fetch_share_tokens(ids)
    positions = suite.fetch_positions(holder, tokens, block)
    return [
        Holding(node_id, token, p.balance, p.supply, p.claimable, p.vesting)
        for node_id, token, p in zip(ids, tokens, positions, strict=True)
        if p.balance or p.claimable or node_ids
    ]


MAX_LOG_GAP = 10_000
"""Blocks past the index's last one that ``fetch_nodes_received`` reads logs for."""


def fetch_nodes_received(
    db: Connection, suite: Suite, holder: str, to_block: int | None = None
) -> list[int] | None:
    """The nodes whose shares ``holder`` ever received (every share it holds or revenue it
    can claim came with a transfer to it): the index's transfers, and for the blocks the
    index has not read yet, the chain's ``Transfer`` logs to it from the nodes' share
    tokens, up to ``to_block`` (default: the chain's newest block). None when the index is more
    than ``MAX_LOG_GAP`` blocks behind (the caller reads every node)."""
    holder = Web3.to_checksum_address(holder)
    t, m = idx.transfers.c, idx.meta.c
    found = {int(n) for (n,) in db.execute(
        select(t.node_id).where(t.receiver == holder).distinct()
    )}  # fmt: skip
    last = db.execute(select(m.value).where(m.key == "last_block")).scalar()
    head = to_block if to_block is not None else int(suite.rpc.call("eth_blockNumber", []), 16)
    start = 0 if last is None else int(last) + 1
    if head - start + 1 > MAX_LOG_GAP:
        return None
    if start <= head:
        topic = "0x" + "0" * 24 + holder[2:].lower()
        transfer = "0x" + get_codec("NodeShare").event("Transfer").topic.hex()
        logs = suite.rpc.call("eth_getLogs", [{
            "fromBlock": hex(start), "toBlock": hex(head),
            "topics": [transfer, None, topic],
        }])  # fmt: skip
        count = suite.fetch_node_count()
        ids = list(range(1, count + 1))
        by_token = dict(zip((a.lower() for a in suite.fetch_share_tokens(ids)), ids, strict=True))
        found |= {by_token[log["address"].lower()] for log in logs
                  if log["address"].lower() in by_token}  # fmt: skip
    return sorted(found)


MAX_CLAIM_TOKENS = CLAIMER_MAX_TOKENS
"""PortfolioClaimer.MAX_TOKENS: share tokens and baskets per portfolio claim."""


@dataclass
class ClaimResult:
    """What one token paid in a portfolio claim."""

    node_id: int | None
    """The node whose shares paid (None for a basket)."""
    amount: int
    receiver: str
    transaction: str
    basket: str | None = None
    """The basket that paid (None for a node's shares)."""
    token: str = ""
    """The share token or basket address."""


def send_claims(
    tx: Transactor,
    suite: Suite,
    node_ids: Sequence[int] | None = None,
    receiver: str | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    *,
    baskets: bool | None = None,
) -> list[ClaimResult]:
    """Claim everything the signer can claim, from every node (or the named ones) and,
    unless ``baskets`` is False, every basket: one PortfolioClaimer transaction per
    MAX_CLAIM_TOKENS tokens (a lone token's own ``claim``, which costs less), sent with
    consecutive nonces. ``baskets`` defaults to
    True when no nodes are named, False when some are."""
    holder = tx.signer.address
    holdings = [h for h in fetch_portfolio(suite, holder, node_ids) if h.claimable > 0]
    with_baskets = baskets if baskets is not None else not node_ids
    units = (
        [b for b in fetch_basket_holdings(suite, holder) if b.claimable > 0] if with_baskets else []
    )
    entries: list[tuple[int | None, str | None, str]] = [
        (h.node_id, None, Web3.to_checksum_address(h.share_token)) for h in holdings
    ] + [(None, b.basket, b.basket) for b in units]
    if not entries:
        return []
    to = Web3.to_checksum_address(receiver) if receiver else holder
    claimer = suite.claimer
    batches = [entries[i : i + MAX_CLAIM_TOKENS] for i in range(0, len(entries), MAX_CLAIM_TOKENS)]
    targets, datas = [], []
    for batch in batches:
        if len(batch) == 1:  # one token: its own claim is cheaper than through the claimer
            token = batch[0][2]
            contract = suite.share_at(token)  # NodeShare and Basket share claim/claim_to
            targets.append(token)
            datas.append(
                contract.calldata("claim_to", to) if to != holder else contract.calldata("claim")
            )
        else:
            targets.append(claimer.address)
            datas.append(claimer.calldata("claim_many", [e[2] for e in batch], to))
    receipts = send_pipelined(
        tx, suite.rpc, targets, datas, "claim revenue", on_progress or (lambda *_: None)
    )
    results = []
    for batch, receipt in zip(batches, receipts, strict=True):
        for node_id, basket, token in batch:
            paying = (
                suite.share_at(token) if basket is None else suite.reader.contract("Basket", token)
            )
            paid = sum(int(e["amount"]) for e in paying.events(receipt, "RevenueClaimed"))
            results.append(ClaimResult(node_id, paid, to, receipt.tx_hash, basket, token))
    return results
