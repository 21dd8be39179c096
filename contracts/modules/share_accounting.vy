# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title Revenue-bearing ERC-20: balances, permit and pro-rata revenue with linear unlock
@custom:contract-name share_accounting
@license MIT
@notice The one implementation of the suite's share accounting, used by
        NodeShare (a node's shares) and Basket (units over many nodes' shares).
        Holders receive the token's stablecoin revenue pro-rata to their balance
        and claim it when they like, at a cost that does not depend on how many
        holders or distributions there are.
@dev Accounting (docs/SPEC.md, "Share accounting"): `_acc` is the revenue
     released per token base unit, scaled by MAGNITUDE = 2**128. A holder has
     earned (_acc * balance + _correction) / MAGNITUDE; every balance change
     (transfer, mint, burn) moves `_acc * amount` into the corrections, so what
     anyone had earned is untouched, and a claim subtracts what it paid. New
     revenue vests linearly over UNLOCK_PERIOD seconds; what is still unvested
     when more arrives is rolled into the new period. While the supply is zero
     nothing is released: what vests meanwhile is released to the next holders.
     The parent contract caps the revenue it adds and the supply it mints so
     that `_acc * amount` and `_acc * balance + _correction` fit an int256
     (docs/SPEC.md, "Bounds").
@custom:security Every state-changing function is non-reentrant (one lock for
     the whole contract). All state is written before the stablecoin is sent.
     Views are reentrant: they read only state that is consistent whenever the
     token calls out. `claim_by` trusts exactly one contract, CLAIMER (the
     suite's PortfolioClaimer), which only ever claims for its own caller.
"""

from ethereum.ercs import IERC20

from . import eip712

initializes: eip712

# Revenue per token base unit is kept scaled by 2**128: with any supply up to
# 2**128 base units, a release of one stablecoin base unit still moves `_acc`.
MAGNITUDE: constant(uint256) = 2**128
_PERMIT_TYPE_HASH: constant(bytes32) = keccak256(
    "Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"
)

STABLECOIN: public(immutable(IERC20))
UNLOCK_PERIOD: public(immutable(uint256))
# The suite's PortfolioClaimer: may claim a holder's revenue for that holder.
CLAIMER: public(immutable(address))
# An address that can never claim, to which tokens cannot be sent (the router
# for node shares; this token itself is always refused).
_BLOCKED: immutable(address)

balanceOf: public(reentrant(HashMap[address, uint256]))
allowance: public(reentrant(HashMap[address, HashMap[address, uint256]]))
totalSupply: public(reentrant(uint256))
nonces: public(reentrant(HashMap[address, uint256]))

# Revenue per base unit released so far, times MAGNITUDE.
_acc: uint256
# Remainder of the last division of released revenue by the supply, times
# MAGNITUDE; carried into the next release so that nothing is lost to rounding.
_acc_carry: uint256
# Per-holder correction, in MAGNITUDE units (see @dev above).
_correction: HashMap[address, int256]
# Revenue received but not yet released to holders, and its vesting window.
_unvested: uint256
_vest_last: uint256
_vest_end: uint256

# Revenue ever received. What was claimed is the sum of the RevenueClaimed events
# (not kept on chain: a counter would cost every claim a storage write).
total_distributed: public(reentrant(uint256))


event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256


event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256


event RevenueClaimed:
    holder: indexed(address)
    receiver: indexed(address)
    amount: uint256


@deploy
def __init__(
    name: String[96], stablecoin: IERC20, unlock_period: uint256, claimer: address, blocked: address
):
    """
    @notice Fixes the revenue token, the unlock period and the trusted claimer.
    @param name The token name, also its EIP-712 domain name (for permit).
    @param stablecoin The token revenue is paid in.
    @param unlock_period Seconds over which each new revenue vests (0 = at once).
    @param claimer The suite's PortfolioClaimer (the zero address: none).
    @param blocked An address tokens may never be sent to (besides this token).
    """
    eip712.__init__(name, "1")
    STABLECOIN = stablecoin
    UNLOCK_PERIOD = unlock_period
    CLAIMER = claimer
    _BLOCKED = blocked


@external
@view
@reentrant
def decimals() -> uint8:
    """
    @notice Tokens have 18 decimals.
    @return 18.
    """
    return 18


@external
def transfer(receiver: address, amount: uint256) -> bool:
    """
    @notice Moves tokens; revenue already earned stays with the sender.
    @param receiver The new holder.
    @param amount Base units.
    @return True.
    """
    self._transfer(msg.sender, receiver, amount)
    return True


@external
def transferFrom(owner: address, receiver: address, amount: uint256) -> bool:
    """
    @notice Moves tokens under an allowance; an allowance of 2**256 - 1 is never reduced.
    @param owner The holder whose tokens move.
    @param receiver The new holder.
    @param amount Base units.
    @return True.
    """
    allowed: uint256 = self.allowance[owner][msg.sender]
    if allowed != max_value(uint256):
        assert allowed >= amount, "share: insufficient allowance"
        # cannot underflow: checked just above
        self._approve(owner, msg.sender, unsafe_sub(allowed, amount))
    self._transfer(owner, receiver, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    """
    @notice Lets `spender` move up to `amount` of the caller's tokens.
    @param spender The address allowed to spend.
    @param amount The allowance, in base units.
    @return True.
    """
    self._approve(msg.sender, spender, amount)
    return True


@external
def permit(
    owner: address,
    spender: address,
    amount: uint256,
    deadline: uint256,
    v: uint8,
    r: bytes32,
    s: bytes32,
):
    """
    @notice EIP-2612: sets an allowance from the owner's signature, so a
            holder can approve without sending a transaction.
    @param owner The holder who signed.
    @param spender The address allowed to spend.
    @param amount The allowance, in base units.
    @param deadline Unix time after which the signature is void.
    @param v Signature recovery id (27 or 28).
    @param r Signature r.
    @param s Signature s (low half of the curve order).
    """
    assert block.timestamp <= deadline, "share: permit expired"
    nonce: uint256 = self.nonces[owner]
    digest: bytes32 = eip712._hash_typed_data(
        keccak256(abi_encode(_PERMIT_TYPE_HASH, owner, spender, amount, nonce, deadline))
    )
    signer: address = eip712._recover(
        digest, convert(v, uint256), convert(r, uint256), convert(s, uint256)
    )
    assert signer == owner, "share: permit signer is not the owner"
    self.nonces[owner] = nonce + 1
    self._approve(owner, spender, amount)


@external
def claim() -> uint256:
    """
    @notice Pays the caller all the revenue they can claim.
    @return The stablecoin base units paid (0 if there was nothing to claim).
    """
    return self._claim(msg.sender, msg.sender)


@external
def claim_to(receiver: address) -> uint256:
    """
    @notice Pays the caller's claimable revenue to another address, e.g. when
            the stablecoin refuses transfers to the holder.
    @param receiver Where the stablecoin goes.
    @return The stablecoin base units paid (0 if there was nothing to claim).
    """
    return self._claim(msg.sender, receiver)


@external
def claim_by(holder: address, receiver: address) -> uint256:
    """
    @notice The portfolio claim: pays `holder`'s claimable revenue to
            `receiver`. Only CLAIMER may call it, and it passes its own
            caller as `holder`, so a holder's revenue moves only at its word.
    @param holder The holder that called the PortfolioClaimer.
    @param receiver Where the holder asked the revenue to go.
    @return The stablecoin base units paid (0 if there was nothing to claim).
    """
    assert msg.sender == CLAIMER, "share: caller is not the claimer"
    return self._claim(holder, receiver)


@external
@view
@reentrant
def claimable(holder: address) -> uint256:
    """
    @notice Revenue `holder` can claim now, including what has vested since
            the last transaction touched this token.
    @param holder The holder.
    @return Stablecoin base units, rounded down.
    """
    acc: uint256 = self._acc
    supply: uint256 = self.totalSupply
    released: uint256 = self._vested_now()
    if released != 0 and supply != 0:
        acc += (released * MAGNITUDE + self._acc_carry) // supply
    return self._earned(holder, acc)


@external
@view
@reentrant
def unvested() -> uint256:
    """
    @notice Revenue received that has not been released to holders yet.
    @return Stablecoin base units.
    """
    if self.totalSupply == 0:
        return self._unvested
    return self._unvested - self._vested_now()


@external
@view
@reentrant
def vesting_ends_at() -> uint256:
    """
    @notice When the revenue now vesting is fully released.
    @return A unix time (in the past when nothing is vesting).
    """
    return self._vest_end


@internal
def _add_revenue(amount: uint256, max_total: uint256) -> (uint256, uint256):
    """
    @dev Adds `amount` of stablecoin, already received, to what vests for the
         holders; what is still unvested is rolled with it into a new period
         of UNLOCK_PERIOD seconds from now. Returns (unvested, vest_end).
    """
    assert amount > 0, "share: amount is zero"
    total: uint256 = self.total_distributed + amount
    assert total <= max_total, "share: revenue exceeds the supported total"
    self.total_distributed = total
    self._checkpoint()
    unvested: uint256 = self._unvested + amount
    vest_end: uint256 = block.timestamp
    if UNLOCK_PERIOD == 0 and self.totalSupply != 0:
        self._release(unvested)
        unvested = 0
    else:
        vest_end = block.timestamp + UNLOCK_PERIOD
        self._vest_last = block.timestamp
        self._vest_end = vest_end
    self._unvested = unvested
    return unvested, vest_end


@internal
def _claim(holder: address, receiver: address) -> uint256:
    """
    @dev Pays `holder`'s claimable revenue to `receiver`; the caller has
         checked that `holder` asked for it.
    """
    assert receiver != empty(address), "share: receiver is the zero address"
    self._checkpoint()
    amount: uint256 = self._earned(holder, self._acc)
    if amount == 0:
        return 0
    # amount * MAGNITUDE <= _acc * balance + correction < 2**255: fits int256
    self._correction[holder] -= convert(amount * MAGNITUDE, int256)
    assert extcall STABLECOIN.transfer(receiver, amount, default_return_value=True), "share: stablecoin transfer failed"
    log RevenueClaimed(holder=holder, receiver=receiver, amount=amount)
    return amount


@internal
def _mint(receiver: address, amount: uint256):
    """
    @dev Creates `amount` tokens for `receiver`, which earn from now on; the
         parent has checked its supply bound.
    """
    assert receiver != empty(address), "share: mint to the zero address"
    self._checkpoint()
    self.totalSupply += amount
    self.balanceOf[receiver] += amount
    # acc * amount fits int256 under the parent's bounds (docs/SPEC.md, "Bounds")
    self._correction[receiver] -= convert(self._acc * amount, int256)
    log Transfer(sender=empty(address), receiver=receiver, value=amount)


@internal
def _burn(owner: address, amount: uint256):
    """
    @dev Destroys `amount` of `owner`'s tokens; what they earned stays claimable.
    """
    balance: uint256 = self.balanceOf[owner]
    assert balance >= amount, "share: burn amount exceeds balance"
    self._checkpoint()
    # cannot underflow: checked just above, and the supply is the sum of balances
    self.balanceOf[owner] = unsafe_sub(balance, amount)
    self.totalSupply = unsafe_sub(self.totalSupply, amount)
    self._correction[owner] += convert(self._acc * amount, int256)
    log Transfer(sender=owner, receiver=empty(address), value=amount)


@internal
@view
def _earned(holder: address, acc: uint256) -> uint256:
    """
    @dev What `holder` has earned and not claimed, at accumulator `acc`.
    """
    # acc * balance <= total released * MAGNITUDE < 2**255: fits int256
    magnified: int256 = convert(acc * self.balanceOf[holder], int256) + self._correction[holder]
    # dev: never negative; rounds down, the remainder stays in the correction
    return convert(magnified, uint256) // MAGNITUDE


@internal
@view
def _vested_now() -> uint256:
    """
    @dev What of the unvested revenue has vested since the last checkpoint.
    """
    unvested: uint256 = self._unvested
    if unvested == 0:
        return 0
    last: uint256 = self._vest_last
    end: uint256 = self._vest_end
    if block.timestamp >= end:
        return unvested
    if block.timestamp <= last:
        return 0
    # rounds down: the remainder stays unvested and is released later
    return unvested * (block.timestamp - last) // (end - last)


@internal
def _checkpoint():
    """
    @dev Releases what has vested to the current holders; with no supply,
         nothing (it is released to the next holders).
    """
    released: uint256 = self._vested_now()
    if released == 0 or self.totalSupply == 0:
        return
    self._unvested -= released
    self._vest_last = block.timestamp
    self._release(released)


@internal
def _release(amount: uint256):
    """
    @dev Adds `amount` to the accumulator; assumes a non-zero supply.
    """
    magnified: uint256 = amount * MAGNITUDE + self._acc_carry
    supply: uint256 = self.totalSupply
    # rounds down; the remainder is carried into the next release, nothing is lost
    self._acc += magnified // supply
    self._acc_carry = magnified % supply


@internal
def _transfer(owner: address, receiver: address, amount: uint256):
    """
    @dev Moves tokens and the revenue they will earn; what they earned stays.
    """
    assert receiver != empty(address), "share: transfer to the zero address"
    # neither could ever claim what the tokens earn there
    assert receiver != self, "share: transfer to the share token"
    assert receiver != _BLOCKED, "share: transfer to the router"
    balance: uint256 = self.balanceOf[owner]
    assert balance >= amount, "share: transfer amount exceeds balance"
    self._checkpoint()
    # cannot underflow: checked just above
    self.balanceOf[owner] = unsafe_sub(balance, amount)
    self.balanceOf[receiver] += amount
    # acc * amount <= total released * MAGNITUDE < 2**255: fits int256
    moved: int256 = convert(self._acc * amount, int256)
    self._correction[owner] += moved
    self._correction[receiver] -= moved
    log Transfer(sender=owner, receiver=receiver, value=amount)


@internal
def _approve(owner: address, spender: address, amount: uint256):
    """
    @dev Sets an allowance.
    """
    assert spender != empty(address), "share: approve to the zero address"
    self.allowance[owner][spender] = amount
    log Approval(owner=owner, spender=spender, value=amount)
