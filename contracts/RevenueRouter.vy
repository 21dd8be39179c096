# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title EdgeShare revenue router
@custom:contract-name RevenueRouter
@license MIT
@notice Takes revenue in only against usage reports signed by each node's
        attestor (EIP-712), holds it through a challenge window in which the
        guardian can dispute a report (the payer gets the money back), then
        splits it: the protocol fee to the treasury, the operator's cut to the
        operator, and the rest to the node's holders through its NodeShare.
        Treasury, operators and refunded payers withdraw what they are owed.
        Revenue that customers paid the node through the suite's
        PaymentChannels is split at once, and counts toward the usage report
        of the epoch in which it was redeemed: the payer of that report pays
        only the rest.
@dev A (node, epoch) holds at most one live report: pending, then finalized
     or disputed. Its first report has version 0; a disputed epoch takes a
     report again, but only one of the next version (one higher), so the
     disputed report can never come back and no version can close the epoch
     for good. Split of a
     report of revenue R, at the protocol fee f and the operator cut c of the
     report's epoch:
     fee = R * f // MAX_BPS, cut = R * c // MAX_BPS (both rounded down), holders
     get R - fee - cut; a finalize call sums these over its epochs, so the parts
     always add up to the gross exactly. A report's R is what its payer owes:
     inferences x price // 1000 less the channel revenue credited to its
     (node, epoch), and never below 0.
@custom:security Signatures must be low-s with v in {27, 28} and recover the
     node's current attestor; the domain binds chain id and this router. A bad
     report reverts its whole batch, but one that someone else settled first is
     skipped, so nobody can make a payer's batch or a keeper's finalize fail.
     A zero-revenue report is accepted only from the node's operator or
     attestor. Payment is one transfer per call, measured by the router's
     balance change (a fee-on-transfer token is rejected). State is written
     before any token moves and every state-changing function is non-reentrant.
     Disputes are possible only inside the challenge window, paused or not; a
     report whose window has passed is final. While the suite is paused nothing
     is settled or finalized, and withdrawals and channel redemptions go on.
     Only the PaymentChannels contract linked once by the owner can credit
     channel revenue, and it pays before the split (measured like a settlement).
"""

from ethereum.ercs import IERC20

from .interfaces import INodeRegistry
from .interfaces import INodeShare
from .modules import eip712

initializes: eip712

exports: (eip712.DOMAIN_SEPARATOR, eip712.eip712Domain)

MAX_BPS: constant(uint256) = 10_000
# The protocol never takes more than a fifth of gross revenue.
MAX_PROTOCOL_FEE_BPS: constant(uint256) = 2_000
MAX_CHALLENGE_PERIOD: constant(uint256) = 30 * 86_400
# The guardian always has at least an hour to dispute a report.
MIN_CHALLENGE_PERIOD: constant(uint256) = 3_600
MAX_BATCH: constant(uint256) = 100
SIGNATURE_LENGTH: constant(uint256) = 65
# Revenue of one report fits 96 bits of its settlement slot (7.9e28 base units).
MAX_REPORT_REVENUE: constant(uint256) = 2**96 - 1
USAGE_REPORT_TYPE_HASH: constant(bytes32) = keccak256(
    "UsageReport(uint256 nodeId,uint64 epoch,uint32 version,uint64 inferences,uint256 revenue,uint32 latencyMs,uint16 uptimeBps,uint64 deadline)"
)
# Settlement states (0: no report accepted).
PENDING: constant(uint256) = 1
FINALIZED: constant(uint256) = 2
DISPUTED: constant(uint256) = 3
# _settlements slot (low to high): revenue 96 | batch id 64 | operator cut 16 | state 8
# | version 32 | credited 1 (channel revenue was credited to the epoch: only then does a
# report read channel_revenue, so a report of an epoch without any costs no extra slot)
# _batches slot (low to high): payer 160 | settled at 64
_MASK_8: constant(uint256) = 2**8 - 1
_MASK_16: constant(uint256) = 2**16 - 1
_MASK_32: constant(uint256) = 2**32 - 1
_MASK_64: constant(uint256) = 2**64 - 1
_MASK_96: constant(uint256) = 2**96 - 1
_MASK_160: constant(uint256) = 2**160 - 1
_CREDITED: constant(uint256) = 1 << 216
# What the router checks of a channels contract before linking it.
interface IPaymentChannels:
    def ROUTER() -> address: view


REGISTRY: public(immutable(INodeRegistry))
STABLECOIN: public(immutable(IERC20))
PROTOCOL_FEE_BPS: public(immutable(uint256))
CHALLENGE_PERIOD: public(immutable(uint256))


# Field names are those of the EIP-712 type, which other clients sign.
struct UsageReport:
    nodeId: uint256
    epoch: uint64
    version: uint32
    inferences: uint64
    revenue: uint256
    latencyMs: uint32
    uptimeBps: uint16
    deadline: uint64


struct Settlement:
    state: uint256
    version: uint32
    revenue: uint256
    operator_cut_bps: uint256
    payer: address
    settled_at: uint256
    finalizable_at: uint256


treasury: public(reentrant(address))
# Stablecoin base units the treasury, operators and refunded payers can withdraw.
owed: public(reentrant(HashMap[address, uint256]))
total_owed: public(reentrant(uint256))
# Revenue settled and still inside (or waiting after) its challenge window.
total_pending: public(reentrant(uint256))
total_finalized: public(reentrant(uint256))
total_disputed: public(reentrant(uint256))
batch_count: public(reentrant(uint256))
# The suite's PaymentChannels (linked once by the owner; the zero address until then).
channels: public(reentrant(address))
# Channel revenue credited to (node, epoch): what customers' vouchers redeemed in that
# epoch paid the node. A usage report of the epoch is owed only beyond it.
channel_revenue: public(reentrant(HashMap[uint256, HashMap[uint64, uint256]]))
total_channel_revenue: public(reentrant(uint256))

_settlements: HashMap[uint256, HashMap[uint64, uint256]]
_batches: HashMap[uint256, uint256]


# Every field of the signed report but its deadline (which only gated acceptance), and
# the operator cut it will be split with. The payer pays `revenue` less the channel
# revenue credited to the epoch (ChannelRevenue, all logged before: the epoch has ended),
# not below 0; settlement() holds that figure. The signer is the node's attestor at that
# point of the event order (AttestorRotated).
event UsageSettled:
    node_id: indexed(uint256)
    epoch: indexed(uint64)
    payer: indexed(address)
    version: uint32
    inferences: uint64
    revenue: uint256
    latency_ms: uint32
    uptime_bps: uint16
    operator_cut_bps: uint256


event RevenueDisputed:
    node_id: indexed(uint256)
    epoch: indexed(uint64)
    payer: indexed(address)
    version: uint32
    revenue: uint256


# A report of a batch that is not settled because its epoch's record refuses it
# (someone settled the epoch first). Logged before any other check: it names what
# the caller sent, not a signed report.
event ReportSkipped:
    node_id: indexed(uint256)
    epoch: indexed(uint64)
    version: uint32


# An epoch of a finalize call that is not due: its state (0 none, 1 pending but
# inside its challenge window, 2 finalized, 3 disputed).
event FinalizeSkipped:
    node_id: indexed(uint256)
    epoch: indexed(uint64)
    state: uint256


event RevenueFinalized:
    node_id: indexed(uint256)
    epoch: indexed(uint64)
    revenue: uint256


event RevenueSplit:
    node_id: indexed(uint256)
    epochs: uint256
    gross: uint256
    protocol_fee: uint256
    operator_cut: uint256
    holders: uint256


# Customers' vouchers redeemed through the channels contract and split at once.
event ChannelRevenue:
    node_id: indexed(uint256)
    epoch: indexed(uint64)
    amount: uint256


event ChannelsSet:
    channels: indexed(address)


event Withdrawn:
    account: indexed(address)
    receiver: indexed(address)
    amount: uint256


event TreasurySet:
    treasury: indexed(address)


event ExcessRecovered:
    receiver: indexed(address)
    amount: uint256


@deploy
def __init__(
    registry: INodeRegistry,
    stablecoin: IERC20,
    protocol_fee_bps: uint256,
    treasury: address,
    challenge_period: uint256,
):
    """
    @notice Deploys the router for one registry and one stablecoin.
    @param registry The NodeRegistry whose nodes this router pays.
    @param stablecoin The token revenue is paid in.
    @param protocol_fee_bps The protocol fee, at most MAX_PROTOCOL_FEE_BPS; fixed.
    @param treasury Where protocol fees accrue.
    @param challenge_period Seconds settled revenue can be disputed before it is
           paid out: 1 hour to 30 days.
    """
    assert registry.address.is_contract, "router: registry has no code"
    assert stablecoin.address.is_contract, "router: stablecoin has no code"
    assert protocol_fee_bps <= MAX_PROTOCOL_FEE_BPS, "router: protocol fee above cap"
    assert treasury != empty(address), "router: treasury is the zero address"
    assert challenge_period >= MIN_CHALLENGE_PERIOD, "router: challenge period too short"
    assert challenge_period <= MAX_CHALLENGE_PERIOD, "router: challenge period too long"
    eip712.__init__("EdgeShare", "1")
    REGISTRY = registry
    STABLECOIN = stablecoin
    PROTOCOL_FEE_BPS = protocol_fee_bps
    CHALLENGE_PERIOD = challenge_period
    self.treasury = treasury
    log TreasurySet(treasury=treasury)


@external
def settle(report: UsageReport, signature: Bytes[65]) -> uint256:
    """
    @notice Accepts one signed usage report and takes its revenue from the caller.
            Reverts if the epoch's record refuses the report: a live report is
            there, or the version is not the next one after a disputed report's
            (0 for an epoch never settled).
    @param report The report, as its node's attestor signed it.
    @param signature The attestor's signature, r || s || v.
    @return What the caller paid, in stablecoin base units: the report's revenue
            less the channel revenue credited to its (node, epoch).
    """
    assert len(signature) == SIGNATURE_LENGTH, "router: signature must be 65 bytes"
    epoch: uint64 = self._open()
    batch_id: uint256 = self._new_batch()
    total: uint256 = self._settle(
        report,
        convert(extract32(signature, 0), uint256),
        convert(extract32(signature, 32), uint256),
        # v is byte 64: the low byte of the word at offset 33
        convert(extract32(signature, 33), uint256) & 255,
        batch_id,
        epoch,
        False,
    )
    self.total_pending += total
    self._pull(msg.sender, total)
    return total


@external
def settle_many(
    reports: DynArray[UsageReport, MAX_BATCH],
    signatures: Bytes[MAX_BATCH * SIGNATURE_LENGTH],
) -> uint256:
    """
    @notice Accepts up to MAX_BATCH signed reports and takes their total revenue
            from the caller in one transfer. Any bad report reverts them all;
            a report whose epoch already has a live report (someone settled it
            first) is skipped and costs nothing (ReportSkipped).
    @dev The signatures come packed, 65 bytes (r || s || v) per report in report
         order: no per-signature offset, length and padding words in the calldata.
    @param reports The reports.
    @param signatures The reports' signatures, concatenated.
    @return The total paid, in stablecoin base units: the reports' revenue less
            their epochs' channel revenue (skipped reports excluded).
    """
    assert len(reports) != 0, "router: no reports"
    assert len(signatures) == len(reports) * SIGNATURE_LENGTH, "router: need 65 signature bytes per report"
    epoch: uint64 = self._open()
    batch_id: uint256 = self._new_batch()
    total: uint256 = 0
    for i: uint256 in range(len(reports), bound=MAX_BATCH):
        at: uint256 = i * SIGNATURE_LENGTH
        total += self._settle(
            reports[i],
            convert(extract32(signatures, at), uint256),
            convert(extract32(signatures, at + 32), uint256),
            # v is byte at + 64: the low byte of the word at at + 33
            convert(extract32(signatures, at + 33), uint256) & 255,
            batch_id,
            epoch,
            True,
        )
    self.total_pending += total
    self._pull(msg.sender, total)
    return total


@external
def dispute(node_id: uint256, epoch: uint64):
    """
    @notice Voids a pending report within its challenge window and owes its
            revenue back to whoever paid it. Guardian only. The epoch then takes
            a corrected report: one signed with a higher version.
    @dev The window is the same whether or not the suite is paused: a report
         whose window has passed is final, even before anyone finalizes it.
    @param node_id The node.
    @param epoch The report's epoch.
    """
    assert msg.sender == staticcall REGISTRY.guardian(), "router: not guardian"
    packed: uint256 = self._settlements[node_id][epoch]
    assert (packed >> 176) & _MASK_8 == PENDING, "router: nothing pending to dispute"
    batch: uint256 = self._batches[(packed >> 96) & _MASK_64]
    assert block.timestamp < (batch >> 160) + CHALLENGE_PERIOD, "router: challenge window closed"
    revenue: uint256 = packed & _MASK_96
    payer: address = convert(convert(batch & _MASK_160, uint160), address)
    self._settlements[node_id][epoch] = self._with_state(packed, DISPUTED)
    self.owed[payer] += revenue
    self.total_owed += revenue
    self.total_pending -= revenue
    self.total_disputed += revenue
    log RevenueDisputed(
        node_id=node_id, epoch=epoch, payer=payer, version=convert((packed >> 184) & _MASK_32, uint32), revenue=revenue
    )


@external
def finalize(node_id: uint256, epochs: DynArray[uint64, MAX_BATCH]) -> uint256:
    """
    @notice Pays out a node's pending revenue of the given epochs once their
            challenge windows have passed: fee to the treasury, cut to the
            operator, the rest to the holders (where it starts vesting).
            Anyone may call it. Epochs that are not due (finalized by someone
            else first, disputed, never settled, or still inside their window,
            perhaps because someone settled them just now) are skipped
            (FinalizeSkipped), so nobody can make a keeper's call fail.
    @param node_id The node.
    @param epochs Epochs with pending reports whose window has passed.
    @return The gross revenue finalized (0 if every epoch was skipped).
    """
    assert not staticcall REGISTRY.paused(), "router: paused"
    assert len(epochs) != 0, "router: no epochs"
    gross: uint256 = 0
    fee: uint256 = 0
    cut: uint256 = 0
    count: uint256 = 0
    for epoch: uint64 in epochs:
        packed: uint256 = self._settlements[node_id][epoch]
        state: uint256 = (packed >> 176) & _MASK_8
        if state != PENDING:
            log FinalizeSkipped(node_id=node_id, epoch=epoch, state=state)
            continue
        settled_at: uint256 = self._batches[(packed >> 96) & _MASK_64] >> 160
        if block.timestamp < settled_at + CHALLENGE_PERIOD:
            log FinalizeSkipped(node_id=node_id, epoch=epoch, state=state)
            continue
        self._settlements[node_id][epoch] = self._with_state(packed, FINALIZED)
        revenue: uint256 = packed & _MASK_96
        gross += revenue
        # both round down; the holders' part takes the remainder
        fee += revenue * PROTOCOL_FEE_BPS // MAX_BPS
        cut += revenue * ((packed >> 160) & _MASK_16) // MAX_BPS
        count += 1
        log RevenueFinalized(node_id=node_id, epoch=epoch, revenue=revenue)
    if count == 0:
        return 0
    self.total_pending -= gross
    self.total_finalized += gross
    self._pay_out(node_id, count, gross, fee, cut)
    return gross


@external
def credit_channel_revenue(node_id: uint256, amount: uint256) -> uint64:
    """
    @notice Takes `amount` that customers' vouchers paid `node_id` from the
            channels contract and splits it at once, with the operator cut of
            the epoch now in progress; credits it to that epoch, so that the
            epoch's usage report is owed only beyond it. Channels contract only.
            Goes on while the suite is paused: the customers signed for it, and
            the node must be able to redeem until a channel's grace ends.
    @param node_id The node.
    @param amount Stablecoin base units, already approved to the router.
    @return The epoch the revenue is credited to.
    """
    assert msg.sender == self.channels, "router: not the channels contract"
    assert amount != 0, "router: amount is zero"
    epoch: uint64 = staticcall REGISTRY.current_epoch()
    terms: INodeRegistry.UsageTerms = staticcall REGISTRY.usage_terms(node_id, epoch)
    assert terms.registered, "router: node not registered"
    self.channel_revenue[node_id][epoch] += amount
    self.total_channel_revenue += amount
    # no report can exist yet for the epoch in progress: only the flag is set
    packed: uint256 = self._settlements[node_id][epoch]
    if packed & _CREDITED == 0:
        self._settlements[node_id][epoch] = packed | _CREDITED
    self._pull(msg.sender, amount)
    log ChannelRevenue(node_id=node_id, epoch=epoch, amount=amount)
    # both round down, as in finalize; the holders' part takes the remainder
    self._pay_out(
        node_id,
        1,
        amount,
        amount * PROTOCOL_FEE_BPS // MAX_BPS,
        amount * terms.operator_cut_bps // MAX_BPS,
    )
    return epoch


@external
def set_channels(channels: address):
    """
    @notice Links the suite's PaymentChannels, once. It must have been built for
            this router.
    @param channels The PaymentChannels contract.
    """
    assert msg.sender == staticcall REGISTRY.owner(), "router: not owner"
    assert self.channels == empty(address), "router: channels already set"
    assert channels.is_contract, "router: channels has no code"
    assert staticcall IPaymentChannels(channels).ROUTER() == self, "router: channels is for another router"
    self.channels = channels
    log ChannelsSet(channels=channels)


@external
def withdraw(receiver: address) -> uint256:
    """
    @notice Pays the caller (treasury, operator or refunded payer) everything it is owed.
    @param receiver Where the stablecoin goes.
    @return The amount paid (0 if nothing was owed).
    """
    assert receiver != empty(address), "router: receiver is the zero address"
    amount: uint256 = self.owed[msg.sender]
    if amount == 0:
        return 0
    self.owed[msg.sender] = 0
    self.total_owed -= amount
    assert extcall STABLECOIN.transfer(receiver, amount, default_return_value=True), "router: stablecoin transfer failed"
    log Withdrawn(account=msg.sender, receiver=receiver, amount=amount)
    return amount


@external
def set_treasury(treasury: address):
    """
    @notice Moves where future protocol fees accrue; fees already owed stay
            withdrawable by the previous treasury.
    @param treasury The new treasury.
    """
    assert msg.sender == staticcall REGISTRY.owner(), "router: not owner"
    assert treasury != empty(address), "router: treasury is the zero address"
    self.treasury = treasury
    log TreasurySet(treasury=treasury)


@external
def recover_excess(receiver: address) -> uint256:
    """
    @notice Sends stablecoin that reached the router by mistake (a plain
            transfer, not a settlement) to `receiver`. Owner only. Only the
            excess over what the router owes and holds pending can move.
    @param receiver Where the excess goes (normally back to whoever sent it).
    @return The amount sent.
    """
    assert msg.sender == staticcall REGISTRY.owner(), "router: not owner"
    assert receiver != empty(address), "router: receiver is the zero address"
    held: uint256 = staticcall STABLECOIN.balanceOf(self)
    committed: uint256 = self.total_owed + self.total_pending
    if held <= committed:
        return 0
    amount: uint256 = held - committed
    assert extcall STABLECOIN.transfer(receiver, amount, default_return_value=True), "router: stablecoin transfer failed"
    log ExcessRecovered(receiver=receiver, amount=amount)
    return amount


@external
@view
@reentrant
def is_settled(node_id: uint256, epoch: uint64) -> bool:
    """
    @notice Whether (node, epoch) has a live report: pending or finalized.
    @param node_id The node.
    @param epoch The epoch.
    @return True if no other report can be accepted for it.
    """
    state: uint256 = (self._settlements[node_id][epoch] >> 176) & _MASK_8
    return state == PENDING or state == FINALIZED


@external
@view
@reentrant
def accepts(node_id: uint256, epoch: uint64, version: uint32) -> bool:
    """
    @notice Whether a report of `version` for (node, epoch) could be settled
            as far as the epoch's record goes: none yet, or only a disputed
            report of a lower version.
    @param node_id The node.
    @param epoch The epoch.
    @param version The report's version.
    @return True if the record does not stand in its way (version 0 for an epoch
            never settled, the next version after a disputed report's).
    """
    return self._accepts(self._settlements[node_id][epoch], version)


@external
@view
@reentrant
def settlement(node_id: uint256, epoch: uint64) -> Settlement:
    """
    @notice The full record of a (node, epoch) settlement.
    @param node_id The node.
    @param epoch The epoch.
    @return State (0 none, 1 pending, 2 finalized, 3 disputed), the report's
            version, the revenue its payer paid (the report's less the epoch's
            channel credit), operator cut, payer, settlement time, and when it
            can be finalized.
    """
    packed: uint256 = self._settlements[node_id][epoch]
    if (packed >> 176) & _MASK_8 == 0:
        return empty(Settlement)
    batch: uint256 = self._batches[(packed >> 96) & _MASK_64]
    return Settlement(
        state=(packed >> 176) & _MASK_8,
        version=convert((packed >> 184) & _MASK_32, uint32),
        revenue=packed & _MASK_96,
        operator_cut_bps=(packed >> 160) & _MASK_16,
        payer=convert(convert(batch & _MASK_160, uint160), address),
        settled_at=batch >> 160,
        finalizable_at=(batch >> 160) + CHALLENGE_PERIOD,
    )


@external
@view
@reentrant
def report_digest(report: UsageReport) -> bytes32:
    """
    @notice The EIP-712 digest an attestor signs for `report`.
    @param report The report.
    @return The digest.
    """
    return self._digest(report)


@external
@view
@reentrant
def current_epoch() -> uint64:
    """
    @notice The epoch now in progress (the registry's clock).
    @return The epoch number.
    """
    return staticcall REGISTRY.current_epoch()


@internal
@view
def _open() -> uint64:
    assert not staticcall REGISTRY.paused(), "router: paused"
    return staticcall REGISTRY.current_epoch()


@internal
def _new_batch() -> uint256:
    batch_id: uint256 = self.batch_count + 1
    self.batch_count = batch_id
    self._batches[batch_id] = convert(convert(msg.sender, uint160), uint256) | (block.timestamp << 160)
    return batch_id


@internal
@view
def _digest(report: UsageReport) -> bytes32:
    return eip712._hash_typed_data(
        keccak256(
            abi_encode(
                USAGE_REPORT_TYPE_HASH,
                report.nodeId,
                report.epoch,
                report.version,
                report.inferences,
                report.revenue,
                report.latencyMs,
                report.uptimeBps,
                report.deadline,
            )
        )
    )


@internal
@pure
def _accepts(packed: uint256, version: uint32) -> bool:
    # no report yet (version 0), or a disputed one that the next version replaces
    state: uint256 = (packed >> 176) & _MASK_8
    if state == 0:
        return version == 0
    return state == DISPUTED and convert(version, uint256) == ((packed >> 184) & _MASK_32) + 1


@internal
@pure
def _with_state(packed: uint256, state: uint256) -> uint256:
    return (packed & ~(_MASK_8 << 176)) | (state << 176)


@internal
def _settle(
    report: UsageReport,
    r: uint256,
    s: uint256,
    v: uint256,
    batch_id: uint256,
    current: uint64,
    skip_taken: bool,
) -> uint256:
    previous: uint256 = self._settlements[report.nodeId][report.epoch]
    if (previous >> 176) & _MASK_8 == 0:
        # the common case: an epoch never settled takes its first report, version 0
        assert report.version == 0, "router: a first report has version 0"
    elif not self._accepts(previous, report.version):
        if skip_taken:
            log ReportSkipped(node_id=report.nodeId, epoch=report.epoch, version=report.version)
            return 0
        assert (previous >> 176) & _MASK_8 == DISPUTED, "router: epoch already settled"
        raise "router: version is not the disputed report's next"
    assert report.epoch < current, "router: epoch not ended"
    assert block.timestamp <= convert(report.deadline, uint256), "router: report deadline passed"
    assert report.uptimeBps <= 10_000, "router: uptime above 100%"
    assert report.revenue <= MAX_REPORT_REVENUE, "router: revenue too large"
    terms: INodeRegistry.UsageTerms = staticcall REGISTRY.usage_terms(report.nodeId, report.epoch)
    assert terms.registered, "router: epoch before the node was registered"
    assert terms.active, "router: node not active in that epoch"
    # rounds down, as the attestor's tools compute it; inferences < 2**64 and price < 2**168
    expected: uint256 = convert(report.inferences, uint256) * terms.price_per_1k // 1000
    assert report.revenue == expected, "router: revenue does not match inferences x price"
    # the epoch has ended, so no redemption can add to its credit any more
    credit: uint256 = 0
    if previous & _CREDITED != 0:
        credit = self.channel_revenue[report.nodeId][report.epoch]
    due: uint256 = expected - min(expected, credit)
    signer: address = eip712._recover(self._digest(report), v, r, s)
    assert signer == terms.attestor, "router: signer is not the node's attestor"
    if report.revenue == 0:
        # a free report could close epochs for anyone holding the key: only the node's own may
        operator: address = (staticcall REGISTRY.payout_terms(report.nodeId)).operator
        assert msg.sender == operator or msg.sender == terms.attestor, "router: zero report not from the operator or attestor"
    self._settlements[report.nodeId][report.epoch] = (
        due
        | (batch_id << 96)
        | (terms.operator_cut_bps << 160)
        | (PENDING << 176)
        | (convert(report.version, uint256) << 184)
        | (previous & _CREDITED)
    )
    log UsageSettled(
        node_id=report.nodeId,
        epoch=report.epoch,
        payer=msg.sender,
        version=report.version,
        inferences=report.inferences,
        revenue=report.revenue,
        latency_ms=report.latencyMs,
        uptime_bps=report.uptimeBps,
        operator_cut_bps=terms.operator_cut_bps,
    )
    return due


@internal
def _pull(payer: address, amount: uint256):
    if amount == 0:
        return
    before: uint256 = staticcall STABLECOIN.balanceOf(self)
    assert extcall STABLECOIN.transferFrom(payer, self, amount, default_return_value=True), "router: stablecoin transfer failed"
    received: uint256 = staticcall STABLECOIN.balanceOf(self) - before
    assert received == amount, "router: stablecoin delivered a different amount"


@internal
def _pay_out(node_id: uint256, epochs: uint256, gross: uint256, fee: uint256, cut: uint256):
    holders: uint256 = gross - fee - cut
    terms: INodeRegistry.PayoutTerms = staticcall REGISTRY.payout_terms(node_id)
    if fee != 0:
        self.owed[self.treasury] += fee
    if cut != 0:
        self.owed[terms.operator] += cut
    self.total_owed += fee + cut
    if holders != 0:
        assert extcall STABLECOIN.transfer(terms.share_token, holders, default_return_value=True), "router: stablecoin transfer failed"
        extcall INodeShare(terms.share_token).notify_revenue(holders)
    log RevenueSplit(node_id=node_id, epochs=epochs, gross=gross, protocol_fee=fee, operator_cut=cut, holders=holders)
