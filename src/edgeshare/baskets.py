"""Baskets: one token over many nodes' shares, and the revenue they earn.

A basket (``contracts/Basket.vy``) holds a fixed set of node shares with fixed weights:
one whole basket unit (10**18 base units) stands for ``weight`` share base units of each
component. ``send_mint`` takes the shares in proportion (rounded up), ``send_redeem``
gives them back (rounded down), ``send_harvest`` claims what the shares earned and
releases it to the basket's holders, who claim it like node holders (``market.send_claims``
claims shares and baskets in one transaction through the PortfolioClaimer).

Every send checks off chain first what the contract would refuse, and says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from web3 import Web3

from edgeshare.contracts import BlockId, Contract, get_codec
from edgeshare.errors import InputError
from edgeshare.models import parse_address
from edgeshare.roles import Action
from edgeshare.rpc import RpcError
from edgeshare.suite import Suite
from edgeshare.tx import Planned, Transactor

UNIT = 10**18
"""Base units per whole basket unit (baskets have 18 decimals)."""
MAX_COMPONENTS = 32
"""Basket.MAX_COMPONENTS."""
MIN_SUPPLY = 10**12
"""Basket.MIN_SUPPLY: a non-zero supply is at least this many base units."""
MAX_SUPPLY = 2**86
"""Basket.MAX_SUPPLY."""
MAX_WEIGHT = 2**128
"""Basket.MAX_WEIGHT: share base units per whole unit, at most."""


@dataclass(frozen=True)
class Component:
    """One node's share in a basket."""

    node_id: int
    share_token: str
    weight: int
    """Share base units per whole basket unit."""


@dataclass(frozen=True)
class BasketView:
    """A basket as the chain has it now."""

    address: str
    name: str
    symbol: str
    components: list[Component]
    supply: int
    """Basket base units in existence."""
    harvested: int
    """Stablecoin base units harvested ever (``total_distributed``)."""
    harvestable: int
    """What the components owe the basket now: the next harvest books it."""


@dataclass(frozen=True)
class BasketHolding:
    """An address's units of one basket and what it can claim there."""

    basket: str
    symbol: str
    units: int
    supply: int
    claimable: int


def _basket(suite: Suite, address: str) -> Contract:
    return suite.reader.contract("Basket", address)


def fetch_basket_addresses(suite: Suite, block: BlockId = "latest") -> list[str]:
    """Every basket of the suite's factory, in creation order (one batch)."""
    count = int(suite.baskets.call("basket_count", block=block))
    if count == 0:
        return []
    reads = [suite.baskets.read("basket_at", i) for i in range(1, count + 1)]
    return [Web3.to_checksum_address(a) for a in suite.reader.many(reads, block=block)]


def require_basket(suite: Suite, address: str, what: str = "--basket") -> str:
    """``address`` checksummed, if it is a basket of this suite's factory."""
    address = parse_address(address, what)
    if not suite.baskets.call("is_basket", address):
        raise InputError(f"{what} {address} is not a basket of this suite's BasketFactory")
    return address


def fetch_baskets(
    suite: Suite, addresses: Sequence[str] | None = None, block: BlockId = "latest"
) -> list[BasketView]:
    """The suite's baskets (or the named ones) with their components, supply and what
    they have harvested and can harvest, as of ``block``; two batches of reads."""
    found = list(addresses) if addresses is not None else fetch_basket_addresses(suite, block)
    baskets = [_basket(suite, a) for a in found]
    rows = suite.reader.each(
        baskets, ("name",), ("symbol",), ("components",), ("totalSupply",),
        ("total_distributed",), block=block,
    )  # fmt: skip
    tokens = sorted({str(t) for row in rows for t in row[2][0]})
    shares = [suite.share_at(t) for t in tokens]
    ids = dict(zip(tokens, suite.reader.many([s.read("NODE_ID") for s in shares], block=block),
                   strict=True))  # fmt: skip
    owed_reads = [
        suite.share_at(str(t)).read("claimable", b.address)
        for b, row in zip(baskets, rows, strict=True)
        for t in row[2][0]
    ]
    owed = iter(suite.reader.many(owed_reads, block=block))
    out = []
    for basket, (name, symbol, (comp_tokens, weights), supply, harvested) in zip(
        baskets, rows, strict=True
    ):
        components = [
            Component(int(ids[str(t)]), Web3.to_checksum_address(str(t)), int(w))
            for t, w in zip(comp_tokens, weights, strict=True)
        ]
        harvestable = sum(int(next(owed)) for _ in components)
        view = BasketView(
            basket.address, str(name), str(symbol), components, int(supply), int(harvested),
            harvestable,
        )  # fmt: skip
        out.append(view)
    return out


def fetch_basket_holdings(
    suite: Suite, holder: str, block: BlockId = "latest"
) -> list[BasketHolding]:
    """Every basket where ``holder`` has units or revenue to claim (one batch)."""
    holder = Web3.to_checksum_address(holder)
    baskets = [_basket(suite, a) for a in fetch_basket_addresses(suite, block)]
    if not baskets:
        return []
    rows = suite.reader.each(
        baskets, ("symbol",), ("balanceOf", holder), ("totalSupply",), ("claimable", holder),
        block=block,
    )  # fmt: skip
    return [
        BasketHolding(b.address, str(symbol), int(units), int(supply), int(claimable))
        for b, (symbol, units, supply, claimable) in zip(baskets, rows, strict=True)
        if units or claimable
    ]


def fetch_claimed(
    suite: Suite, baskets: Sequence[str], holder: str, to_block: int
) -> dict[str, int]:
    """What ``holder`` claimed from each basket up to ``to_block`` (its RevenueClaimed
    logs: no on-chain counter), by basket address."""
    if not baskets:
        return {}
    event = get_codec("Basket").event("RevenueClaimed")
    topics = ["0x" + event.topic.hex(), "0x" + bytes(12).hex() + holder.lower()[2:]]
    params = {"address": list(baskets), "fromBlock": hex(suite.manifest.block),
              "toBlock": hex(to_block), "topics": topics}  # fmt: skip
    try:
        logs = suite.rpc.call("eth_getLogs", [params])
    except RpcError as exc:
        raise RpcError(
            exc.code, f"the node refused the baskets' claim logs ({exc.message})"
        ) from None
    claimed: dict[str, int] = {Web3.to_checksum_address(b): 0 for b in baskets}
    for log in logs:
        args = event.decode(log["topics"], log["data"])
        claimed[Web3.to_checksum_address(log["address"])] += int(args["amount"])
    return claimed


def build_components(suite: Suite, weights: Sequence[tuple[int, int]]) -> list[Component]:
    """Components from (node id, share base units per whole unit), checked as the factory
    checks them: 1 to 32 distinct registered nodes, each weight 1 to 2**128."""
    if not weights:
        raise InputError("a basket needs at least one component (--component NODE:WEIGHT)")
    if len(weights) > MAX_COMPONENTS:
        raise InputError(f"a basket has at most {MAX_COMPONENTS} components, got {len(weights)}")
    node_ids = [n for n, _ in weights]
    twice = sorted({n for n in node_ids if node_ids.count(n) > 1})
    if twice:
        raise InputError(f"node(s) {', '.join(map(str, twice))} named more than once")
    count = suite.fetch_node_count()
    for node_id, weight in weights:
        if not 1 <= node_id <= count:
            raise InputError(f"node {node_id} does not exist (the registry has {count} node(s))")
        if not 0 < weight <= MAX_WEIGHT:
            raise InputError(
                f"node {node_id}'s weight must be 1 to 2**128 share base units per unit, "
                f"got {weight}"
            )
    tokens = suite.fetch_share_tokens(node_ids)
    return [Component(n, t, w) for (n, w), t in zip(weights, tokens, strict=True)]


def send_create_basket(
    tx: Transactor, suite: Suite, name: str, symbol: str, components: Sequence[Component]
) -> Action:
    """Create a basket over ``components`` (from ``build_components``); anyone may.
    The new basket's address is ``details["basket"]`` (empty in a dry run)."""
    if not 0 < len(name.encode()) <= 64:
        raise InputError("the basket's name must be 1 to 64 bytes")
    if not 0 < len(symbol.encode()) <= 16:
        raise InputError("the basket's symbol must be 1 to 16 bytes")
    factory = suite.baskets
    tokens = [c.share_token for c in components]
    weights = [c.weight for c in components]
    what = f"create basket {symbol} over node(s) {', '.join(str(c.node_id) for c in components)}"
    receipt = tx.send(factory.tx("create_basket", name, symbol, tokens, weights), what)
    details: dict[str, Any] = {"basket": ""}
    if not receipt.is_simulated:
        details["basket"] = str(factory.events(receipt, "BasketCreated")[0]["basket"])
    return Action(what, receipt.tx_hash, receipt.gas_used, details)


def _require_units(units: int) -> None:
    if not 0 < units <= MAX_SUPPLY:
        raise InputError(f"units must be 1 to 2**86 base units, got {units}")


def send_mint(tx: Transactor, suite: Suite, address: str, units: int) -> Action:
    """Mint ``units`` of a basket to the signer, approving the basket on each component
    that needs it; refused off chain when the signer lacks a component's shares."""
    _require_units(units)
    (view,) = fetch_baskets(suite, [require_basket(suite, address)])
    supply = view.supply + units
    if supply < MIN_SUPPLY:
        raise InputError(
            f"the basket's supply would be {supply} base units; a non-zero supply is at "
            f"least {MIN_SUPPLY} (10**-6 of a unit)"
        )
    if supply > MAX_SUPPLY:
        raise InputError("the basket's supply would exceed 2**86 base units")
    holder = tx.signer.address
    needs = [-(-units * c.weight // UNIT) for c in view.components]  # rounded up, as mint does
    shares = [suite.share_at(c.share_token) for c in view.components]
    rows = suite.reader.each(shares, ("balanceOf", holder), ("allowance", holder, view.address))
    for c, need, (balance, _) in zip(view.components, needs, rows, strict=True):
        if balance < need:
            raise InputError(
                f"minting needs {need} base units of node {c.node_id}'s shares; "
                f"{holder} holds {balance}"
            )
    basket = _basket(suite, view.address)
    what = f"mint {units} base units of basket {view.symbol}"
    approvals = 0
    for c, share, need, (_, allowance) in zip(view.components, shares, needs, rows, strict=True):
        if allowance < need:
            tx.send(share.tx("approve", view.address, need), f"approve node {c.node_id}'s shares")
            approvals += 1
    if approvals and tx.dry_run:
        # the mint needs the approvals, which a dry run does not apply: checked above
        tx.planned.append(Planned(what, basket.address, basket.calldata("mint", units), 0, 0))
        return Action(what, "", 0, {"units": units, "shares": needs})
    receipt = tx.send(basket.tx("mint", units), what)
    return Action(what, receipt.tx_hash, receipt.gas_used, {"units": units, "shares": needs})


def send_redeem(tx: Transactor, suite: Suite, address: str, units: int) -> Action:
    """Redeem ``units`` of the signer's basket units for the component shares."""
    _require_units(units)
    (view,) = fetch_baskets(suite, [require_basket(suite, address)])
    basket = _basket(suite, view.address)
    held = int(basket.call("balanceOf", tx.signer.address))
    if held < units:
        raise InputError(f"{tx.signer.address} holds {held} base units of {view.symbol}")
    left = view.supply - units
    if 0 < left < MIN_SUPPLY:
        raise InputError(
            f"the basket's supply would be {left} base units; redeem all or leave at least "
            f"{MIN_SUPPLY}"
        )
    gives = [units * c.weight // UNIT for c in view.components]  # rounded down, as redeem does
    what = f"redeem {units} base units of basket {view.symbol}"
    receipt = tx.send(basket.tx("redeem", units), what)
    return Action(what, receipt.tx_hash, receipt.gas_used, {"units": units, "shares": gives})


def send_harvest(tx: Transactor, suite: Suite, address: str) -> Action:
    """Claim what the basket's shares earned and release it to its holders (anyone may)."""
    (view,) = fetch_baskets(suite, [require_basket(suite, address)])
    if view.harvestable == 0:
        raise InputError(f"basket {view.symbol} has nothing to harvest")
    basket = _basket(suite, view.address)
    what = f"harvest basket {view.symbol}"
    receipt = tx.send(basket.tx("harvest"), what)
    amount = view.harvestable
    if not receipt.is_simulated:
        found = basket.events(receipt, "Harvested")
        amount = int(found[0]["amount"]) if found else 0
    return Action(what, receipt.tx_hash, receipt.gas_used, {"amount": amount})
