# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title EdgeShare revenue router
@custom:contract-name RevenueRouter
@license MIT
@notice Receives a node's stablecoin revenue and splits it: the protocol fee to
        the treasury, the operator's cut to the operator, and the rest to the
        node's share holders through its NodeShare token. Treasury and
        operators withdraw what they are owed (pull).
@dev Split of a gross amount G: fee = G * PROTOCOL_FEE_BPS // MAX_BPS and
     cut = G * operator_cut_bps // MAX_BPS, both rounded down; holders get
     G - fee - cut, so the three parts always add up to G exactly.
@custom:security Deposits are measured by the router's balance change; a token
     that delivers less than it was asked to (fee on transfer) is rejected. All
     accounting is written before any token leaves, and every external function
     is non-reentrant. While the suite is paused no revenue enters, but
     withdrawals go on.
"""

from ethereum.ercs import IERC20

from .interfaces import INodeRegistry
from .interfaces import INodeShare

MAX_BPS: constant(uint256) = 10_000
# The protocol never takes more than a fifth of gross revenue.
MAX_PROTOCOL_FEE_BPS: constant(uint256) = 2_000
MAX_CHALLENGE_PERIOD: constant(uint256) = 30 * 86_400

REGISTRY: public(immutable(INodeRegistry))
STABLECOIN: public(immutable(IERC20))
PROTOCOL_FEE_BPS: public(immutable(uint256))
CHALLENGE_PERIOD: public(immutable(uint256))

treasury: public(address)
# Stablecoin base units the treasury and operators can withdraw.
owed: public(HashMap[address, uint256])
total_owed: public(uint256)
total_revenue: public(uint256)


event RevenueSplit:
    node_id: indexed(uint256)
    payer: indexed(address)
    gross: uint256
    protocol_fee: uint256
    operator_cut: uint256
    holders: uint256


event Withdrawn:
    account: indexed(address)
    receiver: indexed(address)
    amount: uint256


event TreasurySet:
    treasury: indexed(address)


@deploy
def __init__(
    registry: INodeRegistry,
    stablecoin: IERC20,
    protocol_fee_bps: uint256,
    treasury: address,
    challenge_period: uint256,
):
    """
    @notice Deploys the router for one registry and one stablecoin.
    @param registry The NodeRegistry whose nodes this router pays.
    @param stablecoin The token revenue is paid in.
    @param protocol_fee_bps The protocol fee, at most MAX_PROTOCOL_FEE_BPS; fixed.
    @param treasury Where protocol fees accrue.
    @param challenge_period Seconds settled revenue can be disputed before it is paid out.
    """
    assert registry.address.is_contract, "router: registry has no code"
    assert stablecoin.address.is_contract, "router: stablecoin has no code"
    assert protocol_fee_bps <= MAX_PROTOCOL_FEE_BPS, "router: protocol fee above cap"
    assert treasury != empty(address), "router: treasury is the zero address"
    assert challenge_period <= MAX_CHALLENGE_PERIOD, "router: challenge period too long"
    REGISTRY = registry
    STABLECOIN = stablecoin
    PROTOCOL_FEE_BPS = protocol_fee_bps
    CHALLENGE_PERIOD = challenge_period
    self.treasury = treasury
    log TreasurySet(treasury=treasury)


@external
def record_revenue(node_id: uint256, amount: uint256) -> uint256:
    """
    @notice Pulls `amount` of stablecoin from the caller as revenue of a node
            and splits it at once. Guardian or registrar only.
    @param node_id An active node.
    @param amount Gross revenue in stablecoin base units; the caller must have
           approved the router for it.
    @return The part that went to the node's holders.
    """
    assert msg.sender == staticcall REGISTRY.guardian() or msg.sender == staticcall REGISTRY.registrar(), "router: not guardian or registrar"
    assert not staticcall REGISTRY.paused(), "router: paused"
    assert amount > 0, "router: amount is zero"
    terms: INodeRegistry.RevenueTerms = staticcall REGISTRY.revenue_terms(node_id)
    assert terms.status == INodeRegistry.NodeStatus.ACTIVE, "router: node not active"
    self._pull(msg.sender, amount)
    return self._split(node_id, msg.sender, amount, terms)


@external
def withdraw(receiver: address) -> uint256:
    """
    @notice Pays the caller (treasury or operator) everything it is owed.
    @param receiver Where the stablecoin goes.
    @return The amount paid (0 if nothing was owed).
    """
    assert receiver != empty(address), "router: receiver is the zero address"
    amount: uint256 = self.owed[msg.sender]
    if amount == 0:
        return 0
    self.owed[msg.sender] = 0
    self.total_owed -= amount
    assert extcall STABLECOIN.transfer(receiver, amount, default_return_value=True), "router: stablecoin transfer failed"
    log Withdrawn(account=msg.sender, receiver=receiver, amount=amount)
    return amount


@external
def set_treasury(treasury: address):
    """
    @notice Moves where future protocol fees accrue; fees already owed stay
            withdrawable by the previous treasury.
    @param treasury The new treasury.
    """
    assert msg.sender == staticcall REGISTRY.owner(), "router: not owner"
    assert treasury != empty(address), "router: treasury is the zero address"
    self.treasury = treasury
    log TreasurySet(treasury=treasury)


@internal
def _pull(payer: address, amount: uint256):
    before: uint256 = staticcall STABLECOIN.balanceOf(self)
    assert extcall STABLECOIN.transferFrom(payer, self, amount, default_return_value=True), "router: stablecoin transfer failed"
    received: uint256 = staticcall STABLECOIN.balanceOf(self) - before
    assert received == amount, "router: stablecoin delivered a different amount"


@internal
def _split(node_id: uint256, payer: address, gross: uint256, terms: INodeRegistry.RevenueTerms) -> uint256:
    # both round down; the holders' part takes the remainder, so the parts sum to gross
    fee: uint256 = gross * PROTOCOL_FEE_BPS // MAX_BPS
    cut: uint256 = gross * terms.operator_cut_bps // MAX_BPS
    holders: uint256 = gross - fee - cut
    if fee != 0:
        self.owed[self.treasury] += fee
    if cut != 0:
        self.owed[terms.operator] += cut
    self.total_owed += fee + cut
    self.total_revenue += gross
    if holders != 0:
        assert extcall STABLECOIN.transfer(terms.share_token, holders, default_return_value=True), "router: stablecoin transfer failed"
        extcall INodeShare(terms.share_token).notify_revenue(holders)
    log RevenueSplit(node_id=node_id, payer=payer, gross=gross, protocol_fee=fee, operator_cut=cut, holders=holders)
    return holders
