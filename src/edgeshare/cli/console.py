"""The one terminal wrapper every command writes through.

Tables and JSON go to stdout; progress, notes and errors go to stderr, so ``--json``
output can be piped untouched.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
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

out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)


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


def note(message: str) -> None:
    """A progress or status line on stderr."""
    err.print(f"[dim]{message}[/dim]")


def error(message: str) -> None:
    """An error line on stderr (URLs cut to their host: they may carry API keys)."""
    err.print(f"[bold red]error:[/bold red] {escape(redact_urls(message))}", markup=True)
