# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title EdgeShare portfolio claimer
@custom:contract-name PortfolioClaimer
@license MIT
@notice Claims, in one transaction, everything the caller can claim from any
        number (up to MAX_TOKENS) of node shares and baskets it names, to
        itself or to another address. One per suite; every share token and
        basket of the suite names it as its CLAIMER. Its view `positions`
        reads a holder's position in many node shares in one call (what a
        portfolio page shows).
@dev For each token it calls `claim_by(msg.sender, receiver)`: the tokens pay
     the caller's own revenue, and only this contract may call that function.
     It holds nothing and has no owner. Naming a token twice pays it once (the
     second call finds nothing); a token outside the suite refuses or pays
     nothing of the suite's.
@custom:security This contract never names anyone but its caller as the
     holder, so no caller can move another holder's revenue. It is
     non-reentrant, so a hostile token in the list cannot call back into it.
"""

interface IClaimable:
    def claim_by(holder: address, receiver: address) -> uint256: nonpayable

interface IShareView:
    def balanceOf(holder: address) -> uint256: view
    def totalSupply() -> uint256: view
    def claimable(holder: address) -> uint256: view
    def unvested() -> uint256: view
    def vesting_ends_at() -> uint256: view
    def total_distributed() -> uint256: view


struct Position:
    balance: uint256
    supply: uint256
    claimable: uint256
    unvested: uint256
    vesting_ends_at: uint256
    total_distributed: uint256

# Tokens per call: enough for a large portfolio, and far under the block gas
# limit (docs/GAS.md, "Portfolio claim").
MAX_TOKENS: constant(uint256) = 64


@external
def claim_many(tokens: DynArray[address, MAX_TOKENS], receiver: address) -> uint256:
    """
    @notice Claims the caller's revenue from every token named, paying `receiver`.
    @param tokens Node share tokens and baskets of the suite.
    @param receiver Where the stablecoin goes (the caller itself, or another address).
    @return The total paid, in stablecoin base units, as the tokens report it.
    """
    assert receiver != empty(address), "claimer: receiver is the zero address"
    total: uint256 = 0
    for token: address in tokens:
        total += extcall IClaimable(token).claim_by(msg.sender, receiver)
    return total


@view
@external
@reentrant
def positions(
    holder: address, shares: DynArray[address, MAX_TOKENS]
) -> DynArray[Position, MAX_TOKENS]:
    """
    @notice `holder`'s position in each node share token named, in order:
            its balance, the supply, what it can claim now, the token's
            revenue still vesting and when that vesting ends, and all the
            revenue the token has distributed. Each value is exactly what the
            token's own view function returns in the same block.
    @dev A read for off-chain callers (one `eth_call` instead of six per
         token); it changes nothing, and like the views it wraps it takes no
         lock. A token that lacks one of these views makes the whole call
         revert.
    @param holder The holder.
    @param shares Node share tokens (NodeShare).
    @return One Position per token.
    """
    out: DynArray[Position, MAX_TOKENS] = []
    for token: address in shares:
        share: IShareView = IShareView(token)
        out.append(Position(
            balance=staticcall share.balanceOf(holder),
            supply=staticcall share.totalSupply(),
            claimable=staticcall share.claimable(holder),
            unvested=staticcall share.unvested(),
            vesting_ends_at=staticcall share.vesting_ends_at(),
            total_distributed=staticcall share.total_distributed(),
        ))
    return out
