"""A JSON-RPC proxy in front of a local chain that misbehaves the way hosted endpoints do.

It forwards every request to the chain and, by a schedule counted over requests (or over
the calls inside them), answers some itself instead: a per-item rate-limit error inside
a batch reply, a whole-reply HTTP 429 (with or without ``Retry-After``), a connection
closed without a reply, a slow reply, a send refused for its fee, or, with ``down``,
nothing but failures. A call answered by the proxy never reaches the chain, so whatever
the client sends again is the only copy the chain sees. Any path is served, so a URL can
carry a fake API key.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import requests

RATE_LIMITED = {"code": -32005, "message": "request rate limited"}
FEE_TOO_LOW = {"code": -32003, "message": "max fee per gas less than block base fee"}


@dataclass
class Faults:
    """What the proxy does; an ``*_every`` of n hits every n-th request (or call), 0 none."""

    rate_limit_item_every: int = 0
    """Every n-th call inside a request is answered with a -32005 "request rate limited"."""
    http_429_every: int = 0
    """Every n-th request gets HTTP 429."""
    retry_after: str | None = None
    """The ``Retry-After`` header sent with each 429 (None: no header)."""
    drop_every: int = 0
    """Every n-th request has its connection closed without a reply (and is not forwarded)."""
    slow_every: int = 0
    """Every n-th request is answered after ``slow_seconds``."""
    slow_seconds: float = 0.3
    refuse_fee_sends: int = 0
    """n ``eth_sendRawTransaction`` calls, from the ``refuse_fee_from``-th on (counting from
    1), are refused for their fee ("max fee per gas less than block base fee"), unforwarded."""
    refuse_fee_from: int = 1
    down: bool = False
    """Every request gets HTTP 503: an endpoint that never recovers."""
    done: Counter[str] = field(default_factory=Counter)
    """How many of each fault were injected, and how many requests were ``forwarded``."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _requests: int = 0
    _calls: int = 0
    _sends: int = 0

    def next_request(self) -> str:
        """The fault for the next HTTP request: "503", "429", "drop", "slow" or "ok"."""
        with self.lock:
            self._requests += 1
            n = self._requests
            for name, every in (
                ("429", self.http_429_every),
                ("drop", self.drop_every),
                ("slow", self.slow_every),
            ):
                if self.down or (every and n % every == 0):
                    name = "503" if self.down else name
                    self.done[name] += 1
                    return name
        return "ok"

    def answer_call(self, call: dict[str, Any]) -> dict[str, Any] | None:
        """An error the proxy answers this call with itself, or None to forward it."""
        with self.lock:
            if call.get("method") == "eth_sendRawTransaction":
                self._sends += 1
                if 0 <= self._sends - self.refuse_fee_from < self.refuse_fee_sends:
                    self.done["fee-refused"] += 1
                    return FEE_TOO_LOW
            self._calls += 1
            if self.rate_limit_item_every and self._calls % self.rate_limit_item_every == 0:
                self.done["rate-limited-item"] += 1
                return RATE_LIMITED
        return None


class FaultProxy:
    """The proxy, as a context manager: ``with FaultProxy(chain.url, Faults(...)) as p:``.

    Args:
        upstream: The chain's URL.
        faults: The schedule.
    """

    def __init__(self, upstream: str, faults: Faults) -> None:
        self.upstream = upstream
        self.faults = faults
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The proxy's URL (any path may follow)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _forward(self, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        reply = requests.post(self.upstream, json=calls, timeout=60).json()
        with self.faults.lock:
            self.faults.done["forwarded"] += 1
        return list(reply)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fault = proxy.faults.next_request()
                if fault == "503":
                    self._send(503, b"service unavailable")
                    return
                if fault == "429":
                    headers = {}
                    if proxy.faults.retry_after is not None:
                        headers["Retry-After"] = proxy.faults.retry_after
                    self._send(429, b'{"error": "too many requests"}', headers)
                    return
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault == "slow":
                    time.sleep(proxy.faults.slow_seconds)
                single = isinstance(body, dict)
                calls = [body] if single else list(body)
                answers: dict[Any, dict[str, Any]] = {}
                forward = []
                for call in calls:
                    error = proxy.faults.answer_call(call)
                    if error is None:
                        forward.append(call)
                    else:
                        answers[call["id"]] = {"jsonrpc": "2.0", "id": call["id"], "error": error}
                if forward:
                    for item in proxy._forward(forward):
                        answers[item.get("id")] = item
                replies = [answers[call["id"]] for call in calls]
                self._send(200, json.dumps(replies[0] if single else replies).encode())

            def _send(
                self, status: int, data: bytes, headers: dict[str, str] | None = None
            ) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting

        return Handler
