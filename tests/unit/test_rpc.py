"""The JSON-RPC client: size-aware batches, retries on transient failures, clear failure."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from edgeshare.errors import ChainUnavailable
from edgeshare.rpc import RpcClient, RpcError, _split


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


def test_batch__permanent_failure__clear_error(server: str) -> None:
    Flaky.failures, Flaky.seen = 100, 0
    with pytest.raises(ChainUnavailable, match=r"kept failing \(HTTP 503\) after 3 attempts"):
        RpcClient(server, retries=2, backoff=0.01).call("a", [])
