"""Settle the signed usage reports of a file that are not settled yet (safe to re-run).

brownie run scripts/post_attestations.py main reports.json [manifest.json] --network NAME
"""

from __future__ import annotations

from pathlib import Path

from edgeshare.brownie_support import get_suite, get_transactor
from edgeshare.poster import PostResult, post_reports
from edgeshare.usage import read_reports_file


def main(reports_file: str, manifest: str = "", batch_size: str = "50") -> PostResult:
    """Post; returns what was settled and what was skipped."""
    parsed = read_reports_file(Path(reports_file))
    result = post_reports(
        get_transactor(), get_suite(manifest), parsed.reports, parsed.domain,
        batch_size=int(batch_size),
    )  # fmt: skip
    print(f"settled {result.settled}, already settled {result.already_settled}, "
          f"{result.revenue} base units in {len(result.transactions)} transaction(s)")  # fmt: skip
    return result
