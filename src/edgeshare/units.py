"""Token amounts as people read and type them, and as contracts keep them.

Contracts, the index and ``--json`` keep exact integers of base units. People see and type
whole units with the token's decimals: ``12.345678 USDC``, ``250,000 ESN7``. Conversion is
integer arithmetic on the decimal text, never a float: ``parse_amount("0.35", 6)`` is
``350000`` and ``parse_amount("0.3500001", 6)`` is refused (more decimals than the token
has). Base units are accepted only when asked for explicitly: the ``base`` suffix
(``"250000 base"``) or ``base_units=True`` (a command's ``--base-units`` flag).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from edgeshare.errors import InputError

SHARE_DECIMALS = 18
"""Every NodeShare token has 18 decimals."""

_WHOLE = re.compile(r"^(?P<int>\d{1,3}(?:,\d{3})+|\d+)?(?:\.(?P<frac>\d+))?$", re.ASCII)
_BASE = re.compile(r"^(?P<int>[^\s]*?)\s*base(?:[ _-]?units?)?$", re.IGNORECASE)


def is_base_units_text(text: str) -> bool:
    """True for an amount written in base units explicitly: ``"250000 base"``."""
    return bool(_BASE.match(text.strip().replace("_", "")))


@dataclass(frozen=True)
class Token:
    """What an amount is counted in: decimals and symbol (``Token(6, "USDC")``)."""

    decimals: int
    symbol: str

    def format(self, amount: int, *, exact: bool = False) -> str:
        """``amount`` base units as text with the symbol: ``1,500.25 USDC``."""
        return f"{format_units(amount, self.decimals, exact=exact)} {self.symbol}"

    def parse(self, text: str | int, name: str, *, base_units: bool = False) -> int:
        """Base units of ``text`` typed in whole units (see ``parse_amount``)."""
        return parse_amount(text, self.decimals, name, base_units=base_units, symbol=self.symbol)


def format_units(amount: int, decimals: int, *, exact: bool = False) -> str:
    """Whole units of ``amount`` base units, exact, with thousands separators.

    Trailing zeros of the fraction are dropped unless ``exact`` (``1.5``, not ``1.500000``);
    nothing is ever rounded.
    """
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**decimals)
    text = f"{sign}{whole:,}"
    if decimals == 0:
        return text
    digits = f"{frac:0{decimals}d}"
    if not exact:
        digits = digits.rstrip("0")
    return f"{text}.{digits}" if digits else text


def parse_amount(
    text: str | int,
    decimals: int,
    name: str,
    *,
    base_units: bool = False,
    symbol: str = "",
) -> int:
    """Base units of an amount typed in whole units: ``"1500.25"`` with 6 decimals is
    ``1500250000``; thousands separators are allowed (``"250,000"``).

    ``"N base"`` (or ``base_units=True``) reads ``N`` as base units. An integer from a
    YAML or JSON file counts whole units too. Refused, with a message naming ``name``:
    negative or malformed numbers, more decimals than the token has, floats' exponents.
    """
    unit = f" {symbol}" if symbol else ""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise InputError(f"{name}: expected an amount like 1500.25{unit}, got {text!r}")
    raw = str(text).strip().replace("_", "")
    base = _BASE.match(raw)
    if base or base_units:
        digits = base.group("int") if base else raw
        if not digits.isascii() or not digits.isdigit():
            raise InputError(f"{name}: base units are a whole number, got {text!r}")
        return int(digits)
    found = _WHOLE.match(raw)
    if not raw or found is None or not (found.group("int") or found.group("frac")):
        raise InputError(
            f"{name}: expected an amount in whole units like 1500.25{unit} "
            f"(or 'N base' for base units), got {text!r}"
        )
    frac = found.group("frac") or ""
    if len(frac) > decimals:
        raise InputError(
            f"{name}: {raw} has {len(frac)} decimals; the token has {decimals}"
            + (f" ({symbol})" if symbol else "")
        )
    whole = int((found.group("int") or "0").replace(",", ""))
    return int(whole * 10**decimals + int(frac.ljust(decimals, "0") or "0"))


def format_price(price_per_1k: int, token: Token) -> str:
    """A node's price: ``0.45 USDC per 1k inferences``."""
    return f"{token.format(price_per_1k)} per 1k inferences"


def format_bps(bps: int) -> str:
    """Basis points as an exact percentage: 9_987 -> ``99.87%``, 500 -> ``5%``."""
    whole, part = divmod(bps, 100)
    return f"{whole}.{part:02d}%" if part else f"{whole}%"


def amount_json(amount: int, decimals: int) -> dict[str, str | int]:
    """An amount for ``--json``: exact base units as a string, and the decimals."""
    return {"base_units": str(amount), "decimals": decimals}


def format_utc(timestamp: int) -> str:
    """A unix time as people read it: ``2026-12-01 16:00 UTC``."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_duration(seconds: int) -> str:
    """A span of seconds in the two largest units: ``1d 4h``, ``2h 5m``, ``45s``."""
    seconds = max(0, seconds)
    parts = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")]
    shown: list[str] = []
    for size, unit in parts:
        count, seconds = divmod(seconds, size)
        if count or shown:
            shown.append(f"{count}{unit}")
        if len(shown) == 2:
            break
    return " ".join(p for p in shown if not p.startswith("0")) or "0s"


def parse_bps(text: str, name: str) -> int:
    """A percentage with up to two decimals as basis points: ``"12.5"`` or ``"12.5%"`` is
    1,250; ``"1250 bps"`` is read as basis points."""
    raw = text.strip()
    if raw.lower().endswith("bps"):
        digits = raw[:-3].strip()
        if not digits.isascii() or not digits.isdigit():
            raise InputError(f"{name}: expected basis points like '1250 bps', got {text!r}")
        return int(digits)
    return parse_amount(raw.removesuffix("%").strip(), 2, name)


_DURATION_PART = re.compile(r"(\d+)([wdhms]?)", re.ASCII)
_UNIT_SECONDS = {"w": 7 * 86_400, "d": 86_400, "h": 3_600, "m": 60, "s": 1, "": 1}


def parse_duration(text: str, name: str, *, bare_seconds: bool = True) -> int:
    """Seconds of a duration typed as ``90m``, ``12h``, ``7d``, ``2w``, ``1d12h`` or
    ``1h 30m`` (a leading ``+`` is allowed); a bare number is seconds when
    ``bare_seconds``, and refused otherwise (where a bare number means a unix time).

    Raises:
        InputError: anything else, naming ``name``.
    """
    raw = text.strip().replace(" ", "").lower().removeprefix("+")
    parts = _DURATION_PART.findall(raw)
    spelled = "".join(n + u for n, u in parts)
    bare = [u for _, u in parts if not u]
    if not raw or spelled != raw or (bare and (len(parts) > 1 or not bare_seconds)):
        example = "seconds or a duration" if bare_seconds else "a duration"
        raise InputError(f"{name}: expected {example} like 90m, 12h, 7d or 1d12h, got {text!r}")
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)


def amounts_as_strings(data: Any, keys: Collection[str]) -> Any:
    """``data`` with the integers under ``keys`` (at any depth) as strings: every
    ``--json`` output keeps amounts as exact base units, readable by any JSON parser."""
    if isinstance(data, list):
        return [amounts_as_strings(d, keys) for d in data]
    if isinstance(data, dict):
        return {
            k: str(v) if k in keys and type(v) is int else amounts_as_strings(v, keys)
            for k, v in data.items()
        }
    return data
