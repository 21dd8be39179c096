"""Deployers and role-named actors.

The suite is deployed through ``edgeshare.deploy.deploy_suite``, the same function the
CLI, the brownie scripts and the demo use; tests then talk to the contracts through
brownie objects for events and revert reasons. brownie's ``fn_isolation`` resets the
chain at each module start, so deployments are module-scoped.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import brownie
import pytest
from brownie import Contract, accounts, web3
from eth_account import Account
from eth_account.messages import encode_typed_data

from edgeshare.artifacts import load_artifact
from edgeshare.attestation import SignedReport, UsageReport, sign
from edgeshare.chain import build_dev_keys, get_free_port
from edgeshare.channels import SignedVoucher, Voucher, fetch_channels_domain, sign_voucher
from edgeshare.deploy import build_params, deploy_suite
from edgeshare.signer import Signer
from edgeshare.suite import NodeSpec, Suite, fetch_domain_of, send_register_node
from edgeshare.tx import Transactor

USDC = 10**6
SHARES = 10**18
CHALLENGE = 3_600  # RevenueRouter.MIN_CHALLENGE_PERIOD

# brownie's development anvil listens on 8545 unless told otherwise, so two test sessions
# on one machine would share (and reset) one chain. brownie-config.yaml cannot set the
# port (brownie 1.22.2's config merge fails on it); brownie launches the chain after this
# file is imported, so each session gets an anvil of its own on a free port.
# (brownie's submodules are reached through `brownie`: its test runner cannot read the
# compiled ones when they are imported here by name.)
brownie._config.CONFIG.networks["development"]["cmd_settings"]["port"] = get_free_port()

# anvil spills the per-block state of a long chain into ~/.foundry/anvil/tmp, and brownie
# ends its session chain with SIGKILL, which leaves that behind (about 0.9 GB a run). The
# anvil that this session starts by name therefore runs with a home of its own, which
# pytest_unconfigure removes once the chain is stopped.
# (pytest may import this file twice: the first import makes the home, both share it)
if "EDGESHARE_TEST_ANVIL_HOME" not in os.environ:
    os.environ["EDGESHARE_TEST_ANVIL_HOME"] = tempfile.mkdtemp(prefix="edgeshare-anvil-home-")
ANVIL_HOME = Path(os.environ["EDGESHARE_TEST_ANVIL_HOME"])
_REAL_ANVIL = shutil.which("anvil")
if _REAL_ANVIL is not None and not (ANVIL_HOME / "bin").exists():
    _wrapper = ANVIL_HOME / "bin" / "anvil"
    _wrapper.parent.mkdir()
    _wrapper.write_text(
        f'#!/bin/sh\nHOME={shlex.quote(str(ANVIL_HOME))} exec {shlex.quote(_REAL_ANVIL)} "$@"\n'
    )
    _wrapper.chmod(0o755)
    os.environ["PATH"] = f"{_wrapper.parent}{os.pathsep}{os.environ.get('PATH', '')}"


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop brownie's session chain, then remove everything it wrote."""
    if brownie.network.rpc.is_active():
        brownie.network.rpc.kill(False)
    shutil.rmtree(ANVIL_HOME, ignore_errors=True)


@pytest.fixture(autouse=True)
def isolation(fn_isolation: Any) -> None:
    """Every test starts from the state its module's fixtures built."""


@pytest.fixture(scope="module")
def deployer(module_isolation: Any) -> Any:
    """Deploys the suite; holds owner, registrar and guardian.

    Depends on brownie's ``module_isolation`` so the chain reset at module start
    happens before anything of the module is deployed.
    """
    return accounts[0]


@pytest.fixture(scope="module")
def operator() -> Any:
    """Runs a node; receives its shares at registration."""
    return accounts[1]


@pytest.fixture(scope="module")
def attestor() -> Any:
    """Signs a node's usage reports."""
    return accounts[2]


@pytest.fixture(scope="module")
def attestor_key(attestor: Any) -> str:
    """The attestor's private key (brownie's anvil runs the standard dev mnemonic)."""
    key = build_dev_keys(3)[2]
    assert Signer.from_key(key).address == attestor.address
    return key


@pytest.fixture(scope="module")
def investor() -> Any:
    """Buys shares and claims revenue."""
    return accounts[3]


@pytest.fixture(scope="module")
def investor2() -> Any:
    """A second investor."""
    return accounts[4]


@pytest.fixture(scope="module")
def payer() -> Any:
    """Pays for inference usage in the stablecoin."""
    return accounts[5]


@pytest.fixture(scope="module")
def stranger() -> Any:
    """Holds no role at all."""
    return accounts[6]


@pytest.fixture(scope="module")
def treasury() -> Any:
    """Receives protocol fees."""
    return accounts[7]


@pytest.fixture(scope="module")
def customer() -> Any:
    """Calls a node's models and pays it through a payment channel."""
    return accounts[8]


@pytest.fixture(scope="module")
def customer_key(customer: Any) -> str:
    """The customer's private key (the standard dev mnemonic's account 8)."""
    key = build_dev_keys(9)[8]
    assert Signer.from_key(key).address == customer.address
    return key


def brownie_contract(name: str, address: str) -> Any:
    """A brownie object for a suite contract, from the library's artifact."""
    return Contract.from_abi(name, address, load_artifact(name).abi)


@pytest.fixture(scope="module")
def deploy(
    deployer: Any, treasury: Any, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Suite]:
    """Deploy a suite through the library with the given parameters."""

    def _deploy(**params: Any) -> Suite:
        params.setdefault("treasury", treasury.address)
        params.setdefault("epoch_length", 60)
        params.setdefault("unlock_period", params["epoch_length"])
        params.setdefault("challenge_period", CHALLENGE)
        path = tmp_path_factory.mktemp("manifest") / "manifest.json"
        tx = Transactor(web3, Signer(address=deployer.address))
        result = deploy_suite(tx, build_params(None, **params), Path(path))
        return Suite.load(web3, result.manifest)

    return _deploy


@pytest.fixture(scope="module")
def suite(deploy: Callable[..., Suite]) -> Suite:
    """The default suite: 5% fee, 1-minute epochs, revenue vesting over one epoch, the
    shortest challenge window the router allows (1 hour)."""
    return deploy()


@pytest.fixture(scope="module")
def registry(suite: Suite) -> Any:
    return brownie_contract("NodeRegistry", suite.registry.address)


@pytest.fixture(scope="module")
def router(suite: Suite) -> Any:
    return brownie_contract("RevenueRouter", suite.router.address)


@pytest.fixture(scope="module")
def channels(suite: Suite) -> Any:
    return brownie_contract("PaymentChannels", suite.channels.address)


@pytest.fixture(scope="module")
def stablecoin(suite: Suite) -> Any:
    return brownie_contract("MockStablecoin", suite.stablecoin.address)


@pytest.fixture(scope="module")
def register(
    suite: Suite, deployer: Any, operator: Any, attestor: Any
) -> Callable[..., tuple[int, Any]]:
    """Register a node through the library; returns (node id, brownie NodeShare)."""

    def _register(**fields: Any) -> tuple[int, Any]:
        spec = {
            "operator": operator.address,
            "attestor": attestor.address,
            "shares": 1_000 * SHARES,
            "price_per_1k": 1_000,
            "operator_cut_bps": 1_000,
            "region": "Jakarta",
            "metadata_uri": "ipfs://node",
        }
        spec.update(fields)
        tx = Transactor(web3, Signer(address=deployer.address))
        node_id = send_register_node(tx, suite, NodeSpec(**spec))
        return node_id, brownie_contract("NodeShare", suite.registry.call("share_token", node_id))

    return _register


@pytest.fixture(scope="module")
def node(register: Callable[..., tuple[int, Any]]) -> tuple[int, Any]:
    """Node 1: 1,000 shares held by the operator, 10% cut, 1 base unit per inference."""
    return register()


@pytest.fixture(scope="module")
def funded(stablecoin: Any, deployer: Any, router: Any) -> Any:
    """The deployer (guardian and registrar) holds stablecoin and has approved the router."""
    stablecoin.mint(deployer, 10**15, {"from": deployer})
    stablecoin.approve(router, 2**256 - 1, {"from": deployer})
    return deployer


def get_now() -> int:
    """The latest block's timestamp (brownie's chain.time() drifts after reverts)."""
    return int(web3.eth.get_block("latest")["timestamp"])


def mine_at(timestamp: int) -> None:
    """Mine one block at exactly ``timestamp``."""
    web3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])
    web3.provider.make_request("evm_mine", [])


def set_next_timestamp(timestamp: int) -> None:
    """The next transaction's block gets exactly ``timestamp``."""
    web3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])


def assert_floor_share(claimable: int, numerator: int, denominator: int) -> None:
    """``claimable`` is the exact pro-rata amount rounded down, less at most 1 base unit
    (docs/SPEC.md, "Rounding": the per-share accumulator is itself rounded down)."""
    exact_floor = numerator // denominator
    assert exact_floor - 1 <= claimable <= exact_floor, (claimable, numerator, denominator)


FAR_DEADLINE = 2**63
# ShareMarket's EIP-712 Order type, written out here (not taken from edgeshare.orders) so
# that the tests sign orders independently of the library
ORDER_TYPE = [
    {"name": "maker", "type": "address"},
    {"name": "share", "type": "address"},
    {"name": "sell", "type": "bool"},
    {"name": "amount", "type": "uint256"},
    {"name": "price_per_share", "type": "uint256"},
    {"name": "min_fill", "type": "uint256"},
    {"name": "expiry", "type": "uint64"},
    {"name": "nonce", "type": "uint256"},
    {"name": "salt", "type": "uint256"},
]


def sign_report(suite: Suite, key: str, **fields: Any) -> SignedReport:
    """A report signed by ``key``; revenue defaults to inferences x the epoch's price."""
    if "revenue" not in fields:
        price = suite.registry.call("price_for_epoch", fields["node_id"], fields["epoch"])
        fields["revenue"] = fields["inferences"] * price // 1_000
    fields.setdefault("latency_ms", 80)
    fields.setdefault("uptime_bps", 9_990)
    fields.setdefault("deadline", FAR_DEADLINE)
    return sign(UsageReport(**fields), key, fetch_domain_of(suite))


def make_voucher(
    suite: Suite, key: str, node_id: int, customer: str, cumulative: int, **fields: Any
) -> SignedVoucher:
    """A voucher signed by ``key`` (generation 0 and a far deadline unless given)."""
    fields.setdefault("generation", 0)
    fields.setdefault("deadline", FAR_DEADLINE)
    voucher = Voucher(node_id=node_id, customer=customer, cumulative=cumulative, **fields)
    return sign_voucher(voucher, key, fetch_channels_domain(suite))


def voucher_args(vouchers: list[SignedVoucher]) -> tuple[list[tuple[Any, ...]], bytes]:
    """(voucher tuples, packed signatures) as redeem_many takes them."""
    return [v.as_tuple() for v in vouchers], b"".join(v.get_signature_bytes() for v in vouchers)


def report_args(signed: SignedReport) -> tuple[tuple[int, ...], bytes]:
    """(report tuple, signature) as the router's settle() takes them."""
    return signed.get_report().as_tuple(), signed.get_signature_bytes()


def mine_after(seconds: int) -> None:
    """Mine one block ``seconds`` after the latest one."""
    mine_at(get_now() + seconds)


class Payer:
    """Pays revenue to a node the only way the suite allows: a signed report for an
    ended, unsettled epoch, settled and (by default) finalized once its challenge
    window has passed, then left to vest fully."""

    def __init__(self, suite: Suite, key: str, payer: Any) -> None:
        self.suite = suite
        self.key = key
        self.payer = payer
        self.router = brownie_contract("RevenueRouter", suite.router.address)
        self.registry = brownie_contract("NodeRegistry", suite.registry.address)
        self.next_epoch: dict[int, int] = {}

    def take_epoch(self, node_id: int) -> int:
        """The node's next unused epoch, mining forward until it has ended."""
        epoch = max(self.next_epoch.get(node_id, 0), self.registry.registered_epoch(node_id))
        while self.router.is_settled(node_id, epoch):
            epoch += 1
        self.next_epoch[node_id] = epoch + 1
        if self.registry.current_epoch() <= epoch:
            mine_at(self.registry.epoch_start(epoch + 1))
        return epoch

    def settle(self, node_id: int, amount: int) -> tuple[int, Any]:
        """Settle ``amount`` of revenue; returns (epoch, settle transaction)."""
        epoch = self.take_epoch(node_id)
        price = self.registry.price_for_epoch(node_id, epoch)
        inferences = amount * 1_000 // price
        assert inferences * price // 1_000 == amount, "amount is not a whole number of inferences"
        signed = sign_report(
            self.suite, self.key, node_id=node_id, epoch=epoch, inferences=inferences
        )
        return epoch, self.router.settle(*report_args(signed), {"from": self.payer})

    def finalize(self, node_id: int, epochs: list[int], vest: bool = True) -> Any:
        """Wait out the challenge window, finalize, and (``vest``) wait out the vesting."""
        settled_at = max(self.router.settlement(node_id, e)["settled_at"] for e in epochs)
        window_end = settled_at + self.router.CHALLENGE_PERIOD()
        if get_now() < window_end:
            set_next_timestamp(window_end)
        tx = self.router.finalize(node_id, epochs, {"from": self.payer})
        if vest:
            mine_after(self.registry.UNLOCK_PERIOD())
        return tx

    def __call__(self, node_id: int, amount: int, vest: bool = True) -> Any:
        """Settle and finalize ``amount`` (fully vested unless ``vest`` is False);
        returns the finalize transaction."""
        epoch, _ = self.settle(node_id, amount)
        return self.finalize(node_id, [epoch], vest)


@pytest.fixture(scope="module")
def pay(suite: Suite, attestor_key: str, funded: Any) -> Payer:
    """Pays revenue to a node of the default suite through a signed report."""
    return Payer(suite, attestor_key, funded)


def sign_permit(
    share: Any, key: bytes, owner: str, spender: str, value: int, nonce: int, deadline: int
) -> Any:
    """An EIP-2612 permit signature by ``key`` for ``share``."""
    data = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Permit",
        "domain": {
            "name": share.name(),
            "version": "1",
            "chainId": web3.eth.chain_id,
            "verifyingContract": share.address,
        },
        "message": {
            "owner": owner,
            "spender": spender,
            "value": value,
            "nonce": nonce,
            "deadline": deadline,
        },
    }
    return Account.sign_message(encode_typed_data(full_message=data), key)
