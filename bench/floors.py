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


# ------------------------------------------------------------------ capital ----


def warm_write() -> int:
    """Read a slot already read in the transaction (warm), then write it."""
    return WARM_ACCESS + SSTORE_RESET


DIRTY_WRITE = 2 * WARM_ACCESS
"""Read and write again a slot already written in the transaction (EIP-2200: 100 each)."""
MEASURED_DELTA = 4 * WARM_ACCESS
"""A balance read before and after a transfer that reads and writes it anyway: the read
before pays the cold prices the transfer would have paid, so the check adds two warm
calls and two warm reads."""


def share_moves(
    prefix: str, sender: str, receiver: str, receiver_new: bool
) -> tuple[tuple[str, int], ...]:
    """The storage of a share token's transfer with nothing vesting, its first contact
    in the transaction: what vested, the accumulator, both balances and corrections."""
    return (
        (f"{prefix}: unvested", COLD_SLOAD),
        (f"{prefix}: accumulator", COLD_SLOAD),
        (f"{prefix}: {sender}'s balance: read, write", read_write(False)),
        (
            f"{prefix}: {receiver}'s balance: read, " + ("set" if receiver_new else "write"),
            read_write(receiver_new),
        ),
        (f"{prefix}: {sender}'s correction: read, write", read_write(False)),
        (
            f"{prefix}: {receiver}'s correction: read, " + ("set" if receiver_new else "write"),
            read_write(receiver_new),
        ),
        (f"{prefix}: Transfer log (3 topics, 1 word)", log(3, 1)),
    )


def portfolio_claim(tokens: int) -> Floor:
    """PortfolioClaimer.claim_many over ``tokens`` node share tokens, paying the caller:
    each token a claim by a holder who has claimed from it before, its revenue released
    by an earlier transaction (as ``claim(first=False)``). What each token must do is a
    claim's work through ``claim_by``: a call to the token (cold: each is a contract of
    its own), what vested, what the holder earned (accumulator, balance, correction),
    the payment recorded (correction), the stablecoin paid from the token's balance, and
    the two logs. The claimer itself holds nothing (no storage). Only the first payment
    pays the cold prices of the stablecoin and of the receiver's balance; every later one
    calls a warm contract and writes a slot already written in the transaction."""
    per_token = (
        ("call the token (cold account)", COLD_ACCOUNT),
        ("token: vesting state: unvested", COLD_SLOAD),
        ("token: accumulator", COLD_SLOAD),
        ("token: holder balance", COLD_SLOAD),
        ("token: holder correction: read, write", read_write(False)),
        ("stablecoin: the token's balance: read, write", read_write(False)),
        ("stablecoin: Transfer log (3 topics, 1 word)", log(3, 1)),
        ("token: RevenueClaimed log (3 topics, 1 word)", log(3, 1)),
    )
    items: list[tuple[str, int]] = [
        ("call the stablecoin, first payment (cold account)", COLD_ACCOUNT),
        ("stablecoin: receiver balance, first payment: read, write", read_write(False)),
    ]
    for i in range(tokens):
        items.extend(per_token)
        if i:
            items += [
                ("call the stablecoin, a later payment (warm)", WARM_ACCESS),
                (
                    "stablecoin: receiver balance, a later payment (written in this transaction)",
                    DIRTY_WRITE,
                ),
            ]
    return Floor(f"claim_many, {tokens} token(s)", tuple(items))


def _basket_harvest_check(components: int) -> list[tuple[str, int]]:
    """What a basket's mint or redeem spends on the harvest it starts with when no
    component owes the basket anything: the basket's stablecoin balance before and after
    (it books what it received), and each component asked: its claim reads what vested
    and what the basket earned, and finds nothing."""
    items: list[tuple[str, int]] = [
        ("harvest: call the stablecoin (cold account)", COLD_ACCOUNT),
        (
            "harvest: the basket's stablecoin balance before (cold), after (warm call, read)",
            COLD_SLOAD + 2 * WARM_ACCESS,
        ),
        ("basket: components (length and addresses)", COLD_SLOAD * (components + 1)),
    ]
    for _ in range(components):
        items += [
            ("call the component (cold account)", COLD_ACCOUNT),
            ("component: unvested, accumulator (the harvest's claim)", 2 * COLD_SLOAD),
            ("component: the basket's balance and correction (nothing owed)", 2 * COLD_SLOAD),
        ]
    return items


def basket_mint(components: int) -> Floor:
    """Basket.mint of a holder who holds units already (not the first mint), has
    approved the basket for each component's shares without limit (the allowance is read,
    never written) and holds them since before their last revenue; nothing vesting on
    any component and nothing owed to the basket (it harvested since). What a mint must
    do: harvest first (``_basket_harvest_check``), mint (supply, the holder's balance and
    correction at the accumulator), and per component take the shares at its weight
    (transferFrom into the basket, whose balance must grow by exactly that) and log."""
    items = [
        *_basket_harvest_check(components),
        ("basket: total supply: read, write", read_write(False)),
        ("basket: unvested", COLD_SLOAD),
        ("basket: accumulator", COLD_SLOAD),
        ("basket: holder's balance: read, write", read_write(False)),
        ("basket: holder's correction: read, write", read_write(False)),
        ("basket: Transfer log (mint; 3 topics, 1 word)", log(3, 1)),
        ("basket: Minted log (2 topics, 1 word)", log(2, 1)),
    ]
    for _ in range(components):
        items += [
            ("basket: the component's weight", COLD_SLOAD),
            ("call the component again (warm), transferFrom", WARM_ACCESS),
            ("component: the holder's allowance (unlimited: read only)", COLD_SLOAD),
            ("component: unvested, accumulator again (warm)", 2 * WARM_ACCESS),
            ("component: holder's balance: read, write", read_write(False)),
            ("component: holder's correction: read, write", read_write(False)),
            ("component: the basket's balance and correction: write (warm)", 2 * warm_write()),
            ("component: Transfer log (3 topics, 1 word)", log(3, 1)),
            (
                "component: the basket's balance before and after (warm calls, reads)",
                MEASURED_DELTA,
            ),
        ]
    return Floor(f"basket mint, {components} components", tuple(items))


def basket_redeem(components: int) -> Floor:
    """Basket.redeem of part of a holder's units, in the state of ``basket_mint``: harvest
    first (nothing owed), burn (supply, the holder's balance and correction), and per
    component give back the shares at its weight (a transfer from the basket)."""
    items = [
        *_basket_harvest_check(components),
        ("basket: total supply: read, write", read_write(False)),
        ("basket: unvested", COLD_SLOAD),
        ("basket: accumulator", COLD_SLOAD),
        ("basket: holder's balance: read, write", read_write(False)),
        ("basket: holder's correction: read, write", read_write(False)),
        ("basket: Transfer log (burn; 3 topics, 1 word)", log(3, 1)),
        ("basket: Redeemed log (2 topics, 1 word)", log(2, 1)),
    ]
    for _ in range(components):
        items += [
            ("basket: the component's weight", COLD_SLOAD),
            ("call the component again (warm), transfer", WARM_ACCESS),
            ("component: unvested, accumulator again (warm)", 2 * WARM_ACCESS),
            ("component: the basket's balance and correction: write (warm)", 2 * warm_write()),
            ("component: holder's balance: read, write", read_write(False)),
            ("component: holder's correction: read, write", read_write(False)),
            ("component: Transfer log (3 topics, 1 word)", log(3, 1)),
        ]
    return Floor(f"basket redeem, {components} components", tuple(items))


def basket_harvest(components: int) -> Floor:
    """Basket.harvest when every component owes the basket revenue, released on each by
    an earlier transaction (nothing vesting), and the basket has harvested before: each
    component's claim (as a holder's repeat claim, all paying the basket, so only the
    first payment writes the basket's stablecoin balance at the cold price), the
    stablecoin received measured by the basket's balance, and the revenue added and
    released at once to the basket's units (its unlock period is 0): total distributed,
    the accumulator and its carry."""
    items: list[tuple[str, int]] = [
        ("call the stablecoin (cold account)", COLD_ACCOUNT),
        ("stablecoin: the basket's balance before (cold)", COLD_SLOAD),
        ("basket: components (length and addresses)", COLD_SLOAD * (components + 1)),
    ]
    for i in range(components):
        items += [
            ("call the component (cold account)", COLD_ACCOUNT),
            ("component: unvested", COLD_SLOAD),
            ("component: accumulator", COLD_SLOAD),
            ("component: the basket's balance", COLD_SLOAD),
            ("component: the basket's correction: read, write", read_write(False)),
            ("call the stablecoin again (warm)", WARM_ACCESS),
            ("stablecoin: the component's balance: read, write", read_write(False)),
            (
                "stablecoin: the basket's balance: write (warm)"
                if i == 0
                else "stablecoin: the basket's balance again (written in this transaction)",
                warm_write() if i == 0 else DIRTY_WRITE,
            ),
            ("stablecoin: Transfer log (3 topics, 1 word)", log(3, 1)),
            ("component: RevenueClaimed log (3 topics, 1 word)", log(3, 1)),
        ]
    items += [
        ("stablecoin: the basket's balance after (warm call, read)", 2 * WARM_ACCESS),
        ("basket: total_distributed: read, write", read_write(False)),
        ("basket: unvested", COLD_SLOAD),
        ("basket: total supply", COLD_SLOAD),
        ("basket: accumulator and carry: read, write", 2 * read_write(False)),
        ("basket: Harvested log (2 topics, 3 words)", log(2, 3)),
    ]
    return Floor(f"basket harvest, {components} components owing", tuple(items))


def basket_claim() -> Floor:
    """A basket holder's claim, who has claimed from the basket before, after a harvest:
    the basket's accounting is the node shares' (one module), and its unlock period of 0
    leaves nothing vesting, so it is ``claim(first=False)`` with the basket as the token."""
    return Floor("basket: a holder's claim (has claimed before)", claim(first=False).items)


def market_fill(sell: bool, first: bool) -> Floor:
    """ShareMarket.fill of a signed order by a taker, the fee on (FEE_BPS of the cost,
    from the seller's leg to the router's treasury). Both traders hold the share (since
    before its last revenue; nothing vesting) and the stablecoin, and have approved the
    market without limit for both (allowances read, never written); the treasury holds
    stablecoin. What a fill must do: the order's EIP-712 digest and its signer; whether
    the share is a suite share (its NODE_ID, the registry's share token of that node);
    whether the order is cancelled, of the maker's current nonce, and what it has filled
    (read, then written: set by its first fill); the shares from the seller to the buyer;
    the cost less the fee from the buyer to the seller, measured at the seller; the fee
    to the treasury; the log. The balance and allowance checks that the decision makes
    before moving anything (as ``check`` reports them) are not counted: the transfers
    read the same slots."""
    items: list[tuple[str, int]] = [
        ("EIP-712 struct hash (10 words) and digest", KECCAK_BASE + 6 * 10 + KECCAK_BASE + 6 * 3),
        ("ecrecover", ECRECOVER),
        ("call the share (cold account): NODE_ID (immutable)", COLD_ACCOUNT),
        ("call the registry (cold account)", COLD_ACCOUNT),
        ("registry: the node's share token", COLD_SLOAD),
        ("market: cancelled flag", COLD_SLOAD),
        ("market: the maker's nonce", COLD_SLOAD),
        (
            "market: filled: read, set" if first else "market: filled: read, write",
            read_write(first),
        ),
        ("call the share again (warm), transferFrom", WARM_ACCESS),
        ("share: the seller's allowance (unlimited: read only)", COLD_SLOAD),
        *share_moves("share", "seller", "buyer", receiver_new=False),
        ("call the stablecoin (cold account)", COLD_ACCOUNT),
        ("stablecoin: the buyer's allowance (unlimited: read only)", COLD_SLOAD),
        ("stablecoin: buyer's balance: read, write", read_write(False)),
        ("stablecoin: seller's balance: read, write", read_write(False)),
        ("stablecoin: Transfer log (3 topics, 1 word)", log(3, 1)),
        ("stablecoin: the seller's balance before and after (warm calls, reads)", MEASURED_DELTA),
        ("call the router (cold account)", COLD_ACCOUNT),
        ("router: treasury", COLD_SLOAD),
        ("call the stablecoin again (warm), the fee", WARM_ACCESS),
        ("stablecoin: the buyer's allowance again (warm)", WARM_ACCESS),
        ("stablecoin: buyer's balance again (written in this transaction)", DIRTY_WRITE),
        ("stablecoin: treasury's balance: read, write", read_write(False)),
        ("stablecoin: Transfer log (3 topics, 1 word)", log(3, 1)),
        ("OrderFilled log (4 topics, 6 words)", log(4, 6)),
    ]
    side = "sell order, in full" if sell else "buy order, in part"
    return Floor(f"fill: {side} ({'its first fill' if first else 'a second fill'})", tuple(items))


def offering_commit(first: bool) -> Floor:
    """ShareOffering.commit while open, by an investor who has approved the offering
    without limit and keeps a stablecoin balance; other investors committed before (the
    totals and the offering's balance are non-zero). ``first``: the investor's first
    commitment (its slot is set), else it adds to its own. What a commit must do: the
    suite's pause (it stops commitments), the totals (committed, shares sold), the
    investor's commitment, the stablecoin pulled and measured by the offering's balance,
    the log."""
    return Floor(
        "offering commit (an investor's first)" if first else "offering commit (adding to it)",
        (
            ("call the registry (cold account)", COLD_ACCOUNT),
            ("registry: paused flag", COLD_SLOAD),
            ("offering: total committed: read, write", read_write(False)),
            (
                "offering: the investor's commitment: read, " + ("set" if first else "write"),
                read_write(first),
            ),
            ("offering: shares sold: read, write", read_write(False)),
            ("call the stablecoin (cold account)", COLD_ACCOUNT),
            ("stablecoin: the investor's allowance (unlimited: read only)", COLD_SLOAD),
            ("stablecoin: investor's balance: read, write", read_write(False)),
            ("stablecoin: the offering's balance: read, write", read_write(False)),
            ("stablecoin: Transfer log (3 topics, 1 word)", log(3, 1)),
            (
                "stablecoin: the offering's balance before and after (warm calls, reads)",
                MEASURED_DELTA,
            ),
            ("Committed log (2 topics, 3 words)", log(2, 3)),
        ),
    )


def offering_claim_shares() -> Floor:
    """ShareOffering.claim_shares after a successful offering, by an investor who holds
    none of the node's shares yet (its balance and correction are set), another investor
    having claimed before (shares delivered is non-zero); the node has had revenue
    (the accumulator is non-zero) and nothing is vesting. What a delivery must do: the
    outcome (total committed), the investor's claimed flag (set) and commitment, the
    total delivered, the share transfer, the log."""
    return Floor(
        "offering claim_shares (a new holder)",
        (
            ("offering: total committed (the outcome)", COLD_SLOAD),
            ("offering: the investor's claimed flag: read, set", read_write(True)),
            ("offering: the investor's commitment", COLD_SLOAD),
            ("offering: shares delivered: read, write", read_write(False)),
            ("call the share (cold account)", COLD_ACCOUNT),
            *share_moves("share", "offering", "investor", receiver_new=True),
            ("SharesClaimed log (3 topics, 2 words)", log(3, 2)),
        ),
    )


def offering_refund() -> Floor:
    """ShareOffering.refund after a failed offering, by an investor who keeps a
    stablecoin balance, another investor refunded before and others still to be (the
    offering's balance stays non-zero). What a refund must do: the outcome, the claimed
    flag (set) and the commitment, the total refunded, the stablecoin paid back, the log."""
    return Floor(
        "offering refund (failed offering)",
        (
            ("offering: total committed (the outcome)", COLD_SLOAD),
            ("offering: the investor's claimed flag: read, set", read_write(True)),
            ("offering: the investor's commitment", COLD_SLOAD),
            ("offering: total refunded: read, write", read_write(False)),
            *token_transfer(receiver_new=False),
            ("Refunded log (3 topics, 1 word)", log(3, 1)),
        ),
    )


def offering_finish() -> Floor:
    """ShareOffering.finish of a successful offering with shares left unsold, the fee
    on: the finished flag (set), the outcome and shares sold, the treasury (the router's),
    the proceeds less the fee to the operator and the fee to the treasury (both hold
    stablecoin; the offering's balance goes to zero, whose EIP-3529 refund the floor does
    not subtract), the unsold shares back to the operator (a holder), the log."""
    return Floor(
        "offering finish (succeeded, unsold shares)",
        (
            ("offering: finished flag: read, set", read_write(True)),
            ("offering: total committed", COLD_SLOAD),
            ("offering: shares sold", COLD_SLOAD),
            ("call the router (cold account)", COLD_ACCOUNT),
            ("router: treasury", COLD_SLOAD),
            *token_transfer(receiver_new=False),
            ("call the stablecoin again (warm), the fee", WARM_ACCESS),
            ("stablecoin: the offering's balance again (written in this transaction)", DIRTY_WRITE),
            ("stablecoin: treasury's balance: read, write", read_write(False)),
            ("stablecoin: Transfer log (3 topics, 1 word)", log(3, 1)),
            ("call the share (cold account)", COLD_ACCOUNT),
            *share_moves("share", "offering", "operator", receiver_new=False),
            ("Finished log (3 topics, 4 words)", log(3, 4)),
        ),
    )
