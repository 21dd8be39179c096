"""Reading an operator's usage CSV and turning it into signed reports.

The CSV has a header and one row per (node, epoch): ``node_id,epoch,inferences,
latency_ms,uptime_bps`` and optionally ``revenue`` (checked, never trusted) and
``version`` (0 when absent; a correction of a disputed report is its version plus one). Every
problem in the file is reported with its file, line and field before anything is
signed or sent.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError

from edgeshare.attestation import (
    Eip712Domain,
    SignedReport,
    SignedReportsFile,
    Uint16,
    Uint32,
    Uint64,
    Uint256,
    UsageReport,
    at_most,
    sign,
)
from edgeshare.errors import InputError, describe_problems
from edgeshare.models import StrictModel, read_json_problems, read_text_file
from edgeshare.rpc import RpcError
from edgeshare.suite import Suite

REQUIRED_COLUMNS = ("node_id", "epoch", "inferences", "latency_ms", "uptime_bps")
OPTIONAL_COLUMNS = ("revenue", "version")


class UsageRow(StrictModel):
    """One row of a usage CSV."""

    node_id: Annotated[Uint256, Field(ge=1)]
    """The node."""
    epoch: Uint64
    """The epoch the usage happened in."""
    inferences: Uint64
    """Inferences served."""
    latency_ms: Uint32
    """p50 latency, milliseconds."""
    uptime_bps: Annotated[Uint16, at_most(10_000)]
    """Uptime, basis points."""
    revenue: Uint256 | None = None
    """Optional: if given it must equal inferences x the epoch's price // 1000."""
    version: Uint32 = 0
    """Optional: the report's version (a correction is the disputed report's plus one)."""


def _format_error(path: Path, line: int, exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "row"
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown column"
        out.append(f"{path} line {line}, field {field}: {message}")
    return out


def read_usage_csv(path: Path, problems: list[str] | None = None) -> list[tuple[int, UsageRow]]:
    """Parse and validate a usage CSV; returns (line number, row) pairs of the valid rows.

    Args:
        problems: Where a bad row's problems go, so that the chain's checks of the other
            rows can be reported with them in one pass (``build_signed_reports``); without
            it, any bad row raises.

    Raises:
        InputError: listing every problem with its file, line and field (a file that is
            not a usage CSV at all, e.g. a wrong header, always raises).
    """
    collect = problems is not None
    problems = [] if problems is None else problems
    text = read_text_file(path, "utf-8-sig")
    if "\x00" in text:
        raise InputError(f"{path} is not a text file")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    if not header:
        raise InputError(f"{path} is empty; expected a header: {','.join(REQUIRED_COLUMNS)}")
    header = [h.strip() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        raise InputError(
            f"{path} line 1: header must be {','.join(REQUIRED_COLUMNS)}[,revenue][,version]; "
            f"missing {missing or 'nothing'}, unknown {unknown or 'nothing'}"
        )
    reader.fieldnames = header
    rows: list[tuple[int, UsageRow]] = []
    seen: dict[tuple[int, int], int] = {}
    for raw in reader:
        line = reader.line_num
        if None in raw or any(v is None for v in raw.values()):
            problems.append(f"{path} line {line}: expected {len(header)} fields")
            continue
        values = {
            k: v.strip() for k, v in raw.items() if not (k in OPTIONAL_COLUMNS and v.strip() == "")
        }
        try:
            row = UsageRow.model_validate(values)
        except ValidationError as exc:
            problems.extend(_format_error(path, line, exc))
            continue
        key = (row.node_id, row.epoch)
        if key in seen:
            problems.append(
                f"{path} line {line}: node {key[0]} epoch {key[1]} is also on line {seen[key]}"
            )
            continue
        seen[key] = line
        rows.append((line, row))
    if not rows and not problems:
        problems.append(f"{path} has a header but no rows")
    if problems and (not collect or not rows):
        raise InputError(_join(problems))
    return rows


def _join(problems: Sequence[str]) -> str:
    return describe_problems(problems, "nothing was signed or sent", shown=30)


def describe_epoch_end(suite: Suite) -> str:
    """When the current epoch ends on chain, and why chain time may lag this machine's."""
    from edgeshare.status import fetch_clock
    from edgeshare.units import format_duration, format_utc

    clock = fetch_clock(suite)
    ends, now = clock.epoch_ends_at, clock.chain_time
    text = (
        f"epoch {clock.current_epoch} ends at {format_utc(ends)} chain time (in "
        f"{format_duration(ends - now)}; the latest block is of {format_utc(now)})"
    )
    lag = clock.describe_lag()
    return f"{text}; {lag}" if lag else text


def build_signed_reports(
    suite: Suite,
    path: Path,
    rows: Sequence[tuple[int, UsageRow]],
    key: str,
    domain: Eip712Domain,
    deadline: int,
    earlier: Sequence[str] = (),
) -> list[SignedReport]:
    """Price each row at its epoch, check it against the chain, and sign it with ``key``.

    ``earlier`` are the file's own problems (``read_usage_csv``): they are reported with
    the chain's, in one message, and nothing is signed.

    Raises:
        InputError: a row names an unknown node or one this key does not attest, an
            epoch that has not ended, or a revenue that does not match.
    """
    from eth_account import Account

    signer = Account.from_key(key).address
    current = int(suite.router.call("current_epoch"))
    calls = [suite.registry.read("usage_terms", r.node_id, r.epoch) for _, r in rows]
    problems: list[str] = list(earlier)
    coin = suite.fetch_stablecoin_token()
    late = [row.epoch for _, row in rows if row.epoch >= current]
    reports: list[UsageReport] = []
    for (line, row), result in zip(rows, suite.reader.try_many(calls), strict=True):
        where = f"{path} line {line}"
        if isinstance(result, RpcError):
            problems.append(f"{where}, field node_id: node {row.node_id} is not registered")
            continue
        attestor, price = result["attestor"], result["price_per_1k"]
        if not result["registered"]:
            problems.append(
                f"{where}, field epoch: node {row.node_id} was registered after epoch {row.epoch}"
            )
        elif not result["active"]:
            problems.append(
                f"{where}, field epoch: node {row.node_id} was paused or retired in epoch "
                f"{row.epoch}; the router takes no report for it"
            )
        if attestor != signer:
            problems.append(
                f"{where}, field node_id: node {row.node_id}'s attestor is {attestor}, not {signer}"
            )
        if row.epoch >= current:
            problems.append(
                f"{where}, field epoch: epoch {row.epoch} has not ended (current {current})"
            )
        revenue = row.inferences * price // 1_000
        if row.revenue is not None and row.revenue != revenue:
            problems.append(
                f"{where}, field revenue: {row.revenue} base units ({coin.format(row.revenue)})"
                f" != inferences x price = {revenue} ({coin.format(revenue)})"
            )
        if revenue > 2**96 - 1:
            problems.append(
                f"{where}, field inferences: revenue {coin.format(revenue)} exceeds one "
                "report's limit"
            )
            continue
        reports.append(
            UsageReport(
                node_id=row.node_id,
                epoch=row.epoch,
                version=row.version,
                inferences=row.inferences,
                revenue=revenue,
                latency_ms=row.latency_ms,
                uptime_bps=row.uptime_bps,
                deadline=deadline,
            )
        )
    if late:
        problems.append(describe_epoch_end(suite))
    if problems:
        raise InputError(_join(problems))
    separator = domain.get_separator()
    return [sign(report, key, domain, separator) for report in reports]


def read_reports_file(path: Path) -> SignedReportsFile:
    """Read and validate a signed-reports JSON file."""
    parsed, problems = read_json_problems(path, SignedReportsFile)
    if parsed is None:
        raise InputError(_join(problems))
    if not parsed.reports:
        raise InputError(f"{path} holds no reports")
    return parsed


def write_reports_file(path: Path, domain: Eip712Domain, reports: Sequence[SignedReport]) -> None:
    """Write signed reports atomically (big integers stay exact JSON integers)."""
    body = SignedReportsFile(domain=domain, reports=list(reports)).model_dump_json(
        by_alias=True, indent=1
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(body + "\n")
    tmp.replace(path)
