"""The JSON-RPC client: size-aware batches, one retry policy (rate limits whole or per
item, 429 with Retry-After, drops, timeouts, 5xx), range errors returned, clear failure."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from edgeshare import rpc
from edgeshare.chain import connect
from edgeshare.errors import ChainUnavailable, EdgeShareError
from edgeshare.rpc import RpcClient, RpcError, _split, get_rpc, is_range_too_large, is_rate_limited
from tests.faultproxy import FaultProxy, Faults


def test_split__respects_count_and_size() -> None:
    big = [("eth_sendRawTransaction", ["0x" + "ab" * 29_000])] * 100
    parts = _split(big, 100, 1_000_000)
    assert sum(len(p) for p in parts) == 100 and all(len(p) <= 17 for p in parts)
    assert [len(p) for p in _split([("eth_call", [{}])] * 450, 200, 1_000_000)] == [200, 200, 50]


class Flaky(BaseHTTPRequestHandler):
    """Answers 503 ``failures`` times, then echoes each call's params as its result."""

    failures = 0
    seen = 0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen += 1
        if type(self).seen <= type(self).failures:
            self.send_response(503)
            self.end_headers()
            return
        reply = [{"jsonrpc": "2.0", "id": c["id"], "result": c["params"]} if c["method"] != "bad"
                 else {"jsonrpc": "2.0", "id": c["id"], "error": {"code": -1, "message": "nope"}}
                 for c in body]  # fmt: skip
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = HTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_batch__retries_transient_errors_then_answers_in_order(server: str) -> None:
    Flaky.failures, Flaky.seen = 2, 0
    client = RpcClient(server, retries=3, backoff=0.01)
    results = client.batch([("a", [1]), ("bad", []), ("c", [3])])
    assert results[0] == [1] and results[2] == [3]
    assert isinstance(results[1], RpcError) and "nope" in str(results[1])
    assert Flaky.seen == 3


def _clear_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                 "all_proxy", "NO_PROXY", "no_proxy"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def test_session__environment_proxy_read_when_made_and_used_for_every_request(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment's proxy settings are read once, when the client is made (requests
    would scan the whole environment again on each request)."""
    _clear_proxies(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", server)  # the echo server stands in for a proxy
    Flaky.failures, Flaky.seen = 0, 0
    client = RpcClient("http://rpc.invalid:8545", retries=0)
    _clear_proxies(monkeypatch)  # changed later: the client keeps what it read
    assert client.batch([("a", [1])]) == [[1]]
    assert Flaky.seen == 1


def test_session__no_proxy_honoured_for_the_endpoint(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clear_proxies(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    Flaky.failures, Flaky.seen = 0, 0
    assert RpcClient(server, retries=0).batch([("a", [2])]) == [[2]]


def test_batch__permanent_failure__clear_error(server: str) -> None:
    Flaky.failures, Flaky.seen = 100, 0
    with pytest.raises(ChainUnavailable, match=r"kept failing \(HTTP 503\) after 3 attempts"):
        RpcClient(server, retries=2, backoff=0.01).call("a", [])


# -- the retry policy, through the fault-injecting proxy in front of a fake node --


class Node(BaseHTTPRequestHandler):
    """A fake node: answers eth_chainId and eth_blockNumber, a range error for eth_getLogs,
    and echoes the params of anything else; counts every call it gets."""

    calls: ClassVar[Counter[str]] = Counter()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = [self._answer(c) for c in body] if isinstance(body, list) else self._answer(body)
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _answer(self, call: dict[str, Any]) -> dict[str, Any]:
        type(self).calls[call["method"]] += 1
        fixed = {"eth_chainId": "0x7a69", "eth_blockNumber": "0x10"}
        if call["method"] == "eth_getLogs":
            error = {"code": -32005, "message": "query returned more than 10000 results"}
            return {"jsonrpc": "2.0", "id": call["id"], "error": error}
        result = fixed.get(call["method"], call["params"])
        return {"jsonrpc": "2.0", "id": call["id"], "result": result}

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def node() -> Iterator[str]:
    Node.calls = Counter()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Node)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _client(url: str, **kwargs: Any) -> RpcClient:
    return RpcClient(url, **{"retries": 4, "backoff": 0.01, "timeout": 5, **kwargs})


@pytest.mark.parametrize(
    ("error", "limited", "too_large"),
    [
        ({"code": -32005, "message": "request rate limited"}, True, False),
        ({"code": -32029, "message": "slow down"}, True, False),
        ({"code": 429, "message": "Too Many Requests"}, True, False),
        (
            {"code": -32000, "message": "daily request count exceeded, request rate limited"},
            True,
            False,
        ),
        ({"code": -32005, "message": "query returned more than 10000 results"}, False, True),
        ({"code": -32602, "message": "block range is too large, limited to 2000"}, False, True),
        ({"code": -32000, "message": "nonce too low"}, False, False),
        ({"code": 3, "message": "execution reverted: registry: not operator"}, False, False),
    ],
)
def test_classification__rate_limits_wait__range_errors_shrink(
    error: dict[str, Any], limited: bool, too_large: bool
) -> None:
    assert is_rate_limited(error) is limited
    assert is_rate_limited(RpcError.from_reply(error)) is limited
    assert is_range_too_large(RpcError.from_reply(error)) is too_large


def test_batch__rate_limited_items__only_those_sent_again__range_error_returned(
    node: str,
) -> None:
    calls = [("echo", [i]) for i in range(30)] + [("eth_getLogs", [{}])]
    with FaultProxy(node, Faults(rate_limit_item_every=4)) as proxy:
        results = _client(proxy.url).batch(calls)
    assert results[:30] == [[i] for i in range(30)]
    assert isinstance(results[30], RpcError) and is_range_too_large(results[30])
    assert proxy.faults.done["rate-limited-item"] >= 7
    # every call reached the node once: the limited ones were sent again, alone
    assert Node.calls == Counter({"echo": 30, "eth_getLogs": 1})


def test_batch__http_429_with_retry_after__waits_as_asked_up_to_the_cap(node: str) -> None:
    with FaultProxy(node, Faults(http_429_every=2, retry_after="1")) as proxy:
        client = _client(proxy.url)
        assert client.call("echo", [1]) == [1]  # request 1
        started = time.monotonic()
        assert client.call("echo", [2]) == [2]  # request 2: 429, Retry-After 1 s; then 3
        assert time.monotonic() - started >= 1.0
    with FaultProxy(node, Faults(http_429_every=2, retry_after="3600")) as proxy:
        client = _client(proxy.url, max_retry_after=0.2)
        client.call("echo", [1])
        started = time.monotonic()
        assert client.call("echo", [2]) == [2]
        assert time.monotonic() - started < 2
    with FaultProxy(node, Faults(http_429_every=2)) as proxy:  # no header: own backoff
        client = _client(proxy.url)
        assert [client.call("echo", [i]) for i in range(4)] == [[0], [1], [2], [3]]
        assert proxy.faults.done["429"] == 3  # requests 2, 4 and 6


def test_batch__drops_and_slow_replies__retried(node: str) -> None:
    faults = Faults(drop_every=3, slow_every=5, slow_seconds=1.0)
    with FaultProxy(node, faults) as proxy:
        client = _client(proxy.url, timeout=0.5)
        assert [client.call("echo", [i]) for i in range(8)] == [[i] for i in range(8)]
    assert faults.done["drop"] >= 2 and faults.done["slow"] >= 1


def test_rpc_error__is_an_edgeshare_error_with_exit_1() -> None:
    error = RpcError(-32000, "boom")
    assert isinstance(error, EdgeShareError) and error.exit_code == 1


@pytest.mark.parametrize(
    ("faults", "problem"),
    [(Faults(down=True), "HTTP 503"), (Faults(rate_limit_item_every=1), "rate limited")],
)
def test_endpoint_that_never_recovers__chain_unavailable_one_line_no_key(
    node: str, faults: Faults, problem: str
) -> None:
    with FaultProxy(node, faults) as proxy:
        client = _client(proxy.url + "/v3/SECRET-API-KEY?key=SECRET", retries=2)
        with pytest.raises(ChainUnavailable) as caught:
            client.batch([("echo", [1]), ("echo", [2])])
    message = str(caught.value)
    assert problem in message and "after 3 attempts" in message
    assert "SECRET" not in message and "\n" not in message
    assert caught.value.exit_code == 1


def test_connect__web3_calls_get_the_same_policy(
    node: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rpc, "BACKOFF", 0.01)
    with FaultProxy(node, Faults(rate_limit_item_every=2, drop_every=3)) as proxy:
        w3 = connect(proxy.url + "/v3/SECRET")
        assert get_rpc(w3) is w3.provider.rpc_client  # type: ignore[attr-defined]
        assert w3.eth.chain_id == 31337 and w3.eth.block_number == 16
        with w3.batch_requests() as batch:
            batch.add(w3.eth.get_balance("0x" + "11" * 20))  # the fake node echoes params
            batch.add(w3.eth.get_block_number())
            batch.add(w3.eth.get_block_number())
            assert batch.execute()[1:] == [16, 16]
        assert proxy.faults.done["rate-limited-item"] >= 2 and proxy.faults.done["drop"] >= 1
    with FaultProxy(node, Faults(down=True)) as proxy:
        monkeypatch.setattr(rpc, "RETRIES", 1)
        with pytest.raises(ChainUnavailable, match="kept failing") as caught:
            connect(proxy.url + "/v3/SECRET")
        assert "SECRET" not in str(caught.value)
