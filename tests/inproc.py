"""Running the ``edgeshare`` command in-process: the same ``main`` the installed command
runs, without a Python start-up per call (for tests that make many calls)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeshare.cli import main


def run_main(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    *args: str,
) -> tuple[int, str]:
    """Run ``edgeshare ARGS`` with ``env`` set; returns (exit code, stdout + stderr)."""
    code, out, err = run_main_streams(capsys, monkeypatch, env, *args)
    return code, out + err


def run_main_streams(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    *args: str,
) -> tuple[int, str, str]:
    """Run ``edgeshare ARGS`` with ``env`` set; returns (exit code, stdout, stderr)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "argv", ["edgeshare", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def snapshot_and_revert(w3: Any) -> Iterator[None]:
    """For an autouse fixture: the test runs on a snapshot of ``w3``'s local chain, which
    is reverted afterwards (``yield from snapshot_and_revert(w3)``)."""
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    yield
    w3.provider.make_request("evm_revert", [snapshot])


def make_cli(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    manifest: Path,
    keys: list[str],
) -> Callable[..., tuple[int, str]]:
    """``cli(who, *args)``: ``edgeshare ARGS --rpc-url URL --manifest MANIFEST`` as the
    holder of ``keys[who]`` (None: no key; a ``--manifest`` in ARGS wins); returns (exit
    code, stdout + stderr)."""
    env = {f"KEY_{i}": key for i, key in enumerate(keys)}

    def run(who: int | None, *args: str) -> tuple[int, str]:
        at = ["--rpc-url", url]
        at += [] if "--manifest" in args else ["--manifest", str(manifest)]
        key = ["--private-key-env", f"KEY_{who}"] if who is not None else []
        return run_main(capsys, monkeypatch, env, *args, *at, *key)

    return run
