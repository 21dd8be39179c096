"""The price board, investors' portfolios and claims.

The board ranks active nodes by price, then by the latency and uptime their attestors
reported over recent epochs (from the index), so a developer can pick the cheapest node
that meets a latency bound in a region. Portfolio and claim read balances and claimable
revenue straight from the chain, in JSON-RPC batches.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eth_abi.abi import decode, encode
from hexbytes import HexBytes
from web3 import Web3
from web3.logs import DISCARD

from edgeshare.errors import InputError, NodeNotFound
from edgeshare.pipeline import send_pipelined
from edgeshare.poster import get_rpc
from edgeshare.rpc import RpcError
from edgeshare.suite import Suite
from edgeshare.tx import Transactor

ACTIVE = 1


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


def _calls(
    suite: Suite, signature: str, types: list[str], args: Sequence[list[object]], to: Sequence[str]
) -> list[bytes]:
    selector = bytes(Web3.keccak(text=signature)[:4])
    batch = [
        ("eth_call", [{"to": t, "data": "0x" + (selector + encode(types, a)).hex()}, "latest"])
        for t, a in zip(to, args, strict=True)
    ]
    out = []
    for result in get_rpc(suite.w3).batch(batch):
        if isinstance(result, RpcError):
            raise InputError(f"{signature} failed: {result.message}")
        out.append(bytes(HexBytes(result)))
    return out


def build_board(
    db: sqlite3.Connection,
    suite: Suite,
    *,
    region: str | None = None,
    max_price: int | None = None,
    max_latency: int | None = None,
    top: int | None = None,
    recent: int = 12,
) -> list[BoardRow]:
    """Active nodes matching the filters, cheapest first, then fastest, then most available."""
    count = suite.fetch_node_count()
    if count == 0:
        return []
    registry = suite.registry.address
    raw = _calls(
        suite, "node(uint256)", ["uint256"], [[n] for n in range(1, count + 1)], [registry] * count
    )
    # NodeRegistry.NodeInfo
    info_types = [
        "(address,address,address,address,uint256,uint256,uint256,uint256,uint256,uint256,"
        "uint256,bool,uint64,string,string)"
    ]
    rows = []
    for node_id, data in enumerate(raw, start=1):
        ((*_, price, next_price, cut, _next_cut, _pend, _pend_epoch, status, _by_registrar,
          _registered, node_region, _uri),) = decode(info_types, data)  # fmt: skip
        if status != ACTIVE:
            continue
        if region is not None and node_region.lower() != region.lower():
            continue
        if max_price is not None and price > max_price:
            continue
        latencies, uptimes = [], []
        for latency, uptime in db.execute(
            "SELECT latency_ms, uptime_bps FROM usage WHERE node_id = ? AND state != 'disputed' "
            "ORDER BY epoch DESC LIMIT ?", (node_id, recent)):  # fmt: skip
            latencies.append(latency)
            uptimes.append(uptime)
        median = sorted(latencies)[len(latencies) // 2] if latencies else None
        mean_uptime = sum(uptimes) // len(uptimes) if uptimes else None
        if max_latency is not None and (median is None or median > max_latency):
            continue
        rows.append(
            BoardRow(
                node_id, node_region, price, next_price, median, mean_uptime, len(latencies), cut
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
    registry = suite.registry.address
    raw_tokens = _calls(
        suite, "share_token(uint256)", ["uint256"], [[n] for n in ids], [registry] * len(ids)
    )
    tokens = [Web3.to_checksum_address(decode(["address"], d)[0]) for d in raw_tokens]
    balances = _calls(suite, "balanceOf(address)", ["address"], [[holder]] * len(ids), tokens)
    claimables = _calls(suite, "claimable(address)", ["address"], [[holder]] * len(ids), tokens)
    supplies = _calls(suite, "totalSupply()", [], [[]] * len(ids), tokens)
    out = []
    for node_id, token, b, c, s in zip(ids, tokens, balances, claimables, supplies, strict=True):
        shares, claimable = decode(["uint256"], b)[0], decode(["uint256"], c)[0]
        if shares or claimable or node_ids:
            out.append(Holding(node_id, token, shares, decode(["uint256"], s)[0], claimable))
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
    share_abi = suite.share(holdings[0].node_id).abi
    shares = [
        suite.w3.eth.contract(address=Web3.to_checksum_address(h.share_token), abi=share_abi)
        for h in holdings
    ]
    datas = [
        (s.functions.claim_to(to) if to else s.functions.claim())._encode_transaction_data()
        for s in shares
    ]
    receipts = send_pipelined(
        tx, get_rpc(suite.w3), [s.address for s in shares], datas, "claim revenue",
        on_progress or (lambda *_: None),
    )  # fmt: skip
    from edgeshare.nodes import _as_web3_receipt

    results = []
    for holding, share, receipt in zip(holdings, shares, receipts, strict=True):
        events = share.events.RevenueClaimed().process_receipt(
            _as_web3_receipt(receipt), errors=DISCARD
        )
        paid = int(events[0]["args"]["amount"]) if events else 0
        tx_hash = HexBytes(receipt["transactionHash"]).to_0x_hex()
        results.append(ClaimResult(holding.node_id, paid, to or tx.signer.address, tx_hash))
    return results
