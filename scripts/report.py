"""Write an operator's or an investor's report (indexes the chain first).

brownie run scripts/report.py main operator 0xOperator report.html [manifest.json]
brownie run scripts/report.py main investor 0xInvestor report.json [manifest.json] [sqlite:///db]
"""

from __future__ import annotations

from pathlib import Path

from edgeshare.brownie_support import get_suite
from edgeshare.errors import InputError
from edgeshare.indexer import open_db, sync_index
from edgeshare.report_html import render_html
from edgeshare.reports import Report, build_report, render_csv, render_json

RENDER = {".html": render_html, ".csv": render_csv, ".json": render_json}


def main(kind: str, address: str, output: str, manifest: str = "", db: str = "") -> Report:
    """Build and write the report; the output's extension picks the format."""
    path = Path(output)
    if kind not in ("operator", "investor") or path.suffix not in RENDER:
        raise InputError("usage: main operator|investor ADDRESS OUTPUT.{html,csv,json} [MANIFEST]")
    suite = get_suite(manifest)
    url, _ = sync_index(suite, db or None)
    with open_db(url) as db:
        report = build_report(db, suite, **{kind: address})
    path.write_text(RENDER[path.suffix](report))
    print(f"wrote {path}")
    return report
