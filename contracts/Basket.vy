# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title EdgeShare basket
@custom:contract-name Basket
@license MIT
@notice An ERC-20 (with permit) over a fixed set of node shares with fixed
        weights: one whole basket unit (10**18 base units) stands for `weight`
        share base units of each component. `mint` takes the shares in
        proportion, `redeem` gives them back, and `harvest` (anyone) claims the
        revenue of every share the basket holds and passes it to the basket's
        holders, who claim it like node holders, pro-rata.
        Deployed from a blueprint by the suite's BasketFactory.
@dev The revenue accounting is the `share_accounting` module's, the same code
     as NodeShare's (docs/SPEC.md, "Share accounting", "Baskets"), with an
     unlock period of 0: a component pays only revenue that has already vested
     to the basket through the node's own linear unlock, so harvested revenue
     is released at once to the units that exist. `mint` and `redeem` harvest
     first, so what the shares earned before a change of supply goes to the
     units that existed while it was earned, and a newcomer earns from its mint
     on, exactly as if it held the shares itself. (A second unlock would hand a
     newcomer part of what was earned before it came.) At creation the
     basket chooses "no receiver" on every component, so nobody (not the
     registrar) can redirect the revenue of the shares it holds: only `harvest`
     claims it. Bounds (docs/SPEC.md, "Bounds"): a non-zero supply is between
     MIN_SUPPLY and MAX_SUPPLY base units and revenue ever harvested is below
     MAX_TOTAL_REVENUE, so the accumulator arithmetic fits an int256.
@custom:security Components are the suite's share tokens, checked by the
     factory; the basket trusts them to pay what they report (it counts the
     stablecoin it actually received). Shares are rounded in the basket's
     favour (mint rounds up, redeem rounds down), so the basket always holds at
     least what every unit can redeem.
"""

from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed

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


interface IComponent:
    def claim() -> uint256: nonpayable
    def set_revenue_receiver(holder: address, receiver: address): nonpayable
    def transfer(receiver: address, amount: uint256) -> bool: nonpayable
    def transferFrom(owner: address, receiver: address, amount: uint256) -> bool: nonpayable
    def balanceOf(holder: address) -> uint256: view


MAX_COMPONENTS: constant(uint256) = 32
UNIT: constant(uint256) = 10**18
# Bounds that keep `_acc * amount` below 2**255 (docs/SPEC.md, "Bounds"):
# _acc <= MAX_TOTAL_REVENUE * 2**128 / MIN_SUPPLY < 2**169, times MAX_SUPPLY < 2**255.
MAX_TOTAL_REVENUE: constant(uint256) = 2**80
MIN_SUPPLY: constant(uint256) = 10**12
MAX_SUPPLY: constant(uint256) = 2**86
MAX_WEIGHT: constant(uint256) = 2**128

FACTORY: public(immutable(address))
_NAME: immutable(String[64])
_SYMBOL: immutable(String[16])

# The component share tokens and their weights (share base units per whole unit).
_components: DynArray[IComponent, MAX_COMPONENTS]
_weights: DynArray[uint256, MAX_COMPONENTS]


event Minted:
    holder: indexed(address)
    units: uint256


event Redeemed:
    holder: indexed(address)
    units: uint256


event Harvested:
    caller: indexed(address)
    amount: uint256
    unvested: uint256
    vest_end: uint256


@deploy
def __init__(
    name: String[64],
    symbol: String[16],
    components: DynArray[address, MAX_COMPONENTS],
    weights: DynArray[uint256, MAX_COMPONENTS],
    stablecoin: IERC20,
    claimer: address,
    router: address,
):
    """
    @notice Creates a basket; the factory has checked that every component is
            a share token of the suite, once.
    @param name The token name, e.g. "EdgeShare Basket Asia".
    @param symbol The token symbol, e.g. "ESB1".
    @param components The node share tokens, 1 to MAX_COMPONENTS of them.
    @param weights Share base units of each component per whole basket unit.
    @param stablecoin The token revenue is paid in (the suite's).
    @param claimer The suite's PortfolioClaimer.
    @param router The suite's RevenueRouter (basket units cannot be sent to it).
    """
    assert len(components) > 0, "basket: no components"
    assert len(components) == len(weights), "basket: one weight per component"
    # no second unlock: what the components pay has already vested (see @dev)
    share_accounting.__init__(name, stablecoin, 0, claimer, router)
    FACTORY = msg.sender
    _NAME = name
    _SYMBOL = symbol
    for i: uint256 in range(len(components), bound=MAX_COMPONENTS):
        assert weights[i] > 0 and weights[i] <= MAX_WEIGHT, "basket: weight out of range"
        component: IComponent = IComponent(components[i])
        self._components.append(component)
        self._weights.append(weights[i])
        # "no receiver", chosen by the holder: nobody can redirect what these shares earn
        extcall component.set_revenue_receiver(self, empty(address))


@external
@view
@reentrant
def name() -> String[64]:
    """
    @notice The token name.
    @return The name given at creation.
    """
    return _NAME


@external
@view
@reentrant
def symbol() -> String[16]:
    """
    @notice The token symbol.
    @return The symbol given at creation.
    """
    return _SYMBOL


@external
@view
@reentrant
def components() -> (DynArray[address, MAX_COMPONENTS], DynArray[uint256, MAX_COMPONENTS]):
    """
    @notice The component share tokens and their weights.
    @return The tokens, and share base units of each per whole basket unit.
    """
    tokens: DynArray[address, MAX_COMPONENTS] = []
    for component: IComponent in self._components:
        tokens.append(component.address)
    return tokens, self._weights


@external
@view
@reentrant
def shares_for(units: uint256, minting: bool) -> DynArray[uint256, MAX_COMPONENTS]:
    """
    @notice What `mint(units)` takes (`minting`) or `redeem(units)` gives, of each component.
    @param units Basket base units.
    @param minting True for a mint (rounded up), False for a redeem (rounded down).
    @return Share base units of each component, in component order.
    """
    amounts: DynArray[uint256, MAX_COMPONENTS] = []
    for weight: uint256 in self._weights:
        amounts.append(self._share_amount(units, weight, minting))
    return amounts


@external
def mint(units: uint256) -> DynArray[uint256, MAX_COMPONENTS]:
    """
    @notice Takes each component's shares in proportion (the caller approved
            this basket on each) and mints `units` to the caller. Harvests first.
    @param units Basket base units to mint.
    @return Share base units taken of each component (rounded up).
    """
    assert units > 0, "basket: units is zero"
    supply: uint256 = share_accounting.totalSupply + units
    assert supply >= MIN_SUPPLY, "basket: supply below the minimum"
    assert supply <= MAX_SUPPLY, "basket: supply above the maximum"
    self._harvest()
    share_accounting._mint(msg.sender, units)
    amounts: DynArray[uint256, MAX_COMPONENTS] = []
    for i: uint256 in range(len(self._components), bound=MAX_COMPONENTS):
        component: IComponent = self._components[i]
        amount: uint256 = self._share_amount(units, self._weights[i], True)
        before: uint256 = staticcall component.balanceOf(self)
        assert extcall component.transferFrom(msg.sender, self, amount), "basket: share transfer failed"
        assert staticcall component.balanceOf(self) == before + amount, "basket: share transfer short"
        amounts.append(amount)
    log Minted(holder=msg.sender, units=units)
    return amounts


@external
def redeem(units: uint256) -> DynArray[uint256, MAX_COMPONENTS]:
    """
    @notice Burns `units` of the caller's basket units and gives back each
            component's shares; revenue earned so far stays claimable. Harvests first.
    @param units Basket base units to redeem.
    @return Share base units given of each component (rounded down).
    """
    assert units > 0, "basket: units is zero"
    assert units <= share_accounting.balanceOf[msg.sender], "basket: redeem exceeds your units"
    # cannot underflow: a balance is part of the supply
    supply: uint256 = unsafe_sub(share_accounting.totalSupply, units)
    assert supply == 0 or supply >= MIN_SUPPLY, "basket: supply below the minimum"
    self._harvest()
    share_accounting._burn(msg.sender, units)
    amounts: DynArray[uint256, MAX_COMPONENTS] = []
    for i: uint256 in range(len(self._components), bound=MAX_COMPONENTS):
        amount: uint256 = self._share_amount(units, self._weights[i], False)
        if amount != 0:
            assert extcall self._components[i].transfer(msg.sender, amount), "basket: share transfer failed"
        amounts.append(amount)
    log Redeemed(holder=msg.sender, units=units)
    return amounts


@external
def harvest() -> uint256:
    """
    @notice Claims what every component share owes the basket and adds it to
            the revenue of the basket's holders, released at once.
            Anyone may call it.
    @return Stablecoin base units harvested.
    """
    return self._harvest()


@internal
def _harvest() -> uint256:
    """
    @dev Claims every component and books the stablecoin actually received.
    """
    coin: IERC20 = share_accounting.STABLECOIN
    before: uint256 = staticcall coin.balanceOf(self)
    for component: IComponent in self._components:
        extcall component.claim()
    received: uint256 = staticcall coin.balanceOf(self) - before
    if received == 0:
        return 0
    unvested: uint256 = 0
    vest_end: uint256 = 0
    unvested, vest_end = share_accounting._add_revenue(received, MAX_TOTAL_REVENUE)
    log Harvested(caller=msg.sender, amount=received, unvested=unvested, vest_end=vest_end)
    return received


@internal
@pure
def _share_amount(units: uint256, weight: uint256, round_up: bool) -> uint256:
    """
    @dev units * weight / UNIT; up for a mint, down for a redeem (the basket's favour).
    """
    product: uint256 = units * weight
    if round_up:
        return (product + UNIT - 1) // UNIT
    return product // UNIT
