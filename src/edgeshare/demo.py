"""The EdgeShare story on a local chain, end to end, through the same library functions
as the command line.

Deploy; register nodes across regions at different prices; place shares with investors;
simulate each node's inferences per epoch with a seeded daily pattern in the region's
local time; attestors sign; a payer settles in batches; the guardian disputes one
report; the challenge window passes; revenue is finalized and vests; investors claim;
operators, the treasury and the refunded payer withdraw; the operator and investor
reports are written. The same seed gives the same numbers. The run ends by checking
that every base unit paid in is accounted for.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from web3 import Web3

from edgeshare.attestation import SignedReport, sign
from edgeshare.deploy import build_params, deploy_suite
from edgeshare.errors import EdgeShareError, InputError
from edgeshare.indexer import open_db, sync_index
from edgeshare.market import send_claims
from edgeshare.nodes import NodeEntry, register_nodes
from edgeshare.pipeline import send_pipelined
from edgeshare.poster import get_rpc, post_reports
from edgeshare.reports import build_report, render_csv, render_html, render_json
from edgeshare.signer import Signer
from edgeshare.suite import (
    Suite,
    fetch_domain_of,
    send_dispute,
    send_increase_time,
    send_mint_mock,
    send_withdraw,
)
from edgeshare.suite import (
    build_report as build_usage_report,
)
from edgeshare.tx import Transactor

# (city, UTC offset in hours)
REGIONS = [
    ("Singapore", 8), ("Jakarta", 7), ("Mumbai", 5), ("Sao Paulo", -3), ("Lagos", 1),
    ("Manila", 8), ("Bangkok", 7), ("Nairobi", 3), ("Bogota", -5), ("Dhaka", 6),
    ("Ho Chi Minh City", 7), ("Mexico City", -6), ("Cairo", 2), ("Karachi", 5), ("Lima", -5),
]  # fmt: skip
# Share of peak demand by local hour, percent: quiet at night, busy in the afternoon.
HOURLY_LOAD = [30, 25, 22, 20, 22, 30, 45, 60, 75, 85, 90, 95,
               100, 98, 95, 92, 90, 92, 95, 90, 80, 65, 50, 40]  # fmt: skip
USDC = 10**6
SHARES = 10**18
EPOCH = 2 * 3_600  # 12 epochs make a day
CHALLENGE = 2 * 3_600
UNLOCK = 6 * 3_600
MAX_NODES = 50


class NodeLine(BaseModel):
    """One node's totals in the demo."""

    model_config = ConfigDict(extra="forbid")
    node_id: int
    region: str
    price_per_1k: int
    inferences: int
    gross: int
    holders: int
    operator: int
    fee: int
    disputed: int


class DemoSummary(BaseModel):
    """What the demo did; every amount in stablecoin base units (6 decimals)."""

    model_config = ConfigDict(extra="forbid")
    chain_id: int
    seed: int
    nodes: list[NodeLine]
    investors: int
    epochs: int
    reports_settled: int
    settle_transactions: int
    disputed_report: tuple[int, int]
    paid_in: int
    refunded_to_payer: int
    claimed_by_investors: int
    withdrawn_by_operators_and_treasury: int
    still_claimable: int
    still_unvested: int
    dust: int
    reports_written: list[str]


def get_accounts_needed(nodes: int, investors: int) -> int:
    """Funded dev accounts the demo uses: the issuer (also payer and guardian),
    one operator per node, and the investors."""
    return 1 + nodes + investors


def get_keys_needed(nodes: int, investors: int) -> int:
    """Keys the demo derives: the funded accounts plus one (unfunded) attestor per node."""
    return get_accounts_needed(nodes, investors) + nodes


def simulate_inferences(
    rng: random.Random, capacity_per_hour: int, epoch: int, utc_offset: int
) -> int:
    """Inferences in a 2-hour epoch: the hourly load curve at local time, with +-10% noise."""
    total = 0
    for hour in (2 * epoch, 2 * epoch + 1):
        local = (hour + utc_offset) % 24
        total += capacity_per_hour * HOURLY_LOAD[local] // 100
    return total * rng.randrange(90, 111) // 100


def run_demo(
    w3: Web3,
    keys: list[str],
    *,
    nodes: int = 20,
    investors: int = 50,
    epochs: int = 12,
    seed: int = 7,
    reports_dir: Path | None = Path("reports"),
    workdir: Path,
    log: Callable[[str], None] = lambda _msg: None,
) -> DemoSummary:
    """Run the story on a local chain whose first ``get_accounts_needed`` keys are funded.

    Args:
        w3: A fresh local chain (its clock is moved forward).
        keys: At least ``get_keys_needed(nodes, investors)`` dev keys.
        nodes: Nodes to register (1 to 50).
        investors: Investors buying shares (at least 1).
        epochs: Epochs of usage (2-hour epochs; at least 1).
        seed: Seeds every random choice.
        reports_dir: Where the operator and investor reports go (None: not written).
        workdir: Where the manifest and the index database go.
        log: Receives one line per step.
    """
    if not 1 <= nodes <= MAX_NODES:
        raise InputError(f"--nodes must be 1 to {MAX_NODES}, got {nodes}")
    if investors < 1 or epochs < 1:
        raise InputError("--investors and --epochs must be at least 1")
    if len(keys) < get_keys_needed(nodes, investors):
        raise EdgeShareError("not enough dev keys for the demo")
    rng = random.Random(seed)
    issuer = Transactor(w3, Signer.from_key(keys[0]))
    operators = [Transactor(w3, Signer.from_key(k)) for k in keys[1 : 1 + nodes]]
    holders = [Transactor(w3, Signer.from_key(k)) for k in keys[1 + nodes : 1 + nodes + investors]]
    attestor_keys = keys[1 + nodes + investors : 1 + 2 * nodes + investors]

    params = build_params(None, epoch_length=EPOCH, unlock_period=UNLOCK,
                          challenge_period=CHALLENGE, protocol_fee_bps=500)  # fmt: skip
    manifest = deploy_suite(issuer, params, workdir / "manifest.json").manifest
    suite = Suite.load(w3, manifest)
    log(f"deployed the suite on chain {manifest.chain_id}")

    entries, capacity, offsets = [], [], []
    for i, operator in enumerate(operators):
        city, offset = REGIONS[i % len(REGIONS)]
        entries.append(NodeEntry(
            operator=operator.signer.address,
            attestor=Signer.from_key(attestor_keys[i]).address,
            shares=1_000_000 * SHARES,
            price_per_1k=rng.randrange(10, 90) * USDC // 100,
            operator_cut_bps=rng.choice([1_000, 1_500, 2_000]),
            region=city,
            metadata_uri=f"ipfs://edgeshare-demo/node-{i + 1}",
            external_id=f"{city.lower().replace(' ', '-')}-gpu-{i // len(REGIONS) + 1:02d}",
        ))  # fmt: skip
        capacity.append(rng.randrange(2_000, 20_000))
        offsets.append(offset)
    registered = register_nodes(issuer, suite, entries)
    node_ids = [r.node_id for r in registered]
    log(f"registered {len(node_ids)} nodes in {len({e.region for e in entries})} regions")

    share_abi = suite.share(node_ids[0]).abi
    placed = 0
    for node_id, operator in zip(node_ids, operators, strict=True):
        token = suite.fetch_node(node_id).share_token
        share = w3.eth.contract(address=Web3.to_checksum_address(token), abi=share_abi)
        buyers = rng.sample(holders, k=min(len(holders), rng.randrange(3, 12)))
        # the operator keeps 30% and places the rest in random lots
        weights = [rng.randrange(1, 10) for _ in buyers]
        lots = [700_000 * SHARES * w // sum(weights) for w in weights]
        datas = [share.functions.transfer(b.signer.address, lot)._encode_transaction_data()
                 for b, lot in zip(buyers, lots, strict=True)]  # fmt: skip
        send_pipelined(operator, get_rpc(w3), token, datas, "place shares", lambda *_: None)
        placed += len(datas)
    log(f"operators placed shares with investors in {placed} transfers")

    send_mint_mock(issuer, suite, issuer.signer.address, 10**12 * USDC)
    genesis = int(suite.registry.functions.GENESIS().call())
    now = int(w3.eth.get_block("latest")["timestamp"])
    send_increase_time(w3, genesis + epochs * EPOCH - now)  # every epoch has ended
    domain = fetch_domain_of(suite)
    separator = domain.get_separator()
    deadline = genesis + (epochs + 30) * EPOCH
    reports: list[SignedReport] = []
    for index, node_id in enumerate(node_ids):
        base_latency = rng.randrange(25, 120)
        for epoch in range(epochs):
            inferences = simulate_inferences(rng, capacity[index], epoch, offsets[index])
            report = build_usage_report(
                suite, node_id, epoch, inferences,
                base_latency + rng.randrange(0, 25), rng.randrange(9_900, 10_001), deadline,
            )  # fmt: skip
            reports.append(sign(report, attestor_keys[index], domain, separator))
    log(f"attestors signed {len(reports)} usage reports ({len(node_ids)} nodes x {epochs} epochs)")

    posted = post_reports(issuer, suite, reports, domain, batch_size=50)
    log(f"a payer settled them in {len(posted.transactions)} transactions: {posted.revenue} units")
    suspicious = max(reports, key=lambda r: (r.inferences, r.node_id, r.epoch))
    refunded = send_dispute(issuer, suite, suspicious.node_id, suspicious.epoch)
    log(
        f"guardian disputed node {suspicious.node_id} epoch {suspicious.epoch}: {refunded} refunded"
    )

    send_increase_time(w3, CHALLENGE)
    finalize = []
    for node_id in node_ids:
        due = [e for e in range(epochs) if (node_id, e) != (suspicious.node_id, suspicious.epoch)]
        if due:  # a node whose only report was disputed has nothing to finalize
            finalize.append(
                suite.router.functions.finalize(node_id, due)._encode_transaction_data()
            )
    send_pipelined(issuer, get_rpc(w3), suite.router.address, finalize, "finalize", lambda *_: None)
    send_increase_time(w3, UNLOCK)
    log("the challenge window passed; revenue was finalized and has fully vested")

    claimed = 0
    for holder in holders:
        claimed += sum(c.amount for c in send_claims(holder, suite))
    withdrawn = sum(send_withdraw(op, suite) for op in operators)
    issuer_withdrawal = send_withdraw(issuer, suite)  # treasury fees and the payer's refund
    log(f"investors claimed {claimed} base units in total")

    url, _ = sync_index(suite, f"sqlite:///{workdir / 'index.db'}")
    written: list[str] = []
    with open_db(url) as db:
        operator_view = build_report(db, suite, node_ids=node_ids)
        investor_view = build_report(db, suite, investor=holders[0].signer.address)
    if reports_dir is not None:
        reports_dir.mkdir(parents=True, exist_ok=True)
        outputs = {
            "operator-report.html": render_html(operator_view),
            "operator-report.csv": render_csv(operator_view),
            "operator-report.json": render_json(operator_view),
            "investor-report.html": render_html(investor_view),
            "investor-report.json": render_json(investor_view),
        }
        for name, text in outputs.items():
            (reports_dir / name).write_text(text)
            written.append(str(reports_dir / name))
        log(f"wrote {len(written)} reports to {reports_dir}/")

    claimable = unvested = held = 0
    everyone = [h.signer.address for h in holders] + [o.signer.address for o in operators]
    for node_id in node_ids:
        share = suite.share(node_id)
        claimable += sum(int(share.functions.claimable(a).call()) for a in everyone)
        unvested += int(share.functions.unvested().call())
        held += int(suite.stablecoin.functions.balanceOf(share.address).call())
    held_router = int(suite.stablecoin.functions.balanceOf(suite.router.address).call())
    dust = held - claimable - unvested
    total_out = claimed + withdrawn + issuer_withdrawal
    if posted.revenue != total_out + held + held_router or dust < 0 or held_router != 0:
        raise EdgeShareError(
            f"accounting mismatch: paid {posted.revenue}, out {total_out}, held {held}"
        )
    lines = [
        NodeLine(
            node_id=t.node_id,
            region=t.region,
            price_per_1k=suite.fetch_node(t.node_id).price_per_1k,
            inferences=t.inferences,
            gross=t.revenue,
            holders=t.holders,
            operator=t.operator_cut,
            fee=t.protocol_fee,
            disputed=t.disputed_revenue,
        )
        for t in operator_view.nodes
    ]
    return DemoSummary(
        chain_id=manifest.chain_id,
        seed=seed,
        nodes=lines,
        investors=investors,
        epochs=epochs,
        reports_settled=posted.settled,
        settle_transactions=len(posted.transactions),
        disputed_report=(suspicious.node_id, suspicious.epoch),
        paid_in=posted.revenue,
        refunded_to_payer=refunded,
        claimed_by_investors=claimed,
        withdrawn_by_operators_and_treasury=withdrawn + issuer_withdrawal - refunded,
        still_claimable=claimable,
        still_unvested=unvested,
        dust=dust,
        reports_written=written,
    )
