"""NodeRegistry: roles, registration, prices by epoch, attestor, operator cut, status."""

from __future__ import annotations

from typing import Any

import brownie
import pytest

from tests.conftest import SHARES, get_now, mine_at

ZERO = "0x" + "00" * 20
ACTIVE, PAUSED, RETIRED = 1, 2, 4
WEEK = 7 * 86_400


def _register_args(operator_: Any, attestor_: Any, **over: Any) -> list[Any]:
    args = {
        "operator": operator_,
        "attestor": attestor_,
        "shares": 100 * SHARES,
        "price": 1_000,
        "cut": 1_000,
        "region": "Mumbai",
        "uri": "ipfs://x",
    }
    args.update(over)
    return list(args.values())


def test_deployment__deployer_holds_every_role(
    registry: Any, deployer: Any, router: Any, stablecoin: Any
) -> None:
    assert registry.owner() == deployer
    assert registry.registrar() == deployer
    assert registry.guardian() == deployer
    assert registry.router() == router
    assert registry.stablecoin() == stablecoin
    assert registry.EPOCH_LENGTH() == 60
    assert registry.node_count() == 0


def test_register_node__creates_share_token_and_logs(
    registry: Any, deployer: Any, operator: Any, attestor: Any
) -> None:
    tx = registry.register_node(*_register_args(operator, attestor), {"from": deployer})
    event = tx.events["NodeRegistered"]
    assert event["node_id"] == 1
    assert event["operator"] == operator
    assert event["attestor"] == attestor
    assert event["shares"] == 100 * SHARES
    assert event["price_per_1k"] == 1_000
    assert event["region"] == "Mumbai"
    info = registry.node(1)
    assert info["operator"] == operator and info["attestor"] == attestor
    assert info["share_token"] == registry.share_token(1) == event["share_token"]
    assert info["status"] == ACTIVE
    assert info["metadata_uri"] == "ipfs://x"
    assert registry.node_count() == 1
    second = registry.register_node(*_register_args(operator, attestor), {"from": deployer})
    assert second.events["NodeRegistered"]["node_id"] == 2
    assert registry.share_token(2) != registry.share_token(1)


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"operator": ZERO}, "registry: operator is the zero address"),
        ({"attestor": ZERO}, "registry: attestor is the zero address"),
        ({"cut": 5_001}, "registry: operator cut above cap"),
        ({"region": ""}, "registry: region is empty"),
        ({"shares": 0}, "share: supply is zero"),
    ],
)
def test_register_node__bad_terms__revert(
    registry: Any, deployer: Any, operator: Any, attestor: Any, over: dict[str, Any], reason: str
) -> None:
    with brownie.reverts(reason):
        registry.register_node(*_register_args(operator, attestor, **over), {"from": deployer})


def test_register_node__by_non_registrar__reverts(
    registry: Any, stranger: Any, operator: Any, attestor: Any
) -> None:
    with brownie.reverts("registry: not registrar"):
        registry.register_node(*_register_args(operator, attestor), {"from": stranger})


def test_register_node__while_paused__reverts(
    registry: Any, deployer: Any, operator: Any, attestor: Any
) -> None:
    registry.pause({"from": deployer})
    with brownie.reverts("registry: paused"):
        registry.register_node(*_register_args(operator, attestor), {"from": deployer})


def test_unknown_node__reverts_in_views(registry: Any) -> None:
    for call in (
        registry.node,
        registry.share_token,
        registry.payout_terms,
        registry.operator_cut_bps,
    ):
        with brownie.reverts("registry: unknown node"):
            call(1)


def test_set_price__applies_from_next_epoch_and_keeps_history(
    registry: Any, node: Any, operator: Any
) -> None:
    node_id, _ = node
    e0 = registry.current_epoch()
    tx = registry.set_price(node_id, 2_000, {"from": operator})
    assert tx.events["PriceSet"]["from_epoch"] == e0 + 1
    assert registry.price_for_epoch(node_id, e0) == 1_000
    assert registry.price_for_epoch(node_id, e0 + 1) == 2_000
    registry.set_price(node_id, 3_000, {"from": operator})  # same epoch: replaces
    assert registry.price_for_epoch(node_id, e0 + 1) == 3_000
    prices = {e0: 1_000, e0 + 1: 3_000}
    for step in range(2, 9):  # one change per epoch for several epochs
        mine_at(registry.epoch_start(e0 + step - 1))
        registry.set_price(node_id, 1_000 * step, {"from": operator})
        prices[e0 + step] = 1_000 * step
    for epoch, price in prices.items():
        assert registry.price_for_epoch(node_id, epoch) == price
    assert registry.price_for_epoch(node_id, e0 + 100) == 8_000


def test_set_price__by_non_operator__reverts(registry: Any, node: Any, stranger: Any) -> None:
    with brownie.reverts("registry: not operator"):
        registry.set_price(node[0], 1, {"from": stranger})


def test_rotate_attestor__replaces_key_and_logs(
    registry: Any, node: Any, operator: Any, attestor: Any, stranger: Any
) -> None:
    node_id, _ = node
    tx = registry.rotate_attestor(node_id, stranger, {"from": operator})
    assert tx.events["AttestorRotated"]["previous_attestor"] == attestor
    assert tx.events["AttestorRotated"]["new_attestor"] == stranger
    assert registry.node(node_id)["attestor"] == stranger
    with brownie.reverts("registry: attestor is the zero address"):
        registry.rotate_attestor(node_id, ZERO, {"from": operator})
    with brownie.reverts("registry: not operator"):
        registry.rotate_attestor(node_id, stranger, {"from": stranger})


def test_propose_operator_cut__increase_waits_the_delay(
    registry: Any, node: Any, operator: Any
) -> None:
    node_id, _ = node
    now_epoch = registry.current_epoch()
    tx = registry.propose_operator_cut(node_id, 3_000, {"from": operator})
    event = tx.events["OperatorCutProposed"]
    # the first epoch that starts at least a week later
    first = event["from_epoch"]
    assert registry.epoch_start(first - 1) < tx.timestamp + WEEK <= registry.epoch_start(first)
    assert event["effective_at"] == registry.epoch_start(first)
    assert registry.node(node_id)["pending_cut_bps"] == 3_000
    assert registry.node(node_id)["pending_cut_epoch"] == first
    assert registry.operator_cut_bps(node_id) == 1_000
    mine_at(event["effective_at"] - 1)
    assert registry.operator_cut_bps(node_id) == 1_000
    mine_at(event["effective_at"])
    assert registry.operator_cut_bps(node_id) == 3_000
    # epochs before it keep their cut, however late they are reported
    assert registry.usage_terms(node_id, now_epoch)["operator_cut_bps"] == 1_000
    assert registry.usage_terms(node_id, first - 1)["operator_cut_bps"] == 1_000
    assert registry.usage_terms(node_id, first)["operator_cut_bps"] == 3_000


def test_propose_operator_cut__decrease_applies_from_the_next_epoch(
    registry: Any, node: Any, operator: Any
) -> None:
    node_id, _ = node
    epoch = registry.current_epoch()
    registry.propose_operator_cut(node_id, 4_000, {"from": operator})
    registry.propose_operator_cut(node_id, 500, {"from": operator})  # replaces the pending rise
    assert registry.node(node_id)["pending_cut_epoch"] == 0
    assert registry.usage_terms(node_id, epoch)["operator_cut_bps"] == 1_000
    assert registry.node(node_id)["next_operator_cut_bps"] == 500
    mine_at(get_now() + 2 * WEEK)
    assert registry.operator_cut_bps(node_id) == 500
    assert registry.usage_terms(node_id, epoch)["operator_cut_bps"] == 1_000


def test_propose_operator_cut__above_cap_or_by_stranger__reverts(
    registry: Any, node: Any, operator: Any, stranger: Any
) -> None:
    with brownie.reverts("registry: operator cut above cap"):
        registry.propose_operator_cut(node[0], 5_001, {"from": operator})
    with brownie.reverts("registry: not operator"):
        registry.propose_operator_cut(node[0], 1, {"from": stranger})


def test_set_node_status__operator_pauses_and_resumes(
    registry: Any, node: Any, operator: Any
) -> None:
    node_id, _ = node
    tx = registry.set_node_status(node_id, PAUSED, {"from": operator})
    assert tx.events["NodeStatusChanged"]["status"] == PAUSED
    assert registry.node(node_id)["status"] == PAUSED
    registry.set_node_status(node_id, ACTIVE, {"from": operator})
    with brownie.reverts("registry: status unchanged"):
        registry.set_node_status(node_id, ACTIVE, {"from": operator})


def test_set_node_status__only_registrar_retires_and_retired_is_final(
    registry: Any, node: Any, operator: Any, deployer: Any
) -> None:
    node_id, _ = node
    with brownie.reverts("registry: only the registrar retires"):
        registry.set_node_status(node_id, RETIRED, {"from": operator})
    registry.set_node_status(node_id, RETIRED, {"from": deployer})
    with brownie.reverts("registry: node is retired"):
        registry.set_node_status(node_id, ACTIVE, {"from": deployer})
    with brownie.reverts("registry: node is retired"):
        registry.set_price(node_id, 1, {"from": operator})


def test_retired_from__the_first_retired_epoch_and_0_otherwise(
    registry: Any, node: Any, register: Any, operator: Any, deployer: Any
) -> None:
    """What the payment channels read to end a retired node's final window: 0 for an
    unknown, active or paused node; the epoch after the retirement once retired."""
    node_id, _ = node
    other_id, _ = register()
    assert registry.retired_from(node_id) == 0 == registry.retired_from(99)
    registry.set_node_status(node_id, PAUSED, {"from": operator})  # a pause is not retiring
    registry.set_node_status(node_id, ACTIVE, {"from": operator})
    registry.set_node_status(node_id, PAUSED, {"from": deployer})
    assert registry.retired_from(node_id) == 0
    tx = registry.set_node_status(node_id, RETIRED, {"from": deployer})  # a paused node too
    epoch = (tx.timestamp - registry.GENESIS()) // registry.EPOCH_LENGTH()
    assert (
        registry.retired_from(node_id) == epoch + 1 == tx.events["NodeStatusChanged"]["from_epoch"]
    )
    assert not registry.usage_terms(node_id, epoch + 1)["active"]
    assert registry.retired_from(other_id) == 0  # only that node
    mine_at(registry.epoch_start(epoch + 5))
    assert registry.retired_from(node_id) == epoch + 1  # it never moves


def test_set_node_status__stranger_or_bad_value__reverts(
    registry: Any, node: Any, stranger: Any, deployer: Any
) -> None:
    with brownie.reverts("registry: not operator or registrar"):
        registry.set_node_status(node[0], PAUSED, {"from": stranger})
    with brownie.reverts("registry: bad status"):
        registry.set_node_status(node[0], ACTIVE | PAUSED, {"from": deployer})


def test_set_metadata_uri__by_operator_only(
    registry: Any, node: Any, operator: Any, stranger: Any
) -> None:
    tx = registry.set_metadata_uri(node[0], "https://example.org/n1", {"from": operator})
    assert tx.events["MetadataUpdated"]["metadata_uri"] == "https://example.org/n1"
    assert registry.node(node[0])["metadata_uri"] == "https://example.org/n1"
    with brownie.reverts("registry: not operator"):
        registry.set_metadata_uri(node[0], "x", {"from": stranger})


def test_ownership__two_step_transfer(
    registry: Any, deployer: Any, stranger: Any, investor: Any
) -> None:
    tx = registry.transfer_ownership(investor, {"from": deployer})
    assert tx.events["OwnershipTransferStarted"]["pending_owner"] == investor
    assert registry.owner() == deployer
    with brownie.reverts("registry: not pending owner"):
        registry.accept_ownership({"from": stranger})
    tx = registry.accept_ownership({"from": investor})
    assert tx.events["OwnershipTransferred"]["new_owner"] == investor
    assert registry.owner() == investor
    assert registry.pending_owner() == ZERO
    with brownie.reverts("registry: not owner"):
        registry.transfer_ownership(deployer, {"from": deployer})


def test_roles__owner_appoints_registrar_and_guardian(
    registry: Any, deployer: Any, stranger: Any, investor: Any
) -> None:
    tx = registry.set_registrar(investor, {"from": deployer})
    assert tx.events["RoleGranted"]["role"] == "registrar"
    registry.set_guardian(investor, {"from": deployer})
    assert registry.registrar() == investor and registry.guardian() == investor
    for call in (registry.set_registrar, registry.set_guardian):
        with brownie.reverts("registry: not owner"):
            call(stranger, {"from": stranger})
    with brownie.reverts("registry: registrar is the zero address"):
        registry.set_registrar(ZERO, {"from": deployer})
    with brownie.reverts("registry: guardian is the zero address"):
        registry.set_guardian(ZERO, {"from": deployer})


def test_pause__guardian_only_and_not_twice(registry: Any, deployer: Any, stranger: Any) -> None:
    with brownie.reverts("registry: not guardian"):
        registry.pause({"from": stranger})
    tx = registry.pause({"from": deployer})
    assert "Paused" in tx.events and registry.paused()
    with brownie.reverts("registry: already paused"):
        registry.pause({"from": deployer})
    with brownie.reverts("registry: not guardian"):
        registry.unpause({"from": stranger})
    registry.unpause({"from": deployer})
    with brownie.reverts("registry: not paused"):
        registry.unpause({"from": deployer})


def test_set_router__only_once(registry: Any, deployer: Any, router: Any, stablecoin: Any) -> None:
    with brownie.reverts("registry: router already set"):
        registry.set_router(router, {"from": deployer})


def test_epochs__count_from_genesis(registry: Any) -> None:
    genesis = registry.GENESIS()
    assert registry.epoch_start(0) == genesis
    assert registry.epoch_start(5) == genesis + 5 * 60
    mine_at(genesis + 5 * 60 + 10)
    assert registry.current_epoch() == 5


def test_usage_terms__give_the_epochs_price_and_current_attestor(
    registry: Any, node: Any, operator: Any, attestor: Any, stranger: Any
) -> None:
    node_id, _ = node
    e0 = registry.current_epoch()
    registry.set_price(node_id, 7_777, {"from": operator})
    registry.rotate_attestor(node_id, stranger, {"from": operator})
    terms = registry.usage_terms(node_id, e0)
    assert (
        terms["attestor"],
        terms["registered"],
        terms["active"],
        terms["price_per_1k"],
        terms["operator_cut_bps"],
    ) == (stranger, True, True, 1_000, 1_000)
    assert registry.usage_terms(node_id, e0 + 1)["price_per_1k"] == 7_777
    payout = registry.payout_terms(node_id)
    assert payout["operator"] == operator and payout["share_token"] == registry.share_token(node_id)


def test_price__above_168_bits__reverts(
    registry: Any, node: Any, operator: Any, deployer: Any, attestor: Any
) -> None:
    with brownie.reverts("registry: price too large"):
        registry.set_price(node[0], 2**168, {"from": operator})
    with brownie.reverts("registry: price too large"):
        registry.register_node(
            *_register_args(operator, attestor, price=2**168), {"from": deployer}
        )
    registry.set_price(node[0], 2**168 - 1, {"from": operator})
    assert registry.price_for_epoch(node[0], registry.current_epoch() + 1) == 2**168 - 1
