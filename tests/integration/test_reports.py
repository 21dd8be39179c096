"""`edgeshare report operator|investor` on a chain of 20 nodes: the investor's own figures,
a node sold out with revenue still to claim, whole units, dates, the chain and block, the
format chosen by `-o`'s extension, no overwrite without `--force`, and the HTML drawn by
a real browser (20 distinct series colours, axis ticks in units, the investor headline).

On the code before issue 13 item 6, every test here fails: the investor headline was the
nodes' totals, a sold-out node was dropped from the positions, the palette had 8 colours,
`-o` without `--format` printed a table and overwrote files, and ticks were 0 and the peak
in base units.

With payment channels (customers' vouchers redeemed on one node over four epochs: a
report owed beyond its channel revenue, one paid by channels in full, a disputed one, an
epoch with channel revenue and no report), the reports' figures equal the chain's: the
router's channel revenue per (node, epoch), what each report's payer paid, the share
token's distributions, the operator's owed cut, each customer's redeemed amount, and the
investor's received revenue. On the code before channels were reported those tests fail:
the index read no channel revenue and the reports had no channel columns."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeshare.attestation import sign
from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.channels import (
    build_voucher,
    fetch_channels_domain,
    redeem_vouchers,
    send_deposit,
    sign_voucher,
)
from edgeshare.demo import get_keys_needed, run_demo
from edgeshare.deploy import read_manifest
from edgeshare.report_html import PALETTE, _limit_series, build_ticks
from edgeshare.roles import send_dispute
from edgeshare.signer import Signer
from edgeshare.suite import (
    Suite,
    build_report,
    fetch_domain_of,
    send_finalize,
    send_increase_time,
    send_mint_mock,
    send_settle,
    send_transfer_shares,
)
from edgeshare.tx import Transactor
from edgeshare.units import Token, format_units

NODES, INVESTORS, EPOCHS = 20, 6, 3
EPOCH, CHALLENGE, UNLOCK = 2 * 3_600, 2 * 3_600, 6 * 3_600  # the demo's
PAYER = 0
INVESTOR = 1 + NODES  # the demo's first investor
STRANGER = get_keys_needed(NODES, INVESTORS)  # funded, never used by the demo
SELLER = STRANGER + 1  # funded too: buys a quarter of one node's lot, sells it all, never claims
CUSTOMERS = (SELLER + 1, SELLER + 2)  # funded too: pay a node through payment channels
USDC = Token(6, "USDC")
UNIT = 10**6


def _attestor_key(keys: list[str], node_id: int) -> str:
    """The demo's attestor of ``node_id`` (one per node, after the investors)."""
    return keys[1 + NODES + INVESTORS + node_id - 1]


def _settle_and_finalize(world: dict[str, Any], node_id: int, epoch: int) -> None:
    """A new report of ``node_id`` for an ended ``epoch``, settled and, after the challenge
    window, finalized (its holders' revenue then starts vesting)."""
    suite: Suite = world["suite"]
    payer = Transactor(world["w3"], Signer.from_key(world["keys"][PAYER]))
    report = build_report(suite, node_id, epoch, 40_000, 30, 9_990, 2**40)
    signed = sign(report, _attestor_key(world["keys"], node_id), fetch_domain_of(suite))
    send_settle(payer, suite, [signed])
    send_increase_time(world["w3"], CHALLENGE)
    send_finalize(payer, suite, node_id, [epoch])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The demo's story on 20 nodes; then the investor's revenue of a new epoch on one node
    (`sold`) vests and it sells all those shares, and revenue of another node (`vesting`)
    is finalized and still vesting."""
    workdir = tmp_path_factory.mktemp("reports")
    keys = build_dev_keys(get_keys_needed(NODES, INVESTORS) + 2 + len(CUSTOMERS))
    with LocalChain("anvil", accounts=len(keys)) as chain:
        w3 = connect(chain.url)
        run_demo(w3, keys, nodes=NODES, investors=INVESTORS, epochs=EPOCHS, seed=5,
                 reports_dir=None, workdir=workdir)  # fmt: skip
        suite = Suite.load(w3, read_manifest(workdir / "manifest.json"))  # type: ignore[arg-type]
        world = {"chain": chain, "w3": w3, "suite": suite, "keys": keys, "workdir": workdir,
                 "manifest": workdir / "manifest.json"}  # fmt: skip
        investor = Signer.from_key(keys[INVESTOR]).address
        held = [n for n in range(1, NODES + 1) if suite.share(n).call("balanceOf", investor)]
        assert len(held) >= 3, held
        sold, vesting = held[0], held[1]
        me = Transactor(w3, Signer.from_key(keys[INVESTOR]))
        seller = Transactor(w3, Signer.from_key(keys[SELLER]))
        stranger = Signer.from_key(keys[STRANGER]).address
        quarter = suite.share(sold).call("balanceOf", investor) // 4
        send_transfer_shares(me, suite, sold, seller.signer.address, quarter)
        send_increase_time(w3, EPOCH)
        epoch = int(suite.registry.call("current_epoch")) - 1
        _settle_and_finalize(world, sold, epoch)
        send_increase_time(w3, UNLOCK)  # fully vested: claimable
        send_transfer_shares(seller, suite, sold, stranger, quarter)  # sold out, never claimed
        everything = suite.share(sold).call("balanceOf", investor)
        send_transfer_shares(me, suite, sold, stranger, everything)
        send_increase_time(w3, EPOCH)
        _settle_and_finalize(world, vesting, int(suite.registry.call("current_epoch")) - 1)
        send_increase_time(w3, 60)  # a little has vested, most has not
        world.update(investor=investor, stranger=stranger, held=held, sold=sold,
                     vesting=vesting, seller=seller.signer.address, quarter=quarter)  # fmt: skip
        yield world


def _key_of(world: dict[str, Any], address: str) -> str:
    """The world's key of ``address``."""
    return next(k for k in world["keys"] if Signer.from_key(k).address == address)


def _report_for(world: dict[str, Any], node_id: int, epoch: int, revenue: int) -> None:
    """Settle a report of ``node_id`` for ``epoch`` whose revenue is ``revenue`` or just
    above (whole inferences at the node's price)."""
    suite: Suite = world["suite"]
    price = int(suite.registry.call("price_for_epoch", node_id, epoch))
    report = build_report(suite, node_id, epoch, -(-revenue * 1_000 // price), 30, 9_990, 2**40)
    signed = sign(report, _attestor_key(world["keys"], node_id), fetch_domain_of(suite))
    send_settle(Transactor(world["w3"], Signer.from_key(world["keys"][PAYER])), suite, [signed])


def _pay_by_channels(world: dict[str, Any]) -> dict[str, Any]:
    """Two customers pay node `still` (whose shares the investor kept since the demo)
    through channels in four epochs: the first's report is owed beyond its channel
    revenue (two redemptions), the second's is paid by channels in full (due 0), the
    third's is disputed, the fourth has channel revenue and no report. The first two are
    finalized in one call."""
    suite: Suite = world["suite"]
    w3 = world["w3"]
    node_id = world["held"][2]
    keys = [world["keys"][i] for i in CUSTOMERS]
    customers = [Transactor(w3, Signer.from_key(k)) for k in keys]
    payer = Transactor(w3, Signer.from_key(world["keys"][PAYER]))
    operator = Transactor(w3, Signer.from_key(_key_of(world, suite.fetch_operator(node_id))))
    domain = fetch_channels_domain(suite)
    for c in customers:
        send_mint_mock(payer, suite, c.signer.address, 100 * UNIT)
        send_deposit(c, suite, node_id, 50 * UNIT)

    def redeem(*vouchers: tuple[int, int]) -> None:  # (customer index, cumulative)
        signed = [
            sign_voucher(
                build_voucher(suite, customers[i].signer.address, node_id, cumulative),
                keys[i],
                domain,
            )
            for i, cumulative in vouchers
        ]
        assert redeem_vouchers(operator, suite, signed, domain).redeemed == len(signed)

    now = int(w3.eth.get_block("latest")["timestamp"])
    first = int(suite.registry.call("current_epoch")) + 1
    send_increase_time(w3, int(suite.registry.call("epoch_start", first)) + 60 - now)
    redeem((0, 12 * UNIT), (1, 5 * UNIT))
    redeem((0, 15 * UNIT))  # 20 in the first epoch
    send_increase_time(w3, EPOCH)
    _report_for(world, node_id, first, 27 * UNIT)  # owed beyond the 20 redeemed
    redeem((0, 40 * UNIT))  # 25 in the second
    send_increase_time(w3, EPOCH)
    _report_for(world, node_id, first + 1, 10 * UNIT)  # below the 25: owes nothing
    redeem((1, 9 * UNIT))  # 4 in the third
    send_increase_time(w3, EPOCH)
    _report_for(world, node_id, first + 2, 7 * UNIT)
    send_dispute(payer, suite, node_id, first + 2)  # refunded; the channel revenue stands
    redeem((0, 41 * UNIT))  # 1 in the fourth, which has no report
    send_finalize(payer, suite, node_id, [first, first + 1])
    send_increase_time(w3, 60)
    return {"node_id": node_id, "epochs": [first, first + 1, first + 2, first + 3],
            "customers": [c.signer.address for c in customers],
            "operator": operator.signer.address}  # fmt: skip


@pytest.fixture
def channel_paid(world: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``_pay_by_channels`` on the world's chain, reverted after the test."""
    w3 = world["w3"]
    taken = w3.provider.make_request("evm_snapshot", [])["result"]
    try:
        yield _pay_by_channels(world)
    finally:
        w3.provider.make_request("evm_revert", [taken])


def cli(world: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    extra = ["--rpc-url", world["chain"].url, "--manifest", str(world["manifest"])]
    return subprocess.run(["edgeshare", *args, *extra], capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _db(world: dict[str, Any]) -> list[str]:
    return ["--db", f"sqlite:///{world['workdir'] / 'reports.db'}"]


def _investor_json(world: dict[str, Any]) -> Any:
    return ok_json(cli(world, "report", "investor", world["investor"], "--json", *_db(world)))


def _chain_figures(world: dict[str, Any]) -> dict[int, tuple[int, int, int]]:
    """(balance, claimable, own vesting) per node, read from the chain."""
    suite: Suite = world["suite"]
    out = {}
    for n in range(1, NODES + 1):
        share = suite.share(n)
        balance = share.call("balanceOf", world["investor"])
        supply, unvested = share.call("totalSupply"), share.call("unvested")
        out[n] = (balance, share.call("claimable", world["investor"]), unvested * balance // supply)
    return out


def _withdrawn_on_chain(world: dict[str, Any], account: str) -> int:
    """What ``account`` withdrew from the router (its Withdrawn events, through web3)."""
    from edgeshare.artifacts import load_artifact

    suite: Suite = world["suite"]
    abi = load_artifact("RevenueRouter").abi
    router = suite.w3.eth.contract(address=suite.router.address, abi=abi)  # type: ignore[call-overload]
    logs = router.events.Withdrawn().get_logs(from_block=0, argument_filters={"account": account})
    return sum(int(e["args"]["amount"]) for e in logs)


def _claimed_on_chain(world: dict[str, Any]) -> dict[int, int]:
    """The investor's RevenueClaimed events per node, read through web3 (not the index)."""
    from edgeshare.artifacts import load_artifact

    suite: Suite = world["suite"]
    abi = load_artifact("NodeShare").abi
    out = {}
    for n in range(1, NODES + 1):
        token = suite.w3.eth.contract(address=suite.share(n).address, abi=abi)  # type: ignore[call-overload]
        logs = token.events.RevenueClaimed().get_logs(
            from_block=0, argument_filters={"holder": world["investor"]}
        )
        out[n] = sum(e["args"]["amount"] for e in logs)
    return out


# ------------------------------------------------------------------ the investor report


def test_investor_report__headline_is_the_investors_own_figures(world: dict[str, Any]) -> None:
    report = _investor_json(world)
    chain = _chain_figures(world)
    claimed = _claimed_on_chain(world)
    s = report["summary"]
    assert int(s["claimed"]) == sum(claimed.values()) > 0
    assert int(s["claimable"]) == sum(c for _, c, _ in chain.values()) > 0
    assert int(s["vesting"]) == sum(v for _, _, v in chain.values()) > 0
    assert int(s["total_earned"]) == int(s["claimed"]) + int(s["claimable"]) + int(s["vesting"])
    vesting_end = world["suite"].share(world["vesting"]).call("vesting_ends_at")
    assert s["vesting_ends_at"] == vesting_end
    # not the nodes' totals for every holder
    assert int(s["claimed"]) < sum(int(t["holders_claimed"]) for t in report["nodes"])
    for p in report["positions"]:
        balance, claimable, vesting = chain[p["node_id"]]
        assert (int(p["shares"]), int(p["claimable"]), int(p["vesting"])) == (
            balance, claimable, vesting)  # fmt: skip
        assert int(p["claimed"]) == claimed[p["node_id"]]
    held = {n for n, (b, c, _) in chain.items() if b or c} | {n for n, c in claimed.items() if c}
    assert {p["node_id"] for p in report["positions"]} == held
    assert report["decimals"] == 6 and report["share_decimals"] == 18
    assert report["chain_id"] == world["w3"].eth.chain_id
    assert report["block"] == world["w3"].eth.block_number


def test_investor_report__sold_out_node_with_claimable_is_listed(world: dict[str, Any]) -> None:
    # the seller held shares only while one epoch's revenue vested, sold them all and has
    # never claimed: its only position is a node where it holds nothing
    seller = ok_json(cli(world, "report", "investor", world["seller"], "--json", *_db(world)))
    claimable = world["suite"].fetch_claimable(world["sold"], world["seller"])
    assert claimable > 0
    positions = [(p["node_id"], p["shares"], p["claimed"], p["claimable"])
                 for p in seller["positions"]]  # fmt: skip
    assert positions == [(world["sold"], "0", "0", str(claimable))]
    assert seller["summary"]["claimable"] == seller["summary"]["total_earned"] == str(claimable)
    (earning,) = seller["earnings"]  # the one epoch finalized while it held the quarter
    assert (earning["node_id"], int(earning["shares"])) == (world["sold"], world["quarter"])
    # and the investor's own sold-out node
    report = _investor_json(world)
    sold = next(p for p in report["positions"] if p["node_id"] == world["sold"])
    assert sold["shares"] == "0"
    claimable = world["suite"].fetch_claimable(world["sold"], world["investor"])
    assert int(sold["claimable"]) == claimable > 0


def test_investor_report__per_epoch_share_follows_the_balance(world: dict[str, Any]) -> None:
    report = _investor_json(world)
    rows = {(r["node_id"], r["epoch"]): r for r in report["rows"]}
    claimed = _claimed_on_chain(world)
    chain = _chain_figures(world)
    for e in report["earnings"]:
        row = rows[(e["node_id"], e["epoch"])]
        assert int(e["holders"]) == int(row["holders"])
        assert int(e["earned"]) == int(row["holders"]) * int(e["shares"]) // int(e["supply"])
    # a node whose shares never moved after the demo: the epochs add up to what it received
    # (claimed, claimable and vesting), to a base unit per epoch
    still = world["held"][2]
    mine = [e for e in report["earnings"] if e["node_id"] == still]
    received = claimed[still] + chain[still][1] + chain[still][2]
    assert len(mine) >= EPOCHS - 1 and abs(sum(int(e["earned"]) for e in mine) - received) <= EPOCHS
    # the sold node's new epoch counts its balance before the sale; after it, nothing
    sold = [e for e in report["earnings"] if e["node_id"] == world["sold"]]
    counted = [r for r in report["rows"] if r["node_id"] == world["sold"] and not r["disputed"]]
    assert len(sold) == len(counted) >= EPOCHS and all(int(e["shares"]) > 0 for e in sold)
    # the yield is the epochs' earnings annualised over their span
    s = report["summary"]
    assert int(s["earned_in_epochs"]) == sum(int(e["earned"]) for e in report["earnings"])
    span = (s["yield_to_epoch"] - s["yield_from_epoch"] + 1) * EPOCH
    assert s["yield_seconds"] == span
    assert int(s["annualised"]) == int(s["earned_in_epochs"]) * 365 * 86_400 // span
    with_cost = ok_json(cli(world, "report", "investor", world["investor"], "--json",
                            "--cost-basis", "1000", *_db(world)))  # fmt: skip
    assert with_cost["summary"]["yield_bps"] == int(s["annualised"]) * 10_000 // 10**9


def test_investor_report__csv_and_table_carry_the_same_content(
    world: dict[str, Any], tmp_path: Path
) -> None:
    report = _investor_json(world)
    csv_text = cli(world, "report", "investor", world["investor"], "--format", "csv", *_db(world))
    assert csv_text.returncode == 0, csv_text.stderr
    sections = {}
    for block in csv_text.stdout.strip().split("\n\n"):
        lines = block.splitlines()
        sections[lines[0].removeprefix("# ")] = lines[1:]
    assert list(sections) == [
        "report", "summary", "positions", "baskets", "offerings", "orders", "nodes", "epochs",
        "earnings",
    ]  # fmt: skip
    assert len(sections["baskets"]) == len(report["baskets"]) + 1
    assert len(sections["positions"]) == len(report["positions"]) + 1
    assert len(sections["earnings"]) == len(report["earnings"]) + 1
    sold = next(p for p in report["positions"] if p["node_id"] == world["sold"])
    claimable = format_units(int(sold["claimable"]), 6, exact=True).replace(",", "")
    assert any(line.startswith(f"{world['sold']},") and f",{claimable}," in line
               for line in sections["positions"])  # fmt: skip
    summary = dict(line.split(",", 1) for line in sections["summary"][1:])
    assert summary["claimed"] == format_units(int(report["summary"]["claimed"]), 6, exact=True)
    table = cli(world, "report", "investor", world["investor"], *_db(world))
    assert table.returncode == 0, table.stderr
    for title in ("Headline", "Positions", "Totals per node", "Per epoch and node",
                  "Your revenue per epoch"):  # fmt: skip
        assert title in table.stdout
    assert f"{USDC.format(int(report['summary']['claimable']))}" in table.stdout
    assert "as of block" in table.stdout and "UTC" in table.stdout


def test_reports__show_dates_block_and_chain(world: dict[str, Any]) -> None:
    report = ok_json(cli(world, "report", "operator", "--node", "1", "--json", *_db(world)))
    genesis = world["suite"].registry.call("GENESIS")
    from datetime import UTC, datetime

    for r in report["rows"]:
        start = datetime.fromtimestamp(genesis + r["epoch"] * EPOCH, tz=UTC)
        assert r["starts"] == start.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert report["block"] == world["w3"].eth.block_number and report["chain_id"] == 31337
    assert report["summary"] is None and report["block_time_utc"].endswith("Z")


# ------------------------------------------------------------------ channel revenue


def test_operator_report__channel_revenue_per_epoch_node_and_customer_equals_the_chain(
    world: dict[str, Any], channel_paid: dict[str, Any], tmp_path: Path
) -> None:
    suite: Suite = world["suite"]
    node_id, epochs = channel_paid["node_id"], channel_paid["epochs"]
    db = ["--db", f"sqlite:///{tmp_path / 'channels.db'}"]
    report = ok_json(cli(world, "report", "operator", "--node", str(node_id), "--json", *db))
    rows = {r["epoch"]: r for r in report["rows"]}
    assert [rows[e]["state"] for e in epochs] == ["finalized", "finalized", "disputed",
                                                  "no report"]  # fmt: skip
    redeemed = [20 * UNIT, 25 * UNIT, 4 * UNIT, UNIT]
    for epoch, channel in zip(epochs, redeemed, strict=True):
        r = rows[epoch]
        assert int(r["channel_revenue"]) == suite.router.call("channel_revenue", node_id, epoch)
        assert int(r["channel_revenue"]) == channel
        paid = suite.router.call("settlement", node_id, epoch)["revenue"]
        assert int(r["usage_revenue"]) == paid  # what the report's payer paid
        assert int(r["revenue"]) == paid + channel
    assert 0 < int(rows[epochs[0]]["usage_revenue"]) < 8 * UNIT
    assert int(rows[epochs[1]]["usage_revenue"]) == 0  # channels paid it all
    assert int(rows[epochs[3]]["inferences"]) == 0
    # the disputed report's payer was refunded; the channel revenue was split and stands
    disputed = rows[epochs[2]]
    assert int(disputed["holders"]) > 0 and int(disputed["holders"]) < 4 * UNIT

    # every epoch of the node: the chain's channel revenue, distributions and owed cut
    (totals,) = report["nodes"]
    current = int(suite.registry.call("current_epoch"))
    on_chain = sum(suite.router.call("channel_revenue", node_id, e) for e in range(current + 1))
    assert int(totals["channel_revenue"]) == on_chain == sum(
        int(r["channel_revenue"]) for r in report["rows"])  # fmt: skip
    assert int(totals["revenue"]) == int(totals["usage_revenue"]) + on_chain
    assert not any(r["state"] == "pending" for r in report["rows"])
    assert int(totals["holders"]) == suite.share(node_id).call("total_distributed")
    operator = channel_paid["operator"]
    owed = int(totals["operator_cut"]) - _withdrawn_on_chain(world, operator)
    assert owed == suite.router.call("owed", operator) > 0
    assert int(totals["disputed_revenue"]) >= int(disputed["usage_revenue"]) > 0
    assert report["summary"] is None

    # per customer: what its channel redeemed, in how many vouchers, over which epochs
    customers = {c["customer"]: c for c in report["customers"] if c["node_id"] == node_id}
    for address, vouchers, last in zip(channel_paid["customers"], (4, 2), (3, 2), strict=True):
        channel = suite.channels.call("channel", address, node_id)
        c = customers[address]
        assert int(c["redeemed"]) == channel["redeemed"] > 0
        assert (c["vouchers"], c["first_epoch"], c["last_epoch"]) == (
            vouchers, epochs[0], epochs[last])  # fmt: skip
    assert sum(int(c["redeemed"]) for c in report["customers"]) == on_chain
    # only the epochs asked for
    middle = ["--from-epoch", str(epochs[1]), "--to-epoch", str(epochs[2])]
    shown = ok_json(cli(world, "report", "operator", "--node", str(node_id), "--json", *middle,
                        *db))  # fmt: skip
    assert sum(int(c["redeemed"]) for c in shown["customers"]) == 29 * UNIT
    assert int(shown["nodes"][0]["channel_revenue"]) == 29 * UNIT


def test_operator_report__csv_table_and_html_carry_the_channel_revenue(
    world: dict[str, Any], channel_paid: dict[str, Any], tmp_path: Path
) -> None:
    node_id, epochs = channel_paid["node_id"], channel_paid["epochs"]
    db = ["--db", f"sqlite:///{tmp_path / 'channels.db'}"]
    base = ["report", "operator", "--node", str(node_id), *db]
    report = ok_json(cli(world, *base, "--json"))
    csv_text = cli(world, *base, "--format", "csv")
    assert csv_text.returncode == 0, csv_text.stderr
    sections = {}
    for block in csv_text.stdout.strip().split("\n\n"):
        lines = block.splitlines()
        sections[lines[0].removeprefix("# ")] = lines[1:]
    assert list(sections) == ["report", "summary", "nodes", "epochs", "customers"]

    def exact(value: str) -> str:
        return format_units(int(value), 6, exact=True).replace(",", "")

    summary = dict(line.split(",", 1) for line in sections["summary"][1:])
    (totals,) = report["nodes"]
    assert summary["from channels"] == exact(totals["channel_revenue"])
    assert summary["from usage reports"] == exact(totals["usage_revenue"])
    assert summary["revenue"] == exact(totals["revenue"])
    header = sections["epochs"][0].split(",")
    assert header[4:7] == ["revenue (USDC)", "from usage report (USDC)", "from channels (USDC)"]
    assert len(sections["epochs"]) == len(report["rows"]) + 1
    epoch_rows = {int(line.split(",")[0]): line.split(",") for line in sections["epochs"][1:]}
    for r in report["rows"]:
        cells = epoch_rows[r["epoch"]]
        assert cells[4:7] == [exact(r["revenue"]), exact(r["usage_revenue"]),
                              exact(r["channel_revenue"])]  # fmt: skip
    assert epoch_rows[epochs[3]][-3:] == ["-", "-", "no report"]
    assert len(sections["customers"]) == len(report["customers"]) + 1
    for c in report["customers"]:
        line = f"{c['node_id']},{c['customer']},{c['vouchers']},{exact(c['redeemed'])},"
        assert any(row.startswith(line) for row in sections["customers"][1:])

    table = cli(world, *base)
    assert table.returncode == 0, table.stderr
    assert "Channel revenue per customer" in table.stdout and "from channels" in table.stdout
    assert USDC.format(int(totals["channel_revenue"])) in table.stdout
    for address in channel_paid["customers"]:
        assert address in table.stdout
    page = tmp_path / "channels.html"
    assert cli(world, *base, "-o", str(page)).returncode == 0
    html = page.read_text()
    assert "<figcaption>Revenue per epoch: usage reports and channels</figcaption>" in html
    assert 'data-section="customers"' in html and channel_paid["customers"][0] in html
    assert 'data-key="from_channels"' in html


def test_investor_report__per_epoch_earnings_include_channel_revenue(
    world: dict[str, Any], channel_paid: dict[str, Any], tmp_path: Path
) -> None:
    node_id, epochs = channel_paid["node_id"], channel_paid["epochs"]
    db = ["--db", f"sqlite:///{tmp_path / 'channels.db'}"]
    report = ok_json(cli(world, "report", "investor", world["investor"], "--json", *db))
    rows = {r["epoch"]: r for r in report["rows"] if r["node_id"] == node_id}
    mine = {e["epoch"]: e for e in report["earnings"] if e["node_id"] == node_id}
    # every new epoch earned, the disputed one and the one without a report too
    assert set(epochs) <= set(mine)
    for epoch in epochs:
        e, row = mine[epoch], rows[epoch]
        assert int(e["holders"]) == int(row["holders"]) > 0
        # the investor's balance did not move: its share of the epoch's distributions
        assert int(e["earned"]) == int(row["holders"]) * int(e["shares"]) // int(e["supply"])
    # what it earned per epoch adds up to what the chain paid it, to a base unit a row
    claimed = _claimed_on_chain(world)[node_id]
    _, claimable, vesting = _chain_figures(world)[node_id]
    received = claimed + claimable + vesting
    earned = sum(int(e["earned"]) for e in mine.values())
    assert abs(earned - received) <= len(mine) + 1
    (position,) = [p for p in report["positions"] if p["node_id"] == node_id]
    assert int(position["earned"]) == earned and vesting > 0
    assert int(report["summary"]["earned_in_epochs"]) == sum(
        int(e["earned"]) for e in report["earnings"])  # fmt: skip


# ---------------------------------------------------------------- -o, --force, empty


def test_report_output__format_from_extension_and_no_overwrite_without_force(
    world: dict[str, Any], tmp_path: Path
) -> None:
    base = ["report", "operator", "--node", "1", *_db(world)]
    for name, starts in [("op.html", "<!doctype html>"), ("op.csv", "# report"),
                         ("op.json", "{"), ("op.txt", "Report")]:  # fmt: skip
        path = tmp_path / name
        result = cli(world, *base, "-o", str(path))
        assert result.returncode == 0, result.stderr
        assert result.stdout == "" and path.read_text().lstrip().startswith(starts), name
    first = (tmp_path / "op.json").read_text()
    refused = cli(world, *base, "-o", str(tmp_path / "op.json"))
    assert refused.returncode == 2 and "op.json" in refused.stderr and "--force" in refused.stderr
    (tmp_path / "op.json").write_text("mine")
    assert cli(world, *base, "-o", str(tmp_path / "op.json")).returncode == 2
    assert (tmp_path / "op.json").read_text() == "mine"
    forced = cli(world, *base, "-o", str(tmp_path / "op.json"), "--force")
    assert forced.returncode == 0 and (tmp_path / "op.json").read_text() == first
    unknown = cli(world, *base, "-o", str(tmp_path / "op.pdf"))
    assert unknown.returncode == 2 and "op.pdf" in unknown.stderr
    assert not (tmp_path / "op.pdf").exists()
    contradiction = cli(world, *base, "--json", "--format", "csv")
    assert contradiction.returncode == 2


def test_report_empty__says_why_and_exits_0_only_for_valid_queries(world: dict[str, Any]) -> None:
    nobody = Signer.from_key("0x" + "42" * 32).address
    result = cli(world, "report", "investor", nobody, "--json", *_db(world))
    assert result.returncode == 0 and nobody in result.stderr and "no shares" in result.stderr
    assert f"any of the {NODES} nodes" in " ".join(result.stderr.split())
    assert json.loads(result.stdout)["positions"] == []
    result = cli(world, "report", "operator", nobody, *_db(world))
    assert result.returncode == 0 and "operates none" in result.stderr
    assert f"none of the {NODES} registered" in " ".join(result.stderr.split())
    result = cli(world, "report", "operator", "--node", "1", "--from-epoch", "500", *_db(world))
    assert result.returncode == 0 and "epochs from 500" in result.stderr
    unknown = cli(world, "report", "operator", "--node", "99", *_db(world))
    assert unknown.returncode == 2 and "node 99" in unknown.stderr
    assert f"the index has nodes 1 to {NODES}" in " ".join(unknown.stderr.split())
    backwards = ["--from-epoch", "3", "--to-epoch", "1"]
    assert cli(world, "report", "operator", "--node", "1", *backwards, *_db(world)).returncode == 2


# ------------------------------------------------------------------ pure: ticks, palette


def test_palette__twenty_distinct_colours() -> None:
    assert len(PALETTE) == 20 and len({c.lower() for c in PALETTE}) == 20
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in PALETTE)


def test_charts__beyond_20_series__the_smallest_are_drawn_as_one() -> None:
    series = {f"node {n}": {0: n, 1: 2 * n} for n in range(1, 26)}
    drawn = _limit_series(series)
    assert len(drawn) == 20 and list(drawn)[-1] == "6 other nodes"
    assert drawn["6 other nodes"] == {0: sum(range(1, 7)), 1: 2 * sum(range(1, 7))}
    assert "node 25" in drawn and "node 6" not in drawn
    assert sum(sum(v.values()) for v in drawn.values()) == sum(
        sum(v.values()) for v in series.values())  # fmt: skip


@pytest.mark.parametrize(
    ("peak", "ticks"),
    [
        (7_087_500, [0, 2_000_000, 4_000_000, 6_000_000, 8_000_000]),  # 7.0875 USDC: 2 apart
        (1_000_000, [0, 200_000, 400_000, 600_000, 800_000, 1_000_000]),
        (163_500_000, [0, 50_000_000, 100_000_000, 150_000_000, 200_000_000]),
        (3, [0, 1, 2, 3]),
        (0, [0, 1_000_000]),
    ],
)
def test_build_ticks__round_steps_in_whole_units(peak: int, ticks: list[int]) -> None:
    assert build_ticks(peak, floor=1_000_000) == ticks
    step = ticks[1]
    assert ticks[-1] >= peak and len(ticks) <= 6
    assert str(step).rstrip("0") in ("1", "2", "5")  # 1, 2 or 5 times a power of ten


def test_build_ticks__any_peak_gets_a_1_2_5_step() -> None:
    for peak in [1, 9, 11, 99, 101, 12_345, 10**9 + 1, 7 * 10**20]:
        ticks = build_ticks(peak)
        assert ticks[-1] >= peak > ticks[-2] and len(ticks) <= 6
        assert str(ticks[1]).rstrip("0") in ("1", "2", "5")


# ------------------------------------------------------------------ a real browser

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]  # fmt: skip


def _png_has_content(path: Path) -> bool:
    """True when a PNG's pixels are not one flat colour (a tiny PNG reader)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width = struct.unpack(">I", body[:4])[0]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = len(raw) // (len(raw) // (width * 3 + 1) or 1)
    pixels = b"".join(raw[i + 1 : i + stride] for i in range(0, len(raw), stride))
    return len(set(pixels[::97])) > 8


def _browse(page: Path, tmp_path: Path, shot: Path) -> str:
    """Screenshot ``page`` with chromium (kept at ``shot``) and return its rendered DOM."""
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run(["chromium", *flags, f"--screenshot={shot}", "--window-size=1100,2400",
                    page.as_uri()], capture_output=True, timeout=120, check=True)  # fmt: skip
    assert shot.exists() and _png_has_content(shot)
    return subprocess.run(["chromium", *flags, "--dump-dom", page.as_uri()], capture_output=True,
                          text=True, timeout=120, check=True).stdout  # fmt: skip


def _figure(dom: str, title: str) -> str:
    start = dom.index(f"<figcaption>{title}</figcaption>")
    return dom[start : dom.index("</figure>", start)]


def _assert_offline(text: str) -> None:
    for fetch in ('src="http', "src='http", 'href="http', "@import", "url(http", "<script"):
        assert fetch not in text


@pytest.mark.skipif(
    shutil.which("chromium") is None and not os.environ.get("EDGESHARE_REQUIRE_BROWSER"),
    reason="needs Debian's chromium: make install-browser (make test installs it and requires it)",
)
def test_html_reports__20_nodes_in_a_real_browser(world: dict[str, Any], tmp_path: Path) -> None:
    operator_page, investor_page = tmp_path / "operator.html", tmp_path / "investor.html"
    nodes = [a for n in range(1, NODES + 1) for a in ("--node", str(n))]
    result = cli(world, "report", "operator", *nodes, "-o", str(operator_page), *_db(world))
    assert result.returncode == 0, result.stderr
    op = ok_json(cli(world, "report", "operator", *nodes, "--json", *_db(world)))
    dom = _browse(operator_page, tmp_path, tmp_path / "operator.png")
    revenue = _figure(dom, "Revenue per epoch per node")
    fills = dict(re.findall(r'fill="(#[0-9a-f]{6})" data-series="(node \d+)"', revenue))
    series = set(re.findall(r'data-series="(node \d+)"', revenue))
    assert len(series) == NODES and len(set(fills)) == NODES  # one distinct colour per node
    by_epoch: dict[int, int] = {}
    for r in op["rows"]:
        if not r["disputed"]:
            by_epoch[r["epoch"]] = by_epoch.get(r["epoch"], 0) + int(r["revenue"])
    ticks = re.findall(r'<text class="tick"[^>]*>([^<]+)</text>', revenue)
    assert ticks == [format_units(t, 6) for t in build_ticks(max(by_epoch.values()))]
    assert int(ticks[-1].replace(",", "").split(".")[0]) < 10**6  # whole USDC, not base units
    tips = re.findall(r"<title>(node \d+ · epoch \d+ \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\) · "
                      r"[\d,.]+ USDC)</title>", revenue)  # fmt: skip
    assert len(tips) >= NODES
    assert "as of block" in dom and f"chain {op['chain_id']}" in dom
    _assert_offline(operator_page.read_text())

    result = cli(world, "report", "investor", world["investor"], "-o", str(investor_page),
                 *_db(world))  # fmt: skip
    assert result.returncode == 0, result.stderr
    inv = _investor_json(world)
    dom = _browse(investor_page, tmp_path, tmp_path / "investor.png")
    cards = dict(re.findall(r'data-key="([a-z_]+)" data-base-units="(\d+)"', dom))
    s = inv["summary"]
    assert cards == {"claimed": s["claimed"], "claimable_now": s["claimable"],
                     "vesting": s["vesting"], "total_earned": s["total_earned"],
                     "earned_in_the_epochs_shown": s["earned_in_epochs"]}  # fmt: skip
    for key in ("claimed", "claimable", "vesting", "total_earned"):
        assert f"<b>{USDC.format(int(s[key]))}</b>" in dom
    assert "<h2>Positions</h2>" in dom and "Your revenue per epoch per node" in dom
    _assert_offline(investor_page.read_text())
