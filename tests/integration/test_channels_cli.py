"""`edgeshare channel`: a customer and an operator, each with their own key, run the whole
flow with the CLI: deposit, an app key, vouchers, redemption (twice: the second redeems
nothing), a usage report whose payer pays only what channels did not, the holders'
claims, close, grace and withdrawal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeshare.attestation import sign
from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.channels import (
    SKIP_BAD_SIGNATURE,
    SKIP_EXPIRED,
    SKIP_NOT_COVERED,
    SKIP_OLD_GENERATION,
    UNKNOWN_TO_CACHE,
    Voucher,
    VoucherChecker,
    check_on_chain,
    fetch_channel,
    fetch_channels_domain,
    sign_voucher,
)
from edgeshare.deploy import build_params, deploy_suite
from edgeshare.poster import post_reports
from edgeshare.roles import advance_time, fetch_chain_time
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
)
from edgeshare.tx import Transactor
from tests.inproc import make_cli, snapshot_and_revert

EPOCH = 3_600
CHALLENGE = 3_600
USDC = 10**6
OWNER, OPERATOR, ATTESTOR, PAYER, CUSTOMER, APP, STRANGER = range(7)
SKIP_NONE = 0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A suite with one node (price 2 USDC per 1k inferences, 10% cut, 5% protocol fee,
    revenue vesting over one epoch) and a customer holding 100 USDC."""
    keys = build_dev_keys(7)
    with LocalChain("anvil") as chain:
        w3 = connect(chain.url)
        owner = Transactor(w3, Signer.from_key(keys[OWNER]))
        manifest = tmp_path_factory.mktemp("channels") / "manifest.json"
        params = build_params(
            None, epoch_length=EPOCH, challenge_period=CHALLENGE, unlock_period=EPOCH
        )
        suite = Suite.load(w3, deploy_suite(owner, params, manifest).manifest)
        spec = NodeSpec(
            operator=address(keys, OPERATOR),
            attestor=address(keys, ATTESTOR),
            shares=1_000 * 10**18,
            price_per_1k=2 * USDC,
            operator_cut_bps=1_000,
            region="Nairobi",
        )
        assert send_register_node(owner, suite, spec) == 1
        send_mint_mock(owner, suite, address(keys, CUSTOMER), 100 * USDC)
        send_mint_mock(owner, suite, address(keys, PAYER), 100 * USDC)
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
    """``cli(who, *args)`` runs ``edgeshare ARGS`` on the world's chain as ``who``."""
    return make_cli(capsys, monkeypatch, world["chain"].url, world["manifest"], world["keys"])


def balance(world: dict[str, Any], who: int) -> int:
    suite = world["suite"]
    return int(suite.stablecoin.call("balanceOf", address(world["keys"], who)))


def test_whole_flow__customer_and_operator_with_the_cli(
    world: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    suite, keys = world["suite"], world["keys"]
    customer, app = address(keys, CUSTOMER), address(keys, APP)
    # the customer deposits 25 USDC and lets an app key sign
    code, out = cli(CUSTOMER, "channel", "deposit", "1", "25")
    assert code == 0, out
    assert "deposited 25 USDC into your channel to node 1: 25 USDC unredeemed" in out
    code, out = cli(CUSTOMER, "channel", "authorize", "1", app)
    assert code == 0, out
    # vouchers: the customer's own for 2.5, then the app's for 4 in all
    first, second = tmp_path / "v1.json", tmp_path / "v2.json"
    code, out = cli(CUSTOMER, "channel", "voucher", "1", "2.5", "-o", str(first))
    assert code == 0, out
    code, out = cli(APP, "channel", "voucher", "1", "4", "--customer", customer, "-o", str(second))
    assert code == 0, out
    assert json.loads(second.read_text())["vouchers"][0]["cumulative"] == 4 * USDC
    # the operator redeems both files: only the latest voucher pays, 4 USDC in all
    epoch = int(suite.registry.call("current_epoch"))
    code, out = cli(OPERATOR, "channel", "redeem", str(first), str(second))
    assert code == 0, out
    assert "redeemed 1 voucher(s) for 4 USDC" in out and "1 superseded" in out, out
    assert int(suite.router.call("channel_revenue", 1, epoch)) == 4 * USDC
    # again: nothing new to pay, nothing sent, the reason named
    code, out = cli(ATTESTOR, "channel", "redeem", str(second))
    assert code == 0, out
    assert "redeemed 0 voucher(s) for 0 USDC in 0 transaction(s)" in out, out
    assert "already redeemed" in out, out
    code, out = cli(None, "channel", "status", "--customer", customer, "--json")
    assert code == 0, out
    (row,) = json.loads(out)["channels"]
    assert (row["deposited"], row["redeemed"], row["unredeemed"]) == (
        "25000000",
        "4000000",
        "21000000",
    )
    # the epoch's usage report states 5,000 inferences (10 USDC): the payer pays only 6
    advance_time(suite, EPOCH)
    report = build_report(suite, 1, epoch, 5_000, 40, 9_990, 2**40)
    payer = Transactor(world["w3"], Signer.from_key(keys[PAYER]))
    before = balance(world, PAYER)
    assert (
        send_settle(payer, suite, [sign(report, keys[ATTESTOR], fetch_domain_of(suite))])
        == 6 * USDC
    )
    assert before - balance(world, PAYER) == 6 * USDC
    advance_time(suite, CHALLENGE + 1)
    assert send_finalize(payer, suite, 1, [epoch]) == 6 * USDC
    # holders (the operator holds every share) get 10 USDC less 5% fee and 10% cut, exactly
    advance_time(suite, EPOCH)
    share = suite.share(1)
    holders = 4 * USDC - 4 * USDC * 500 // 10_000 - 4 * USDC * 1_000 // 10_000
    holders += 6 * USDC - 6 * USDC * 500 // 10_000 - 6 * USDC * 1_000 // 10_000
    assert int(share.call("claimable", address(keys, OPERATOR))) in (holders, holders - 1)
    assert int(share.call("total_distributed")) == holders
    # close: refused to withdraw inside the grace, paid exactly the rest after it
    code, out = cli(CUSTOMER, "channel", "close", "1")
    assert code == 0, out
    assert "the node may redeem for" in out, out
    code, out = cli(CUSTOMER, "channel", "withdraw", "1")
    assert code == 2 and "grace period" in out, out
    advance_time(suite, int(suite.channels.call("CLOSE_GRACE")))
    before = balance(world, CUSTOMER)
    code, out = cli(CUSTOMER, "channel", "withdraw", "1")
    assert code == 0, out
    assert "withdrew 21 USDC from node 1" in out
    assert balance(world, CUSTOMER) - before == 21 * USDC
    assert int(suite.stablecoin.call("balanceOf", suite.channels.address)) == 0
    assert fetch_channel(suite, customer, 1).generation == 1


def test_deposit_dry_run__sends_nothing_and_shows_the_approval(
    world: dict[str, Any], cli: Any
) -> None:
    w3 = world["w3"]
    block = w3.eth.block_number
    code, out = cli(CUSTOMER, "channel", "deposit", "1", "5", "--dry-run")
    assert code == 0, out
    assert "approve the channels contract" in out and "deposit into the channel" in out, out
    assert w3.eth.block_number == block


def test_refusals__name_the_problem_and_send_nothing(
    world: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    w3 = world["w3"]
    keys = world["keys"]
    code, out = cli(CUSTOMER, "channel", "deposit", "1", "500")
    assert code == 2 and "holds 100 USDC; the deposit needs 500 USDC" in out, out
    code, out = cli(CUSTOMER, "channel", "deposit", "9", "1")
    assert code == 2 and "node 9 does not exist" in out, out
    code, out = cli(CUSTOMER, "channel", "voucher", "1", "1")
    assert code == 2 and "no deposit" in out, out
    assert cli(CUSTOMER, "channel", "deposit", "1", "3")[0] == 0
    block = w3.eth.block_number
    code, out = cli(CUSTOMER, "channel", "voucher", "1", "3.5")
    assert code == 2 and "exceeds the channel's deposits 3 USDC" in out, out
    code, out = cli(APP, "channel", "voucher", "1", "1", "--customer", address(keys, CUSTOMER))
    assert code == 2 and "is not authorised" in out, out
    code, out = cli(CUSTOMER, "channel", "withdraw", "1")
    assert code == 2 and "request the close first" in out, out
    # a stranger cannot redeem the customer's voucher: nothing is sent
    path = tmp_path / "v.json"
    assert cli(CUSTOMER, "channel", "voucher", "1", "1", "-o", str(path))[0] == 0
    code, out = cli(STRANGER, "channel", "redeem", str(path))
    assert code == 2 and "not its operator or attestor" in out, out
    assert w3.eth.block_number == block


def test_status__warns_below_the_low_balance_threshold(
    world: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    assert cli(CUSTOMER, "channel", "deposit", "1", "10")[0] == 0
    assert cli(CUSTOMER, "channel", "low-balance", "1", "5")[0] == 0
    path = tmp_path / "v.json"
    assert cli(CUSTOMER, "channel", "voucher", "1", "6", "-o", str(path))[0] == 0
    code, out = cli(OPERATOR, "channel", "redeem", str(path), "--json")
    assert code == 0, out
    assert json.loads(out)["amount"] == "6000000"
    code, out = cli(CUSTOMER, "channel", "status")
    assert code == 0, out
    assert "4 USDC left, below your threshold 5 USDC" in out, out


def test_voucher_checker__agrees_with_the_chain(world: dict[str, Any], cli: Any) -> None:
    """The gateway's cached check accepts what the chain would redeem and refuses, for the
    same reason, what it would skip; it makes no RPC call."""
    suite, keys = world["suite"], world["keys"]
    customer = address(keys, CUSTOMER)
    assert cli(CUSTOMER, "channel", "deposit", "1", "10")[0] == 0
    checker = VoucherChecker.load(suite, 1, [customer])
    domain = fetch_channels_domain(suite)
    now = fetch_chain_time(suite)
    cases = {
        "covered": (dict(cumulative=2 * USDC), keys[CUSTOMER], SKIP_NONE),
        "over the deposit": (dict(cumulative=11 * USDC), keys[CUSTOMER], SKIP_NOT_COVERED),
        "another generation": (dict(generation=1), keys[CUSTOMER], SKIP_OLD_GENERATION),
        "expired": (dict(deadline=now - 1), keys[CUSTOMER], SKIP_EXPIRED),
        "not the customer's key": (dict(), keys[STRANGER], SKIP_BAD_SIGNATURE),
    }
    for name, (changes, key, reason) in cases.items():
        fields: dict[str, Any] = dict(
            node_id=1, customer=customer, generation=0, cumulative=USDC, deadline=now + 600
        )
        fields.update(changes)
        signed = sign_voucher(Voucher(**fields), key, domain)
        verdict = checker.check(signed, now)
        if key == keys[STRANGER]:
            # a key the cache has not seen: the gateway reads it once, off the hot path
            assert verdict.reason == UNKNOWN_TO_CACHE
            checker.refresh(suite, [customer], [address(keys, STRANGER)])
            verdict = checker.check(signed, now)
        (on_chain,) = check_on_chain(suite, [signed], address(keys, OPERATOR))
        assert (verdict.amount, verdict.reason) == on_chain, name
        assert verdict.reason == reason, name


def test_post_reports__batches_of_epochs_with_and_without_channel_revenue__all_settle(
    world: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    """A report of an epoch that channels paid into costs less gas than one of an epoch
    without: every batch gets its own gas estimate (one batch's estimate, reused for the
    next of the same size, ran that one out of gas)."""
    suite, keys, w3 = world["suite"], world["keys"], world["w3"]
    owner = Transactor(w3, Signer.from_key(keys[OWNER]))
    spec = NodeSpec(operator=address(keys, OPERATOR), attestor=address(keys, ATTESTOR),
                    shares=10**21, price_per_1k=2 * USDC, operator_cut_bps=1_000,
                    region="Accra")  # fmt: skip
    assert send_register_node(owner, suite, spec) == 2
    assert cli(CUSTOMER, "channel", "deposit", "1", "50")[0] == 0
    first = int(suite.registry.call("current_epoch"))
    for step in range(8):  # channel revenue in eight epochs of node 1 only
        path = tmp_path / f"v{step}.json"
        assert cli(CUSTOMER, "channel", "voucher", "1", str(step + 1), "-o", str(path))[0] == 0
        assert cli(OPERATOR, "channel", "redeem", str(path))[0] == 0
        advance_time(suite, EPOCH)
    domain = fetch_domain_of(suite)
    reports = [
        sign(build_report(suite, n, e, 2_000, 40, 9_990, 2**40), keys[ATTESTOR], domain)
        for n in (1, 2)
        for e in range(first, first + 8)
    ]
    payer = Transactor(w3, Signer.from_key(keys[PAYER]))
    result = post_reports(payer, suite, reports, domain, batch_size=8)
    assert (result.settled, len(result.transactions)) == (16, 2)
