# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title EdgeShare share offering
@custom:contract-name ShareOffering
@license MIT
@notice One sale of a node's shares by its operator, at a fixed price, in
        escrow. Investors commit stablecoin from START until END and may cancel
        until END. If the commitments reach the soft cap, every investor
        receives its shares and the operator the proceeds less the protocol
        fee; if not, every investor gets its stablecoin back and the operator
        all its shares. Deployed from a blueprint by OfferingFactory, one per
        offering; the factory moves the shares in in the same transaction.
@dev The outcome is decided at END and only there: an offering that reaches
     its hard cap stays open until END, and a cancel makes room again. An
     investor with commitment c receives floor(c * 10**18 / PRICE_PER_SHARE)
     share base units (PRICE_PER_SHARE is in stablecoin base units per whole
     share of 10**18 base units). `shares_sold` is the sum of those floors,
     kept exact on every commit and cancel, so it never exceeds
     HARD_CAP * 10**18 // PRICE_PER_SHARE <= SHARES (checked by the factory)
     and the unsold rest SHARES - shares_sold is exact.
     While the shares wait here they earn revenue like any holder's; the
     constructor makes the operator this contract's revenue receiver, so
     `NodeShare.claim_for(offering)` pays the operator what they earn until
     they are delivered (the operator's until then, sold or not). A share
     transfer leaves what was earned with the sender, so delivered shares earn
     for the investor from delivery on.
@custom:security Nobody can stop, delay or redirect a refund or a delivery:
     neither checks the suite's pause, both pay only the investor whose
     commitment it is, and neither depends on `finish`. The pause stops only new
     commitments. Commitments are measured by this contract's balance change
     (a fee-on-transfer token is refused). State is written before any token
     moves and every state-changing function is non-reentrant. The proceeds,
     the unsold shares and the escrowed revenue go to OPERATOR, the operator
     that created the offering, even after a node handover.
"""

from ethereum.ercs import IERC20

from .interfaces import INodeRegistry
from .interfaces import IShareOffering

implements: IShareOffering


# What the offering needs of the node's share token beyond IERC20.
interface INodeShare:
    def set_revenue_receiver(holder: address, receiver: address): nonpayable


# What the offering needs of the router.
interface IRevenueRouter:
    def treasury() -> address: view


MAX_BPS: constant(uint256) = 10_000
# Share base units per whole share (NodeShare has 18 decimals).
SHARE_UNIT: constant(uint256) = 10**18

FACTORY: public(immutable(address))
REGISTRY: public(immutable(INodeRegistry))
ROUTER: public(immutable(IRevenueRouter))
STABLECOIN: public(immutable(IERC20))
SHARE: public(immutable(IERC20))
NODE_ID: public(immutable(uint256))
OPERATOR: public(immutable(address))
# Share base units offered, all escrowed here at creation.
SHARES: public(immutable(uint256))
# Stablecoin base units per whole share (10**18 share base units).
PRICE_PER_SHARE: public(immutable(uint256))
SOFT_CAP: public(immutable(uint256))
HARD_CAP: public(immutable(uint256))
START: public(immutable(uint256))
END: public(immutable(uint256))
# The most one investor may have committed at once (0: no cap).
INVESTOR_CAP: public(immutable(uint256))
FEE_BPS: public(immutable(uint256))

# Stablecoin base units each investor has committed and not cancelled.
committed: public(HashMap[address, uint256])
# The investor's shares were delivered (succeeded) or its commitment refunded (failed).
claimed: public(HashMap[address, bool])
total_committed: public(uint256)
# The sum over investors of floor(committed * 10**18 / PRICE_PER_SHARE).
shares_sold: public(uint256)
shares_delivered: public(uint256)
total_refunded: public(uint256)
finished: public(bool)


event Committed:
    investor: indexed(address)
    amount: uint256
    committed: uint256
    total_committed: uint256


event Cancelled:
    investor: indexed(address)
    amount: uint256
    committed: uint256
    total_committed: uint256


event SharesClaimed:
    investor: indexed(address)
    caller: indexed(address)
    shares: uint256
    paid: uint256


event Refunded:
    investor: indexed(address)
    caller: indexed(address)
    amount: uint256


event Finished:
    succeeded: bool
    operator: indexed(address)
    treasury: indexed(address)
    proceeds: uint256
    fee: uint256
    shares_returned: uint256


@deploy
def __init__(
    registry: INodeRegistry,
    router: IRevenueRouter,
    stablecoin: IERC20,
    share: IERC20,
    node_id: uint256,
    operator: address,
    shares: uint256,
    price_per_share: uint256,
    soft_cap: uint256,
    hard_cap: uint256,
    start: uint256,
    end: uint256,
    investor_cap: uint256,
    fee_bps: uint256,
):
    """
    @notice Sets up one offering and makes the operator the revenue receiver
            of the shares it will hold. Called by OfferingFactory, which has
            checked every parameter and then moves the shares in.
    @dev Only offerings the factory lists in `is_offering` are genuine.
    @param registry The suite's NodeRegistry (its pause stops commitments).
    @param router The suite's RevenueRouter (names the treasury).
    @param stablecoin What investors pay in.
    @param share The node's NodeShare token.
    @param node_id The node.
    @param operator Who offers the shares and receives the proceeds.
    @param shares Share base units offered.
    @param price_per_share Stablecoin base units per whole share.
    @param soft_cap Total commitments needed for the offering to succeed.
    @param hard_cap The most that can be committed in total.
    @param start First second of the commitment window (unix time).
    @param end First second after it (unix time).
    @param investor_cap The most one investor may commit (0: no cap).
    @param fee_bps The protocol fee on the proceeds, in basis points.
    """
    FACTORY = msg.sender
    REGISTRY = registry
    ROUTER = router
    STABLECOIN = stablecoin
    SHARE = share
    NODE_ID = node_id
    OPERATOR = operator
    SHARES = shares
    PRICE_PER_SHARE = price_per_share
    SOFT_CAP = soft_cap
    HARD_CAP = hard_cap
    START = start
    END = end
    INVESTOR_CAP = investor_cap
    FEE_BPS = fee_bps
    # a holder sets its own receiver: nobody else can change it afterwards
    extcall INodeShare(share.address).set_revenue_receiver(self, operator)


# ------------------------------------------------------------- investors ----


@external
def commit(amount: uint256):
    """
    @notice Commits `amount` of the caller's stablecoin to buy shares; the
            caller must have approved this offering. Between START and END,
            while the suite is not paused.
    @param amount Stablecoin base units.
    """
    assert block.timestamp >= START, "offering: not started"
    assert block.timestamp < END, "offering: ended"
    assert not staticcall REGISTRY.paused(), "offering: paused"
    assert amount != 0, "offering: amount is zero"
    total: uint256 = self.total_committed + amount
    assert total <= HARD_CAP, "offering: hard cap exceeded"
    before: uint256 = self.committed[msg.sender]
    after: uint256 = before + amount
    assert INVESTOR_CAP == 0 or after <= INVESTOR_CAP, "offering: investor cap exceeded"
    self._set_commitment(msg.sender, before, after, total)
    held: uint256 = staticcall STABLECOIN.balanceOf(self)
    assert extcall STABLECOIN.transferFrom(msg.sender, self, amount, default_return_value=True), "offering: stablecoin transfer failed"
    assert staticcall STABLECOIN.balanceOf(self) - held == amount, "offering: stablecoin delivered a different amount"
    log Committed(investor=msg.sender, amount=amount, committed=after, total_committed=total)


@external
def cancel(amount: uint256):
    """
    @notice Takes back `amount` of the caller's commitment, in full, before
            END (paused or not).
    @param amount Stablecoin base units, at most the caller's commitment.
    """
    assert block.timestamp < END, "offering: ended"
    assert amount != 0, "offering: amount is zero"
    before: uint256 = self.committed[msg.sender]
    assert amount <= before, "offering: amount exceeds commitment"
    # cannot underflow: checked just above, and total_committed includes `before`
    after: uint256 = unsafe_sub(before, amount)
    total: uint256 = unsafe_sub(self.total_committed, amount)
    self._set_commitment(msg.sender, before, after, total)
    assert extcall STABLECOIN.transfer(msg.sender, amount, default_return_value=True), "offering: stablecoin transfer failed"
    log Cancelled(investor=msg.sender, amount=amount, committed=after, total_committed=total)


@external
def claim_shares() -> uint256:
    """
    @notice Delivers the caller's shares once the offering has succeeded.
    @return The share base units delivered.
    """
    return self._deliver(msg.sender)


@external
def claim_shares_for(investor: address) -> uint256:
    """
    @notice Delivers `investor`'s shares to `investor` once the offering has
            succeeded. Anyone may call it (a keeper, the operator).
    @param investor An investor with a commitment.
    @return The share base units delivered.
    """
    return self._deliver(investor)


@external
def refund() -> uint256:
    """
    @notice Pays the caller back its whole commitment once the offering has failed.
    @return The stablecoin base units paid.
    """
    return self._refund(msg.sender)


@external
def refund_for(investor: address) -> uint256:
    """
    @notice Pays `investor` back its whole commitment once the offering has
            failed. Anyone may call it.
    @param investor An investor with a commitment.
    @return The stablecoin base units paid.
    """
    return self._refund(investor)


@external
def finish():
    """
    @notice Closes the books after END, once; anyone may call it. If the
            offering succeeded: the proceeds less the protocol fee to the
            operator, the fee to the router's treasury, the unsold shares to
            the operator. If it failed: every share to the operator (the
            stablecoin stays here for the refunds).
    @dev Deliveries and refunds never wait for this call.
    """
    assert block.timestamp >= END, "offering: not ended"
    assert not self.finished, "offering: already finished"
    self.finished = True
    succeeded: bool = self.total_committed >= SOFT_CAP
    proceeds: uint256 = 0
    fee: uint256 = 0
    returned: uint256 = SHARES
    treasury: address = empty(address)
    if succeeded:
        proceeds = self.total_committed
        # rounds down: the operator keeps the fraction of a base unit
        fee = proceeds * FEE_BPS // MAX_BPS
        # cannot underflow: shares_sold <= HARD_CAP * 10**18 // PRICE_PER_SHARE <= SHARES
        returned = unsafe_sub(SHARES, self.shares_sold)
        treasury = staticcall ROUTER.treasury()
        if proceeds != fee:
            assert extcall STABLECOIN.transfer(OPERATOR, proceeds - fee, default_return_value=True), "offering: stablecoin transfer failed"
        if fee != 0:
            assert extcall STABLECOIN.transfer(treasury, fee, default_return_value=True), "offering: stablecoin transfer failed"
    if returned != 0:
        assert extcall SHARE.transfer(OPERATOR, returned, default_return_value=True), "offering: share transfer failed"
    log Finished(
        succeeded=succeeded,
        operator=OPERATOR,
        treasury=treasury,
        proceeds=proceeds,
        fee=fee,
        shares_returned=returned,
    )


# ----------------------------------------------------------------- views ----


@external
@view
def state() -> IShareOffering.OfferingState:
    """
    @notice Where the offering stands now.
    @return PENDING before START, OPEN until END, then SUCCEEDED if the
            commitments reached the soft cap, FAILED if not.
    """
    if block.timestamp < START:
        return IShareOffering.OfferingState.PENDING
    if block.timestamp < END:
        return IShareOffering.OfferingState.OPEN
    if self.total_committed >= SOFT_CAP:
        return IShareOffering.OfferingState.SUCCEEDED
    return IShareOffering.OfferingState.FAILED


@external
@view
def shares_for(investor: address) -> uint256:
    """
    @notice The shares `investor`'s commitment buys if the offering succeeds.
    @param investor The investor.
    @return Share base units, rounded down.
    """
    return self._shares_of(self.committed[investor])


# -------------------------------------------------------------- internal ----


@internal
@view
def _shares_of(amount: uint256) -> uint256:
    # rounds down, against the buyer by less than one share base unit; cannot
    # overflow: amount <= HARD_CAP <= max_value(uint256) // 10**18 (the factory checks)
    return amount * SHARE_UNIT // PRICE_PER_SHARE


@internal
def _set_commitment(investor: address, before: uint256, after: uint256, total: uint256):
    # dev: total is total_committed with `before` replaced by `after`
    self.committed[investor] = after
    self.total_committed = total
    # shares_sold includes the investor's old floor, so this cannot underflow
    self.shares_sold = self.shares_sold + self._shares_of(after) - self._shares_of(before)


@internal
def _deliver(investor: address) -> uint256:
    # dev: pays only `investor`, whoever calls; no pause check, no dependence on finish
    assert block.timestamp >= END, "offering: not ended"
    assert self.total_committed >= SOFT_CAP, "offering: failed, refund instead"
    assert not self.claimed[investor], "offering: already claimed"
    paid: uint256 = self.committed[investor]
    assert paid != 0, "offering: nothing committed"
    self.claimed[investor] = True
    shares: uint256 = self._shares_of(paid)
    self.shares_delivered += shares
    if shares != 0:
        assert extcall SHARE.transfer(investor, shares, default_return_value=True), "offering: share transfer failed"
    log SharesClaimed(investor=investor, caller=msg.sender, shares=shares, paid=paid)
    return shares


@internal
def _refund(investor: address) -> uint256:
    # dev: pays only `investor`, whoever calls; no pause check, no dependence on finish
    assert block.timestamp >= END, "offering: not ended"
    assert self.total_committed < SOFT_CAP, "offering: succeeded, claim shares instead"
    assert not self.claimed[investor], "offering: already refunded"
    amount: uint256 = self.committed[investor]
    assert amount != 0, "offering: nothing committed"
    self.claimed[investor] = True
    self.total_refunded += amount
    assert extcall STABLECOIN.transfer(investor, amount, default_return_value=True), "offering: stablecoin transfer failed"
    log Refunded(investor=investor, caller=msg.sender, amount=amount)
    return amount
