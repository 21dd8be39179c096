# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title EdgeShare basket factory
@custom:contract-name BasketFactory
@license MIT
@notice Creates baskets over the suite's node shares, from a Basket
        blueprint, and tells anyone (the share market, a wallet) whether an
        address is one of them. Anyone may create a basket.
@dev Every component must be a share token of the registry (checked against
     `registry.share_token(node_id)`), named once. The basket gets the suite's
     stablecoin, PortfolioClaimer and router from the registry.
@custom:security The factory holds nothing and has no owner; a basket's
     components and weights are fixed at creation.
"""

from .interfaces import IBasketFactory

implements: IBasketFactory


interface IRegistry:
    def share_token(node_id: uint256) -> address: view
    def stablecoin() -> address: view
    def router() -> address: view
    def CLAIMER() -> address: view


interface IShare:
    def NODE_ID() -> uint256: view


MAX_COMPONENTS: constant(uint256) = 32

REGISTRY: public(immutable(IRegistry))
BASKET_BLUEPRINT: public(immutable(address))

is_basket: public(HashMap[address, bool])
basket_count: public(uint256)
# Baskets by creation order, from 1.
basket_at: public(HashMap[uint256, address])


event BasketCreated:
    basket: indexed(address)
    creator: indexed(address)
    name: String[64]
    symbol: String[16]
    components: DynArray[address, MAX_COMPONENTS]
    weights: DynArray[uint256, MAX_COMPONENTS]


@deploy
def __init__(registry: address, basket_blueprint: address):
    """
    @notice Binds the factory to the suite's registry and the Basket blueprint.
    @param registry The suite's NodeRegistry.
    @param basket_blueprint An EIP-5202 blueprint of Basket.
    """
    assert registry.is_contract, "basket factory: registry has no code"
    assert basket_blueprint.is_contract, "basket factory: blueprint has no code"
    REGISTRY = IRegistry(registry)
    BASKET_BLUEPRINT = basket_blueprint


@external
def create_basket(
    name: String[64],
    symbol: String[16],
    components: DynArray[address, MAX_COMPONENTS],
    weights: DynArray[uint256, MAX_COMPONENTS],
) -> address:
    """
    @notice Creates a basket over `components` with `weights`.
    @param name The basket's token name.
    @param symbol The basket's token symbol.
    @param components Node share tokens of this suite, each named once.
    @param weights Share base units of each component per whole basket unit (> 0).
    @return The new basket's address.
    """
    assert len(name) > 0 and len(symbol) > 0, "basket factory: name or symbol is empty"
    assert len(components) > 0, "basket factory: no components"
    assert len(components) == len(weights), "basket factory: one weight per component"
    router: address = staticcall REGISTRY.router()
    assert router != empty(address), "basket factory: registry has no router"
    for i: uint256 in range(len(components), bound=MAX_COMPONENTS):
        component: address = components[i]
        assert component.is_contract, "basket factory: component is not a suite share"
        node_id: uint256 = staticcall IShare(component).NODE_ID()
        assert staticcall REGISTRY.share_token(node_id) == component, "basket factory: component is not a suite share"
        for j: uint256 in range(i, bound=MAX_COMPONENTS):
            assert components[j] != component, "basket factory: component named twice"
    basket: address = create_from_blueprint(
        BASKET_BLUEPRINT,
        name,
        symbol,
        components,
        weights,
        staticcall REGISTRY.stablecoin(),
        staticcall REGISTRY.CLAIMER(),
        router,
        code_offset=3,
    )
    count: uint256 = self.basket_count + 1
    self.basket_count = count
    self.basket_at[count] = basket
    self.is_basket[basket] = True
    log BasketCreated(
        basket=basket,
        creator=msg.sender,
        name=name,
        symbol=symbol,
        components=components,
        weights=weights,
    )
    return basket
