"""The gas limit every transaction is sent with covers what it does when it runs later."""

from __future__ import annotations

from typing import Any

from edgeshare.pipeline import estimate_all
from edgeshare.rpc import RpcError
from edgeshare.signer import Signer
from edgeshare.tx import GAS_HEADROOM_DEN, GAS_HEADROOM_NUM, WORST_CASE_EXTRA_GAS, Transactor

KEY = "0x" + "11" * 32
LATEST = 1_000_000


class FakeNode:
    """Answers like a node: ``time_override`` says what a call that returns the block's
    time gives under an override (None: the node refuses the argument)."""

    def __init__(
        self, now_gas: int, later_gas: int | None, time_override: Any, gas_limit: int = 0
    ) -> None:
        self.now_gas, self.later_gas, self.time_override = now_gas, later_gas, time_override
        self.gas_limit = gas_limit

    def call(self, method: str, params: list[Any]) -> Any:
        assert method == "eth_getBlockByNumber"
        return {"timestamp": hex(LATEST), "gasLimit": hex(self.gas_limit)}

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        return [self._answer(method, params) for method, params in calls]

    def _answer(self, method: str, params: list[Any]) -> Any:
        overridden = len(params) == 4
        if method == "eth_call":
            if self.time_override is None:
                return RpcError(-32602, "Incorrect number of arguments")
            wanted = int(params[3]["time"], 16) if self.time_override == "applied" else LATEST
            return "0x" + f"{wanted:064x}"
        if overridden:
            return (
                RpcError(3, "execution reverted") if self.later_gas is None else hex(self.later_gas)
            )
        return hex(self.now_gas)


def _limit(node: FakeNode) -> int:
    tx = Transactor(None, Signer.from_key(KEY))  # type: ignore[arg-type]
    (limit,) = estimate_all(tx, node, [{"to": "0x" + "22" * 20, "data": "0x"}], "t", None)  # type: ignore[arg-type]
    return limit


def test_with_block_overrides__the_later_estimate_sets_the_limit() -> None:
    assert _limit(FakeNode(71_768, 157_320, "applied")) == 157_320 * GAS_HEADROOM_NUM // (
        GAS_HEADROOM_DEN
    )


def test_without_block_overrides__the_worst_case_is_added() -> None:
    expected = 71_768 * GAS_HEADROOM_NUM // GAS_HEADROOM_DEN + WORST_CASE_EXTRA_GAS
    assert _limit(FakeNode(71_768, 71_768, None)) == expected
    # a node that takes the argument but ignores it is found out by the probe
    assert _limit(FakeNode(71_768, 71_768, "ignored")) == expected
    assert expected > 157_320  # covers the measured first release after a quiet spell


def test_a_later_revert__still_sends_with_the_worst_case_margin() -> None:
    expected = 50_000 * GAS_HEADROOM_NUM // GAS_HEADROOM_DEN + WORST_CASE_EXTRA_GAS
    assert _limit(FakeNode(50_000, None, "applied")) == expected


def test_the_limit__never_exceeds_what_a_block_holds() -> None:
    assert _limit(FakeNode(21_000, 21_000, None, gas_limit=30_000)) == 30_000
