# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title EdgeShare offering factory
@custom:contract-name OfferingFactory
@license MIT
@notice Lets a node's operator sell shares of its node at a fixed price: each
        call creates a ShareOffering from a blueprint and moves the offered
        shares from the operator into it, in one transaction. One factory per
        suite; its protocol fee on the proceeds is fixed at deployment.
@dev Every parameter of an offering is checked here, so an offering only
     holds what it was given (docs/SPEC.md, "Offerings"). The factory keeps
     no money and no shares after a call returns.
@custom:security Only a node's current operator can offer its shares, and
     only while the node is active in this epoch and the next and the suite is
     not paused. `is_offering` tells a genuine offering from anything else
     built from the same blueprint. Nobody can change an offering once it is
     created.
"""

from ethereum.ercs import IERC20

from .interfaces import INodeRegistry


# What the factory checks of the router.
interface IRevenueRouter:
    def REGISTRY() -> address: view
    def STABLECOIN() -> IERC20: view


MAX_BPS: constant(uint256) = 10_000
# The protocol never takes more than a tenth of an offering's proceeds.
MAX_FEE_BPS: constant(uint256) = 1_000
# An offering's commitment window, and how far ahead it may start.
MAX_DURATION: constant(uint256) = 365 * 86_400
# Share base units per whole share (NodeShare has 18 decimals).
SHARE_UNIT: constant(uint256) = 10**18

REGISTRY: public(immutable(INodeRegistry))
ROUTER: public(immutable(IRevenueRouter))
STABLECOIN: public(immutable(IERC20))
OFFERING_BLUEPRINT: public(immutable(address))
FEE_BPS: public(immutable(uint256))

# Offerings created by this factory.
is_offering: public(HashMap[address, bool])
# Per node, how many offerings were created, and each by its index (0 first).
offering_count: public(HashMap[uint256, uint256])
offering_at: public(HashMap[uint256, HashMap[uint256, address]])


event OfferingCreated:
    offering: indexed(address)
    node_id: indexed(uint256)
    operator: indexed(address)
    share_token: address
    shares: uint256
    price_per_share: uint256
    soft_cap: uint256
    hard_cap: uint256
    start: uint256
    end: uint256
    investor_cap: uint256
    fee_bps: uint256
    index: uint256


@deploy
def __init__(registry: INodeRegistry, router: IRevenueRouter, offering_blueprint: address, fee_bps: uint256):
    """
    @notice Deploys the factory of one suite.
    @param registry The suite's NodeRegistry.
    @param router The suite's RevenueRouter (its stablecoin is what investors pay in).
    @param offering_blueprint An EIP-5202 blueprint of ShareOffering.
    @param fee_bps The protocol fee on every offering's proceeds, at most MAX_FEE_BPS; fixed.
    """
    assert registry.address.is_contract, "factory: registry has no code"
    assert router.address.is_contract, "factory: router has no code"
    assert staticcall router.REGISTRY() == registry.address, "factory: router is for another registry"
    assert offering_blueprint.is_contract, "factory: blueprint has no code"
    assert fee_bps <= MAX_FEE_BPS, "factory: fee above cap"
    REGISTRY = registry
    ROUTER = router
    STABLECOIN = staticcall router.STABLECOIN()
    OFFERING_BLUEPRINT = offering_blueprint
    FEE_BPS = fee_bps


@external
def create_offering(
    node_id: uint256,
    shares: uint256,
    price_per_share: uint256,
    soft_cap: uint256,
    hard_cap: uint256,
    start: uint256,
    end: uint256,
    investor_cap: uint256,
) -> address:
    """
    @notice Offers `shares` of the caller's node at `price_per_share`: creates
            the offering and moves the shares from the caller into it (the
            caller must have approved this factory for them).
    @param node_id The node; the caller must be its operator, and it must be
           active in this epoch and the next.
    @param shares Share base units offered (18 decimals).
    @param price_per_share Stablecoin base units per whole share (10**18 base units).
    @param soft_cap Total commitments needed to succeed (stablecoin base units).
    @param hard_cap The most that can be committed; what it buys must not
           exceed `shares`.
    @param start First second of the commitment window (unix time; may be past).
    @param end First second after the window: in the future, at most
           MAX_DURATION after `start`.
    @param investor_cap The most one investor may commit (0: no cap).
    @return The new offering.
    """
    assert not staticcall REGISTRY.paused(), "factory: paused"
    terms: INodeRegistry.PayoutTerms = staticcall REGISTRY.payout_terms(node_id)
    assert msg.sender == terms.operator, "factory: not operator"
    epoch: uint64 = staticcall REGISTRY.current_epoch()
    # active now and not paused or retired from the next epoch on
    assert (staticcall REGISTRY.usage_terms(node_id, epoch)).active, "factory: node not active"
    assert (staticcall REGISTRY.usage_terms(node_id, epoch + 1)).active, "factory: node not active"
    assert shares != 0, "factory: shares is zero"
    assert price_per_share != 0, "factory: price is zero"
    assert soft_cap != 0, "factory: soft cap is zero"
    assert soft_cap <= hard_cap, "factory: soft cap above hard cap"
    # so that no commitment times 10**18 can overflow in the offering
    assert hard_cap <= max_value(uint256) // SHARE_UNIT, "factory: hard cap too large"
    # rounds down, as each investor's shares do: the sum of their floors is at most this
    assert hard_cap * SHARE_UNIT // price_per_share <= shares, "factory: hard cap buys more than the shares offered"
    assert hard_cap * SHARE_UNIT >= price_per_share, "factory: hard cap buys nothing"
    assert start < end, "factory: start not before end"
    assert end > block.timestamp, "factory: end in the past"
    assert end - start <= MAX_DURATION, "factory: duration too long"
    assert start <= block.timestamp + MAX_DURATION, "factory: start too far ahead"
    if investor_cap != 0:
        assert investor_cap <= hard_cap, "factory: investor cap above hard cap"
        assert investor_cap * SHARE_UNIT >= price_per_share, "factory: investor cap buys nothing"
    offering: address = create_from_blueprint(
        OFFERING_BLUEPRINT,
        REGISTRY,
        ROUTER,
        STABLECOIN,
        terms.share_token,
        node_id,
        msg.sender,
        shares,
        price_per_share,
        soft_cap,
        hard_cap,
        start,
        end,
        investor_cap,
        FEE_BPS,
        code_offset=3,
    )
    index: uint256 = self.offering_count[node_id]
    self.is_offering[offering] = True
    self.offering_at[node_id][index] = offering
    self.offering_count[node_id] = index + 1
    assert extcall IERC20(terms.share_token).transferFrom(msg.sender, offering, shares), "factory: share transfer failed"
    log OfferingCreated(
        offering=offering,
        node_id=node_id,
        operator=msg.sender,
        share_token=terms.share_token,
        shares=shares,
        price_per_share=price_per_share,
        soft_cap=soft_cap,
        hard_cap=hard_cap,
        start=start,
        end=end,
        investor_cap=investor_cap,
        fee_bps=FEE_BPS,
        index=index,
    )
    return offering
