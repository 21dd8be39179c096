"""Signed usage reports: the digest matches the contract's, and every bad report is refused.

Each rejection is its own test, from a payer settling a report that is wrong in exactly
one way.
"""

from __future__ import annotations

from typing import Any

import brownie
import pytest
from brownie import web3
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeshare.attestation import (
    SECP256K1_N,
    Eip712Domain,
    SignedReport,
    UsageReport,
    build_typed_data,
    get_digest,
    pack_signatures,
    recover,
    sign,
)
from edgeshare.errors import InputError
from edgeshare.suite import fetch_domain_of
from tests.conftest import FAR_DEADLINE, get_now, mine_at, report_args, sign_report

pytestmark = pytest.mark.usefixtures("funded")


def _report(**fields: int) -> UsageReport:
    return UsageReport(**fields)


reports = st.builds(
    _report,
    node_id=st.integers(1, 2**256 - 1),
    epoch=st.integers(0, 2**64 - 1),
    version=st.integers(0, 2**32 - 1),
    inferences=st.integers(0, 2**64 - 1),
    revenue=st.integers(0, 2**96 - 1),
    latency_ms=st.integers(0, 2**32 - 1),
    uptime_bps=st.integers(0, 10_000),
    deadline=st.integers(0, 2**64 - 1),
)


@given(report=reports)
@settings(max_examples=40, deadline=None)
def test_digest__python_equals_contract_and_eth_account(router: Any, report: UsageReport) -> None:
    domain = Eip712Domain(
        name="EdgeShare", version="1", chain_id=web3.eth.chain_id, verifying_contract=router.address
    )
    ours = get_digest(report, domain)
    assert ours == bytes(router.report_digest(report.as_tuple()))
    message = encode_typed_data(full_message=build_typed_data(report, domain))
    assert ours == bytes(web3.keccak(b"\x19\x01" + message.header + message.body))


@pytest.fixture
def epoch(pay: Any, node: Any) -> int:
    return pay.take_epoch(node[0])


@pytest.fixture
def good(suite: Any, attestor_key: str, node: Any, epoch: int) -> SignedReport:
    return sign_report(suite, attestor_key, node_id=node[0], epoch=epoch, inferences=12_345)


def _settle(router: Any, signed: SignedReport, payer: Any) -> Any:
    return router.settle(*report_args(signed), {"from": payer})


def _with_signature(signed: SignedReport, signature: bytes) -> tuple[tuple[int, ...], bytes]:
    return signed.get_report().as_tuple(), signature


def test_good_report__is_accepted(router: Any, good: SignedReport, deployer: Any) -> None:
    assert _settle(router, good, deployer).events["UsageSettled"]["revenue"] == 12_345


def test_same_report_twice__second_reverts(router: Any, good: SignedReport, deployer: Any) -> None:
    _settle(router, good, deployer)
    with brownie.reverts("router: epoch already settled"):
        _settle(router, good, deployer)


def test_same_report_twice_in_one_batch__settles_and_pays_once(
    router: Any, good: SignedReport, deployer: Any
) -> None:
    args = report_args(good)
    tx = router.settle_many([args[0], args[0]], args[1] + args[1], {"from": deployer})
    assert len(tx.events["UsageSettled"]) == 1 and len(tx.events["ReportSkipped"]) == 1
    assert good.revenue == router.total_pending()
    assert router.is_settled(good.node_id, good.epoch)


def test_signature_for_another_chain__reverts(
    router: Any, good: SignedReport, attestor_key: str, suite: Any, deployer: Any
) -> None:
    domain = fetch_domain_of(suite).model_copy(update={"chain_id": 1})
    forged = sign(good.get_report(), attestor_key, domain)
    with brownie.reverts("router: signer is not the node's attestor"):
        _settle(router, forged, deployer)


def test_signature_for_another_router__reverts(
    router: Any, good: SignedReport, attestor_key: str, suite: Any, deployer: Any
) -> None:
    domain = fetch_domain_of(suite).model_copy(
        update={"verifying_contract": suite.registry.address}
    )
    forged = sign(good.get_report(), attestor_key, domain)
    with brownie.reverts("router: signer is not the node's attestor"):
        _settle(router, forged, deployer)


def test_signature_of_another_epoch__reverts(
    router: Any, good: SignedReport, deployer: Any, pay: Any, node: Any
) -> None:
    other_epoch = pay.take_epoch(node[0])
    moved = good.get_report().model_copy(update={"epoch": other_epoch})
    with brownie.reverts("router: signer is not the node's attestor"):
        router.settle(moved.as_tuple(), good.get_signature_bytes(), {"from": deployer})


def test_high_s_twin__reverts(router: Any, good: SignedReport, deployer: Any) -> None:
    sig = good.get_signature_bytes()
    s = int.from_bytes(sig[32:64], "big")
    twin = sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    with brownie.reverts("eip712: signature s is high"):
        router.settle(*_with_signature(good, twin), {"from": deployer})


def test_flipped_v__reverts(router: Any, good: SignedReport, deployer: Any) -> None:
    sig = good.get_signature_bytes()
    with brownie.reverts("router: signer is not the node's attestor"):
        router.settle(*_with_signature(good, sig[:64] + bytes([55 - sig[64]])), {"from": deployer})
    with brownie.reverts("eip712: signature v is invalid"):
        router.settle(*_with_signature(good, sig[:64] + bytes([sig[64] - 27])), {"from": deployer})


def test_all_zero_signature__reverts(router: Any, good: SignedReport, deployer: Any) -> None:
    with brownie.reverts("eip712: signature v is invalid"):
        router.settle(*_with_signature(good, bytes(65)), {"from": deployer})
    with brownie.reverts("eip712: signature is invalid"):
        router.settle(*_with_signature(good, bytes(64) + b"\x1b"), {"from": deployer})


def test_garbage_signature__reverts(router: Any, good: SignedReport, deployer: Any) -> None:
    garbage = bytes(range(7, 71)) + b"\x1c"
    with brownie.reverts():
        router.settle(*_with_signature(good, garbage), {"from": deployer})
    with brownie.reverts("router: signature must be 65 bytes"):
        router.settle(*_with_signature(good, good.get_signature_bytes()[:64]), {"from": deployer})


def test_signer_not_the_attestor__reverts(
    router: Any, suite: Any, node: Any, epoch: int, deployer: Any
) -> None:
    forged = sign_report(
        suite, Account.create().key.to_0x_hex(), node_id=node[0], epoch=epoch, inferences=5
    )
    with brownie.reverts("router: signer is not the node's attestor"):
        _settle(router, forged, deployer)


def test_old_attestor_after_rotation__reverts(
    router: Any,
    registry: Any,
    good: SignedReport,
    node: Any,
    operator: Any,
    stranger: Any,
    deployer: Any,
) -> None:
    registry.rotate_attestor(node[0], stranger, {"from": operator})
    with brownie.reverts("router: signer is not the node's attestor"):
        _settle(router, good, deployer)


def test_epoch_not_ended__reverts(
    router: Any, registry: Any, suite: Any, attestor_key: str, node: Any, deployer: Any
) -> None:
    current = registry.current_epoch()
    early = sign_report(suite, attestor_key, node_id=node[0], epoch=current, inferences=5)
    with brownie.reverts("router: epoch not ended"):
        _settle(router, early, deployer)


def test_passed_deadline__reverts(
    router: Any, suite: Any, attestor_key: str, node: Any, epoch: int, deployer: Any
) -> None:
    deadline = get_now() + 30
    late = sign_report(
        suite, attestor_key, node_id=node[0], epoch=epoch, inferences=5, deadline=deadline
    )
    mine_at(deadline + 1)
    with brownie.reverts("router: report deadline passed"):
        _settle(router, late, deployer)


def test_revenue_not_inferences_times_price__reverts(
    router: Any, suite: Any, attestor_key: str, node: Any, epoch: int, deployer: Any
) -> None:
    wrong = sign_report(
        suite, attestor_key, node_id=node[0], epoch=epoch, inferences=1_000, revenue=1_001
    )
    with brownie.reverts("router: revenue does not match inferences x price"):
        _settle(router, wrong, deployer)


def test_price_change__report_priced_at_its_epochs_price(
    router: Any,
    registry: Any,
    suite: Any,
    attestor_key: str,
    node: Any,
    operator: Any,
    deployer: Any,
    pay: Any,
) -> None:
    current = registry.current_epoch()
    registry.set_price(node[0], 2_000, {"from": operator})  # from current + 1 on
    mine_at(registry.epoch_start(current + 2))
    old = sign_report(suite, attestor_key, node_id=node[0], epoch=current, inferences=1_000)
    new = sign_report(suite, attestor_key, node_id=node[0], epoch=current + 1, inferences=1_000)
    assert (old.revenue, new.revenue) == (1_000, 2_000)
    _settle(router, old, deployer)
    _settle(router, new, deployer)


@pytest.mark.parametrize("status", [2, 4])
def test_paused_or_retired_node__refuses_epochs_after_it_stopped(
    router: Any,
    registry: Any,
    good: SignedReport,
    node: Any,
    deployer: Any,
    status: int,
    suite: Any,
    attestor_key: str,
) -> None:
    registry.set_node_status(node[0], status, {"from": deployer})
    stopped = registry.current_epoch() + 1  # the first epoch that began stopped
    mine_at(registry.epoch_start(stopped + 1))
    late = sign_report(suite, attestor_key, node_id=node[0], epoch=stopped, inferences=10)
    with brownie.reverts("router: node not active in that epoch"):
        _settle(router, late, deployer)
    _settle(router, good, deployer)  # an epoch it was active in still settles


def test_unknown_node__reverts(
    router: Any, suite: Any, attestor_key: str, deployer: Any, epoch: int
) -> None:
    ghost = sign_report(suite, attestor_key, node_id=99, epoch=epoch, inferences=5, revenue=5)
    with brownie.reverts("registry: unknown node"):
        _settle(router, ghost, deployer)


def test_uptime_above_100_percent__reverts(
    router: Any, suite: Any, attestor_key: str, node: Any, epoch: int, deployer: Any
) -> None:
    report = UsageReport.model_construct(
        node_id=node[0],
        epoch=epoch,
        inferences=5,
        revenue=5,
        latency_ms=1,
        uptime_bps=10_001,
        deadline=FAR_DEADLINE,
    )
    domain = fetch_domain_of(suite)
    signature = Account.unsafe_sign_hash(get_digest(report, domain), attestor_key).signature
    with brownie.reverts("router: uptime above 100%"):
        router.settle(report.as_tuple(), bytes(signature), {"from": deployer})


def test_underpayment__reverts_and_settles_nothing(
    router: Any, good: SignedReport, stranger: Any, stablecoin: Any, deployer: Any
) -> None:
    stablecoin.mint(stranger, 12_344, {"from": deployer})
    stablecoin.approve(router, 2**256 - 1, {"from": stranger})
    with brownie.reverts("stablecoin: insufficient balance"):
        _settle(router, good, stranger)
    stablecoin.mint(stranger, 1, {"from": deployer})
    stablecoin.approve(router, 12_344, {"from": stranger})
    with brownie.reverts("stablecoin: insufficient allowance"):
        _settle(router, good, stranger)
    assert not router.is_settled(good.node_id, good.epoch)


def test_python_recover__applies_the_routers_rules(
    good: SignedReport, suite: Any, attestor: Any
) -> None:
    domain = fetch_domain_of(suite)
    assert recover(good, domain) == attestor.address
    sig = good.get_signature_bytes()
    s = int.from_bytes(sig[32:64], "big")
    high = "0x" + (sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])).hex()
    with pytest.raises(InputError, match="not canonical"):
        recover(good.model_copy(update={"signature": high}), domain)
    with pytest.raises(InputError, match="v must be 27 or 28"):
        recover(good.model_copy(update={"signature": "0x" + (sig[:64] + b"\x00").hex()}), domain)


def test_encode_settle_many__equals_web3s_encoding(
    router: Any, good: SignedReport, suite: Any, attestor_key: str
) -> None:
    from edgeshare.poster import encode_settle_many

    reports = [good] + [
        sign_report(
            suite,
            attestor_key,
            node_id=1 + i,
            epoch=7 + i,
            inferences=10**i,
            revenue=i,
            deadline=2**64 - 1,
        )
        for i in range(3)
    ]
    from edgeshare.artifacts import load_artifact

    abi = load_artifact("RevenueRouter").abi
    router = suite.w3.eth.contract(address=suite.router.address, abi=abi)  # type: ignore[call-overload]
    expected = router.encode_abi(
        "settle_many", args=[[r.get_report().as_tuple() for r in reports], pack_signatures(reports)]
    )
    assert encode_settle_many(reports) == expected
    assert encode_settle_many(reports[:1]) == router.encode_abi(
        "settle_many",
        args=[[reports[0].get_report().as_tuple()], reports[0].get_signature_bytes()],
    )
