# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title EdgeShare share market
@custom:contract-name ShareMarket
@license MIT
@notice A market for the suite's node shares (and baskets of them) against
        the suite's stablecoin, on signed orders. A maker signs an order
        (EIP-712) off chain to sell or buy up to `amount` shares of one token
        at `price_per_share`; any taker fills it, whole or in parts of at
        least `min_fill`. Shares and stablecoin stay in their owners' wallets
        until a fill, which moves both legs at once with `transferFrom`
        (delivery versus payment): this contract never holds shares, which
        would earn revenue nobody could claim, nor stablecoin.
@dev Costs round in the maker's favour (a sell order's up, a buy order's
     down). The fee, FEE_BPS of the cost rounded down, comes out of the
     seller's leg and goes to the router's treasury of the moment. `fill`
     and `check` decide through one internal function, `_quote`.
@custom:security Only EOA signatures (ECDSA, low s, v in {27, 28}) make an
     order; an order is void once expired, cancelled, filled in full, or
     signed with a nonce other than the maker's current one (`cancel_all`
     voids every earlier order at once). What an order has filled is written
     before any token moves and every state-changing function is
     non-reentrant. Only tokens the suite vouches for trade: a share the
     registry lists for its node id, or a basket of the basket factory. The
     stablecoin leg is measured at the seller (fee-on-transfer tokens are
     refused). The fee rate is fixed at deployment, at most MAX_FEE_BPS.
"""

from ethereum.ercs import IERC20

from .interfaces import IBasketFactory
from .modules import eip712

initializes: eip712

exports: (eip712.DOMAIN_SEPARATOR, eip712.eip712Domain)


# What the market needs of the registry: which token is a node's share.
interface IShareRegistry:
    def share_token(node_id: uint256) -> address: view


# What the market needs of the router: where fees go.
interface IRevenueRouter:
    def treasury() -> address: view


MAX_BPS: constant(uint256) = 10_000
MAX_FEE_BPS: constant(uint256) = 100  # 1%
SIGNATURE_LENGTH: constant(uint256) = 65
# One whole share in base units (18 decimals): `price_per_share` is per this much.
SHARE_UNIT: constant(uint256) = 10**18
ORDER_TYPE_HASH: constant(bytes32) = keccak256(
    "Order(address maker,address share,bool sell,uint256 amount,uint256 price_per_share,uint256 min_fill,uint64 expiry,uint256 nonce,uint256 salt)"
)

# Why an order cannot be filled (`check`'s reason; `fill` reverts with the message).
OK: constant(uint256) = 0
NOT_TRADABLE: constant(uint256) = 1  # neither a share of the registry nor a basket
EXPIRED: constant(uint256) = 2  # block.timestamp > expiry
CANCELLED: constant(uint256) = 3  # the maker cancelled this order
OLD_NONCE: constant(uint256) = 4  # nonce is not the maker's current one (cancel_all since)
BAD_SIGNATURE: constant(uint256) = 5  # not a valid signature of the maker
SELF_TRADE: constant(uint256) = 6  # the taker is the maker
ZERO_AMOUNT: constant(uint256) = 7  # the fill is of nothing
FILLED: constant(uint256) = 8  # nothing of the order remains
OVERFILL: constant(uint256) = 9  # the fill is above what remains
BELOW_MIN_FILL: constant(uint256) = 10  # below min_fill and not the whole remainder
DUST: constant(uint256) = 11  # would leave a remainder in (0, min_fill)
ZERO_COST: constant(uint256) = 12  # the fill would cost nothing (rounded)
COST_OVERFLOW: constant(uint256) = 13  # amount * price_per_share above 2**256 - 1
MAKER_BALANCE: constant(uint256) = 14  # the maker lacks the shares (sell) or stablecoin (buy)
MAKER_ALLOWANCE: constant(uint256) = 15  # the maker's allowance to this market is too low
TAKER_BALANCE: constant(uint256) = 16  # the taker lacks the stablecoin (sell) or shares (buy)
TAKER_ALLOWANCE: constant(uint256) = 17  # the taker's allowance to this market is too low

REGISTRY: public(immutable(IShareRegistry))
STABLECOIN: public(immutable(IERC20))
ROUTER: public(immutable(IRevenueRouter))
# The zero address: no baskets trade here.
BASKET_FACTORY: public(immutable(IBasketFactory))
FEE_BPS: public(immutable(uint256))


# Field names and order are those of the EIP-712 type, which makers sign.
struct Order:
    maker: address
    share: address
    sell: bool
    amount: uint256
    price_per_share: uint256
    min_fill: uint256
    expiry: uint64
    nonce: uint256
    salt: uint256


# Share base units of an order (by its digest) filled so far.
filled: public(reentrant(HashMap[bytes32, uint256]))
cancelled: public(reentrant(HashMap[bytes32, bool]))
# The nonce a maker's orders must carry to be valid.
nonces: public(reentrant(HashMap[address, uint256]))


# `amount` shares moved from the seller to the buyer for `cost`; the seller got
# `cost - fee`, the treasury `fee`; `remaining` shares of the order are left.
event OrderFilled:
    order_hash: indexed(bytes32)
    maker: indexed(address)
    taker: indexed(address)
    share: address
    sell: bool
    amount: uint256
    cost: uint256
    fee: uint256
    remaining: uint256


event OrderCancelled:
    order_hash: indexed(bytes32)
    maker: indexed(address)


# Every order of `maker` with a nonce other than `nonce` is void.
event AllOrdersCancelled:
    maker: indexed(address)
    nonce: uint256


@deploy
def __init__(
    registry: IShareRegistry,
    stablecoin: IERC20,
    router: IRevenueRouter,
    basket_factory: IBasketFactory,
    fee_bps: uint256,
):
    """
    @notice Deploys the market of one suite.
    @param registry The suite's NodeRegistry, which lists each node's share token.
    @param stablecoin The token prices are in (the suite's stablecoin).
    @param router The suite's RevenueRouter, whose treasury receives the fee.
    @param basket_factory The factory whose baskets also trade (zero: none do).
    @param fee_bps The protocol fee on each fill's cost, at most MAX_FEE_BPS.
    """
    assert registry.address.is_contract, "market: registry has no code"
    assert stablecoin.address.is_contract, "market: stablecoin has no code"
    assert router.address.is_contract, "market: router has no code"
    assert basket_factory.address == empty(address) or basket_factory.address.is_contract, "market: basket factory has no code"
    assert fee_bps <= MAX_FEE_BPS, "market: fee above cap"
    eip712.__init__("EdgeShare Market", "1")
    REGISTRY = registry
    STABLECOIN = stablecoin
    ROUTER = router
    BASKET_FACTORY = basket_factory
    FEE_BPS = fee_bps


# ---------------------------------------------------------------- trading ----


@external
def fill(order: Order, signature: Bytes[65], amount: uint256) -> uint256:
    """
    @notice Fills `amount` shares of `order` with the caller as taker: the
            seller's shares go to the buyer, the buyer's stablecoin to the
            seller, less the fee, which goes to the treasury. The caller
            sells into a buy order and buys from a sell order; it must have
            approved this market for its leg.
    @dev Reverts with the message of the first reason `check` would report.
    @param order The maker's order.
    @param signature The maker's signature of `order_hash(order)`, r || s || v.
    @param amount Share base units to fill.
    @return The stablecoin base units the buyer paid (the fee included).
    """
    digest: bytes32 = self._order_hash(order)
    reason: uint256 = OK
    cost: uint256 = 0
    remaining: uint256 = 0
    reason, cost, remaining = self._quote(order, digest, signature, amount, msg.sender)
    if reason != OK:
        self._revert_with(reason)
    # cannot underflow: _quote refuses amount > remaining
    remaining = unsafe_sub(remaining, amount)
    self.filled[digest] = order.amount - remaining
    seller: address = order.maker
    buyer: address = msg.sender
    if not order.sell:
        seller = msg.sender
        buyer = order.maker
    # rounded down, so the seller's leg is never overcharged; fee < cost as FEE_BPS < MAX_BPS
    fee: uint256 = cost * FEE_BPS // MAX_BPS
    proceeds: uint256 = cost - fee
    assert extcall IERC20(order.share).transferFrom(seller, buyer, amount, default_return_value=True), "market: share transfer failed"
    before: uint256 = staticcall STABLECOIN.balanceOf(seller)
    assert extcall STABLECOIN.transferFrom(buyer, seller, proceeds, default_return_value=True), "market: stablecoin transfer failed"
    assert staticcall STABLECOIN.balanceOf(seller) == before + proceeds, "market: stablecoin transfer short"
    if fee != 0:
        treasury: address = staticcall ROUTER.treasury()
        assert extcall STABLECOIN.transferFrom(buyer, treasury, fee, default_return_value=True), "market: stablecoin transfer failed"
    log OrderFilled(
        order_hash=digest,
        maker=order.maker,
        taker=msg.sender,
        share=order.share,
        sell=order.sell,
        amount=amount,
        cost=cost,
        fee=fee,
        remaining=remaining,
    )
    return cost


@external
def cancel(order: Order):
    """
    @notice Voids one of the caller's orders for good, whatever it has filled.
    @param order The order, as signed.
    """
    assert msg.sender == order.maker, "market: not the maker"
    digest: bytes32 = self._order_hash(order)
    assert not self.cancelled[digest], "market: order cancelled"
    self.cancelled[digest] = True
    log OrderCancelled(order_hash=digest, maker=msg.sender)


@external
def cancel_all() -> uint256:
    """
    @notice Voids every order the caller signed with its current nonce, at
            once, by moving the nonce on; orders signed with the new nonce
            fill.
    @return The caller's new nonce.
    """
    nonce: uint256 = self.nonces[msg.sender] + 1
    self.nonces[msg.sender] = nonce
    log AllOrdersCancelled(maker=msg.sender, nonce=nonce)
    return nonce


# ------------------------------------------------------------------ views ----


@external
@view
@reentrant
def check(order: Order, signature: Bytes[65], amount: uint256, taker: address) -> (uint256, uint256):
    """
    @notice What `fill(order, signature, amount)` sent by `taker` now would
            do, without reverting.
    @dev Checks what `fill` checks, in the same order, through the same
         function. It cannot foresee a token that misbehaves in the transfer
         itself (a fee-on-transfer stablecoin).
    @param order The maker's order.
    @param signature The maker's signature, r || s || v.
    @param amount Share base units to fill.
    @param taker Who would send the fill.
    @return The stablecoin the buyer would pay (0 while the reason is below
            MAKER_BALANCE: not yet known), and OK (0) or the first reason the
            fill would be refused for.
    """
    reason: uint256 = OK
    cost: uint256 = 0
    remaining: uint256 = 0
    reason, cost, remaining = self._quote(order, self._order_hash(order), signature, amount, taker)
    return cost, reason


@external
@view
@reentrant
def order_hash(order: Order) -> bytes32:
    """
    @notice The EIP-712 digest a maker signs for `order`; its key in `filled`
            and `cancelled`.
    @param order The order.
    @return The digest.
    """
    return self._order_hash(order)


@external
@view
@reentrant
def is_tradable(token: address) -> bool:
    """
    @notice Whether `token` trades here: a node share the registry lists for
            its node id, or a basket of the basket factory.
    @param token The token.
    @return True if orders for it can fill.
    """
    return self._is_tradable(token)


# --------------------------------------------------------------- internal ----


@internal
@view
def _order_hash(order: Order) -> bytes32:
    """
    @dev The EIP-712 digest of `order` in this market's domain.
    """
    return eip712._hash_typed_data(
        keccak256(
            abi_encode(
                ORDER_TYPE_HASH, order.maker, order.share, order.sell, order.amount,
                order.price_per_share, order.min_fill, order.expiry, order.nonce, order.salt,
            )
        )
    )


@internal
@view
def _is_tradable(token: address) -> bool:
    """
    @dev Asks `token` its node id without trusting it to answer (no code, a
         revert or a short answer: not a share), then asks the registry, which
         reverts for an unknown id, whether that node's share is `token`.
    """
    ok: bool = False
    response: Bytes[32] = b""
    ok, response = raw_call(
        token, method_id("NODE_ID()"), max_outsize=32, is_static_call=True, revert_on_failure=False
    )
    if ok and len(response) == 32:
        ok, response = raw_call(
            REGISTRY.address,
            # the answer, 32 bytes, is the node id's ABI encoding
            concat(method_id("share_token(uint256)"), response),
            max_outsize=32,
            is_static_call=True,
            revert_on_failure=False,
        )
        if ok and len(response) == 32 and convert(response, uint256) == convert(token, uint256):
            return True
    if BASKET_FACTORY.address == empty(address):
        return False
    return staticcall BASKET_FACTORY.is_basket(token)


@internal
@view
def _quote(order: Order, digest: bytes32, signature: Bytes[65], amount: uint256, taker: address) -> (uint256, uint256, uint256):
    """
    @dev The one decision of `fill` and `check`: (OK or the first reason a
         fill of `amount` by `taker` is refused for, its cost, what remains of
         the order before it), cost and remainder 0 until known. `digest` is
         `_order_hash(order)`. Reads token state (views only); writes nothing.
    """
    if not self._is_tradable(order.share):
        return NOT_TRADABLE, 0, 0
    if block.timestamp > convert(order.expiry, uint256):
        return EXPIRED, 0, 0
    if self.cancelled[digest]:
        return CANCELLED, 0, 0
    if order.nonce != self.nonces[order.maker]:
        return OLD_NONCE, 0, 0
    signer: address = empty(address)
    if len(signature) == SIGNATURE_LENGTH:
        signer = eip712._try_recover(
            digest,
            # v is byte 64: the low byte of the word at 33
            convert(extract32(signature, 33), uint256) & 255,
            convert(extract32(signature, 0), uint256),
            convert(extract32(signature, 32), uint256),
        )
    if signer == empty(address) or signer != order.maker:
        return BAD_SIGNATURE, 0, 0
    if taker == order.maker:
        return SELF_TRADE, 0, 0
    if amount == 0:
        return ZERO_AMOUNT, 0, 0
    done: uint256 = self.filled[digest]
    if done >= order.amount:
        return FILLED, 0, 0
    # cannot underflow: checked just above
    remaining: uint256 = unsafe_sub(order.amount, done)
    if amount > remaining:
        return OVERFILL, 0, 0
    if amount < order.min_fill and amount != remaining:
        return BELOW_MIN_FILL, 0, 0
    # cannot underflow: amount <= remaining
    left: uint256 = unsafe_sub(remaining, amount)
    if left != 0 and left < order.min_fill:
        return DUST, 0, 0
    if order.price_per_share > max_value(uint256) // amount:
        return COST_OVERFLOW, 0, 0
    value: uint256 = amount * order.price_per_share
    # the maker's limit holds either way: a seller gets at least, a buyer pays at most, its price
    cost: uint256 = value // SHARE_UNIT
    if order.sell and value % SHARE_UNIT != 0:
        cost += 1
    if cost == 0:
        return ZERO_COST, 0, 0
    return self._legs_reason(order, amount, cost, taker), cost, remaining


@internal
@view
def _legs_reason(order: Order, amount: uint256, cost: uint256, taker: address) -> uint256:
    """
    @dev Whether the maker, then the taker, holds and lets this market move its
         leg (the seller's shares, the buyer's `cost`); `order.share` is tradable.
    """
    maker_token: IERC20 = IERC20(order.share)
    maker_needs: uint256 = amount
    taker_token: IERC20 = STABLECOIN
    taker_needs: uint256 = cost
    if not order.sell:
        maker_token = STABLECOIN
        maker_needs = cost
        taker_token = IERC20(order.share)
        taker_needs = amount
    if staticcall maker_token.balanceOf(order.maker) < maker_needs:
        return MAKER_BALANCE
    if staticcall maker_token.allowance(order.maker, self) < maker_needs:
        return MAKER_ALLOWANCE
    if staticcall taker_token.balanceOf(taker) < taker_needs:
        return TAKER_BALANCE
    if staticcall taker_token.allowance(taker, self) < taker_needs:
        return TAKER_ALLOWANCE
    return OK


@internal
@pure
def _revert_with(reason: uint256):
    """
    @dev Reverts with the message of a non-zero reason code of `_quote`.
    """
    assert reason != NOT_TRADABLE, "market: not a suite share"
    assert reason != EXPIRED, "market: order expired"
    assert reason != CANCELLED, "market: order cancelled"
    assert reason != OLD_NONCE, "market: nonce is not the maker's current one"
    assert reason != BAD_SIGNATURE, "market: bad signature"
    assert reason != SELF_TRADE, "market: taker is the maker"
    assert reason != ZERO_AMOUNT, "market: amount is zero"
    assert reason != FILLED, "market: order fully filled"
    assert reason != OVERFILL, "market: amount above remaining"
    assert reason != BELOW_MIN_FILL, "market: fill below min_fill"
    assert reason != DUST, "market: fill leaves dust below min_fill"
    assert reason != ZERO_COST, "market: cost is zero"
    assert reason != COST_OVERFLOW, "market: cost overflows"
    assert reason != MAKER_BALANCE, "market: maker balance too low"
    assert reason != MAKER_ALLOWANCE, "market: maker allowance too low"
    assert reason != TAKER_BALANCE, "market: taker balance too low"
    assert reason != TAKER_ALLOWANCE, "market: taker allowance too low"
    raise "market: unknown reason"  # dev: every reason code is listed above
