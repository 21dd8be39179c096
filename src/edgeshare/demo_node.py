"""The demo's node software, over real HTTP: for a few nodes, an OpenAI-speaking upstream
(``edgeshare.upstream``, a fixture, not a model), a gateway in front of each
(``edgeshare.gateway``), customers calling through the client (``edgeshare.client``), and
an agent per node (``edgeshare.agent``) that meters its gateway, signs and posts each
epoch's report and redeems the vouchers its gateway collected.

Everything runs in this process (uvicorn servers in threads) on the demo's chain; the
demo moves chain time slot by slot and runs each agent once per slot, so the figures
depend only on the seed.
"""

from __future__ import annotations

import random
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from web3 import Web3

from edgeshare.chain import connect
from edgeshare.poster import NONE, fetch_records
from edgeshare.rpc import get_rpc
from edgeshare.signer import Signer
from edgeshare.suite import Suite
from edgeshare.tx import Transactor

if TYPE_CHECKING:  # the servers' libraries load when the live nodes start
    import httpx

    from edgeshare.agent import Agent
    from edgeshare.client import Payer

LIVE_NODES = 3
"""Nodes whose usage is metered from real requests (the last ones registered)."""
LIVE_CUSTOMERS = 2
"""Customers who call every live node through the client."""
LIVE_DEPOSIT = 5 * 10**6
"""What each live customer deposits into its channel to each live node (5 USDC)."""
GRACE = 60
"""Seconds after an epoch's end before an agent reports it."""
PROMPTS = ["What is the capital of Kenya?", "Translate 'good morning' to Bahasa.",
           "Summarise the weather in Lima.", "Write a haiku about GPUs."]  # fmt: skip


@dataclass
class LiveNodes:
    """The running node software of the live nodes, and what it did."""

    node_ids: list[int]
    agents: list[Agent]
    payers: dict[tuple[int, int], Payer]
    """(customer index, node id) -> the customer's client for that node."""
    stack: ExitStack
    http: httpx.Client
    """The customers' HTTP client (its connections are reused between calls)."""
    calls: dict[int, int] = field(default_factory=dict)
    """Requests the customers made, per node."""

    @classmethod
    def start(
        cls,
        w3: Web3,
        suite: Suite,
        node_ids: list[int],
        operators: list[Transactor],
        attestor_keys: list[str],
        customers: list[Transactor],
        workdir: Path,
        scrape_interval: int,
    ) -> LiveNodes:
        """An upstream, a gateway per node, an agent per node (its operator pays and
        redeems, its attestor signs), and each customer's funded channel to each node."""
        import httpx

        from edgeshare.agent import (
            Agent,
            AgentConfig,
            AgentSection,
            LocalReportSigner,
            NodeSection,
        )
        from edgeshare.client import ClientStore, Payer
        from edgeshare.gateway import GatewayConfig, build_app
        from edgeshare.upstream import build_upstream_app, serve_in_thread

        stack = ExitStack()
        try:
            upstream = stack.enter_context(serve_in_thread(build_upstream_app()))
            url = get_rpc(w3).url
            agents, payers = [], {}
            store = ClientStore(workdir / "client.db")
            stack.callback(store.close)
            for node_id, operator, key in zip(node_ids, operators, attestor_keys, strict=True):
                db = workdir / f"gateway-{node_id}.db"
                # each server thread reads the chain through its own connection
                gateway_suite = Suite.load(connect(url), suite.manifest)
                config = GatewayConfig(node_id=node_id, upstream=upstream.url, db_path=db,
                                       refresh_interval=1.0)  # fmt: skip
                gateway = stack.enter_context(serve_in_thread(build_app(config, gateway_suite)))
                agent = Agent(
                    AgentConfig(
                        agent=AgentSection(state=workdir / f"agent-{node_id}.db",
                                           scrape_interval=scrape_interval, grace=GRACE,
                                           redeem_every=scrape_interval * 4, listen=""),
                        node=[NodeSection(id=node_id, metrics_url=f"{gateway.url}/metrics",
                                          preset="edgeshare", gateway_db=db)],
                    ),
                    Suite.load(connect(url), suite.manifest),
                    LocalReportSigner(Signer.from_key(key)),
                    operator.signer,
                )  # fmt: skip
                stack.callback(agent.close)
                agent.run_once(redeem=False)  # the first scrape: the counters' starting values
                agents.append(agent)
                for c, customer in enumerate(customers):
                    payer = Payer(suite, customer.signer, node_id, store=store,
                                  endpoint=f"{gateway.url}/v1")  # fmt: skip
                    payer.ensure_funded(customer, LIVE_DEPOSIT, LIVE_DEPOSIT)
                    payers[(c, node_id)] = payer
        except BaseException:
            stack.close()
            raise
        live = cls(node_ids, agents, payers, stack, httpx.Client())
        stack.callback(live.http.close)
        return live

    def call(self, rng: random.Random) -> None:
        """Each customer sends each live node one to three chat requests, paying each with
        a voucher."""
        from edgeshare.client import ChatMessage, send_chat
        from edgeshare.upstream import MODEL

        for (_c, node_id), payer in sorted(self.payers.items()):
            for _ in range(rng.randrange(1, 4)):
                prompt = rng.choice(PROMPTS)
                messages = [ChatMessage(role="user", content=prompt)]
                send_chat(payer, messages, MODEL, http=self.http)
                self.calls[node_id] = self.calls.get(node_id, 0) + 1

    def run_agents(self) -> None:
        """Each agent once: a scrape of its gateway, every epoch due, a redemption when
        its schedule says so."""
        for agent in self.agents:
            agent.run_once(redeem=False)

    def fetch_settled(self, suite: Suite, epochs: int) -> list[tuple[int, int]]:
        """(node, epoch) of every live report the chain shows settled."""
        keys = [(n, e) for n in self.node_ids for e in range(epochs)]
        return [
            k for k, rec in zip(keys, fetch_records(suite, keys), strict=True) if rec.state != NONE
        ]

    def close(self) -> None:
        """Stop the agents, gateways and upstream."""
        self.stack.close()
