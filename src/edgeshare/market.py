"""The price board, investors' portfolios and claims.

The board ranks active nodes by price, then by the latency and uptime their attestors
reported over recent epochs (from the index), so a developer can pick the cheapest node
that meets a latency bound in a region. Portfolio and claim read balances and claimable
revenue straight from the chain, in JSON-RPC batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, func, select
from web3 import Web3

from edgeshare import indexer as idx
from edgeshare.errors import NodeNotFound
from edgeshare.pipeline import send_pipelined
from edgeshare.suite import Suite
from edgeshare.tx import Transactor


@dataclass
class BoardRow:
    """One node on the price board."""

    node_id: int
    region: str
    price_per_1k: int
    next_price_per_1k: int
    latency_ms: int | None
    uptime_bps: int | None
    epochs_attested: int
    operator_cut_bps: int


def fetch_recent_usage(db: Connection, recent: int) -> dict[int, list[tuple[int, int]]]:
    """(latency ms, uptime bps) of each node's ``recent`` latest undisputed epochs, in one
    query (a window per node)."""
    u = idx.usage
    rank = func.row_number().over(partition_by=u.c.node_id, order_by=u.c.epoch.desc())
    ranked = (
        select(u.c.node_id, u.c.latency_ms, u.c.uptime_bps, rank.label("rank"))
        .where(u.c.state != "disputed")
        .subquery()
    )
    query = select(ranked.c.node_id, ranked.c.latency_ms, ranked.c.uptime_bps).where(
        ranked.c.rank <= recent
    )
    found: dict[int, list[tuple[int, int]]] = {}
    for node_id, latency, uptime in db.execute(query):
        found.setdefault(node_id, []).append((latency, uptime))
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
) -> list[BoardRow]:
    """Active nodes matching the filters, cheapest first, then fastest, then most available."""
    attested = fetch_recent_usage(db, recent)
    rows = []
    for node in suite.fetch_nodes():
        node_id, node_region, price, cut = (
            node.node_id,
            node.region,
            node.price_per_1k,
            node.operator_cut_bps,
        )
        if node.status != "active":
            continue
        if region is not None and node_region.lower() != region.lower():
            continue
        if max_price is not None and price > max_price:
            continue
        latencies = [latency for latency, _ in attested.get(node_id, [])]
        uptimes = [uptime for _, uptime in attested.get(node_id, [])]
        median = sorted(latencies)[len(latencies) // 2] if latencies else None
        mean_uptime = sum(uptimes) // len(uptimes) if uptimes else None
        if max_latency is not None and (median is None or median > max_latency):
            continue
        rows.append(
            BoardRow(
                node_id,
                node_region,
                price,
                node.next_price_per_1k,
                median,
                mean_uptime,
                len(latencies),
                cut,
            )
        )
    rows.sort(key=lambda r: (r.price_per_1k, r.latency_ms if r.latency_ms is not None else 2**63,
                             -(r.uptime_bps or 0), r.node_id))  # fmt: skip
    return rows[:top] if top else rows


@dataclass
class Holding:
    """An address's shares and claimable revenue in one node."""

    node_id: int
    share_token: str
    shares: int
    supply: int
    claimable: int


def fetch_portfolio(
    suite: Suite, holder: str, node_ids: Sequence[int] | None = None
) -> list[Holding]:
    """Every node where ``holder`` has shares or claimable revenue (or the named nodes)."""
    holder = Web3.to_checksum_address(holder)
    count = suite.fetch_node_count()
    ids = list(node_ids) if node_ids else list(range(1, count + 1))
    for node_id in ids:
        if not 1 <= node_id <= count:
            raise NodeNotFound(f"no node {node_id} (registered: 1..{count})")
    if not ids:
        return []
    tokens = suite.fetch_share_tokens(ids)
    shares = [suite.share_at(t) for t in tokens]
    values = suite.reader.each(
        shares, ("balanceOf", holder), ("claimable", holder), ("totalSupply",)
    )
    out = []
    for node_id, token, (balance, claimable, supply) in zip(ids, tokens, values, strict=True):
        if balance or claimable or node_ids:
            out.append(Holding(node_id, token, balance, supply, claimable))
    return out


@dataclass
class ClaimResult:
    """What one claim paid."""

    node_id: int
    amount: int
    receiver: str
    transaction: str


def send_claims(
    tx: Transactor,
    suite: Suite,
    node_ids: Sequence[int] | None = None,
    receiver: str | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> list[ClaimResult]:
    """Claim every node with something claimable (or the named ones): one transaction per
    node (each share token pays its own holders), sent with consecutive nonces."""
    holdings = [h for h in fetch_portfolio(suite, tx.signer.address, node_ids) if h.claimable > 0]
    if not holdings:
        return []
    to = Web3.to_checksum_address(receiver) if receiver else None
    shares = [suite.share_at(h.share_token) for h in holdings]
    datas = [s.calldata("claim_to", to) if to else s.calldata("claim") for s in shares]
    receipts = send_pipelined(
        tx, suite.rpc, [s.address for s in shares], datas, "claim revenue",
        on_progress or (lambda *_: None),
    )  # fmt: skip
    results = []
    for holding, share, receipt in zip(holdings, shares, receipts, strict=True):
        paid = sum(int(e["amount"]) for e in share.events(receipt, "RevenueClaimed"))
        results.append(ClaimResult(holding.node_id, paid, to or tx.signer.address, receipt.tx_hash))
    return results
