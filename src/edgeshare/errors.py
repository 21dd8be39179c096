"""EdgeShare's exceptions: one root, and each specific error also a builtin one.

``exit_code`` is what the CLI exits with: 2 for bad input (nothing was sent), 1 for an
operation that failed.
"""

from __future__ import annotations

from collections.abc import Sequence


class EdgeShareError(Exception):
    """Root of every error EdgeShare raises on purpose."""

    exit_code: int = 1


class InputError(EdgeShareError, ValueError):
    """The user's input (a flag, a file, an environment variable) is wrong; nothing was sent."""

    exit_code = 2


def describe_problems(
    problems: Sequence[str], outcome: str = "nothing was sent", shown: int = 20
) -> str:
    """One message naming every problem of an input (the first ``shown`` of them) and what
    was therefore not done."""
    listed = "\n  ".join(problems[:shown])
    more = f"\n  ... and {len(problems) - shown} more" if len(problems) > shown else ""
    return f"{len(problems)} problem(s), {outcome}:\n  {listed}{more}"


def raise_problems(problems: Sequence[str], outcome: str = "nothing was sent") -> None:
    """Raise an InputError naming every problem, if there is any."""
    if problems:
        raise InputError(describe_problems(problems, outcome))


class KeyUnavailable(InputError):
    """No signing key could be loaded from the named variable or keystore."""


class NotLocalChain(InputError):
    """An action reserved for local development chains was asked of another chain."""


class ChainMismatch(InputError):
    """A manifest or config names a different chain than the node connected to."""


class ArtifactError(EdgeShareError, RuntimeError):
    """A contract could not be compiled or its build output is unusable."""


class ChainUnavailable(EdgeShareError, ConnectionError):
    """The chain's RPC endpoint could not be reached or a local chain did not start."""


class TransactionFailed(EdgeShareError, RuntimeError):
    """A transaction reverted, or its receipt never arrived."""


class DeploymentError(EdgeShareError, RuntimeError):
    """A deployment is inconsistent (e.g. a manifest address holds the wrong code)."""


class NodeNotFound(InputError, LookupError):
    """No node with that id is registered (the user named it: bad input, nothing sent)."""


class CallFailed(EdgeShareError, RuntimeError):
    """A contract read reverted; ``reason`` is what the node said (e.g. the revert text)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason
