"""A small OpenAI-speaking upstream (the tests', the demo's and the bench's; not a model), and a
way to serve any ASGI app in a thread.

``build_upstream_app`` answers ``POST /v1/chat/completions`` (also ``stream: true``, as
server-sent events ending ``data: [DONE]``), ``POST /v1/completions``,
``POST /v1/embeddings`` and ``GET /v1/models`` with deterministic replies and ``usage``
token counts (one token per whitespace-separated word). ``UpstreamControl`` makes it slow
or failing while it runs. ``serve_in_thread`` runs an ASGI app with uvicorn in a
background thread on a free port and stops it on exit.

By hand: `python -m edgeshare.upstream [PORT]` serves it on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

MODEL = "edgeshare-echo"
"""The one model the upstream serves."""
EMBEDDING_DIMENSIONS = 8
CREATED = 1_700_000_000
"""The ``created`` time of every reply (deterministic)."""


@dataclass
class UpstreamControl:
    """How the upstream behaves; tests change it while the server runs."""

    delay: float = 0.0
    """Seconds to wait before answering any request (a slow upstream)."""
    fail_status: int | None = None
    """Answer every /v1 request with this status and a JSON error (a failing upstream)."""
    chunk_interval: float = 0.0
    """Seconds between the events of a streamed reply."""
    chunk_words: int = 1
    """Words per streamed event."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    """What was asked: method, path, headers (lower-case names), body (parsed JSON or None)."""
    streams_finished: int = 0
    """Streamed replies sent to their end."""
    streams_cut: int = 0
    """Streamed replies whose client went away before the end."""

    def reset(self) -> None:
        """Back to a fast, healthy upstream with nothing recorded."""
        self.delay, self.fail_status, self.chunk_interval, self.chunk_words = 0.0, None, 0.0, 1
        self.requests.clear()
        self.streams_finished = self.streams_cut = 0


def count_tokens(text: str) -> int:
    """The upstream's token count of ``text``: its whitespace-separated words."""
    return len(text.split())


def build_reply(prompt: str) -> str:
    """What the upstream answers to ``prompt``: the same every time."""
    words = prompt.split()
    return "echo: " + " ".join(words[:64]) if words else "echo: (nothing)"


def build_embedding(text: str) -> list[float]:
    """A deterministic unit-scale vector for ``text``."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255, 6) for b in digest[:EMBEDDING_DIMENSIONS]]


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status)


def _chat_prompt(body: dict[str, Any]) -> tuple[str, str] | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    texts = [str(m.get("content", "")) for m in messages if isinstance(m, dict)]
    last = texts[-1] if texts else ""
    return " ".join(texts), last


def _usage(prompt: str, reply: str) -> dict[str, int]:
    p, c = count_tokens(prompt), count_tokens(reply)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def build_upstream_app(control: UpstreamControl | None = None) -> Starlette:
    """The upstream app; ``app.state.control`` is its ``UpstreamControl``."""
    ctl = control if control is not None else UpstreamControl()

    async def before(request: Request) -> tuple[dict[str, Any] | None, Response | None]:
        raw = await request.body()
        body: dict[str, Any] | None = None
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            body = parsed if isinstance(parsed, dict) else None
        ctl.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": body,
            }
        )
        if ctl.delay:
            await asyncio.sleep(ctl.delay)
        if ctl.fail_status is not None:
            return body, _error(ctl.fail_status, "the upstream is failing", "server_error")
        if raw and body is None:
            return None, _error(400, "the body must be a JSON object")
        return body, None

    async def stream(
        kind: str, reply: str, usage: dict[str, int], include_usage: bool
    ) -> AsyncIterator[bytes]:
        words = reply.split()
        step = max(1, ctl.chunk_words)
        pieces = [" ".join(words[i : i + step]) for i in range(0, len(words), step)]
        try:
            for i, piece in enumerate(pieces):
                text = piece if i == 0 else " " + piece
                if kind == "chat":
                    delta: dict[str, Any] = {"content": text}
                    if i == 0:
                        delta["role"] = "assistant"
                    choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
                    obj = "chat.completion.chunk"
                else:
                    choice = {"index": 0, "text": text, "finish_reason": None}
                    obj = "text_completion"
                chunk = {
                    "id": f"{kind}-1",
                    "object": obj,
                    "created": CREATED,
                    "model": MODEL,
                    "choices": [choice],
                }
                yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
                if ctl.chunk_interval:
                    await asyncio.sleep(ctl.chunk_interval)
            last_choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
            if kind == "chat":
                last_choice["delta"] = {}
            else:
                last_choice["text"] = ""
            end: dict[str, Any] = {
                "id": f"{kind}-1",
                "object": obj,
                "created": CREATED,
                "model": MODEL,
                "choices": [last_choice],
            }
            yield b"data: " + json.dumps(end).encode() + b"\n\n"
            if include_usage:
                tail = {**end, "choices": [], "usage": usage}
                yield b"data: " + json.dumps(tail).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"
            ctl.streams_finished += 1
        except asyncio.CancelledError:
            ctl.streams_cut += 1
            raise

    def reply_to(kind: str, body: dict[str, Any], prompt: str, last: str) -> Response:
        reply = build_reply(last)
        usage = _usage(prompt, reply)
        if body.get("stream") is True:
            options = body.get("stream_options")
            include = isinstance(options, dict) and options.get("include_usage") is True
            return StreamingResponse(
                stream(kind, reply, usage, include), media_type="text/event-stream"
            )
        if kind == "chat":
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": reply},
                "finish_reason": "stop",
            }
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": reply, "finish_reason": "stop"}
            obj = "text_completion"
        return JSONResponse(
            {
                "id": f"{kind}-1",
                "object": obj,
                "created": CREATED,
                "model": MODEL,
                "choices": [choice],
                "usage": usage,
            }
        )

    async def chat(request: Request) -> Response:
        body, failed = await before(request)
        if failed is not None:
            return failed
        found = _chat_prompt(body or {})
        if found is None:
            return _error(400, "messages must be a non-empty list")
        return reply_to("chat", body or {}, *found)

    async def completions(request: Request) -> Response:
        body, failed = await before(request)
        if failed is not None:
            return failed
        prompt = (body or {}).get("prompt")
        if isinstance(prompt, list):
            prompt = " ".join(str(p) for p in prompt)
        if not isinstance(prompt, str):
            return _error(400, "prompt must be a string or a list of strings")
        return reply_to("completion", body or {}, prompt, prompt)

    async def embeddings(request: Request) -> Response:
        body, failed = await before(request)
        if failed is not None:
            return failed
        given = (body or {}).get("input")
        inputs = [given] if isinstance(given, str) else given
        if not isinstance(inputs, list) or not all(isinstance(t, str) for t in inputs):
            return _error(400, "input must be a string or a list of strings")
        data = [
            {"object": "embedding", "index": i, "embedding": build_embedding(t)}
            for i, t in enumerate(inputs)
        ]
        tokens = sum(count_tokens(t) for t in inputs)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": MODEL,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def models(request: Request) -> Response:
        _, failed = await before(request)
        if failed is not None:
            return failed
        model = {"id": MODEL, "object": "model", "created": CREATED, "owned_by": "edgeshare"}
        return JSONResponse({"object": "list", "data": [model]})

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )
    app.state.control = ctl
    return app


# ------------------------------------------------------------- serving in a thread ----


@dataclass
class RunningServer:
    """An app served by ``serve_in_thread``."""

    url: str
    """``http://HOST:PORT``, no trailing slash."""
    port: int
    server: uvicorn.Server
    thread: threading.Thread


@contextmanager
def serve_in_thread(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    start_timeout: float = 15.0,
    graceful_timeout: float = 2.0,
    lifespan: str = "on",
) -> Iterator[RunningServer]:
    """Serve ``app`` with uvicorn in a daemon thread (port 0: a free one) until the block
    ends, then shut it down (open connections get ``graceful_timeout`` seconds).
    ``lifespan`` is uvicorn's: "on" fails the start when the app's startup fails, "off"
    for apps without the lifespan protocol.

    Raises:
        RuntimeError: the server did not start (its lifespan failed, or it timed out).
    """
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only then (else +40 ms a reply)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan=lifespan,  # type: ignore[arg-type]
        timeout_graceful_shutdown=max(1, round(graceful_timeout)),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{bound}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(5)
            sock.close()
            raise RuntimeError(f"the server on port {bound} did not start")
        time.sleep(0.01)
    try:
        yield RunningServer(url=f"http://{host}:{bound}", port=bound, server=server, thread=thread)
    finally:
        server.should_exit = True
        thread.join(graceful_timeout + 10)
        sock.close()


if __name__ == "__main__":  # by hand: python -m edgeshare.upstream [PORT]
    import sys

    port = int((sys.argv[1:2] or ["8000"])[0])
    uvicorn.run(build_upstream_app(), host="127.0.0.1", port=port, access_log=False)
