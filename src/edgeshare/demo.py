"""The demo story on a local chain: deploy, register nodes, place shares with investors,
have each node's attestor sign its daily usage, let a payer settle the signed reports in
batches, wait out the challenge window, finalize, and let everyone take what they earned.

Seeded: the same seed gives the same numbers. Every figure is read back from the chain,
and the run ends by checking that every base unit paid in is accounted for.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from web3 import Web3

from edgeshare.attestation import SignedReport, sign
from edgeshare.deploy import build_params, deploy_suite
from edgeshare.errors import EdgeShareError
from edgeshare.poster import post_reports
from edgeshare.signer import Signer
from edgeshare.suite import (
    NodeSpec,
    Suite,
    build_report,
    fetch_domain_of,
    send_claim,
    send_finalize,
    send_increase_time,
    send_mint_mock,
    send_register_node,
    send_transfer_shares,
    send_withdraw,
)
from edgeshare.tx import Transactor

REGIONS = ["Singapore", "Jakarta", "Mumbai", "Sao Paulo", "Lagos"]
USDC = 10**6  # base units of one mock dollar (6 decimals)
SHARES = 10**18  # base units of one share
DAY = 86_400


class NodeLine(BaseModel):
    """One node's totals in the demo."""

    model_config = ConfigDict(extra="forbid")
    node_id: int
    region: str
    price_per_1k: int
    gross: int
    holders: int
    operator: int
    fee: int


class InvestorLine(BaseModel):
    """One investor's claims in the demo."""

    model_config = ConfigDict(extra="forbid")
    address: str
    claimed: int


class DemoSummary(BaseModel):
    """What the demo did, every amount in stablecoin base units."""

    model_config = ConfigDict(extra="forbid")
    chain_id: int
    seed: int
    nodes: list[NodeLine]
    investors: list[InvestorLine]
    reports_settled: int
    settle_transactions: int
    paid_in: int
    claimed_by_holders: int
    withdrawn_by_operators_and_treasury: int
    still_claimable: int
    still_unvested: int
    dust: int


def get_accounts_needed(nodes: int, investors: int) -> int:
    """Dev accounts the demo uses: deployer (also the payer), operators, investors, attestors."""
    return 1 + nodes + investors + nodes


def run_demo(
    w3: Web3,
    keys: list[str],
    *,
    nodes: int = 3,
    investors: int = 4,
    days: int = 3,
    seed: int = 7,
    manifest_path: Path | None = None,
    log: "Callable[[str], None]" = lambda _msg: None,  # noqa: UP037
) -> DemoSummary:
    """Run the demo against a local chain whose dev ``keys`` are funded.

    Args:
        w3: A local chain (its clock is moved forward).
        keys: At least ``get_accounts_needed(nodes, investors)`` funded private keys.
        nodes: Nodes to register (1 to 5).
        investors: Investors who buy shares.
        days: Days of revenue.
        seed: Seeds every random choice.
        manifest_path: Where to write the manifest (default: a temporary file).
        log: Receives one line per step.

    Returns:
        The summary, read back from the chain.
    """
    if not 1 <= nodes <= len(REGIONS):
        raise EdgeShareError(f"the demo registers 1 to {len(REGIONS)} nodes, not {nodes}")
    if len(keys) < get_accounts_needed(nodes, investors):
        raise EdgeShareError("not enough funded accounts for the demo")
    rng = random.Random(seed)
    issuer = Transactor(w3, Signer.from_key(keys[0]))
    operators = [Transactor(w3, Signer.from_key(k)) for k in keys[1 : 1 + nodes]]
    holders = [Transactor(w3, Signer.from_key(k)) for k in keys[1 + nodes : 1 + nodes + investors]]
    attestor_keys = keys[1 + nodes + investors : 1 + 2 * nodes + investors]

    path = manifest_path or Path(tempfile.mkdtemp(prefix="edgeshare-demo-")) / "manifest.json"
    params = build_params(
        None, epoch_length=DAY, unlock_period=DAY, challenge_period=DAY, protocol_fee_bps=500
    )
    manifest = deploy_suite(issuer, params, path).manifest
    suite = Suite.load(w3, manifest)
    log(f"deployed the suite on chain {manifest.chain_id}; manifest {path}")

    node_ids: list[int] = []
    for i, operator in enumerate(operators):
        spec = NodeSpec(
            operator=operator.signer.address,
            attestor=Signer.from_key(attestor_keys[i]).address,
            shares=1_000 * SHARES,
            price_per_1k=rng.randrange(20, 90) * USDC // 100,
            operator_cut_bps=rng.choice([1_000, 1_500, 2_000]),
            region=REGIONS[i],
            metadata_uri=f"ipfs://edgeshare-demo/{REGIONS[i].lower().replace(' ', '-')}",
        )
        node_id = send_register_node(issuer, suite, spec)
        node_ids.append(node_id)
        # the operator keeps 40% and places the rest with investors
        for holder in holders:
            amount = rng.randrange(5, 15) * 10 * SHARES // len(holders) * 4
            send_transfer_shares(operator, suite, node_id, holder.signer.address, amount)
        log(f"registered node {node_id} in {spec.region} at {spec.price_per_1k} per 1k inferences")

    send_mint_mock(issuer, suite, issuer.signer.address, 10**9 * USDC)
    domain = fetch_domain_of(suite)
    separator = domain.get_separator()
    reports: list[SignedReport] = []
    genesis = int(suite.registry.functions.GENESIS().call())
    for day in range(days):
        # each node serves through epoch `day`; once it has ended its attestor signs
        send_increase_time(
            w3, genesis + (day + 1) * DAY - int(w3.eth.get_block("latest")["timestamp"])
        )
        deadline = genesis + (days + 7) * DAY
        for node_id, key in zip(node_ids, attestor_keys, strict=True):
            report = build_report(
                suite, node_id, day, rng.randrange(200_000, 2_000_000),
                rng.randrange(25, 180), rng.randrange(9_500, 10_001), deadline,
            )  # fmt: skip
            reports.append(sign(report, key, domain, separator))
        if day == 0 and len(holders) > 1:
            # a mid-stream trade: what the seller earned stays with the seller
            send_transfer_shares(holders[0], suite, node_ids[0], holders[1].signer.address, SHARES)
    log(f"attestors signed {len(reports)} usage reports ({len(node_ids)} nodes x {days} epochs)")
    posted = post_reports(issuer, suite, reports, domain, batch_size=max(1, len(reports) // 2))
    log(f"settled {posted.settled} reports in {len(posted.transactions)} transactions; "
        f"{posted.revenue} base units paid in")  # fmt: skip
    paid_in = posted.revenue
    send_increase_time(w3, DAY)  # past the challenge window
    for node_id in node_ids:
        send_finalize(issuer, suite, node_id, list(range(days)))
    send_increase_time(w3, DAY)  # past the unlock period
    log("challenge window passed: revenue finalized and fully vested")

    claimed: dict[str, int] = {h.signer.address: 0 for h in holders}
    for holder in holders:
        for node_id in node_ids:
            claimed[holder.signer.address] += send_claim(holder, suite, node_id)
    withdrawn = sum(send_withdraw(op, suite) for op in operators)
    withdrawn += send_withdraw(issuer, suite)  # the deployer is the treasury
    total = sum(claimed.values())
    log(f"investors claimed {total} base units; operators and treasury withdrew {withdrawn}")

    lines: list[NodeLine] = []
    claimable = unvested = 0
    all_holders = [h.signer.address for h in holders] + [o.signer.address for o in operators]
    for node_id in node_ids:
        share = suite.share(node_id)
        claimable += sum(int(share.functions.claimable(a).call()) for a in all_holders)
        unvested += int(share.functions.unvested().call())
        splits = suite.router.events.RevenueSplit().get_logs(
            from_block=0, argument_filters={"node_id": node_id}
        )
        node = suite.fetch_node(node_id)
        lines.append(
            NodeLine(
                node_id=node_id,
                region=node.region,
                price_per_1k=node.price_per_1k,
                gross=sum(int(e["args"]["gross"]) for e in splits),
                holders=sum(int(e["args"]["holders"]) for e in splits),
                operator=sum(int(e["args"]["operator_cut"]) for e in splits),
                fee=sum(int(e["args"]["protocol_fee"]) for e in splits),
            )
        )
    held = sum(int(suite.stablecoin.functions.balanceOf(s.address).call()) for s in
               [suite.router] + [suite.share(n) for n in node_ids])  # fmt: skip
    owed = int(suite.router.functions.total_owed().call())
    total_claimed = sum(claimed.values())
    dust = held - owed - claimable - unvested
    if paid_in != total_claimed + withdrawn + held or dust < 0:
        raise EdgeShareError(f"accounting mismatch: paid {paid_in}, held {held}, dust {dust}")
    return DemoSummary(
        chain_id=manifest.chain_id,
        seed=seed,
        nodes=lines,
        investors=[InvestorLine(address=a, claimed=c) for a, c in claimed.items()],
        reports_settled=posted.settled,
        settle_transactions=len(posted.transactions),
        paid_in=paid_in,
        claimed_by_holders=total_claimed,
        withdrawn_by_operators_and_treasury=withdrawn,
        still_claimable=claimable,
        still_unvested=unvested,
        dust=dust,
    )


from collections.abc import Callable  # noqa: E402  (used in an annotation above)
