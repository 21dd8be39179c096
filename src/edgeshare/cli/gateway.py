"""`edgeshare gateway`: the paid OpenAI-compatible proxy in front of a node's server."""

from __future__ import annotations


def gateway() -> None:
    """Serve the paid gateway in front of the node's inference server."""
