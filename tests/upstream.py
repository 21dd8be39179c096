"""The tests' OpenAI-speaking upstream: ``edgeshare.upstream`` (the demo and the bench
serve it too)."""

from edgeshare.upstream import (
    CREATED,
    EMBEDDING_DIMENSIONS,
    MODEL,
    RunningServer,
    UpstreamControl,
    build_embedding,
    build_reply,
    build_upstream_app,
    count_tokens,
    serve_in_thread,
)

__all__ = [
    "CREATED",
    "EMBEDDING_DIMENSIONS",
    "MODEL",
    "RunningServer",
    "UpstreamControl",
    "build_embedding",
    "build_reply",
    "build_upstream_app",
    "count_tokens",
    "serve_in_thread",
]
