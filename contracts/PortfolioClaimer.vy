# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title EdgeShare portfolio claimer
@custom:contract-name PortfolioClaimer
@license MIT
@notice Claims, in one transaction, everything the caller can claim from any
        number (up to MAX_TOKENS) of node shares and baskets it names, to
        itself or to another address. One per suite; every share token and
        basket of the suite names it as its CLAIMER.
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
