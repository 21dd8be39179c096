"""The EdgeShare story on a local chain, end to end, through the same library functions
as the command line.

Deploy; register nodes across regions at different prices; finance two nodes through
offerings (one meets its soft cap and delivers the shares, the other refunds every backer
in full); place shares with investors; two investors mint a basket over five nodes in
five regions; simulate each node's inferences per epoch with a seeded daily pattern in
the region's local time; a few customers pay some nodes directly through payment channels
(a deposit, a signed voucher per batch of requests, the node's operator redeeming each
epoch, one customer closing and withdrawing); attestors sign every node's usage, channel
customers' inferences included; a payer settles in batches, paying only what channels did
not; the guardian disputes one report; the challenge window passes; revenue is finalized
and vests; the basket harvests; investors claim (nodes and baskets in one transaction
each); operators, the treasury and the refunded payer withdraw; the operator and investor
reports are written. The same seed gives the same numbers. The run ends by checking that
every base unit paid in, for reports and into channels, is accounted for.

The last few nodes run the node software over real HTTP (``edgeshare.demo_node``): an
OpenAI-speaking upstream with a gateway in front of each, two customers calling them
through the client and paying per request with vouchers, and an agent per node that
meters its gateway slot by slot, signs and posts each epoch's report and redeems the
vouchers; their usage is what was served, not simulated.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from web3 import Web3

from edgeshare import baskets, offerings, orders
from edgeshare.attestation import SignedReport, sign
from edgeshare.channels import (
    SignedVoucher,
    Voucher,
    fetch_channels,
    fetch_channels_domain,
    redeem_vouchers,
    send_deposit,
    send_request_close,
    send_withdraw_channel,
    sign_voucher,
)
from edgeshare.demo_node import GRACE, LIVE_CUSTOMERS, LIVE_DEPOSIT, LIVE_NODES, LiveNodes
from edgeshare.deploy import MOCK_DECIMALS, MOCK_SYMBOL, build_params, deploy_suite, read_manifest
from edgeshare.errors import EdgeShareError, InputError
from edgeshare.indexer import build_engine, open_db, sync_index
from edgeshare.market import send_claims
from edgeshare.metadata import NodeMetadata, build_data_uri, build_document
from edgeshare.nodes import NodeEntry, register_nodes
from edgeshare.poster import PostResult, finalize_reports, post_reports
from edgeshare.report_html import render_html
from edgeshare.reports import Report, build_report, render_csv, render_json
from edgeshare.roles import fetch_owed, send_dispute, send_withdraw
from edgeshare.signer import Signer
from edgeshare.suite import (
    Suite,
    fetch_domain_of,
    send_increase_time,
    send_mint_mock,
    send_share_transfers,
)
from edgeshare.suite import (
    build_report as build_usage_report,
)
from edgeshare.tx import Transactor
from edgeshare.units import Token

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
DEMO_HARDWARE = [("RTX 4090", "llama-3.1-8b", 40), ("L4", "qwen2.5-7b", 25),
                 ("A100 80GB", "llama-3.1-70b", 12), ("H100", "mixtral-8x7b", 30)]  # fmt: skip
"""(GPU, model, requests per second) of the demo's nodes, in turn."""
MOCK_USDC = Token(MOCK_DECIMALS, MOCK_SYMBOL)
"""The demo's mock stablecoin (a 6-decimal USDC stand-in), as amounts are shown."""
SHARES = 10**18
EPOCH = 2 * 3_600  # 12 epochs make a day
CHALLENGE = 2 * 3_600
UNLOCK = 6 * 3_600
MAX_NODES = 50
CUSTOMERS = 3
"""Customers who pay through channels, each to up to two nodes."""
CHANNEL_DEPOSIT = 25 * USDC
BATCHES_PER_EPOCH = 3
SCRAPE_INTERVAL = EPOCH // 4
"""The live nodes' agents scrape four times an epoch (each a slot of their uptime)."""
LIVE_OPERATOR_FUNDS = 1_000 * USDC
"""What each live node's operator holds to pay the part of its reports channels did not."""
OFFERED = 100_000 * SHARES
"""Shares each of the two financed nodes offers (10% of its supply)."""
OFFER_PRICE = 50_000
"""Stablecoin base units per whole share in the offerings (0.05 USDC)."""
BACKERS = 3
"""Investors who commit to the offerings (and trade; the first two also hold the basket)."""
BASKET_NODES = 5
"""Nodes in the basket, each in its own region."""
BASKET_SHARES = 20_000 * SHARES
"""Shares of each basket node its operator sells to each basket holder."""


class NodeLine(BaseModel):
    """One node's totals in the demo."""

    model_config = ConfigDict(extra="forbid")
    node_id: int
    region: str
    price_per_1k: int
    inferences: int
    channels: int
    """What customers paid it through channels (part of ``gross``)."""
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
    """Every settled report: the payer's and the live nodes' agents'."""
    settle_transactions: int
    """The payer's settlement transactions."""
    live_nodes: list[int]
    """The nodes metered from real requests by their agents."""
    live_requests: int
    """Requests the customers sent through the live nodes' gateways."""
    live_reports: int
    """Reports the live nodes' agents signed and settled."""
    live_paid: int
    """What the live nodes' operators paid for their reports (what channels did not)."""
    disputed_report: tuple[int, int]
    paid_in: int
    """What payers paid for the usage reports (what channels did not pay): the payer's
    settlements and the live nodes' operators' (their agents')."""
    channel_deposits: int
    channel_redeemed: int
    """What the nodes redeemed from the customers' vouchers."""
    withdrawn_by_customers: int
    still_in_channels: int
    refunded_to_payer: int
    offering_raised: int
    """What the successful offering raised (its operator got it less the fee)."""
    offering_refunded: int
    """What the failed offering paid back to its investors, in full."""
    traded: int
    """Shares that changed hands through signed orders (base units)."""
    trade_volume: int
    """What buyers paid for them (the market fee included)."""
    basket: str
    basket_harvested: int
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
    """Keys the demo derives: the funded accounts, one (unfunded) attestor per node, then
    the channel customers and the live nodes' customers (the issuer sends them gas)."""
    return get_accounts_needed(nodes, investors) + nodes + CUSTOMERS + LIVE_CUSTOMERS


def get_live_count(nodes: int) -> int:
    """How many nodes run the node software: up to ``LIVE_NODES``, leaving at least one
    simulated node (the one the guardian disputes)."""
    return min(LIVE_NODES, nodes - 1)


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
    story = _Story.cast(w3, keys, nodes, investors, random.Random(seed), log)
    story.deploy(workdir / "manifest.json")
    story.register_nodes()
    raised, refunded_offering = story.finance_nodes()
    story.place_shares()
    basket = story.build_basket()
    traded = story.trade_shares()
    story.open_channels()
    live = story.start_live_nodes(workdir)
    try:
        reports = story.sign_usage(epochs, live)
    finally:
        live.close()
    live_keys = live.fetch_settled(story.suite, epochs)
    posted = story.settle(reports)
    disputed, refunded = story.dispute_one(reports)
    story.finalize(reports, disputed, live_keys)
    harvested = story.harvest(basket)
    claimed, withdrawn = story.claim_and_withdraw()
    customers_withdrew = story.close_a_channel()
    operator_view, investor_view = story.build_reports(workdir / "index.db")
    written = write_reports(operator_view, investor_view, reports_dir)
    if written:
        log(f"wrote {len(written)} reports to {reports_dir}/")
    paid_in = posted.revenue + story.deposited + story.live_paid
    claimable, unvested, dust, in_channels = story.check_accounting(
        paid_in, claimed + withdrawn + customers_withdrew, basket
    )
    prices = {n.node_id: n.price_per_1k for n in story.suite.fetch_nodes(story.node_ids)}
    lines = [
        NodeLine(
            node_id=t.node_id, region=t.region, price_per_1k=prices[t.node_id],
            inferences=t.inferences, channels=story.redeemed_by_node.get(t.node_id, 0),
            gross=t.revenue, holders=t.holders,
            operator=t.operator_cut, fee=t.protocol_fee, disputed=t.disputed_revenue,
        )
        for t in operator_view.nodes
    ]  # fmt: skip
    return DemoSummary(
        chain_id=story.suite.manifest.chain_id,
        seed=seed,
        nodes=lines,
        investors=investors,
        epochs=epochs,
        reports_settled=posted.settled + len(live_keys),
        settle_transactions=len(posted.transactions),
        live_nodes=live.node_ids,
        live_requests=sum(live.calls.values()),
        live_reports=len(live_keys),
        live_paid=story.live_paid,
        disputed_report=disputed,
        paid_in=posted.revenue + story.live_paid,
        channel_deposits=story.deposited,
        channel_redeemed=sum(story.redeemed_by_node.values()),
        withdrawn_by_customers=customers_withdrew,
        still_in_channels=in_channels,
        refunded_to_payer=refunded,
        offering_raised=raised,
        offering_refunded=refunded_offering,
        traded=traded[0],
        trade_volume=traded[1],
        basket=basket,
        basket_harvested=harvested,
        claimed_by_investors=claimed,
        withdrawn_by_operators_and_treasury=withdrawn - refunded,
        still_claimable=claimable,
        still_unvested=unvested,
        dust=dust,
        reports_written=written,
    )


@dataclass
class _Story:
    """The demo's cast and what each step left for the next."""

    w3: Web3
    rng: random.Random
    log: Callable[[str], None]
    issuer: Transactor
    """Deploys and registers; also the payer and the guardian."""
    operators: list[Transactor]
    holders: list[Transactor]
    attestor_keys: list[str]
    suite: Suite = field(init=False)
    node_ids: list[int] = field(default_factory=list)
    capacity: list[int] = field(default_factory=list)
    """Inferences per hour at peak, per node."""
    offsets: list[int] = field(default_factory=list)
    """UTC offset of each node's region, hours."""
    prices: list[int] = field(default_factory=list)
    """Each node's price per 1k inferences (it does not change in the story)."""
    customer_keys: list[str] = field(default_factory=list)
    channels: list[tuple[int, int]] = field(default_factory=list)
    """(customer index, node index) of each channel."""
    cumulative: dict[tuple[int, int], int] = field(default_factory=dict)
    """What each channel's customer owes its node so far (its latest voucher)."""
    channel_inferences: dict[tuple[int, int], int] = field(default_factory=dict)
    """Inferences channel customers used, per (node index, epoch)."""
    redeemed_by_node: dict[int, int] = field(default_factory=dict)
    deposited: int = 0
    live_keys: list[str] = field(default_factory=list)
    """The live nodes' customers."""
    live_funds: int = 0
    """What the live nodes' operators held when their node software started."""
    live_paid: int = 0
    """What the live nodes' operators paid for their reports (only reports cost them
    stablecoin while the node software runs)."""

    @property
    def live_count(self) -> int:
        """Nodes that run the node software (the last ones)."""
        return get_live_count(len(self.node_ids))

    @property
    def simulated(self) -> list[int]:
        """Indices of the nodes whose usage is simulated."""
        return list(range(len(self.node_ids) - self.live_count))

    @classmethod
    def cast(
        cls,
        w3: Web3,
        keys: list[str],
        nodes: int,
        investors: int,
        rng: random.Random,
        log: Callable[[str], None],
    ) -> _Story:
        """Who plays which role, from the dev keys in order."""

        def actors(part: list[str]) -> list[Transactor]:
            return [Transactor(w3, Signer.from_key(k)) for k in part]

        return cls(
            w3, rng, log,
            issuer=Transactor(w3, Signer.from_key(keys[0])),
            operators=actors(keys[1 : 1 + nodes]),
            holders=actors(keys[1 + nodes : 1 + nodes + investors]),
            attestor_keys=keys[1 + nodes + investors : 1 + 2 * nodes + investors],
            customer_keys=keys[1 + 2 * nodes + investors : 1 + 2 * nodes + investors + CUSTOMERS],
            live_keys=keys[1 + 2 * nodes + investors + CUSTOMERS :][:LIVE_CUSTOMERS],
        )  # fmt: skip

    def deploy(self, manifest_path: Path) -> None:
        """The issuer deploys the suite."""
        params = build_params(None, epoch_length=EPOCH, unlock_period=UNLOCK,
                              challenge_period=CHALLENGE, protocol_fee_bps=500)  # fmt: skip
        manifest = deploy_suite(self.issuer, params, manifest_path).manifest
        self.suite = Suite.load(self.w3, manifest)
        self.log(f"deployed the suite on chain {manifest.chain_id}")

    def register_nodes(self) -> None:
        """One node per operator, across the regions, at random prices and cuts."""
        rng, entries = self.rng, []
        for i, operator in enumerate(self.operators):
            city, offset = REGIONS[i % len(REGIONS)]
            entries.append(NodeEntry(
                operator=operator.signer.address,
                attestor=Signer.from_key(self.attestor_keys[i]).address,
                shares=1_000_000 * SHARES,
                price_per_1k=rng.randrange(10, 90) * USDC // 100,
                operator_cut_bps=rng.choice([1_000, 1_500, 2_000]),
                region=city,
                metadata_uri=self.describe(i),
                external_id=f"{city.lower().replace(' ', '-')}-gpu-{i // len(REGIONS) + 1:02d}",
            ))  # fmt: skip
            self.prices.append(entries[-1].price_per_1k)
            self.capacity.append(rng.randrange(2_000, 20_000))
            self.offsets.append(offset)
        self.node_ids = [r.node_id for r in register_nodes(self.issuer, self.suite, entries)]
        regions = len({e.region for e in entries})
        self.log(f"registered {len(self.node_ids)} nodes in {regions} regions")

    def describe(self, i: int) -> str:
        """Node ``i``'s metadata document as a ``data:`` URI with its content hash: where a
        developer calls it (a reserved, unreachable ``.invalid`` host), its model and GPU."""
        gpu, model, rps = DEMO_HARDWARE[i % len(DEMO_HARDWARE)]
        document = build_document(
            NodeMetadata(endpoint=f"https://node-{i + 1}.demo.invalid/v1", models=[model],
                         gpu=gpu, capacity_rps=rps)
        )  # fmt: skip
        return build_data_uri(document)

    def place_shares(self) -> None:
        """Each operator keeps 30% and places the rest with investors in random lots."""
        placed = 0
        for node_id, operator in zip(self.node_ids, self.operators, strict=True):
            k = min(len(self.holders), self.rng.randrange(3, 12))
            buyers = self.rng.sample(self.holders, k=k)
            weights = [self.rng.randrange(1, 10) for _ in buyers]
            lots = [
                (b.signer.address, 700_000 * SHARES * w // sum(weights))
                for b, w in zip(buyers, weights, strict=True)
            ]
            send_share_transfers(operator, self.suite, node_id, lots)
            placed += len(lots)
        self.log(f"operators placed shares with investors in {placed} transfers")

    def finance_nodes(self) -> tuple[int, int]:
        """The first two operators each offer 10% of their node for a quarter of an epoch
        (before any usage): three backers commit enough for the first to reach its soft
        cap, not the second. After the end the first delivers the shares and pays its
        operator (less the fee); the second refunds every backer in full and returns the
        shares. Returns (raised, refunded); (0, 0) with fewer than two nodes."""
        suite, backers = self.suite, self.holders[:BACKERS]
        if len(self.node_ids) < 2:
            return 0, 0
        commitments = [amount * USDC for amount in (1_000, 800, 600)][: len(backers)]
        total = sum(commitments)
        for backer in backers:
            send_mint_mock(self.issuer, suite, backer.signer.address, 10_000 * USDC)
        genesis = int(suite.registry.call("GENESIS"))
        end = genesis + EPOCH // 4  # before the first channel use, at half an epoch
        hard_cap = OFFERED * OFFER_PRICE // SHARES  # 5,000 USDC: every share sold
        made = []
        for i, soft_cap in ((0, total * 3 // 4), (1, total + 1_000 * USDC)):
            now = int(self.w3.eth.get_block("latest")["timestamp"])
            action = offerings.send_create_offering(
                self.operators[i], suite, self.node_ids[i], OFFERED, OFFER_PRICE, soft_cap,
                hard_cap, now, end,
            )  # fmt: skip
            made.append(str(action.details["offering"]))
        for backer, amount in zip(backers, commitments, strict=True):
            for offering in made:
                offerings.send_commit(backer, suite, offering, amount)
        now = int(self.w3.eth.get_block("latest")["timestamp"])
        send_increase_time(self.w3, end - now)
        succeeded, failed = made
        for backer in backers:
            offerings.send_claim_shares(backer, suite, succeeded)
            offerings.send_refund(backer, suite, failed)
        for offering in made:
            offerings.send_finish(self.issuer, suite, offering)
        views = {v.address: v for v in offerings.fetch_offerings(suite)}
        raised, refunded = views[succeeded].total_committed, views[failed].total_refunded
        self.log(
            f"node {self.node_ids[0]} raised {MOCK_USDC.format(raised)} in its offering "
            f"(soft cap met: shares delivered to {len(backers)} backers); node "
            f"{self.node_ids[1]}'s offering missed its soft cap and refunded "
            f"{MOCK_USDC.format(refunded)} in full"
        )
        return raised, refunded

    def build_basket(self) -> str:
        """A basket over five nodes in five regions: the first two backers buy shares of
        each from its operator and mint units; the basket earns all five nodes' revenue."""
        suite, chosen, seen = self.suite, [], set()
        for index, node_id in enumerate(self.node_ids):
            region = REGIONS[index % len(REGIONS)][0]
            if region not in seen and index >= 2:  # not the two offered nodes
                seen.add(region)
                chosen.append((index, node_id))
            if len(chosen) == BASKET_NODES:
                break
        holders = self.holders[:2]
        if len(chosen) < BASKET_NODES or len(holders) < 2:
            return ""
        for index, node_id in chosen:
            send_share_transfers(
                self.operators[index], suite, node_id,
                [(h.signer.address, BASKET_SHARES) for h in holders],
            )  # fmt: skip
        components = baskets.build_components(suite, [(n, SHARES) for _, n in chosen])
        action = baskets.send_create_basket(
            holders[0], suite, "EdgeShare Five Regions", "ESB5", components
        )
        address = str(action.details["basket"])
        for holder, units in zip(holders, (BASKET_SHARES, BASKET_SHARES // 2), strict=True):
            baskets.send_mint(holder, suite, address, units)
        regions = ", ".join(REGIONS[i % len(REGIONS)][0] for i, _ in chosen)
        self.log(f"two investors minted basket ESB5 ({address}) over nodes in {regions}")
        return address

    def trade_shares(self) -> tuple[int, int]:
        """Backers trade the shares the offering delivered through signed orders: the
        first signs a sell order (with a permit, so it approves nothing) that the second
        fills in two parts; the third signs a buy order that the first fills. Returns
        (shares traded, stablecoin paid)."""
        backers = self.holders[:BACKERS]
        if len(backers) < 3 or len(self.node_ids) < 2:
            return 0, 0
        suite, node_id = self.suite, self.node_ids[0]
        token = suite.fetch_share_tokens([node_id])[0]
        seller, buyer, bidder = backers
        lot = 4_000 * SHARES
        sell = orders.build_order(suite, seller.signer.address, token, True, lot,
                                  OFFER_PRICE * 6 // 5, min_fill=1_000 * SHARES)  # fmt: skip
        _, offer = orders.sign_market_order(
            suite, seller.signer.export_key(), sell, with_permit=True
        )
        bid = orders.build_order(suite, bidder.signer.address, token, False, 2_000 * SHARES,
                                 OFFER_PRICE * 11 // 10)  # fmt: skip
        _, wanted = orders.sign_market_order(suite, bidder.signer.export_key(), bid)
        orders.send_approve_market(bidder, suite, suite.stablecoin, 10**12, "approve the market")
        shares = paid = 0
        for taker, signed, amount in ((buyer, offer, 1_500 * SHARES), (buyer, offer, None),
                                      (seller, wanted, None)):  # fmt: skip
            action = orders.send_fill(taker, suite, signed, amount)
            shares += int(action.details["amount"])
            paid += int(action.details["cost"])
        self.log(
            f"backers traded {shares // SHARES:,} shares of node {node_id} through signed orders "
            f"(one sell order filled in two parts, one buy order) for {MOCK_USDC.format(paid)}"
        )
        return shares, paid

    def harvest(self, basket: str) -> int:
        """Anyone (the issuer) harvests the basket: its holders can then claim."""
        if not basket:
            return 0
        amount = int(baskets.send_harvest(self.issuer, self.suite, basket).details["amount"])
        self.log(f"the basket harvested {MOCK_USDC.format(amount)} of its nodes' revenue")
        return amount

    def start_live_nodes(self, workdir: Path) -> LiveNodes:
        """The live nodes' upstream, gateways and agents; their customers fund a channel to
        each, and their operators hold stablecoin to pay for their reports."""
        live = range(len(self.node_ids) - self.live_count, len(self.node_ids))
        customers = [Transactor(self.w3, Signer.from_key(k)) for k in self.live_keys]
        for customer in customers:
            self.issuer.send({"to": customer.signer.address, "value": 10**18},
                             "send a customer gas")  # fmt: skip
            send_mint_mock(self.issuer, self.suite, customer.signer.address,
                           self.live_count * LIVE_DEPOSIT)  # fmt: skip
        for i in live:
            send_mint_mock(self.issuer, self.suite, self.operators[i].signer.address,
                           LIVE_OPERATOR_FUNDS)  # fmt: skip
        self.live_funds = self._live_operator_funds(live)
        nodes = LiveNodes.start(
            self.w3, self.suite, [self.node_ids[i] for i in live],
            [self.operators[i] for i in live], [self.attestor_keys[i] for i in live],
            customers if live else [], workdir / "node-software", SCRAPE_INTERVAL,
        )  # fmt: skip
        self.deposited += len(customers) * len(live) * LIVE_DEPOSIT
        if live:
            self.log(
                f"nodes {', '.join(str(n) for n in nodes.node_ids)} run the node software: a "
                f"gateway in front of an OpenAI-speaking server each, an agent metering it; "
                f"{len(customers)} customers deposited {MOCK_USDC.format(LIVE_DEPOSIT)} into a "
                "channel to each"
            )
        return nodes

    def _live_operator_funds(self, live: range) -> int:
        coin = self.suite.stablecoin
        return sum(int(coin.call("balanceOf", self.operators[i].signer.address)) for i in live)

    def finish_live_nodes(self, live: LiveNodes, epochs: int) -> None:
        """After the last epoch's grace, each agent reports it and redeems what is left;
        note what the operators paid and what their channels redeemed."""
        if not live.node_ids:
            return
        for agent in live.agents:
            # the last epoch's report; its vouchers were redeemed in its last slot (a
            # redemption now would credit the next epoch, which has no report)
            agent.run_once(redeem=False)
        indices = range(len(self.node_ids) - self.live_count, len(self.node_ids))
        self.live_paid = self.live_funds - self._live_operator_funds(indices)
        customers = [Signer.from_key(k).address for k in self.live_keys]
        for node_id in live.node_ids:
            records = fetch_channels(self.suite, [(c, node_id) for c in customers])
            self.redeemed_by_node[node_id] = sum(r.redeemed for r in records)
        settled = live.fetch_settled(self.suite, epochs)
        self.log(
            f"customers sent {sum(live.calls.values()):,} paid requests through the live "
            f"nodes' gateways; their agents signed and settled {len(settled)} reports from "
            f"the gateways' metrics (the operators paid {MOCK_USDC.format(self.live_paid)} "
            "that vouchers did not) and redeemed "
            f"{MOCK_USDC.format(sum(self.redeemed_by_node[n] for n in live.node_ids))} of "
            "vouchers"
        )

    def sign_usage(self, epochs: int, live: LiveNodes) -> list[SignedReport]:
        """Move the clock through ``epochs`` epochs, slot by slot: the live nodes serve
        their customers and their agents meter and report them; mid-epoch the channel
        customers of the other nodes pay; then each simulated node's attestor signs its
        usage."""
        suite = self.suite
        send_mint_mock(self.issuer, suite, self.issuer.signer.address, 10**12 * USDC)
        genesis = int(suite.registry.call("GENESIS"))
        slots = EPOCH // SCRAPE_INTERVAL
        for epoch in range(epochs):
            for slot in range(slots):
                at = genesis + epoch * EPOCH + slot * SCRAPE_INTERVAL + SCRAPE_INTERVAL // 2
                if slot == slots // 2:
                    self.use_channels(epoch, at)
                now = int(self.w3.eth.get_block("latest")["timestamp"])
                if at > now:
                    send_increase_time(self.w3, at - now)
                if live.node_ids:
                    live.call(self.rng)
                    live.run_agents()
        now = int(self.w3.eth.get_block("latest")["timestamp"])
        send_increase_time(self.w3, genesis + epochs * EPOCH + GRACE - now)  # all have ended
        self.finish_live_nodes(live, epochs)
        domain = fetch_domain_of(suite)
        separator = domain.get_separator()
        deadline = genesis + (epochs + 30) * EPOCH
        reports: list[SignedReport] = []
        for index in self.simulated:
            node_id = self.node_ids[index]
            base_latency = self.rng.randrange(25, 120)
            for epoch in range(epochs):
                inferences = simulate_inferences(
                    self.rng, self.capacity[index], epoch, self.offsets[index]
                ) + self.channel_inferences.get((index, epoch), 0)
                report = build_usage_report(
                    suite, node_id, epoch, inferences,
                    base_latency + self.rng.randrange(0, 25), self.rng.randrange(9_900, 10_001),
                    deadline,
                )  # fmt: skip
                reports.append(sign(report, self.attestor_keys[index], domain, separator))
        nodes = len(self.simulated)
        self.log(f"attestors signed {len(reports)} usage reports ({nodes} nodes x {epochs} epochs)")
        return reports

    def open_channels(self) -> None:
        """Each customer gets gas and stablecoin and deposits into channels to up to two
        nodes."""
        customers = [Transactor(self.w3, Signer.from_key(k)) for k in self.customer_keys]
        for c, customer in enumerate(customers):
            address = customer.signer.address
            self.issuer.send({"to": address, "value": 10**18}, "send a customer gas")
            picks = self.rng.sample(self.simulated, k=min(2, len(self.simulated)))
            send_mint_mock(self.issuer, self.suite, address, len(picks) * CHANNEL_DEPOSIT)
            for n in picks:
                send_deposit(customer, self.suite, self.node_ids[n], CHANNEL_DEPOSIT)
                self.channels.append((c, n))
                self.cumulative[(c, n)] = 0
                self.deposited += CHANNEL_DEPOSIT
        self.log(
            f"{len(customers)} customers deposited {MOCK_USDC.format(self.deposited)} into "
            f"{len(self.channels)} payment channels"
        )

    def use_channels(self, epoch: int, at: int) -> None:
        """Mid-epoch: channel customers call their nodes, signing a voucher per batch of
        requests; each node's operator redeems the latest ones before the epoch ends."""
        now = int(self.w3.eth.get_block("latest")["timestamp"])
        if at > now:
            send_increase_time(self.w3, at - now)
        domain = fetch_channels_domain(self.suite)
        separator = domain.get_separator()
        latest: dict[int, list[SignedVoucher]] = {}
        for c, n in self.channels:
            node_id = self.node_ids[n]
            price = self.prices[n]
            for _batch in range(BATCHES_PER_EPOCH):
                used = self.rng.randrange(50, 400)
                self.channel_inferences[(n, epoch)] = (
                    self.channel_inferences.get((n, epoch), 0) + used
                )
                self.cumulative[(c, n)] += used * price // 1_000
            customer = Signer.from_key(self.customer_keys[c]).address
            owed = self.cumulative[(c, n)]
            voucher = Voucher(
                node_id=node_id, customer=customer, generation=0, cumulative=owed,
                deadline=at + 30 * EPOCH,
            )  # fmt: skip
            signed = sign_voucher(voucher, self.customer_keys[c], domain, separator)
            latest.setdefault(n, []).append(signed)
        for n, vouchers in sorted(latest.items()):
            result = redeem_vouchers(self.operators[n], self.suite, vouchers, domain)
            self.redeemed_by_node[self.node_ids[n]] = (
                self.redeemed_by_node.get(self.node_ids[n], 0) + result.amount
            )

    def close_a_channel(self) -> int:
        """The first customer closes its first channel, waits out the grace, withdraws
        the rest; returns what it withdrew (0 without channels)."""
        if not self.channels:
            return 0
        c, n = self.channels[0]
        customer = Transactor(self.w3, Signer.from_key(self.customer_keys[c]))
        node_id = self.node_ids[n]
        send_request_close(customer, self.suite, node_id)
        send_increase_time(self.w3, int(self.suite.channels.call("CLOSE_GRACE")))
        amount = int(send_withdraw_channel(customer, self.suite, node_id).details["amount"])
        self.log(
            f"a customer closed its channel to node {node_id} and, after the grace period, "
            f"withdrew the unredeemed {MOCK_USDC.format(amount)}"
        )
        return amount

    def settle(self, reports: list[SignedReport]) -> PostResult:
        """The payer settles every report, in batches of 50."""
        posted = post_reports(self.issuer, self.suite, reports, fetch_domain_of(self.suite),
                              batch_size=50)  # fmt: skip
        self.log(
            f"a payer settled them in {len(posted.transactions)} transactions: "
            f"{MOCK_USDC.format(posted.revenue)}"
        )
        return posted

    def dispute_one(self, reports: list[SignedReport]) -> tuple[tuple[int, int], int]:
        """The guardian disputes the busiest report; returns it and the refund."""
        suspicious = max(reports, key=lambda r: (r.inferences, r.node_id, r.epoch))
        action = send_dispute(self.issuer, self.suite, suspicious.node_id, suspicious.epoch)
        refunded = int(action.details["revenue"])
        self.log(
            f"guardian disputed node {suspicious.node_id} epoch {suspicious.epoch}: "
            f"{MOCK_USDC.format(refunded)} refunded"
        )
        return (suspicious.node_id, suspicious.epoch), refunded

    def finalize(
        self, reports: list[SignedReport], disputed: tuple[int, int], live: list[tuple[int, int]]
    ) -> None:
        """After the challenge window every other report (the live nodes' too) is
        finalized; then it vests."""
        send_increase_time(self.w3, CHALLENGE)
        keys = [(r.node_id, r.epoch) for r in reports if (r.node_id, r.epoch) != disputed]
        keys += [k for k in live if k != disputed]
        finalize_reports(self.issuer, self.suite, keys)
        send_increase_time(self.w3, UNLOCK)
        self.log("the challenge window passed; revenue was finalized and has fully vested")

    def claim_and_withdraw(self) -> tuple[int, int]:
        """Investors claim; operators and the issuer (treasury fees, the payer's refund)
        withdraw. Returns (claimed, withdrawn)."""
        claimed = sum(c.amount for h in self.holders for c in send_claims(h, self.suite))
        owed = [
            t for t in [*self.operators, self.issuer] if fetch_owed(self.suite, t.signer.address)
        ]
        withdrawn = sum(int(send_withdraw(t, self.suite).details["amount"]) for t in owed)
        self.log(
            f"investors claimed {MOCK_USDC.format(claimed)}; operators, the treasury and the "
            f"refunded payer withdrew {MOCK_USDC.format(withdrawn)} (`edgeshare withdraw`'s "
            "library call)"
        )
        return claimed, withdrawn

    def build_reports(self, db_path: Path) -> tuple[Report, Report]:
        """Index the chain; the operators' view of every node and the first investor's."""
        url, _ = sync_index(self.suite, f"sqlite:///{db_path}")
        with open_db(url) as db:
            operator_view = build_report(db, self.suite, node_ids=self.node_ids)
            investor_view = build_report(db, self.suite, investor=self.holders[0].signer.address)
        return operator_view, investor_view

    def check_accounting(
        self, paid_in: int, paid_out: int, basket: str
    ) -> tuple[int, int, int, int]:
        """Every base unit paid in (for reports and into channels) is paid out or held for
        someone; returns (claimable, unvested, dust) still in the share tokens and the
        basket, and what is still unredeemed in the channels. The basket is a holder of
        its nodes' shares and holds what it harvested for its own holders."""
        suite = self.suite
        everyone = [a.signer.address for a in self.holders + self.operators]
        offered = [str(v.address) for v in offerings.fetch_offerings(suite)]
        tokens = [suite.share(n) for n in self.node_ids]
        share_holders = everyone + offered + ([basket] if basket else [])
        reads = [("claimable", a) for a in share_holders] + [("unvested",)]
        revenue_tokens = tokens + ([suite.reader.contract("Basket", basket)] if basket else [])
        claimable = unvested = 0
        for values in suite.reader.each(tokens, *reads):
            claimable += sum(values[:-1])
            unvested += values[-1]
        if basket:
            holding = suite.reader.contract("Basket", basket)
            values = suite.reader.each([holding], *[("claimable", a) for a in everyone],
                                       ("unvested",))[0]  # fmt: skip
            claimable += sum(values[:-1])
            unvested += values[-1]
        holders = [*revenue_tokens, suite.router, suite.channels]
        balances = suite.reader.each(
            [suite.stablecoin], *[("balanceOf", s.address) for s in holders]
        )[0]
        held, held_router, in_channels = sum(balances[:-2]), balances[-2], balances[-1]
        dust = held - claimable - unvested
        unredeemed = int(suite.channels.call("total_unredeemed"))
        if (
            paid_in != paid_out + held + held_router + in_channels
            or dust < 0
            or held_router != 0
            or in_channels != unredeemed
        ):
            raise EdgeShareError(
                f"accounting mismatch: paid {paid_in}, out {paid_out}, held {held}, "
                f"in channels {in_channels} (unredeemed {unredeemed})"
            )
        return claimable, unvested, dust, in_channels


def write_reports(
    operator_view: Report, investor_view: Report, reports_dir: Path | None
) -> list[str]:
    """Write the operator and investor reports as HTML, CSV and JSON; returns the paths."""
    if reports_dir is None:
        return []
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
    return [str(reports_dir / name) for name in outputs]


# ------------------------------------------------------------------ the web app

WEB_OFFERED = 50_000 * SHARES
"""What the open offering left for the web app sells (5% of a node)."""
WEB_OFFERING_DAYS = 7


@dataclass(frozen=True)
class WebStage:
    """What ``stage_web_demo`` left on the chain for the web app's pages."""

    manifest: Path
    db_url: str
    offering: str
    """The open offering ("" with fewer than three nodes)."""
    orders: list[str] = field(default_factory=list)
    """The hashes of the open orders stored in the web API's book."""


def stage_web_demo(
    w3: Web3,
    keys: list[str],
    *,
    nodes: int,
    investors: int,
    workdir: Path,
    log: Callable[[str], None] = lambda _msg: None,
) -> WebStage:
    """After the story (``run_demo`` on the same chain and ``workdir``): something for each
    page of the web app. An operator opens an offering for a week (one investor commits),
    and investors sign a sell order (with a permit) and a buy order, kept in the web API's
    book (checked and stored through ``edgeshare.web.book``, as a browser's would be). The
    customers' payment channels are the story's.
    """
    from edgeshare.web import book  # the book's table lives in the index database

    manifest_path = workdir / "manifest.json"
    found = read_manifest(manifest_path)
    if found is None:
        raise EdgeShareError(f"no manifest at {manifest_path}: run the demo's story first")
    suite = Suite.load(w3, found)
    issuer = Transactor(w3, Signer.from_key(keys[0]))
    operators = [Transactor(w3, Signer.from_key(k)) for k in keys[1 : 1 + nodes]]
    holders = [Transactor(w3, Signer.from_key(k)) for k in keys[1 + nodes : 1 + nodes + investors]]
    offering = ""
    if nodes >= 3:
        now = int(w3.eth.get_block("latest")["timestamp"])
        hard_cap = WEB_OFFERED * OFFER_PRICE // SHARES
        action = offerings.send_create_offering(
            operators[2], suite, 3, WEB_OFFERED, OFFER_PRICE, hard_cap // 2, hard_cap, now,
            now + WEB_OFFERING_DAYS * 86_400,
        )  # fmt: skip
        offering = str(action.details["offering"])
        send_mint_mock(issuer, suite, holders[0].signer.address, hard_cap // 5)
        offerings.send_commit(holders[0], suite, offering, hard_cap // 5)
        log(f"node 3's operator opened an offering for {WEB_OFFERING_DAYS} days ({offering})")
    token = suite.fetch_share_tokens([1])[0]
    balances = [int(suite.share(1).call("balanceOf", h.signer.address)) for h in holders]
    seller = holders[max(range(len(holders)), key=lambda i: balances[i])]
    buyer = holders[-1]
    signed = []
    lot = max(balances) // 4 // SHARES * SHARES
    if lot:
        sell = orders.build_order(suite, seller.signer.address, token, True, lot,
                                  OFFER_PRICE * 13 // 10)  # fmt: skip
        signed.append(orders.sign_market_order(suite, seller.signer.export_key(), sell, True)[1])
    bid = 1_000 * SHARES
    send_mint_mock(issuer, suite, buyer.signer.address, bid * OFFER_PRICE // SHARES)
    orders.send_approve_market(buyer, suite, suite.stablecoin, bid * OFFER_PRICE // SHARES,
                               "approve the market")  # fmt: skip
    wanted = orders.build_order(suite, buyer.signer.address, token, False, bid, OFFER_PRICE)
    signed.append(orders.sign_market_order(suite, buyer.signer.export_key(), wanted)[1])
    db_url = f"sqlite:///{workdir / 'index.db'}"
    domain = orders.fetch_market_domain(suite)
    engine = build_engine(db_url)
    try:
        book.create_book(engine)
        with engine.connect() as db:
            for order in signed:
                book.check_submission(suite, order, domain)
                book.store_order(db, order, domain)
    finally:
        engine.dispose()
    hashes = ["0x" + orders.get_order_digest(o, domain).hex() for o in signed]
    log(f"investors signed {len(signed)} orders for node 1's shares, kept in the web app's book")
    return WebStage(manifest_path, db_url, offering, hashes)
