"""The gateway on anvil: a node with a price, customers with channels, the test upstream
and the gateway served by uvicorn in threads, called over HTTP.

Paid requests are served only against vouchers that cover the channel's use (2.5 base
units per request here, so dues round up: 3, 5, 8, 10, ...); every refusal is a 402 whose
JSON says what is needed; streams pass through as they come; the upstream's failures are
502/504 JSON and cost the customer nothing; concurrent requests never accept less than is
due; a restart keeps what each channel used; hostile input never gets a 500.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from edgeshare.attestation import Eip712Domain
from edgeshare.chain import LocalChain, build_dev_keys, connect, get_free_port
from edgeshare.channels import (
    Voucher,
    fetch_channels_domain,
    redeem_vouchers,
    send_authorize_signer,
    send_deposit,
    sign_voucher,
)
from edgeshare.deploy import build_params, deploy_suite
from edgeshare.errors import InputError, NodeNotFound
from edgeshare.gateway import (
    MAX_VOUCHER_HEADER,
    Gateway,
    GatewayConfig,
    VoucherHeaderError,
    VoucherStore,
    build_app,
    decode_voucher_header,
    encode_voucher_header,
    get_due,
)
from edgeshare.roles import advance_time, fetch_chain_time, send_set_price
from edgeshare.signer import Signer
from edgeshare.suite import NodeSpec, Suite, send_mint_mock, send_register_node
from edgeshare.tx import Transactor
from tests.inproc import run_main
from tests.upstream import UpstreamControl, build_upstream_app, serve_in_thread

EPOCH = 3_600
PRICE = 2_500
"""Node 1's price per 1,000 requests: 2.5 base units a request."""
OWNER, OPERATOR, ATTESTOR = range(3)
ACCOUNTS = 40
MAX_BODY = 64 * 1024
CHAT = {"model": "edgeshare-echo", "messages": [{"role": "user", "content": "hello there"}]}


def due(n: int, price: int = PRICE) -> int:
    """What a channel owes after ``n`` requests at ``price``."""
    return get_due(n * price)


@dataclass
class Customer:
    key: str
    address: str
    tx: Transactor


@dataclass
class World:
    chain: LocalChain
    suite: Suite
    keys: list[str]
    owner: Transactor
    domain: Eip712Domain
    deadline: int
    control: UpstreamControl
    upstream: str
    root: Path
    next_key: Iterator[int]

    def new_customer(self, deposit: int = 1_000_000) -> Customer:
        """A dev account with 10 USDC, ``deposit`` base units of it in a channel to node 1."""
        key = self.keys[next(self.next_key)]
        signer = Signer.from_key(key)
        send_mint_mock(self.owner, self.suite, signer.address, 10 * 10**6)
        tx = Transactor(self.suite.w3, signer)
        if deposit:
            send_deposit(tx, self.suite, 1, deposit)
        return Customer(key, signer.address, tx)

    def pay(
        self,
        customer: Customer,
        cumulative: int,
        *,
        node: int = 1,
        generation: int = 0,
        deadline: int | None = None,
        key: str | None = None,
    ) -> dict[str, str]:
        """The header of a voucher for ``customer``'s channel (signed by ``key``, default the
        customer's own)."""
        voucher = Voucher(
            node_id=node,
            customer=customer.address,
            generation=generation,
            cumulative=cumulative,
            deadline=self.deadline if deadline is None else deadline,
        )
        signed = sign_voucher(voucher, key or customer.key, self.domain)
        return {"X-EdgeShare-Voucher": encode_voucher_header(signed)}


@dataclass
class RunningGateway:
    url: str
    gateway: Gateway
    db: Path

    def use(self, customer: Customer, generation: int = 0) -> Any:
        return self.gateway.usage.get((customer.address.lower(), generation))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A suite with nodes 1 and 2 (2.5 base units a request) and the upstream."""
    keys = build_dev_keys(ACCOUNTS)
    root = tmp_path_factory.mktemp("gateway")
    with LocalChain("anvil", accounts=ACCOUNTS) as chain:
        w3 = connect(chain.url)
        owner = Transactor(w3, Signer.from_key(keys[OWNER]))
        params = build_params(None, epoch_length=EPOCH, challenge_period=3_600, unlock_period=EPOCH)
        suite = Suite.load(w3, deploy_suite(owner, params, root / "manifest.json").manifest)
        for region in ("Nairobi", "Accra"):
            spec = NodeSpec(
                operator=Signer.from_key(keys[OPERATOR]).address,
                attestor=Signer.from_key(keys[ATTESTOR]).address,
                shares=10**21,
                price_per_1k=PRICE,
                operator_cut_bps=1_000,
                region=region,
            )
            send_register_node(owner, suite, spec)
        control = UpstreamControl()
        with serve_in_thread(build_upstream_app(control)) as upstream:
            yield World(
                chain=chain,
                suite=suite,
                keys=keys,
                owner=owner,
                domain=fetch_channels_domain(suite),
                deadline=fetch_chain_time(suite) + 30 * 86_400,
                control=control,
                upstream=upstream.url,
                root=root,
                next_key=itertools.count(3),
            )


@contextmanager
def run_gateway(world: World, db: Path, **overrides: Any) -> Iterator[RunningGateway]:
    """A gateway for node 1 over ``db`` with a Suite (an RPC connection) of its own."""
    suite = Suite.load(connect(world.chain.url), world.suite.manifest)
    settings: dict[str, Any] = dict(
        node_id=1,
        upstream=world.upstream,
        db_path=db,
        max_body=MAX_BODY,
        read_timeout=1.0,
        refresh_interval=0.5,
        refresh_cooldown=0.0,
    )
    settings.update(overrides)
    app = build_app(GatewayConfig(**settings), suite)
    gateway: Gateway = app.state.gateway
    try:
        with serve_in_thread(app) as server:
            yield RunningGateway(server.url, gateway, db)
    finally:
        gateway.store.close()


@pytest.fixture(scope="module")
def gateway(world: World) -> Iterator[RunningGateway]:
    """The module's gateway for node 1."""
    with run_gateway(world, world.root / "gateway.db") as running:
        yield running


@pytest.fixture(autouse=True)
def healthy_upstream(world: World) -> None:
    world.control.reset()


@pytest.fixture
def http(gateway: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        yield client


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def refusal(response: httpx.Response, kind: str) -> dict[str, Any]:
    """The 402 error body, checked to be of ``kind``."""
    assert response.status_code == 402, response.text
    error: dict[str, Any] = response.json()["error"]
    assert (error["code"], error["kind"], error["node_id"]) == ("payment_required", kind, 1), error
    assert error["message"].startswith(error["reason"]), error
    return error


def scrape(http: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = http.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


# ------------------------------------------------------------------------ tests ----


def test_voucher_header__round_trips_and_stays_under_the_limit(world: World) -> None:
    customer = Customer(world.keys[0], Signer.from_key(world.keys[0]).address, world.owner)
    header = world.pay(customer, 2**128 - 1, node=2**255, generation=2**32 - 1, deadline=2**64 - 1)
    value = header["X-EdgeShare-Voucher"]
    assert len(value) < MAX_VOUCHER_HEADER
    voucher = decode_voucher_header(value)
    assert (voucher.node_id, voucher.customer, voucher.cumulative) == (
        2**255,
        customer.address,
        2**128 - 1,
    )
    with pytest.raises(VoucherHeaderError, match="starts with"):
        decode_voucher_header(value[5:])


def test_paid_requests__served_while_each_voucher_covers_the_use(
    world: World, gateway: RunningGateway, http: httpx.Client
) -> None:
    customer = world.new_customer()
    r = http.post("/v1/chat/completions", json=CHAT, headers=world.pay(customer, due(1)))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "echo: hello there"
    assert r.json()["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    # the bearer form, on the other paid routes: 5 after two requests, 8 after three
    bearer = {"Authorization": "Bearer " + world.pay(customer, due(2))["X-EdgeShare-Voucher"]}
    r = http.post("/v1/embeddings", json={"model": "edgeshare-echo", "input": "hi"}, headers=bearer)
    assert r.status_code == 200, r.text
    assert len(r.json()["data"][0]["embedding"]) == 8
    r = http.post("/v1/completions", json={"prompt": "once"}, headers=world.pay(customer, due(3)))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["text"] == "echo: once"
    use = gateway.use(customer)
    assert (use.units, use.due, use.cumulative) == (3, due(3), due(3))
    # the agent reads the store's file while the gateway runs
    reader = VoucherStore(gateway.db)
    (latest,) = [v for v in reader.fetch_latest(1) if v.customer == customer.address]
    reader.close()
    assert (latest.cumulative, latest.generation, latest.deadline) == (due(3), 0, world.deadline)
    # the upstream never sees the payment
    for seen in world.control.requests:
        assert "x-edgeshare-voucher" not in seen["headers"], seen
        assert "authorization" not in seen["headers"], seen


def test_bad_vouchers__402_says_what_is_needed(
    world: World, gateway: RunningGateway, http: httpx.Client
) -> None:
    customer = world.new_customer(deposit=1_000)
    stranger = world.keys[next(world.next_key)]

    def post(headers: dict[str, str]) -> httpx.Response:
        return http.post("/v1/chat/completions", json=CHAT, headers=headers)

    assert post(world.pay(customer, due(1))).status_code == 200
    error = refusal(post({}), "missing_voucher")
    assert (error["amount_due"], error["channel"], error["price_per_request"]) == (None, None, 3)
    error = refusal(post({"Authorization": "Bearer sk-not-a-voucher"}), "missing_voucher")
    assert "Authorization header holds no EdgeShare voucher" in error["reason"]
    channel = {"customer": customer.address, "generation": 0}
    # underpaid, and the voucher that paid the first request replayed: 5 is due
    for cumulative in (due(2) - 1, due(1)):
        error = refusal(post(world.pay(customer, cumulative)), "underpaid")
        assert (error["amount_due"], error["channel"]) == (due(2), channel), error
        assert (error["price_per_request"], error["price_per_1k"]) == (due(2) - due(1), PRICE)
        assert (error["deposited"], error["redeemed"]) == (1_000, 0)
    now = fetch_chain_time(world.suite)
    error = refusal(post(world.pay(customer, due(2), deadline=now - 10)), "expired")
    assert error["amount_due"] == due(2) and "past its deadline" in error["message"]
    # the agent redeems on a schedule: a voucher must last an hour (the default)
    error = refusal(post(world.pay(customer, due(2), deadline=now + 600)), "expired")
    assert "before the 3600 s a voucher must last" in error["message"], error
    error = refusal(post(world.pay(customer, due(2), node=2)), "foreign_node")
    assert error["amount_due"] is None and "serves node 1" in error["message"]
    error = refusal(post(world.pay(customer, due(2), generation=1)), "wrong_generation")
    assert (error["amount_due"], error["channel"]) == (due(2), channel)
    error = refusal(post(world.pay(customer, 1_001)), "not_covered")
    assert (error["amount_due"], error["deposited"]) == (due(2), 1_000)
    # signed by a key the customer never authorised, or a forged signature: the channel's
    # use is told only to its signer
    for cumulative in (due(2), 1_001):
        error = refusal(post(world.pay(customer, cumulative, key=stranger)), "bad_signature")
        assert error["amount_due"] is None and error["channel"] == channel, error
    signed = decode_voucher_header(world.pay(customer, due(2))["X-EdgeShare-Voucher"])
    for forged in ("0x" + "11" * 32 + "22" * 32 + "1b", signed.signature[:-2] + "1d"):
        header = encode_voucher_header(signed.model_copy(update={"signature": forged}))
        refusal(post({"X-EdgeShare-Voucher": header}), "bad_signature")
    # someone without a channel: read from the chain, nothing deposited
    nobody = Signer.from_key("0x" + secrets.token_hex(32))
    outsider = Customer(nobody.export_key(), nobody.address, world.owner)
    error = refusal(post(world.pay(outsider, due(1))), "not_covered")
    assert (error["deposited"], error["amount_due"]) == (0, due(1))
    # none of it was charged: the next voucher is still the second request's
    assert gateway.use(customer).units == 1
    assert post(world.pay(customer, due(2))).status_code == 200


def test_app_key__authorised_by_the_customer__pays(
    world: World, gateway: RunningGateway, http: httpx.Client
) -> None:
    customer = world.new_customer()
    app_key = world.keys[next(world.next_key)]
    send_authorize_signer(customer.tx, world.suite, 1, Signer.from_key(app_key).address)
    headers = world.pay(customer, due(1), key=app_key)
    r = http.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert r.status_code == 200, r.text
    assert gateway.use(customer).cumulative == due(1)


def test_amount_due__lets_a_client_that_lost_count_recover(
    world: World, http: httpx.Client
) -> None:
    customer = world.new_customer()
    for n in (1, 2, 3):
        assert (
            http.post(
                "/v1/completions", json={"prompt": "a"}, headers=world.pay(customer, due(n))
            ).status_code
            == 200
        )
    r = http.post("/v1/completions", json={"prompt": "a"}, headers=world.pay(customer, 1))
    amount = refusal(r, "underpaid")["amount_due"]
    assert amount == due(4)
    r = http.post("/v1/completions", json={"prompt": "a"}, headers=world.pay(customer, amount))
    assert r.status_code == 200, r.text


def test_top_up__is_read_on_demand(world: World, http: httpx.Client) -> None:
    customer = world.new_customer(deposit=due(2))
    for n in (1, 2):
        assert (
            http.post(
                "/v1/chat/completions", json=CHAT, headers=world.pay(customer, due(n))
            ).status_code
            == 200
        )
    r = http.post("/v1/chat/completions", json=CHAT, headers=world.pay(customer, due(3)))
    error = refusal(r, "not_covered")
    assert (error["deposited"], error["amount_due"]) == (due(2), due(3))
    send_deposit(customer.tx, world.suite, 1, 100)
    r = http.post("/v1/chat/completions", json=CHAT, headers=world.pay(customer, due(3)))
    assert r.status_code == 200, r.text


def test_redemption__learned_by_the_gateway(
    world: World, gateway: RunningGateway, http: httpx.Client
) -> None:
    customer = world.new_customer()
    for n in (1, 2):
        assert (
            http.post(
                "/v1/chat/completions", json=CHAT, headers=world.pay(customer, due(n))
            ).status_code
            == 200
        )
    store = VoucherStore(gateway.db)
    mine = [v for v in store.fetch_latest(1) if v.customer == customer.address]
    store.close()
    operator = Transactor(world.suite.w3, Signer.from_key(world.keys[OPERATOR]))
    assert redeem_vouchers(operator, world.suite, mine, world.domain).amount == due(2)
    key = bytes.fromhex(customer.address[2:].lower())
    wait_for(lambda: gateway.gateway.checker.channels[key].redeemed == due(2))
    error = refusal(
        http.post("/v1/chat/completions", json=CHAT, headers=world.pay(customer, due(2))),
        "already_redeemed",
    )
    assert (error["redeemed"], error["amount_due"]) == (due(2), due(3))
    r = http.post("/v1/chat/completions", json=CHAT, headers=world.pay(customer, due(3)))
    assert r.status_code == 200, r.text


def test_stream__passes_through_event_by_event(world: World, http: httpx.Client) -> None:
    customer = world.new_customer()
    world.control.chunk_interval = 0.2
    body = {**CHAT, "stream": True, "messages": [{"role": "user", "content": "one two three four"}]}
    started = time.monotonic()
    arrivals: list[tuple[float, str]] = []
    with http.stream(
        "POST", "/v1/chat/completions", json=body, headers=world.pay(customer, due(1))
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line:
                arrivals.append((time.monotonic() - started, line))
    assert arrivals[-1][1] == "data: [DONE]"
    events = [json.loads(line.removeprefix("data: ")) for _, line in arrivals[:-1]]
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
    assert text == "echo: one two three four"
    # five words 0.2 s apart: the first came long before the last was sent
    assert arrivals[0][0] < 0.5 and arrivals[-1][0] - arrivals[0][0] >= 0.8, arrivals


def test_client_gone_mid_stream__the_voucher_that_paid_is_kept(
    world: World, gateway: RunningGateway, http: httpx.Client
) -> None:
    customer = world.new_customer()
    world.control.chunk_interval = 0.3
    words = " ".join(f"w{i}" for i in range(20))
    body = {"prompt": words, "stream": True}
    with http.stream(
        "POST", "/v1/completions", json=body, headers=world.pay(customer, due(1))
    ) as r:
        assert r.status_code == 200
        assert next(r.iter_raw()).startswith(b"data: ")
    wait_for(lambda: world.control.streams_cut == 1)
    assert world.control.streams_finished == 0
    store = VoucherStore(gateway.db)
    assert [v.cumulative for v in store.fetch_latest(1) if v.customer == customer.address] == [
        due(1)
    ]
    store.close()
    assert gateway.use(customer).units == 1


def test_upstream_down__502_json_and_nothing_charged(world: World, tmp_path: Path) -> None:
    customer = world.new_customer()
    down = f"http://127.0.0.1:{get_free_port()}"
    with run_gateway(world, tmp_path / "down.db", upstream=down) as gw:
        with httpx.Client(base_url=gw.url, timeout=10) as client:
            r = client.post("/v1/chat/completions", json=CHAT, headers=world.pay(customer, due(1)))
            assert r.status_code == 502, r.text
            assert r.json()["error"]["code"] == "upstream_unavailable"
            assert client.get("/v1/models").status_code == 502
            health = client.get("/healthz")
            assert health.status_code == 503 and health.json()["status"] == "upstream_unavailable"
        use = gw.use(customer)
        assert (use.units, use.due, use.cumulative) == (0, 0, due(1))


def test_slow_and_failing_upstream__504_and_its_errors__not_charged(
    world: World, gateway: RunningGateway, http: httpx.Client
) -> None:
    customer = world.new_customer()
    world.control.delay = 1.6  # the gateway waits 1 s
    started = time.monotonic()
    r = http.post("/v1/chat/completions", json=CHAT, headers=world.pay(customer, due(1)))
    assert r.status_code == 504, r.text
    assert r.json()["error"]["code"] == "upstream_timeout"
    assert time.monotonic() - started < 1.5
    # the upstream's own errors pass through; only inferences are paid for
    world.control.delay = 0.0
    for status in (503, 400):
        world.control.fail_status = status
        r = http.post("/v1/chat/completions", json=CHAT, headers=world.pay(customer, due(1)))
        assert r.status_code == status and r.json()["error"]["type"] == "server_error"
    assert gateway.use(customer).units == 0
    # the same voucher pays once the upstream is back
    world.control.fail_status = None
    r = http.post("/v1/chat/completions", json=CHAT, headers=world.pay(customer, due(1)))
    assert r.status_code == 200, r.text
    assert gateway.use(customer).units == 1


def _raw_header(data: Any) -> str:
    import base64

    text = data if isinstance(data, bytes) else json.dumps(data).encode()
    return "esv1." + base64.urlsafe_b64encode(text).rstrip(b"=").decode()


def test_hostile_bodies_and_headers__json_errors_never_500(
    world: World, gateway: RunningGateway, http: httpx.Client
) -> None:
    customer = world.new_customer()
    good = decode_voucher_header(world.pay(customer, due(1))["X-EdgeShare-Voucher"])
    fields = good.model_dump(by_alias=True)
    url = "/v1/chat/completions"
    # bodies: the voucher is good, the request is refused before it is charged
    pay = world.pay(customer, due(1))
    cases: list[tuple[Any, int, str]] = [
        (dict(content=b"x" * (MAX_BODY + 1)), 413, "body_too_large"),
        (dict(content=iter([b"{" + b" " * 1024] * 70)), 413, "body_too_large"),
        (dict(content=b'{"model": '), 400, "bad_request"),
        (dict(content=b"[1, 2]"), 400, "bad_request"),
        (dict(content=b"\xff\xfe\x00garbage"), 400, "bad_request"),
        (dict(content=b""), 400, "bad_request"),
        (dict(content=b"[" * 30_000 + b"]" * 30_000), 400, "bad_request"),
    ]
    for kwargs, status, code in cases:
        r = http.post(url, headers={**pay, "content-type": "application/json"}, **kwargs)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (kwargs, r.text)
    assert gateway.use(customer) is None

    # vouchers that are not well-formed
    def with_(**changes: Any) -> dict[str, Any]:
        return {**fields, **changes}

    bad_values = [
        "esv1." + "A" * MAX_VOUCHER_HEADER,
        "esv2." + pay["X-EdgeShare-Voucher"][5:],
        "esv1.!!!not-base64",
        "esv1.A",
        _raw_header(b"not json"),
        _raw_header([1, 2]),
        _raw_header({k: v for k, v in fields.items() if k != "deadline"}),
        _raw_header(with_(extra=1)),
        _raw_header(with_(cumulative=str(due(1)))),
        _raw_header(with_(generation=True)),
        _raw_header(with_(deadline=1.5)),
        _raw_header(with_(nodeId=None)),
        _raw_header(with_(nodeId=0)),
        _raw_header(with_(cumulative=-1)),
        _raw_header(with_(cumulative=2**128)),
        _raw_header(with_(deadline=2**64)),
        _raw_header(with_(generation=2**32)),
        _raw_header(with_(signature=good.signature[:-2])),
        _raw_header(with_(signature=good.signature + "00")),
        _raw_header(with_(signature=12)),
        _raw_header(with_(customer=customer.address[:-1])),
        _raw_header(with_(customer=["0x"])),
    ]
    for value in bad_values:
        r = http.post(url, json=CHAT, headers={"X-EdgeShare-Voucher": value})
        refusal(r, "malformed_voucher")
    # bytes that are not ASCII, a header far over the server's limit
    r = http.post(url, json=CHAT, headers=[(b"X-EdgeShare-Voucher", b"esv1.\xff\xfe\xc3\xa9")])
    refusal(r, "malformed_voucher")
    r = http.post(url, json=CHAT, headers={"X-EdgeShare-Voucher": "esv1." + "A" * 100_000})
    assert 400 <= r.status_code < 500
    assert gateway.use(customer) is None
    samples = scrape(http)
    assert not [
        k
        for k in samples
        if k[0] == "edgeshare_gateway_requests_total" and ("status", "500") in k[1]
    ]


def test_free_routes_and_unknown_ones(world: World, http: httpx.Client) -> None:
    r = http.get("/v1/models")
    assert r.status_code == 200 and r.json()["data"][0]["id"] == "edgeshare-echo"
    health = http.get("/healthz")
    assert health.status_code == 200, health.text
    assert (health.json()["status"], health.json()["node_id"]) == ("ok", 1)
    assert health.json()["price_per_1k"] == PRICE
    for method, path, status, code in [
        ("GET", "/v1/nothing", 404, "not_found"),
        ("GET", "/v1/chat/completions", 405, "method_not_allowed"),
        ("POST", "/v1/models", 405, "method_not_allowed"),
    ]:
        r = http.request(method, path)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code)


def test_concurrent_requests_on_one_channel__never_accept_less_than_due(
    world: World, gateway: RunningGateway
) -> None:
    def fire(headers: list[dict[str, str]]) -> list[int]:
        barrier = threading.Barrier(len(headers))

        def one(h: dict[str, str]) -> int:
            with httpx.Client(base_url=gateway.url, timeout=20) as client:
                barrier.wait()
                return client.post("/v1/chat/completions", json=CHAT, headers=h).status_code

        with ThreadPoolExecutor(len(headers)) as pool:
            return list(pool.map(one, headers))

    # twenty requests with the same voucher: one is served
    customer = world.new_customer()
    codes = fire([world.pay(customer, due(1))] * 20)
    assert sorted(codes) == [200] + [402] * 19
    assert gateway.use(customer).units == 1
    # twenty vouchers 1..20 requests' worth, in any order: whatever was served is covered
    other = world.new_customer()
    vouchers = [world.pay(other, due(n)) for n in range(1, 21)]
    random.Random(16).shuffle(vouchers)
    codes = fire(vouchers)
    use = gateway.use(other)
    assert use.units == codes.count(200) >= 1
    assert use.cumulative >= use.due == due(use.units)
    assert set(codes) <= {200, 402}


def test_flood_of_unknown_customers__reads_the_chain_at_a_bounded_rate(
    world: World, tmp_path: Path
) -> None:
    flood = run_gateway(world, tmp_path / "flood.db", refresh_rate=1.0, refresh_interval=60)
    with flood as gw, httpx.Client(base_url=gw.url, timeout=10) as client:
        kinds, retry = [], set()
        for _ in range(12):
            nobody = Signer.from_key("0x" + secrets.token_hex(32))
            made_up = Customer(nobody.export_key(), nobody.address, world.owner)
            r = client.post("/v1/chat/completions", json=CHAT, headers=world.pay(made_up, due(1)))
            kinds.append(r.json()["error"]["kind"])
            retry.add(r.headers.get("retry-after"))
        samples = scrape(client)
    ok = (("kind", "customer"), ("result", "ok"))
    reads = samples[("edgeshare_gateway_chain_refreshes_total", ok)]
    assert 2 <= reads <= 3 and kinds.count("not_covered") == reads, kinds
    assert kinds.count("unknown_channel") == 12 - reads and "1" in retry


def test_restart__keeps_what_each_channel_used(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "restart.db"
    customer = world.new_customer()
    with run_gateway(world, db) as first, httpx.Client(base_url=first.url, timeout=10) as client:
        for n in (1, 2):
            r = client.post("/v1/chat/completions", json=CHAT, headers=world.pay(customer, due(n)))
            assert r.status_code == 200, r.text
    monkeypatch.setenv("TEST_UPSTREAM_KEY", "sk-upstream")
    with run_gateway(world, db, upstream_key_env="TEST_UPSTREAM_KEY") as second:
        with httpx.Client(base_url=second.url, timeout=10) as client:
            r = client.post("/v1/chat/completions", json=CHAT, headers=world.pay(customer, due(2)))
            assert refusal(r, "underpaid")["amount_due"] == due(3)
            headers = {**world.pay(customer, due(3)), "Authorization": "Bearer sk-client"}
            r = client.post("/v1/chat/completions", json=CHAT, headers=headers)
            assert r.status_code == 200, r.text
        assert second.use(customer).units == 3
    seen = world.control.requests[-1]["headers"]
    assert seen["authorization"] == "Bearer sk-upstream" and "x-edgeshare-voucher" not in seen


def test_store__refuses_a_file_of_another_chain(world: World, tmp_path: Path) -> None:
    store = VoucherStore(tmp_path / "other.db")
    store.bind(1, "0x" + "11" * 20)
    store.close()
    with (
        pytest.raises(InputError, match="holds the vouchers of chain 1"),
        run_gateway(world, tmp_path / "other.db"),
    ):
        pass


def test_build_app__unknown_node__refused_before_the_store_is_made(
    world: World, tmp_path: Path
) -> None:
    config = GatewayConfig(node_id=9, upstream=world.upstream, db_path=tmp_path / "n9.db")
    with pytest.raises(NodeNotFound, match="no node 9"):
        build_app(config, world.suite)
    assert not (tmp_path / "n9.db").exists()
    with pytest.raises(ValidationError, match="without a query"):
        GatewayConfig(node_id=1, upstream="http://x/?a=1", db_path=tmp_path / "x.db")
    base = GatewayConfig(node_id=1, upstream="http://host:8000/v1/", db_path=tmp_path / "x.db")
    assert base.upstream == "http://host:8000"


def test_metrics__requests_served_latency_and_paid(
    world: World, gateway: RunningGateway, http: httpx.Client
) -> None:
    route = (("route", "/v1/chat/completions"),)
    before = scrape(http)
    customer = world.new_customer()
    for n in (1, 2):
        assert (
            http.post(
                "/v1/chat/completions", json=CHAT, headers=world.pay(customer, due(n))
            ).status_code
            == 200
        )
    refusal(
        http.post("/v1/chat/completions", json=CHAT, headers=world.pay(customer, 1)), "underpaid"
    )
    after = scrape(http)

    def delta(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return after.get((name, labels), 0) - before.get((name, labels), 0)

    assert delta("edgeshare_gateway_served_total", route) == 2
    assert delta("edgeshare_gateway_paid_base_units_total") == due(2)
    assert delta("edgeshare_gateway_requests_total", (*route, ("status", "200"))) == 2
    assert delta("edgeshare_gateway_requests_total", (*route, ("status", "402"))) == 1
    assert delta("edgeshare_gateway_payment_refusals_total", (("kind", "underpaid"),)) == 1
    assert delta("edgeshare_gateway_request_duration_seconds_count", route) == 2
    assert delta("edgeshare_gateway_request_duration_seconds_bucket", (("le", "60.0"), *route)) == 2
    assert after[("edgeshare_gateway_price_per_1k", ())] == PRICE


def test_cli__bad_inputs_exit_2(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = ["--rpc-url", world.chain.url, "--manifest", str(world.root / "manifest.json")]
    up = ["--upstream", world.upstream]
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = str(taken.getsockname()[1])
    cases = [
        (["--node", "1", "--upstream", "ftp://example.com"], "not an http(s) URL"),
        (["--node", "1", "--upstream", "no url at all"], "--upstream"),
        (["--node", "9", *up], "no node 9"),
        (["--node", "1", *up, "--upstream-key-env", "EDGESHARE_TEST_UNSET_KEY"], "not set"),
        (["--node", "1", *up, "--port", port, "--db", str(world.root / "cli.db")], "cannot listen"),
        (["--node", "0", *up], "--node"),
    ]
    try:
        for args, message in cases:
            code, out = run_main(capsys, monkeypatch, {}, "gateway", *args, *chain)
            assert code == 2 and message in out, (args, out)
    finally:
        taken.close()


def test_cli__serves_until_sigterm(world: World, tmp_path: Path) -> None:
    port = get_free_port()
    command = [
        str(Path(sys.executable).parent / "edgeshare"),
        "gateway",
        "--node",
        "1",
        "--upstream",
        world.upstream,
        "--port",
        str(port),
        "--db",
        str(tmp_path / "cli.db"),
        "--rpc-url",
        world.chain.url,
        "--manifest",
        str(world.root / "manifest.json"),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                return httpx.get(url + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                assert proc.poll() is None, proc.communicate()
                return False

        wait_for(healthy, timeout=60)
        customer = world.new_customer()
        r = httpx.post(url + "/v1/chat/completions", json=CHAT, headers=world.pay(customer, 3))
        assert r.status_code == 200, r.text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"gateway for node 1 listening on http://127.0.0.1:{port}" in out.decode(), out


def test_price_change__applies_from_the_next_epoch(
    world: World, gateway: RunningGateway, http: httpx.Client
) -> None:
    customer = world.new_customer()
    assert (
        http.post(
            "/v1/chat/completions", json=CHAT, headers=world.pay(customer, due(1))
        ).status_code
        == 200
    )
    operator = Transactor(world.suite.w3, Signer.from_key(world.keys[OPERATOR]))
    send_set_price(operator, world.suite, 1, 10_000)
    advance_time(world.suite, EPOCH)
    wait_for(lambda: gateway.gateway.view.get_price(gateway.gateway.view.get_now()) == 10_000)
    owed = get_due(PRICE + 10_000)
    r = http.post("/v1/chat/completions", json=CHAT, headers=world.pay(customer, owed - 1))
    error = refusal(r, "underpaid")
    assert (error["amount_due"], error["price_per_request"], error["price_per_1k"]) == (
        owed,
        owed - due(1),
        10_000,
    )
    r = http.post("/v1/chat/completions", json=CHAT, headers=world.pay(customer, owed))
    assert r.status_code == 200, r.text
