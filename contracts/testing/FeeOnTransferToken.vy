# pragma version 0.4.3
"""
@title Fee-on-transfer token
@custom:contract-name FeeOnTransferToken
@license MIT
@notice Test-only ERC-20 that burns 1% of every transfer, as some real tokens
        do; the router must refuse it, since it would book money it never got.
@custom:security Test code.
"""

from ethereum.ercs import IERC20

implements: IERC20

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


@external
def mint(receiver: address, amount: uint256):
    """
    @notice Creates tokens for anyone (test token).
    @param receiver Who gets them.
    @param amount Base units.
    """
    self.totalSupply += amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=empty(address), receiver=receiver, value=amount)


@external
def transfer(receiver: address, amount: uint256) -> bool:
    """
    @notice Moves tokens, burning 1%.
    @param receiver Recipient.
    @param amount Base units debited.
    @return True.
    """
    self._transfer(msg.sender, receiver, amount)
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    """
    @notice Moves tokens under an allowance, burning 1%.
    @param sender Owner.
    @param receiver Recipient.
    @param amount Base units debited.
    @return True.
    """
    self.allowance[sender][msg.sender] -= amount
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
    fee: uint256 = amount // 100
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount - fee
    self.totalSupply -= fee
    log Transfer(sender=sender, receiver=receiver, value=amount - fee)
