# pragma version 0.4.3
"""
@title Quirky token
@custom:contract-name QuirkyToken
@license MIT
@notice Test-only ERC-20 whose owner can switch on the behaviours of real tokens
        that break careless integrations: answering `false` instead of reverting,
        a blocklist that refuses transfers to or from an address (as USDC and USDT
        keep), and a callback into any contract in the middle of a transfer (as
        ERC-777 hooks do), used to try reentering the suite.
@custom:security Test code.
"""

totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])

owner: public(address)
returns_false: public(bool)
blocked: public(HashMap[address, bool])

hook_target: public(address)
hook_data: public(Bytes[1024])
hook_armed: public(bool)
hook_calls: public(uint256)
hook_succeeded: public(bool)


event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256


event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256


event HookCalled:
    target: indexed(address)
    success: bool


@deploy
def __init__():
    self.owner = msg.sender


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
def set_returns_false(enabled: bool):
    """
    @notice While enabled, transfer and transferFrom move nothing and return false.
    @param enabled The switch.
    """
    assert msg.sender == self.owner, "quirky: not owner"
    self.returns_false = enabled


@external
def set_blocked(account: address, is_blocked: bool):
    """
    @notice Blocks (or unblocks) every transfer to or from `account`.
    @param account The address.
    @param is_blocked The switch.
    """
    assert msg.sender == self.owner, "quirky: not owner"
    self.blocked[account] = is_blocked


@external
def arm_hook(target: address, data: Bytes[1024]):
    """
    @notice The next transfer calls `target` with `data` before it moves anything,
            once; whether that call succeeded is kept in `hook_succeeded`.
    @param target The contract to call.
    @param data The calldata.
    """
    assert msg.sender == self.owner, "quirky: not owner"
    self.hook_target = target
    self.hook_data = data
    self.hook_armed = True


@external
def execute(target: address, data: Bytes[1024]) -> Bytes[1024]:
    """
    @notice Calls `target` as this token (so the token itself can hold shares and
            claim, and be the caller that a hook reenters as).
    @param target The contract to call.
    @param data The calldata.
    @return What the call returned.
    """
    assert msg.sender == self.owner, "quirky: not owner"
    return raw_call(target, data, max_outsize=1024)


@external
def transfer(receiver: address, amount: uint256) -> bool:
    """
    @notice Moves tokens, unless a quirk says otherwise.
    @param receiver Recipient.
    @param amount Base units.
    @return False while `returns_false` is on, else true.
    """
    return self._transfer(msg.sender, receiver, amount)


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    """
    @notice Moves tokens under an allowance, unless a quirk says otherwise.
    @param sender Owner.
    @param receiver Recipient.
    @param amount Base units.
    @return False while `returns_false` is on, else true.
    """
    if self.returns_false:
        return False
    self.allowance[sender][msg.sender] -= amount
    return self._transfer(sender, receiver, amount)


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
def _transfer(sender: address, receiver: address, amount: uint256) -> bool:
    if self.returns_false:
        return False
    assert not self.blocked[sender], "quirky: sender blocked"
    assert not self.blocked[receiver], "quirky: receiver blocked"
    if self.hook_armed:
        self.hook_armed = False
        self.hook_calls += 1
        success: bool = raw_call(self.hook_target, self.hook_data, revert_on_failure=False)
        self.hook_succeeded = success
        log HookCalled(target=self.hook_target, success=success)
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=sender, receiver=receiver, value=amount)
    return True
