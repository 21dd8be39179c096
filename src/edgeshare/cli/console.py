"""The one terminal wrapper every command writes through.

Tables and JSON go to stdout; progress, notes and errors go to stderr, so ``--json``
output can be piped untouched.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from edgeshare.rpc import redact_urls
from edgeshare.tx import Planned
from edgeshare.units import amounts_as_strings as amounts_as_strings  # the CLI's name

out = Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, integers kept exact."""
    print_text(json.dumps(data, indent=2, default=str))


def print_text(text: str) -> None:
    """Text as it is (a CSV, JSON or HTML document) on stdout, not through rich: a report
    of a thousand nodes is megabytes, which rich's rendering would take seconds over."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """A titled table on stdout."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    out.print(table)


@contextmanager
def progress(disabled: bool = False) -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar on stderr; yields a callback (stage, done, total)."""
    if disabled:
        yield lambda _stage, _done, _total: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def print_planned(planned: Sequence[Planned], json_output: bool = False) -> None:
    """What a ``--dry-run`` would have sent: nothing was sent."""
    rows = [
        {"what": p.what, "to": p.to, "data": p.data, "value": str(p.value), "gas": p.gas}
        for p in planned
    ]
    if json_output:
        print_json({"dry_run": True, "sent": 0, "transactions": rows})
        return
    simulated = sum(1 for p in planned if p.gas)
    note(f"dry run: nothing was sent; {len(planned)} transaction(s) checked, {simulated} simulated")
    print_table(
        "Would send",
        ["#", "what", "to", "gas limit", "calldata"],
        [
            [
                i + 1,
                p.what,
                p.to or "(create)",
                f"{p.gas:,}" if p.gas else "not simulated (needs the ones before)",
                f"{p.data[:10]}... ({len(p.data) // 2 - 1} bytes)",
            ]
            for i, p in enumerate(planned)
        ],
    )


def warn(message: str) -> None:
    """A warning on stderr: something the user must know, though the command succeeded."""
    err.print(f"[bold yellow]warning:[/bold yellow] {escape(redact_urls(message))}", markup=True)


def note(message: str) -> None:
    """A progress or status line on stderr."""
    err.print(f"[dim]{message}[/dim]")


def error(message: str) -> None:
    """An error line on stderr (URLs cut to their host: they may carry API keys)."""
    err.print(f"[bold red]error:[/bold red] {escape(redact_urls(message))}", markup=True)
