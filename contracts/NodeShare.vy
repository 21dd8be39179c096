# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title EdgeShare node share
@custom:contract-name NodeShare
@license MIT
@notice The ERC-20 share token of one edge inference node. Holders receive the
        node's stablecoin revenue pro-rata to their balance and claim it when
        they like. Deployed from a blueprint by NodeRegistry, one per node; the
        whole supply is minted once, at deployment, to the node's operator.
@dev The ERC-20, permit and revenue accounting are the `share_accounting`
     module's (docs/SPEC.md, "Share accounting"), shared with Basket: revenue
     per share in an accumulator with per-holder corrections, vesting linearly
     over UNLOCK_PERIOD. No function loops over holders or distributions, so
     every cost is the same at any scale. `claim_by` lets the suite's
     PortfolioClaimer claim many tokens for one caller in one transaction.
     Shares cannot be sent to this token or to the router, which could never
     claim. A holder that cannot call `claim` (a pool, a vault, an escrow) gets
     a revenue receiver: set by the holder itself, or for a contract by the
     registrar until the holder sets one itself. Anyone may then `claim_for`
     that holder, paying the receiver. Setting a receiver first pays what the
     holder earned until then to the previous receiver (or the holder), so a
     receiver only ever gets revenue earned while it is set.
@custom:security Only the RevenueRouter fixed at deployment can add revenue,
     and it transfers the stablecoin before it notifies. All state is written
     before the stablecoin is transferred out, and every state-changing
     function is non-reentrant. Views are reentrant: they read only state that
     is already consistent whenever this token calls out.
"""

from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed

from .interfaces import INodeRegistry

implements: IERC20
implements: IERC20Detailed

from .modules import share_accounting

initializes: share_accounting

exports: (
    share_accounting.eip712.DOMAIN_SEPARATOR,
    share_accounting.eip712.eip712Domain,
    share_accounting.balanceOf,
    share_accounting.allowance,
    share_accounting.totalSupply,
    share_accounting.nonces,
    share_accounting.total_distributed,
    share_accounting.decimals,
    share_accounting.transfer,
    share_accounting.transferFrom,
    share_accounting.approve,
    share_accounting.permit,
    share_accounting.claim,
    share_accounting.claim_to,
    share_accounting.claim_by,
    share_accounting.claimable,
    share_accounting.unvested,
    share_accounting.vesting_ends_at,
    share_accounting.STABLECOIN,
    share_accounting.UNLOCK_PERIOD,
    share_accounting.CLAIMER,
)

# Revenue that enters is capped so that `_acc * balance + _correction` always
# fits an int256 with any supply up to 2**128 (see docs/SPEC.md, "Bounds").
MAX_TOTAL_REVENUE: constant(uint256) = 2**126

NODE_ID: public(immutable(uint256))
REGISTRY: public(immutable(INodeRegistry))
ROUTER: public(immutable(address))
_NAME: immutable(String[96])
_SYMBOL: immutable(String[32])

# Where `claim_for(holder)` pays a holder's revenue (0: nowhere, the holder claims itself).
revenue_receiver: public(reentrant(HashMap[address, address]))
# Holders that chose their receiver themselves; the registrar cannot change it then.
receiver_chosen_by_holder: public(reentrant(HashMap[address, bool]))


event RevenueDistributed:
    node_id: indexed(uint256)
    amount: uint256
    unvested: uint256
    vest_end: uint256


event RevenueReceiverSet:
    holder: indexed(address)
    receiver: indexed(address)
    caller: indexed(address)


@deploy
def __init__(
    name: String[96],
    symbol: String[32],
    node_id: uint256,
    holder: address,
    supply: uint256,
    router: address,
    stablecoin: IERC20,
    unlock_period: uint256,
    claimer: address,
):
    """
    @notice Creates the share token of one node and mints its whole supply.
            The deployer (the NodeRegistry) is the registry whose registrar may
            set revenue receivers for contract holders.
    @param name The token name, e.g. "EdgeShare Node 7".
    @param symbol The token symbol, e.g. "ESN7".
    @param node_id The node's id in the registry.
    @param holder Receives the whole supply (the node's operator).
    @param supply The number of shares, in 18-decimal base units; fixed forever.
    @param router The only address allowed to add revenue.
    @param stablecoin The token revenue is paid in.
    @param unlock_period Seconds over which each new revenue vests (0 = at once).
    @param claimer The suite's PortfolioClaimer, which may claim for its caller.
    """
    assert holder != empty(address), "share: holder is the zero address"
    assert supply > 0, "share: supply is zero"
    assert supply <= share_accounting.MAGNITUDE, "share: supply too large"
    assert router != empty(address), "share: router is the zero address"
    share_accounting.__init__(name, stablecoin, unlock_period, claimer, router)
    _NAME = name
    _SYMBOL = symbol
    NODE_ID = node_id
    REGISTRY = INodeRegistry(msg.sender)
    ROUTER = router
    share_accounting._mint(holder, supply)


@external
@view
@reentrant
def name() -> String[96]:
    """
    @notice The token name.
    @return The name, e.g. "EdgeShare Node 7".
    """
    return _NAME


@external
@view
@reentrant
def symbol() -> String[32]:
    """
    @notice The token symbol.
    @return The symbol, e.g. "ESN7".
    """
    return _SYMBOL


@external
def notify_revenue(amount: uint256):
    """
    @notice Adds revenue for the holders; the router has already transferred it.
    @dev What is still unvested is rolled, with `amount`, into a new vesting
         period of UNLOCK_PERIOD seconds from now.
    @param amount Stablecoin base units added.
    """
    assert msg.sender == ROUTER, "share: caller is not the router"
    unvested: uint256 = 0
    vest_end: uint256 = 0
    unvested, vest_end = share_accounting._add_revenue(amount, MAX_TOTAL_REVENUE)
    log RevenueDistributed(node_id=NODE_ID, amount=amount, unvested=unvested, vest_end=vest_end)


@external
def claim_for(holder: address) -> uint256:
    """
    @notice Pays `holder`'s claimable revenue to the revenue receiver set for
            it. Anyone may call it (a keeper, the receiver).
    @param holder A holder with a revenue receiver.
    @return The stablecoin base units paid (0 if there was nothing to claim).
    """
    receiver: address = self.revenue_receiver[holder]
    assert receiver != empty(address), "share: holder has no revenue receiver"
    return share_accounting._claim(holder, receiver)


@external
def set_revenue_receiver(holder: address, receiver: address):
    """
    @notice Sets where `claim_for(holder)` pays. The holder may set its own
            (then nobody else can change it); the registrar may set one for a
            contract holder that has not chosen (e.g. a pool that cannot call
            `claim`). What the holder earned until now is paid first, to the
            receiver set until now (or the holder if none), so a receiver gets
            exactly the revenue earned while it is set.
    @param holder The holder.
    @param receiver The receiver (the zero address removes it).
    """
    if msg.sender == holder:
        self.receiver_chosen_by_holder[holder] = True
    else:
        assert msg.sender == staticcall REGISTRY.registrar(), "share: not the holder or the registrar"
        assert not self.receiver_chosen_by_holder[holder], "share: the holder chose its receiver"
        assert holder.is_contract, "share: the registrar sets receivers only for contracts"
        if holder.codesize >= 3:
            # an EIP-7702 delegated account has code but is a person's account
            assert slice(holder.code, 0, 3) != b"\xef\x01\x00", "share: the registrar sets receivers only for contracts"
    assert receiver != self and receiver != ROUTER, "share: receiver cannot claim"
    # what was earned until now goes where it was due: the current receiver, or the holder
    current: address = self.revenue_receiver[holder]
    share_accounting._claim(holder, current if current != empty(address) else holder)
    self.revenue_receiver[holder] = receiver
    log RevenueReceiverSet(holder=holder, receiver=receiver, caller=msg.sender)


