"""Posting signed usage reports in bulk: check everything, then settle in batches.

Safe to run twice: reports already settled on chain are skipped, so a second run sends
nothing. Before anything is sent, every report is checked the way the router will check
it (domain, signature, attestor, node status, price, epoch, deadline) and every problem
is reported at once; one bad report means nothing is sent. Batches are signed with
consecutive nonces and sent in JSON-RPC batches, then their receipts are awaited.

A report's payer pays only what the node's payment channels did not already pay in the
report's epoch (``fetch_dues``): the router takes ``revenue - min(revenue, credit)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgeshare.attestation import Eip712Domain, SignedReport, fetch_domain, pack_signatures, recover
from edgeshare.chain import is_local_chain_id
from edgeshare.contracts import Call, get_codec
from edgeshare.errors import InputError, TransactionFailed, raise_problems
from edgeshare.models import to_checksum
from edgeshare.pipeline import Progress, send_pipelined
from edgeshare.rpc import RpcError
from edgeshare.suite import Suite, fetch_dues
from edgeshare.tx import Planned, Transactor

DEFAULT_BATCH = 50
MAX_BATCH = 100  # RevenueRouter.MAX_BATCH
MAX_ROUNDS = 3  # posting rounds when reorganisations keep removing settlements
DEADLINE_MARGIN = 120  # a report must stay valid this long after we check it


@dataclass
class PostResult:
    """What one run of the poster did."""

    total: int
    """Reports in the input."""
    already_settled: int
    """Reports skipped because they were settled before this run."""
    settled: int
    """Reports settled by this run."""
    revenue: int
    """Stablecoin base units paid by this run (the reports' revenue less what channels
    paid the nodes in those epochs)."""
    transactions: list[str] = field(default_factory=list)
    """Hashes of the settle_many transactions sent."""
    gas_used: int = 0
    """Gas used by those transactions."""
    reposted: int = 0
    """Reports posted again because a reorganisation removed their settlement."""


# RevenueRouter.settlement() states
NONE, PENDING, FINALIZED, DISPUTED = 0, 1, 2, 3


def encode_settle_many(reports: Sequence[SignedReport]) -> str:
    """Calldata of ``settle_many(reports, signatures)`` (signatures packed, 65 bytes each)."""
    settle_many = get_codec("RevenueRouter").fn("settle_many")
    return settle_many.encode(
        [r.get_report().as_tuple() for r in reports], pack_signatures(reports)
    )


@dataclass(frozen=True)
class Record:
    """What the router holds for one (node, epoch): ``settlement()``."""

    state: int
    version: int
    revenue: int
    finalizable_at: int


def read_records(suite: Suite, keys: Sequence[tuple[int, int]]) -> list[Call]:
    """The reads of the router's record of each (node, epoch) pair (``as_record`` takes
    their results), to batch with other reads."""
    return [suite.router.read("settlement", n, e) for n, e in keys]


def as_record(found: Mapping[str, Any]) -> Record:
    """A ``settlement()`` result as a Record."""
    return Record(found["state"], found["version"], found["revenue"], found["finalizable_at"])


def fetch_records(suite: Suite, keys: Sequence[tuple[int, int]]) -> list[Record]:
    """The router's record of many (node, epoch) pairs, in JSON-RPC batches."""
    return [as_record(r) for r in suite.reader.many(read_records(suite, keys))]


def is_done(report: SignedReport, record: Record) -> bool:
    """Nothing is left to do for ``report``: its epoch has a live report (this one or
    another), or the report is a disputed version or an older one."""
    if record.state in (PENDING, FINALIZED):
        return True
    return record.state == DISPUTED and report.version <= record.version


def version_problem(report: SignedReport, record: Record) -> str | None:
    """Why the router would refuse ``report``'s version, if it would (versions go one at a
    time: 0 for an epoch's first report, the disputed report's plus one after a dispute)."""
    if record.state == NONE and report.version != 0:
        return f"version {report.version}, but a first report of an epoch has version 0"
    if record.state == DISPUTED and report.version > record.version + 1:
        return (
            f"version {report.version}, but the disputed report is version {record.version}: "
            f"the correction must be version {record.version + 1}"
        )
    return None


def fetch_settled(suite: Suite, reports: Sequence[SignedReport]) -> list[bool]:
    """For each report, whether nothing is left to do for it (``is_done``)."""
    records = fetch_records(suite, [(r.node_id, r.epoch) for r in reports])
    return [is_done(r, rec) for r, rec in zip(reports, records, strict=True)]


def check_reports(
    suite: Suite,
    reports: Sequence[SignedReport],
    domain: Eip712Domain,
    payer: str | None = None,
) -> list[str]:
    """Every reason the router would refuse any of ``reports`` (sent by ``payer``, when
    given), as messages naming it."""
    problems: list[str] = []
    now = int(suite.w3.eth.get_block("latest")["timestamp"])
    current = int(suite.router.call("current_epoch"))
    separator = domain.get_separator()
    signers: list[str | None] = []
    for i, report in enumerate(reports):
        where = f"report {i} (node {report.node_id}, epoch {report.epoch})"
        try:
            signers.append(recover(report, domain, separator))
        except InputError as exc:
            signers.append(None)
            problems.append(f"{where}: {exc}")
        if report.epoch >= current:
            problems.append(f"{where}: epoch has not ended (current epoch {current})")
        if report.deadline < now + DEADLINE_MARGIN:
            problems.append(f"{where}: deadline {report.deadline} has passed or is too close")
    calls = [suite.registry.read("usage_terms", r.node_id, r.epoch) for r in reports]
    zero_payers = [r.node_id for r in reports if r.revenue == 0 and payer is not None]
    operators = dict(
        zip(
            zero_payers,
            suite.reader.many([suite.registry.read("payout_terms", n) for n in zero_payers]),
            strict=True,
        )
    )
    for i, (report, signer, result) in enumerate(
        zip(reports, signers, suite.reader.try_many(calls), strict=True)
    ):
        where = f"report {i} (node {report.node_id}, epoch {report.epoch})"
        if isinstance(result, RpcError):
            known = "unknown node" in result.message
            problems.append(f"{where}: unknown node" if known else f"{where}: {result.message}")
            continue
        attestor, price = result["attestor"], result["price_per_1k"]
        if not result["registered"]:
            problems.append(f"{where}: the node was registered after that epoch")
        elif not result["active"]:
            problems.append(f"{where}: the node was paused or retired in that epoch")
        expected = report.inferences * price // 1000
        if report.revenue != expected:
            coin = suite.fetch_stablecoin_token()
            problems.append(
                f"{where}: revenue {report.revenue} base units ({coin.format(report.revenue)}) "
                f"!= inferences x price = {expected} ({coin.format(expected)})"
            )
        if signer is not None and signer != attestor:
            problems.append(f"{where}: signed by {signer}, but the node's attestor is {attestor}")
        if report.revenue == 0 and payer is not None:
            allowed = {attestor, operators[report.node_id]["operator"]}
            if to_checksum(bytes.fromhex(payer[2:])) not in allowed:
                problems.append(
                    f"{where}: a zero-revenue report is accepted only from the node's "
                    f"operator or attestor, not from {payer}"
                )
    return problems


def _find_duplicates(reports: Sequence[SignedReport]) -> list[str]:
    seen: dict[tuple[int, int], int] = {}
    problems = []
    for i, report in enumerate(reports):
        key = (report.node_id, report.epoch)
        if key in seen:
            problems.append(
                f"reports {seen[key]} and {i} are both for node {key[0]} epoch {key[1]}"
            )
        seen.setdefault(key, i)
    return problems


def post_reports(
    tx: Transactor,
    suite: Suite,
    reports: Sequence[SignedReport],
    domain: Eip712Domain,
    *,
    batch_size: int = DEFAULT_BATCH,
    on_progress: Progress | None = None,
) -> PostResult:
    """Settle every report not yet settled, in ``settle_many`` batches.

    Args:
        tx: The payer; pays the revenue of the reports it settles.
        suite: The deployed suite.
        reports: Signed reports (any order, any nodes).
        domain: The domain the reports say they were signed for.
        batch_size: Reports per transaction (1 to 100).
        on_progress: Called with (stage, done, total).

    Returns:
        What was settled and what was skipped.
    """
    if not 1 <= batch_size <= MAX_BATCH:
        raise InputError(f"batch size must be 1 to {MAX_BATCH}, got {batch_size}")
    progress = on_progress or (lambda _stage, _done, _total: None)
    chain_domain = fetch_domain(suite.router)
    if chain_domain != domain:
        raise InputError(
            f"the reports were signed for chain {domain.chain_id} router "
            f"{domain.verifying_contract}, but this suite is chain {chain_domain.chain_id} "
            f"router {chain_domain.verifying_contract}"
        )
    raise_problems(_find_duplicates(reports))
    records = fetch_records(suite, [(r.node_id, r.epoch) for r in reports])
    raise_problems(
        [
            f"report {i} (node {r.node_id}, epoch {r.epoch}): {problem}"
            for i, (r, rec) in enumerate(zip(reports, records, strict=True))
            if (problem := version_problem(r, rec)) is not None
        ]
    )
    pending = [r for r, rec in zip(reports, records, strict=True) if not is_done(r, rec)]
    result = PostResult(
        total=len(reports), already_settled=len(reports) - len(pending), settled=0, revenue=0
    )
    if not pending:
        return result
    for _round in range(MAX_ROUNDS):
        lost = _post_round(tx, suite, pending, domain, batch_size, progress, result)
        if not lost:
            return result
        # a reorganisation removed blocks holding our settlements: post those again
        result.reposted += len(lost)
        pending = lost
        tx.forget_nonce()
    raise TransactionFailed(
        f"{len(pending)} report(s) were settled and then removed by chain reorganisations "
        f"{MAX_ROUNDS} times; run the poster again once the chain is stable"
    )


def _post_round(
    tx: Transactor,
    suite: Suite,
    pending: list[SignedReport],
    domain: Eip712Domain,
    batch_size: int,
    progress: Progress,
    result: PostResult,
) -> list[SignedReport]:
    """Check, pay for and settle ``pending``; returns those not settled afterwards."""
    raise_problems(check_reports(suite, pending, domain, tx.signer.address))
    dues = {
        (r.node_id, r.epoch): due
        for r, due in zip(pending, fetch_dues(suite, pending), strict=True)
    }
    total = sum(dues.values())
    coin, router, rpc = suite.stablecoin, suite.router.address, suite.rpc
    payer = tx.signer.address
    balance, allowance = suite.reader.many(
        [coin.read("balanceOf", payer), coin.read("allowance", payer, router)]
    )
    if balance < total:
        unit = suite.fetch_stablecoin_token()
        raise InputError(
            f"the payer {tx.signer.address} holds {unit.format(balance)}; these reports need "
            f"{unit.format(total)}"
            + (" (on a local chain: `edgeshare dev mint ADDRESS AMOUNT`)"
               if is_local_chain_id(suite.manifest.chain_id) else "")
        )  # fmt: skip
    batches = [pending[i : i + batch_size] for i in range(0, len(pending), batch_size)]
    datas = [encode_settle_many(batch) for batch in batches]
    if allowance < total:
        approve = coin.calldata("approve", router, total)
        send_pipelined(tx, rpc, coin.address, [approve], "approve the stablecoin", progress)
        if tx.dry_run:
            # the settlements need the approval, which a dry run does not apply: every
            # report was checked above the way the router checks it; list them unsimulated
            tx.planned.extend(Planned("settle usage reports", router, d, 0, 0) for d in datas)
            return []
    # every batch is estimated on its own: a report of an epoch that channel revenue was
    # credited to costs less than one of an epoch without (its record slot is not empty),
    # so one batch's estimate cannot serve another of the same size
    receipts = send_pipelined(
        tx, rpc, suite.router.address, datas, "settle usage reports", progress
    )  # fmt: skip
    # read the settlements back: a receipt is no proof once its block is reorganised away
    now_settled = fetch_settled(suite, pending)
    done = {(r.node_id, r.epoch) for r, ok in zip(pending, now_settled, strict=True) if ok}
    if tx.dry_run:
        return []
    for batch, receipt in zip(batches, receipts, strict=True):
        if (batch[0].node_id, batch[0].epoch) in done:
            result.settled += len(batch)
            result.revenue += sum(dues[(r.node_id, r.epoch)] for r in batch)
            result.transactions.append(receipt.tx_hash)
            result.gas_used += receipt.gas_used
    return [r for r in pending if (r.node_id, r.epoch) not in done]


@dataclass
class FinalizeResult:
    """What one finalize run did."""

    finalized: int
    """Reports finalized by this run."""
    not_due: int
    """Pending reports whose challenge window has not passed yet."""
    skipped: int
    """Reports not settled, already finalized, or disputed."""
    gross: int
    """Revenue finalized, stablecoin base units."""
    transactions: list[str] = field(default_factory=list)
    next_due_at: int | None = None
    """When the first report that is not due yet becomes due (chain time), if any."""


def finalize_reports(
    tx: Transactor,
    suite: Suite,
    keys: Sequence[tuple[int, int]],
    on_progress: Progress | None = None,
) -> FinalizeResult:
    """Finalize every (node, epoch) of ``keys`` that is pending and past its window.

    One ``finalize`` call per node (up to 100 epochs each), sent with consecutive nonces.
    Safe to run again: what is finalized or disputed is skipped.
    """
    now = int(suite.w3.eth.get_block("latest")["timestamp"])
    due: dict[int, list[int]] = {}
    result = FinalizeResult(finalized=0, not_due=0, skipped=0, gross=0)
    for (node, epoch), record in zip(keys, fetch_records(suite, keys), strict=True):
        if record.state != PENDING:
            result.skipped += 1
        elif record.finalizable_at > now:
            result.not_due += 1
            result.next_due_at = min(result.next_due_at or record.finalizable_at,
                                     record.finalizable_at)  # fmt: skip
        else:
            due.setdefault(node, []).append(epoch)
            result.finalized += 1
            result.gross += record.revenue
    datas = [
        suite.router.calldata("finalize", node, epochs[i : i + MAX_BATCH])
        for node, epochs in sorted(due.items())
        for i in range(0, len(epochs), MAX_BATCH)
    ]
    if datas:
        progress = on_progress or (lambda _stage, _done, _total: None)
        receipts = send_pipelined(tx, suite.rpc, suite.router.address, datas, "finalize", progress)
        result.transactions = [r.tx_hash for r in receipts]
    return result
