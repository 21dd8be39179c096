# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title EdgeShare node registry
@custom:contract-name NodeRegistry
@license MIT
@notice Registers edge inference nodes, creates each node's NodeShare token
        from a blueprint, and keeps every node's terms: operator, attestor,
        price per 1,000 inferences (by epoch), operator cut and status. Holds
        the suite's roles (owner, registrar, guardian) and its pause switch.
@dev Price changes take effect from the next epoch and are kept as a history,
     so a report for any past epoch is priced at what was public during it.
     What the router reads for every usage report (attestor, status, cut, and
     the price of an epoch) is packed into two storage slots (see `_core`).
     Operator-cut increases wait CUT_CHANGE_DELAY seconds; decreases, which only
     help holders, apply at once. The cut never exceeds MAX_OPERATOR_CUT_BPS.
@custom:security The owner transfers ownership in two steps. The guardian can
     only pause and unpause. The registrar can only register nodes and change
     their status. Operators can change only their own nodes' terms.
"""

from ethereum.ercs import IERC20

from .interfaces import INodeRegistry

implements: INodeRegistry

MAX_BPS: constant(uint256) = 10_000
# The operator keeps at most half of a node's gross revenue.
MAX_OPERATOR_CUT_BPS: constant(uint256) = 5_000
# An operator-cut increase waits this long, so holders can see it coming and exit.
CUT_CHANGE_DELAY: constant(uint256) = 7 * 86_400
MAX_EPOCH_LENGTH: constant(uint256) = 30 * 86_400
MAX_UNLOCK_PERIOD: constant(uint256) = 30 * 86_400
# Binary search over a node's price history needs at most log2 of its length.
_PRICE_SEARCH_STEPS: constant(uint256) = 16
MAX_PRICE_POINTS: constant(uint256) = 2**16 - 1
MAX_PRICE: constant(uint256) = 2**192 - 1
# bit layout of _core (low to high): attestor 160 | status 8 | cut 16 | pending cut 16
# | cut effective at 40 | price points 16
_MASK_160: constant(uint256) = 2**160 - 1
_MASK_8: constant(uint256) = 2**8 - 1
_MASK_16: constant(uint256) = 2**16 - 1
_MASK_40: constant(uint256) = 2**40 - 1

NODE_SHARE_BLUEPRINT: public(immutable(address))
GENESIS: public(immutable(uint256))
EPOCH_LENGTH: public(immutable(uint256))
UNLOCK_PERIOD: public(immutable(uint256))


# Unpacked form of _core (memory only).
struct Core:
    attestor: address
    status: INodeRegistry.NodeStatus
    cut_bps: uint256
    pending_cut_bps: uint256
    cut_effective_at: uint256
    price_points: uint256


# What is read rarely.
struct NodeMeta:
    operator: address
    share_token: address
    region: String[32]
    metadata_uri: String[256]


struct NodeInfo:
    operator: address
    attestor: address
    share_token: address
    price_per_1k: uint256
    next_price_per_1k: uint256
    operator_cut_bps: uint256
    pending_cut_bps: uint256
    cut_effective_at: uint256
    status: INodeRegistry.NodeStatus
    region: String[32]
    metadata_uri: String[256]


owner: public(address)
pending_owner: public(address)
registrar: public(address)
guardian: public(address)
paused: public(bool)
router: public(address)
stablecoin: public(IERC20)
node_count: public(uint256)
# Per operator, the node registered under an id of the operator's choosing (0: none).
node_by_external_id: public(HashMap[address, HashMap[bytes32, uint256]])

# Per node, packed (see the constants): everything a usage report is checked against.
# Zero for an unknown node (a registered node always has a non-zero attestor).
_core: HashMap[uint256, uint256]
_meta: HashMap[uint256, NodeMeta]
# Price history: entry i = (first epoch << 192) | price per 1k; entry 0 starts at epoch 0.
_prices: HashMap[uint256, HashMap[uint256, uint256]]


event OwnershipTransferStarted:
    owner: indexed(address)
    pending_owner: indexed(address)


event OwnershipTransferred:
    previous_owner: indexed(address)
    new_owner: indexed(address)


event RoleGranted:
    role: String[16]
    account: indexed(address)


event Paused:
    guardian: indexed(address)


event Unpaused:
    guardian: indexed(address)


event RouterSet:
    router: indexed(address)
    stablecoin: indexed(address)


event NodeRegistered:
    node_id: indexed(uint256)
    operator: indexed(address)
    share_token: indexed(address)
    attestor: address
    shares: uint256
    price_per_1k: uint256
    operator_cut_bps: uint256
    region: String[32]
    metadata_uri: String[256]
    external_id: bytes32


event PriceSet:
    node_id: indexed(uint256)
    price_per_1k: uint256
    from_epoch: uint64


event AttestorRotated:
    node_id: indexed(uint256)
    previous_attestor: indexed(address)
    new_attestor: indexed(address)


event OperatorCutProposed:
    node_id: indexed(uint256)
    cut_bps: uint256
    effective_at: uint256


event NodeStatusChanged:
    node_id: indexed(uint256)
    status: INodeRegistry.NodeStatus
    caller: indexed(address)


event MetadataUpdated:
    node_id: indexed(uint256)
    metadata_uri: String[256]


@deploy
def __init__(node_share_blueprint: address, epoch_length: uint256, unlock_period: uint256):
    """
    @notice Deploys the registry; the deployer holds the owner, registrar and
            guardian roles. Epoch 0 starts now.
    @param node_share_blueprint An EIP-5202 blueprint of NodeShare.
    @param epoch_length Seconds per epoch, 1 to 30 days.
    @param unlock_period Seconds over which each node's new revenue vests (0 to 30 days).
    """
    assert node_share_blueprint.is_contract, "registry: blueprint has no code"
    assert epoch_length > 0 and epoch_length <= MAX_EPOCH_LENGTH, "registry: bad epoch length"
    assert unlock_period <= MAX_UNLOCK_PERIOD, "registry: unlock period too long"
    NODE_SHARE_BLUEPRINT = node_share_blueprint
    GENESIS = block.timestamp
    EPOCH_LENGTH = epoch_length
    UNLOCK_PERIOD = unlock_period
    self.owner = msg.sender
    self.registrar = msg.sender
    self.guardian = msg.sender
    log OwnershipTransferred(previous_owner=empty(address), new_owner=msg.sender)
    log RoleGranted(role="registrar", account=msg.sender)
    log RoleGranted(role="guardian", account=msg.sender)


# ---------------------------------------------------------------- roles ----


@external
def transfer_ownership(new_owner: address):
    """
    @notice Starts a two-step ownership transfer; `new_owner` must accept.
    @param new_owner The proposed owner (the zero address cancels a proposal).
    """
    assert msg.sender == self.owner, "registry: not owner"
    self.pending_owner = new_owner
    log OwnershipTransferStarted(owner=msg.sender, pending_owner=new_owner)


@external
def accept_ownership():
    """
    @notice Completes an ownership transfer; only the pending owner can call it.
    """
    assert msg.sender == self.pending_owner, "registry: not pending owner"
    previous: address = self.owner
    self.owner = msg.sender
    self.pending_owner = empty(address)
    log OwnershipTransferred(previous_owner=previous, new_owner=msg.sender)


@external
def set_registrar(account: address):
    """
    @notice Appoints the registrar, who registers nodes.
    @param account The new registrar.
    """
    assert msg.sender == self.owner, "registry: not owner"
    assert account != empty(address), "registry: registrar is the zero address"
    self.registrar = account
    log RoleGranted(role="registrar", account=account)


@external
def set_guardian(account: address):
    """
    @notice Appoints the guardian, who can pause the suite.
    @param account The new guardian.
    """
    assert msg.sender == self.owner, "registry: not owner"
    assert account != empty(address), "registry: guardian is the zero address"
    self.guardian = account
    log RoleGranted(role="guardian", account=account)


@external
def set_router(router: address, stablecoin: IERC20):
    """
    @notice Links the revenue router, once. Share tokens created afterwards
            accept revenue only from it, paid in `stablecoin`.
    @param router The RevenueRouter.
    @param stablecoin The router's stablecoin.
    """
    assert msg.sender == self.owner, "registry: not owner"
    assert self.router == empty(address), "registry: router already set"
    assert router.is_contract, "registry: router has no code"
    assert stablecoin.address.is_contract, "registry: stablecoin has no code"
    self.router = router
    self.stablecoin = stablecoin
    log RouterSet(router=router, stablecoin=stablecoin.address)


@external
def pause():
    """
    @notice Stops new registrations and new revenue. Claims and withdrawals go on.
    """
    assert msg.sender == self.guardian, "registry: not guardian"
    assert not self.paused, "registry: already paused"
    self.paused = True
    log Paused(guardian=msg.sender)


@external
def unpause():
    """
    @notice Lifts the pause.
    """
    assert msg.sender == self.guardian, "registry: not guardian"
    assert self.paused, "registry: not paused"
    self.paused = False
    log Unpaused(guardian=msg.sender)


# ---------------------------------------------------------------- nodes ----


@external
def register_node(
    operator: address,
    attestor: address,
    shares: uint256,
    price_per_1k: uint256,
    operator_cut_bps: uint256,
    region: String[32],
    metadata_uri: String[256],
    external_id: bytes32 = empty(bytes32),
) -> uint256:
    """
    @notice Registers a node and creates its share token, minting all `shares`
            to the operator, who places them with investors.
    @dev A non-zero `external_id` can be registered once per operator, which is
         what makes registering from a node list idempotent.
    @param operator The node's operator.
    @param attestor The key that signs the node's usage reports.
    @param shares The share supply, 18-decimal base units (1 to 2**128).
    @param price_per_1k Stablecoin base units per 1,000 inferences, from epoch 0.
    @param operator_cut_bps The operator's share of gross revenue, at most MAX_OPERATOR_CUT_BPS.
    @param region Where the node serves, e.g. "ap-southeast-1" or "Jakarta".
    @param metadata_uri Where the node's hardware and model list is published.
    @param external_id The operator's own id for the node (optional, unique per operator).
    @return The new node id (ids start at 1).
    """
    assert msg.sender == self.registrar, "registry: not registrar"
    assert not self.paused, "registry: paused"
    router: address = self.router
    assert router != empty(address), "registry: router not set"
    assert operator != empty(address), "registry: operator is the zero address"
    assert attestor != empty(address), "registry: attestor is the zero address"
    assert operator_cut_bps <= MAX_OPERATOR_CUT_BPS, "registry: operator cut above cap"
    assert price_per_1k <= MAX_PRICE, "registry: price too large"
    assert len(region) > 0, "registry: region is empty"
    node_id: uint256 = self.node_count + 1
    self.node_count = node_id
    if external_id != empty(bytes32):
        assert self.node_by_external_id[operator][external_id] == 0, "registry: external id already registered"
        self.node_by_external_id[operator][external_id] = node_id
    share: address = create_from_blueprint(
        NODE_SHARE_BLUEPRINT,
        concat("EdgeShare Node ", uint2str(node_id)),
        concat("ESN", uint2str(node_id)),
        node_id,
        operator,
        shares,
        router,
        self.stablecoin,
        UNLOCK_PERIOD,
        code_offset=3,
    )
    self._core[node_id] = self._pack(
        Core(
            attestor=attestor,
            status=INodeRegistry.NodeStatus.ACTIVE,
            cut_bps=operator_cut_bps,
            pending_cut_bps=operator_cut_bps,
            cut_effective_at=0,
            price_points=1,
        )
    )
    self._meta[node_id] = NodeMeta(
        operator=operator, share_token=share, region=region, metadata_uri=metadata_uri
    )
    self._prices[node_id][0] = price_per_1k
    log NodeRegistered(
        node_id=node_id,
        operator=operator,
        share_token=share,
        attestor=attestor,
        shares=shares,
        price_per_1k=price_per_1k,
        operator_cut_bps=operator_cut_bps,
        region=region,
        metadata_uri=metadata_uri,
        external_id=external_id,
    )
    return node_id


@external
def set_price(node_id: uint256, price_per_1k: uint256):
    """
    @notice Sets the node's price from the next epoch on; the current epoch
            keeps the price that was public when it began.
    @param node_id The node.
    @param price_per_1k Stablecoin base units per 1,000 inferences.
    """
    core: Core = self._only_operator(node_id)
    assert price_per_1k <= MAX_PRICE, "registry: price too large"
    from_epoch: uint64 = self._current_epoch() + 1
    entry: uint256 = (convert(from_epoch, uint256) << 192) | price_per_1k
    last: uint256 = core.price_points - 1
    if self._prices[node_id][last] >> 192 == convert(from_epoch, uint256):
        # a second change within one epoch replaces the first
        self._prices[node_id][last] = entry
    else:
        assert core.price_points < MAX_PRICE_POINTS, "registry: too many price changes"
        self._prices[node_id][core.price_points] = entry
        core.price_points += 1
        self._core[node_id] = self._pack(core)
    log PriceSet(node_id=node_id, price_per_1k=price_per_1k, from_epoch=from_epoch)


@external
def rotate_attestor(node_id: uint256, new_attestor: address):
    """
    @notice Replaces the key that signs the node's usage reports; reports
            signed by the previous key are no longer accepted.
    @param node_id The node.
    @param new_attestor The new attestor.
    """
    core: Core = self._only_operator(node_id)
    assert new_attestor != empty(address), "registry: attestor is the zero address"
    previous: address = core.attestor
    core.attestor = new_attestor
    self._core[node_id] = self._pack(core)
    log AttestorRotated(node_id=node_id, previous_attestor=previous, new_attestor=new_attestor)


@external
def propose_operator_cut(node_id: uint256, cut_bps: uint256):
    """
    @notice Changes the operator's cut: a decrease applies at once, an
            increase after CUT_CHANGE_DELAY seconds. Replaces any pending change.
    @param node_id The node.
    @param cut_bps The new cut in basis points, at most MAX_OPERATOR_CUT_BPS.
    """
    core: Core = self._only_operator(node_id)
    assert cut_bps <= MAX_OPERATOR_CUT_BPS, "registry: operator cut above cap"
    current: uint256 = self._cut_in_force(core)
    effective_at: uint256 = block.timestamp
    if cut_bps > current:
        effective_at += CUT_CHANGE_DELAY
    # until effective_at the lower of the two is in force
    core.cut_bps = min(current, cut_bps)
    core.pending_cut_bps = cut_bps
    core.cut_effective_at = effective_at
    self._core[node_id] = self._pack(core)
    log OperatorCutProposed(node_id=node_id, cut_bps=cut_bps, effective_at=effective_at)


@external
def set_metadata_uri(node_id: uint256, metadata_uri: String[256]):
    """
    @notice Updates where the node's description is published.
    @param node_id The node.
    @param metadata_uri The new URI.
    """
    self._only_operator(node_id)
    self._meta[node_id].metadata_uri = metadata_uri
    log MetadataUpdated(node_id=node_id, metadata_uri=metadata_uri)


@external
def set_node_status(node_id: uint256, status: INodeRegistry.NodeStatus):
    """
    @notice Pauses, resumes or retires a node. The operator and the registrar
            can pause and resume; only the registrar can retire, and a retired
            node stays retired. Holders keep claiming what the node earned.
    @param node_id The node.
    @param status ACTIVE, PAUSED or RETIRED.
    """
    core: Core = self._load(node_id)
    assert core.status != INodeRegistry.NodeStatus.RETIRED, "registry: node is retired"
    is_registrar: bool = msg.sender == self.registrar
    assert is_registrar or msg.sender == self._meta[node_id].operator, "registry: not operator or registrar"
    if status == INodeRegistry.NodeStatus.RETIRED:
        assert is_registrar, "registry: only the registrar retires"
    else:
        assert status == INodeRegistry.NodeStatus.ACTIVE or status == INodeRegistry.NodeStatus.PAUSED, "registry: bad status"
    assert status != core.status, "registry: status unchanged"
    core.status = status
    self._core[node_id] = self._pack(core)
    log NodeStatusChanged(node_id=node_id, status=status, caller=msg.sender)


# ---------------------------------------------------------------- views ----


@external
@view
def current_epoch() -> uint64:
    """
    @notice The epoch now in progress; epoch 0 began at GENESIS.
    @return The epoch number.
    """
    return self._current_epoch()


@external
@view
def epoch_start(epoch: uint64) -> uint256:
    """
    @notice When an epoch begins.
    @param epoch The epoch number.
    @return A unix time.
    """
    return GENESIS + convert(epoch, uint256) * EPOCH_LENGTH


@external
@view
def share_token(node_id: uint256) -> address:
    """
    @notice The node's NodeShare token.
    @param node_id The node.
    @return The token address.
    """
    self._load(node_id)
    return self._meta[node_id].share_token


@external
@view
def price_for_epoch(node_id: uint256, epoch: uint64) -> uint256:
    """
    @notice The price that was (or will be) in force during `epoch`.
    @param node_id The node.
    @param epoch The epoch.
    @return Stablecoin base units per 1,000 inferences.
    """
    return self._price_for_epoch(node_id, epoch, self._load(node_id).price_points)


@external
@view
def operator_cut_bps(node_id: uint256) -> uint256:
    """
    @notice The operator cut in force now.
    @param node_id The node.
    @return Basis points of gross revenue.
    """
    return self._cut_in_force(self._load(node_id))


@external
@view
def node(node_id: uint256) -> NodeInfo:
    """
    @notice Everything the registry knows of a node.
    @param node_id The node.
    @return The node's record, with the price of this epoch and of the next,
            and the cut in force now.
    """
    core: Core = self._load(node_id)
    meta: NodeMeta = self._meta[node_id]
    epoch: uint64 = self._current_epoch()
    return NodeInfo(
        operator=meta.operator,
        attestor=core.attestor,
        share_token=meta.share_token,
        price_per_1k=self._price_for_epoch(node_id, epoch, core.price_points),
        next_price_per_1k=self._price_for_epoch(node_id, epoch + 1, core.price_points),
        operator_cut_bps=self._cut_in_force(core),
        pending_cut_bps=core.pending_cut_bps,
        cut_effective_at=core.cut_effective_at,
        status=core.status,
        region=meta.region,
        metadata_uri=meta.metadata_uri,
    )


@external
@view
def usage_terms(node_id: uint256, epoch: uint64) -> INodeRegistry.UsageTerms:
    """
    @notice What a usage report of `epoch` is checked against, in one call.
    @param node_id The node.
    @param epoch The report's epoch.
    @return Attestor, status, the epoch's price, and the operator cut in force now.
    """
    core: Core = self._load(node_id)
    return INodeRegistry.UsageTerms(
        attestor=core.attestor,
        status=core.status,
        price_per_1k=self._price_for_epoch(node_id, epoch, core.price_points),
        operator_cut_bps=self._cut_in_force(core),
    )


@external
@view
def payout_terms(node_id: uint256) -> INodeRegistry.PayoutTerms:
    """
    @notice Where a node's finalized revenue goes.
    @param node_id The node.
    @return The operator and the share token.
    """
    self._load(node_id)
    return INodeRegistry.PayoutTerms(
        operator=self._meta[node_id].operator, share_token=self._meta[node_id].share_token
    )


# ------------------------------------------------------------- internal ----


@internal
@view
def _load(node_id: uint256) -> Core:
    packed: uint256 = self._core[node_id]
    assert packed != 0, "registry: unknown node"
    return self._unpack(packed)


@internal
@pure
def _unpack(packed: uint256) -> Core:
    return Core(
        attestor=convert(convert(packed & _MASK_160, uint160), address),
        status=convert((packed >> 160) & _MASK_8, INodeRegistry.NodeStatus),
        cut_bps=(packed >> 168) & _MASK_16,
        pending_cut_bps=(packed >> 184) & _MASK_16,
        cut_effective_at=(packed >> 200) & _MASK_40,
        price_points=packed >> 240,
    )


@internal
@pure
def _pack(core: Core) -> uint256:
    # dev: every field fits its width: cuts <= 5_000, times < 2**40, points < 2**16
    return (
        convert(convert(core.attestor, uint160), uint256)
        | (convert(core.status, uint256) << 160)
        | (core.cut_bps << 168)
        | (core.pending_cut_bps << 184)
        | (core.cut_effective_at << 200)
        | (core.price_points << 240)
    )


@internal
@view
def _only_operator(node_id: uint256) -> Core:
    core: Core = self._load(node_id)
    assert msg.sender == self._meta[node_id].operator, "registry: not operator"
    assert core.status != INodeRegistry.NodeStatus.RETIRED, "registry: node is retired"
    return core


@internal
@view
def _current_epoch() -> uint64:
    # rounds down: an epoch is current from its first second to its last
    return convert((block.timestamp - GENESIS) // EPOCH_LENGTH, uint64)


@internal
@view
def _cut_in_force(core: Core) -> uint256:
    if block.timestamp >= core.cut_effective_at:
        return core.pending_cut_bps
    return core.cut_bps


@internal
@view
def _price_for_epoch(node_id: uint256, epoch: uint64, points: uint256) -> uint256:
    wanted: uint256 = convert(epoch, uint256)
    last: uint256 = points - 1
    entry: uint256 = self._prices[node_id][last]
    # fast path: reports are almost always for an epoch under the latest price
    if wanted >= entry >> 192:
        return entry & MAX_PRICE
    # binary search for the last entry whose first epoch is <= epoch (entry 0 starts at 0)
    lo: uint256 = 0
    hi: uint256 = last
    for _: uint256 in range(_PRICE_SEARCH_STEPS):
        if hi - lo <= 1:
            break
        mid: uint256 = (lo + hi) // 2
        if self._prices[node_id][mid] >> 192 <= wanted:
            lo = mid
        else:
            hi = mid
    return self._prices[node_id][lo] & MAX_PRICE
