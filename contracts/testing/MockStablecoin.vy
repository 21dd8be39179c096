# pragma version 0.4.3
"""
@title Mock stablecoin
@custom:contract-name MockStablecoin
@license MIT
@notice A USDC-like ERC-20 for local chains and tests only: configurable
        decimals (6 like USDC by default in the tools), and an owner who mints.
        `edgeshare deploy` refuses to deploy it on any chain but a local one.
@custom:security Test code. Never use it as real money.
"""

from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed

implements: IERC20
implements: IERC20Detailed

owner: public(address)
name: public(String[32])
symbol: public(String[16])
decimals: public(uint8)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])


event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256


event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256


@deploy
def __init__(name: String[32], symbol: String[16], decimals: uint8):
    """
    @notice Deploys the token; the deployer may mint.
    @param name Token name.
    @param symbol Token symbol.
    @param decimals Token decimals.
    """
    self.owner = msg.sender
    self.name = name
    self.symbol = symbol
    self.decimals = decimals


@external
def mint(receiver: address, amount: uint256):
    """
    @notice Creates tokens. Owner only.
    @param receiver Who gets them.
    @param amount Base units.
    """
    assert msg.sender == self.owner, "stablecoin: not owner"
    self.totalSupply += amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=empty(address), receiver=receiver, value=amount)


@external
def transfer(receiver: address, amount: uint256) -> bool:
    """
    @notice Moves tokens.
    @param receiver Recipient.
    @param amount Base units.
    @return True.
    """
    self._transfer(msg.sender, receiver, amount)
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    """
    @notice Moves tokens under an allowance.
    @param sender Owner of the tokens.
    @param receiver Recipient.
    @param amount Base units.
    @return True.
    """
    allowed: uint256 = self.allowance[sender][msg.sender]
    if allowed != max_value(uint256):
        assert allowed >= amount, "stablecoin: insufficient allowance"
        self.allowance[sender][msg.sender] = allowed - amount
    self._transfer(sender, receiver, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    """
    @notice Sets an allowance.
    @param spender Who may spend.
    @param amount Base units.
    @return True.
    """
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@internal
def _transfer(sender: address, receiver: address, amount: uint256):
    assert receiver != empty(address), "stablecoin: transfer to the zero address"
    assert self.balanceOf[sender] >= amount, "stablecoin: insufficient balance"
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=sender, receiver=receiver, value=amount)
