"""Whole units in, whole units out, base units kept exact (no floats anywhere)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeshare.errors import InputError
from edgeshare.units import (
    Token,
    format_bps,
    format_duration,
    format_price,
    format_units,
    parse_amount,
    parse_bps,
)

USDC = Token(6, "USDC")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.35", 350_000), ("1500.25", 1_500_250_000), ("250,000", 250_000_000_000),
     ("250000", 250_000_000_000), (".5", 500_000), ("7", 7_000_000), ("12 base", 12),
     ("12base", 12), ("1_000", 1_000_000_000), (3, 3_000_000)],
)  # fmt: skip
def test_parse_amount__reads_whole_units_exactly(text: str | int, expected: int) -> None:
    assert USDC.parse(text, "AMOUNT") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("0.3500001", "has 7 decimals; the token has 6"), ("-1", "whole units"),
     ("1e5", "whole units"), ("", "whole units"), ("1,00", "whole units"), ("abc", "whole units"),
     ("0.5 base", "base units are a whole number"), (True, "expected an amount")],
)  # fmt: skip
def test_parse_amount__refuses_what_is_not_an_exact_amount(text: object, message: str) -> None:
    with pytest.raises(InputError, match="AMOUNT") as raised:
        USDC.parse(text, "AMOUNT")  # type: ignore[arg-type]
    assert message in str(raised.value)


def test_parse_amount__base_units_flag_reads_integers_only() -> None:
    assert USDC.parse("450000", "PRICE", base_units=True) == 450_000
    with pytest.raises(InputError):
        USDC.parse("0.45", "PRICE", base_units=True)


@given(st.integers(min_value=0, max_value=2**256 - 1), st.integers(min_value=0, max_value=30))
def test_format_then_parse__gives_back_the_same_base_units(amount: int, decimals: int) -> None:
    assert parse_amount(format_units(amount, decimals), decimals, "X") == amount
    assert parse_amount(format_units(amount, decimals, exact=True), decimals, "X") == amount


def test_format__drops_trailing_zeros_never_rounds() -> None:
    assert USDC.format(12_345_678) == "12.345678 USDC"
    assert USDC.format(1_500_000) == "1.5 USDC"
    assert Token(18, "ESN7").format(250_000 * 10**18) == "250,000 ESN7"
    assert Token(18, "ESN7").format(1) == "0.000000000000000001 ESN7"
    assert format_price(450_000, USDC) == "0.45 USDC per 1k inferences"
    assert format_units(-1_500_000, 6) == "-1.5"


def test_bps_and_durations() -> None:
    assert format_bps(1_250) == "12.50%" and format_bps(500) == "5%"
    assert parse_bps("12.5%", "CUT") == parse_bps("12.5", "CUT") == parse_bps("1250 bps", "CUT")
    with pytest.raises(InputError):
        parse_bps("12.555", "CUT")
    assert format_duration(90_061) == "1d 1h" and format_duration(45) == "45s"
    assert format_duration(3_600) == "1h" and format_duration(0) == "0s"
