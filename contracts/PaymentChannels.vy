# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title EdgeShare payment channels
@custom:contract-name PaymentChannels
@license MIT
@notice Customers of a node pay it directly: a customer escrows stablecoin in
        a channel to one node, signs cumulative vouchers (EIP-712) as it uses
        the node, and the node's operator or attestor redeems them. What a
        voucher redeems goes to the RevenueRouter, which splits it at once
        (protocol fee, the operator's cut of the epoch, the holders' part with
        its linear unlock) and counts it toward the node's usage report of
        that epoch. A customer who stops asks to close; the node can still
        redeem during a grace period of one epoch plus the router's challenge
        period, after which the customer withdraws the unredeemed rest.
@dev One channel per (customer, node). Its amounts slot holds what was
     deposited and what was redeemed in the current generation, both below
     2**128; a voucher of cumulative C pays C - redeemed and is refused unless
     redeemed < C <= deposited, so a later voucher makes every earlier one worth
     nothing and no voucher can draw on money that is not there. A withdrawal
     empties the channel and bumps its generation, which every voucher names,
     so vouchers of a closed channel never draw on a later deposit.
     Channel state slot (low to high): generation 32 | closes at 64 | low-balance
     threshold 128. Amounts slot: deposited 128 | redeemed 128.
@custom:security A voucher is signed by the customer or by a signer the
     customer authorised for that node; revoking a signer takes effect after
     the grace period, so the node can redeem what that signer promised. A
     batch never reverts for one bad voucher: each is paid in full or skipped
     (VoucherSkipped, with the reason), and what the batch redeemed per node is
     paid to the router in one call. Deposits are measured by this contract's
     balance change (fee-on-transfer tokens are refused). State is written
     before any token moves and every state-changing function is non-reentrant.
     While the suite is paused no deposit is taken; redemptions, closes and
     withdrawals go on, so a pause can neither cost the node what customers
     signed nor hold a customer's money beyond its grace.
"""

from ethereum.ercs import IERC20

from .interfaces import INodeRegistry
from .modules import eip712

initializes: eip712

exports: (eip712.DOMAIN_SEPARATOR, eip712.eip712Domain)


# What the channels need of the router.
interface IRevenueRouter:
    def REGISTRY() -> address: view
    def STABLECOIN() -> address: view
    def CHALLENGE_PERIOD() -> uint256: view
    def credit_channel_revenue(node_id: uint256, amount: uint256) -> uint64: nonpayable


# What the channels need of the registry beyond INodeRegistry.
interface IRegistryExtra:
    def EPOCH_LENGTH() -> uint256: view
    def node_count() -> uint256: view
    def retired_from(node_id: uint256) -> uint64: view


MAX_BATCH: constant(uint256) = 100
SIGNATURE_LENGTH: constant(uint256) = 65
# Deposits, cumulative amounts and thresholds fit 128 bits (3.4e38 base units).
MAX_AMOUNT: constant(uint256) = 2**128 - 1
VOUCHER_TYPE_HASH: constant(bytes32) = keccak256(
    "Voucher(uint256 nodeId,address customer,uint32 generation,uint256 cumulative,uint64 deadline)"
)
# A signer's validity while authorised and not revoked.
_FOREVER: constant(uint256) = max_value(uint256)
_MASK_32: constant(uint256) = 2**32 - 1
_MASK_64: constant(uint256) = 2**64 - 1
_MASK_128: constant(uint256) = 2**128 - 1

# Why a voucher of a batch was skipped (VoucherSkipped.reason).
SKIP_NOT_NODE: constant(uint8) = 1  # no such node, or the caller is not its operator or attestor
SKIP_EXPIRED: constant(uint8) = 2  # past its deadline
SKIP_OLD_GENERATION: constant(uint8) = 3  # the channel was withdrawn since (or never reached it)
SKIP_CLOSED: constant(uint8) = 4  # the grace after a close request, or the retirement window, is over
SKIP_NOTHING_NEW: constant(uint8) = 5  # cumulative not above what was redeemed: pays nothing
SKIP_NOT_COVERED: constant(uint8) = 6  # cumulative above what was deposited
SKIP_BAD_SIGNATURE: constant(uint8) = 7  # not signed by the customer or a signer valid now

ROUTER: public(immutable(IRevenueRouter))
REGISTRY: public(immutable(INodeRegistry))
STABLECOIN: public(immutable(IERC20))
# Seconds between a close request (or a retirement taking effect) and the customer's
# withdrawal, during which the node can still redeem: one epoch plus the router's
# challenge period. A revoked signer's vouchers stay valid as long.
CLOSE_GRACE: public(immutable(uint256))


# Field names are those of the EIP-712 type, which other clients sign.
struct Voucher:
    nodeId: uint256
    customer: address
    generation: uint32
    cumulative: uint256
    deadline: uint64


struct Channel:
    deposited: uint256
    redeemed: uint256
    unredeemed: uint256
    generation: uint32
    closes_at: uint256
    withdrawable_at: uint256
    low_balance_threshold: uint256


# What a batch needs of a voucher's node, read once per run of its vouchers.
struct NodeContext:
    node_id: uint256
    caller_ok: bool
    closes_at: uint256


# Unredeemed stablecoin held for all channels: exactly what this contract owes customers.
total_unredeemed: public(reentrant(uint256))
total_redeemed: public(reentrant(uint256))
# customer -> node -> signer -> until when its vouchers are valid (0: never authorised)
signer_valid_until: public(reentrant(HashMap[address, HashMap[uint256, HashMap[address, uint256]]]))

_amounts: HashMap[address, HashMap[uint256, uint256]]
_state: HashMap[address, HashMap[uint256, uint256]]


event Deposited:
    customer: indexed(address)
    node_id: indexed(uint256)
    generation: uint32
    amount: uint256
    unredeemed: uint256


event SignerAuthorized:
    customer: indexed(address)
    node_id: indexed(uint256)
    signer: indexed(address)


event SignerRevoked:
    customer: indexed(address)
    node_id: indexed(uint256)
    signer: indexed(address)
    effective_at: uint256


event LowBalanceThresholdSet:
    customer: indexed(address)
    node_id: indexed(uint256)
    threshold: uint256


# A voucher paid: `amount` is what it added to what was redeemed before, credited to
# the node's revenue of `epoch`.
event VoucherRedeemed:
    node_id: indexed(uint256)
    customer: indexed(address)
    epoch: indexed(uint64)
    generation: uint32
    cumulative: uint256
    amount: uint256
    unredeemed: uint256


# A voucher of a batch that paid nothing; `reason` is one of the SKIP_ codes. Logged
# before the signature is checked when another check fails first: it names what the
# caller sent, not what the customer signed.
event VoucherSkipped:
    node_id: indexed(uint256)
    customer: indexed(address)
    reason: uint8
    cumulative: uint256


# A redemption took the channel's unredeemed deposit below the customer's threshold.
event LowBalance:
    customer: indexed(address)
    node_id: indexed(uint256)
    unredeemed: uint256
    threshold: uint256


event CloseRequested:
    customer: indexed(address)
    node_id: indexed(uint256)
    generation: uint32
    closes_at: uint256
    unredeemed: uint256


event CloseCancelled:
    customer: indexed(address)
    node_id: indexed(uint256)
    generation: uint32


event ChannelWithdrawn:
    customer: indexed(address)
    node_id: indexed(uint256)
    generation: uint32
    amount: uint256


event ExcessRecovered:
    receiver: indexed(address)
    amount: uint256


@deploy
def __init__(router: IRevenueRouter):
    """
    @notice Deploys the channels of one suite and lets its router take what
            vouchers redeem.
    @dev The owner then links it with `RevenueRouter.set_channels`.
    @param router The suite's RevenueRouter (which names the registry and stablecoin).
    """
    assert router.address.is_contract, "channels: router has no code"
    registry: address = staticcall router.REGISTRY()
    stablecoin: address = staticcall router.STABLECOIN()
    eip712.__init__("EdgeShare Channels", "1")
    ROUTER = router
    REGISTRY = INodeRegistry(registry)
    STABLECOIN = IERC20(stablecoin)
    CLOSE_GRACE = staticcall IRegistryExtra(registry).EPOCH_LENGTH() + staticcall router.CHALLENGE_PERIOD()
    assert extcall IERC20(stablecoin).approve(router.address, max_value(uint256), default_return_value=True), "channels: approve failed"


# ------------------------------------------------------------- customers ----


@external
def deposit(node_id: uint256, amount: uint256):
    """
    @notice Opens or tops up the caller's channel to `node_id`, taking `amount`
            from the caller. A deposit during the grace after a close request
            cancels the close.
    @param node_id The node.
    @param amount Stablecoin base units.
    """
    assert not staticcall REGISTRY.paused(), "channels: paused"
    assert amount != 0, "channels: amount is zero"
    self._require_node(node_id)
    assert staticcall IRegistryExtra(REGISTRY.address).retired_from(node_id) == 0, "channels: node is retired"
    state: uint256 = self._state[msg.sender][node_id]
    generation: uint32 = convert(state & _MASK_32, uint32)
    closes_at: uint256 = (state >> 32) & _MASK_64
    if closes_at != 0:
        assert block.timestamp < closes_at, "channels: channel closed; withdraw first"
        self._state[msg.sender][node_id] = state & ~(_MASK_64 << 32)
        log CloseCancelled(customer=msg.sender, node_id=node_id, generation=generation)
    amounts: uint256 = self._amounts[msg.sender][node_id]
    deposited: uint256 = (amounts & _MASK_128) + amount
    assert deposited <= MAX_AMOUNT, "channels: deposit above 2**128 - 1"
    self._amounts[msg.sender][node_id] = (amounts & ~_MASK_128) | deposited
    self.total_unredeemed += amount
    before: uint256 = staticcall STABLECOIN.balanceOf(self)
    assert extcall STABLECOIN.transferFrom(msg.sender, self, amount, default_return_value=True), "channels: stablecoin transfer failed"
    assert staticcall STABLECOIN.balanceOf(self) - before == amount, "channels: stablecoin delivered a different amount"
    log Deposited(
        customer=msg.sender,
        node_id=node_id,
        generation=generation,
        amount=amount,
        unredeemed=deposited - (amounts >> 128),
    )


@external
def authorize_signer(node_id: uint256, signer: address):
    """
    @notice Lets `signer` (an app's hot key) sign vouchers for the caller's
            channel to `node_id`, so the caller's wallet is not asked for each
            request. Re-authorising a revoked signer cancels the revocation.
    @param node_id The node.
    @param signer The key.
    """
    assert signer != empty(address), "channels: signer is the zero address"
    assert signer != msg.sender, "channels: the customer always signs for itself"
    self._require_node(node_id)
    self.signer_valid_until[msg.sender][node_id][signer] = _FOREVER
    log SignerAuthorized(customer=msg.sender, node_id=node_id, signer=signer)


@external
def revoke_signer(node_id: uint256, signer: address):
    """
    @notice Ends `signer`'s right to sign for the caller's channel to `node_id`
            after CLOSE_GRACE seconds: the node can redeem what it already
            signed until then, and nothing it signs pays afterwards.
    @param node_id The node.
    @param signer The key.
    """
    until: uint256 = self.signer_valid_until[msg.sender][node_id][signer]
    assert until > block.timestamp, "channels: signer not authorised"
    effective_at: uint256 = min(until, block.timestamp + CLOSE_GRACE)
    self.signer_valid_until[msg.sender][node_id][signer] = effective_at
    log SignerRevoked(customer=msg.sender, node_id=node_id, signer=signer, effective_at=effective_at)


@external
def set_low_balance_threshold(node_id: uint256, threshold: uint256):
    """
    @notice Asks for a LowBalance event when a redemption takes the caller's
            unredeemed deposit to `node_id` below `threshold` (0: never).
    @param node_id The node.
    @param threshold Stablecoin base units.
    """
    assert threshold <= MAX_AMOUNT, "channels: threshold above 2**128 - 1"
    state: uint256 = self._state[msg.sender][node_id]
    self._state[msg.sender][node_id] = (state & (2**96 - 1)) | (threshold << 96)
    log LowBalanceThresholdSet(customer=msg.sender, node_id=node_id, threshold=threshold)


@external
def request_close(node_id: uint256) -> uint256:
    """
    @notice Starts closing the caller's channel to `node_id`: the node can
            still redeem for CLOSE_GRACE seconds, then the caller withdraws
            what is left. A deposit before then cancels the close.
    @param node_id The node.
    @return When the grace ends (a unix time); a retired node's customer may withdraw
            earlier, once its final window has passed (see `channel`).
    """
    state: uint256 = self._state[msg.sender][node_id]
    assert (state >> 32) & _MASK_64 == 0, "channels: close already requested"
    amounts: uint256 = self._amounts[msg.sender][node_id]
    assert amounts & _MASK_128 != 0, "channels: no deposit in this channel"
    closes_at: uint256 = block.timestamp + CLOSE_GRACE
    self._state[msg.sender][node_id] = state | (closes_at << 32)
    log CloseRequested(
        customer=msg.sender,
        node_id=node_id,
        generation=convert(state & _MASK_32, uint32),
        closes_at=closes_at,
        unredeemed=(amounts & _MASK_128) - (amounts >> 128),
    )
    return closes_at


@external
def withdraw(node_id: uint256) -> uint256:
    """
    @notice Pays the caller the unredeemed rest of its channel to `node_id`
            once the grace after its close request has passed, or once the
            final redemption window of a retired node has. The channel starts
            again empty, one generation later.
    @param node_id The node.
    @return The stablecoin base units paid.
    """
    state: uint256 = self._state[msg.sender][node_id]
    withdrawable_at: uint256 = self._withdrawable_at(state, node_id)
    assert withdrawable_at != max_value(uint256), "channels: close not requested"
    assert block.timestamp >= withdrawable_at, "channels: grace period not over"
    generation: uint256 = state & _MASK_32
    assert generation < _MASK_32, "channels: generations exhausted"
    amounts: uint256 = self._amounts[msg.sender][node_id]
    amount: uint256 = (amounts & _MASK_128) - (amounts >> 128)
    self._amounts[msg.sender][node_id] = 0
    # keep the threshold; clear the close; next generation
    self._state[msg.sender][node_id] = (state & ~(2**96 - 1)) | (generation + 1)
    self.total_unredeemed -= amount
    if amount != 0:
        assert extcall STABLECOIN.transfer(msg.sender, amount, default_return_value=True), "channels: stablecoin transfer failed"
    log ChannelWithdrawn(customer=msg.sender, node_id=node_id, generation=convert(generation, uint32), amount=amount)
    return amount


# ----------------------------------------------------------------- nodes ----


@external
def redeem_many(vouchers: DynArray[Voucher, MAX_BATCH], signatures: Bytes[MAX_BATCH * SIGNATURE_LENGTH]) -> uint256:
    """
    @notice Redeems up to MAX_BATCH vouchers, each in full or not at all: a
            voucher that the channel's deposit cannot cover, that pays nothing
            new, that is past its deadline, of a withdrawn or closed channel,
            badly signed, or of a node the caller does not run is skipped
            (VoucherSkipped) and the rest go on. Callable by each voucher's
            node's operator or attestor. What the batch redeems for a node is
            paid to the router in one transfer per run of that node's vouchers
            (keep a node's vouchers together) and split there at once.
    @dev The signatures come packed, 65 bytes (r || s || v) per voucher in
         voucher order, as in RevenueRouter.settle_many.
    @param vouchers The vouchers.
    @param signatures Their signatures, concatenated.
    @return The stablecoin base units redeemed in total.
    """
    assert len(vouchers) != 0, "channels: no vouchers"
    assert len(signatures) == len(vouchers) * SIGNATURE_LENGTH, "channels: need 65 signature bytes per voucher"
    epoch: uint64 = staticcall REGISTRY.current_epoch()
    context: NodeContext = empty(NodeContext)
    run: uint256 = 0
    total: uint256 = 0
    for i: uint256 in range(len(vouchers), bound=MAX_BATCH):
        voucher: Voucher = vouchers[i]
        if voucher.nodeId != context.node_id or i == 0:
            self._credit(context.node_id, run)
            run = 0
            context = self._node_context(voucher.nodeId, msg.sender)
        at: uint256 = i * SIGNATURE_LENGTH
        amount: uint256 = self._redeem(
            voucher,
            convert(extract32(signatures, at), uint256),
            convert(extract32(signatures, at + 32), uint256),
            # v is byte at + 64: the low byte of the word at at + 33
            convert(extract32(signatures, at + 33), uint256) & 255,
            context,
            epoch,
        )
        run += amount
        total += amount
    self._credit(context.node_id, run)
    return total


@external
def recover_excess(receiver: address) -> uint256:
    """
    @notice Sends stablecoin that reached this contract by mistake (a plain
            transfer, not a deposit) to `receiver`. Owner only. Only the excess
            over the unredeemed deposits can move.
    @param receiver Where the excess goes.
    @return The amount sent.
    """
    assert msg.sender == staticcall REGISTRY.owner(), "channels: not owner"
    assert receiver != empty(address), "channels: receiver is the zero address"
    held: uint256 = staticcall STABLECOIN.balanceOf(self)
    if held <= self.total_unredeemed:
        return 0
    amount: uint256 = held - self.total_unredeemed
    assert extcall STABLECOIN.transfer(receiver, amount, default_return_value=True), "channels: stablecoin transfer failed"
    log ExcessRecovered(receiver=receiver, amount=amount)
    return amount


# ----------------------------------------------------------------- views ----


@external
@view
@reentrant
def channel(customer: address, node_id: uint256) -> Channel:
    """
    @notice The state of `customer`'s channel to `node_id`.
    @param customer The customer.
    @param node_id The node.
    @return What was deposited and redeemed in this generation, the unredeemed
            rest, the generation vouchers must name, when a requested close ends
            (0: none), when the customer can withdraw (0: not yet known; the
            earlier of the close and a retired node's final window), and the
            low-balance threshold.
    """
    amounts: uint256 = self._amounts[customer][node_id]
    state: uint256 = self._state[customer][node_id]
    withdrawable_at: uint256 = self._withdrawable_at(state, node_id)
    if withdrawable_at == max_value(uint256):
        withdrawable_at = 0
    return Channel(
        deposited=amounts & _MASK_128,
        redeemed=amounts >> 128,
        unredeemed=(amounts & _MASK_128) - (amounts >> 128),
        generation=convert(state & _MASK_32, uint32),
        closes_at=(state >> 32) & _MASK_64,
        withdrawable_at=withdrawable_at,
        low_balance_threshold=state >> 96,
    )


@external
@view
@reentrant
def check(voucher: Voucher, signature: Bytes[65], caller: address) -> (uint256, uint8):
    """
    @notice What redeeming `voucher` now would pay, as `redeem_many` decides it.
    @param voucher The voucher.
    @param signature Its signature, r || s || v.
    @param caller Who would redeem it (the node's operator or attestor).
    @return The amount it would redeem, and 0 or the SKIP_ code it would be skipped for.
    """
    assert len(signature) == SIGNATURE_LENGTH, "channels: signature must be 65 bytes"
    context: NodeContext = self._node_context(voucher.nodeId, caller)
    amount: uint256 = 0
    reason: uint8 = 0
    amounts: uint256 = 0
    amount, reason, amounts = self._check(
        voucher,
        convert(extract32(signature, 0), uint256),
        convert(extract32(signature, 32), uint256),
        convert(extract32(signature, 33), uint256) & 255,
        context,
    )
    return amount, reason


@external
@view
@reentrant
def voucher_digest(voucher: Voucher) -> bytes32:
    """
    @notice The EIP-712 digest a customer (or its signer) signs for `voucher`.
    @param voucher The voucher.
    @return The digest.
    """
    return self._digest(voucher)


# -------------------------------------------------------------- internal ----


@internal
@view
def _require_node(node_id: uint256):
    assert node_id != 0 and node_id <= staticcall IRegistryExtra(REGISTRY.address).node_count(), "channels: unknown node"


@internal
@view
def _retirement_closes_at(node_id: uint256) -> uint256:
    # the end of a retired node's final redemption window (max: not retired)
    retired: uint64 = staticcall IRegistryExtra(REGISTRY.address).retired_from(node_id)
    if retired == 0:
        return max_value(uint256)
    return staticcall REGISTRY.epoch_start(retired) + CLOSE_GRACE


@internal
@view
def _withdrawable_at(state: uint256, node_id: uint256) -> uint256:
    # the earlier of the requested close and a retired node's window (max: neither)
    closes_at: uint256 = (state >> 32) & _MASK_64
    if closes_at == 0:
        closes_at = max_value(uint256)
    return min(closes_at, self._retirement_closes_at(node_id))


@internal
@view
def _node_context(node_id: uint256, caller: address) -> NodeContext:
    if node_id == 0 or node_id > staticcall IRegistryExtra(REGISTRY.address).node_count():
        return NodeContext(node_id=node_id, caller_ok=False, closes_at=0)
    ok: bool = caller == (staticcall REGISTRY.payout_terms(node_id)).operator
    if not ok:
        ok = caller == (staticcall REGISTRY.usage_terms(node_id, staticcall REGISTRY.current_epoch())).attestor
    return NodeContext(node_id=node_id, caller_ok=ok, closes_at=self._retirement_closes_at(node_id))


@internal
@view
def _digest(voucher: Voucher) -> bytes32:
    return eip712._hash_typed_data(
        keccak256(
            abi_encode(
                VOUCHER_TYPE_HASH,
                voucher.nodeId,
                voucher.customer,
                voucher.generation,
                voucher.cumulative,
                voucher.deadline,
            )
        )
    )


@internal
@view
def _check(voucher: Voucher, r: uint256, s: uint256, v: uint256, context: NodeContext) -> (uint256, uint8, uint256):
    # (amount, 0, the channel's amounts slot) if the voucher pays; (0, reason, 0) if not
    if not context.caller_ok:
        return 0, SKIP_NOT_NODE, 0
    if block.timestamp > convert(voucher.deadline, uint256):
        return 0, SKIP_EXPIRED, 0
    state: uint256 = self._state[voucher.customer][voucher.nodeId]
    if convert(voucher.generation, uint256) != state & _MASK_32:
        return 0, SKIP_OLD_GENERATION, 0
    closes_at: uint256 = (state >> 32) & _MASK_64
    if (closes_at != 0 and block.timestamp >= closes_at) or block.timestamp >= context.closes_at:
        return 0, SKIP_CLOSED, 0
    amounts: uint256 = self._amounts[voucher.customer][voucher.nodeId]
    if voucher.cumulative <= amounts >> 128:
        return 0, SKIP_NOTHING_NEW, 0
    if voucher.cumulative > amounts & _MASK_128:
        return 0, SKIP_NOT_COVERED, 0
    signer: address = eip712._try_recover(self._digest(voucher), v, r, s)
    if signer == empty(address):
        return 0, SKIP_BAD_SIGNATURE, 0
    if signer != voucher.customer:
        if self.signer_valid_until[voucher.customer][voucher.nodeId][signer] <= block.timestamp:
            return 0, SKIP_BAD_SIGNATURE, 0
    return voucher.cumulative - (amounts >> 128), 0, amounts


@internal
def _redeem(voucher: Voucher, r: uint256, s: uint256, v: uint256, context: NodeContext, epoch: uint64) -> uint256:
    amount: uint256 = 0
    reason: uint8 = 0
    amounts: uint256 = 0
    amount, reason, amounts = self._check(voucher, r, s, v, context)
    if reason != 0:
        log VoucherSkipped(node_id=voucher.nodeId, customer=voucher.customer, reason=reason, cumulative=voucher.cumulative)
        return 0
    deposited: uint256 = amounts & _MASK_128
    self._amounts[voucher.customer][voucher.nodeId] = deposited | (voucher.cumulative << 128)
    left: uint256 = deposited - voucher.cumulative
    log VoucherRedeemed(
        node_id=voucher.nodeId,
        customer=voucher.customer,
        epoch=epoch,
        generation=voucher.generation,
        cumulative=voucher.cumulative,
        amount=amount,
        unredeemed=left,
    )
    threshold: uint256 = self._state[voucher.customer][voucher.nodeId] >> 96
    if left < threshold and left + amount >= threshold:
        log LowBalance(customer=voucher.customer, node_id=voucher.nodeId, unredeemed=left, threshold=threshold)
    return amount


@internal
def _credit(node_id: uint256, amount: uint256):
    # the totals first: the router's pull is the first token movement of the run
    if amount != 0:
        self.total_unredeemed -= amount
        self.total_redeemed += amount
        extcall ROUTER.credit_channel_revenue(node_id, amount)
