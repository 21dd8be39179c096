"""Fixtures of the web app's real-browser tests: one local anvil with a deployed suite in
a state like the demo's, one ``edgeshare serve`` on it, one headless chromium (Debian's,
through Playwright) per module, and a fresh page per test with a test-only EIP-1193
wallet (``provider.js``) whose requests Python answers from anvil.

The world's accounts (the anvil dev mnemonic's): 0 deploys, registers, pays reports and
guards; 1 operates nodes 1-3; 2 attests them; 3 holds shares of nodes 1 and 2; 4 buys
shares; 5 holds shares of node 3 and sells; 6 backs offerings; 7 is a channel customer;
8 holds shares of node 1 (claims to another address); 9 is the treasury; 10 holds shares
of every node and a commitment to the open offering, and never acts (the portfolio the
page and the CLI show).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from edgeshare.attestation import sign
from edgeshare.chain import LocalChain, build_dev_keys, connect, get_free_port
from edgeshare.deploy import build_params, deploy_suite
from edgeshare.metadata import NodeMetadata, build_data_uri, build_document
from edgeshare.offerings import send_commit, send_create_offering
from edgeshare.poster import finalize_reports, post_reports
from edgeshare.roles import advance_time, fetch_chain_time
from edgeshare.signer import Signer
from edgeshare.suite import (
    NodeSpec,
    Suite,
    fetch_domain_of,
    send_mint_mock,
    send_register_node,
    send_share_transfers,
)
from edgeshare.suite import build_report as build_usage_report
from edgeshare.tx import Transactor

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
PROVIDER_JS = Path(__file__).with_name("provider.js")
USDC = 10**6
SHARE = 10**18
HOUR = 3_600
(OWNER, OPERATOR, ATTESTOR, INVESTOR, BUYER, SELLER, BACKER, CUSTOMER, INVESTOR2, TREASURY,
 HOLDER) = range(11)  # fmt: skip
ACCOUNTS = 11
FUNDS = 10_000 * USDC
WRONG_CHAIN = 1
"""What the wallet reports in its wrong-chain mode (Ethereum mainnet)."""


@dataclass
class World:
    """The chain, the suite and what the tests act on."""

    chain: LocalChain
    suite: Suite
    manifest: Path
    keys: list[str]
    open_offering: str
    """Node 2's offering, open for 30 days."""
    failed_offering: str
    """Node 3's offering: ended below its soft cap; the backer committed 100 USDC."""
    succeeded_offering: str = ""
    """Node 1's offering: ended above its soft cap; investor 2 committed 20 USDC (400
    shares, not delivered yet)."""
    url: str = ""
    """The app's base URL (``edgeshare serve``)."""

    def address(self, who: int) -> str:
        """Dev account ``who``'s address."""
        return Signer.from_key(self.keys[who]).address

    def tx(self, who: int) -> Transactor:
        """A fresh sender for ``who`` (the page sends with the same accounts, so no nonce
        is kept between uses)."""
        return Transactor(connect(self.chain.url), Signer.from_key(self.keys[who]))

    def usdc(self, holder: str) -> int:
        """``holder``'s stablecoin balance."""
        return int(self.suite.stablecoin.call("balanceOf", holder))

    def wait_indexed(self) -> None:
        """Wait until the server's index has the chain's latest block."""
        head = int(self.suite.rpc.call("eth_blockNumber", []), 16)
        for _ in range(100):
            if httpx.get(f"{self.url}/api/health").json()["index"]["last_block"] >= head:
                return
            time.sleep(0.1)
        raise AssertionError(f"the index did not reach block {head} in 10 s")

    def shares(self, node_id: int, holder: str) -> int:
        """``holder``'s shares of ``node_id``."""
        return int(self.suite.share(node_id).call("balanceOf", holder))


def _metadata(i: int) -> str:
    gpu, model, rps = [("RTX 4090", "llama-3.1-8b", 40), ("L4", "qwen2.5-7b", 25),
                       ("H100", "mixtral-8x7b", 30)][i % 3]  # fmt: skip
    return build_data_uri(
        build_document(NodeMetadata(endpoint=f"https://node-{i + 1}.test.invalid/v1",
                                    models=[model], gpu=gpu, capacity_rps=rps))
    )  # fmt: skip


def _settle(world: World, epochs: list[int], finalize: bool) -> None:
    """Nodes 1-3 report ``epochs`` (ended); the owner pays; finalized after the window."""
    suite, owner = world.suite, world.tx(OWNER)
    domain = fetch_domain_of(suite)
    deadline = fetch_chain_time(suite) + 30 * 86_400
    reports = [
        sign(build_usage_report(suite, node, epoch, 2_000 * node + 137 * epoch, 60 + 7 * node,
                                9_950 + epoch % 40, deadline), world.keys[ATTESTOR], domain)
        for node in (1, 2, 3) for epoch in epochs
    ]  # fmt: skip
    post_reports(owner, suite, reports, domain)
    if finalize:
        advance_time(suite, int(suite.router.call("CHALLENGE_PERIOD")) + 1)
        finalize_reports(world.tx(OWNER), suite, [(r.node_id, r.epoch) for r in reports])


def build_world(chain: LocalChain, manifest: Path) -> World:
    """Deploy (1-hour epochs, challenge and vesting), register three nodes, place shares,
    open two offerings (one then fails), pay three epochs of usage (finalized and vested)
    and leave one more epoch pending."""
    keys = build_dev_keys(ACCOUNTS)
    w3 = connect(chain.url)
    owner = Transactor(w3, Signer.from_key(keys[OWNER]))
    params = build_params(None, epoch_length=HOUR, challenge_period=HOUR, unlock_period=HOUR,
                          treasury=Signer.from_key(keys[TREASURY]).address)  # fmt: skip
    suite = Suite.load(w3, deploy_suite(owner, params, manifest).manifest)
    operator = Signer.from_key(keys[OPERATOR]).address
    attestor = Signer.from_key(keys[ATTESTOR]).address
    regions = ["Jakarta", "Lagos", "Lima"]
    for i, region in enumerate(regions):
        spec = NodeSpec(operator=operator, attestor=attestor, shares=1_000_000 * SHARE,
                        price_per_1k=(i + 2) * USDC // 10, operator_cut_bps=1_000 + 500 * i,
                        region=region, metadata_uri=_metadata(i))  # fmt: skip
        send_register_node(owner, suite, spec)
    world = World(chain, suite, manifest, keys, "", "")
    address = world.address
    lots = [(address(INVESTOR), 250_000 * SHARE), (address(INVESTOR2), 50_000 * SHARE)]
    send_share_transfers(world.tx(OPERATOR), suite, 1, lots)
    send_share_transfers(world.tx(OPERATOR), suite, 2, [(address(INVESTOR), 100_000 * SHARE)])
    send_share_transfers(world.tx(OPERATOR), suite, 3, [(address(SELLER), 100_000 * SHARE)])
    send_share_transfers(world.tx(OPERATOR), suite, 1, [(address(HOLDER), 12_345 * SHARE)])
    send_share_transfers(world.tx(OPERATOR), suite, 2, [(address(HOLDER), 67_890 * SHARE)])
    send_share_transfers(world.tx(OPERATOR), suite, 3, [(address(HOLDER), 5 * SHARE)])
    for who in (OWNER, BUYER, BACKER, CUSTOMER, HOLDER, INVESTOR2):
        send_mint_mock(owner, suite, address(who), 10**9 * USDC if who == OWNER else FUNDS)
    now = fetch_chain_time(suite)
    made = []
    terms = ((2, 1_000 * USDC, now + 30 * 86_400), (3, 4_000 * USDC, now + HOUR),
             (1, 10 * USDC, now + HOUR))  # fmt: skip
    for node, soft_cap, end in terms:
        action = send_create_offering(world.tx(OPERATOR), suite, node, 100_000 * SHARE,
                                      50_000, soft_cap, 5_000 * USDC, now, end)  # fmt: skip
        made.append(str(action.details["offering"]))
    world.open_offering, world.failed_offering, world.succeeded_offering = made
    send_commit(world.tx(INVESTOR2), suite, world.succeeded_offering, 20 * USDC)
    send_commit(world.tx(BACKER), suite, world.failed_offering, 100 * USDC)
    send_commit(world.tx(HOLDER), suite, world.open_offering, 42 * USDC)
    first = int(suite.registry.call("current_epoch"))
    advance_time(suite, 3 * HOUR + 60)  # epochs first..first+2 have ended, and the offering
    _settle(world, [first, first + 1, first + 2], finalize=True)
    advance_time(suite, int(suite.registry.call("UNLOCK_PERIOD")) + 1)  # fully vested
    _settle(world, [int(suite.registry.call("current_epoch")) - 1], finalize=False)
    return world


def require_chromium() -> None:
    """Skip (or, with EDGESHARE_REQUIRE_BROWSER, fail) when Debian's chromium is missing."""
    if not Path(CHROMIUM).exists() or shutil.which("anvil") is None:
        if os.environ.get("EDGESHARE_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} (and anvil) are required: make install-browser")
        pytest.skip("needs Debian's chromium: make install-browser (make test installs it)")


def _edgeshare() -> list[str]:
    found = Path(sys.executable).with_name("edgeshare")
    return [str(found)] if found.exists() else [sys.executable, "-m", "edgeshare.cli"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The chain and suite, with ``edgeshare serve`` running on it (its index syncing every
    second into a SQLite file)."""
    require_chromium()
    folder = tmp_path_factory.mktemp("web")
    with LocalChain("anvil", accounts=ACCOUNTS) as chain:
        world = build_world(chain, folder / "manifest.json")
        port = get_free_port()
        log = (folder / "serve.log").open("wb")
        cmd = [*_edgeshare(), "serve", "--rpc-url", chain.url, "--manifest",
               str(world.manifest), "--db", f"sqlite:///{folder / 'index.db'}",
               "--host", "127.0.0.1", "--port", str(port), "--sync-every", "1"]  # fmt: skip
        server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        world.url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(world.url, server, folder / "serve.log")
            yield world
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()


def _wait_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"edgeshare serve exited: {log.read_text()[-3000:]}")
        try:
            found = httpx.get(f"{url}/api/health", timeout=2).json()
            if found.get("ok") and found.get("index", {}).get("last_block"):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"edgeshare serve did not come up: {log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def browser(world: World) -> Iterator[Any]:
    """One headless chromium for the module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@dataclass
class Wallet:
    """The Python side of provider.js: the page's account, its modes, what it was asked."""

    rpc_url: str
    account: str
    chain_id: int
    wrong_chain: bool = False
    """Report WRONG_CHAIN until the page asks to switch."""
    refuse_switch: bool = False
    """Refuse wallet_switchEthereumChain (code 4001)."""
    reject_next: bool = False
    """Reject the next signature or transaction (code 4001)."""
    skip_simulation: bool = False
    """Answer the next eth_call on the latest block with success (as a wallet's own gas
    estimate might), and send the next transaction with a fixed gas limit: a transaction
    that reverts gets mined, so its reason is read back from the chain."""
    calls: list[str] = field(default_factory=list)
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    def handle(self, text: str) -> str:
        """Answer one EIP-1193 request (JSON in, JSON out)."""
        request = json.loads(text)
        method, params = request["method"], request["params"]
        self.calls.append(method)
        return json.dumps(self._answer(method, params))

    def _answer(self, method: str, params: list[Any]) -> dict[str, Any]:
        if method in ("eth_requestAccounts", "eth_accounts"):
            return {"result": [self.account]}
        if method == "eth_chainId":
            return {"result": hex(WRONG_CHAIN if self.wrong_chain else self.chain_id)}
        if method == "wallet_switchEthereumChain":
            if self.refuse_switch:
                return _rejected()
            if int(params[0]["chainId"], 16) != self.chain_id:
                return {"error": {"code": 4902, "message": "unrecognised chain"}}
            self.wrong_chain = False
            return {"result": None, "event": {"name": "chainChanged", "value": hex(self.chain_id)}}
        signing = method in ("eth_sendTransaction", "eth_signTypedData_v4", "personal_sign")
        if signing and self.reject_next:
            self.reject_next = False
            return _rejected()
        if method == "eth_sendTransaction":
            params = [{**params[0], "from": self.account}]
            if self.skip_simulation:
                self.skip_simulation = False
                params[0]["gas"] = hex(1_000_000)
        if method == "eth_call" and self.skip_simulation and params[1:] in ([], ["latest"]):
            return {"result": "0x"}
        return self._forward(method, params)

    def _forward(self, method: str, params: list[Any]) -> dict[str, Any]:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        answer = self.client.post(self.rpc_url, json=body).json()
        if "error" in answer:
            return {"error": answer["error"]}
        return {"result": answer["result"]}


def _rejected() -> dict[str, Any]:
    return {"error": {"code": 4001, "message": "User rejected the request."}}


@dataclass
class App:
    """A page of the app with its wallet and what it requested from the network."""

    page: Any
    wallet: Wallet
    requests: list[str]
    base: str

    loads: int = 0
    connected: bool = False

    def go(self, route: str) -> None:
        """Load the app afresh at ``#/route`` (reconnecting the wallet if it was)."""
        self.loads += 1
        self.page.goto(f"{self.base}/?load={self.loads}#/{route}")
        self.page.wait_for_selector("body[data-ready='1']")
        if self.connected:
            self.connect()

    def connect(self) -> None:
        """Press Connect and wait for the account to show."""
        self.page.get_by_test_id("connect").first.click()
        self.page.wait_for_selector(f"[data-testid=account][data-address='{self.wallet.account}']")
        self.connected = True


@pytest.fixture
def open_app(world: World, browser: Any) -> Iterator[Callable[..., App]]:
    """``open_app(who, route, width=1280, legacy=False)``: a fresh browser context whose
    wallet holds dev account ``who`` (``legacy``: a wallet that only sets window.ethereum);
    closed after the test, which fails if any page requested a host other than the app's."""
    contexts: list[Any] = []
    apps: list[App] = []
    chain_id = int(world.suite.manifest.chain_id)

    def _open(who: int, route: str = "board", width: int = 1280, legacy: bool = False) -> App:
        context = browser.new_context(viewport={"width": width, "height": 900})
        contexts.append(context)
        if legacy:
            context.add_init_script(script="window.__edgeshareLegacyWallet = true;")
        context.add_init_script(path=str(PROVIDER_JS))
        wallet = Wallet(world.chain.url, world.address(who), chain_id)
        context.expose_function("__edgeshareWallet", wallet.handle)
        page = context.new_page()
        page.set_default_timeout(20_000)
        app = App(page, wallet, [], world.url)
        page.on("request", lambda r: app.requests.append(r.url))
        apps.append(app)
        app.go(route)
        return app

    yield _open
    for context in contexts:
        context.close()
    host = urlsplit(world.url).netloc
    for app in apps:
        elsewhere = [u for u in app.requests if not u.startswith("data:")
                     and urlsplit(u).netloc != host]  # fmt: skip
        assert not elsewhere, f"the page requested other hosts: {elsewhere}"
