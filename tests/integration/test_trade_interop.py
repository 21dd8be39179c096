"""Share-market orders signed by an independent client (ethers.js v6,
tests/interop/sign_order.mjs): the Python side reads them as an orders file, computes the
market's digest, makes the very same signatures, finds them open on chain, and a taker
fills them through the library; a sell order with an ethers-signed permit of the shares
(the maker sends nothing), and a buy order."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak

from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.deploy import build_params, deploy_suite
from edgeshare.orders import (
    ORDER_TYPE_STRING,
    SignedOrder,
    build_order,
    build_order_typed_data,
    check_orders,
    fetch_market_domain,
    get_order_digest,
    read_orders_file,
    recover_order_signer,
    send_approve_market,
    send_fill,
    sign_order,
    sign_permit,
)
from edgeshare.roles import fetch_chain_time
from edgeshare.signer import Signer
from edgeshare.suite import (
    NodeSpec,
    Suite,
    send_mint_mock,
    send_register_node,
    send_transfer_shares,
)
from edgeshare.tx import Transactor
from tests.inproc import snapshot_and_revert

ROOT = Path(__file__).resolve().parents[2]
USDC = 10**6
SHARES = 10**18
FEE_BPS = 10
OWNER, OPERATOR, SELLER, BUYER = range(4)
# ShareMarket.vy's ORDER_TYPE_HASH preimage, as the contract spells it
CONTRACT_ORDER_TYPE = (
    "Order(address maker,address share,bool sell,uint256 amount,uint256 price_per_share,"
    "uint256 min_fill,uint64 expiry,uint256 nonce,uint256 salt)"
)


def address(keys: list[str], who: int) -> str:
    return Signer.from_key(keys[who]).address


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A suite with one node; the seller holds 100 shares, the buyer 1,000 USDC; nobody
    has approved the market."""
    keys = build_dev_keys(4)
    with LocalChain("anvil") as chain:
        w3 = connect(chain.url)
        owner = Transactor(w3, Signer.from_key(keys[OWNER]))
        manifest = tmp_path_factory.mktemp("trade-interop") / "manifest.json"
        params = build_params(None, epoch_length=3_600, challenge_period=3_600)
        suite = Suite.load(w3, deploy_suite(owner, params, manifest).manifest)
        spec = NodeSpec(
            operator=address(keys, OPERATOR),
            attestor=address(keys, OPERATOR),
            shares=1_000 * SHARES,
            price_per_1k=2 * USDC,
            operator_cut_bps=0,
            region="Lagos",
        )
        assert send_register_node(owner, suite, spec) == 1
        operator = Transactor(w3, Signer.from_key(keys[OPERATOR]))
        send_transfer_shares(operator, suite, 1, address(keys, SELLER), 100 * SHARES)
        send_mint_mock(owner, suite, address(keys, BUYER), 1_000 * USDC)
        yield {"chain": chain, "w3": w3, "suite": suite, "keys": keys}


@pytest.fixture(autouse=True)
def fresh(world: dict[str, Any]) -> Iterator[None]:
    yield from snapshot_and_revert(world["w3"])


def sign_with_ethers(
    world: dict[str, Any], key: str, order: dict[str, Any], permit: bool = False
) -> dict[str, Any]:
    """Run the ethers.js client: it signs ``order`` (uint256s as decimal strings)."""
    proc = subprocess.run(
        [
            "node",
            str(ROOT / "tests" / "interop" / "sign_order.mjs"),
            world["chain"].url,
            world["suite"].market.address,
            json.dumps(order),
            *(["permit"] if permit else []),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "INTEROP_KEY": key},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def order_message(world: dict[str, Any], maker: int, sell: bool, amount: int, price: int) -> Any:
    """An order as the ethers client gets it: uint256s as decimal strings."""
    suite = world["suite"]
    share = suite.fetch_share_tokens([1])[0]
    built = build_order(suite, address(world["keys"], maker), share, sell, amount, price, SHARES)
    message = built.model_dump(mode="json")
    assert message["amount"] == str(amount) and isinstance(message["expiry"], int)
    return built, message


def read_ethers_order(out: dict[str, Any], path: Path) -> SignedOrder:
    """The ethers client's order (one object, no domain), read as `trade fill` reads it."""
    path.write_text(json.dumps(out["order"]))
    parsed = read_orders_file(path)
    assert parsed.domain is None
    (signed,) = parsed.orders
    return signed


def test_type_string__is_the_contracts() -> None:
    assert ORDER_TYPE_STRING == CONTRACT_ORDER_TYPE


def test_digest__is_eth_accounts_typed_data_hash(world: dict[str, Any]) -> None:
    """The digest built word by word here is the one eth_account's general EIP-712
    encoder makes of ``build_order_typed_data``."""
    suite = world["suite"]
    share = suite.fetch_share_tokens([1])[0]
    domain = fetch_market_domain(suite)
    for sell in (True, False):
        built = build_order(
            suite, address(world["keys"], SELLER), share, sell, 7 * SHARES + 3, 2_000_001, 5
        )
        message = encode_typed_data(full_message=build_order_typed_data(built, domain))
        expected = keccak(b"\x19" + message.version + message.header + message.body)
        assert get_order_digest(built, domain) == expected


def test_ethers_sell_order_with_permit__same_digest_and_signatures__fills_without_approval(
    world: dict[str, Any], tmp_path: Path
) -> None:
    suite, keys, w3 = world["suite"], world["keys"], world["w3"]
    seller, buyer = address(keys, SELLER), address(keys, BUYER)
    built, message = order_message(world, SELLER, True, 10 * SHARES, 2_500_000)
    out = sign_with_ethers(world, keys[SELLER], message, permit=True)
    assert out["signer"] == seller
    signed = read_ethers_order(out, tmp_path / "order.json")
    assert signed.get_order() == built and signed.permit is not None
    domain = fetch_market_domain(suite)
    digest = get_order_digest(signed, domain)
    assert out["digest"] == "0x" + digest.hex()
    assert bytes(suite.market.call("order_hash", signed.as_tuple())) == digest
    assert recover_order_signer(signed, domain) == seller
    # RFC 6979 on both sides: the very same signatures as the Python signers'
    permit = sign_permit(suite, keys[SELLER], seller, built.share, built.amount, built.expiry)
    assert permit == signed.permit
    assert sign_order(built, keys[SELLER], domain, permit) == signed
    # the seller approved nothing: the permit makes the order open
    share = suite.share(1)
    assert int(share.call("allowance", seller, suite.market.address)) == 0
    (status,) = check_orders(suite, [signed])
    assert (status.state, status.permit_covers, status.cost) == ("open", True, 25 * USDC)
    # the buyer fills 4 through the library: permit, approval, fill
    taker = Transactor(w3, Signer.from_key(keys[BUYER]))
    action = send_fill(taker, suite, signed, 4 * SHARES)
    assert action.details["permit_submitted"] and action.details["approved"]
    assert (action.details["amount"], action.details["cost"]) == (4 * SHARES, 10 * USDC)
    assert action.details["fee"] == 10 * USDC * FEE_BPS // 10_000
    assert len(action.details["transactions"]) == 3
    assert int(share.call("balanceOf", buyer)) == 4 * SHARES
    assert int(share.call("nonces", seller)) == 1  # the permit was used
    # the rest: the allowance the permit set covers it; the used permit is not sent again
    action = send_fill(taker, suite, signed)
    assert not action.details["permit_submitted"] and action.details["remaining"] == 0
    assert int(share.call("balanceOf", buyer)) == 10 * SHARES
    (status,) = check_orders(suite, [signed])
    assert (status.state, status.filled) == ("filled", 10 * SHARES)


def test_ethers_buy_order__the_seller_fills_through_the_library(
    world: dict[str, Any], tmp_path: Path
) -> None:
    suite, keys, w3 = world["suite"], world["keys"], world["w3"]
    seller, buyer = address(keys, SELLER), address(keys, BUYER)
    built, message = order_message(world, BUYER, False, 3 * SHARES + 1, 1_500_001)
    maker = Transactor(w3, Signer.from_key(keys[BUYER]))
    # a buy order rounds down: floor((3 * 10**18 + 1) * 1_500_001 / 10**18)
    assert built.get_full_cost() == 4_500_003
    assert send_approve_market(maker, suite, suite.stablecoin, built.get_full_cost(), "approve")
    out = sign_with_ethers(world, keys[BUYER], message)
    signed = read_ethers_order(out, tmp_path / "order.json")
    assert signed.permit is None
    domain = fetch_market_domain(suite)
    assert out["digest"] == "0x" + get_order_digest(signed, domain).hex()
    assert sign_order(built, keys[BUYER], domain).signature == signed.signature.lower()
    (status,) = check_orders(suite, [signed], taker=seller)
    # the taker (seller) has not approved its shares yet: the fill approves them
    assert status.state == "taker allowance short" and status.cost == 4_500_003
    before = int(suite.stablecoin.call("balanceOf", seller))
    action = send_fill(Transactor(w3, Signer.from_key(keys[SELLER])), suite, signed)
    fee = 4_500_003 * FEE_BPS // 10_000
    assert (action.details["cost"], action.details["fee"]) == (4_500_003, fee)
    assert action.details["approved"] and not action.details["permit_submitted"]
    assert int(suite.share(1).call("balanceOf", buyer)) == 3 * SHARES + 1
    assert int(suite.stablecoin.call("balanceOf", seller)) - before == 4_500_003 - fee
    assert fetch_chain_time(suite) <= signed.expiry
