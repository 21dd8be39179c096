"""`make bench`'s web app section, on the reads world (1,000 nodes x 100 settled epochs,
50 investors; bench/reads.py): the JSON API's latency for the board, a node's page and a
portfolio, and the board page's load to interactive in headless chromium.

``edgeshare serve`` runs as its own process on the world's chain and its indexed SQLite
database. Each API figure is the median over requests for different nodes and investors
(the first request for each: nothing is warm for it but the index and the process), next
to the reference measured in the same run: a static file from the same server (the HTTP
round trip and the server's floor). The page figure is the time from navigation to the
last board row drawn, read off the page's own clock (``performance.now()``), median of
five loads, next to the reference of the same browser loading a static file of the app.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

API_P50_TARGET_MS = 50.0
PAGE_TARGET_MS = 1_000.0
REQUESTS = 40
PAGE_LOADS = 5
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
BOARD_ROW = "[data-testid=board-row]"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """``edgeshare serve`` on the world, as a process, stopped by SIGTERM."""

    def __init__(self, world: dict[str, Any], db: str, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        exe = str(Path(sys.executable).with_name("edgeshare"))
        args = ["serve", "--rpc-url", world["url"], "--manifest", str(world["manifest"]),
                "--db", db, "--port", str(self.port)]  # fmt: skip
        self.log = log  # a file, not a pipe nobody reads (a full pipe would stall the server)
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                [exe, *args], stdout=subprocess.DEVNULL, stderr=err, env=os.environ.copy()
            )

    def get_log(self) -> str:
        """The end of what the server wrote to stderr."""
        return self.log.read_text(errors="replace")[-2000:]

    def wait_ready(self, client: httpx.Client, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"edgeshare serve exited: {self.get_log()}")
            try:
                if client.get(f"{self.url}/api/config").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("edgeshare serve did not answer within two minutes")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _timed_get(client: httpx.Client, url: str) -> float:
    started = time.perf_counter()
    reply = client.get(url)
    elapsed = time.perf_counter() - started
    if reply.status_code != 200:
        raise RuntimeError(f"GET {url}: {reply.status_code} {reply.text[:300]}")
    return elapsed * 1_000


def _p50(samples: list[float]) -> float:
    return round(statistics.median(samples), 2)


def _get_reads(client: httpx.Client, base: str) -> dict[str, Any]:
    """The server's own count of reads that found their body kept, per route, and the
    index's last block (``/api/health``)."""
    health = client.get(f"{base}/api/health").json()
    return {"routes": health["cache"]["routes"], "index_block": health["index"]["last_block"]}


def _count_board_reads(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the board phase's reads found kept, and whether the index moved meanwhile (a
    move is a new version: the board is read again)."""
    was = before["routes"].get("get_board", {"hits": 0, "misses": 0})
    now = after["routes"]["get_board"]
    return {"hits": now["hits"] - was["hits"], "misses": now["misses"] - was["misses"],
            "index_block_before": before["index_block"],
            "index_block_after": after["index_block"], "last_miss": now["last_miss"]}  # fmt: skip


def measure_api(client: httpx.Client, base: str, world: dict[str, Any]) -> dict[str, Any]:
    """Median ms of the board, node and portfolio endpoints, and of a static file; with
    the board phase's kept and missed reads as the server counted them."""
    rng = random.Random(3)
    ids = rng.sample(world["ids"], k=min(REQUESTS, len(world["ids"])))
    investors = [world["investor"], *world["holders"][1:]][:REQUESTS]
    static = [_timed_get(client, f"{base}/app.css") for _ in range(REQUESTS)]
    before = _get_reads(client, base)
    board = [_timed_get(client, f"{base}/api/board?limit=1000") for _ in range(REQUESTS)]
    board_reads = _count_board_reads(before, _get_reads(client, base))
    node = [_timed_get(client, f"{base}/api/nodes/{n}") for n in ids]
    portfolio = [_timed_get(client, f"{base}/api/portfolio/{a}") for a in investors]
    reference = _p50(static)
    rows = []
    for name, samples in (("board", board), ("node", node), ("portfolio", portfolio)):
        p50 = _p50(samples)
        rows.append({
            "endpoint": name, "requests": len(samples), "p50_ms": p50,
            "p95_ms": round(sorted(samples)[int(len(samples) * 0.95) - 1], 2),
            "first_ms": round(samples[0], 2),
            "static_p50_ms": reference, "over_static": round(p50 / reference, 1),
            "meets_target": p50 < API_P50_TARGET_MS,
        })  # fmt: skip
    return {"target_p50_ms": API_P50_TARGET_MS, "endpoints": rows, "board_reads": board_reads}


def measure_page(base: str, nodes: int) -> dict[str, Any] | None:
    """Median ms from navigation to the board's last row drawn, and to a static file's
    load in the same browser; None when chromium is missing."""
    if not Path(CHROMIUM).exists():
        return None
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            board, static = [], []
            for _ in range(PAGE_LOADS):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"{base}/#/board")
                # a locator, not a predicate: the app's CSP forbids evaluating strings
                page.locator(BOARD_ROW).nth(nodes - 1).wait_for(state="attached", timeout=60_000)
                board.append(float(page.evaluate("performance.now()")))
                page.close()
                page = browser.new_page()
                page.goto(f"{base}/app.css", wait_until="load")
                static.append(float(page.evaluate("performance.now()")))
                page.close()
        finally:
            browser.close()
    p50 = _p50(board)
    return {
        "loads": PAGE_LOADS, "rows": nodes, "load_to_interactive_ms": p50,
        "static_load_ms": _p50(static), "target_ms": PAGE_TARGET_MS,
        "meets_target": p50 < PAGE_TARGET_MS,
    }  # fmt: skip


def run_section(world: dict[str, Any], db: str) -> dict[str, Any]:
    """Serve the world and measure the API and the board page."""
    server = _Server(world, db, Path(db.removeprefix("sqlite:///")).with_suffix(".serve.log"))
    try:
        with httpx.Client(timeout=120) as client:
            server.wait_ready(client)
            api = measure_api(client, server.url, world)
        print(json.dumps(api), flush=True)
        if api["board_reads"]["misses"] > 1:
            print(
                f"the board was read {api['board_reads']['misses']} times; the server's log:\n"
                f"{server.get_log()}",
                flush=True,
            )
        page = measure_page(server.url, len(world["ids"]))
    finally:
        server.stop()
    return {"api": api, "page": page}


def _verdict(row: dict[str, Any]) -> str:
    return "met" if row["meets_target"] else "NOT met"


def render(section: dict[str, Any]) -> list[str]:
    """The section's lines for bench/RESULTS.md."""
    api = section["api"]
    note = (
        "The board is the same request each time (its body is kept until the next block: "
        "the first request computes it); each node and portfolio request is for another "
        "node or investor (each its first)."
    )
    lines = ["| web API endpoint (`edgeshare serve`, 1,000 nodes x 100 epochs) | p50 ms | p95 ms "
             "| first request ms | static file p50 ms (reference) | ratio | target p50 < 50 ms |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip
    for r in api["endpoints"]:
        lines.append(f"| {r['endpoint']} ({r['requests']} requests) | {r['p50_ms']} | "
                     f"{r['p95_ms']} | {r.get('first_ms', '-')} | {r['static_p50_ms']} | "
                     f"{r['over_static']}x | "
                     f"{_verdict(r)} |")  # fmt: skip
    lines += ["", note]
    reads = api.get("board_reads")
    if reads:
        lines += ["", f"The server counted {reads['hits']} board requests answered from the kept "
                  f"body and {reads['misses']} read afresh (index at block "
                  f"{reads['index_block_before']} before the board requests, "
                  f"{reads['index_block_after']} after)."]  # fmt: skip
    page = section["page"]
    if page:
        lines += ["", f"Board page, {page['rows']:,} rows, headless chromium: navigation to the "
                  f"last row drawn {page['load_to_interactive_ms']} ms (median of {page['loads']}; "
                  f"a static file of the app loads in {page['static_load_ms']} ms; target under "
                  f"{page['target_ms']:,.0f} ms: {_verdict(page)})."]  # fmt: skip
    return [*lines, ""]
