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
@dev Accounting (docs/SPEC.md, "Share accounting"): `_acc` is the revenue
     released per share, scaled by MAGNITUDE = 2**128. A holder has earned
     (_acc * balance + _correction) / MAGNITUDE; every balance change moves
     `_acc * amount` between the two parties' corrections, so what either party
     had earned is untouched, and a claim subtracts what it paid. New revenue
     vests linearly over UNLOCK_PERIOD seconds; what is still unvested when more
     arrives is rolled into the new period. No function loops over holders or
     distributions, so every cost is the same at any scale.
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

from .modules import eip712

initializes: eip712

exports: (eip712.DOMAIN_SEPARATOR, eip712.eip712Domain)

# Revenue per share is kept scaled by 2**128: with any supply up to 2**128 share
# base units, a release of one stablecoin base unit still moves the accumulator.
MAGNITUDE: constant(uint256) = 2**128
# Money that enters is capped so that `_acc * balance + _correction` always fits
# an int256 (see docs/SPEC.md, "Bounds").
MAX_TOTAL_REVENUE: constant(uint256) = 2**126
_PERMIT_TYPE_HASH: constant(bytes32) = keccak256(
    "Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"
)

NODE_ID: public(immutable(uint256))
REGISTRY: public(immutable(INodeRegistry))
ROUTER: public(immutable(address))
STABLECOIN: public(immutable(IERC20))
UNLOCK_PERIOD: public(immutable(uint256))
_NAME: immutable(String[96])
_SYMBOL: immutable(String[32])

balanceOf: public(reentrant(HashMap[address, uint256]))
allowance: public(reentrant(HashMap[address, HashMap[address, uint256]]))
totalSupply: public(reentrant(uint256))
nonces: public(reentrant(HashMap[address, uint256]))
# Where `claim_for(holder)` pays a holder's revenue (0: nowhere, the holder claims itself).
revenue_receiver: public(reentrant(HashMap[address, address]))
# Holders that chose their receiver themselves; the registrar cannot change it then.
receiver_chosen_by_holder: public(reentrant(HashMap[address, bool]))

# Revenue per share released so far, times MAGNITUDE.
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


event RevenueDistributed:
    node_id: indexed(uint256)
    amount: uint256
    unvested: uint256
    vest_end: uint256


event RevenueClaimed:
    holder: indexed(address)
    receiver: indexed(address)
    amount: uint256


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
    """
    assert holder != empty(address), "share: holder is the zero address"
    assert supply > 0, "share: supply is zero"
    assert supply <= MAGNITUDE, "share: supply too large"
    assert router != empty(address), "share: router is the zero address"
    eip712.__init__(name, "1")
    _NAME = name
    _SYMBOL = symbol
    NODE_ID = node_id
    REGISTRY = INodeRegistry(msg.sender)
    ROUTER = router
    STABLECOIN = stablecoin
    UNLOCK_PERIOD = unlock_period
    self.totalSupply = supply
    self.balanceOf[holder] = supply
    log Transfer(sender=empty(address), receiver=holder, value=supply)


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
@view
@reentrant
def decimals() -> uint8:
    """
    @notice Shares have 18 decimals.
    @return 18.
    """
    return 18


@external
def transfer(receiver: address, amount: uint256) -> bool:
    """
    @notice Moves shares; revenue already earned stays with the sender.
    @param receiver The new holder.
    @param amount Shares, in base units.
    @return True.
    """
    self._transfer(msg.sender, receiver, amount)
    return True


@external
def transferFrom(owner: address, receiver: address, amount: uint256) -> bool:
    """
    @notice Moves shares under an allowance; an allowance of 2**256 - 1 is never reduced.
    @param owner The holder whose shares move.
    @param receiver The new holder.
    @param amount Shares, in base units.
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
    @notice Lets `spender` move up to `amount` of the caller's shares.
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
    @notice EIP-2612: sets an allowance from the owner's signature, so an
            investor can approve without sending a transaction.
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
def notify_revenue(amount: uint256):
    """
    @notice Adds revenue for the holders; the router has already transferred it.
    @dev What is still unvested is rolled, with `amount`, into a new vesting
         period of UNLOCK_PERIOD seconds from now.
    @param amount Stablecoin base units added.
    """
    assert msg.sender == ROUTER, "share: caller is not the router"
    assert amount > 0, "share: amount is zero"
    total: uint256 = self.total_distributed + amount
    assert total <= MAX_TOTAL_REVENUE, "share: revenue exceeds the supported total"
    self.total_distributed = total
    self._checkpoint()
    unvested: uint256 = self._unvested + amount
    vest_end: uint256 = block.timestamp
    if UNLOCK_PERIOD == 0:
        self._release(unvested)
        unvested = 0
    else:
        vest_end = block.timestamp + UNLOCK_PERIOD
        self._vest_last = block.timestamp
        self._vest_end = vest_end
    self._unvested = unvested
    log RevenueDistributed(node_id=NODE_ID, amount=amount, unvested=unvested, vest_end=vest_end)


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
def claim_for(holder: address) -> uint256:
    """
    @notice Pays `holder`'s claimable revenue to the revenue receiver set for
            it. Anyone may call it (a keeper, the receiver).
    @param holder A holder with a revenue receiver.
    @return The stablecoin base units paid (0 if there was nothing to claim).
    """
    receiver: address = self.revenue_receiver[holder]
    assert receiver != empty(address), "share: holder has no revenue receiver"
    return self._claim(holder, receiver)


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
    self._claim(holder, current if current != empty(address) else holder)
    self.revenue_receiver[holder] = receiver
    log RevenueReceiverSet(holder=holder, receiver=receiver, caller=msg.sender)


@external
@view
@reentrant
def claimable(holder: address) -> uint256:
    """
    @notice Revenue `holder` can claim now, including what has vested since
            the last transaction touched this token.
    @param holder The share holder.
    @return Stablecoin base units, rounded down.
    """
    acc: uint256 = self._acc
    released: uint256 = self._vested_now()
    if released != 0:
        acc += (released * MAGNITUDE + self._acc_carry) // self.totalSupply
    return self._earned(holder, acc)


@external
@view
@reentrant
def unvested() -> uint256:
    """
    @notice Revenue received that has not vested yet.
    @return Stablecoin base units.
    """
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
def _claim(holder: address, receiver: address) -> uint256:
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
@view
def _earned(holder: address, acc: uint256) -> uint256:
    # acc * balance <= total released * MAGNITUDE < 2**255: fits int256
    magnified: int256 = convert(acc * self.balanceOf[holder], int256) + self._correction[holder]
    # dev: never negative; rounds down, the remainder stays in the correction
    return convert(magnified, uint256) // MAGNITUDE


@internal
@view
def _vested_now() -> uint256:
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
    released: uint256 = self._vested_now()
    if released == 0:
        return
    self._unvested -= released
    self._vest_last = block.timestamp
    self._release(released)


@internal
def _release(amount: uint256):
    magnified: uint256 = amount * MAGNITUDE + self._acc_carry
    supply: uint256 = self.totalSupply
    # rounds down; the remainder is carried into the next release, nothing is lost
    self._acc += magnified // supply
    self._acc_carry = magnified % supply


@internal
def _transfer(owner: address, receiver: address, amount: uint256):
    assert receiver != empty(address), "share: transfer to the zero address"
    # neither could ever claim what the shares earn there
    assert receiver != self, "share: transfer to the share token"
    assert receiver != ROUTER, "share: transfer to the router"
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
    assert spender != empty(address), "share: approve to the zero address"
    self.allowance[owner][spender] = amount
    log Approval(owner=owner, spender=spender, value=amount)
