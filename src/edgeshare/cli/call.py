"""`edgeshare call`: pick a node, pay it through a channel and call it."""

from __future__ import annotations


def call() -> None:
    """Pick the cheapest node that meets a latency bound, pay and call it."""
