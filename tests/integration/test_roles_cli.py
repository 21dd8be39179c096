"""Every role's commands (`operator`, `guardian`, `registrar`, `owner`, `withdraw`, `dev`,
`status`) as people run them, with amounts in whole units and `--dry-run`; and the gas of
a transfer that runs after time has passed (it used to run out of gas).

With payment channels: `status --customer` shows a customer's channels (balances,
generation, close and withdrawal times, the low-balance threshold and a warning below
it), `status --node` a node's channel revenue of its recent epochs, and `portfolio` the
channel revenue vesting at once; on the code before, `--customer` did not exist and
neither status nor portfolio showed channel revenue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeshare.attestation import sign
from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.channels import (
    build_voucher,
    fetch_channel,
    fetch_channels_domain,
    redeem_vouchers,
    send_deposit,
    send_request_close,
    send_set_low_balance,
    sign_voucher,
)
from edgeshare.deploy import build_params, deploy_suite
from edgeshare.pipeline import estimate_all, explain_revert
from edgeshare.signer import Signer
from edgeshare.suite import (
    NodeSpec,
    Suite,
    build_report,
    fetch_domain_of,
    send_finalize,
    send_increase_time,
    send_mint_mock,
    send_register_node,
    send_settle,
)
from edgeshare.tx import Receipt, Transactor
from tests.inproc import make_cli, run_main, snapshot_and_revert

EPOCH = 3_600
CHALLENGE = 3_600
UNLOCK = 86_400
USDC = 10**6
OWNER, OPERATOR, ATTESTOR, PAYER, INVESTOR, NEWCOMER = range(6)
CUSTOMER_KEY = build_dev_keys(7)[6]  # a funded dev account the world does not use


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A suite (the owner is also registrar, guardian and treasury) with one node whose
    epoch 0 report is settled and pending, and a funded payer."""
    keys = build_dev_keys(6)
    with LocalChain("anvil") as chain:
        w3 = connect(chain.url)
        owner = Transactor(w3, Signer.from_key(keys[OWNER]))
        manifest = tmp_path_factory.mktemp("roles") / "manifest.json"
        params = build_params(
            None, epoch_length=EPOCH, challenge_period=CHALLENGE, unlock_period=UNLOCK
        )
        suite = Suite.load(w3, deploy_suite(owner, params, manifest).manifest)
        spec = NodeSpec(
            operator=address(keys, OPERATOR),
            attestor=address(keys, ATTESTOR),
            shares=1_000 * 10**18,
            price_per_1k=2 * USDC,
            operator_cut_bps=1_000,
            region="Lagos",
        )
        assert send_register_node(owner, suite, spec) == 1
        payer = Transactor(w3, Signer.from_key(keys[PAYER]))
        send_mint_mock(owner, suite, payer.signer.address, 10**6 * USDC)
        send_increase_time(w3, EPOCH)
        report = build_report(suite, 1, 0, 5_000, 40, 9_990, 2**40)
        send_settle(payer, suite, [sign(report, keys[ATTESTOR], fetch_domain_of(suite))])
        yield {"chain": chain, "w3": w3, "suite": suite, "manifest": manifest, "keys": keys}


@pytest.fixture(autouse=True)
def fresh(world: dict[str, Any]) -> Iterator[None]:
    """Every test starts from the world's state."""
    yield from snapshot_and_revert(world["w3"])


def address(keys: list[str], who: int) -> str:
    return Signer.from_key(keys[who]).address


@pytest.fixture
def cli(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Any:
    """``cli(who, *args)`` runs ``edgeshare ARGS`` on the world's chain as ``who``."""
    return make_cli(capsys, monkeypatch, world["chain"].url, world["manifest"], world["keys"])


def node(world: dict[str, Any]) -> Any:
    return world["suite"].fetch_node(1)


def test_operator_set_price__takes_whole_units_and_says_when_it_applies(
    world: dict[str, Any], cli: Any
) -> None:
    code, out = cli(OPERATOR, "operator", "set-price", "1", "0.45")
    assert code == 0, out
    assert "0.45 USDC per 1k inferences from epoch 2" in out
    assert node(world).next_price_per_1k == 450_000
    code, out = cli(OPERATOR, "operator", "set-price", "1", "450001", "--base-units")
    assert code == 0, out
    assert node(world).next_price_per_1k == 450_001
    code, out = cli(OPERATOR, "operator", "set-price", "1", "0.4500001")
    assert code == 2 and "has 7 decimals; the token has 6" in out, out


def test_operator_commands__refuse_another_key_before_simulating(
    world: dict[str, Any], cli: Any
) -> None:
    code, out = cli(INVESTOR, "operator", "set-price", "1", "1")
    assert code == 2, out
    assert f"{address(world['keys'], INVESTOR)} is not node 1's operator" in out


def test_operator_propose_cut__an_increase_waits_a_week_and_shows_its_date(
    world: dict[str, Any], cli: Any
) -> None:
    code, out = cli(OPERATOR, "operator", "propose-cut", "1", "12.5%")
    assert code == 0, out
    record = node(world)
    assert record.pending_cut_bps == 1_250 and record.pending_cut_epoch >= 7 * 24
    assert "12.50% from epoch" in out and "UTC" in out
    code, out = cli(OPERATOR, "operator", "propose-cut", "1", "500 bps")
    assert code == 0, out
    assert node(world).next_operator_cut_bps == 500 and node(world).pending_cut_bps == 0


def test_operator_rotate_pause_resume_metadata_and_hand_over(
    world: dict[str, Any], cli: Any
) -> None:
    keys = world["keys"]
    new = address(keys, NEWCOMER)
    assert cli(OPERATOR, "operator", "rotate-attestor", "1", new.lower())[0] == 0
    assert node(world).attestor == new
    assert cli(OPERATOR, "operator", "pause", "1")[0] == 0
    assert node(world).status == "paused"
    assert cli(OPERATOR, "operator", "resume", "1")[0] == 0
    assert node(world).status == "active"
    code, out = cli(OPERATOR, "operator", "resume", "1")
    assert code == 2 and "already active" in out
    assert cli(OPERATOR, "operator", "set-metadata", "1", "ipfs://bafy-node-1")[0] == 0
    assert node(world).metadata_uri == "ipfs://bafy-node-1"
    assert cli(OPERATOR, "operator", "hand-over", "1", new)[0] == 0
    code, out = cli(INVESTOR, "operator", "accept", "1")
    assert code == 2 and "pending operator" in out
    assert cli(NEWCOMER, "operator", "accept", "1")[0] == 0
    assert node(world).operator == new


def test_registrar_pause__the_operator_cannot_lift_it_and_retire_is_final(
    world: dict[str, Any], cli: Any
) -> None:
    assert cli(OWNER, "registrar", "pause", "1")[0] == 0
    code, out = cli(OPERATOR, "operator", "resume", "1")
    assert code == 2 and "paused by the registrar" in out, out
    assert cli(OWNER, "registrar", "resume", "1")[0] == 0
    code, out = cli(OPERATOR, "registrar", "retire", "1")
    assert code == 2 and "only the registrar" in out, out
    assert cli(OWNER, "registrar", "retire", "1")[0] == 0
    assert node(world).status == "retired"
    code, out = cli(OWNER, "registrar", "resume", "1")
    assert code == 2 and "retired" in out


def test_guardian_dispute__the_payer_withdraws_its_refund(world: dict[str, Any], cli: Any) -> None:
    suite: Suite = world["suite"]
    payer = address(world["keys"], PAYER)
    before = int(suite.stablecoin.call("balanceOf", payer))
    code, out = cli(OWNER, "guardian", "dispute", "1", "0")
    assert code == 0, out
    assert "10 USDC owed back to its payer" in out  # 5,000 inferences at 2 USDC per 1k
    code, out = cli(PAYER, "withdraw")
    assert code == 0, out
    assert "withdrew 10 USDC" in out
    assert int(suite.stablecoin.call("balanceOf", payer)) == before + 10 * USDC
    code, out = cli(PAYER, "withdraw")
    assert code == 2 and "owes" in out and "nothing" in out
    code, out = cli(OWNER, "guardian", "dispute", "1", "0")
    assert code == 2 and "no pending report" in out


def test_guardian_pause__stops_finalizing_until_unpaused(world: dict[str, Any], cli: Any) -> None:
    assert cli(OWNER, "guardian", "pause")[0] == 0
    assert world["suite"].registry.call("paused") is True
    code, out = cli(OWNER, "guardian", "pause")
    assert code == 2 and "already paused" in out
    code, out = cli(OPERATOR, "guardian", "unpause")
    assert code == 2 and "is not the guardian" in out
    assert cli(OWNER, "guardian", "unpause")[0] == 0


def test_operator_withdraw__after_finalizing_pays_the_cut(world: dict[str, Any], cli: Any) -> None:
    suite: Suite = world["suite"]
    send_increase_time(world["w3"], CHALLENGE)
    send_finalize(Transactor(world["w3"], Signer.from_key(world["keys"][PAYER])), suite, 1, [0])
    code, out = cli(OPERATOR, "operator", "withdraw")
    assert code == 0, out
    assert "withdrew 1 USDC" in out  # a 10% cut of 10 USDC


def test_owner_roles_treasury_and_two_step_ownership(world: dict[str, Any], cli: Any) -> None:
    suite: Suite = world["suite"]
    keys = world["keys"]
    new = address(keys, NEWCOMER)
    for command, getter, contract in (
        ("set-registrar", "registrar", suite.registry),
        ("set-guardian", "guardian", suite.registry),
        ("set-treasury", "treasury", suite.router),
    ):
        code, out = cli(OWNER, "owner", command, new)
        assert code == 0, out
        assert contract.call(getter) == new
    assert cli(OWNER, "owner", "transfer-ownership", new)[0] == 0
    assert suite.registry.call("owner") == address(keys, OWNER)
    code, out = cli(INVESTOR, "owner", "accept-ownership")
    assert code == 2 and "pending owner" in out
    assert cli(NEWCOMER, "owner", "accept-ownership")[0] == 0
    assert suite.registry.call("owner") == new
    code, out = cli(OWNER, "owner", "set-guardian", new)
    assert code == 2 and "is not the suite's owner" in out


def test_dry_run__simulates_sends_nothing_and_prints_the_gas(
    world: dict[str, Any], cli: Any
) -> None:
    w3 = world["w3"]
    operator = address(world["keys"], OPERATOR)
    nonce = w3.eth.get_transaction_count(operator)
    code, out = cli(OPERATOR, "operator", "set-price", "1", "0.45", "--dry-run", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["dry_run"] is True and data["sent"] == 0
    (planned,) = data["transactions"]
    assert planned["to"] == world["suite"].registry.address and planned["gas"] > 21_000
    assert w3.eth.get_transaction_count(operator) == nonce
    assert node(world).next_price_per_1k == 2 * USDC
    code, out = cli(OWNER, "guardian", "dispute", "1", "0", "--dry-run")
    assert code == 0 and "nothing was sent" in out, out
    assert world["suite"].router.call("owed", address(world["keys"], PAYER)) == 0


def test_dev_mint_and_advance__move_money_and_time_on_a_local_chain(
    world: dict[str, Any], cli: Any
) -> None:
    suite: Suite = world["suite"]
    investor = address(world["keys"], INVESTOR)
    code, out = cli(OWNER, "dev", "mint", investor, "1,500.25")
    assert code == 0, out
    assert "minted 1,500.25 USDC" in out
    assert int(suite.stablecoin.call("balanceOf", investor)) == 1_500_250_000
    epoch = int(suite.registry.call("current_epoch"))
    code, out = cli(None, "dev", "advance", "--epochs", "2")
    assert code == 0, out
    assert int(suite.registry.call("current_epoch")) == epoch + 2
    assert (
        int(suite.registry.call("epoch_start", epoch + 2))
        == (world["w3"].eth.get_block("latest")["timestamp"])
    )


def test_status__shows_the_epoch_pending_report_and_when_it_becomes_final(
    world: dict[str, Any], cli: Any
) -> None:
    code, out = cli(None, "status", "--operator", address(world["keys"], OPERATOR))
    assert code == 0, out
    assert "epoch 1 ends" in out and "UTC" in out
    assert "Pending reports" in out and "10 USDC" in out and "in 1h" in out
    assert "can withdraw 0 USDC now" in out
    code, out = cli(None, "status", "--node", "1", "--json")
    data = json.loads(out)
    (pending,) = data["nodes"][0]["pending"]
    assert pending["revenue"] == "10000000" and pending["due"] is False


def test_status__an_investor_sees_claimable_and_vesting_with_its_end(
    world: dict[str, Any], cli: Any
) -> None:
    suite: Suite = world["suite"]
    w3 = world["w3"]
    send_increase_time(w3, CHALLENGE)
    send_finalize(Transactor(w3, Signer.from_key(world["keys"][PAYER])), suite, 1, [0])
    send_increase_time(w3, UNLOCK // 2)
    code, out = cli(None, "status", "--investor", address(world["keys"], OPERATOR), "--json")
    assert code == 0, out
    (position,) = json.loads(out)["positions"]
    claimable, vesting = int(position["claimable"]), int(position["vesting"])
    gross = 10 * USDC
    fee = gross * int(suite.router.call("PROTOCOL_FEE_BPS")) // 10_000
    holders = gross - fee - gross // 10  # the operator holds every share
    assert claimable + vesting in range(holders - 2, holders + 1)
    assert 0 < vesting < holders
    assert position["vesting_ends_at"] > w3.eth.get_block("latest")["timestamp"]


def test_status__says_an_idle_chain_clock_stands_still(world: dict[str, Any], cli: Any) -> None:
    w3 = world["w3"]
    head = w3.eth.get_block("latest")["timestamp"]
    w3.provider.make_request("evm_setNextBlockTimestamp", [head])  # keep the clock
    w3.provider.make_request("anvil_setTime", [head - 3 * 3_600])
    w3.provider.make_request("evm_mine", [])
    code, out = cli(None, "status")
    assert code == 0, out
    assert "behind this machine's" in out and "dev advance" in out


def _pay_by_channel(
    world: dict[str, Any], deposit: int, cumulative: int, threshold: int = 0
) -> str:
    """The customer deposits ``deposit`` into a channel to node 1 (with a low-balance
    ``threshold``) and the operator redeems its voucher of ``cumulative`` in the current
    epoch; returns the customer's address."""
    suite: Suite = world["suite"]
    w3 = world["w3"]
    customer = Transactor(w3, Signer.from_key(CUSTOMER_KEY))
    owner = Transactor(w3, Signer.from_key(world["keys"][OWNER]))
    send_mint_mock(owner, suite, customer.signer.address, deposit)
    send_deposit(customer, suite, 1, deposit)
    if threshold:
        send_set_low_balance(customer, suite, 1, threshold)
    domain = fetch_channels_domain(suite)
    voucher = build_voucher(suite, customer.signer.address, 1, cumulative)
    operator = Transactor(w3, Signer.from_key(world["keys"][OPERATOR]))
    signed = [sign_voucher(voucher, CUSTOMER_KEY, domain)]
    assert redeem_vouchers(operator, suite, signed, domain).redeemed == 1
    return customer.signer.address


def test_status__a_customer_sees_its_channels_and_a_low_balance_warning(
    world: dict[str, Any], cli: Any
) -> None:
    suite: Suite = world["suite"]
    w3 = world["w3"]
    customer = _pay_by_channel(world, 10 * USDC, 3 * USDC, threshold=8 * USDC)
    code, out = cli(None, "status", "--customer", customer)
    assert code == 0, out
    assert f"Payment channels of {customer}" in out and "open" in out
    assert "7 USDC" in out and "3 USDC" in out and "8 USDC" in out
    assert "warning" in out and "below its low-balance threshold of 8 USDC" in out
    code, out = cli(None, "status", "--customer", customer, "--json")
    assert code == 0, out
    (channel,) = json.loads(out)["channels"]
    assert channel == {
        "node_id": 1, "state": "open", "deposited": str(10 * USDC), "redeemed": str(3 * USDC),
        "unredeemed": str(7 * USDC), "generation": 0, "closes_at": 0, "withdrawable_at": 0,
        "low_balance_threshold": str(8 * USDC), "low_balance": True,
    }  # fmt: skip

    # a close requested: the node redeems until the grace ends, then the customer withdraws
    send_request_close(Transactor(w3, Signer.from_key(CUSTOMER_KEY)), suite, 1)
    on_chain = fetch_channel(suite, customer, 1)
    code, out = cli(None, "status", "--customer", customer, "--json")
    (channel,) = json.loads(out)["channels"]
    assert channel["state"] == "closing"
    assert channel["withdrawable_at"] == channel["closes_at"] == on_chain.withdrawable_at > 0
    code, out = cli(None, "status", "--customer", customer)
    assert code == 0 and "withdrawable from" in out and "UTC" in out
    send_increase_time(w3, int(suite.channels.call("CLOSE_GRACE")))
    code, out = cli(None, "status", "--customer", customer, "--json")
    assert json.loads(out)["channels"][0]["state"] == "withdrawable"
    code, out = cli(None, "status", "--customer", address(world["keys"], INVESTOR))
    assert code == 0 and "has no payment channel" in out


def test_status__a_node_shows_its_channel_revenue_of_recent_epochs(
    world: dict[str, Any], cli: Any
) -> None:
    suite: Suite = world["suite"]
    w3 = world["w3"]
    _pay_by_channel(world, 10 * USDC, 3 * USDC)
    epoch = int(suite.registry.call("current_epoch"))
    code, out = cli(None, "status", "--node", "1", "--json")
    assert code == 0, out
    (view,) = json.loads(out)["nodes"]
    assert view["channel_revenue"] == [
        {"epoch": e, "amount": str(suite.router.call("channel_revenue", 1, e)),
         "current": e == epoch}
        for e in range(epoch, -1, -1)
    ]  # fmt: skip
    assert view["channel_revenue"][0]["amount"] == str(3 * USDC)
    code, out = cli(None, "status", "--node", "1")
    assert "Channel revenue of recent epochs" in out and "in progress" in out
    assert "3 USDC" in out
    # the epoch's report is owed only beyond its channel revenue: pending shows what was paid
    send_increase_time(w3, EPOCH)
    report = build_report(suite, 1, epoch, 2_500, 40, 9_990, 2**40)  # 5 USDC at 2 per 1k
    payer = Transactor(w3, Signer.from_key(world["keys"][PAYER]))
    send_settle(payer, suite, [sign(report, world["keys"][ATTESTOR], fetch_domain_of(suite))])
    code, out = cli(None, "status", "--node", "1", "--json")
    (view,) = json.loads(out)["nodes"]
    pending = {p["epoch"]: p for p in view["pending"]}
    assert pending[epoch]["revenue"] == str(2 * USDC)
    assert suite.router.call("settlement", 1, epoch)["revenue"] == 2 * USDC
    assert view["channel_revenue"][1] == {"epoch": epoch, "amount": str(3 * USDC),
                                          "current": False}  # fmt: skip


def test_portfolio__channel_revenue_shows_as_vesting_at_once(
    world: dict[str, Any], cli: Any
) -> None:
    suite: Suite = world["suite"]
    operator = address(world["keys"], OPERATOR)  # holds every share
    _pay_by_channel(world, 10 * USDC, 3 * USDC)
    code, out = cli(None, "portfolio", operator, "--json")
    assert code == 0, out
    data = json.loads(out)
    (holding,) = data["holdings"]
    share = suite.share(1)
    unvested = int(share.call("unvested"))
    assert int(holding["vesting"]) == unvested * int(holding["shares"]) // int(holding["supply"])
    gross = 3 * USDC
    holders = gross - gross * int(suite.router.call("PROTOCOL_FEE_BPS")) // 10_000 - gross // 10
    assert int(holding["claimable"]) + int(holding["vesting"]) in range(holders - 2, holders + 1)
    assert int(holding["vesting"]) > 0 and data["total_vesting"] == holding["vesting"]
    code, out = cli(None, "portfolio", operator)
    assert code == 0 and "vesting" in out
    assert suite.fetch_stablecoin_token().format(int(holding["vesting"])) in out


def test_transfer_after_time_passed__the_gas_limit_covers_the_vesting_release(
    world: dict[str, Any], cli: Any
) -> None:
    """Reproduces the issue: revenue finalized, then time passes with no block; the
    estimate at the latest block sees no release, the transfer runs with one."""
    suite: Suite = world["suite"]
    w3 = world["w3"]
    send_increase_time(w3, CHALLENGE)
    send_finalize(Transactor(w3, Signer.from_key(world["keys"][PAYER])), suite, 1, [0])
    w3.provider.make_request("evm_increaseTime", [600])  # time passes, no block is mined
    operator = Transactor(w3, Signer.from_key(world["keys"][OPERATOR]))
    share = suite.share(1)
    call = share.tx("transfer", address(world["keys"], INVESTOR), 250 * 10**18)
    at_latest = w3.eth.estimate_gas({"from": operator.signer.address, **call})  # type: ignore[typeddict-item]
    (limit,) = estimate_all(operator, suite.rpc, [call], "transfer", None)
    code, out = cli(OPERATOR, "shares", "transfer", "1", address(world["keys"], INVESTOR), "250")
    assert code == 0, out
    receipt = w3.eth.get_transaction_receipt(w3.eth.get_block("latest")["transactions"][0])
    assert receipt["status"] == 1
    assert receipt["gasUsed"] > at_latest * 6 // 5  # the old limit (20% over) ran out
    assert limit >= receipt["gasUsed"]
    assert int(share.call("balanceOf", address(world["keys"], INVESTOR))) == 250 * 10**18


def test_a_mined_revert__is_explained_out_of_gas_with_the_limit(world: dict[str, Any]) -> None:
    w3 = world["w3"]
    suite: Suite = world["suite"]
    operator = Signer.from_key(world["keys"][OPERATOR])
    body = {
        "from": operator.address,
        "to": suite.registry.address,
        "data": suite.registry.calldata("set_price", 1, 7),
        "gas": 30_000,
    }
    sent = w3.eth.send_transaction(body)  # type: ignore[arg-type]
    receipt = Receipt.from_rpc(dict(w3.eth.wait_for_transaction_receipt(sent)))
    assert receipt.status == 0
    message = explain_revert(suite.rpc, body, receipt, "set price")
    assert "ran out of gas (limit 30,000, used 30,000)" in message
    body = {**body, "data": suite.registry.calldata("set_price", 1, 2**200), "gas": 200_000}
    sent = w3.eth.send_transaction(body)  # type: ignore[arg-type]
    receipt = Receipt.from_rpc(dict(w3.eth.wait_for_transaction_receipt(sent)))
    assert "registry: price too large" in explain_revert(suite.rpc, body, receipt, "set price")


def test_manifest_directory__a_message_not_a_traceback(
    world: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    code, out = cli(None, "status", "--manifest", str(tmp_path))
    assert code == 2, out
    assert "is a directory" in out and "Traceback" not in out


def _signed_file(world: dict[str, Any], path: Path, epoch: int = 0) -> Path:
    from edgeshare.usage import write_reports_file

    suite: Suite = world["suite"]
    domain = fetch_domain_of(suite)
    report = build_report(suite, 1, epoch, 5_000, 40, 9_990, 2**40)
    write_reports_file(path, domain, [sign(report, world["keys"][ATTESTOR], domain)])
    return path


def test_attest_finalize__says_when_the_next_report_becomes_due(
    world: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    reports = _signed_file(world, tmp_path / "signed.json")
    code, out = cli(PAYER, "attest", "finalize", str(reports))
    assert code == 0, out
    assert "1 not due yet (the next becomes due at" in out and "UTC chain time" in out


def test_attest_sign__one_pass_names_format_and_chain_problems_and_explains_the_clock(
    world: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    usage = tmp_path / "usage.csv"
    usage.write_text(
        "node_id,epoch,inferences,latency_ms,uptime_bps\n"
        "1,0,abc,40,9990\n"  # a format error
        "7,0,100,40,9990\n"  # an unknown node
        "1,1,100,40,9990\n"  # the current epoch: not ended
    )
    code, out = cli(None, "attest", "sign", str(usage), "--attestor-key-env", "KEY_2", "-o",
                    str(tmp_path / "o.json"))  # fmt: skip
    assert code == 2, out
    assert "line 2, field inferences" in out
    assert "node 7 is not registered" in out
    assert "epoch 1 has not ended" in out and "epoch 1 ends at" in out
    assert not (tmp_path / "o.json").exists()


def test_json_errors__are_json_with_the_exit_code(world: dict[str, Any], cli: Any) -> None:
    code, out = cli(OPERATOR, "operator", "set-price", "1", "0.4500001", "--json")
    assert code == 2
    data = json.loads(out[out.index("{") : out.rindex("}") + 1])
    assert data["exit"] == 2 and "7 decimals" in data["error"]


def test_help__shows_the_real_defaults(cli: Any) -> None:
    code, out = cli(None, "claim", "--help")
    assert code == 0
    assert "deployments/<chain_id>.json" in out


def test_bare_deploy__writes_no_manifest_for_the_chain_it_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out = run_main(capsys, monkeypatch, {}, "deploy")
    assert code == 0, out
    assert not (tmp_path / "deployments").exists()
    assert "no manifest was written" in out


def test_attest_post_and_finalize_dry_runs__check_simulate_and_send_nothing(
    world: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    from edgeshare.poster import fetch_records

    suite: Suite = world["suite"]
    w3 = world["w3"]
    payer = address(world["keys"], PAYER)
    send_increase_time(w3, EPOCH)
    reports = _signed_file(world, tmp_path / "signed.json", epoch=1)
    nonce = w3.eth.get_transaction_count(payer)
    code, out = cli(PAYER, "attest", "post", str(reports), "--dry-run", "--json")
    assert code == 0, out
    planned = json.loads(out)["transactions"]
    assert [p["what"] for p in planned] == ["approve the stablecoin", "settle usage reports"]
    assert planned[0]["gas"] > 0 and planned[1]["gas"] == 0  # needs the approval first
    assert w3.eth.get_transaction_count(payer) == nonce
    assert fetch_records(suite, [(1, 1)])[0].state == 0
    send_increase_time(w3, CHALLENGE)
    code, out = cli(PAYER, "attest", "finalize", str(_signed_file(world, tmp_path / "e0.json")),
                    "--dry-run")  # fmt: skip
    assert code == 0 and "1 simulated" in out, out
    assert fetch_records(suite, [(1, 0)])[0].state == 1  # still pending
    assert w3.eth.get_transaction_count(payer) == nonce


def test_operator_set_metadata__from_fields_registers_a_hashed_document(
    world: dict[str, Any], cli: Any
) -> None:
    from edgeshare.metadata import fetch_metadata

    code, out = cli(OPERATOR, "operator", "set-metadata", "1", "--endpoint",
                    "https://lagos-1.example.com/v1", "--model", "llama-3.1-8b", "--gpu", "L4",
                    "--capacity-rps", "25")  # fmt: skip
    assert code == 0, out
    uri = node(world).metadata_uri
    assert uri.startswith("data:application/json;base64,") and "#sha256=" in uri
    document = fetch_metadata(uri)
    assert (document.endpoint, document.models, document.gpu, document.capacity_rps) == (
        "https://lagos-1.example.com/v1",
        ["llama-3.1-8b"],
        "L4",
        25,
    )
    tampered = uri[: -len("0" * 64)] + "0" * 64
    code, out = cli(OPERATOR, "operator", "set-metadata", "1", tampered)
    assert code == 2 and "does not match" in out, out
    code, out = cli(OPERATOR, "operator", "set-metadata", "1", "--endpoint", "ftp://x")
    assert code == 2 and "--endpoint" in out, out


def test_dry_run__says_what_it_would_do_in_units(world: dict[str, Any], cli: Any) -> None:
    code, out = cli(OWNER, "dev", "mint", address(world["keys"], INVESTOR), "12.5", "--dry-run")
    assert code == 0, out
    assert "would: minted 12.5 USDC" in out


def test_role_json__amounts_are_base_unit_strings_with_decimals(
    world: dict[str, Any], cli: Any
) -> None:
    assert cli(OWNER, "guardian", "dispute", "1", "0")[0] == 0
    code, out = cli(PAYER, "withdraw", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["details"]["amount"] == str(10 * USDC) and data["decimals"] == 6


def test_roles_library__refuses_a_malformed_address_with_its_name(world: dict[str, Any]) -> None:
    from edgeshare.errors import InputError
    from edgeshare.roles import send_set_treasury

    owner = Transactor(world["w3"], Signer.from_key(world["keys"][OWNER]))
    with pytest.raises(InputError, match="treasury"):
        send_set_treasury(owner, world["suite"], "0x1234")
