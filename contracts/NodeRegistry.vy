# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title EdgeShare node registry
@custom:contract-name NodeRegistry
@license MIT
@notice Registers edge inference nodes, creates each node's NodeShare token
        from a blueprint, and keeps every node's terms by epoch: price per
        1,000 inferences, operator cut and whether the node was active, plus
        its operator, attestor and status. Holds the suite's roles (owner,
        registrar, guardian) and its pause switch.
@dev Terms are a history of entries, each in force from its first epoch until
     the next entry's: a report for any past epoch is checked against the
     price, the cut and the activity of that epoch, never against what was
     changed afterwards. Changes take effect at epoch boundaries: a price, a cut
     decrease, a pause or a retirement from the next epoch; a resume from the
     current one; a cut increase from the first epoch that starts at least
     CUT_CHANGE_DELAY after it was proposed. What the router reads for every
     usage report is two storage slots (see `_core` and `_terms`).
@custom:security The owner transfers ownership in two steps and links the router
     once, to a router built for this registry. The guardian pauses and unpauses
     the suite (and, in the router, disputes reports within their challenge
     window). The registrar registers nodes and pauses, resumes and retires them;
     only the registrar lifts a pause the registrar made. Operators change only
     their own nodes' terms and hand a node over in two steps.
"""

from ethereum.ercs import IERC20

from .interfaces import INodeRegistry

implements: INodeRegistry


# What the registry checks of a router before linking it.
interface IRevenueRouter:
    def REGISTRY() -> address: view
    def STABLECOIN() -> IERC20: view


MAX_BPS: constant(uint256) = 10_000
# The operator keeps at most half of a node's gross revenue.
MAX_OPERATOR_CUT_BPS: constant(uint256) = 5_000
# An operator-cut increase applies only to epochs that start this long after it
# was proposed, so holders can see it coming and exit.
CUT_CHANGE_DELAY: constant(uint256) = 7 * 86_400
MAX_EPOCH_LENGTH: constant(uint256) = 30 * 86_400
MAX_UNLOCK_PERIOD: constant(uint256) = 30 * 86_400
# Binary search over a node's terms history needs at most log2 of its length.
_TERMS_SEARCH_STEPS: constant(uint256) = 16
MAX_TERM_POINTS: constant(uint256) = 2**16 - 1
MAX_PRICE: constant(uint256) = 2**168 - 1
# Entries that start at or after the current epoch: at most two (this epoch's
# and the next's), so a change touches a bounded tail of the history.
_TAIL: constant(uint256) = 3

# bit layout of a terms entry (low to high): price 168 | cut 16 | active 8 | first epoch 64
_CUT_SHIFT: constant(uint256) = 168
_ACTIVE_SHIFT: constant(uint256) = 184
_FROM_SHIFT: constant(uint256) = 192
_PRICE_FIELD: constant(uint256) = 2**168 - 1
_CUT_FIELD: constant(uint256) = (2**16 - 1) << 168
_ACTIVE_FIELD: constant(uint256) = (2**8 - 1) << 184
_FROM_FIELD: constant(uint256) = (2**64 - 1) << 192
# bit layout of _core (low to high): attestor 160 | status 8 | paused by registrar 8
# | pending cut 16 | pending cut's first epoch 48 | terms entries 16
_MASK_160: constant(uint256) = 2**160 - 1
_MASK_8: constant(uint256) = 2**8 - 1
_MASK_16: constant(uint256) = 2**16 - 1
_MASK_48: constant(uint256) = 2**48 - 1

NODE_SHARE_BLUEPRINT: public(immutable(address))
GENESIS: public(immutable(uint256))
EPOCH_LENGTH: public(immutable(uint256))
UNLOCK_PERIOD: public(immutable(uint256))
CLAIMER: public(immutable(address))


# Unpacked form of _core (memory only).
struct Core:
    attestor: address
    status: INodeRegistry.NodeStatus
    paused_by_registrar: bool
    pending_cut_bps: uint256
    # first epoch of a pending cut increase (0: none pending)
    pending_cut_epoch: uint256
    term_points: uint256


# The terms of one epoch (memory only).
struct EpochTerms:
    registered: bool
    active: bool
    cut_bps: uint256
    price_per_1k: uint256


# What is read rarely.
struct NodeMeta:
    operator: address
    share_token: address
    region: String[32]
    metadata_uri: String[256]


struct NodeInfo:
    operator: address
    pending_operator: address
    attestor: address
    share_token: address
    price_per_1k: uint256
    next_price_per_1k: uint256
    operator_cut_bps: uint256
    next_operator_cut_bps: uint256
    pending_cut_bps: uint256
    pending_cut_epoch: uint256
    status: INodeRegistry.NodeStatus
    paused_by_registrar: bool
    registered_epoch: uint64
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
# It stays with the operator that registered the node, even after a handover.
node_by_external_id: public(HashMap[address, HashMap[bytes32, uint256]])
# Per node, the account an operator handover waits for (0: none).
pending_operator: public(HashMap[uint256, address])
# Per node, the first epoch in which it is retired (0: not retired). Payment channels
# let customers withdraw once the node's final redemption window after it has passed.
retired_from: public(HashMap[uint256, uint64])

# Per node, packed (see the constants): attestor, status and the pending cut.
# Zero for an unknown node (a registered node always has a non-zero attestor).
_core: HashMap[uint256, uint256]
_meta: HashMap[uint256, NodeMeta]
# Terms history, sorted by first epoch; entry 0 starts at the registration epoch.
_terms: HashMap[uint256, HashMap[uint256, uint256]]


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
    from_epoch: uint64
    effective_at: uint256


event NodeStatusChanged:
    node_id: indexed(uint256)
    status: INodeRegistry.NodeStatus
    caller: indexed(address)
    from_epoch: uint64


event MetadataUpdated:
    node_id: indexed(uint256)
    metadata_uri: String[256]


event OperatorTransferStarted:
    node_id: indexed(uint256)
    operator: indexed(address)
    pending_operator: indexed(address)


event OperatorTransferred:
    node_id: indexed(uint256)
    previous_operator: indexed(address)
    new_operator: indexed(address)


@deploy
def __init__(
    node_share_blueprint: address, epoch_length: uint256, unlock_period: uint256, claimer: address
):
    """
    @notice Deploys the registry; the deployer holds the owner, registrar and
            guardian roles. Epoch 0 starts now.
    @param node_share_blueprint An EIP-5202 blueprint of NodeShare.
    @param epoch_length Seconds per epoch, 1 to 30 days.
    @param unlock_period Seconds over which each node's new revenue vests: at
           least one epoch (so nobody can capture an epoch's revenue by holding
           shares for one block around its finalization), at most 30 days.
    @param claimer The suite's PortfolioClaimer, which every share token lets
           claim for its own caller (the zero address: no portfolio claims).
    """
    assert node_share_blueprint.is_contract, "registry: blueprint has no code"
    assert epoch_length > 0 and epoch_length <= MAX_EPOCH_LENGTH, "registry: bad epoch length"
    assert unlock_period >= epoch_length, "registry: unlock period shorter than an epoch"
    assert unlock_period <= MAX_UNLOCK_PERIOD, "registry: unlock period too long"
    NODE_SHARE_BLUEPRINT = node_share_blueprint
    GENESIS = block.timestamp
    EPOCH_LENGTH = epoch_length
    UNLOCK_PERIOD = unlock_period
    CLAIMER = claimer
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
    @notice Appoints the guardian, who can pause the suite and dispute reports.
    @param account The new guardian.
    """
    assert msg.sender == self.owner, "registry: not owner"
    assert account != empty(address), "registry: guardian is the zero address"
    self.guardian = account
    log RoleGranted(role="guardian", account=account)


@external
def set_router(router: address):
    """
    @notice Links the revenue router, once. It must have been built for this
            registry; its stablecoin becomes the suite's. Share tokens accept
            revenue only from it.
    @param router The RevenueRouter.
    """
    assert msg.sender == self.owner, "registry: not owner"
    assert self.router == empty(address), "registry: router already set"
    assert router.is_contract, "registry: router has no code"
    assert staticcall IRevenueRouter(router).REGISTRY() == self, "registry: router is for another registry"
    stablecoin: IERC20 = staticcall IRevenueRouter(router).STABLECOIN()
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
            to the operator, who places them with investors. The node takes
            revenue from the current epoch on.
    @dev A non-zero `external_id` can be registered once per operator, which is
         what makes registering from a node list idempotent.
    @param operator The node's operator.
    @param attestor The key that signs the node's usage reports.
    @param shares The share supply, 18-decimal base units (1 to 2**128).
    @param price_per_1k Stablecoin base units per 1,000 inferences, at most MAX_PRICE.
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
        CLAIMER,
        code_offset=3,
    )
    self._core[node_id] = self._pack(
        Core(
            attestor=attestor,
            status=INodeRegistry.NodeStatus.ACTIVE,
            paused_by_registrar=False,
            pending_cut_bps=0,
            pending_cut_epoch=0,
            term_points=1,
        )
    )
    self._meta[node_id] = NodeMeta(
        operator=operator, share_token=share, region=region, metadata_uri=metadata_uri
    )
    self._terms[node_id][0] = (
        (convert(self._current_epoch(), uint256) << _FROM_SHIFT)
        | (1 << _ACTIVE_SHIFT)
        | (operator_cut_bps << _CUT_SHIFT)
        | price_per_1k
    )
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
            keeps the price that was public when it began. A second change
            within one epoch replaces the first.
    @param node_id The node.
    @param price_per_1k Stablecoin base units per 1,000 inferences, at most MAX_PRICE.
    """
    core: Core = self._only_operator(node_id)
    assert price_per_1k <= MAX_PRICE, "registry: price too large"
    from_epoch: uint64 = self._current_epoch() + 1
    core = self._set_terms(node_id, core, convert(from_epoch, uint256), _PRICE_FIELD, price_per_1k)
    self._core[node_id] = self._pack(core)
    log PriceSet(node_id=node_id, price_per_1k=price_per_1k, from_epoch=from_epoch)


@external
def rotate_attestor(node_id: uint256, new_attestor: address):
    """
    @notice Replaces the key that signs the node's usage reports; reports
            signed by the previous key are no longer accepted (the new key
            signs again whatever is still unsettled).
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
    @notice Changes the operator's cut from an epoch boundary on: a decrease
            from the next epoch, an increase from the first epoch that starts
            at least CUT_CHANGE_DELAY from now. Replaces a pending increase.
            Epochs before the change keep the cut that was in force in them.
    @param node_id The node.
    @param cut_bps The new cut in basis points, at most MAX_OPERATOR_CUT_BPS.
    """
    core: Core = self._only_operator(node_id)
    assert cut_bps <= MAX_OPERATOR_CUT_BPS, "registry: operator cut above cap"
    next_epoch: uint256 = convert(self._current_epoch(), uint256) + 1
    # the cut the next epoch has without any pending change (the last entry starts by then)
    base: uint256 = (self._terms[node_id][core.term_points - 1] >> _CUT_SHIFT) & _MASK_16
    from_epoch: uint256 = next_epoch
    if cut_bps > base:
        from_epoch = max(next_epoch, self._first_epoch_starting_at(block.timestamp + CUT_CHANGE_DELAY))
    core.pending_cut_bps = 0
    core.pending_cut_epoch = 0
    if from_epoch == next_epoch:
        core = self._set_terms(node_id, core, next_epoch, _CUT_FIELD, cut_bps << _CUT_SHIFT)
    else:
        assert from_epoch <= _MASK_48, "registry: epoch out of range"
        core.pending_cut_bps = cut_bps
        core.pending_cut_epoch = from_epoch
    self._core[node_id] = self._pack(core)
    log OperatorCutProposed(
        node_id=node_id,
        cut_bps=cut_bps,
        from_epoch=convert(from_epoch, uint64),
        effective_at=GENESIS + from_epoch * EPOCH_LENGTH,
    )


@external
def set_metadata_uri(node_id: uint256, metadata_uri: String[256]):
    """
    @notice Updates where the node's description is published.
    @param node_id The node.
    @param metadata_uri The new URI.
    """
    self._core[node_id] = self._pack(self._only_operator(node_id))
    self._meta[node_id].metadata_uri = metadata_uri
    log MetadataUpdated(node_id=node_id, metadata_uri=metadata_uri)


@external
def transfer_operator(node_id: uint256, new_operator: address):
    """
    @notice Starts handing the node over; `new_operator` must accept. Also for
            an operator rotating its own key. Works for a retired node too, so
            its remaining payouts reach the new operator.
    @param node_id The node.
    @param new_operator The proposed operator (the zero address cancels).
    """
    self._load(node_id)
    assert msg.sender == self._meta[node_id].operator, "registry: not operator"
    self.pending_operator[node_id] = new_operator
    log OperatorTransferStarted(node_id=node_id, operator=msg.sender, pending_operator=new_operator)


@external
def accept_operator(node_id: uint256):
    """
    @notice Completes a handover: the caller operates the node and receives its
            future operator cuts. Cuts already owed stay with the previous operator.
    @param node_id The node.
    """
    self._load(node_id)
    assert msg.sender == self.pending_operator[node_id], "registry: not pending operator"
    previous: address = self._meta[node_id].operator
    self._meta[node_id].operator = msg.sender
    self.pending_operator[node_id] = empty(address)
    log OperatorTransferred(node_id=node_id, previous_operator=previous, new_operator=msg.sender)


@external
def set_node_status(node_id: uint256, status: INodeRegistry.NodeStatus):
    """
    @notice Pauses, resumes or retires a node. The operator and the registrar
            can pause and resume, but only the registrar lifts a pause the
            registrar made (the registrar may also take over an operator's
            pause); only the registrar retires, and a retired node stays
            retired. A pause or retirement takes effect from the next epoch, a
            resume from the current one: reports for every epoch in which the
            node was active are still accepted afterwards, so nothing it earned
            is stranded.
    @param node_id The node.
    @param status ACTIVE, PAUSED or RETIRED.
    """
    core: Core = self._load(node_id)
    assert core.status != INodeRegistry.NodeStatus.RETIRED, "registry: node is retired"
    is_registrar: bool = msg.sender == self.registrar
    assert is_registrar or msg.sender == self._meta[node_id].operator, "registry: not operator or registrar"
    core = self._apply_due_cut(node_id, core)
    current: uint256 = convert(self._current_epoch(), uint256)
    from_epoch: uint256 = current + 1
    if status == INodeRegistry.NodeStatus.RETIRED:
        assert is_registrar, "registry: only the registrar retires"
        core = self._set_terms(node_id, core, from_epoch, _ACTIVE_FIELD, 0)
        self.retired_from[node_id] = convert(from_epoch, uint64)
    elif status == INodeRegistry.NodeStatus.PAUSED:
        if core.status == INodeRegistry.NodeStatus.PAUSED:
            # the registrar takes over an operator's pause, so the operator cannot lift it
            assert is_registrar and not core.paused_by_registrar, "registry: status unchanged"
        else:
            core = self._set_terms(node_id, core, from_epoch, _ACTIVE_FIELD, 0)
        core.paused_by_registrar = is_registrar
    elif status == INodeRegistry.NodeStatus.ACTIVE:
        assert core.status != INodeRegistry.NodeStatus.ACTIVE, "registry: status unchanged"
        assert is_registrar or not core.paused_by_registrar, "registry: paused by the registrar"
        core.paused_by_registrar = False
        from_epoch = current
        core = self._set_terms(node_id, core, from_epoch, _ACTIVE_FIELD, 1 << _ACTIVE_SHIFT)
    else:
        raise "registry: bad status"
    core.status = status
    self._core[node_id] = self._pack(core)
    log NodeStatusChanged(
        node_id=node_id, status=status, caller=msg.sender, from_epoch=convert(from_epoch, uint64)
    )


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
    @notice The price that was (or will be) in force during `epoch`; for an
            epoch before the node was registered, its first price.
    @param node_id The node.
    @param epoch The epoch.
    @return Stablecoin base units per 1,000 inferences.
    """
    return self._epoch_terms(node_id, self._load(node_id), epoch).price_per_1k


@external
@view
def operator_cut_bps(node_id: uint256) -> uint256:
    """
    @notice The operator cut in force in the current epoch.
    @param node_id The node.
    @return Basis points of gross revenue.
    """
    return self._epoch_terms(node_id, self._load(node_id), self._current_epoch()).cut_bps


@external
@view
def registered_epoch(node_id: uint256) -> uint64:
    """
    @notice The epoch in which the node was registered, its first reportable one.
    @param node_id The node.
    @return The epoch number.
    """
    self._load(node_id)
    return convert(self._terms[node_id][0] >> _FROM_SHIFT, uint64)


@external
@view
def node(node_id: uint256) -> NodeInfo:
    """
    @notice Everything the registry knows of a node.
    @param node_id The node.
    @return The node's record, with the price and cut of this epoch and of the
            next, and a pending cut increase with its first epoch (0: none).
    """
    core: Core = self._load(node_id)
    meta: NodeMeta = self._meta[node_id]
    epoch: uint64 = self._current_epoch()
    now: EpochTerms = self._epoch_terms(node_id, core, epoch)
    following: EpochTerms = self._epoch_terms(node_id, core, epoch + 1)
    return NodeInfo(
        operator=meta.operator,
        pending_operator=self.pending_operator[node_id],
        attestor=core.attestor,
        share_token=meta.share_token,
        price_per_1k=now.price_per_1k,
        next_price_per_1k=following.price_per_1k,
        operator_cut_bps=now.cut_bps,
        next_operator_cut_bps=following.cut_bps,
        pending_cut_bps=core.pending_cut_bps,
        pending_cut_epoch=core.pending_cut_epoch,
        status=core.status,
        paused_by_registrar=core.paused_by_registrar,
        registered_epoch=convert(self._terms[node_id][0] >> _FROM_SHIFT, uint64),
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
    @return The current attestor; whether the node was registered by then and
            active in that epoch; that epoch's price and operator cut.
    """
    core: Core = self._load(node_id)
    terms: EpochTerms = self._epoch_terms(node_id, core, epoch)
    return INodeRegistry.UsageTerms(
        attestor=core.attestor,
        registered=terms.registered,
        active=terms.active,
        price_per_1k=terms.price_per_1k,
        operator_cut_bps=terms.cut_bps,
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
        paused_by_registrar=(packed >> 168) & _MASK_8 != 0,
        pending_cut_bps=(packed >> 176) & _MASK_16,
        pending_cut_epoch=(packed >> 192) & _MASK_48,
        term_points=packed >> 240,
    )


@internal
@pure
def _pack(core: Core) -> uint256:
    # dev: every field fits its width: cuts <= 5_000, epochs < 2**48, points < 2**16
    return (
        convert(convert(core.attestor, uint160), uint256)
        | (convert(core.status, uint256) << 160)
        | (convert(core.paused_by_registrar, uint256) << 168)
        | (core.pending_cut_bps << 176)
        | (core.pending_cut_epoch << 192)
        | (core.term_points << 240)
    )


@internal
def _only_operator(node_id: uint256) -> Core:
    core: Core = self._load(node_id)
    assert msg.sender == self._meta[node_id].operator, "registry: not operator"
    assert core.status != INodeRegistry.NodeStatus.RETIRED, "registry: node is retired"
    return self._apply_due_cut(node_id, core)


@internal
@view
def _current_epoch() -> uint64:
    # rounds down: an epoch is current from its first second to its last
    return convert((block.timestamp - GENESIS) // EPOCH_LENGTH, uint64)


@internal
@view
def _first_epoch_starting_at(timestamp: uint256) -> uint256:
    # rounds up: the first epoch whose start is at or after `timestamp`
    return (timestamp - GENESIS + EPOCH_LENGTH - 1) // EPOCH_LENGTH


@internal
@view
def _epoch_terms(node_id: uint256, core: Core, epoch: uint64) -> EpochTerms:
    entry: uint256 = self._entry_for_epoch(node_id, epoch, core.term_points)
    wanted: uint256 = convert(epoch, uint256)
    cut: uint256 = (entry >> _CUT_SHIFT) & _MASK_16
    if core.pending_cut_epoch != 0 and wanted >= core.pending_cut_epoch:
        cut = core.pending_cut_bps
    return EpochTerms(
        # only entry 0 can start after the epoch asked for
        registered=wanted >= entry >> _FROM_SHIFT,
        active=(entry >> _ACTIVE_SHIFT) & _MASK_8 != 0,
        cut_bps=cut,
        price_per_1k=entry & _PRICE_FIELD,
    )


@internal
@view
def _entry_for_epoch(node_id: uint256, epoch: uint64, points: uint256) -> uint256:
    wanted: uint256 = convert(epoch, uint256)
    last: uint256 = points - 1
    entry: uint256 = self._terms[node_id][last]
    # fast path: reports are almost always for an epoch under the latest terms
    if wanted >= entry >> _FROM_SHIFT:
        return entry
    # binary search for the last entry whose first epoch is <= epoch (or entry 0)
    lo: uint256 = 0
    hi: uint256 = last
    for _: uint256 in range(_TERMS_SEARCH_STEPS):
        if hi - lo <= 1:
            break
        mid: uint256 = (lo + hi) // 2
        if self._terms[node_id][mid] >> _FROM_SHIFT <= wanted:
            lo = mid
        else:
            hi = mid
    return self._terms[node_id][lo]


@internal
def _apply_due_cut(node_id: uint256, core: Core) -> Core:
    # writes a pending cut increase into the history once the next write would reach it
    if core.pending_cut_epoch == 0:
        return core
    if core.pending_cut_epoch > convert(self._current_epoch(), uint256) + 1:
        return core
    result: Core = self._set_terms(
        node_id, core, core.pending_cut_epoch, _CUT_FIELD, core.pending_cut_bps << _CUT_SHIFT
    )
    result.pending_cut_bps = 0
    result.pending_cut_epoch = 0
    return result


@internal
def _set_terms(node_id: uint256, core: Core, from_epoch: uint256, field: uint256, bits: uint256) -> Core:
    # Sets one field of the terms (`bits` already shifted into `field`) for every
    # epoch from `from_epoch` on: entries starting at or after it are changed, and
    # an entry starting at it is inserted if there is none and the change is real.
    # from_epoch is never before the registration epoch, and at most _TAIL - 1
    # entries start after it (only this epoch's and the next's can).
    n: uint256 = core.term_points
    first: uint256 = n
    for _: uint256 in range(_TAIL):
        if first == 0 or self._terms[node_id][first - 1] >> _FROM_SHIFT < from_epoch:
            break
        first -= 1
    assert first == 0 or self._terms[node_id][first - 1] >> _FROM_SHIFT < from_epoch, "registry: terms tail too long"
    result: Core = core
    change_from: uint256 = first
    if first == n or self._terms[node_id][first] >> _FROM_SHIFT != from_epoch:
        assert first > 0, "registry: epoch before registration"
        covering: uint256 = self._terms[node_id][first - 1]
        entry: uint256 = (covering & ~(field | _FROM_FIELD)) | bits | (from_epoch << _FROM_SHIFT)
        if (entry ^ covering) & ~_FROM_FIELD != 0:
            assert n < MAX_TERM_POINTS, "registry: too many terms changes"
            # move the later entries up by one, the last first
            for k: uint256 in range(first, n, bound=_TAIL):
                self._terms[node_id][n + first - k] = self._terms[node_id][n + first - k - 1]
            self._terms[node_id][first] = entry
            n += 1
            change_from = first + 1
            result.term_points = n
    for k: uint256 in range(change_from, n, bound=_TAIL):
        self._terms[node_id][k] = (self._terms[node_id][k] & ~field) | bits
    return result
