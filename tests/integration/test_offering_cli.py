"""`edgeshare offering`: an operator offers shares of its node, two investors commit in
whole units, one cancels part, and after the end (anvil time travel) the offering
succeeds (shares delivered, the operator and the treasury paid) or fails (every
commitment refunded in full, the shares back). Bad input exits 2 naming the problem with
nothing sent; ``--dry-run`` sends nothing; ``--json`` keeps amounts exact."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.deploy import build_params, deploy_suite
from edgeshare.errors import InputError
from edgeshare.offerings import (
    fetch_commitments,
    fetch_offering,
    fetch_offerings,
    parse_time,
)
from edgeshare.roles import advance_time
from edgeshare.signer import Signer
from edgeshare.suite import NodeSpec, Suite, send_mint_mock, send_register_node
from edgeshare.tx import Transactor
from edgeshare.units import parse_duration
from tests.inproc import make_cli, snapshot_and_revert

USDC = 10**6
SHARE = 10**18
DAY = 86_400
OWNER, OPERATOR, INVESTOR, INVESTOR2, STRANGER, TREASURY = range(6)
FUNDS = 1_000 * USDC
SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A suite (1% offering fee, its own treasury) with one node of 1,000 shares, all the
    operator's, and two investors holding 1,000 USDC each."""
    keys = build_dev_keys(6)
    with LocalChain("anvil") as chain:
        w3 = connect(chain.url)
        owner = Transactor(w3, Signer.from_key(keys[OWNER]))
        manifest = tmp_path_factory.mktemp("offerings") / "manifest.json"
        params = build_params(None, treasury=address(keys, TREASURY))
        suite = Suite.load(w3, deploy_suite(owner, params, manifest).manifest)
        spec = NodeSpec(
            operator=address(keys, OPERATOR),
            attestor=address(keys, STRANGER),
            shares=1_000 * SHARE,
            price_per_1k=2 * USDC,
            operator_cut_bps=1_000,
            region="Lagos",
        )
        assert send_register_node(owner, suite, spec) == 1
        for who in (INVESTOR, INVESTOR2):
            send_mint_mock(owner, suite, address(keys, who), FUNDS)
        yield {"chain": chain, "w3": w3, "suite": suite, "manifest": manifest, "keys": keys}


@pytest.fixture(autouse=True)
def fresh(world: dict[str, Any]) -> Iterator[None]:
    yield from snapshot_and_revert(world["w3"])


def address(keys: list[str], who: int) -> str:
    return Signer.from_key(keys[who]).address


@pytest.fixture
def cli(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Any:
    """``cli(who, *args)`` runs ``edgeshare ARGS`` on the world's chain as ``who``; the
    output comes back with its lines joined (rich wraps long sentences)."""
    run = make_cli(capsys, monkeypatch, world["chain"].url, world["manifest"], world["keys"])

    def joined(who: int | None, *args: str) -> tuple[int, str]:
        code, out = run(who, *args)
        return code, " ".join(out.split())

    return joined


def usdc(world: dict[str, Any], who: int | str) -> int:
    holder = who if isinstance(who, str) else address(world["keys"], who)
    return int(world["suite"].stablecoin.call("balanceOf", holder))


def shares(world: dict[str, Any], who: int | str) -> int:
    holder = who if isinstance(who, str) else address(world["keys"], who)
    return int(world["suite"].share(1).call("balanceOf", holder))


def create(cli: Any, *extra: str) -> str:
    """The operator offers 100 shares at 2 USDC, soft cap 100 USDC (the hard cap: 200 USDC,
    what all of them cost), open now for 7 days; returns the offering's address."""
    args = ("offering", "create", "1", "100", "2", "--soft-cap", "100", "--end", "7d")
    code, out = cli(OPERATOR, *args, *extra, "--json")
    assert code == 0, out
    return str(json.loads(out)["details"]["offering"])


def status(cli: Any, *args: str) -> dict[str, Any]:
    code, out = cli(None, "offering", "status", *args, "--json")
    assert code == 0, out
    data: dict[str, Any] = json.loads(out)
    return data


def test_success__commit_cancel_claim_finish__pays_everyone_exactly(
    world: dict[str, Any], cli: Any
) -> None:
    suite, keys = world["suite"], world["keys"]
    investor, investor2 = address(keys, INVESTOR), address(keys, INVESTOR2)
    offering = create(cli)
    assert shares(world, offering) == 100 * SHARE
    assert shares(world, OPERATOR) == 900 * SHARE
    # two investors commit in whole units; the first takes 10 USDC back
    code, out = cli(INVESTOR, "offering", "commit", offering, "60")
    assert code == 0, out
    assert "committed 60 USDC" in out and "buys 30 ESN1" in out, out
    assert "60% of the soft cap 100 USDC, 30% of the hard cap 200 USDC" in out, out
    code, out = cli(INVESTOR2, "offering", "commit", offering, "50.5")
    assert code == 0, out
    assert "110.5 USDC committed, 110.50% of the soft cap" in out, out
    code, out = cli(INVESTOR, "offering", "cancel", offering, "10")
    assert code == 0, out
    assert "cancelled 10 USDC" in out and "yours is 50 USDC" in out, out
    assert usdc(world, INVESTOR) == FUNDS - 50 * USDC
    # status: one offering in words, the node's as JSON with exact amounts
    code, out = cli(None, "offering", "status", offering)
    assert code == 0, out
    assert "OPEN" in out and "100.5 USDC" in out and "100.50% reached" in out, out
    (row,) = status(cli, "--node", "1")["offerings"]
    assert (row["address"], row["state"], row["total_committed"]) == (
        offering,
        "OPEN",
        "100500000",
    )
    assert (row["soft_cap_bps"], row["hard_cap_bps"], row["remaining"]) == (
        10_050,
        5_025,
        "99500000",
    )
    assert row["shares_sold"] == str(25 * SHARE + 25_250_000_000_000_000_000)
    # nothing is delivered before the end
    code, out = cli(INVESTOR, "offering", "claim", offering)
    assert code == 2 and "no delivery before" in out, out
    advance_time(suite, 7 * DAY)
    data = status(cli, offering, "--investor", investor)
    assert data["offerings"][0]["state"] == "SUCCEEDED"
    (mine,) = data["commitments"]
    assert (mine["committed"], mine["shares_due"], mine["refund_due"]) == (
        "50000000",
        str(25 * SHARE),
        "0",
    )
    # the investor's portfolio shows the commitment and what it is due now
    code, out = cli(None, "portfolio", investor, "--json")
    assert code == 0, out
    (held,) = json.loads(out)["offerings"]
    assert (held["offering"], held["committed"], held["shares_due"]) == (
        offering,
        "50000000",
        str(25 * SHARE),
    )
    code, out = cli(None, "portfolio", investor)
    assert "Offerings committed to" in out and "(offering claim)" in out, out
    # the investor claims its own; a stranger delivers the other's (to that investor)
    code, out = cli(INVESTOR, "offering", "claim", offering)
    assert code == 0, out
    assert f"delivered 25 ESN1 to {investor}" in out, out
    code, out = cli(STRANGER, "offering", "claim", offering, "--for", investor2)
    assert code == 0, out
    assert shares(world, INVESTOR2) == 25_250_000_000_000_000_000
    code, out = cli(INVESTOR, "offering", "claim", offering)
    assert code == 2 and "already delivered" in out, out
    # finish: 1% fee to the treasury, the rest and the unsold shares to the operator
    before = usdc(world, OPERATOR)
    code, out = cli(STRANGER, "offering", "finish", offering, "--json")
    assert code == 0, out
    details = json.loads(out)["details"]
    fee = 100_500_000 * 100 // 10_000
    assert (details["proceeds"], details["fee"]) == ("100500000", str(fee))
    assert usdc(world, OPERATOR) - before == 100_500_000 - fee
    assert usdc(world, TREASURY) == fee
    assert shares(world, OPERATOR) == 900 * SHARE + 100 * SHARE - 50_250_000_000_000_000_000
    assert shares(world, offering) == 0 and usdc(world, offering) == 0
    view = fetch_offering(suite, offering)
    assert view.finished and view.state == "SUCCEEDED"
    assert [c.claimed for c in fetch_commitments(suite, investor)] == [True]
    code, out = cli(None, "offering", "status")
    assert code == 0, out
    assert "SUCCEEDED (finished)" in out, out


def test_failure__below_the_soft_cap__refunds_every_investor_in_full(
    world: dict[str, Any], cli: Any
) -> None:
    suite, keys = world["suite"], world["keys"]
    offering = create(cli, "--soft-cap", "150", "--investor-cap", "80")
    assert cli(INVESTOR, "offering", "commit", offering, "60")[0] == 0
    assert cli(INVESTOR2, "offering", "commit", offering, "50")[0] == 0
    code, out = cli(INVESTOR, "offering", "commit", offering, "30")
    assert code == 2 and "above the investor cap 80 USDC: you can add 20 USDC" in out, out
    advance_time(suite, 7 * DAY)
    (row,) = status(cli)["offerings"]
    assert row["state"] == "FAILED"
    code, out = cli(INVESTOR, "offering", "claim", offering)
    assert code == 2 and "failed" in out and "refund" in out, out
    code, out = cli(INVESTOR, "offering", "refund", offering)
    assert code == 0, out
    assert "refunded 60 USDC" in out, out
    code, out = cli(STRANGER, "offering", "refund", offering, "--for", address(keys, INVESTOR2))
    assert code == 0, out
    assert usdc(world, INVESTOR) == usdc(world, INVESTOR2) == FUNDS
    code, out = cli(INVESTOR, "offering", "refund", offering)
    assert code == 2 and "already refunded" in out, out
    code, out = cli(OPERATOR, "offering", "finish", offering)
    assert code == 0, out
    assert "(failed): 100 ESN1 back to the operator" in out, out
    assert shares(world, OPERATOR) == 1_000 * SHARE
    assert usdc(world, offering) == 0 and usdc(world, TREASURY) == 0
    code, out = cli(OPERATOR, "offering", "finish", offering)
    assert code == 2 and "already finished" in out, out


def test_bad_input__exits_2_naming_the_problem__nothing_sent(
    world: dict[str, Any], cli: Any
) -> None:
    w3, keys = world["w3"], world["keys"]
    offering = create(cli, "--start", "1d")
    block = w3.eth.block_number
    base = ("offering", "create", "1")
    cases: list[tuple[int, tuple[str, ...], str]] = [
        (OPERATOR, (*base, "100", "0", "--soft-cap", "1", "--end", "7d"),
         "the price per share must be more than 0"),
        (OPERATOR, (*base, "100", "2", "--soft-cap", "300", "--end", "7d"),
         "the soft cap 300 USDC is above the hard cap 200 USDC"),
        (OPERATOR, (*base, "100", "2", "--soft-cap", "1", "--hard-cap", "201", "--end", "7d"),
         "the hard cap 201 USDC buys 100.5 ESN1 at 2 USDC per share, more than the 100 ESN1"),
        (OPERATOR, (*base, "100", "2", "--soft-cap", "1", "--investor-cap", "250", "--end",
                    "7d"), "the investor cap 250 USDC is above the hard cap 200 USDC"),
        (OPERATOR, (*base, "100", "2", "--soft-cap", "1", "--end", "1000"),
         "is not in the future"),
        (OPERATOR, (*base, "100", "2", "--soft-cap", "1", "--start", "2d", "--end",
                    "2020-01-01T00:00Z"), "is not before the end"),
        (OPERATOR, (*base, "100", "2", "--soft-cap", "1", "--end", "400d"),
         "the window is longer than 365 days"),
        (OPERATOR, (*base, "100", "2", "--soft-cap", "1", "--end", "next week"),
         "--end: expected unix seconds, an ISO-8601 UTC time"),
        (OPERATOR, (*base, "100", "2.0000001", "--soft-cap", "1", "--end", "7d"),
         "has 7 decimals; the token has 6"),
        (OPERATOR, (*base, "2000", "2", "--soft-cap", "1", "--end", "7d"),
         "holds 900 ESN1; the offering needs 2,000 ESN1"),
        (STRANGER, (*base, "100", "2", "--soft-cap", "1", "--end", "7d"),
         "is not the operator of node 1"),
        (OPERATOR, ("offering", "create", "9", "1", "2", "--soft-cap", "1", "--end", "7d"),
         "node 9 does not exist"),
        (INVESTOR, ("offering", "commit", address(keys, STRANGER), "10"),
         "is not an offering of this suite"),
        (INVESTOR, ("offering", "commit", world["suite"].share(1).address, "10"),
         "is not an offering of this suite"),
        (INVESTOR, ("offering", "commit", "0x1234", "10"), "OFFERING:"),
        (INVESTOR, ("offering", "commit", offering, "10"), "opens at"),
        (INVESTOR, ("offering", "cancel", offering), "has nothing committed"),
        (STRANGER, ("offering", "finish", offering), "no finish before"),
    ]  # fmt: skip
    for who, args, message in cases:
        code, out = cli(who, *args)
        assert code == 2, (args, out)
        assert message in out, (args, out)
    assert w3.eth.block_number == block
    # once open: over the hard cap, over the balance
    advance_time(world["suite"], DAY)
    block = w3.eth.block_number
    code, out = cli(INVESTOR, "offering", "commit", offering, "201")
    assert code == 2 and "exceed the hard cap 200 USDC: 200 USDC can still be" in out, out
    code, out = cli(STRANGER, "offering", "commit", offering, "5")
    assert code == 2 and "holds 0 USDC; the commitment needs 5 USDC" in out, out
    code, out = cli(INVESTOR, "offering", "refund", offering, "--json")
    assert code == 2 and '"exit": 2' in out and "no refund before" in out, out
    assert w3.eth.block_number == block


def test_dry_run__sends_nothing_and_shows_the_approval(world: dict[str, Any], cli: Any) -> None:
    w3, suite = world["w3"], world["suite"]
    block = w3.eth.block_number
    args = ("offering", "create", "1", "100", "2", "--soft-cap", "100", "--end", "7d")
    code, out = cli(OPERATOR, *args, "--dry-run")
    assert code == 0, out
    assert "approve the offering factory" in out and "offer 100 ESN1 of node 1" in out, out
    assert w3.eth.block_number == block and fetch_offerings(suite) == []
    offering = create(cli)
    block = w3.eth.block_number
    code, out = cli(INVESTOR, "offering", "commit", offering, "5", "--dry-run", "--json")
    assert code == 0, out
    planned = json.loads(out)
    assert (planned["dry_run"], planned["sent"]) == (True, 0)
    assert [t["what"] for t in planned["transactions"]] == [
        "approve the offering",
        f"commit 5 USDC to offering {offering}",
    ]
    assert w3.eth.block_number == block
    assert fetch_offering(suite, offering).total_committed == 0


def test_parse_time__unix_iso_now_and_durations_after_a_start() -> None:
    now = 1_800_000_000
    assert parse_time("now", "--start", now=now) == now
    assert parse_time("1767225600", "--end", now=now) == 1_767_225_600
    assert parse_time("2026-01-01T00:00Z", "--end", now=now) == 1_767_225_600
    assert parse_time("2026-01-01 02:00+02:00", "--end", now=now) == 1_767_225_600
    assert parse_time("2026-01-01", "--end", now=now) == 1_767_225_600  # no offset: UTC
    assert parse_time("7d", "--end", now=now) == now + 7 * DAY
    assert parse_time("1d12h", "--end", now=now, after=now + 60) == now + 60 + 36 * 3_600
    assert parse_duration("90m", "--end") == 5_400
    for bad in ("", "soon", "7x", "1.5d", "+", "-3d"):
        with pytest.raises(InputError, match="--end: expected"):
            parse_time(bad, "--end", now=now)
    with pytest.raises(InputError, match="expected a duration like"):
        parse_duration("3600", "--end", bare_seconds=False)  # a bare number is a unix time


def test_brownie_script__create_commit_claim_finish_on_brownie_network(
    tmp_path: Path, deployer: Any, stranger: Any
) -> None:
    """scripts/offering.py acts through the same library on brownie's chain (its first
    account runs the node and, here, also buys)."""
    from edgeshare.brownie_support import get_suite, get_transactor

    manifest = str(tmp_path / "manifest.json")
    load_script("deploy").main(manifest)
    suite = get_suite(manifest)
    spec = NodeSpec(operator=deployer.address, attestor=stranger.address, shares=10**21,
                    price_per_1k=2_000, operator_cut_bps=0, region="Dhaka")  # fmt: skip
    node_id = send_register_node(get_transactor(), suite, spec)
    send_mint_mock(get_transactor(), suite, deployer.address, 500 * USDC)
    script = load_script("offering")
    made = script.create(str(node_id), "10", "5", "20", "1d", "", "", "", manifest)
    offering = str(made.details["offering"])
    script.commit(offering, "30", manifest)
    script.cancel(offering, "5", manifest)
    (view,) = script.main(str(node_id), manifest)
    assert (view.address, view.total_committed) == (offering, 25 * USDC)
    with pytest.raises(InputError, match="no refund before"):
        script.refund(offering, "", manifest)
    advance_time(suite, DAY)
    script.claim(offering, deployer.address, manifest)
    script.finish(offering, manifest)
    assert int(suite.share(node_id).call("balanceOf", deployer.address)) == 10**21
    assert int(suite.stablecoin.call("balanceOf", offering)) == 0
