"""The client on anvil: five nodes with prices, metadata and attested latency; real
gateways (``edgeshare.gateway``) in front of the test upstream for two of them, served by
uvicorn in threads; customers who pick a node, fund a channel and call it through httpx,
the official ``openai`` package and ``edgeshare call``.

Node 1 costs 0.333333 USDC per 1k requests (333.333 base units a request), so what is due
rounds up: 334, 667, 1000, 1334, ... A payer must sign exactly that, across restarts, a
lost database (resynced from the gateway's 402) and requests the gateway takes back.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from edgeshare import client
from edgeshare.attestation import sign
from edgeshare.chain import LocalChain, build_dev_keys, connect, get_free_port
from edgeshare.channels import fetch_channel, send_authorize_signer
from edgeshare.client import (
    ChatMessage,
    NoNodeMatches,
    PaidState,
    Payer,
    PaymentRefused,
    VoucherAuth,
    connect_payer,
    fetch_seen_latency,
    get_due,
    openai_http_client,
    parse_payment_required,
    pick_node,
    send_chat,
)
from edgeshare.deploy import build_params, deploy_suite
from edgeshare.errors import InputError
from edgeshare.gateway import Gateway, GatewayConfig, build_app
from edgeshare.indexer import open_db, sync_index
from edgeshare.metadata import NodeMetadata
from edgeshare.roles import advance_time, build_metadata_uri, send_set_metadata
from edgeshare.signer import Signer
from edgeshare.suite import (
    NodeSpec,
    Suite,
    build_report,
    fetch_domain_of,
    send_mint_mock,
    send_register_node,
    send_settle,
)
from edgeshare.tx import Transactor
from tests.inproc import run_main_streams
from tests.upstream import MODEL, UpstreamControl, build_upstream_app, serve_in_thread

EPOCH = 3_600
USDC = 10**6
ACCOUNTS = 60
OWNER, OPERATOR, ATTESTOR, PAYER = range(4)
PRICE = 333_333
"""Node 1's price per 1,000 requests."""
# node: (region, price per 1k, attested p50 ms, metadata: "gateway", "closed", "other", None)
NODES = {
    1: ("Nairobi", PRICE, 40, "gateway"),
    2: ("Nairobi", 300_000, 120, "gateway"),
    3: ("Nairobi", 200_000, 30, "closed"),  # cheapest, but nothing listens at its endpoint
    4: ("Nairobi", 250_000, 35, "other"),  # serves another model
    5: ("Accra", 100_000, 20, None),  # no metadata at all
}
HELLO = [ChatMessage(role="user", content="hello there")]


@dataclass
class Customer:
    key: str
    signer: Signer
    tx: Transactor

    @property
    def address(self) -> str:
        return self.signer.address


@dataclass
class World:
    chain: LocalChain
    suite: Suite
    manifest: Path
    keys: list[str]
    owner: Transactor
    gateways: dict[int, Gateway]
    urls: dict[int, str]
    """Each node's endpoint, as in its metadata (``.../v1``)."""
    control: UpstreamControl
    index: str
    root: Path
    next_key: Iterator[int]

    def new_customer(self, usdc: int = 10) -> Customer:
        """A dev account holding ``usdc`` USDC and no channel."""
        key = self.keys[next(self.next_key)]
        signer = Signer.from_key(key)
        send_mint_mock(self.owner, self.suite, signer.address, usdc * USDC)
        return Customer(key, signer, Transactor(self.suite.w3, signer))

    def payer(self, customer: Customer, store: Path, node: int = 1, **options: Any) -> Payer:
        return Payer(
            self.suite, customer.signer, node, store=store, endpoint=self.urls[node], **options
        )

    def used(self, customer: Customer, node: int = 1) -> tuple[int, int]:
        """(requests charged, best voucher's cumulative) at node's gateway."""
        use = self.gateways[node].usage.get((customer.address.lower(), 0))
        return (use.units, use.cumulative) if use else (0, 0)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    keys = build_dev_keys(ACCOUNTS)
    root = tmp_path_factory.mktemp("client")
    with LocalChain("anvil", accounts=ACCOUNTS) as chain:
        w3 = connect(chain.url)
        owner = Transactor(w3, Signer.from_key(keys[OWNER]))
        params = build_params(None, epoch_length=EPOCH, challenge_period=3_600, unlock_period=EPOCH)
        manifest = root / "manifest.json"
        suite = Suite.load(w3, deploy_suite(owner, params, manifest).manifest)
        operator = Transactor(w3, Signer.from_key(keys[OPERATOR]))
        for region, price, _, _ in NODES.values():
            spec = NodeSpec(
                operator=operator.signer.address,
                attestor=Signer.from_key(keys[ATTESTOR]).address,
                shares=10**21,
                price_per_1k=price,
                operator_cut_bps=1_000,
                region=region,
            )
            send_register_node(owner, suite, spec)
        control = UpstreamControl()
        with (
            serve_in_thread(build_upstream_app(control)) as upstream,
            _serve_gateway(chain, suite, 1, upstream.url, root) as first,
            _serve_gateway(chain, suite, 2, upstream.url, root) as second,
        ):
            urls = {1: first[1] + "/v1", 2: second[1] + "/v1"}
            urls[3] = f"http://127.0.0.1:{get_free_port()}/v1"
            urls[4] = urls[1]
            for node, (_, _, _, kind) in NODES.items():
                if kind is None:
                    continue
                models = ["other-model"] if kind == "other" else [MODEL]
                meta = NodeMetadata(endpoint=urls[node], models=models)
                send_set_metadata(operator, suite, node, build_metadata_uri(suite, None, meta))
            _attest_usage(suite, owner, keys)
            index = f"sqlite:///{root / 'index.db'}"
            sync_index(suite, index)
            yield World(
                chain=chain,
                suite=suite,
                manifest=manifest,
                keys=keys,
                owner=owner,
                gateways={1: first[0], 2: second[0]},
                urls=urls,
                control=control,
                index=index,
                root=root,
                next_key=itertools.count(4),
            )


@pytest.fixture(autouse=True)
def healthy_upstream(world: World) -> None:
    world.control.reset()


@contextmanager
def _serve_gateway(
    chain: LocalChain, suite: Suite, node: int, upstream: str, root: Path
) -> Iterator[tuple[Gateway, str]]:
    """A gateway for ``node`` with a Suite (an RPC connection) of its own."""
    config = GatewayConfig(
        node_id=node,
        upstream=upstream,
        db_path=root / f"gateway-{node}.db",
        refresh_interval=0.5,
        refresh_cooldown=0.0,
    )
    app = build_app(config, Suite.load(connect(chain.url), suite.manifest))
    gateway: Gateway = app.state.gateway
    try:
        with serve_in_thread(app) as server:
            yield gateway, server.url
    finally:
        gateway.store.close()


def _attest_usage(suite: Suite, owner: Transactor, keys: list[str]) -> None:
    """The attestor reports an epoch of each node with its latency; a payer settles."""
    epoch = int(suite.registry.call("current_epoch"))
    advance_time(suite, EPOCH)
    payer = Transactor(suite.w3, Signer.from_key(keys[PAYER]))
    send_mint_mock(owner, suite, payer.signer.address, 1_000 * USDC)
    deadline = int(suite.w3.eth.get_block("latest")["timestamp"]) + 86_400
    domain = fetch_domain_of(suite)
    reports = [
        sign(build_report(suite, node, epoch, 1_000, latency, 9_990, deadline), keys[ATTESTOR],
             domain)
        for node, (_, _, latency, _) in NODES.items()
    ]  # fmt: skip
    send_settle(payer, suite, reports)


def due(n: int, price: int = PRICE) -> int:
    """What a channel owes after ``n`` requests at ``price``."""
    return get_due(n * price)


def call(http: httpx.Client, world: World, node: int = 1, text: str = "hello there") -> str:
    response = http.post(
        world.urls[node] + "/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": text}]},
    )
    assert response.status_code == 200, response.text
    content: str = response.json()["choices"][0]["message"]["content"]
    return content


# -------------------------------------------------------------- accounting, no chain


def test_paid_state__ceil_accounting__as_the_gateway_counts() -> None:
    state = PaidState(0, 0, 0)
    amounts = []
    for _ in range(4):
        state = state.advanced(PRICE)
        amounts.append(state.cumulative)
    assert amounts == [334, 667, 1000, 1334] == [due(n) for n in range(1, 5)]
    # a price change from then on: past requests keep their price
    assert state.advanced(1_000).cumulative == get_due(4 * PRICE + 1_000) == 1335
    # a refunded request is not counted; what was signed stays
    back = state.refunded(PRICE)
    assert (back.cumulative, back.units, back.advanced(PRICE).cumulative) == (1334, 3, 1334)
    # a resync to 2001: the least consistent count, never below what was signed
    synced = state.synced(2_001)
    assert (synced.cumulative, synced.owed_k) == (2_001, 2_000_001)
    assert state.synced(5) is state


def test_parse_payment_required__only_an_edgeshare_402_with_an_amount() -> None:
    body = {"error": {"code": "payment_required", "kind": "underpaid", "node_id": 1,
                      "amount_due": 1334, "channel": {"customer": "0x" + "11" * 20,
                                                      "generation": 0}, "extra": 1}}  # fmt: skip
    found = parse_payment_required(json.dumps(body).encode())
    assert found is not None and (found.amount_due, found.kind) == (1334, "underpaid")
    for bad in (b"", b"not json", b"[]", b'{"error": "x"}',
                json.dumps({"error": {**body["error"], "amount_due": None}}).encode(),
                json.dumps({"error": {**body["error"], "amount_due": -1}}).encode(),
                json.dumps({"error": {**body["error"], "code": "other"}}).encode()):  # fmt: skip
        assert parse_payment_required(bad) is None, bad


# ------------------------------------------------------------------------ picking


def test_pick_node__cheapest_callable_meeting_the_bound(world: World) -> None:
    with open_db(world.index) as db:
        # node 3 is cheaper but does not answer; node 4 serves another model
        assert pick_node(db, world.suite, "Nairobi", 80).node_id == 4
        assert pick_node(db, world.suite, "nairobi", 80, MODEL).node_id == 1
        # a looser bound lets in node 2 (120 ms), cheaper than node 1
        row = pick_node(db, world.suite, "Nairobi", 200, MODEL)
    assert row.node_id == 2 and row.metadata is not None
    assert row.metadata.endpoint == world.urls[2] and row.latency_ms == 120


def test_pick_node__nothing_callable__error_names_each_reason(world: World) -> None:
    with open_db(world.index) as db:
        with pytest.raises(NoNodeMatches, match="p50 latency at most 10 ms"):
            pick_node(db, world.suite, "Nairobi", 10)
        with pytest.raises(NoNodeMatches, match="known regions: Accra, Nairobi"):
            pick_node(db, world.suite, "Mars", 80)
        with pytest.raises(NoNodeMatches, match="node 5: publishes no metadata"):
            pick_node(db, world.suite, "Accra", 80)
        with pytest.raises(NoNodeMatches) as found:
            pick_node(db, world.suite, "Nairobi", 33, MODEL)  # only node 3 is that fast
    message = str(found.value)
    assert f"node 3: endpoint {world.urls[3]} does not answer (ConnectError" in message
    assert found.value.exit_code == 2


# ------------------------------------------------------------------------- paying


def test_payer__funds_the_channel_then_n_calls_pay_exactly_the_ceil(
    world: World, tmp_path: Path
) -> None:
    customer = world.new_customer()
    payer = world.payer(customer, tmp_path / "client.db")
    assert (payer.signed, payer.left, payer.get_next_amount()) == (0, 0, 334)
    opened = payer.ensure_funded(customer.tx, 334, 5 * USDC)
    assert opened is not None and payer.channel.deposited == 5 * USDC
    assert payer.ensure_funded(customer.tx, 334, 5 * USDC) is None  # enough: nothing sent
    with httpx.Client(auth=VoucherAuth(payer), timeout=10) as http:
        for n in range(1, 8):
            assert call(http, world) == "echo: hello there"
            assert payer.signed == due(n) and world.used(customer) == (n, due(n))
    assert payer.resyncs == 0 and payer.left == 5 * USDC - due(7)
    # below the threshold: a top-up; an app key or a short top-up cannot
    topped = payer.ensure_funded(customer.tx, 5 * USDC, 1 * USDC)
    assert topped is not None and payer.channel.deposited == 6 * USDC
    stranger = world.new_customer()
    with pytest.raises(InputError, match="only the customer"):
        payer.ensure_funded(stranger.tx, 10 * USDC, 1 * USDC)
    with pytest.raises(InputError, match="is needed"):
        payer.ensure_funded(customer.tx, 100 * USDC, 1 * USDC)


def test_payer__channel_cannot_pay__refused_before_anything_is_sent(
    world: World, tmp_path: Path
) -> None:
    customer = world.new_customer()
    payer = world.payer(customer, tmp_path / "client.db")
    payer.ensure_funded(customer.tx, 1, 500)  # covers one request (334), not two (667)
    with httpx.Client(auth=VoucherAuth(payer), timeout=10) as http:
        call(http, world)
        asked = len(world.control.requests)
        with pytest.raises(PaymentRefused, match="top it up"):
            call(http, world)
    assert len(world.control.requests) == asked and world.used(customer) == (1, 334)
    assert payer.signed == 334  # nothing was signed for the refused request


def test_openai__connect_then_chat_and_stream_through_the_real_package(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = world.new_customer()
    monkeypatch.setenv("CUSTOMER_KEY", customer.key)
    # the README's two lines: a payer (pick, fund), then the client
    payer = connect_payer(
        rpc_url=world.chain.url, private_key_env="CUSTOMER_KEY", region="Nairobi",
        max_latency_ms=80, model=MODEL, deposit="1", manifest=world.manifest, db=world.index,
        store=tmp_path / "client.db",
    )  # fmt: skip
    assert (payer.node_id, payer.base_url, payer.channel.deposited) == (1, world.urls[1], USDC)
    client = openai.OpenAI(
        base_url=payer.base_url,
        api_key="edgeshare",
        http_client=openai_http_client(payer),
        max_retries=0,
    )
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "two lines only"}]
    )
    assert reply.choices[0].message.content == "echo: two lines only"
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "as it comes"}], stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "echo: as it comes"
    assert payer.signed == due(2) and world.used(customer) == (2, due(2))
    # the voucher went in its header; the api key never reached the upstream
    headers = world.control.requests[-1]["headers"]
    assert "authorization" not in headers and "x-edgeshare-voucher" not in headers
    assert [m.id for m in client.models.list()] == [MODEL]  # free: no voucher, not counted
    assert payer.signed == due(2) and world.used(customer) == (2, due(2))
    seen = fetch_seen_latency(tmp_path / "client.db", world.suite)
    assert seen[1].count == 2 and seen[1].p50_ms >= 1


def test_async_httpx__voucher_auth_works_the_same(world: World, tmp_path: Path) -> None:
    customer = world.new_customer()
    payer = world.payer(customer, tmp_path / "client.db")
    payer.ensure_funded(customer.tx, 1, 1 * USDC)

    async def twice() -> list[int]:
        async with httpx.AsyncClient(auth=VoucherAuth(payer), timeout=10) as http:
            body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
            url = world.urls[1] + "/chat/completions"
            return [(await http.post(url, json=body)).status_code for _ in range(2)]

    assert asyncio.run(twice()) == [200, 200]
    assert world.used(customer) == (2, due(2)) and payer.last_latency_ms is not None


def test_restart__a_new_payer_on_the_same_file_continues_the_cumulative(
    world: World, tmp_path: Path
) -> None:
    customer = world.new_customer()
    store = tmp_path / "client.db"
    first = world.payer(customer, store)
    first.ensure_funded(customer.tx, 1, 1 * USDC)
    with httpx.Client(auth=VoucherAuth(first), timeout=10) as http:
        for _ in range(3):
            call(http, world)
    again = world.payer(customer, store)
    assert again.signed == due(3)
    with httpx.Client(auth=VoucherAuth(again), timeout=10) as http:
        for _ in range(2):
            call(http, world)
    assert again.resyncs == 0 and world.used(customer) == (5, due(5)) == (5, again.signed)


def test_lost_database__resyncs_from_the_402_amount_due(world: World, tmp_path: Path) -> None:
    customer = world.new_customer()
    first = world.payer(customer, tmp_path / "first.db")
    first.ensure_funded(customer.tx, 1, 1 * USDC)
    with httpx.Client(auth=VoucherAuth(first), timeout=10) as http:
        for _ in range(3):
            call(http, world)
    lost = world.payer(customer, tmp_path / "new.db")  # knows nothing of the 3 requests
    assert lost.signed == 0
    with httpx.Client(auth=VoucherAuth(lost), timeout=10) as http:
        call(http, world)
        assert lost.resyncs == 1 and lost.signed == due(4) and world.used(customer)[1] == due(4)
        call(http, world)  # in step again: no 402
    assert lost.resyncs == 1 and world.used(customer) == (5, due(5)) == (5, lost.signed)


def test_resync__more_than_the_bound__refused_and_nothing_signed(
    world: World, tmp_path: Path
) -> None:
    customer = world.new_customer()
    first = world.payer(customer, tmp_path / "first.db")
    first.ensure_funded(customer.tx, 1, 1 * USDC)
    with httpx.Client(auth=VoucherAuth(first), timeout=10) as http:
        for _ in range(3):
            call(http, world)
    wary = world.payer(customer, tmp_path / "new.db", resync_limit=500)
    with (
        httpx.Client(auth=VoucherAuth(wary), timeout=10) as http,
        pytest.raises(PaymentRefused, match=r"resyncs at most 0\.0005 USDC in all"),
    ):
        call(http, world)
    assert wary.signed == 334 and world.used(customer) == (3, due(3))
    assert wary.paid.units == 0  # the refused request is not counted


def test_resync__the_bound_holds_in_all__not_per_402(world: World, tmp_path: Path) -> None:
    """A gateway that keeps asking for a little more than the client counted gets each
    resync only while their sum stays within the bound: a dishonest gateway cannot drain
    the deposit 1,000 requests' worth at a time (before, the bound was per 402)."""
    customer = world.new_customer()
    first = world.payer(customer, tmp_path / "first.db")
    first.ensure_funded(customer.tx, 1, 1 * USDC)
    other = world.payer(customer, tmp_path / "other.db", resync_limit=due(1))
    with (
        httpx.Client(auth=VoucherAuth(first), timeout=10) as a,
        httpx.Client(auth=VoucherAuth(other), timeout=10) as b,
    ):
        call(a, world)
        call(b, world)  # signed due(1); the gateway asks due(2): one request more, the bound
        assert other.resyncs == 1 and other.signed == due(2)
        call(a, world)  # a resyncs in turn (its default bound)
        with pytest.raises(PaymentRefused, match="in all"):
            call(b, world)  # signed due(3); due(4) asked: one more request, two in all
    # nothing more was signed on the gateway's word; the gateway served 3 requests
    assert other.signed == due(3) and world.used(customer)[0] == 3


def test_threads__concurrent_calls_on_one_channel_pay_exactly_what_is_due(
    world: World, tmp_path: Path
) -> None:
    customer = world.new_customer()
    payer = world.payer(customer, tmp_path / "client.db")
    payer.ensure_funded(customer.tx, 1, 1 * USDC)
    with (
        httpx.Client(auth=VoucherAuth(payer), timeout=10) as http,
        ThreadPoolExecutor(8) as pool,
    ):
        answers = list(pool.map(lambda i: call(http, world, text=f"call {i}"), range(16)))
    assert answers == [f"echo: call {i}" for i in range(16)]
    # vouchers may arrive out of order: a late low one is resynced up, never overpaid
    assert world.used(customer) == (16, due(16)) == (16, payer.signed)


def test_upstream_failure__the_gateway_takes_it_back__so_does_the_payer(
    world: World, tmp_path: Path
) -> None:
    customer = world.new_customer()
    payer = world.payer(customer, tmp_path / "client.db")
    payer.ensure_funded(customer.tx, 1, 1 * USDC)
    with httpx.Client(auth=VoucherAuth(payer), timeout=10) as http:
        call(http, world)
        world.control.fail_status = 500
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        assert http.post(world.urls[1] + "/chat/completions", json=body).status_code == 500
        world.control.fail_status = None
        call(http, world)
    # two served: owed for two (the failed request's voucher, 667, paid the second)
    assert world.used(customer) == (2, due(2)) and payer.paid.units == 2
    assert payer.resyncs == 0 and payer.signed == due(2)


def test_app_key__signs_for_the_customer_once_authorised(world: World, tmp_path: Path) -> None:
    customer, app = world.new_customer(), world.new_customer(0)
    store = tmp_path / "client.db"
    with pytest.raises(InputError, match="not authorised"):
        Payer(world.suite, app.signer, 1, customer=customer.address, store=store)
    world.payer(customer, store).ensure_funded(customer.tx, 1, 1 * USDC)
    send_authorize_signer(customer.tx, world.suite, 1, app.address)
    payer = Payer(world.suite, app.signer, 1, customer=customer.address, store=store,
                  endpoint=world.urls[1])  # fmt: skip
    result = send_chat(payer, HELLO, MODEL)
    assert (result.answer, result.paid, result.cumulative) == ("echo: hello there", 334, 334)
    assert world.used(customer) == (1, 334)
    assert fetch_channel(world.suite, customer.address, 1).deposited == 1 * USDC


# ---------------------------------------------------------------------- the command


def run_call(
    world: World,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    customer: Customer | None,
    store: Path,
    *args: str,
) -> tuple[int, str, str]:
    where = ["--rpc-url", world.chain.url, "--manifest", str(world.manifest), "--db", world.index,
             "--client-db", str(store)]  # fmt: skip
    env = {"CUSTOMER_KEY": customer.key} if customer else {}
    key = ["--private-key-env", "CUSTOMER_KEY"] if customer else []
    return run_main_streams(capsys, monkeypatch, env, "call", *args, *where, *key)


def test_call_cli__picks_funds_calls__json_then_streamed_text(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    customer, store = world.new_customer(), tmp_path / "client.db"
    pick = ["--region", "Nairobi", "--max-latency-ms", "80", "--model", MODEL]
    code, out, err = run_call(world, capsys, monkeypatch, customer, store, *pick,
                              "--prompt", "hello world", "--deposit", "2.5", "--json")  # fmt: skip
    assert code == 0, err
    done = json.loads(out)
    assert (done["node_id"], done["model"], done["answer"]) == (1, MODEL, "echo: hello world")
    assert done["paid"] == {"base_units": "334", "decimals": 6}
    assert done["deposited"] == {"base_units": "2500000", "decimals": 6}
    assert done["left"]["base_units"] == str(2_500_000 - 334)
    assert done["latency_ms"] >= 1 and done["usage"]["completion_tokens"] == 3
    assert fetch_channel(world.suite, customer.address, 1).deposited == 2_500_000
    # again, streamed, no deposit needed: pays the second request's 333
    code, out, err = run_call(world, capsys, monkeypatch, customer, store, *pick,
                              "--prompt", "more please", "--stream")  # fmt: skip
    assert code == 0, err
    assert out == "echo: more please\n"
    assert "node 1 (edgeshare-echo) answered in" in err and "paid 0.000333 USDC" in err, err
    assert world.used(customer) == (2, due(2))
    assert fetch_seen_latency(store, world.suite)[1].count == 2


def test_call_cli__named_node_and_messages_file(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    customer, store = world.new_customer(), tmp_path / "client.db"
    messages = tmp_path / "messages.json"
    messages.write_text(json.dumps([{"role": "system", "content": "be brief"},
                                    {"role": "user", "content": "which node"}]))  # fmt: skip
    code, out, err = run_call(world, capsys, monkeypatch, customer, store, "--node", "2",
                              "--messages", str(messages), "--deposit", "1", "--json")  # fmt: skip
    assert code == 0, err
    done = json.loads(out)
    assert (done["node_id"], done["model"], done["answer"]) == (2, MODEL, "echo: which node")
    assert done["paid"]["base_units"] == "300"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--region", "Nairobi", "--max-latency-ms", "80"], "give --prompt TEXT or --messages"),
        (["--region", "Nairobi", "--prompt", "x"], "give --region and --max-latency-ms"),
        (["--node", "1", "--region", "Nairobi", "--prompt", "x"], "not both"),
        (["--node", "1", "--prompt", "x", "--messages", "m.json"], "one of them"),
        (["--node", "1", "--prompt", "x", "--deposit", "abc"], "--deposit: expected an amount"),
        (["--node", "1", "--prompt", "x", "--deposit", "0.0000001"], "has 7 decimals"),
        (["--node", "1", "--prompt", "x", "--deposit", "0"], "--deposit must be more than 0"),
        (["--region", "Nairobi", "--max-latency-ms", "80", "--prompt", "x",
          "--endpoint", "http://h/v1"], "--endpoint goes with --node"),
        (["--node", "1", "--prompt", "x", "--endpoint", "ftp://h"], "--endpoint: "),
        (["--node", "99", "--prompt", "x", "--deposit", "1"], "no node 99 (registered: 1..5)"),
        (["--node", "1", "--prompt", "x", "--model", "gpt-9"], "does not serve gpt-9"),
        (["--node", "1", "--prompt", "x"], "pass --deposit AMOUNT"),  # no channel yet
        (["--node", "1", "--prompt", "  "], "--prompt is empty"),
        (["--node", "1", "--prompt", "x", "--max-tokens", "0"], "--max-tokens must be 1"),
        (["--region", "Nairobi", "--max-latency-ms", "10", "--prompt", "x", "--deposit", "1"],
         "p50 latency at most 10 ms"),
        (["--region", "Nairobi", "--max-latency-ms", "80", "--prompt", "x", "--deposit", "1",
          "--model", MODEL, "--customer", "0x" + "12" * 20], "an app key cannot deposit"),
    ],
)  # fmt: skip
def test_call_cli__bad_input__exit_2_nothing_sent(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, args: list[str], message: str,
) -> None:  # fmt: skip
    customer = world.new_customer()
    monkeypatch.chdir(tmp_path)
    before = (len(world.control.requests), world.suite.w3.eth.block_number)
    code, out, err = run_call(world, capsys, monkeypatch, customer, tmp_path / "c.db", *args,
                              "--json")  # fmt: skip
    assert code == 2 and message in err, err
    assert json.loads(out)["exit"] == 2 and "Traceback" not in err
    assert (len(world.control.requests), world.suite.w3.eth.block_number) == before


def test_call_cli__bad_messages_file__every_problem_named(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    path = tmp_path / "messages.json"
    path.write_text(json.dumps([{"role": "wizard", "content": "x"}, {"role": "user"}]))
    code, _, err = run_call(world, capsys, monkeypatch, None, tmp_path / "c.db", "--node", "1",
                            "--messages", str(path), "--deposit", "1")  # fmt: skip
    assert code == 2, err
    assert "0.role" in err and "1.content" in err and "give --region" not in err, err
    path.write_text("[]")
    code, _, err = run_call(world, capsys, monkeypatch, None, tmp_path / "c.db", "--node", "1",
                            "--messages", str(path))  # fmt: skip
    assert code == 2 and "at least 1 item" in err, err


def test_client_store__seen_p50_nearest_rank__old_latencies_pruned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client, "KEEP_LATENCIES", 4)
    monkeypatch.setattr(client, "PRUNE_EVERY", 3)
    assert fetch_seen_latency(tmp_path / "none.db") == {}  # no file: no data, none made
    assert not (tmp_path / "none.db").exists()
    store = client.ClientStore(tmp_path / "client.db")
    for ms in (50, 10, 40, 30, 20, 90):
        store.add_latency("31337:0xabc", 7, ms, 200)
    store.add_latency("other-suite", 7, 1, 200)
    seen = store.fetch_seen_latency("31337:0xabc")
    assert (seen[7].p50_ms, seen[7].count) == (30, 4)  # the latest 4: 40, 30, 20, 90
    assert store.fetch_seen_latency("31337:0xabc", recent=3)[7].p50_ms == 30  # 20 30 90
    store.close()
