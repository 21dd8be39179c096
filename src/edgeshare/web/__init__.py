"""The web app: a read-only JSON API over the index and the chain, and the built front end.

``edgeshare serve`` runs it (``serve_web``); tests build the ASGI app (``build_web_app``)
and call it in-process. The API is documented in docs/WEB.md. The server libraries
(Starlette, uvicorn) are imported only when an app is built, so importing
``edgeshare.web.views`` (which the CLI's ``--json`` uses) stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from edgeshare.models import StrictModel

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from edgeshare.suite import Suite

DEFAULT_PORT = 8000
MAX_ORDER_BODY = 16_384
"""Largest ``POST /api/orders`` body, bytes (then 413)."""


class WebConfig(StrictModel):
    """How ``edgeshare serve`` runs."""

    db_url: str
    """The index database (SQLite or PostgreSQL URL); the order book is kept there too."""
    host: str = "127.0.0.1"
    """Address to listen on."""
    port: Annotated[int, Field(ge=0, le=65_535)] = DEFAULT_PORT
    """Port to listen on (0: any free one)."""
    sync_every: Annotated[float, Field(gt=0, le=86_400)] = 5.0
    """Seconds between runs of the indexer in the background."""
    sync: bool = True
    """Keep the index up to date (False: another process does, sharing the database)."""
    confirmations: Annotated[int, Field(ge=0)] | None = None
    """Blocks the index stays behind the head (None: the indexer's default)."""
    rpc_url: str | None = None
    """The chain's JSON-RPC URL, for the background indexer's own connection (None: it
    shares the app's, under the app's lock)."""


def build_web_app(config: WebConfig, suite: Suite) -> Starlette:
    """The web app's ASGI application (see ``edgeshare.web.api.build_app``)."""
    from edgeshare.web.api import build_app

    return build_app(config, suite)


def serve_web(
    config: WebConfig, suite: Suite, *, on_listen: Callable[[str], None] | None = None
) -> None:
    """Serve the web app with uvicorn until SIGINT or SIGTERM (see
    ``edgeshare.web.api.serve``)."""
    from edgeshare.web.api import serve

    serve(config, suite, on_listen=on_listen)
