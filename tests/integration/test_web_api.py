"""The web API (`edgeshare serve`, edgeshare.web) on a real chain: one module-scoped world
on its own anvil, the app called in-process through Starlette's TestClient.

The world: two nodes (Lagos and Lima); node 1 has two settled, finalized and vested
epochs, an investor holding a quarter of its shares, a pending cut increase and a
customer's channel with an app signer; node 2 has an open offering the investor committed
to. Each endpoint's body is compared with the CLI's --json for the same address (nothing
is mined in between, so both are at the same block).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from starlette.testclient import TestClient

from edgeshare.attestation import sign
from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.channels import send_authorize_signer, send_deposit
from edgeshare.client import CLIENT_DB_ENV
from edgeshare.contracts import get_codec
from edgeshare.deploy import build_params, deploy_suite
from edgeshare.offerings import send_commit, send_create_offering
from edgeshare.orders import (
    Order,
    SignedOrder,
    build_order,
    fetch_market_domain,
    send_approve_market,
    sign_market_order,
    sign_order,
    write_orders_file,
)
from edgeshare.roles import advance_time, fetch_chain_time, send_propose_cut
from edgeshare.signer import Signer
from edgeshare.status import fetch_operated
from edgeshare.suite import (
    NodeSpec,
    Suite,
    build_report,
    fetch_domain_of,
    send_finalize,
    send_mint_mock,
    send_register_node,
    send_settle,
    send_transfer_shares,
)
from edgeshare.tx import Transactor
from edgeshare.web import MAX_ORDER_BODY, WebConfig
from edgeshare.web.api import CONTENT_SECURITY_POLICY, WebState, build_app
from edgeshare.web.book import store_order, web_orders
from tests.inproc import run_main_streams
from tests.pg import create_database, postgres_url

__all__ = ["postgres_url"]  # the fixture, imported for pytest

KEYS = build_dev_keys(8)
DEPLOYER_KEY, OPERATOR_KEY, ATTESTOR_KEY, PAYER_KEY, INVESTOR_KEY, INVESTOR2_KEY = KEYS[:6]
CUSTOMER_KEY, APP_KEY = KEYS[6:]
EPOCH = 3_600
USDC = 10**6
SHARES = 10**18
SUPPLY = 1_000_000 * SHARES
HELD = SUPPLY // 4
"""The investor's shares of node 1."""
COMMITTED = 100 * USDC
DEPOSIT = 25 * USDC


def address(key: str) -> str:
    return Signer.from_key(key).address


@dataclass
class World:
    url: str
    manifest: Path
    suite: Suite
    db_url: str
    client: TestClient
    state: WebState
    offering: str
    token1: str
    """Node 1's share token."""
    tmp: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("web-api")
    with LocalChain("anvil", accounts=len(KEYS)) as chain:
        w3 = connect(chain.url)
        deployer = Transactor(w3, Signer.from_key(DEPLOYER_KEY))
        operator = Transactor(w3, Signer.from_key(OPERATOR_KEY))
        investor = Transactor(w3, Signer.from_key(INVESTOR_KEY))
        customer = Transactor(w3, Signer.from_key(CUSTOMER_KEY))
        params = build_params(None, epoch_length=EPOCH, challenge_period=3_600,
                              unlock_period=EPOCH)  # fmt: skip
        manifest = tmp / "m.json"
        suite = Suite.load(w3, deploy_suite(deployer, params, manifest).manifest)
        for region, price in (("Lagos", 100_000), ("Lima", 200_000)):
            send_register_node(deployer, suite, NodeSpec(
                operator=operator.signer.address, attestor=address(ATTESTOR_KEY),
                shares=SUPPLY, price_per_1k=price, operator_cut_bps=1_000, region=region,
                external_id=f"web-{region}",
            ))  # fmt: skip
        send_transfer_shares(operator, suite, 1, investor.signer.address, HELD)
        _earn(suite, deployer)
        send_propose_cut(operator, suite, 1, 1_500)
        now = fetch_chain_time(suite)
        offering = str(send_create_offering(
            operator, suite, 2, 100_000 * SHARES, 50_000, 1_000 * USDC, 5_000 * USDC, now,
            now + 30 * 86_400,
        ).details["offering"])  # fmt: skip
        for who in (investor, customer):
            send_mint_mock(deployer, suite, who.signer.address, 1_000 * USDC)
        send_commit(investor, suite, offering, COMMITTED)
        send_deposit(customer, suite, 1, DEPOSIT)
        send_authorize_signer(customer, suite, 1, address(APP_KEY))
        db_url = f"sqlite:///{tmp / 'index.db'}"
        config = WebConfig(db_url=db_url, sync=False, rpc_url=chain.url)
        app = build_app(config, suite, static_dir=tmp / "static")
        state: WebState = app.state.web
        state.sync_now()
        with TestClient(app) as client:
            yield World(chain.url, manifest, suite, db_url, client, state, offering,
                        suite.fetch_share_tokens([1])[0], tmp)  # fmt: skip


def _earn(suite: Suite, deployer: Transactor) -> None:
    """Node 1's first two epochs settled by a payer, finalized and vested."""
    first = int(suite.registry.call("current_epoch"))
    advance_time(suite, 2 * EPOCH)
    payer = Transactor(suite.w3, Signer.from_key(PAYER_KEY))
    send_mint_mock(deployer, suite, payer.signer.address, 1_000 * USDC)
    deadline = fetch_chain_time(suite) + 86_400
    domain = fetch_domain_of(suite)
    reports = [
        sign(
            build_report(suite, 1, first + i, 10_000, 50 + i, 9_900, deadline), ATTESTOR_KEY, domain
        )
        for i in range(2)
    ]
    send_settle(payer, suite, reports)
    advance_time(suite, 3_601)
    send_finalize(payer, suite, 1, [first, first + 1])
    advance_time(suite, EPOCH + 1)


def cli_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, world: World,
    *args: str,
) -> Any:  # fmt: skip
    """``edgeshare ARGS --json`` on the world's chain: its parsed output."""
    where = ["--rpc-url", world.url, "--manifest", str(world.manifest)]
    code, out, err = run_main_streams(capsys, monkeypatch, {}, *args, "--json", *where)
    assert code == 0, err
    return json.loads(out)


def get(world: World, path: str, status: int = 200, **params: Any) -> Any:
    response = world.client.get(path, params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def error_of(world: World, path: str, status: int, **params: Any) -> dict[str, Any]:
    found: dict[str, Any] = get(world, path, status, **params)["error"]
    assert set(found) == {"code", "parameter", "message"}
    return found


def _order_body(world: World, key: str = INVESTOR_KEY) -> dict[str, Any]:
    """A sell order of node 1's shares (a random salt), signed with a permit."""
    suite = world.suite
    order = build_order(suite, address(key), world.token1, True, 1_000 * SHARES, 60_000)
    _, signed = sign_market_order(suite, key, order, with_permit=True)
    data = signed.model_dump(mode="json")
    signature, permit = data.pop("signature"), data.pop("permit")
    return {"order": data, "signature": signature, "permit": permit}


# ----------------------------------------------------------------------- config


def test_config__addresses_abis_and_market_domain(world: World) -> None:
    config = get(world, "/api/config")
    suite = world.suite
    assert config["chain_id"] == suite.manifest.chain_id
    assert config["stablecoin"] == {"address": suite.manifest.contracts.Stablecoin,
                                    "symbol": "USDC", "decimals": 6}  # fmt: skip
    assert config["contracts"]["ShareMarket"] == suite.market.address
    assert config["share_tokens"]["1"] == world.token1
    assert {"claim_many"} <= {f.get("name") for f in config["abis"]["PortfolioClaimer"]}
    domain = fetch_market_domain(suite)
    assert config["market"]["domain"] == domain.as_eip712()
    assert [f["name"] for f in config["market"]["types"]["Order"]][:3] == ["maker", "share", "sell"]
    assert config["block"] == suite.w3.eth.block_number


# --------------------------------------------------------- equal to the CLI's --json


@pytest.fixture(autouse=True)
def no_default_client_db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The CLI's client database is a missing file: never this machine's own."""
    monkeypatch.setenv(CLIENT_DB_ENV, str(tmp_path / "no-client.db"))


def without_wall_time(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without the clock's ``wall_time`` (this machine's clock when read)."""
    return {**data, "clock": {k: v for k, v in data["clock"].items() if k != "wall_time"}}


def test_board__rows_equal_market_json_with_filters_sort_and_pages(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = cli_json(capsys, monkeypatch, world, "market", "--db", world.db_url)
    board = get(world, "/api/board")
    assert board["rows"] == cli and [r["node_id"] for r in cli] == [1, 2]
    assert (board["total"], board["regions"], board["empty_reason"]) == (2, ["Lagos", "Lima"], None)
    assert board["rows"][0]["latency_ms"] == 51 and board["rows"][1]["new"] is True
    assert board["block"] == world.suite.w3.eth.block_number
    lima = get(world, "/api/board", region="lima")
    assert [r["node_id"] for r in lima["rows"]] == [2]
    assert lima["rows"] == cli_json(capsys, monkeypatch, world, "market", "--db", world.db_url,
                                    "--region", "Lima")  # fmt: skip
    cheap = get(world, "/api/board", max_price="100000")
    assert [r["node_id"] for r in cheap["rows"]] == [1]
    assert [r["node_id"] for r in get(world, "/api/board", sort="-node")["rows"]] == [2, 1]
    # a node without latency comes last whichever way latency is sorted
    assert [r["node_id"] for r in get(world, "/api/board", sort="-latency")["rows"]] == [1, 2]
    second = get(world, "/api/board", limit="1", offset="1")
    assert (second["total"], [r["node_id"] for r in second["rows"]]) == (2, [2])
    nowhere = get(world, "/api/board", region="Atlantis")
    assert nowhere["rows"] == [] and "known regions: Lagos, Lima" in nowhere["empty_reason"]


def test_portfolio__equals_portfolio_json_plus_vesting_earnings_and_claim(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    investor = address(INVESTOR_KEY)
    cli = cli_json(capsys, monkeypatch, world, "portfolio", investor.lower())
    page_ = get(world, f"/api/portfolio/{investor.lower()}")
    extras = {"share_bps", "vesting_ends_at", "earned", "earned_in_epochs", "annualised",
              "yield_seconds"}  # fmt: skip
    core = {k: v for k, v in page_.items() if k not in ("block", "claim", "orders")}
    core["holdings"] = [{k: v for k, v in h.items() if k not in extras} for h in core["holdings"]]
    assert core == {k: v for k, v in cli.items() if k != "orders"}
    (holding,) = page_["holdings"]
    assert (holding["node_id"], holding["shares"], holding["share_bps"]) == (1, str(HELD), 2_500)
    # holders get 85% of 2 x 10,000 inferences at 0.1 USDC per 1k; a quarter is the investor's
    assert [e["earned"] for e in holding["earned"]] == ["212500", "212500"]
    assert holding["earned_in_epochs"] == "425000"
    assert int(holding["annualised"]) == 425_000 * 365 * 86_400 // (2 * EPOCH)
    assert int(page_["total_claimable"]) == int(cli["total_claimable"]) > 0
    assert page_["claim"]["tokens"] == [world.token1]
    assert page_["claim"]["claimer"] == world.suite.claimer.address
    (commitment,) = page_["offerings"]
    assert (commitment["offering"], commitment["committed"]) == (world.offering, str(COMMITTED))


def test_operator__equals_status_operator_json_plus_attestor(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    operator = address(OPERATOR_KEY)
    cli = cli_json(capsys, monkeypatch, world, "status", "--operator", operator)
    page_ = get(world, f"/api/operator/{operator.lower()}")
    assert [n.pop("attestor") for n in page_["nodes"]] == [address(ATTESTOR_KEY)] * 2
    assert page_.pop("block") == cli["clock"]["block"]
    assert without_wall_time(page_) == without_wall_time(cli)
    first = page_["nodes"][0]
    assert (first["pending_cut_bps"], first["pending_cut_from"] > 0) == (1_500, True)
    assert page_["withdrawable"] == cli["withdrawable"] != "0"


def test_channels__equal_status_customer_json_plus_app_signers(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = address(CUSTOMER_KEY)
    cli = cli_json(capsys, monkeypatch, world, "status", "--customer", customer)
    page_ = get(world, f"/api/channels/{customer}")
    signers = [c.pop("app_signers") for c in page_["channels"]]
    assert page_["channels"] == cli["channels"]
    assert without_wall_time(page_)["clock"] == without_wall_time(cli)["clock"]
    assert signers == [[{"signer": address(APP_KEY), "valid_until": 2**256 - 1}]]
    (channel,) = page_["channels"]
    assert (channel["state"], channel["deposited"], channel["unredeemed"]) == (
        "open", str(DEPOSIT), str(DEPOSIT),
    )  # fmt: skip
    assert get(world, f"/api/channels/{address(APP_KEY)}")["channels"] == []


def test_offerings__equal_offering_status_json(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    investor = address(INVESTOR_KEY)
    cli = cli_json(capsys, monkeypatch, world, "offering", "status", "--investor", investor)
    listed = get(world, "/api/offerings", investor=investor)
    assert (listed.pop("block"), listed.pop("total")) == (cli["offerings"][0]["block"], 1)
    assert listed == cli
    one_cli = cli_json(capsys, monkeypatch, world, "offering", "status", world.offering,
                       "--investor", investor)  # fmt: skip
    one = get(world, f"/api/offerings/{world.offering.lower()}", investor=investor)
    assert one.pop("block") == one_cli["offerings"][0]["block"]
    assert one == one_cli
    (row,) = one["offerings"]
    assert (row["state"], row["total_committed"], row["soft_cap_reached"]) == (
        "OPEN", str(COMMITTED), False,
    )  # fmt: skip
    assert get(world, "/api/offerings", state="failed")["offerings"] == []
    assert get(world, "/api/offerings", node="1")["total"] == 0


def test_node__terms_equal_status_node_json_with_series_history_and_holders(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = cli_json(capsys, monkeypatch, world, "status", "--node", "1")
    page_ = get(world, "/api/nodes/1")
    node = page_["node"]
    assert {k: node[k] for k in cli["nodes"][0]} == cli["nodes"][0]
    assert (node["share_token"], node["region"], node["supply"]) == (
        world.token1, "Lagos", str(SUPPLY),
    )  # fmt: skip
    assert [(e["inferences"], e["revenue"], e["holders"], e["state"], e["latency_ms"])
            for e in page_["epochs"]] == [(10_000, "1000000", "850000", "finalized", ms)
                                          for ms in (50, 51)]  # fmt: skip
    kinds = [(h["kind"], h["what"], h["value"]) for h in page_["history"]]
    assert kinds == [("registered", "price", "100000"), ("registered", "cut", 1_000),
                     ("cut", "cut", 1_500)]  # fmt: skip
    assert page_["history"][-1]["effective_at"] == node["pending_cut_from"]
    holders = page_["holders"]
    assert holders["total"] == 2 and holders["rows"][1] == {
        "holder": address(INVESTOR_KEY), "shares": str(HELD), "share_bps": 2_500,
    }  # fmt: skip
    assert get(world, "/api/nodes/1", holders_limit="1", holders_offset="1")["holders"]["rows"] == [
        holders["rows"][1]
    ]
    # the latest epoch only: the current one, which has no report yet
    assert get(world, "/api/nodes/1", epochs="1")["epochs"] == []
    two = get(world, "/api/nodes/2")
    assert [o["address"] for o in two["offerings"]] == [world.offering]


def test_reads__kept_per_block_and_read_again_after_a_new_one(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgeshare.web import api

    suite = world.suite
    reads: list[str] = []

    def counted(suite_: Suite, operator: str) -> list[int]:
        reads.append(operator)
        return fetch_operated(suite_, operator)

    monkeypatch.setattr(api, "fetch_operated", counted)
    world.state.forget_cached()
    first = get(world, "/api/operator/" + address(OPERATOR_KEY))
    assert get(world, "/api/operator/" + address(OPERATOR_KEY)) == first
    assert len(reads) == 1  # the second body was the kept one: not read again
    snapshot = suite.rpc.call("evm_snapshot", [])
    try:
        suite.rpc.call("evm_mine", [])
        again = get(world, "/api/operator/" + address(OPERATOR_KEY))
        assert again["block"] == first["block"] + 1 == again["clock"]["block"]
        assert len(reads) == 2
    finally:
        suite.rpc.call("evm_revert", [snapshot])


def test_health__counts_reads_kept_and_read_again_per_route(world: World) -> None:
    """Health says, per route, how many reads found their body kept and how many were read
    again, with what the last one was read at: a new block is a miss naming the new head."""
    suite = world.suite
    world.state.forget_cached()

    def board_reads() -> dict[str, Any]:
        routes = get(world, "/api/health")["cache"]["routes"]
        found: dict[str, Any] = routes.get("get_board", {"hits": 0, "misses": 0})
        return found

    was = board_reads()
    get(world, "/api/board")
    get(world, "/api/board")
    now = board_reads()
    assert (now["hits"] - was["hits"], now["misses"] - was["misses"]) == (1, 1)
    head = suite.rpc.call("eth_getBlockByNumber", ["latest", False])["hash"]
    assert now["last_miss"]["head"] == head
    assert now["last_miss"]["orders"] >= 0 and "index_block" in now["last_miss"]
    snapshot = suite.rpc.call("evm_snapshot", [])
    try:
        suite.rpc.call("evm_mine", [])
        get(world, "/api/board")
        moved = board_reads()
        assert moved["misses"] == now["misses"] + 1 and moved["hits"] == now["hits"]
        assert moved["last_miss"]["head"] != head
    finally:
        suite.rpc.call("evm_revert", [snapshot])
    cache = get(world, "/api/health")["cache"]
    assert cache["bodies"] >= 1 and cache["bytes"] > 0
    assert all(route.startswith("get_") for route in cache["routes"])  # routes, not paths


def _record_rpc(monkeypatch: pytest.MonkeyPatch, suite: Suite) -> list[tuple[str, Any]]:
    """Every JSON-RPC call the suite sends from now on, (method, params), in order."""
    sent: list[tuple[str, Any]] = []
    batch = suite.rpc.batch

    def recorded(calls: Any, *args: Any, **kwargs: Any) -> list[Any]:
        sent.extend(calls)
        return batch(calls, *args, **kwargs)

    monkeypatch.setattr(suite.rpc, "batch", recorded)
    return sent


def test_portfolio__index_at_the_head__positions_read_once_in_one_call(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the index at the head, a portfolio reads the holder's positions once (one
    PortfolioClaimer.positions call, no read of a share token) and the head's header once
    (the cache's read, reused by the route)."""
    suite = world.suite
    world.state.sync_now()
    world.state.forget_cached()
    sent = _record_rpc(monkeypatch, suite)
    data = get(world, f"/api/portfolio/{address(INVESTOR_KEY)}")
    tokens = {t.lower() for t in suite.fetch_share_tokens([1, 2])}
    to = [str(p[0].get("to", "")).lower() for m, p in sent if m == "eth_call"]
    selector = "0x" + get_codec("PortfolioClaimer").fn("positions", 2).selector.hex()
    positions = [p for m, p in sent if m == "eth_call" and p[0]["data"].startswith(selector)]
    assert len(positions) == 1 and not tokens & set(to)
    assert [m for m, _ in sent].count("eth_getBlockByNumber") == 1
    assert data["holdings"][0]["shares"] == str(HELD)


# ------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("path", "params", "status", "parameter"),
    [
        ("/api/portfolio/0x123", {}, 400, "address"),
        ("/api/portfolio/not-an-address", {}, 400, "address"),
        ("/api/channels/0xZZ", {}, 400, "customer"),
        ("/api/operator/0x1234567890", {}, 400, "address"),
        ("/api/offerings/0x12", {}, 400, "address"),
        ("/api/board", {"limit": "-1"}, 400, "limit"),
        ("/api/board", {"limit": "0"}, 400, "limit"),
        ("/api/board", {"limit": "1001"}, 400, "limit"),
        ("/api/board", {"limit": "9" * 90}, 400, "limit"),
        ("/api/board", {"limit": "1e3"}, 400, "limit"),
        ("/api/board", {"offset": "-5"}, 400, "offset"),
        ("/api/board", {"colour": "red"}, 400, "colour"),
        ("/api/board", {"sort": "vibes"}, 400, "sort"),
        ("/api/board", {"max_price": "0.35"}, 400, "max_price"),
        ("/api/board", {"recent": "101"}, 400, "recent"),
        ("/api/book", {"limit": "201"}, 400, "limit"),
        ("/api/book", {"side": "short"}, 400, "side"),
        ("/api/book", {"maker": "0xnope"}, 400, "maker"),
        ("/api/book", {"node": "99"}, 404, "node"),
        ("/api/offerings", {"limit": "1000"}, 400, "limit"),
        ("/api/offerings", {"state": "sold"}, 400, "state"),
        ("/api/nodes/99", {}, 404, "node_id"),
        ("/api/nodes/0", {}, 400, "node_id"),
        ("/api/nodes/abc", {}, 400, "node_id"),
        ("/api/nodes/1", {"epochs": "201"}, 400, "epochs"),
        ("/api/nodes/1", {"holders_limit": "500"}, 400, "holders_limit"),
        ("/api/config", {"x": "1"}, 400, "x"),
        ("/api/offerings/0x000000000000000000000000000000000000dEaD", {}, 404, "address"),
        ("/api/nowhere", {}, 404, None),
    ],
)
def test_parameters__bad_ones_refused_with_json_naming_them(
    world: World, path: str, params: dict[str, str], status: int, parameter: str | None
) -> None:
    found = error_of(world, path, status, **params)
    assert found["parameter"] == parameter
    assert found["code"] == ("bad_parameter" if status == 400 else "not_found")
    if parameter:
        assert parameter in found["message"] or status == 404


def test_parameters__repeated_and_largest_pages(world: World) -> None:
    response = world.client.get("/api/board?limit=1&limit=2")
    assert response.status_code == 400
    assert response.json()["error"]["parameter"] == "limit"
    assert "twice" in response.json()["error"]["message"]
    assert get(world, "/api/board", limit="1000")["total"] == 2
    assert get(world, "/api/book", limit="200")["rows"] == get(world, "/api/book")["rows"]


def test_methods__post_to_a_read_and_get_of_orders_are_405(world: World) -> None:
    for method, path in (("post", "/api/board"), ("get", "/api/orders"),
                         ("delete", "/api/orders")):  # fmt: skip
        response = getattr(world.client, method)(path)
        assert response.status_code == 405, path
        assert response.json()["error"]["code"] == "method_not_allowed"


# ---------------------------------------------------------------------- headers


def _assert_security_headers(headers: Any, api: bool) -> None:
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    assert (headers["cache-control"] == "no-store") is api


def test_headers__csp_and_others_on_api_errors_html_and_static(world: World) -> None:
    static = world.tmp / "static"
    for path, api in (("/api/config", True), ("/api/nodes/99", True), ("/api/board?x=1", True),
                      ("/", False)):  # fmt: skip
        _assert_security_headers(world.client.get(path).headers, api)
    missing = world.client.get("/")
    assert missing.status_code == 503 and "make web" in missing.text
    assert missing.headers["content-type"].startswith("text/html")
    static.mkdir(exist_ok=True)
    (static / "index.html").write_text('<!doctype html><script src="/app.js"></script>')
    (static / "app.js").write_text("console.log('edgeshare')\n")
    try:
        page_ = world.client.get("/")
        assert page_.status_code == 200 and "/app.js" in page_.text
        _assert_security_headers(page_.headers, api=False)
        script = world.client.get("/app.js")
        assert script.status_code == 200 and script.text.startswith("console.log")
        assert script.headers["content-type"].startswith("text/javascript")
        _assert_security_headers(script.headers, api=False)
        for sneaky in ("/..%2Fm.json", "/.hidden", "/nothing.js"):
            response = world.client.get(sneaky)
            assert response.status_code == 404, sneaky
            _assert_security_headers(response.headers, api=False)
    finally:
        for name in ("index.html", "app.js"):
            (static / name).unlink()


# ----------------------------------------------------------------------- orders


def _book_rows(world: World) -> int:
    with world.state.engine.connect() as db:
        return len(list(db.execute(web_orders.select())))


def post(world: World, body: Any, status: int, **kwargs: Any) -> dict[str, Any]:
    if "content" not in kwargs:
        kwargs["json"] = body
    response = world.client.post("/api/orders", **kwargs)
    assert response.status_code == status, response.text
    _assert_security_headers(response.headers, api=True)
    result: dict[str, Any] = response.json()
    return result


def test_orders__good_order_stored_and_served_with_its_chain_status(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    body = _order_body(world)
    before = _book_rows(world)
    stored = post(world, body, 201)
    assert stored["stored"] is True and _book_rows(world) == before + 1
    row = stored["row"]
    assert (row["state"], row["side"], row["node_id"], row["maker"]) == (
        "open", "sell", 1, address(INVESTOR_KEY),
    )  # fmt: skip
    assert (row["remaining"], row["filled"], row["permit_covers"]) == (
        str(1_000 * SHARES), "0", True,
    )  # fmt: skip
    assert row["cost"] == str(1_000 * 60_000)
    # the same order again: kept once
    again = post(world, body, 200)
    assert again["stored"] is False and again["row"]["id"] == row["id"]
    assert _book_rows(world) == before + 1
    book = get(world, "/api/book", node="1", side="sell")
    assert row["order_hash"] in [r["order_hash"] for r in book["rows"]]
    assert get(world, "/api/book", side="buy")["rows"] == []
    assert get(world, "/api/nodes/1")["book"]["total"] >= 1
    # the portfolio lists it as `edgeshare portfolio --orders` lists a file's order
    orders = get(world, f"/api/portfolio/{address(INVESTOR_KEY)}")["orders"]
    mine = [o for o in orders if o["order_hash"] == row["order_hash"]]
    assert mine == [{
        "file": "book", "index": row["id"], "order_hash": row["order_hash"], "side": "sell",
        "token": world.token1, "symbol": "ESN1", "node_id": 1, "price_per_share": "60000",
        "remaining": str(1_000 * SHARES), "cost": row["cost"], "expiry": row["expiry"],
    }]  # fmt: skip
    # the row is `edgeshare trade book --json`'s for the same order in a file
    signed = SignedOrder.model_validate(row["order"])
    orders_file = world.tmp / f"order-{row['id']}.json"
    write_orders_file(orders_file, fetch_market_domain(world.suite), [signed])
    (cli_row,) = cli_json(capsys, monkeypatch, world, "trade", "book", str(orders_file))["orders"]
    assert {**cli_row, "file": "book", "index": row["id"]} == {k: row[k] for k in cli_row}
    # the order as served is what the market takes
    served = Order.model_validate({k: v for k, v in row["order"].items()
                                   if k not in ("signature", "permit")})  # fmt: skip
    assert served.amount == 1_000 * SHARES and row["order"]["signature"] == body["signature"]


def test_orders__a_maker_over_the_live_order_cap_refused_and_nothing_stored(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgeshare.web import book

    post(world, _order_body(world), 201)
    monkeypatch.setattr(book, "MAX_LIVE_ORDERS_PER_MAKER", _live_orders(world, INVESTOR_KEY))
    before = _book_rows(world)
    error = post(world, _order_body(world), 422)["error"]
    assert (error["code"], error["parameter"]) == ("too_many_orders", "order.maker")
    assert "unexpired orders" in error["message"] and _book_rows(world) == before
    # another maker still has room
    post(world, _order_body(world, OPERATOR_KEY), 201)


def _live_orders(world: World, key: str) -> int:
    with world.state.engine.connect() as db:
        c = web_orders.c
        return len(list(db.execute(web_orders.select().where(c.maker == address(key)))))


def test_orders__a_makers_expired_orders_deleted_when_it_stores_another(world: World) -> None:
    """Expired orders are never open again: the maker's go when it submits (its rows stay
    bounded), another maker's stay until that maker submits."""
    suite, domain = world.suite, world.state.domain
    now = fetch_chain_time(suite)

    def signed(key: str, expiry: int) -> SignedOrder:
        order = build_order(suite, address(key), world.token1, False, SHARES, 50_000,
                            expiry=expiry)  # fmt: skip
        return sign_order(order, key, domain)

    with world.state.db() as db:
        old = [store_order(db, signed(INVESTOR2_KEY, now + 100), domain, chain_time=now)[0]
               for _ in range(3)]  # fmt: skip
        other = store_order(db, signed(CUSTOMER_KEY, now + 100), domain, chain_time=now)[0]
        later = now + 101  # every order above has expired
        fresh = store_order(db, signed(INVESTOR2_KEY, later + 3_600), domain, chain_time=later)
        ids = {int(i) for (i,) in db.execute(web_orders.select().with_only_columns(
            web_orders.c.id))}  # fmt: skip
    assert fresh[1] is True and fresh[0] in ids
    assert not set(old) & ids  # the maker's expired orders are gone
    assert other in ids  # another maker's stay (never served: expired ones are not read)
    world.state.forget_cached()


def test_orders__refused_with_a_clear_message_and_nothing_stored(world: World) -> None:
    before = _book_rows(world)
    good = _order_body(world)
    tampered = {**good, "order": {**good["order"], "amount": str(2_000 * SHARES)}}
    assert post(world, tampered, 422)["error"]["code"] == "bad_signature"
    other_chain = {**good, "domain": {**fetch_market_domain(world.suite).as_eip712(),
                                      "chainId": 1}}  # fmt: skip
    refused = post(world, other_chain, 422)["error"]
    assert (refused["code"], refused["parameter"]) == ("wrong_domain", "domain")
    assert "chain 1" in refused["message"]
    # signed in another market's domain (no domain named): it recovers to someone else
    domain = fetch_market_domain(world.suite).model_copy(update={"chain_id": 1})
    order = Order.model_validate({k: v for k, v in good["order"].items()})
    foreign = sign_order(order, INVESTOR_KEY, domain)
    signed_elsewhere = {"order": good["order"], "signature": foreign.signature}
    refused = post(world, signed_elsewhere, 422)["error"]
    assert refused["code"] == "bad_signature" and "not by the maker" in refused["message"]
    # expired: chain time is past its expiry
    now = fetch_chain_time(world.suite)
    old = Order.model_validate({**order.model_dump(), "expiry": now - 1, "salt": 7})
    stale = sign_order(old, INVESTOR_KEY, fetch_market_domain(world.suite))
    expired = post(world, {"order": old.model_dump(mode="json"), "signature": stale.signature},
                   422)["error"]  # fmt: skip
    assert expired["code"] == "expired" and "expiry" in expired["message"]
    # a maker without the shares
    empty = Order.model_validate({**order.model_dump(), "maker": address(INVESTOR2_KEY),
                                  "salt": 8, "nonce": 0})  # fmt: skip
    short = sign_order(empty, INVESTOR2_KEY, fetch_market_domain(world.suite))
    refused = post(world, {"order": empty.model_dump(mode="json"), "signature": short.signature},
                   422)["error"]  # fmt: skip
    assert refused["code"] == "not_fillable" and "maker balance short" in refused["message"]
    # malformed fields, missing ones, unknown ones
    missing = {**good, "order": {k: v for k, v in good["order"].items() if k != "salt"}}
    assert post(world, missing, 422)["error"]["parameter"] == "order.salt"
    negative = {**good, "order": {**good["order"], "amount": "-3"}}
    refused = post(world, negative, 422)["error"]
    assert (refused["code"], refused["parameter"]) == ("bad_order", "order.amount")
    assert post(world, {**good, "signature": "0x12"}, 422)["error"]["parameter"] == "signature"
    assert post(world, {**good, "extra": 1}, 422)["error"]["parameter"] == "extra"
    # the body itself
    huge = json.dumps({**good, "pad": "x" * MAX_ORDER_BODY})
    refused = post(world, None, 413, content=huge, headers={"content-type": "application/json"})
    assert refused["error"]["code"] == "body_too_large"
    broken = post(
        world, None, 400, content=b'{"order": ', headers={"content-type": "application/json"}
    )
    assert broken["error"]["code"] == "bad_json"
    as_json = {"content-type": "application/json"}
    assert post(world, None, 400, content=b"[1, 2]", headers=as_json)["error"]["code"] == "bad_json"
    text = post(world, None, 415, content=json.dumps(good), headers={"content-type": "text/plain"})
    assert text["error"]["code"] == "unsupported_media_type"
    assert _book_rows(world) == before


# ------------------------------------------------------------------ the indexer


def _wait_for(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_background_sync__picks_up_a_new_price(world: World) -> None:
    """An app whose indexer runs in the background sees a PriceSet mined after it started."""
    suite = world.suite
    snapshot = suite.rpc.call("evm_snapshot", [])
    try:
        config = WebConfig(db_url=f"sqlite:///{world.tmp / 'synced.db'}", sync=True,
                           sync_every=0.2, rpc_url=world.url)  # fmt: skip
        app = build_app(config, suite, static_dir=world.tmp / "static")
        with TestClient(app) as client:
            state: WebState = app.state.web
            assert state.thread is not None and state.thread.is_alive()

            def history() -> list[dict[str, Any]]:
                body = client.get("/api/nodes/2").json()
                return [h for h in body["history"] if h["kind"] == "price"]

            assert _wait_for(lambda: state.sync.runs >= 1)
            assert history() == []
            from edgeshare.roles import send_set_price

            operator = Transactor(suite.w3, Signer.from_key(OPERATOR_KEY))
            send_set_price(operator, suite, 2, 250_000)
            found = _wait_for(history)
            assert [h["value"] for h in found] == ["250000"]
            health = client.get("/api/health").json()
            assert health["index"]["last_block"] == suite.w3.eth.block_number
        assert state.thread is None  # stopped with the app
    finally:
        suite.rpc.call("evm_revert", [snapshot])


def test_postgres__two_apps_share_one_index_and_book(world: World, postgres_url: str) -> None:
    """One app indexes into PostgreSQL; another (--no-sync) serves the same board and book."""
    url = create_database(postgres_url, "web_shared")
    config = WebConfig(db_url=url, sync=True, sync_every=0.2, rpc_url=world.url)
    syncing = build_app(config, world.suite)
    reading = build_app(WebConfig(db_url=url, sync=False), world.suite)
    with TestClient(syncing) as a, TestClient(reading) as b:
        assert _wait_for(lambda: syncing.state.web.sync.runs >= 1)
        assert reading.state.web.thread is None  # --no-sync: it only reads
        board_a, board_b = a.get("/api/board").json(), b.get("/api/board").json()
        assert board_a == board_b == get(world, "/api/board")
        assert b.get("/api/health").json()["index"]["last_block"] == world.suite.w3.eth.block_number
        body = _order_body(world)
        stored = a.post("/api/orders", json=body)
        assert stored.status_code == 201, stored.text
        assert b.post("/api/orders", json=body).json()["stored"] is False
        hashes = [r["order_hash"] for r in b.get("/api/book").json()["rows"]]
        assert stored.json()["row"]["order_hash"] in hashes
        assert b.get("/api/nodes/1").json()["epochs"] == get(world, "/api/nodes/1")["epochs"]


# ------------------------------------------------------------------ the command


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--db", "mysql://user@host/db"], "unsupported database URL"),
        (["--sync-every", "0"], "--sync-every"),
        (["--port", "70000"], "--port"),
        (["--network", "anvil"], "starts a new, empty chain"),
    ],
)
def test_serve__bad_input_exits_2_with_a_message(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    flags: list[str], words: str,
) -> None:  # fmt: skip
    where = [] if "--network" in flags else ["--rpc-url", world.url]
    code, out, err = run_main_streams(capsys, monkeypatch, {}, "serve", *flags, *where,
                                      "--manifest", str(world.manifest))  # fmt: skip
    assert code == 2, out + err
    assert words in out + err


def test_serve__port_taken_exits_2(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        where = ["--rpc-url", world.url, "--manifest", str(world.manifest),
                 "--db", f"sqlite:///{world.tmp / 'serve.db'}"]  # fmt: skip
        code, out, err = run_main_streams(capsys, monkeypatch, {}, "serve", "--port", str(port),
                                          *where)  # fmt: skip
    assert code == 2 and "cannot listen" in out + err


def test_serve__serves_the_app_over_http_until_interrupted(world: World) -> None:
    """`edgeshare serve` as a process: it prints its URL, answers over HTTP, and stops
    cleanly on Ctrl-C (SIGINT)."""
    import httpx

    edgeshare = str(Path(sys.executable).parent / "edgeshare")
    command = [edgeshare, "serve", "--port", "0", "--rpc-url", world.url, "--manifest",
               str(world.manifest), "--db", f"sqlite:///{world.tmp / 'served.db'}",
               "--sync-every", "0.5"]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), server.stderr.read() if server.stderr else ""
        health = httpx.get(url + "api/health", timeout=10)
        assert health.status_code == 200 and health.json()["ok"] is True
        assert health.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        config = httpx.get(url + "api/config", timeout=10).json()
        assert config["chain_id"] == world.suite.manifest.chain_id
    finally:
        server.send_signal(signal.SIGINT)
        code = server.wait(timeout=30)
    assert code == 0


def test_demo_serve__leaves_an_open_offering_orders_and_channels_then_stops(
    tmp_path: Path,
) -> None:
    """`edgeshare demo --serve`: after the story the app serves the demo chain, with an
    open offering, two open orders in the book and the customers' channels; Ctrl-C stops
    the server and the chain."""
    import httpx

    edgeshare = str(Path(sys.executable).parent / "edgeshare")
    command = [edgeshare, "demo", "--nodes", "3", "--investors", "3", "--epochs", "1",
               "--serve", "--port", "0", "--reports-dir", str(tmp_path / "reports")]  # fmt: skip
    demo = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert demo.stdout is not None
        url = ""
        for line in demo.stdout:
            if line.startswith("http://"):
                url = line.strip()
                break
        assert url, demo.stderr.read() if demo.stderr else ""
        offerings = httpx.get(url + "api/offerings", params={"state": "open"}, timeout=30).json()
        assert [o["node_id"] for o in offerings["offerings"]] == [3]
        book = httpx.get(url + "api/book", timeout=30).json()
        assert sorted(r["side"] for r in book["rows"]) == ["buy", "sell"]
        assert {r["state"] for r in book["rows"]} == {"open"}
        customer = Signer.from_key(build_dev_keys(1 + 2 * 3 + 3 + 1)[-1]).address
        channels = httpx.get(url + f"api/channels/{customer}", timeout=30).json()
        assert channels["channels"], "the demo's first customer has a channel"
        assert httpx.get(url + "api/board", timeout=30).json()["total"] == 3
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(timeout=60)
    assert code == 0
    assert demo.stderr is not None and "the local chain has been stopped" in demo.stderr.read()


def test_config__typed_data_signed_as_a_wallet_does_is_accepted(world: World) -> None:
    """What a browser does: eth_signTypedData_v4 over the config's domain and Order type
    (uint256 fields as decimal strings), then POST: the book takes the signature."""
    config = get(world, "/api/config")
    order = build_order(world.suite, address(INVESTOR2_KEY), world.token1, False, 10 * SHARES,
                        40_000)  # fmt: skip
    message = {k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v
               for k, v in order.model_dump().items()}  # fmt: skip
    typed = {"types": config["market"]["types"], "primaryType": config["market"]["primaryType"],
             "domain": config["market"]["domain"], "message": message}  # fmt: skip
    signature = Account.sign_message(encode_typed_data(full_message=typed), INVESTOR2_KEY)
    body = {"order": message, "signature": "0x" + bytes(signature.signature).hex()}
    # the bidder holds no stablecoin yet: not fillable, which the market decides only for
    # a genuine signature (a wrong one is bad_signature)
    assert post(world, body, 422)["error"]["code"] == "not_fillable"
    bidder = Transactor(world.suite.w3, Signer.from_key(INVESTOR2_KEY))
    send_mint_mock(Transactor(world.suite.w3, Signer.from_key(DEPLOYER_KEY)), world.suite,
                   bidder.signer.address, 10 * USDC)  # fmt: skip
    send_approve_market(bidder, world.suite, world.suite.stablecoin, 10 * USDC, "approve")
    row = post(world, body, 201)["row"]
    assert (row["side"], row["state"], row["cost"]) == ("buy", "open", str(10 * 40_000))


def _holdings(data: dict[str, Any]) -> list[tuple[int, str, str]]:
    return [(h["node_id"], h["shares"], h["claimable"]) for h in data["holdings"]]


def test_portfolio__shares_received_after_the_index_stopped_shown_as_the_cli_shows_them(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API reads only the nodes a holder ever received shares of: the index's
    transfers and the chain's logs past the index's last block (this app does not sync)."""
    from edgeshare import market

    newcomer = Account.create().address
    operator = Transactor(world.suite.w3, Signer.from_key(OPERATOR_KEY))
    for node_id in (1, 2):
        send_transfer_shares(operator, world.suite, node_id, newcomer, 7 * SHARES)
    cli = cli_json(capsys, monkeypatch, world, "portfolio", newcomer)
    page_ = get(world, f"/api/portfolio/{newcomer}")
    assert _holdings(page_) == _holdings(cli) == [(1, str(7 * SHARES), "0"),
                                                   (2, str(7 * SHARES), "0")]  # fmt: skip
    # an index too far behind to read its gap's logs: every node is read, same answer
    monkeypatch.setattr(market, "MAX_LOG_GAP", 0)
    send_transfer_shares(operator, world.suite, 1, newcomer, SHARES)  # a new block: not cached
    assert _holdings(get(world, f"/api/portfolio/{newcomer}"))[0][1] == str(8 * SHARES)


def test_node__pending_read_from_the_chain_finalized_epochs_from_the_index(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node page reads each recent epoch's settlement for its pending reports, but not
    the epochs the index holds as finalized (final: they never change); a report settled
    since is listed as `edgeshare status` lists it."""
    suite = world.suite
    payer = Transactor(suite.w3, Signer.from_key(PAYER_KEY))
    epoch = int(suite.registry.call("current_epoch")) - 1  # ended, never settled
    report = build_report(suite, 1, epoch, 1_000, 40, 9_950, fetch_chain_time(suite) + 86_400)
    send_settle(payer, suite, [sign(report, ATTESTOR_KEY, fetch_domain_of(suite))])
    world.state.sync_now()
    final = {int(e["epoch"]) for e in get(world, "/api/nodes/1")["epochs"]
             if e["state"] == "finalized"}  # fmt: skip
    assert len(final) == 2
    sent = _record_rpc(monkeypatch, suite)
    world.state.forget_cached()
    node = get(world, "/api/nodes/1")["node"]
    selector = "0x" + get_codec("RevenueRouter").fn("settlement", 2).selector.hex()
    read = {int(p[0]["data"][74:138], 16) for m, p in sent
            if m == "eth_call" and p[0]["data"].startswith(selector)}  # fmt: skip
    assert epoch in read and not final & read
    assert [p["epoch"] for p in node["pending"]] == [epoch]
    cli = cli_json(capsys, monkeypatch, world, "status", "--node", "1")
    assert node["pending"] == cli["nodes"][0]["pending"]


def test_portfolio__an_index_never_synced__holdings_read_from_the_chain(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app whose index has read nothing yet (its report knows no nodes) still shows what
    the holder holds, as the CLI does."""
    config = WebConfig(db_url=f"sqlite:///{world.tmp / 'never-synced.db'}", sync=False)
    investor = address(INVESTOR_KEY)
    cli = cli_json(capsys, monkeypatch, world, "portfolio", investor)
    with TestClient(build_app(config, world.suite, static_dir=world.tmp / "static")) as client:
        reply = client.get(f"/api/portfolio/{investor}")
    assert reply.status_code == 200, reply.text
    assert _holdings(reply.json()) == _holdings(cli) and _holdings(cli)


def test_fetch_portfolio__at_a_block_before_a_node_existed__holds_nothing_there(
    world: World,
) -> None:
    from edgeshare.market import fetch_portfolio

    suite, investor = world.suite, address(INVESTOR_KEY)
    before = suite.manifest.block  # the suite's deployment: no node registered yet
    assert fetch_portfolio(suite, investor, block=before) == []
    head = int(suite.rpc.call("eth_blockNumber", []), 16)
    assert fetch_portfolio(suite, investor, block=head) == fetch_portfolio(suite, investor)
