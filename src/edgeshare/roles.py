"""What each role may do to a deployed suite, one function per contract call.

Every function checks first what the contract would check of the caller (so a wrong key
is named before anything is simulated), then sends one transaction through the one write
path (``Transactor.send``; with ``tx.dry_run`` it is simulated, not sent) and returns an
``Action``: what was done, the transaction, and the figures the contract reported.

Roles (docs/SECURITY.md): the **owner** appoints the registrar and guardian, moves the
treasury and hands ownership over in two steps; the **registrar** pauses, resumes and
retires nodes; the **guardian** pauses the suite and disputes reports inside their
challenge window; each node's **operator** sets its price, cut, attestor, metadata and
status; the **treasury**, operators and refunded payers withdraw what the router owes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgeshare.contracts import Contract
from edgeshare.errors import InputError, NotLocalChain
from edgeshare.metadata import (
    NodeMetadata,
    add_content_hash,
    build_data_uri,
    build_document,
    fetch_metadata,
    get_uri_hash,
)
from edgeshare.models import parse_address
from edgeshare.poster import PENDING, fetch_records
from edgeshare.suite import NodeRecord, NodeStatus, Suite, send_mint_mock
from edgeshare.tx import Receipt, Transactor


@dataclass(frozen=True)
class Action:
    """One role action's outcome."""

    what: str
    """What was done (or, in a dry run, would be)."""
    transaction: str
    """Its hash ("" in a dry run)."""
    gas: int
    """Gas used (in a dry run: the limit it would be sent with)."""
    details: dict[str, Any] = field(default_factory=dict)
    """What the contract's events reported, e.g. ``from_epoch`` of a price change."""

    @property
    def simulated(self) -> bool:
        """True when nothing was sent (a dry run)."""
        return self.transaction == ""


def _send(
    tx: Transactor, contract: Contract, name: str, args: tuple[Any, ...], what: str, event: str = ""
) -> Action:
    receipt: Receipt = tx.send(contract.tx(name, *args), what)
    details: dict[str, Any] = {}
    if event and not receipt.is_simulated:
        found = contract.events(receipt, event)
        details = dict(found[0]) if found else {}
    return Action(what, receipt.tx_hash, receipt.gas_used, details)


def _require(account: str, expected: str, role: str) -> None:
    if account.lower() != expected.lower():
        raise InputError(f"{account} is not {role} ({expected}): use that account's key")


# ------------------------------------------------------------------ operator ----


def _operated(tx: Transactor, suite: Suite, node_id: int) -> NodeRecord:
    node = suite.fetch_node(node_id)
    _require(tx.signer.address, node.operator, f"node {node_id}'s operator")
    return node


def send_set_price(tx: Transactor, suite: Suite, node_id: int, price_per_1k: int) -> Action:
    """Set a node's price (base units per 1,000 inferences) from the next epoch on."""
    _operated(tx, suite, node_id)
    what = f"set node {node_id}'s price"
    return _send(tx, suite.registry, "set_price", (node_id, price_per_1k), what, "PriceSet")


def send_propose_cut(tx: Transactor, suite: Suite, node_id: int, cut_bps: int) -> Action:
    """Propose a new operator cut: a decrease from the next epoch, an increase from the
    first epoch starting at least the registry's delay (7 days) from now."""
    _operated(tx, suite, node_id)
    what = f"propose node {node_id}'s operator cut"
    args = (node_id, cut_bps)
    return _send(tx, suite.registry, "propose_operator_cut", args, what, "OperatorCutProposed")


def send_rotate_attestor(tx: Transactor, suite: Suite, node_id: int, attestor: str) -> Action:
    """Replace the key that signs the node's usage reports."""
    attestor = parse_address(attestor, "attestor")
    node = _operated(tx, suite, node_id)
    if attestor.lower() == node.attestor.lower():
        raise InputError(f"{attestor} is already node {node_id}'s attestor")
    what = f"rotate node {node_id}'s attestor"
    return _send(tx, suite.registry, "rotate_attestor", (node_id, attestor), what)


def build_metadata_uri(suite: Suite, uri: str | None, metadata: NodeMetadata | None) -> str:
    """The ``metadata_uri`` to register: ``uri`` (a published document's) with the content
    hash of ``metadata`` added, or, on a local chain with no ``uri``, a ``data:`` URI of the
    document. A ``data:`` or ``file:`` URI given alone is read and checked against its hash.
    """
    from edgeshare.chain import is_local_chain_id

    if metadata is not None and not metadata.is_empty():
        document = build_document(metadata)
        if uri:
            return add_content_hash(uri, document)
        data_uri = build_data_uri(document)
        if is_local_chain_id(suite.manifest.chain_id) and len(data_uri.encode()) <= 256:
            return data_uri
        raise InputError(
            f"publish this document and give its URI (ipfs:// or https://): {document.decode()}"
        )
    if not uri:
        raise InputError("give a metadata URI, or the fields (--endpoint, --model, ...)")
    if get_uri_hash(uri) is not None and uri.lower().startswith(("data:", "file:")):
        fetch_metadata(uri)  # the document must match the hash it is registered with
    return uri


def send_set_metadata(tx: Transactor, suite: Suite, node_id: int, uri: str) -> Action:
    """Point the node at a new metadata document (``build_metadata_uri`` makes the URI)."""
    _operated(tx, suite, node_id)
    if len(uri.encode()) > 256:
        raise InputError(f"the metadata URI is {len(uri.encode())} bytes; the registry keeps 256")
    what = f"set node {node_id}'s metadata"
    return _send(tx, suite.registry, "set_metadata_uri", (node_id, uri), what)


def send_transfer_operator(tx: Transactor, suite: Suite, node_id: int, new: str) -> Action:
    """Start handing a node over (the new operator accepts; the zero address cancels)."""
    new = parse_address(new, "new operator")
    _operated(tx, suite, node_id)
    what = f"hand node {node_id} over to {new}"
    return _send(tx, suite.registry, "transfer_operator", (node_id, new), what)


def send_accept_operator(tx: Transactor, suite: Suite, node_id: int) -> Action:
    """Take over a node handed to the signer."""
    node = suite.fetch_node(node_id)
    _require(tx.signer.address, node.pending_operator, f"node {node_id}'s pending operator")
    what = f"accept node {node_id}"
    return _send(tx, suite.registry, "accept_operator", (node_id,), what)


def send_set_node_status(tx: Transactor, suite: Suite, node_id: int, status: NodeStatus) -> Action:
    """Pause, resume or retire a node (operator: pause and resume; registrar: all three).

    The registry's rules, checked here first: a retired node stays retired; only the
    registrar retires and lifts a pause the registrar made; a status cannot be set twice.
    """
    node = suite.fetch_node(node_id)
    me = tx.signer.address.lower()
    registrar = str(suite.registry.call("registrar"))
    is_registrar = me == registrar.lower()
    if not is_registrar and me != node.operator.lower():
        raise InputError(
            f"{tx.signer.address} is neither node {node_id}'s operator ({node.operator}) "
            f"nor the registrar ({registrar})"
        )
    name = status.name.lower() if status.name else str(status)
    if node.status == "retired":
        raise InputError(f"node {node_id} is retired; nothing can change its status")
    if status == NodeStatus.RETIRED and not is_registrar:
        raise InputError(f"only the registrar ({registrar}) retires a node")
    if status == NodeStatus.ACTIVE and node.status == "active":
        raise InputError(f"node {node_id} is already active")
    if status == NodeStatus.ACTIVE and node.paused_by_registrar and not is_registrar:
        raise InputError(f"node {node_id} was paused by the registrar; only it can resume it")
    already_paused = node.status == "paused" and (not is_registrar or node.paused_by_registrar)
    if status == NodeStatus.PAUSED and already_paused:
        raise InputError(f"node {node_id} is already paused")
    verb = {"active": "resume", "paused": "pause", "retired": "retire"}[name]
    what = f"{verb} node {node_id}"
    args = (node_id, int(status))
    return _send(tx, suite.registry, "set_node_status", args, what, "NodeStatusChanged")


# ------------------------------------------------------------------ guardian ----


def _require_guardian(tx: Transactor, suite: Suite) -> None:
    _require(tx.signer.address, str(suite.registry.call("guardian")), "the guardian")


def send_dispute(tx: Transactor, suite: Suite, node_id: int, epoch: int) -> Action:
    """Void a pending report inside its challenge window; its payer is owed the revenue."""
    _require_guardian(tx, suite)
    suite.fetch_share_tokens([node_id])  # an unknown node is named as such
    (record,) = fetch_records(suite, [(node_id, epoch)])
    if record.state != PENDING:
        raise InputError(f"node {node_id} epoch {epoch} has no pending report to dispute")
    now = fetch_chain_time(suite)
    if now >= record.finalizable_at:
        raise InputError(
            f"node {node_id} epoch {epoch}: the challenge window closed at "
            f"{record.finalizable_at} (chain time {now}); the report is final"
        )
    what = f"dispute node {node_id} epoch {epoch}"
    return _send(tx, suite.router, "dispute", (node_id, epoch), what, "RevenueDisputed")


def send_pause_suite(tx: Transactor, suite: Suite, paused: bool) -> Action:
    """Pause (stop registrations, settlement and finalizing) or unpause the suite."""
    _require_guardian(tx, suite)
    if bool(suite.registry.call("paused")) == paused:
        raise InputError(f"the suite is already {'paused' if paused else 'unpaused'}")
    name = "pause" if paused else "unpause"
    return _send(tx, suite.registry, name, (), f"{name} the suite")


# --------------------------------------------------------------------- owner ----


def _require_owner(tx: Transactor, suite: Suite) -> None:
    _require(tx.signer.address, str(suite.registry.call("owner")), "the suite's owner")


def send_set_role(tx: Transactor, suite: Suite, role: str, account: str) -> Action:
    """Appoint the registrar or the guardian (owner)."""
    if role not in ("registrar", "guardian"):
        raise InputError(f"no role {role!r}: registrar or guardian")
    account = parse_address(account, role)
    _require_owner(tx, suite)
    _nonzero(account, role)
    return _send(tx, suite.registry, f"set_{role}", (account,), f"appoint {account} {role}")


def send_set_treasury(tx: Transactor, suite: Suite, treasury: str) -> Action:
    """Move where future protocol fees accrue (fees already owed stay with the old one)."""
    treasury = parse_address(treasury, "treasury")
    _require_owner(tx, suite)
    _nonzero(treasury, "treasury")
    return _send(tx, suite.router, "set_treasury", (treasury,), f"set the treasury to {treasury}")


def send_transfer_ownership(tx: Transactor, suite: Suite, new_owner: str) -> Action:
    """Propose a new owner, who must accept (the zero address cancels a proposal)."""
    new_owner = parse_address(new_owner, "new owner")
    _require_owner(tx, suite)
    what = f"propose {new_owner} as owner"
    return _send(tx, suite.registry, "transfer_ownership", (new_owner,), what)


def send_accept_ownership(tx: Transactor, suite: Suite) -> Action:
    """Become the owner proposed by ``transfer_ownership``."""
    pending = str(suite.registry.call("pending_owner"))
    _require(tx.signer.address, pending, "the pending owner")
    return _send(tx, suite.registry, "accept_ownership", (), "accept ownership")


def send_recover_excess(tx: Transactor, suite: Suite, receiver: str) -> Action:
    """Return stablecoin sent to the router by mistake (owner; only the excess moves)."""
    receiver = parse_address(receiver, "receiver")
    _require_owner(tx, suite)
    _nonzero(receiver, "receiver")
    what = f"recover the router's excess to {receiver}"
    return _send(tx, suite.router, "recover_excess", (receiver,), what, "ExcessRecovered")


def _nonzero(account: str, name: str) -> None:
    if int(account, 16) == 0:
        raise InputError(f"the {name} cannot be the zero address")


# ------------------------------------------------ treasury, operators, payers ----


def fetch_owed(suite: Suite, account: str) -> int:
    """Stablecoin base units the router owes ``account`` (fees, cuts, refunds)."""
    return int(suite.router.call("owed", account))


def send_withdraw(tx: Transactor, suite: Suite, receiver: str | None = None) -> Action:
    """Withdraw everything the router owes the signer (treasury, operator or refunded
    payer) to ``receiver`` (default: the signer)."""
    owed = fetch_owed(suite, tx.signer.address)
    if owed == 0:
        raise InputError(f"the router owes {tx.signer.address} nothing")
    to = parse_address(receiver, "receiver") if receiver else tx.signer.address
    action = _send(tx, suite.router, "withdraw", (to,), f"withdraw to {to}", "Withdrawn")
    paid = int(action.details.get("amount", owed))  # the event's figure; a dry run: owed now
    return Action(action.what, action.transaction, action.gas, {"amount": paid, "receiver": to})


# ----------------------------------------------------------- local chains only ----


def fetch_chain_time(suite: Suite) -> int:
    """The latest block's timestamp."""
    return int(suite.rpc.call("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)


def require_local(chain_id: int, what: str) -> None:
    """Refuse ``what`` on anything but a local development chain."""
    from edgeshare.chain import is_local_chain_id

    if not is_local_chain_id(chain_id):
        raise NotLocalChain(f"{what} works on local chains only (anvil 31337, Ganache 1337)")


def send_dev_mint(tx: Transactor, suite: Suite, receiver: str, amount: int) -> Action:
    """Mint mock stablecoin to ``receiver`` (local chains; the mock's owner signs)."""
    require_local(suite.manifest.chain_id, "dev mint")
    receiver = parse_address(receiver, "receiver")
    owner = str(suite.stablecoin.call("owner"))
    _require(tx.signer.address, owner, "the mock stablecoin's owner")
    receipt = send_mint_mock(tx, suite, receiver, amount)
    return Action(f"mint mock stablecoin to {receiver}", receipt.tx_hash, receipt.gas_used)


def advance_time(suite: Suite, seconds: int) -> int:
    """Mine a block ``seconds`` after the latest one (local chains); returns its time.

    The block's time is set exactly (``evm_mine`` with a timestamp, which anvil and
    Ganache take), not added to this machine's clock as ``evm_increaseTime`` would: on an
    idle chain that lags the clock, that would land late by the lag.
    """
    require_local(suite.manifest.chain_id, "dev advance")
    if seconds < 0:
        raise InputError("time only moves forward")
    target = fetch_chain_time(suite) + max(seconds, 1)
    suite.rpc.call("evm_mine", [{"timestamp": target}])
    now = fetch_chain_time(suite)
    if now != target:
        raise InputError(f"the chain did not move its clock to {target} (it is at {now})")
    return now
