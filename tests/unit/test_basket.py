"""Basket and PortfolioClaimer: creation checks, minting and redeeming in proportion
(rounded in the basket's favour), harvesting the components' revenue for the basket's
holders, the registrar's inability to redirect it, the supply bounds, and the portfolio
claim across shares and baskets. One rule per test, from the actor the rule is about.

Throughout: the basket holds at least what every unit can redeem, and its stablecoin
covers everything its holders can claim plus what is still vesting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import astuple, replace
from typing import Any

import brownie
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeshare.suite import Suite
from tests.conftest import SHARES, Payer, brownie_contract

UNIT = 10**18
ZERO = "0x" + "00" * 20
MIN_SUPPLY = 10**12


@pytest.fixture(scope="module")
def factory(suite: Suite) -> Any:
    return brownie_contract("BasketFactory", suite.baskets.address)


@pytest.fixture(scope="module")
def claimer(suite: Suite) -> Any:
    return brownie_contract("PortfolioClaimer", suite.claimer.address)


@pytest.fixture(scope="module")
def nodes(
    register: Callable[..., tuple[int, Any]], operator: Any, investor: Any, investor2: Any
) -> list[tuple[int, Any]]:
    """Three nodes in three regions; each investor holds 100 shares of each."""
    made = [register(region=region) for region in ("Jakarta", "Mumbai", "Lagos")]
    for _, share in made:
        for who in (investor, investor2):
            share.transfer(who, 100 * SHARES, {"from": operator})
    return made


@pytest.fixture(scope="module")
def weights() -> list[int]:
    """Share base units of each node per whole basket unit: 1, 2 and 0.5 shares."""
    return [SHARES, 2 * SHARES, SHARES // 2]


@pytest.fixture(scope="module")
def basket(
    factory: Any, nodes: list[tuple[int, Any]], weights: list[int], investor: Any,
    investor2: Any,
) -> Any:  # fmt: skip
    """A basket over the three nodes; both investors approved it on every share."""
    tx = factory.create_basket(
        "EdgeShare Basket Emerging", "ESB1", [s.address for _, s in nodes], weights,
        {"from": investor},
    )  # fmt: skip
    made = brownie_contract("Basket", tx.events["BasketCreated"]["basket"])
    for _, share in nodes:
        for who in (investor, investor2):
            share.approve(made, 2**256 - 1, {"from": who})
    return made


def _claimed(tx: Any) -> int:
    """What a transaction's claims paid (its RevenueClaimed events)."""
    return (
        sum(int(e["amount"]) for e in tx.events["RevenueClaimed"])
        if "RevenueClaimed" in tx.events
        else 0
    )


def _harvested(tx: Any) -> int:
    return int(tx.events["Harvested"]["amount"]) if "Harvested" in tx.events else 0


def _balances(nodes: list[tuple[int, Any]], holder: Any) -> list[int]:
    return [int(share.balanceOf(holder)) for _, share in nodes]


def _assert_backed(basket: Any, nodes: list[tuple[int, Any]], weights: list[int]) -> None:
    """The basket holds at least what all its units redeem, of every component."""
    supply = int(basket.totalSupply())
    for (_, share), weight in zip(nodes, weights, strict=True):
        assert share.balanceOf(basket) >= supply * weight // UNIT


# -------------------------------------------------------------------- creation ----


def test_create_basket__records_components_and_weights(
    basket: Any, factory: Any, claimer: Any, nodes: list[tuple[int, Any]], weights: list[int]
) -> None:
    tokens, got = basket.components()
    assert list(tokens) == [s.address for _, s in nodes] and list(got) == weights
    assert factory.is_basket(basket) and factory.basket_at(factory.basket_count()) == basket
    assert (basket.name(), basket.symbol(), basket.decimals()) == (
        "EdgeShare Basket Emerging", "ESB1", 18
    )  # fmt: skip
    assert basket.CLAIMER() == claimer.address == nodes[0][1].CLAIMER()


@pytest.mark.parametrize(
    "case, reason",
    [
        ("empty", "basket factory: no components"),
        ("weights", "basket factory: one weight per component"),
        ("twice", "basket factory: component named twice"),
        ("foreign", "basket factory: component is not a suite share"),
        ("eoa", "basket factory: component is not a suite share"),
        ("zero weight", "basket: weight out of range"),
        ("no name", "basket factory: name or symbol is empty"),
    ],
)
def test_create_basket__bad_parameters__refused_with_the_reason(
    case: str, reason: str, factory: Any, nodes: list[tuple[int, Any]], stablecoin: Any,
    stranger: Any,
) -> None:  # fmt: skip
    tokens = [s.address for _, s in nodes]
    args: dict[str, tuple[Any, ...]] = {
        "empty": ("B", "B", [], []),
        "weights": ("B", "B", tokens, [1, 1]),
        "twice": ("B", "B", [tokens[0], tokens[1], tokens[0]], [1, 1, 1]),
        "foreign": ("B", "B", [tokens[0], stablecoin.address], [1, 1]),
        "eoa": ("B", "B", [stranger.address], [1]),
        "zero weight": ("B", "B", tokens, [1, 0, 1]),
        "no name": ("", "B", tokens, [1, 1, 1]),
    }
    with brownie.reverts():
        try:
            factory.create_basket(*args[case], {"from": stranger})
        except brownie.exceptions.VirtualMachineError as exc:
            if case != "foreign":  # a stablecoin has no NODE_ID: reverts without a reason
                assert exc.revert_msg == reason, (case, exc.revert_msg)
            raise


def test_registrar__cannot_redirect_what_the_basket_earns(
    basket: Any, nodes: list[tuple[int, Any]], deployer: Any, stranger: Any
) -> None:
    """The basket chose "no receiver" on each component at creation: the registrar
    (deployer) cannot set one, and nobody can claim_for it."""
    _, share = nodes[0]
    assert share.receiver_chosen_by_holder(basket)
    with brownie.reverts("share: the holder chose its receiver"):
        share.set_revenue_receiver(basket, stranger, {"from": deployer})
    with brownie.reverts("share: holder has no revenue receiver"):
        share.claim_for(basket, {"from": stranger})


# ------------------------------------------------------------- mint and redeem ----


def test_mint__takes_each_component_rounded_up(
    basket: Any, nodes: list[tuple[int, Any]], weights: list[int], investor: Any
) -> None:
    units = 3 * UNIT + 1  # one base unit more than 3 units: every component rounds up
    before = _balances(nodes, investor)
    expected = [-(-units * w // UNIT) for w in weights]
    assert list(basket.shares_for(units, True)) == expected
    basket.mint(units, {"from": investor})
    assert [b - a for b, a in zip(before, _balances(nodes, investor), strict=True)] == expected
    assert basket.balanceOf(investor) == units == basket.totalSupply()
    _assert_backed(basket, nodes, weights)


def test_redeem__gives_back_each_component_rounded_down(
    basket: Any, nodes: list[tuple[int, Any]], weights: list[int], investor: Any
) -> None:
    basket.mint(5 * UNIT, {"from": investor})
    before = _balances(nodes, investor)
    units = UNIT + 1
    basket.redeem(units, {"from": investor})
    expected = [units * w // UNIT for w in weights]
    assert [a - b for b, a in zip(before, _balances(nodes, investor), strict=True)] == expected
    assert basket.balanceOf(investor) == 4 * UNIT - 1
    _assert_backed(basket, nodes, weights)


def test_mint_then_redeem_everything__returns_all_but_the_rounding(
    basket: Any, nodes: list[tuple[int, Any]], investor: Any
) -> None:
    """A full round trip costs at most one share base unit per component."""
    before = _balances(nodes, investor)
    basket.mint(7 * UNIT + 3, {"from": investor})
    basket.redeem(7 * UNIT + 3, {"from": investor})
    after = _balances(nodes, investor)
    assert all(0 <= b - a <= 1 for b, a in zip(before, after, strict=True))
    assert basket.totalSupply() == 0


def test_mint__without_approval__reverts_and_mints_nothing(
    basket: Any, nodes: list[tuple[int, Any]], investor: Any
) -> None:
    nodes[1][1].approve(basket, 0, {"from": investor})
    with brownie.reverts("share: insufficient allowance"):
        basket.mint(UNIT, {"from": investor})
    assert basket.totalSupply() == 0 and nodes[0][1].balanceOf(basket) == 0


@pytest.mark.parametrize(
    "units, reason",
    [
        (0, "basket: units is zero"),
        (MIN_SUPPLY - 1, "basket: supply below the minimum"),
        (2**86 + 1, "basket: supply above the maximum"),
    ],
)
def test_mint__outside_the_supply_bounds__refused(
    units: int, reason: str, basket: Any, investor: Any
) -> None:
    with brownie.reverts(reason):
        basket.mint(units, {"from": investor})


def test_redeem__more_than_the_caller_holds__refused_with_the_reason(
    basket: Any, investor: Any, investor2: Any
) -> None:
    basket.mint(UNIT, {"from": investor})
    for units, who in ((UNIT + 1, investor), (UNIT, investor2), (2**86, investor)):
        with brownie.reverts("basket: redeem exceeds your units"):
            basket.redeem(units, {"from": who})


def test_redeem__leaving_a_supply_below_the_minimum__refused(basket: Any, investor: Any) -> None:
    basket.mint(UNIT, {"from": investor})
    with brownie.reverts("basket: supply below the minimum"):
        basket.redeem(UNIT - MIN_SUPPLY + 1, {"from": investor})
    basket.redeem(UNIT, {"from": investor})  # all of it is fine
    assert basket.totalSupply() == 0


# --------------------------------------------------------------------- revenue ----


def _earn(pay: Payer, nodes: list[tuple[int, Any]], amounts: list[int]) -> None:
    """Pay each node its amount (settled, finalized, vested)."""
    for (node_id, _), amount in zip(nodes, amounts, strict=True):
        if amount:
            pay(node_id, amount)


def test_harvest__books_what_the_components_paid_and_holders_claim_it_pro_rata(
    basket: Any, nodes: list[tuple[int, Any]], pay: Payer, investor: Any, investor2: Any,
    stranger: Any, stablecoin: Any,
) -> None:  # fmt: skip
    basket.mint(3 * UNIT, {"from": investor})
    basket.mint(1 * UNIT, {"from": investor2})
    _earn(pay, nodes, [1_000_000, 2_000_000, 3_000_000])
    owed = sum(int(s.claimable(basket)) for _, s in nodes)
    assert owed > 0
    tx = basket.harvest({"from": stranger})
    assert _harvested(tx) == owed
    assert stablecoin.balanceOf(basket) == owed
    a, b = int(basket.claimable(investor)), int(basket.claimable(investor2))
    assert owed * 3 // 4 - 1 <= a <= owed * 3 // 4 and owed // 4 - 1 <= b <= owed // 4
    paid = _claimed(basket.claim({"from": investor})) + _claimed(basket.claim({"from": investor2}))
    assert paid == a + b and 0 <= owed - paid <= 2  # dust stays in the basket
    assert stablecoin.balanceOf(basket) == owed - paid


def test_harvest__with_nothing_owed__books_nothing(basket: Any, stranger: Any) -> None:
    tx = basket.harvest({"from": stranger})
    assert _harvested(tx) == 0


def test_mint__harvests_first__a_newcomer_gets_none_of_what_was_earned_before(
    basket: Any, nodes: list[tuple[int, Any]], pay: Payer, investor: Any, investor2: Any
) -> None:
    """Revenue the basket's shares earned before a mint goes to the units that existed:
    the mint harvests it first and it is released to them at once (it has already vested
    at the node), so the newcomer's units earn only from the mint on."""
    basket.mint(UNIT, {"from": investor})
    _earn(pay, nodes, [600_000, 0, 0])
    owed = int(nodes[0][1].claimable(basket))
    basket.mint(9 * UNIT, {"from": investor2})
    assert basket.total_distributed() == owed > 0
    assert basket.claimable(investor2) == 0
    assert owed - 1 <= basket.claimable(investor) <= owed


def test_basket__has_no_second_unlock(basket: Any) -> None:
    """What a component pays has vested at the node; the basket releases it at once."""
    assert basket.UNLOCK_PERIOD() == 0


def test_redeem__keeps_what_the_units_earned_claimable(
    basket: Any, nodes: list[tuple[int, Any]], pay: Payer, investor: Any
) -> None:
    basket.mint(2 * UNIT, {"from": investor})
    _earn(pay, nodes, [400_000, 400_000, 0])
    basket.harvest({"from": investor})
    earned = int(basket.claimable(investor))
    basket.redeem(2 * UNIT, {"from": investor})
    assert basket.claimable(investor) == earned > 0
    assert _claimed(basket.claim({"from": investor})) == earned


def test_transfer__moves_future_revenue_not_past(
    basket: Any, nodes: list[tuple[int, Any]], pay: Payer, investor: Any, investor2: Any
) -> None:
    basket.mint(2 * UNIT, {"from": investor})
    _earn(pay, nodes, [500_000, 0, 0])
    basket.harvest({"from": investor})
    earned = int(basket.claimable(investor))
    basket.transfer(investor2, UNIT, {"from": investor})
    assert basket.claimable(investor) == earned and basket.claimable(investor2) == 0


def test_transfer__to_the_basket_or_the_router__refused(
    basket: Any, router: Any, investor: Any
) -> None:
    basket.mint(UNIT, {"from": investor})
    with brownie.reverts("share: transfer to the share token"):
        basket.transfer(basket, 1, {"from": investor})
    with brownie.reverts("share: transfer to the router"):
        basket.transfer(router, 1, {"from": investor})


# ------------------------------------------------------------- portfolio claim ----


def test_claim_many__pays_everything_across_shares_and_baskets_in_one_transaction(
    claimer: Any, basket: Any, nodes: list[tuple[int, Any]], pay: Payer, investor: Any,
    stablecoin: Any,
) -> None:  # fmt: skip
    basket.mint(UNIT, {"from": investor})
    _earn(pay, nodes, [1_000_000, 1_000_000, 1_000_000])
    basket.harvest({"from": investor})
    tokens = [s for _, s in nodes] + [basket]
    owed = [int(t.claimable(investor)) for t in tokens]
    assert all(owed)
    before = stablecoin.balanceOf(investor)
    tx = claimer.claim_many(tokens, investor, {"from": investor})
    assert _claimed(tx) == sum(owed) == stablecoin.balanceOf(investor) - before
    assert [e["amount"] for e in tx.events["RevenueClaimed"]] == owed
    assert all(t.claimable(investor) == 0 for t in tokens)


def test_claim_many__to_another_address__pays_it(
    claimer: Any, nodes: list[tuple[int, Any]], pay: Payer, investor: Any, stranger: Any,
    stablecoin: Any,
) -> None:  # fmt: skip
    _earn(pay, nodes, [1_000_000, 0, 0])
    owed = int(nodes[0][1].claimable(investor))
    before = stablecoin.balanceOf(stranger)
    claimer.claim_many([nodes[0][1]], stranger, {"from": investor})
    assert stablecoin.balanceOf(stranger) - before == owed > 0


def test_claim_many__claims_only_the_callers_own_revenue(
    claimer: Any, nodes: list[tuple[int, Any]], pay: Payer, investor: Any, stranger: Any
) -> None:
    _earn(pay, nodes, [1_000_000, 0, 0])
    owed = int(nodes[0][1].claimable(investor))
    tx = claimer.claim_many([nodes[0][1]], stranger, {"from": stranger})
    assert _claimed(tx) == 0 and nodes[0][1].claimable(investor) == owed


def test_claim_many__a_token_named_twice__pays_once(
    claimer: Any, nodes: list[tuple[int, Any]], pay: Payer, investor: Any
) -> None:
    _earn(pay, nodes, [1_000_000, 0, 0])
    owed = int(nodes[0][1].claimable(investor))
    share = nodes[0][1]
    assert _claimed(claimer.claim_many([share, share], investor, {"from": investor})) == owed


def test_claim_many__zero_receiver_or_foreign_token__refused(
    claimer: Any, nodes: list[tuple[int, Any]], stablecoin: Any, investor: Any
) -> None:
    with brownie.reverts("claimer: receiver is the zero address"):
        claimer.claim_many([nodes[0][1]], ZERO, {"from": investor})
    with brownie.reverts():  # the stablecoin has no claim_by: the whole call reverts
        claimer.claim_many([nodes[0][1], stablecoin], investor, {"from": investor})


def test_positions__equal_each_tokens_own_views_in_one_call_mid_vesting(
    claimer: Any, suite: Suite, nodes: list[tuple[int, Any]], pay: Payer, investor: Any,
    stranger: Any,
) -> None:  # fmt: skip
    """PortfolioClaimer.positions returns, per token, what its six views return in the same
    block; the library reads it 64 tokens per call and reads around a claimer without it."""
    pay(nodes[1][0], 2_000_000)
    pay(nodes[0][0], 1_000_000, vest=False)  # still vesting: claimable grows with time
    tokens = [s.address for _, s in nodes]
    block = int(suite.rpc.call("eth_blockNumber", []), 16)
    views = {h.address: suite._fetch_positions_by_field(h.address, tokens, block)
             for h in (investor, stranger)}  # fmt: skip
    for holder, by_views in views.items():
        assert suite.fetch_positions(holder, tokens, block) == by_views
        raw = claimer.positions.call(holder, tokens, block_identifier=block)
        assert [tuple(int(v) for v in p) for p in raw] == [astuple(p) for p in by_views]
    mid = views[investor.address][0]
    assert mid.unvested > 0 and mid.vesting == mid.unvested * mid.balance // mid.supply
    assert mid.vesting_ends_at > suite.w3.eth.get_block(block)["timestamp"]
    many = tokens * 24  # 72 tokens: two calls of at most 64, in one batch
    assert suite.fetch_positions(investor.address, many, block) == views[investor.address] * 24
    # a claimer deployed before the view (here: a contract without it) is read around
    older = replace(suite, claimer=suite.reader.contract("PortfolioClaimer", tokens[0]))
    assert older.fetch_positions(investor.address, tokens, block) == views[investor.address]


def test_positions__a_token_without_the_views__refused(
    claimer: Any, nodes: list[tuple[int, Any]], stablecoin: Any, investor: Any
) -> None:
    with brownie.reverts():
        claimer.positions(investor, [nodes[0][1], stablecoin])


def test_claim_by__from_anyone_but_the_claimer__refused(
    basket: Any, nodes: list[tuple[int, Any]], investor: Any, stranger: Any
) -> None:
    for token in (nodes[0][1], basket):
        with brownie.reverts("share: caller is not the claimer"):
            token.claim_by(investor, stranger, {"from": stranger})


# -------------------------------------------------------------------- property ----


OPS = st.lists(
    st.tuples(
        st.sampled_from(["mint", "redeem", "transfer", "earn", "harvest", "claim"]),
        st.integers(0, 1),  # who
        st.integers(1, 5 * UNIT),  # units or amount
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=OPS)
def test_property__holders_can_claim_exactly_what_was_harvested_minus_dust(
    ops: list[tuple[str, int, int]], basket: Any, nodes: list[tuple[int, Any]],
    weights: list[int], pay: Payer, investor: Any, investor2: Any, stablecoin: Any,
) -> None:  # fmt: skip
    """Any interleaving of mints, redeems, transfers, revenue, harvests and claims: what
    the holders claimed plus what they can claim plus what is still vesting equals what
    the basket harvested, less at most a few base units of rounding, and the basket's
    stablecoin always covers it; the basket always backs its units."""
    brownie.chain.snapshot()
    try:
        who = [investor, investor2]
        claimed = 0
        for op, i, n in ops:
            actor = who[i]
            if op == "mint":
                basket.mint(max(n, MIN_SUPPLY), {"from": actor})
            elif op == "redeem":
                held, supply = int(basket.balanceOf(actor)), int(basket.totalSupply())
                units = min(n, held)
                if units and (supply - units == 0 or supply - units >= MIN_SUPPLY):
                    basket.redeem(units, {"from": actor})
            elif op == "transfer":
                units = min(n, int(basket.balanceOf(actor)))
                basket.transfer(who[1 - i], units, {"from": actor})
            elif op == "earn":
                pay(nodes[n % 3][0], 1_000 * (1 + n % 997), vest=bool(i))
            elif op == "harvest":
                basket.harvest({"from": actor})
            else:
                claimed += _claimed(basket.claim({"from": actor}))
            _assert_backed(basket, nodes, weights)
        harvested = int(basket.total_distributed())
        owed = sum(int(basket.claimable(a)) for a in who) + int(basket.unvested())
        assert harvested - 4 - len(ops) <= claimed + owed <= harvested
        assert stablecoin.balanceOf(basket) == harvested - claimed
    finally:
        brownie.chain.revert()
