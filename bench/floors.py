"""What the EVM itself charges for each EdgeShare operation: the floor of its gas.

Each floor lists the charges an operation cannot avoid given our storage layout
(docs/SPEC.md "Storage packing"): the 21,000 transaction base, its calldata, every
storage slot it must read or write (EIP-2929 cold/warm, EIP-2200/3529 write prices),
calls to other contracts, logs, and signature recovery. Anything else the compiled
code spends (dispatch, ABI decoding, memory, re-entrancy locks, checks) is overhead,
which the ratio measured/floor shows. docs/GAS.md walks through each list.
"""

from __future__ import annotations

from dataclasses import dataclass

TX_BASE = 21_000
COLD_SLOAD = 2_100
WARM_ACCESS = 100
SSTORE_SET = 20_000  # zero -> non-zero
SSTORE_RESET = 2_900  # non-zero -> non-zero (after the cold read is paid)
COLD_ACCOUNT = 2_600  # first call to a contract in the transaction
LOG_BASE, LOG_TOPIC, LOG_BYTE = 375, 375, 8
ECRECOVER = 3_000
KECCAK_BASE, KECCAK_WORD = 30, 6


def calldata_cost(data: bytes) -> int:
    """EIP-2028: 4 gas per zero byte, 16 per non-zero byte."""
    return sum(4 if b == 0 else 16 for b in data)


def log(topics: int, data_words: int) -> int:
    """A LOG with ``topics`` topics (event signature included) and ``data_words`` words."""
    return LOG_BASE + LOG_TOPIC * topics + LOG_BYTE * 32 * data_words


def read_write(new_slot: bool) -> int:
    """Read a cold slot, then write it: set if it was zero, reset otherwise."""
    return COLD_SLOAD + (SSTORE_SET if new_slot else SSTORE_RESET)


@dataclass(frozen=True)
class Floor:
    """One operation's unavoidable charges, item by item (calldata is added per tx)."""

    name: str
    items: tuple[tuple[str, int], ...]

    def total(self, calldata: bytes) -> int:
        """The floor of a transaction carrying ``calldata``."""
        return TX_BASE + calldata_cost(calldata) + sum(g for _, g in self.items)


def token_transfer(receiver_new: bool) -> tuple[tuple[str, int], ...]:
    """An ERC-20 transfer: both balances read and written, one Transfer log."""
    return (
        ("call the stablecoin (cold account)", COLD_ACCOUNT),
        ("stablecoin: sender balance", read_write(False)),
        ("stablecoin: receiver balance", read_write(receiver_new)),
        ("stablecoin: Transfer log (3 topics, 1 word)", log(3, 1)),
    )


def claim(first: bool) -> Floor:
    """NodeShare.claim with nothing vesting (an earlier transaction released it). A
    first-time claimer bought shares after revenue arrived (so its correction is set) and
    holds no stablecoin yet. What a claim must do: learn what vested (unvested), what the
    holder earned (accumulator, balance, correction), record the payment (correction),
    pay (the token transfer) and say so (the log); no on-chain claimed total."""
    return Floor(
        "claim (first-time claimer)" if first else "claim (has claimed before)",
        (
            ("vesting state: unvested", COLD_SLOAD),
            ("accumulator", COLD_SLOAD),
            ("holder balance", COLD_SLOAD),
            ("holder correction: read, write", read_write(False)),
            *token_transfer(receiver_new=first),
            ("RevenueClaimed log (3 topics, 1 word)", log(3, 1)),
        ),
    )


def share_transfer(receiver_new: bool) -> Floor:
    """NodeShare.transfer: nothing vesting."""
    return Floor(
        "share transfer to a new holder" if receiver_new else "share transfer to a holder",
        (
            ("vesting state: unvested", COLD_SLOAD),
            ("accumulator", COLD_SLOAD),
            ("sender balance", read_write(False)),
            ("receiver balance", read_write(receiver_new)),
            ("sender correction", read_write(False)),
            ("receiver correction", read_write(receiver_new)),
            ("Transfer log (3 topics, 1 word)", log(3, 1)),
        ),
    )


def settle_report(first_of_node: bool) -> tuple[tuple[str, int], ...]:
    """What each report of a settle call costs inside the router and registry."""
    return (
        ("EIP-712 struct hash (9 words) and digest", KECCAK_BASE + 6 * 9 + KECCAK_BASE + 6 * 3),
        ("ecrecover", ECRECOVER),
        ("registry: node core slot", COLD_SLOAD if first_of_node else WARM_ACCESS),
        ("registry: terms entry of the epoch", COLD_SLOAD if first_of_node else WARM_ACCESS),
        ("settlement slot: read, set", read_write(True)),
        ("UsageSettled log (4 topics, 6 words)", log(4, 6)),
    )


def settle(reports: int) -> Floor:
    """settle_many with ``reports`` reports of distinct nodes, one payment."""
    items: list[tuple[str, int]] = [
        ("call the registry (cold account)", COLD_ACCOUNT),
        ("registry: paused flag", COLD_SLOAD),
        ("batch counter: read, write", read_write(False)),
        ("batch record: set", read_write(True)),
        ("total_pending: read, write", read_write(False)),
        *token_transfer(receiver_new=False),
        ("stablecoin: allowance read, write", read_write(False)),
    ]
    for _ in range(reports):
        items.extend(settle_report(first_of_node=True))
    return Floor(f"settle_many, {reports} report(s)", tuple(items))


def finalize(epochs: int, vesting: bool) -> Floor:
    """finalize(node, epochs): the split and one transfer to the holders. With
    ``vesting`` the revenue starts a new vesting period (the last one was released)."""
    items: list[tuple[str, int]] = [
        ("call the registry (cold account)", COLD_ACCOUNT),
        ("registry: paused flag", COLD_SLOAD),
        ("registry: operator and share token", 2 * COLD_SLOAD),
        ("treasury address", COLD_SLOAD),
        ("treasury owed: read, write", read_write(False)),
        ("operator owed: read, write", read_write(False)),
        ("total_owed, total_pending, total_finalized", 3 * read_write(False)),
        *token_transfer(receiver_new=False),
        ("call the share token (cold account)", COLD_ACCOUNT),
        ("share: total_distributed: read, write", read_write(False)),
        ("RevenueDistributed log (2 topics, 3 words)", log(2, 3)),
        ("RevenueSplit log (2 topics, 5 words)", log(2, 5)),
    ]
    if vesting:
        items += [
            ("share: unvested: read, set", read_write(True)),
            ("share: vesting window (last, end)", 2 * read_write(False)),
        ]
    else:
        items += [
            ("share: unvested", COLD_SLOAD),
            ("share: accumulator and carry", 2 * read_write(False)),
            ("share: supply", COLD_SLOAD),
        ]
    for _ in range(epochs):
        items.extend(
            (
                ("settlement slot: read, write", read_write(False)),
                ("batch record: read", COLD_SLOAD),
                ("RevenueFinalized log (3 topics, 1 word)", log(3, 1)),
            )
        )
    return Floor(f"finalize, {epochs} epoch(s)", tuple(items))


def withdraw() -> Floor:
    """RevenueRouter.withdraw by an operator."""
    return Floor(
        "operator withdraw",
        (
            ("owed: read, clear", COLD_SLOAD + SSTORE_RESET),
            ("total_owed: read, write", read_write(False)),
            *token_transfer(receiver_new=False),
            ("Withdrawn log (3 topics, 1 word)", log(3, 1)),
        ),
    )


def register(code_size: int) -> Floor:
    """NodeRegistry.register_node: creating a NodeShare (``code_size`` bytes) is most of it."""
    return Floor(
        "register a node",
        (
            ("roles, pause, router, stablecoin, count", 5 * COLD_SLOAD + SSTORE_RESET),
            ("external id: read, set", read_write(True)),
            ("create from blueprint: CREATE", 32_000),
            ("blueprint code copy (cold account)", COLD_ACCOUNT),
            ("new share: name/symbol immutables, supply, balance", 2 * SSTORE_SET),
            ("new share: code deposit (200 gas per byte)", 200 * code_size),
            ("core, meta (4 slots + strings), price entry", 8 * SSTORE_SET),
            (
                "Transfer log (mint) and NodeRegistered log (4 topics, 9 words)",
                log(3, 1) + log(4, 9),
            ),
        ),
    )


def redeem_voucher() -> tuple[tuple[str, int], ...]:
    """What each voucher of a redeem_many costs inside the channels contract: a channel
    of its own customer (cold in the transaction), funded before (its amounts slot is
    non-zero), paying in full."""
    return (
        ("EIP-712 struct hash (6 words) and digest", KECCAK_BASE + 6 * 6 + KECCAK_BASE + 6 * 3),
        ("ecrecover", ECRECOVER),
        ("channel state slot (generation, close, threshold)", COLD_SLOAD),
        ("channel amounts slot (deposited, redeemed): read, write", read_write(False)),
        ("VoucherRedeemed log (4 topics, 4 words)", log(4, 4)),
    )


def redeem(vouchers: int) -> Floor:
    """redeem_many by the node's operator with ``vouchers`` vouchers of distinct customers
    of one node: one credit to the router, which takes the stablecoin (an unlimited
    allowance) and splits it at once as finalize does. The first redemption of the epoch
    (the node's channel revenue of the epoch is set), the node's last revenue released (a
    new vesting period starts). What the batch must learn of the node: its operator (the
    caller check), its share token, its core slot and the terms of the epoch (the cut);
    the node count and ``retired_from`` that the contract also reads are not counted (the
    core slot already says whether the node exists and is retired)."""
    items: list[tuple[str, int]] = [
        ("call the registry (cold account)", COLD_ACCOUNT),
        ("registry: node core slot", COLD_SLOAD),
        ("registry: operator and share token", 2 * COLD_SLOAD),
        ("registry: terms entry of the epoch", COLD_SLOAD),
        ("call the router (cold account)", COLD_ACCOUNT),
        ("router: channels address", COLD_SLOAD),
        ("router: the node's channel revenue of the epoch: read, set", read_write(True)),
        ("router: total_channel_revenue: read, write", read_write(False)),
        *token_transfer(receiver_new=False),
        ("stablecoin: allowance (unlimited): read", COLD_SLOAD),
        ("router: ChannelRevenue log (3 topics, 1 word)", log(3, 1)),
        ("treasury address", COLD_SLOAD),
        ("treasury owed: read, write", read_write(False)),
        ("operator owed: read, write", read_write(False)),
        ("total_owed: read, write", read_write(False)),
        ("stablecoin: router balance again (warm)", WARM_ACCESS),
        ("stablecoin: share token balance", read_write(False)),
        ("stablecoin: Transfer log to the share token (3 topics, 1 word)", log(3, 1)),
        ("call the share token (cold account)", COLD_ACCOUNT),
        ("share: total_distributed: read, write", read_write(False)),
        ("share: unvested: read, set", read_write(True)),
        ("share: vesting window (last, end)", 2 * read_write(False)),
        ("RevenueDistributed log (2 topics, 3 words)", log(2, 3)),
        ("RevenueSplit log (2 topics, 5 words)", log(2, 5)),
        ("channels: total_unredeemed, total_redeemed", 2 * read_write(False)),
    ]
    for _ in range(vouchers):
        items.extend(redeem_voucher())
    return Floor(f"redeem_many, {vouchers} voucher(s)", tuple(items))
