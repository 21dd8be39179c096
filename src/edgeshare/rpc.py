"""A small JSON-RPC client for what web3.py does not do: batches of raw transactions.

web3.py 7's ``batch_requests`` refuses ``eth_sendRawTransaction``; a plain JSON-RPC
batch is how many signed transactions reach a node in one round trip. Transient
failures (connection errors, timeouts, HTTP 429 and 5xx, rate-limit replies) are
retried with exponential backoff; anything else, or a failure that outlasts the
retries, raises with a message that says what failed.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from typing import Any

import requests

from edgeshare.errors import ChainUnavailable, InputError

TRANSIENT_HTTP = {429, 500, 502, 503, 504}
RPC_TIMEOUT_ENV = "EDGESHARE_RPC_TIMEOUT"
# Nodes cap request bodies (anvil refuses a few MB); stay well under.
MAX_REQUEST_BYTES = 1_000_000
RATE_LIMIT_WORDS = ("rate limit", "too many requests", "rate-limited", "request rate limited")
RATE_LIMIT_CODES = {429, -32005, -32029}
# what nodes say when an eth_getLogs range or its result is too big for one reply
RANGE_TOO_LARGE_WORDS = (
    "range too large", "block range", "too many results", "query returned more than",
    "response size", "exceed", "too many logs", "range is too large", "limited to",
)


_URL = re.compile(r"(https?://)(?:[^/\s@]+@)?([^/\s?#'\"]+)([^\s'\"]*)")


def redact_urls(text: str) -> str:
    """``text`` with every URL cut to its scheme and host: hosted RPC endpoints carry
    their API key in the path, the query or the user part, and none may be printed."""

    def cut(match: re.Match[str]) -> str:
        rest = match.group(3)
        return match.group(1) + match.group(2) + ("/..." if rest not in ("", "/") else rest)

    return _URL.sub(cut, text)


def get_rpc_timeout(default: float) -> float:
    """Seconds an RPC request may take: ``EDGESHARE_RPC_TIMEOUT`` if set, else ``default``."""
    raw = os.environ.get(RPC_TIMEOUT_ENV)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3_600:
        raise InputError(f"{RPC_TIMEOUT_ENV} must be a number of seconds (0-3600], got {raw!r}")
    return value


class RpcError(Exception):
    """A JSON-RPC error object returned for one call."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message
        self.data = data


class RpcClient:
    """JSON-RPC over HTTP with batching and retries.

    Args:
        url: The endpoint.
        retries: Attempts after the first for a transient failure.
        backoff: First wait in seconds; doubles each retry.
        timeout: Seconds per HTTP request.
    """

    def __init__(
        self, url: str, retries: int = 6, backoff: float = 0.25, timeout: float | None = None
    ):
        self.url = url
        self.name = redact_urls(url)
        """The URL as it may be printed."""
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout if timeout is not None else get_rpc_timeout(60.0)
        self._ids = itertools.count(1)
        self._session = requests.Session()

    def _post(self, payload: Any) -> Any:
        wait = self.backoff
        problem = ""
        for attempt in range(self.retries + 1):
            try:
                response = self._session.post(self.url, json=payload, timeout=self.timeout)
                if response.status_code in TRANSIENT_HTTP:
                    problem = f"HTTP {response.status_code}"
                else:
                    response.raise_for_status()
                    body = response.json()
                    if isinstance(body, dict) and is_rate_limited(body.get("error")):
                        problem = "rate limited"
                    else:
                        return body
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = type(exc).__name__
            except requests.HTTPError as exc:
                refused = redact_urls(f"RPC {self.url} refused the request: {exc}")
                raise ChainUnavailable(refused) from None
            except ValueError:
                problem = "a reply that is not JSON"
            if attempt < self.retries:
                time.sleep(wait)
                wait *= 2
        raise ChainUnavailable(
            f"RPC {self.name} kept failing ({problem}) after {self.retries + 1} attempts"
        )

    def call(self, method: str, params: list[Any]) -> Any:
        """One call; raises RpcError for an error reply."""
        result = self.batch([(method, params)])[0]
        if isinstance(result, RpcError):
            raise result
        return result

    def batch(
        self,
        calls: list[tuple[str, list[Any]]],
        chunk: int = 200,
        max_bytes: int = MAX_REQUEST_BYTES,
    ) -> list[Any]:
        """Many calls, at most ``chunk`` and about ``max_bytes`` per HTTP request (nodes
        refuse larger bodies); each result or an RpcError, in order."""
        results: list[Any] = []
        for part in _split(calls, chunk, max_bytes):
            payload = [
                {"jsonrpc": "2.0", "id": next(self._ids), "method": m, "params": p} for m, p in part
            ]
            body = self._post(payload)
            if not isinstance(body, list):
                error = body.get("error", {}) if isinstance(body, dict) else {}
                raise ChainUnavailable(f"RPC {self.name} rejected a batch: {error or body}")
            by_id = {item.get("id"): item for item in body}
            for request in payload:
                item = by_id.get(request["id"])
                if item is None:
                    results.append(RpcError(-1, "no reply for this call"))
                elif "error" in item:
                    err = item["error"]
                    results.append(
                        RpcError(err.get("code", -1), err.get("message", ""), err.get("data"))
                    )
                else:
                    results.append(item.get("result"))
        return results


def _split(
    calls: list[tuple[str, list[Any]]], chunk: int, max_bytes: int
) -> list[list[tuple[str, list[Any]]]]:
    parts: list[list[tuple[str, list[Any]]]] = [[]]
    size = 0
    for call in calls:
        cost = len(json.dumps(call[1])) + 64
        if parts[-1] and (len(parts[-1]) >= chunk or size + cost > max_bytes):
            parts.append([])
            size = 0
        parts[-1].append(call)
        size += cost
    return [p for p in parts if p]


def is_rate_limited(error: Any) -> bool:
    """True for a JSON-RPC error object that says the caller is being rate limited."""
    if not isinstance(error, dict):
        return False
    message = str(error.get("message", "")).lower()
    return error.get("code") == 429 or any(word in message for word in RATE_LIMIT_WORDS)


def is_range_too_large(error: RpcError) -> bool:
    """True for an ``eth_getLogs`` error that asks for a smaller block range (and is not a
    rate limit, which asks only to wait)."""
    if is_rate_limited({"code": error.code, "message": error.message}):
        return False
    message = error.message.lower()
    return any(word in message for word in RANGE_TOO_LARGE_WORDS)
