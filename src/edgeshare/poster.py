"""Posting signed usage reports in bulk: check everything, then settle in batches.

Safe to run twice: reports already settled on chain are skipped, so a second run sends
nothing. Before anything is sent, every report is checked the way the router will check
it (domain, signature, attestor, node status, price, epoch, deadline) and every problem
is reported at once; one bad report means nothing is sent. Batches are signed with
consecutive nonces and sent in JSON-RPC batches, then their receipts are awaited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi.abi import decode, encode
from hexbytes import HexBytes
from web3 import Web3

from edgeshare.attestation import Eip712Domain, SignedReport, fetch_domain, pack_signatures, recover
from edgeshare.errors import InputError, TransactionFailed
from edgeshare.pipeline import Progress, send_pipelined
from edgeshare.rpc import RpcClient, RpcError
from edgeshare.suite import Suite
from edgeshare.tx import Transactor

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
    """Stablecoin base units paid by this run."""
    transactions: list[str] = field(default_factory=list)
    """Hashes of the settle_many transactions sent."""
    gas_used: int = 0
    """Gas used by those transactions."""
    reposted: int = 0
    """Reports posted again because a reorganisation removed their settlement."""


def get_rpc(w3: Web3) -> RpcClient:
    """An RpcClient for the same endpoint as ``w3`` (an HTTP provider)."""
    url = getattr(w3.provider, "endpoint_uri", None)
    if not url:
        raise InputError("posting needs an HTTP JSON-RPC endpoint")
    return RpcClient(str(url))


def _selector(signature: str) -> bytes:
    return bytes(Web3.keccak(text=signature)[:4])


_SETTLEMENT = _selector("settlement(uint256,uint64)")
# RevenueRouter.settlement() states
NONE, PENDING, FINALIZED, DISPUTED = 0, 1, 2, 3
_SETTLE_MANY = _selector(
    "settle_many((uint256,uint64,uint32,uint64,uint256,uint32,uint16,uint64)[],bytes)"
)


def encode_settle_many(reports: Sequence[SignedReport]) -> str:
    """Calldata of ``settle_many(reports, signatures)``, ABI-encoded directly.

    Every report field is a static word, so the reports are 8 words each in place, and
    the signatures are one byte string of 65 bytes per report; this is the standard
    encoding (tests compare it with web3's), only without web3's generic type walk,
    which otherwise dominates posting.
    """
    n = len(reports)
    words = bytearray(_SETTLE_MANY)
    words += (64).to_bytes(32, "big") + (64 + 32 + 256 * n).to_bytes(32, "big")
    words += n.to_bytes(32, "big")
    for r in reports:
        for value in r.as_tuple():
            words += value.to_bytes(32, "big")
    signatures = pack_signatures(reports)
    words += len(signatures).to_bytes(32, "big") + signatures + bytes(-len(signatures) % 32)
    return "0x" + words.hex()


_USAGE_TERMS = _selector("usage_terms(uint256,uint64)")


def _eth_call(to: str, data: bytes) -> tuple[str, list[Any]]:
    return ("eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"])


@dataclass(frozen=True)
class Record:
    """What the router holds for one (node, epoch): ``settlement()``."""

    state: int
    version: int
    revenue: int
    finalizable_at: int


def fetch_records(rpc: RpcClient, suite: Suite, keys: Sequence[tuple[int, int]]) -> list[Record]:
    """The router's record of many (node, epoch) pairs, in JSON-RPC batches."""
    calls = [
        _eth_call(suite.router.address, _SETTLEMENT + encode(["uint256", "uint64"], [n, e]))
        for n, e in keys
    ]
    out = []
    for (node, epoch), raw in zip(keys, rpc.batch(calls), strict=True):
        if isinstance(raw, RpcError):
            raise InputError(f"cannot read settlement of node {node} epoch {epoch}: {raw}")
        state, version, revenue, _cut, _payer, _at, finalizable_at = decode(
            ["uint256", "uint32", "uint256", "uint256", "address", "uint256", "uint256"],
            HexBytes(raw),
        )
        out.append(Record(state, version, revenue, finalizable_at))
    return out


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


def fetch_settled(rpc: RpcClient, suite: Suite, reports: Sequence[SignedReport]) -> list[bool]:
    """For each report, whether nothing is left to do for it (``is_done``)."""
    records = fetch_records(rpc, suite, [(r.node_id, r.epoch) for r in reports])
    return [is_done(r, rec) for r, rec in zip(reports, records, strict=True)]


def check_reports(
    rpc: RpcClient,
    suite: Suite,
    reports: Sequence[SignedReport],
    domain: Eip712Domain,
    payer: str | None = None,
) -> list[str]:
    """Every reason the router would refuse any of ``reports`` (sent by ``payer``, when
    given), as messages naming it."""
    problems: list[str] = []
    latest = suite.w3.eth.get_block("latest")
    now, current = int(latest["timestamp"]), int(suite.router.functions.current_epoch().call())
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
    calls = [
        _eth_call(
            suite.registry.address,
            _USAGE_TERMS + encode(["uint256", "uint64"], [r.node_id, r.epoch]),
        )
        for r in reports
    ]
    for i, (report, signer, result) in enumerate(
        zip(reports, signers, rpc.batch(calls), strict=True)
    ):
        where = f"report {i} (node {report.node_id}, epoch {report.epoch})"
        if isinstance(result, RpcError):
            problems.append(
                f"{where}: unknown node" if "unknown node" in str(result) else f"{where}: {result}"
            )
            continue
        attestor, registered, active, price, _cut = decode(
            ["address", "bool", "bool", "uint256", "uint256"], HexBytes(result)
        )
        if not registered:
            problems.append(f"{where}: the node was registered after that epoch")
        elif not active:
            problems.append(f"{where}: the node was paused or retired in that epoch")
        expected = report.inferences * price // 1000
        if report.revenue != expected:
            problems.append(f"{where}: revenue {report.revenue} != inferences x price = {expected}")
        if signer is not None and signer != Web3.to_checksum_address(attestor):
            problems.append(f"{where}: signed by {signer}, but the node's attestor is {attestor}")
        if report.revenue == 0 and payer is not None:
            allowed = {Web3.to_checksum_address(attestor), suite.fetch_operator(report.node_id)}
            if Web3.to_checksum_address(payer) not in allowed:
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


def _raise_problems(problems: list[str]) -> None:
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise InputError(f"{len(problems)} problem(s), nothing was sent:\n  {shown}{more}")


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
    chain_domain = fetch_domain(suite.w3, suite.router.address)
    if chain_domain != domain:
        raise InputError(
            f"the reports were signed for chain {domain.chain_id} router "
            f"{domain.verifying_contract}, but this suite is chain {chain_domain.chain_id} "
            f"router {chain_domain.verifying_contract}"
        )
    _raise_problems(_find_duplicates(reports))
    rpc = get_rpc(suite.w3)
    records = fetch_records(rpc, suite, [(r.node_id, r.epoch) for r in reports])
    _raise_problems(
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
        lost = _post_round(tx, rpc, suite, pending, domain, batch_size, progress, result)
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
    rpc: RpcClient,
    suite: Suite,
    pending: list[SignedReport],
    domain: Eip712Domain,
    batch_size: int,
    progress: Progress,
    result: PostResult,
) -> list[SignedReport]:
    """Check, pay for and settle ``pending``; returns those not settled afterwards."""
    _raise_problems(check_reports(rpc, suite, pending, domain, tx.signer.address))
    total = sum(r.revenue for r in pending)
    balance = int(suite.stablecoin.functions.balanceOf(tx.signer.address).call())
    if balance < total:
        raise InputError(
            f"the payer {tx.signer.address} holds {balance} base units; these reports need {total}"
        )
    coin, router = suite.stablecoin, suite.router.address
    if int(coin.functions.allowance(tx.signer.address, router).call()) < total:
        approve = coin.functions.approve(router, total)._encode_transaction_data()
        send_pipelined(tx, rpc, coin.address, [approve], "approve the stablecoin", progress)

    batches = [pending[i : i + batch_size] for i in range(0, len(pending), batch_size)]
    datas = [encode_settle_many(batch) for batch in batches]
    receipts = send_pipelined(
        tx, rpc, suite.router.address, datas, "settle usage reports", progress,
        units=[len(batch) for batch in batches],
    )  # fmt: skip
    # read the settlements back: a receipt is no proof once its block is reorganised away
    now_settled = fetch_settled(rpc, suite, pending)
    done = {(r.node_id, r.epoch) for r, ok in zip(pending, now_settled, strict=True) if ok}
    for batch, receipt in zip(batches, receipts, strict=True):
        if (batch[0].node_id, batch[0].epoch) in done:
            result.settled += len(batch)
            result.revenue += sum(r.revenue for r in batch)
            result.transactions.append(HexBytes(receipt["transactionHash"]).to_0x_hex())
            result.gas_used += int(receipt["gasUsed"], 16)
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
    rpc = get_rpc(suite.w3)
    now = int(suite.w3.eth.get_block("latest")["timestamp"])
    due: dict[int, list[int]] = {}
    result = FinalizeResult(finalized=0, not_due=0, skipped=0, gross=0)
    for (node, epoch), record in zip(keys, fetch_records(rpc, suite, keys), strict=True):
        if record.state != PENDING:
            result.skipped += 1
        elif record.finalizable_at > now:
            result.not_due += 1
        else:
            due.setdefault(node, []).append(epoch)
            result.finalized += 1
            result.gross += record.revenue
    datas = [
        suite.router.functions.finalize(node, epochs[i : i + MAX_BATCH])._encode_transaction_data()
        for node, epochs in sorted(due.items())
        for i in range(0, len(epochs), MAX_BATCH)
    ]
    if datas:
        progress = on_progress or (lambda _stage, _done, _total: None)
        receipts = send_pipelined(tx, rpc, suite.router.address, datas, "finalize", progress)
        result.transactions = [HexBytes(r["transactionHash"]).to_0x_hex() for r in receipts]
    return result
