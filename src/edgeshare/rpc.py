"""A small JSON-RPC client with one retry policy, for raw batches and for web3 alike.

web3.py 7's ``batch_requests`` refuses ``eth_sendRawTransaction``; a plain JSON-RPC
batch is how many signed transactions reach a node in one round trip. ``connect`` in
``edgeshare.chain`` sends web3's own requests through this client too, so every request
EdgeShare makes follows the same policy:

* a rate limit - HTTP 429, a JSON-RPC error with code -32005 or -32029, or one that says
  "rate limit" - is waited out and retried: the whole request when the whole reply says
  so, only the limited calls when single items of a batch reply do. A ``Retry-After``
  header is honoured, up to ``MAX_RETRY_AFTER`` seconds;
* a dropped connection, a timeout, HTTP 5xx or a reply that is not JSON is retried;
* waits start at ``backoff`` and double (at most ``MAX_BACKOFF`` each);
* any other error reply - a revert, "range too large" (see ``is_range_too_large``), a
  nonce problem - is the caller's to handle and is returned (``RpcError``) at once;
* an endpoint that keeps failing through every retry raises ``ChainUnavailable``
  (exit 1), with the URL cut to its host.
"""

from __future__ import annotations

import email.utils
import itertools
import json
import logging
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import requests

from edgeshare.errors import ChainUnavailable, EdgeShareError, InputError

if TYPE_CHECKING:
    from web3 import Web3

TRANSIENT_HTTP = frozenset({500, 502, 503, 504})
"""HTTP statuses retried as an outage (429 is retried as a rate limit)."""
DEFAULT_TIMEOUT = 60.0
"""Seconds per HTTP request unless the caller says (the CLI: ``EDGESHARE_RPC_TIMEOUT``)."""
BATCH_CALLS = 200
"""Calls in one JSON-RPC batch at most, unless a caller asks for fewer."""
# Nodes cap request bodies (anvil refuses a few MB); stay well under.
MAX_REQUEST_BYTES = 1_000_000
RATE_LIMIT_WORDS = (
    "rate limit", "too many requests", "rate-limited", "request rate limited",
    "requests per second", "compute units per second", "throughput exceeded",
)  # fmt: skip
RATE_LIMIT_CODES = frozenset({429, -32005, -32029})
"""HTTP 429 sent as a JSON-RPC code, and the codes hosted providers use for "slow down"
(-32005 also means "limit exceeded" for some ``eth_getLogs`` ranges: a message that asks
for a smaller range is a range error, not a rate limit)."""
# what nodes say when an eth_getLogs range or its result is too big for one reply
RANGE_TOO_LARGE_WORDS = (
    "range too large", "block range", "too many results", "query returned more than",
    "response size", "exceed", "too many logs", "range is too large", "limited to",
)  # fmt: skip
_log = logging.getLogger("edgeshare.rpc")
RETRIES = 6
"""Attempts after the first, by default, for a failure that may pass."""
BACKOFF = 0.25
"""First wait in seconds, by default; doubles on each retry."""
MAX_BACKOFF = 8.0
"""The longest wait between two attempts that the client picks itself."""
MAX_RETRY_AFTER = 30.0
"""The longest wait a ``Retry-After`` header is obeyed for."""


_URL = re.compile(r"([a-z][a-z0-9+.-]*://)(?:[^/\s@]+@)?([^/\s?#'\"]+)([^\s'\"]*)", re.IGNORECASE)
# urllib3 and requests name the path alone: "Max retries exceeded with url: /v2/KEY (...)"
_PATH = re.compile(r"(\burl:\s*|\bpath[=:]\s*'?|\bGET |\bPOST )(/[^\s'\")]*)", re.IGNORECASE)


def redact_urls(text: str) -> str:
    """``text`` with every URL cut to its scheme and host: hosted RPC endpoints carry
    their API key in the path, the query or the user part, and none may be printed."""

    def cut(match: re.Match[str]) -> str:
        rest = match.group(3)
        return match.group(1) + match.group(2) + ("/..." if rest not in ("", "/") else rest)

    def cut_path(match: re.Match[str]) -> str:
        return match.group(1) + ("/..." if match.group(2) != "/" else "/")

    return _PATH.sub(cut_path, _URL.sub(cut, text))


class RpcError(EdgeShareError, RuntimeError):
    """A JSON-RPC error object returned for one call (raised by ``RpcClient.call``,
    returned in place by ``RpcClient.batch``); exit code 1."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message
        self.data = data

    @classmethod
    def from_reply(cls, error: Any) -> RpcError:
        """The error of a JSON-RPC reply's ``error`` member (whatever shape it has)."""
        if not isinstance(error, dict):
            return cls(-1, str(error))
        code = error.get("code", -1)
        return cls(
            code if isinstance(code, int) else -1, str(error.get("message", "")), error.get("data")
        )


class _Retry(Exception):
    """A failure worth another attempt; ``wait`` is what the server asked for, if it did."""

    def __init__(self, problem: str, wait: float | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.wait = wait


class RpcClient:
    """JSON-RPC over HTTP with batching and the retry policy of this module.

    Args:
        url: The endpoint.
        retries: Attempts after the first for a failure that may pass.
        backoff: First wait in seconds; doubles each retry, up to ``max_backoff``.
        timeout: Seconds per HTTP request (default ``DEFAULT_TIMEOUT``).
        max_backoff: The longest wait the client picks itself.
        max_retry_after: The longest ``Retry-After`` obeyed.
    """

    def __init__(
        self,
        url: str,
        retries: int | None = None,
        backoff: float | None = None,
        timeout: float | None = None,
        max_backoff: float | None = None,
        max_retry_after: float | None = None,
    ) -> None:
        self.url = url
        self.name = redact_urls(url)
        """The URL as it may be printed."""
        self.retries = RETRIES if retries is None else retries
        self.backoff = BACKOFF if backoff is None else backoff
        self.max_backoff = MAX_BACKOFF if max_backoff is None else max_backoff
        self.max_retry_after = MAX_RETRY_AFTER if max_retry_after is None else max_retry_after
        self.timeout = timeout if timeout is not None else DEFAULT_TIMEOUT
        self._ids = itertools.count(1)
        self._session = _build_session(url)

    def _pause(self, attempt: int, asked: float | None, problem: str = "") -> None:
        wait = min(self.backoff * 2**attempt, self.max_backoff)
        if asked is not None:
            wait = max(wait, min(asked, self.max_retry_after))
        if wait < 1.0:  # a short wait passes unnoticed; a longer one is said while it lasts
            time.sleep(wait)
            return
        _log.warning(  # attempt n+2 of retries+1 comes after this pause
            "RPC %s: %s; retrying (%d/%d) in %.1fs",
            self.name, redact_urls(problem), attempt + 2, self.retries + 1, wait,
        )  # fmt: skip
        time.sleep(wait)

    def _give_up(self, problem: str) -> ChainUnavailable:
        return ChainUnavailable(
            redact_urls(
                f"RPC {self.name} kept failing ({problem}) after {self.retries + 1} attempts"
            )
        )

    def _post_once(self, payload: Any) -> Any:
        """One HTTP request; raises _Retry for what the policy retries."""
        try:
            response = self._session.post(self.url, json=payload, timeout=self.timeout)
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            raise _Retry(type(exc).__name__) from None
        except requests.RequestException as exc:
            raise ChainUnavailable(
                redact_urls(f"RPC {self.name} cannot be asked: {type(exc).__name__}: {exc}")
            ) from None
        if response.status_code == 429:
            raise _Retry("HTTP 429, rate limited", _get_retry_after(response))
        if response.status_code in TRANSIENT_HTTP:
            raise _Retry(f"HTTP {response.status_code}", _get_retry_after(response))
        if response.status_code >= 400:
            raise ChainUnavailable(
                redact_urls(f"RPC {self.name} refused the request: HTTP {response.status_code}")
            )
        try:
            body = response.json()
        except ValueError:
            raise _Retry("a reply that is not JSON") from None
        if isinstance(body, dict) and is_rate_limited(body.get("error")):
            raise _Retry("rate limited", _get_retry_after(response))
        return body

    def batch_replies(
        self,
        calls: Sequence[tuple[str, Any]],
        chunk: int = BATCH_CALLS,
        max_bytes: int = MAX_REQUEST_BYTES,
    ) -> list[dict[str, Any]]:
        """The JSON-RPC reply object (``result`` or ``error``) of every call, in order.

        At most ``chunk`` calls and about ``max_bytes`` go in one HTTP request (nodes
        refuse larger bodies). A rate-limited item is sent again, alone with the others
        limited, after a wait; every other error reply is returned as it came.
        """
        replies: list[dict[str, Any]] = []
        for part in _split(list(calls), chunk, max_bytes):
            replies.extend(self._send_part(part))
        return replies

    def _send_part(self, part: list[tuple[str, Any]]) -> list[dict[str, Any]]:
        done: dict[int, dict[str, Any]] = {}
        todo = list(range(len(part)))
        problem = ""
        for attempt in range(self.retries + 1):
            asked: float | None = None
            ids = {next(self._ids): i for i in todo}
            payload = [
                {"jsonrpc": "2.0", "id": rid, "method": part[i][0], "params": part[i][1]}
                for rid, i in ids.items()
            ]
            try:
                body = self._post_once(payload)
            except _Retry as retry:
                problem, asked = retry.problem, retry.wait
            else:
                if not isinstance(body, list):
                    error = body.get("error", body) if isinstance(body, dict) else body
                    raise ChainUnavailable(
                        redact_urls(f"RPC {self.name} rejected a batch: {error}")
                    )
                by_id = {item.get("id"): item for item in body if isinstance(item, dict)}
                limited = []
                for rid, i in ids.items():
                    item = by_id.get(rid)
                    if item is None:
                        item = {"error": {"code": -1, "message": "no reply for this call"}}
                    if "error" in item and is_rate_limited(item["error"]):
                        limited.append(i)
                    else:
                        done[i] = item
                if not limited:
                    return [done[i] for i in range(len(part))]
                todo = limited
                problem = f"rate limited on {len(limited)} of {len(part)} calls"
            if attempt < self.retries:
                self._pause(attempt, asked, problem)
        raise self._give_up(problem)

    def batch(
        self,
        calls: Sequence[tuple[str, Any]],
        chunk: int = BATCH_CALLS,
        max_bytes: int = MAX_REQUEST_BYTES,
    ) -> list[Any]:
        """Many calls (see ``batch_replies``); each result or an RpcError, in order."""
        return [
            RpcError.from_reply(reply["error"]) if "error" in reply else reply.get("result")
            for reply in self.batch_replies(calls, chunk, max_bytes)
        ]

    def call(self, method: str, params: Any) -> Any:
        """One call; raises RpcError for an error reply."""
        result = self.batch([(method, params)])[0]
        if isinstance(result, RpcError):
            raise result
        return result


def _build_session(url: str) -> requests.Session:
    """A session for ``url`` with the environment's proxy, CA bundle and netrc settings
    read once, here: requests would read them again for every request (a scan of the
    whole environment each time, a large part of a small batch's cost)."""
    session = requests.Session()
    settings = session.merge_environment_settings(url, {}, None, None, None)
    session.proxies.update(settings["proxies"])
    session.verify = settings["verify"]
    session.cert = settings["cert"]
    session.auth = requests.utils.get_netrc_auth(url)
    session.trust_env = False
    return session


def get_rpc(w3: Web3) -> RpcClient:
    """The RpcClient behind ``w3`` (one made by ``edgeshare.chain.connect``), or a new one
    for the same endpoint as ``w3``'s HTTP provider."""
    client = getattr(w3.provider, "rpc_client", None)
    if isinstance(client, RpcClient):
        return client
    url = getattr(w3.provider, "endpoint_uri", None)
    if not url:
        raise InputError("EdgeShare needs an HTTP JSON-RPC endpoint")
    return RpcClient(str(url))


def _get_retry_after(response: requests.Response) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (a number or an HTTP date)."""
    raw = response.headers.get("Retry-After", "").strip()
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _split(calls: list[tuple[str, Any]], chunk: int, max_bytes: int) -> list[list[tuple[str, Any]]]:
    parts: list[list[tuple[str, Any]]] = [[]]
    size = 0
    for call in calls:
        cost = len(json.dumps(call[1])) + 64
        if parts[-1] and (len(parts[-1]) >= chunk or size + cost > max_bytes):
            parts.append([])
            size = 0
        parts[-1].append(call)
        size += cost
    return [p for p in parts if p]


def _says_range_too_large(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in RANGE_TOO_LARGE_WORDS)


def _says_rate_limited(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in RATE_LIMIT_WORDS)


def is_rate_limited(error: Any) -> bool:
    """True for a JSON-RPC error (an error object or an RpcError) that asks the caller
    to slow down: a rate-limit code whose message does not ask for a smaller range, or
    a message that says "rate limit"."""
    if isinstance(error, RpcError):
        code: Any = error.code
        message = error.message
    elif isinstance(error, dict):
        code, message = error.get("code"), str(error.get("message", ""))
    else:
        return False
    if _says_rate_limited(message):
        return True
    return code in RATE_LIMIT_CODES and not _says_range_too_large(message)


def is_range_too_large(error: RpcError) -> bool:
    """True for an ``eth_getLogs`` error that asks for a smaller block range (and is not a
    rate limit, which asks only to wait)."""
    if _says_rate_limited(error.message):
        return False
    return _says_range_too_large(error.message)
