"""The front end's amount parsing and formatting (web/src/format.js), run by Node.js on the
source itself: whole units typed by a person become exact base units (BigInt), as the
CLI's ``edgeshare.units`` reads them, and base units are shown exactly."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from edgeshare.errors import InputError
from edgeshare.units import parse_amount

ROOT = Path(__file__).resolve().parents[2]
FORMAT_JS = ROOT / "web" / "src" / "format.js"


def run_format(script: str) -> object:
    """``script`` as an ES module with format.js's exports imported; what it prints."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    source = f"import * as f from {json.dumps(FORMAT_JS.as_uri())};\n{script}"
    done = subprocess.run(
        [node, "--input-type=module", "-e", source],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def parse_all(texts: list[str], decimals: int) -> list[str]:
    """Each text through parseAmount: its base units, or "error: <message>"."""
    out = run_format(
        f"const out = {json.dumps(texts)}.map((t) => {{ try {{ return String(f.parseAmount(t, "
        f"{decimals}, 'amount')); }} catch (e) {{ return 'error: ' + e.message; }} }});\n"
        "console.log(JSON.stringify(out));"
    )
    assert isinstance(out, list)
    return [str(x) for x in out]


def test_parse_amount__commas_only_between_groups_of_three() -> None:
    texts = ["1,5", "1,00", "12,5000", "1,500.25", "1,000,000", "12.5", ".5", "0.000001"]
    got = parse_all(texts, 6)
    assert got[:3] == [f'error: amount: "{t}" is not an amount (whole units, like 1,500.25)'
                       for t in texts[:3]]  # fmt: skip
    assert got[3:] == ["1500250000", "1000000000000", "12500000", "500000", "1"]


def test_parse_amount__equals_the_clis_reading_and_refuses_what_it_refuses() -> None:
    texts = ["250,000", "1500.25", "0.35", "0.3500001", "-1", "1e6", "0", " 7 ", "", "abc"]
    got = parse_all(texts, 6)
    for text, web in zip(texts, got, strict=True):
        try:
            cli = str(parse_amount(text.strip(), 6, "amount"))
        except InputError:
            cli = "refused"
        if cli == "0":  # the page refuses a zero amount where it sends money
            assert web == "error: amount: must be more than 0", text
        elif cli == "refused":
            assert web.startswith("error: amount:"), (text, web)
        else:
            assert web == cli, text


def test_format_units__exact_with_separators_and_no_float() -> None:
    big = str(2**200 + 1)
    got = run_format(
        "console.log(JSON.stringify([f.fmtUnits('1500250000', 6), f.fmtUnits('1', 6), "
        f"f.fmtUnits('{big}', 18), f.fmtUnits('123456789', 6, {{ places: 2 }})]));"
    )
    whole, frac = divmod(2**200 + 1, 10**18)
    assert got == ["1,500.25", "0.000001", f"{whole:,}.{frac:018d}".rstrip("0"), "123.45"]
