"""`edgeshare trade`: a seller and a buyer, each with their own key, trade node shares on
signed orders with the CLI against a real anvil: orders written, listed in the book,
filled in parts and in full, cancelled one by one and all at once, expired, left without
the maker's shares; malformed order files and refused fills name the problem, exit 2 and
send nothing; amounts typed in whole units come back exactly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.deploy import build_params, deploy_suite
from edgeshare.errors import InputError
from edgeshare.roles import advance_time
from edgeshare.signer import Signer
from edgeshare.suite import (
    NodeSpec,
    Suite,
    send_mint_mock,
    send_register_node,
    send_transfer_shares,
)
from edgeshare.tx import Transactor
from edgeshare.units import parse_duration
from tests.inproc import make_cli, snapshot_and_revert

USDC = 10**6
SHARES = 10**18
FEE_BPS = 10  # the default market fee
OWNER, OPERATOR, SELLER, BUYER, STRANGER = range(5)


def address(keys: list[str], who: int) -> str:
    return Signer.from_key(keys[who]).address


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A suite with one node; the seller holds 100 of its shares and 100 USDC, the buyer
    1,000 USDC; nobody has approved the market for anything."""
    keys = build_dev_keys(5)
    with LocalChain("anvil") as chain:
        w3 = connect(chain.url)
        owner = Transactor(w3, Signer.from_key(keys[OWNER]))
        manifest = tmp_path_factory.mktemp("trade") / "manifest.json"
        params = build_params(None, epoch_length=3_600, challenge_period=3_600)
        suite = Suite.load(w3, deploy_suite(owner, params, manifest).manifest)
        spec = NodeSpec(
            operator=address(keys, OPERATOR),
            attestor=address(keys, OPERATOR),
            shares=1_000 * SHARES,
            price_per_1k=2 * USDC,
            operator_cut_bps=1_000,
            region="Nairobi",
        )
        assert send_register_node(owner, suite, spec) == 1
        operator = Transactor(w3, Signer.from_key(keys[OPERATOR]))
        send_transfer_shares(operator, suite, 1, address(keys, SELLER), 100 * SHARES)
        send_mint_mock(owner, suite, address(keys, SELLER), 100 * USDC)
        send_mint_mock(owner, suite, address(keys, BUYER), 1_000 * USDC)
        yield {"chain": chain, "w3": w3, "suite": suite, "manifest": manifest, "keys": keys}


@pytest.fixture(autouse=True)
def fresh(world: dict[str, Any]) -> Iterator[None]:
    yield from snapshot_and_revert(world["w3"])


@pytest.fixture
def cli(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Any:
    """``cli(who, *args)`` runs ``edgeshare ARGS`` on the world's chain as ``who``."""
    return make_cli(capsys, monkeypatch, world["chain"].url, world["manifest"], world["keys"])


def shares_of(world: dict[str, Any], who: int | str) -> int:
    holder = who if isinstance(who, str) else address(world["keys"], who)
    return int(world["suite"].share(1).call("balanceOf", holder))


def usdc_of(world: dict[str, Any], who: int | str) -> int:
    holder = who if isinstance(who, str) else address(world["keys"], who)
    return int(world["suite"].stablecoin.call("balanceOf", holder))


def nonce_of(world: dict[str, Any], who: int) -> int:
    return int(world["w3"].eth.get_transaction_count(address(world["keys"], who)))


def book(cli: Any, *paths: Path) -> list[dict[str, Any]]:
    code, out = cli(None, "trade", "book", *(str(p) for p in paths), "--json")
    assert code == 0, out
    rows: list[dict[str, Any]] = json.loads(out)["orders"]
    return rows


def sell(cli: Any, path: Path, *args: str, amount: str = "10", price: str = "2.5") -> None:
    code, out = cli(
        SELLER, "trade", "sell", "--node", "1", "--amount", amount, "--price", price,
        "--out", str(path), *args,
    )  # fmt: skip
    assert code == 0, out


def test_sell_order__book_open__filled_in_two_parts__book_filled(
    world: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    suite = world["suite"]
    treasury = str(suite.router.call("treasury"))
    path = tmp_path / "sell.json"
    sent_before = nonce_of(world, SELLER)
    sell(cli, path, "--min-fill", "2", "--permit")
    # a signed order with a permit of the shares: the seller sent nothing
    assert nonce_of(world, SELLER) == sent_before
    (order,) = json.loads(path.read_text())["orders"]
    assert (order["amount"], order["price_per_share"], order["min_fill"], order["sell"]) == (
        str(10 * SHARES), "2500000", str(2 * SHARES), True,
    )  # fmt: skip
    assert order["maker"] == address(world["keys"], SELLER)
    assert order["permit"]["value"] == str(10 * SHARES)
    (row,) = book(cli, path)
    assert (row["state"], row["remaining"], row["cost"], row["node_id"]) == (
        "open", str(10 * SHARES), str(25 * USDC), 1,
    )  # fmt: skip
    # the buyer takes 4: the maker's permit, the buyer's approval, then the fill
    before = {who: (shares_of(world, who), usdc_of(world, who)) for who in (SELLER, BUYER)}
    fees_before = usdc_of(world, treasury)
    code, out = cli(BUYER, "trade", "fill", str(path), "--amount", "4")
    assert code == 0, out
    assert "bought 4 ESN1 (node 1) for 10 USDC" in out, out
    assert "6 ESN1 of the order remain" in out, out
    fee = 10 * USDC * FEE_BPS // 10_000
    assert shares_of(world, BUYER) - before[BUYER][0] == 4 * SHARES
    assert before[BUYER][1] - usdc_of(world, BUYER) == 10 * USDC
    assert before[SELLER][0] - shares_of(world, SELLER) == 4 * SHARES
    assert usdc_of(world, SELLER) - before[SELLER][1] == 10 * USDC - fee
    assert usdc_of(world, treasury) - fees_before == fee
    (row,) = book(cli, path)
    assert (row["state"], row["filled"], row["remaining"], row["cost"]) == (
        "open", str(4 * SHARES), str(6 * SHARES), str(15 * USDC),
    )  # fmt: skip
    # the maker's portfolio lists the open order with what remains
    seller = address(world["keys"], SELLER)
    code, out = cli(None, "portfolio", seller, "--orders", str(path), "--json")
    assert code == 0, out
    (listed,) = json.loads(out)["orders"]
    assert (listed["side"], listed["remaining"], listed["node_id"]) == ("sell", str(6 * SHARES), 1)
    db = f"sqlite:///{tmp_path / 'index.db'}"
    code, out = cli(None, "report", "investor", seller, "--orders", str(path), "--json", "--db", db)
    assert code == 0, out
    # (stdout's JSON, then stderr's note that no epoch has revenue yet)
    (reported,) = json.JSONDecoder().raw_decode(out)[0]["orders"]
    assert (reported["order_hash"], reported["remaining"]) == (
        listed["order_hash"],
        str(6 * SHARES),
    )
    # the rest, without --amount: the whole remainder (the permit is used up, the
    # allowance it set covers it)
    code, out = cli(BUYER, "trade", "fill", str(path), "--json")
    assert code == 0, out
    details = json.loads(out)["details"]
    assert (details["amount"], details["cost"], details["remaining"]) == (
        str(6 * SHARES), str(15 * USDC), "0",
    )  # fmt: skip
    assert details["permit_submitted"] is False
    assert shares_of(world, BUYER) - before[BUYER][0] == 10 * SHARES
    (row,) = book(cli, path)
    assert (row["state"], row["remaining"]) == ("filled", "0")
    code, out = cli(None, "portfolio", seller, "--orders", str(path), "--json")
    assert json.loads(out)["orders"] == []  # filled: no longer open
    code, out = cli(None, "trade", "book", str(path))
    assert code == 0 and "filled" in out, out
    # a replay is refused before anything is sent
    sent_before = nonce_of(world, BUYER)
    code, out = cli(BUYER, "trade", "fill", str(path))
    assert code == 2 and "filled" in out and "nothing was sent" in out, out
    assert nonce_of(world, BUYER) == sent_before
    assert int(suite.share(1).call("balanceOf", suite.market.address)) == 0


def test_buy_order__approved_by_the_maker__the_seller_fills_it(
    world: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    suite = world["suite"]
    keys = world["keys"]
    path = tmp_path / "buy.json"
    code, out = cli(
        BUYER, "trade", "buy", "--node", "1", "--amount", "3", "--price", "1.5", "--approve",
        "-o", str(path),
    )  # fmt: skip
    assert code == 0, out
    assert "approve the market for your stablecoin" in out, out
    market = suite.market.address
    assert int(suite.stablecoin.call("allowance", address(keys, BUYER), market)) == 4_500_000
    (row,) = book(cli, path)
    assert (row["side"], row["state"], row["cost"]) == ("buy", "open", "4500000")
    # the seller fills it: its shares approved for the market first, automatically
    before = (shares_of(world, SELLER), usdc_of(world, SELLER), shares_of(world, BUYER))
    code, out = cli(SELLER, "trade", "fill", str(path), "--json")
    assert code == 0, out
    result = json.loads(out)
    fee = 4_500_000 * FEE_BPS // 10_000
    assert result["details"]["approved"] is True
    assert (result["details"]["cost"], result["details"]["fee"]) == ("4500000", str(fee))
    assert len(result["details"]["transactions"]) == 2  # the approval and the fill
    assert before[0] - shares_of(world, SELLER) == 3 * SHARES
    assert usdc_of(world, SELLER) - before[1] == 4_500_000 - fee
    assert shares_of(world, BUYER) - before[2] == 3 * SHARES
    (row,) = book(cli, path)
    assert row["state"] == "filled"


def test_buy_order__without_approval__is_written_with_a_warning_and_booked_as_such(
    world: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    path = tmp_path / "buy.json"
    code, out = cli(
        BUYER, "trade", "buy", "--node", "1", "--amount", "3", "--price", "1.5", "-o", str(path)
    )
    assert code == 0, out
    assert "cannot fill yet (maker allowance short)" in out and "--approve" in out, out
    (row,) = book(cli, path)
    assert row["state"] == "maker allowance short"
    sent_before = nonce_of(world, SELLER)
    code, out = cli(SELLER, "trade", "fill", str(path))
    assert code == 2 and "maker allowance short" in out, out
    assert nonce_of(world, SELLER) == sent_before


def test_cancel__only_the_maker__voids_the_order__twice_is_refused(
    world: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    path = tmp_path / "sell.json"
    sell(cli, path, "--permit")
    code, out = cli(STRANGER, "trade", "cancel", str(path))
    assert code == 2 and "not the order's maker" in out, out
    code, out = cli(SELLER, "trade", "cancel", str(path))
    assert code == 0 and "is cancelled" in out, out
    (row,) = book(cli, path)
    assert row["state"] == "cancelled"
    sent_before = nonce_of(world, SELLER)
    code, out = cli(SELLER, "trade", "cancel", str(path))
    assert code == 2 and "already cancelled" in out, out
    assert nonce_of(world, SELLER) == sent_before
    sent_before = nonce_of(world, BUYER)
    code, out = cli(BUYER, "trade", "fill", str(path))
    assert code == 2 and "cancelled (the maker cancelled the order)" in out, out
    assert nonce_of(world, BUYER) == sent_before


def test_cancel_all__voids_every_earlier_order__later_ones_fill(
    world: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    first, second, later = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    sell(cli, first, "--permit", amount="1")
    sell(cli, second, amount="2", price="3")
    code, out = cli(SELLER, "trade", "cancel-all")
    assert code == 0 and "new orders carry nonce 1" in out, out
    assert [r["state"] for r in book(cli, tmp_path)] == ["old nonce", "old nonce"]
    sell(cli, later, "--permit", amount="1")
    rows = book(cli, tmp_path)
    assert {r["file"]: r["state"] for r in rows} == {
        str(first): "old nonce", str(second): "old nonce", str(later): "open",
    }  # fmt: skip
    code, out = cli(None, "trade", "book", str(tmp_path), "--open", "--json")
    assert [r["file"] for r in json.loads(out)["orders"]] == [str(later)]
    code, out = cli(BUYER, "trade", "fill", str(first))
    assert code == 2 and "old nonce" in out, out
    code, out = cli(BUYER, "trade", "fill", str(later))
    assert code == 0, out


def test_expired_order__booked_expired__fill_refused(
    world: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    path = tmp_path / "sell.json"
    sell(cli, path, "--permit", "--expires-in", "1h")
    expiry = json.loads(path.read_text())["orders"][0]["expiry"]
    advance_time(world["suite"], 3_601)
    (row,) = book(cli, path)
    assert (row["state"], row["expiry"]) == ("expired", expiry)
    sent_before = nonce_of(world, BUYER)
    code, out = cli(BUYER, "trade", "fill", str(path))
    assert code == 2 and "expired" in out, out
    assert nonce_of(world, BUYER) == sent_before
    code, out = cli(SELLER, "trade", "cancel", str(path))
    assert code == 2 and "already expired" in out, out


def test_maker_without_the_shares__book_shows_it__fill_refused(
    world: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    path = tmp_path / "sell.json"
    sell(cli, path, "--permit", amount="50")
    seller = Transactor(world["w3"], Signer.from_key(world["keys"][SELLER]))
    stranger = address(world["keys"], STRANGER)
    send_transfer_shares(seller, world["suite"], 1, stranger, 60 * SHARES)
    (row,) = book(cli, path)
    assert row["state"] == "maker balance short"
    code, out = cli(None, "trade", "book", str(path))
    assert code == 0 and "maker balance short" in out, out
    code, out = cli(BUYER, "trade", "fill", str(path))
    assert code == 2 and "maker balance short" in out, out
    # a part the maker still holds fills
    code, out = cli(BUYER, "trade", "fill", str(path), "--amount", "40")
    assert code == 0, out


def test_refused_fills__the_taker_short_of_stablecoin__and_own_order(
    world: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    path = tmp_path / "sell.json"
    sell(cli, path, "--permit")
    sent_before = nonce_of(world, STRANGER)
    code, out = cli(STRANGER, "trade", "fill", str(path))
    assert code == 2 and "the fill costs 25 USDC" in out and "holds 0 USDC" in out, out
    assert nonce_of(world, STRANGER) == sent_before
    stranger = address(world["keys"], STRANGER)
    code, out = cli(None, "trade", "book", str(path), "--taker", stranger, "--json")
    assert json.loads(out)["orders"][0]["state"] == "taker balance short", out
    code, out = cli(SELLER, "trade", "fill", str(path))
    assert code == 2 and "cannot fill its own order" in out, out
    code, out = cli(BUYER, "trade", "fill", str(path), "--amount", "11")
    assert code == 2 and "above remaining" in out, out


def test_malformed_order_files__exit_2_naming_the_problem__nothing_sent(
    world: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    good = tmp_path / "good.json"
    sell(cli, good, "--permit")
    valid = json.loads(good.read_text())

    def variant(change: Any) -> Any:
        data = json.loads(json.dumps(valid))
        change(data["orders"][0])
        return data

    def miscased(checksummed: str) -> str:
        """The address with one letter's case flipped: a bad EIP-55 checksum."""
        at = next(i for i, c in enumerate(checksummed) if i > 1 and c.isalpha())
        return checksummed[:at] + checksummed[at].swapcase() + checksummed[at + 1 :]

    signature = valid["orders"][0]["signature"]
    flipped = signature[:10] + ("1" if signature[10] != "1" else "2") + signature[11:]
    cases: dict[str, tuple[Any, str]] = {
        "bad JSON": ('{"orders": [', "Invalid JSON"),
        "unknown field": (variant(lambda o: o.update(colour="red")), "orders.0.colour: unknown"),
        "bad address": (variant(lambda o: o.update(maker="0x1234")), "orders.0.maker"),
        "bad checksum": (variant(lambda o: o.update(share=miscased(o["share"]))), "orders.0.share"),
        "a fraction": (variant(lambda o: o.update(amount=1.5)), "orders.0.amount"),
        "a word for a bool": (variant(lambda o: o.update(sell="yes")), "orders.0.sell"),
        "negative": (variant(lambda o: o.update(price_per_share="-1")), "orders.0.price_per_share"),
        "no signature": (variant(lambda o: o.pop("signature")), "orders.0.signature"),
        "short signature": (variant(lambda o: o.update(signature="0x1234")), "orders.0.signature"),
        "tampered signature": (variant(lambda o: o.update(signature=flipped)), "signature"),
        "tampered amount": (
            variant(lambda o: o.update(amount=str(20 * SHARES))),
            "not by the maker",
        ),
        "bad permit v": (variant(lambda o: o["permit"].update(v=29)), "orders.0.permit.v"),
        "no orders": ({"orders": []}, "holds no orders"),
        "another chain's market": (
            {**valid, "domain": {**valid["domain"], "chain_id": 1}}, "signed for chain 1 market"
        ),
    }  # fmt: skip
    block = world["w3"].eth.block_number
    sent_before = nonce_of(world, BUYER)
    for name, (content, expected) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.json"
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        code, out = cli(BUYER, "trade", "fill", str(path))
        assert code == 2, (name, out)
        assert expected in out and str(path) in out, (name, out)
        if name in ("bad JSON", "unknown field", "bad address", "a fraction"):
            code, out = cli(None, "trade", "book", str(path))
            assert code == 2 and expected in out, (name, out)
    assert nonce_of(world, BUYER) == sent_before
    assert world["w3"].eth.block_number == block
    # the tampered order is booked as the chain sees it: not the maker's signature
    rows = book(cli, tmp_path / "tampered_amount.json")
    assert rows[0]["state"] == "bad signature"


def test_dry_run__fill_and_approve__send_nothing(
    world: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    w3 = world["w3"]
    path = tmp_path / "sell.json"
    sell(cli, path, "--permit")
    block = w3.eth.block_number
    code, out = cli(BUYER, "trade", "fill", str(path), "--amount", "4", "--dry-run")
    assert code == 0, out
    assert "dry run: nothing was sent" in out, out
    assert "submit the maker's permit" in out and "approve the market" in out, out
    assert "buy from order" in out, out
    code, out = cli(BUYER, "trade", "fill", str(path), "--dry-run", "--json")
    assert code == 0, out
    assert [t["what"] for t in json.loads(out)["transactions"]][-1].startswith("buy from order")
    buy = tmp_path / "buy.json"
    code, out = cli(
        BUYER, "trade", "buy", "--node", "1", "--amount", "1", "--price", "2", "--approve",
        "--dry-run", "-o", str(buy),
    )  # fmt: skip
    assert code == 0 and "approve the market for your stablecoin" in out, out
    assert not buy.exists()
    code, out = cli(SELLER, "trade", "cancel-all", "--dry-run")
    assert code == 0, out
    assert w3.eth.block_number == block
    (row,) = book(cli, path)
    assert (row["state"], row["filled"]) == ("open", "0")


def test_whole_units__round_trip_exactly__and_bad_amounts_are_refused(
    world: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    path = tmp_path / "sell.json"
    sell(cli, path, "--permit", amount="1.000000000000000001", price="2.000001")
    (order,) = json.loads(path.read_text())["orders"]
    assert (order["amount"], order["price_per_share"]) == ("1000000000000000001", "2000001")
    code, out = cli(None, "trade", "book", str(path))
    assert code == 0, out
    assert "1.000000000000000001 ESN1" in out and "2.000001 USDC" in out, out
    # a sell order's cost rounds up: ceil(1.000000000000000001 * 2.000001) base units
    (row,) = book(cli, path)
    assert row["cost"] == "2000002"
    before = usdc_of(world, BUYER)
    code, out = cli(BUYER, "trade", "fill", str(path), "--amount", "0.5")
    assert code == 0, out
    assert "bought 0.5 ESN1 (node 1) for 1.000001 USDC" in out, out
    assert "0.500000000000000001 ESN1 of the order remain" in out, out
    assert before - usdc_of(world, BUYER) == 1_000_001  # ceil(0.5 * 2.000001 USDC)
    code, out = cli(BUYER, "trade", "fill", str(path), "--amount", "500000000000000001 base")
    assert code == 0, out
    assert shares_of(world, BUYER) == 1_000_000_000_000_000_001
    refused = {
        "too many decimals": (["--amount", "0.0000000000000000001"], "has 19 decimals"),
        "price decimals": (["--price", "2.0000001"], "has 7 decimals"),
        "min fill above amount": (["--min-fill", "11"], "min fill"),
        "zero amount": (["--amount", "0"], "more than 0"),
        "not a token of the suite": (
            ["--token", world["suite"].stablecoin.address],
            "does not trade on the market",
        ),
        "no such node": (["--node", "9"], "no node 9"),
        "a moment's order": (["--expires-in", "30"], "at least 60 seconds"),
        "a bad duration": (["--expires-in", "soon"], "--expires-in"),
    }
    block = world["w3"].eth.block_number
    for name, (args, expected) in refused.items():
        base = {"--node": "1", "--amount": "10", "--price": "2.5"}
        base.update(dict(zip(args[::2], args[1::2], strict=True)))
        if "--token" in base:
            base.pop("--node")
        flat = [x for pair in base.items() for x in pair]
        code, out = cli(SELLER, "trade", "sell", *flat, "-o", str(tmp_path / "x.json"))
        assert code == 2 and expected in out, (name, out)
    code, out = cli(SELLER, "trade", "sell", "--amount", "1", "--price", "1")
    assert code == 2 and "--node N or --token ADDRESS" in out, out
    assert world["w3"].eth.block_number == block
    assert not (tmp_path / "x.json").exists()


def test_parse_duration__seconds_and_units__anything_else_refused() -> None:
    cases = {"3600": 3_600, "90m": 5_400, "12h": 43_200, "7d": 604_800, "1d12h": 129_600,
             "1h 30m": 5_400, "45s": 45}  # fmt: skip
    assert {text: parse_duration(text, "--expires-in") for text in cases} == cases
    for bad in ("", "soon", "1h30", "-5", "1.5h", "h"):
        with pytest.raises(InputError, match="--expires-in"):
            parse_duration(bad, "--expires-in")


def test_basket_buy_order__booked_under_the_basket(
    world: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    """A buy order for a basket's units: ``--token`` takes any tradable token."""
    suite, w3, keys = world["suite"], world["w3"], world["keys"]
    owner = Transactor(w3, Signer.from_key(keys[OWNER]))
    share = suite.fetch_share_tokens([1])[0]
    owner.send(
        suite.baskets.tx("create_basket", "EdgeShare Basket East", "EAST", [share], [SHARES]),
        "create a basket",
    )
    basket = str(suite.baskets.call("basket_at", 1))
    path = tmp_path / "basket.json"
    code, out = cli(
        BUYER, "trade", "buy", "--token", basket, "--amount", "2", "--price", "4", "--approve",
        "-o", str(path),
    )  # fmt: skip
    assert code == 0, out
    (row,) = book(cli, path)
    assert (row["token"], row["symbol"], row["node_id"], row["state"]) == (
        basket, "EAST", None, "open",
    )  # fmt: skip
    code, out = cli(None, "trade", "book", str(path))
    assert code == 0 and "basket EAST" in out and "2 EAST" in out, out


def test_brownie_script__sell_book_fill_cancel_all__through_the_library(
    tmp_path: Path, deployer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scripts/trade.py on brownie's network: the maker and the taker are picked by
    $EDGESHARE_PRIVATE_KEY."""
    import importlib.util

    from edgeshare.brownie_support import get_suite, get_transactor

    def load_script(name: str) -> Any:
        where = Path(__file__).resolve().parents[2] / "scripts" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"scripts_{name}", where)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    keys = build_dev_keys(2)
    assert address(keys, 0) == deployer.address
    manifest = str(tmp_path / "manifest.json")
    load_script("deploy").main(manifest)
    suite = get_suite(manifest)
    spec = NodeSpec(
        operator=deployer.address, attestor=deployer.address, shares=10**21,
        price_per_1k=2_000, operator_cut_bps=0, region="Dhaka",
    )  # fmt: skip
    node_id = send_register_node(get_transactor(), suite, spec)
    taker = address(keys, 1)
    send_mint_mock(get_transactor(), suite, taker, 100 * USDC)
    trade = load_script("trade")
    monkeypatch.setenv("EDGESHARE_PRIVATE_KEY", keys[0])
    path = tmp_path / "sell.json"
    trade.sell(str(node_id), "10", "2.5", str(path), manifest, "permit")
    (status,) = trade.book(str(path), manifest)
    assert (status.state, status.remaining) == ("open", 10 * SHARES)
    monkeypatch.setenv("EDGESHARE_PRIVATE_KEY", keys[1])
    action = trade.fill(str(path), "4", manifest)
    assert action.details["cost"] == 10 * USDC
    assert int(suite.share(node_id).call("balanceOf", taker)) == 4 * SHARES
    monkeypatch.setenv("EDGESHARE_PRIVATE_KEY", keys[0])
    assert trade.cancel_all(manifest).details["nonce"] == 1
    (status,) = trade.book(str(path), manifest)
    assert (status.state, status.remaining) == ("old nonce", 6 * SHARES)
