"""`edgeshare basket` and the portfolio claim: an investor spreads itself over three
nodes with a basket, revenue arrives, anyone harvests, and `edgeshare claim` takes the
nodes' and the basket's revenue in one transaction. Bad input is refused before anything
is sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeshare.attestation import sign
from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.deploy import build_params, deploy_suite
from edgeshare.roles import advance_time
from edgeshare.signer import Signer
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
from tests.inproc import make_cli, snapshot_and_revert

EPOCH = 3_600
USDC = 10**6
SHARES = 10**18
OWNER, OPERATOR, ATTESTOR, PAYER, INVESTOR, OTHER, STRANGER = range(7)


def address(keys: list[str], who: int) -> str:
    return Signer.from_key(keys[who]).address


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Three nodes (Jakarta, Mumbai, Lagos); the investor holds 100 shares of each."""
    keys = build_dev_keys(7)
    with LocalChain("anvil") as chain:
        w3 = connect(chain.url)
        owner = Transactor(w3, Signer.from_key(keys[OWNER]))
        operator = Transactor(w3, Signer.from_key(keys[OPERATOR]))
        manifest = tmp_path_factory.mktemp("baskets") / "manifest.json"
        params = build_params(None, epoch_length=EPOCH, challenge_period=EPOCH, unlock_period=EPOCH)
        suite = Suite.load(w3, deploy_suite(owner, params, manifest).manifest)
        for region in ("Jakarta", "Mumbai", "Lagos"):
            spec = NodeSpec(
                operator=address(keys, OPERATOR), attestor=address(keys, ATTESTOR),
                shares=1_000 * SHARES, price_per_1k=1_000, operator_cut_bps=1_000, region=region,
            )  # fmt: skip
            node_id = send_register_node(owner, suite, spec)
            send_transfer_shares(operator, suite, node_id, address(keys, INVESTOR), 100 * SHARES)
        send_mint_mock(owner, suite, address(keys, PAYER), 1_000 * USDC)
        yield {"chain": chain, "w3": w3, "suite": suite, "manifest": manifest, "keys": keys}


@pytest.fixture(autouse=True)
def fresh(world: dict[str, Any]) -> Iterator[None]:
    yield from snapshot_and_revert(world["w3"])


@pytest.fixture
def cli(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Any:
    return make_cli(capsys, monkeypatch, world["chain"].url, world["manifest"], world["keys"])


def _pay(world: dict[str, Any], node_id: int, inferences: int) -> None:
    """A usage report for the node's current epoch, settled, finalized and vested."""
    suite, w3, keys = world["suite"], world["w3"], world["keys"]
    payer = Transactor(w3, Signer.from_key(keys[PAYER]))
    epoch = int(suite.registry.call("current_epoch"))
    advance_time(suite, EPOCH)
    report = build_report(suite, node_id, epoch, inferences, 80, 9_990, 2**40)
    send_settle(payer, suite, [sign(report, keys[ATTESTOR], fetch_domain_of(suite))])
    advance_time(suite, EPOCH + 1)
    send_finalize(payer, suite, node_id, [epoch])
    advance_time(suite, EPOCH + 1)


def _create(cli: Any) -> str:
    code, out = cli(
        INVESTOR, "basket", "create", "--name", "EdgeShare Emerging", "--symbol", "ESBEM",
        "--component", "1:1", "--component", "2:2", "--component", "3:0.5", "--json",
    )  # fmt: skip
    assert code == 0, out
    return str(json.loads(out)["details"]["basket"])


def test_basket__create_mint_harvest_and_one_claim_for_everything(
    world: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    suite, keys = world["suite"], world["keys"]
    investor = address(keys, INVESTOR)
    basket = _create(cli)
    code, out = cli(INVESTOR, "basket", "mint", basket, "10")
    assert code == 0, out
    assert "minted 10 units" in out
    share = suite.share(2)
    assert int(share.call("balanceOf", basket)) == 20 * SHARES  # 2 shares per unit
    for node_id in (1, 2, 3):
        _pay(world, node_id, 1_000_000)  # 1 USDC of revenue each
    code, out = cli(None, "basket", "status", basket, "--json")
    assert code == 0, out
    (view,) = json.loads(out)["baskets"]
    owed = int(view["harvestable"])
    assert owed > 0 and view["supply"] == str(10 * SHARES)
    code, out = cli(STRANGER, "basket", "harvest", basket)
    assert code == 0, out
    # the portfolio shows the three nodes and the basket; claim takes them all at once
    code, out = cli(None, "portfolio", investor, "--json")
    data = json.loads(out)
    assert [b["basket"] for b in data["baskets"]] == [basket]
    expected = int(data["total_claimable"])
    before = int(suite.stablecoin.call("balanceOf", investor))
    code, out = cli(INVESTOR, "claim", "--json")
    assert code == 0, out
    claimed = json.loads(out)
    assert int(claimed["total"]) == expected
    assert len({c["transaction"] for c in claimed["claims"]}) == 1  # one transaction
    assert {c["basket"] for c in claimed["claims"]} == {None, basket}
    assert int(suite.stablecoin.call("balanceOf", investor)) - before == expected
    # the investor report shows the basket units and what they earned (all claimed now)
    basket_paid = sum(int(c["amount"]) for c in claimed["claims"] if c["basket"] == basket)
    db = f"sqlite:///{tmp_path / 'index.db'}"
    code, out = cli(None, "report", "investor", investor, "--json", "--db", db)
    assert code == 0, out
    (held,) = json.loads(out)["baskets"]
    assert (held["basket"], held["units"]) == (basket, str(10 * SHARES))
    assert held["claimed"] == held["earned"] == str(basket_paid) and held["claimable"] == "0"
    # redeem gives the shares back
    code, out = cli(INVESTOR, "basket", "redeem", basket, "10")
    assert code == 0, out
    assert int(share.call("balanceOf", investor)) == 100 * SHARES


def test_basket_mint__without_the_shares__refused_and_nothing_sent(
    world: dict[str, Any], cli: Any
) -> None:
    basket = _create(cli)
    nonce = world["w3"].eth.get_transaction_count(address(world["keys"], INVESTOR))
    code, out = cli(INVESTOR, "basket", "mint", basket, "1000")  # needs 2,000 of node 2
    assert code == 2, out
    assert "minting needs" in out and "node 1" in out
    assert world["w3"].eth.get_transaction_count(address(world["keys"], INVESTOR)) == nonce


@pytest.mark.parametrize(
    "args, problem",
    [
        (["--component", "1:1", "--component", "1:2"], "named more than once"),
        (["--component", "9:1"], "node 9 does not exist"),
        (["--component", "1"], "expected NODE:WEIGHT"),
        (["--component", "1:0"], "weight must be 1 to 2**128"),
        (["--component", "1:abc"], "the weight of node 1"),
        # printed as typed: rich would turn ":abc:" into an emoji
        (["--component", "x:abc:"], "'x:abc:': expected NODE:WEIGHT"),
    ],
)
def test_basket_create__bad_components__exit_2_naming_the_problem(
    world: dict[str, Any], cli: Any, args: list[str], problem: str
) -> None:
    nonce = world["w3"].eth.get_transaction_count(address(world["keys"], INVESTOR))
    code, out = cli(INVESTOR, "basket", "create", "--name", "B", "--symbol", "B", *args)
    assert code == 2, out
    assert problem in out
    assert world["w3"].eth.get_transaction_count(address(world["keys"], INVESTOR)) == nonce


def test_basket_commands__an_address_that_is_not_a_basket__refused(
    world: dict[str, Any], cli: Any
) -> None:
    not_basket = world["suite"].share(1).address
    for who, args in ((INVESTOR, ["mint", not_basket, "1"]), (STRANGER, ["harvest", not_basket]),
                      (None, ["status", not_basket])):  # fmt: skip
        code, out = cli(who, "basket", *args)
        assert code == 2, (args, out)
        assert "is not a basket of this suite" in out


def test_basket_harvest__nothing_to_harvest__refused(world: dict[str, Any], cli: Any) -> None:
    basket = _create(cli)
    code, out = cli(STRANGER, "basket", "harvest", basket)
    assert code == 2 and "nothing to harvest" in out


def test_basket_mint__dry_run__sends_nothing(world: dict[str, Any], cli: Any) -> None:
    basket = _create(cli)
    nonce = world["w3"].eth.get_transaction_count(address(world["keys"], INVESTOR))
    code, out = cli(INVESTOR, "basket", "mint", basket, "1", "--dry-run")
    assert code == 0, out
    assert world["w3"].eth.get_transaction_count(address(world["keys"], INVESTOR)) == nonce


def test_claim__one_token__uses_its_own_claim_not_the_claimer(
    world: dict[str, Any], cli: Any
) -> None:
    """A lone claim goes to the token itself (cheaper than through the PortfolioClaimer,
    docs/GAS.md); two or more go through the claimer in one transaction."""
    suite, w3 = world["suite"], world["w3"]
    for node_id in (1, 2):
        _pay(world, node_id, 1_000_000)
    code, out = cli(INVESTOR, "claim", "--node", "1", "--json")
    assert code == 0, out
    (only,) = json.loads(out)["claims"]
    assert int(only["amount"]) > 0
    assert w3.eth.get_transaction(only["transaction"])["to"] == suite.share(1).address
    _pay(world, 1, 1_000_000)
    code, out = cli(INVESTOR, "claim", "--json")
    claims = json.loads(out)["claims"]
    assert len(claims) == 2 and len({c["transaction"] for c in claims}) == 1
    assert w3.eth.get_transaction(claims[0]["transaction"])["to"] == suite.claimer.address
