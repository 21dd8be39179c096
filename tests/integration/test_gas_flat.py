"""Claim, transfer and distribution cost the same gas at any scale.

Two nodes of one suite: a small one (2 holders, 1 distribution) and a large one (1,000
holders, 500 distributions, each a signed report settled and finalized). The same
operations, from the same storage shapes, are measured on both and must differ by less
than 2%. Gas is deterministic; this is not a timing test.
"""

from __future__ import annotations

from typing import Any

import pytest
from brownie import web3
from eth_account import Account

from edgeshare.attestation import pack_signatures
from tests.conftest import CHALLENGE, SHARES, Payer, mine_after, sign_report

HOLDERS, DISTRIBUTIONS = 1_000, 500


def _spread(share: Any, operator: Any, count: int) -> None:
    contract = web3.eth.contract(address=share.address, abi=share.abi)
    for _ in range(count):
        tx_hash = contract.functions.transfer(Account.create().address, SHARES).transact(
            {"from": operator.address, "gas": 200_000}
        )
    assert web3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)["status"] == 1


def _distribute(pay: Payer, node_id: int, count: int) -> None:
    """``count`` distributions: signed reports settled 50 per call, each finalized alone."""
    router = web3.eth.contract(address=pay.router.address, abi=pay.router.abi)
    payer = {"from": pay.payer.address, "gas": 8_000_000}
    epochs = [pay.take_epoch(node_id) for _ in range(count)]
    signed = [
        sign_report(pay.suite, pay.key, node_id=node_id, epoch=e, inferences=1_000_003 + e)
        for e in epochs
    ]
    hashes = []
    for i in range(0, count, 50):
        part = signed[i : i + 50]
        hashes.append(
            router.functions.settle_many(
                [r.get_report().as_tuple() for r in part], pack_signatures(part)
            ).transact(payer)
        )
    # transact() may return before the transaction is mined on a busy machine
    for tx_hash in hashes:
        assert web3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)["status"] == 1
    mine_after(CHALLENGE)
    hashes = [router.functions.finalize(node_id, [epoch]).transact(payer) for epoch in epochs]
    for tx_hash in hashes:
        assert web3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)["status"] == 1
    mine_after(pay.registry.UNLOCK_PERIOD())
    assert pay.router.settlement(node_id, epochs[-1])["state"] == 2


def _gas(contract: Any, sender: Any, fn: str, *args: Any) -> int:
    """gasUsed of one transaction, read from its receipt (web3 polls until it exists;
    brownie's single look-up after the nonce moves can race anvil under load)."""
    handle = web3.eth.contract(address=contract.address, abi=contract.abi)
    tx_hash = getattr(handle.functions, fn)(*args).transact(
        {"from": sender.address, "gas": 2_000_000}
    )
    receipt = web3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    assert receipt["status"] == 1, fn
    return int(receipt["gasUsed"])


def _measure(
    pay: Payer, share: Any, node_id: int, investor: Any, investor2: Any, operator: Any
) -> dict[str, int]:
    """The same sequence on either node; every measured write hits the same storage shape."""
    gas = {}
    epoch = pay.take_epoch(node_id)
    signed = sign_report(pay.suite, pay.key, node_id=node_id, epoch=epoch, inferences=5_000_000)
    report, signature = signed.get_report().as_tuple(), signed.get_signature_bytes()
    gas["settle"] = _gas(pay.router, pay.payer, "settle", report, signature)
    mine_after(CHALLENGE)
    gas["distribution"] = _gas(pay.router, pay.payer, "finalize", node_id, [epoch])
    mine_after(pay.registry.UNLOCK_PERIOD())
    gas["first claim"] = _gas(share, investor, "claim")
    epoch = pay.take_epoch(node_id)
    signed = sign_report(pay.suite, pay.key, node_id=node_id, epoch=epoch, inferences=5_000_000)
    _gas(
        pay.router,
        pay.payer,
        "settle",
        signed.get_report().as_tuple(),
        signed.get_signature_bytes(),
    )
    mine_after(CHALLENGE)
    _gas(pay.router, pay.payer, "finalize", node_id, [epoch])
    mine_after(pay.registry.UNLOCK_PERIOD())
    gas["repeat claim"] = _gas(share, investor, "claim")
    gas["transfer to holder"] = _gas(share, investor, "transfer", operator.address, SHARES)
    gas["transfer to new holder"] = _gas(share, investor, "transfer", investor2.address, SHARES)
    return gas


@pytest.mark.usefixtures("funded")
def test_gas__is_flat_in_holders_and_distributions(
    pay: Payer,
    register: Any,
    stablecoin: Any,
    deployer: Any,
    operator: Any,
    investor: Any,
    investor2: Any,
) -> None:
    small_id, small = register(shares=10_000 * SHARES)
    large_id, large = register(shares=10_000 * SHARES, region="Lagos")
    for share in (small, large):
        _gas(share, operator, "transfer", investor.address, 10 * SHARES)
    # the claimer's stablecoin balance is non-zero before either node is measured
    _gas(stablecoin, deployer, "mint", investor.address, 1)
    _distribute(pay, small_id, 1)
    _spread(large, operator, HOLDERS - 2)
    _distribute(pay, large_id, DISTRIBUTIONS)
    holders = large.totalSupply() - large.balanceOf(operator) - large.balanceOf(investor)
    assert holders == (HOLDERS - 2) * SHARES
    for share in (small, large):  # release what vested: both accumulators are non-zero
        _gas(share, investor, "claim")
    small_gas = _measure(pay, small, small_id, investor, investor2, operator)
    large_gas = _measure(pay, large, large_id, investor, investor2, operator)
    print({op: (small_gas[op], large_gas[op]) for op in small_gas})
    for op, base in small_gas.items():
        assert abs(large_gas[op] - base) * 100 < 2 * base, (op, base, large_gas[op])
