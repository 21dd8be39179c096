# pragma version 0.4.3
"""
@title Token without return values
@custom:contract-name NoReturnToken
@license MIT
@notice Test-only ERC-20 whose transfer, transferFrom and approve return nothing,
        as USDT's do on Ethereum; the suite must still work with it.
@custom:security Test code.
"""

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
def transfer(receiver: address, amount: uint256):
    """
    @notice Moves tokens; reverts when the balance is short; returns nothing.
    @param receiver Recipient.
    @param amount Base units.
    """
    self._transfer(msg.sender, receiver, amount)


@external
def transferFrom(sender: address, receiver: address, amount: uint256):
    """
    @notice Moves tokens under an allowance; returns nothing.
    @param sender Owner.
    @param receiver Recipient.
    @param amount Base units.
    """
    self.allowance[sender][msg.sender] -= amount
    self._transfer(sender, receiver, amount)


@external
def approve(spender: address, amount: uint256):
    """
    @notice Sets an allowance; returns nothing.
    @param spender Who may spend.
    @param amount Base units.
    """
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)


@internal
def _transfer(sender: address, receiver: address, amount: uint256):
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=sender, receiver=receiver, value=amount)
