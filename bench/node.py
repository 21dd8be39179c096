"""`make bench`'s node software section: the metering of one epoch, and the gateway's
overhead over calling its upstream directly.

Metering: 10,000 scrapes of a 200-series exposition (vLLM's metric names, written by
``prometheus_client``) are parsed and stored in a scrape store; an epoch's row is then
read back and computed, which is what the agent does at each epoch's end. The reference
is a bare pass over the same samples (one addition per needed value), in the same run.

Gateway: an upstream speaking the OpenAI API (``edgeshare.upstream``) and a gateway in
front of it (``edgeshare gateway``), each its own process; an open-loop load of 200
requests per second is sent, alternately for a few seconds to the upstream directly and
through the gateway with a fresh voucher on each request (20 customers, so each channel
sees its requests one after another), and the latency percentiles are compared.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from eth_utils.crypto import keccak
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.channels import Voucher, fetch_channels_domain, send_deposit, sign_voucher
from edgeshare.deploy import build_params, deploy_suite
from edgeshare.gateway import encode_voucher_header, get_due
from edgeshare.metering import PRESETS, ScrapeStore, compute_epoch_usage, parse_scrape
from edgeshare.nodes import NodeEntry, register_nodes
from edgeshare.signer import Signer
from edgeshare.suite import Suite, send_mint_mock
from edgeshare.tx import Transactor

ROOT = Path(__file__).resolve().parents[1]
SCRAPES = 10_000
SERIES = 200
METERING_TARGET_SECONDS = 1.0
RATE = 200
"""Requests per second of the open-loop load."""
ADDED_P50_BOUND_MS, ADDED_P99_BOUND_MS = 2.0, 10.0
CUSTOMERS = 20
PRICE_PER_1K = 2_000_000  # 2 USDC per 1,000 requests: 2,000 base units each
BODY = {"model": "edge-small", "messages": [{"role": "user", "content": "hello node"}]}


# ----------------------------------------------------------------------- metering ----


def build_exposition_series() -> tuple[CollectorRegistry, Counter, Histogram]:
    """A registry of exactly ``SERIES`` series with vLLM's names: the success counter
    (2 models x 3 finish reasons), the latency histogram (2 models, 14 buckets + sum and
    count each) and gauges for the rest."""
    registry = CollectorRegistry()
    success = Counter("vllm:request_success", "served", ["model_name", "finished_reason"],
                      registry=registry)  # fmt: skip
    latency = Histogram("vllm:e2e_request_latency_seconds", "e2e", ["model_name"],
                        buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                                 10.0, 30.0), registry=registry)  # fmt: skip
    for model in ("edge-small", "edge-large"):
        for reason in ("stop", "length", "abort"):
            success.labels(model, reason)
        latency.labels(model)
    # 6 counter series + 2 x (14 buckets + sum + count) = 38; the other 162 are gauges
    filler = Gauge("vllm:gpu_cache_usage_perc", "filler", ["gpu", "slot"], registry=registry)
    for i in range(SERIES - 38):
        filler.labels(str(i // 10), str(i % 10)).set(i)
    return registry, success, latency


def measure_metering(workdir: Path, quick: bool) -> dict[str, Any]:
    """Parse and store ``SCRAPES`` scrapes, then time an epoch's row (read + compute)."""
    count = SCRAPES // 10 if quick else SCRAPES
    registry, success, latency = build_exposition_series()
    spec = PRESETS["vllm"]
    store = ScrapeStore(workdir / "scrapes.db")
    interval, start = 1, 1_000_000
    parse_seconds = 0.0
    scrapes = []
    for n in range(count):
        model = ("edge-small", "edge-large")[n % 2]
        success.labels(model, ("stop", "length", "abort")[n % 3]).inc(1 + n % 5)
        latency.labels(model).observe(0.02 + (n % 40) / 100)
        if n == count // 2:  # the server restarts halfway: its counters start again
            registry, success, latency = build_exposition_series()
        text = generate_latest(registry).decode()
        started = time.perf_counter()
        scrape = parse_scrape(text, spec, start + n * interval)
        parse_seconds += time.perf_counter() - started
        scrapes.append(scrape)
    store.add_many(1, scrapes)
    end = start + count * interval
    best_row = best_read = best_bare = float("inf")
    usage = None
    for _ in range(5):
        started = time.perf_counter()
        scrapes = store.fetch(1, start, end)
        read = time.perf_counter() - started
        usage = compute_epoch_usage(1, 0, start, end, scrapes, spec, interval=interval,
                                    monitored_from=start)  # fmt: skip
        best_row = min(best_row, time.perf_counter() - started)
        best_read = min(best_read, read)
        started = time.perf_counter()
        total = 0.0
        for s in scrapes:  # the reference: one addition per value the row reads
            for value in s.series.values():
                total += value
        best_bare = min(best_bare, time.perf_counter() - started)
    store.close()
    assert usage is not None and usage.scrapes == count and usage.uptime_bps == 10_000
    values = sum(len(s.series) for s in scrapes)
    return {
        "scrapes": count,
        "series_exposed": SERIES,
        "series_kept": len(scrapes[-1].series),
        "values": values,
        "inferences": usage.inferences,
        "p50_ms": usage.latency_ms,
        "parse_ms_per_scrape": round(parse_seconds * 1_000 / count, 3),
        "row_seconds": round(best_row, 3),
        "read_seconds": round(best_read, 3),
        "bare_pass_seconds": round(best_bare, 4),
        "row_over_bare": round(best_row / best_bare, 1),
        "target_seconds": METERING_TARGET_SECONDS,
        "meets_target": best_row < METERING_TARGET_SECONDS,
    }


# ------------------------------------------------------------------------ gateway ----


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=ROOT, start_new_session=True)  # fmt: skip


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited: {log.read_text()[-2_000:]}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start: {log.read_text()[-2_000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _load(
    url: str, headers: list[dict[str, str]], seconds: float
) -> tuple[list[float], dict[str, int]]:
    """Open loop: a request every 1/RATE s for ``seconds`` (its own voucher each, when
    ``headers`` has them); returns the latencies in ms and the failures by status (or
    exception)."""
    latencies: list[float] = []
    failed: dict[str, int] = {}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def one(i: int) -> None:
            started = time.perf_counter()
            try:
                reply = await client.post(url, json=BODY, headers=headers[i] if headers else {})
                outcome = str(reply.status_code)
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            if outcome == "200":
                latencies.append((time.perf_counter() - started) * 1_000)
            else:
                failed[outcome] = failed.get(outcome, 0) + 1

        total = int(seconds * RATE)
        begin = time.perf_counter()
        tasks = []
        for i in range(total):
            delay = begin + i / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return latencies, failed


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure_gateway(workdir: Path, quick: bool) -> dict[str, Any]:
    """Latency of the same requests to the upstream and through the gateway."""
    seconds, rounds = (3.0, 2) if quick else (8.0, 3)
    keys = build_dev_keys(3)
    with LocalChain("anvil", accounts=3) as chain:
        w3 = connect(chain.url, timeout=120)
        issuer = Transactor(w3, Signer.from_key(keys[0]))
        operator = Signer.from_key(keys[1])
        manifest_path = workdir / "manifest.json"
        params = build_params(None, epoch_length=3_600, challenge_period=3_600,
                              unlock_period=3_600)  # fmt: skip
        suite = Suite.load(w3, deploy_suite(issuer, params, manifest_path).manifest)
        (done,) = register_nodes(issuer, suite, [NodeEntry(
            operator=operator.address, attestor=Signer.from_key(keys[2]).address,
            shares=1_000_000 * 10**18, price_per_1k=PRICE_PER_1K, operator_cut_bps=1_000,
            region="Singapore", external_id="bench-gateway")])  # fmt: skip
        node_id = done.node_id
        domain = fetch_channels_domain(suite)
        separator = domain.get_separator()
        customer_keys = ["0x" + keccak(text=f"edgeshare gateway bench {i}").hex()
                         for i in range(CUSTOMERS)]  # fmt: skip
        customers = [Signer.from_key(k) for k in customer_keys]
        for c in customers:
            w3.provider.make_request("anvil_setBalance", [c.address, hex(10**20)])  # type: ignore[arg-type]
            send_mint_mock(issuer, suite, c.address, 10**12)
            send_deposit(Transactor(w3, c), suite, node_id, 10**12)
        per_round = int(seconds * RATE)
        used = dict.fromkeys(range(CUSTOMERS), 0)

        def vouchers() -> list[dict[str, str]]:
            headers = []
            for i in range(per_round):
                c = i % CUSTOMERS
                used[c] += 1
                due = get_due(used[c] * PRICE_PER_1K)
                voucher = Voucher(node_id=node_id, customer=customers[c].address, generation=0,
                                  cumulative=due, deadline=2**40)  # fmt: skip
                signed = sign_voucher(voucher, customer_keys[c], domain, separator)
                headers.append({"X-EdgeShare-Voucher": encode_voucher_header(signed)})
            return headers

        up_port, gw_port = _free_port(), _free_port()
        upstream = _spawn([sys.executable, "-m", "edgeshare.upstream", str(up_port)],
                          workdir / "upstream.log")  # fmt: skip
        gateway = _spawn([str(Path(sys.executable).parent / "edgeshare"), "gateway",
                          "--node", str(node_id), "--upstream", f"http://127.0.0.1:{up_port}",
                          "--port", str(gw_port), "--db", str(workdir / "gateway.db"),
                          "--rpc-url", chain.url, "--manifest", str(manifest_path)],
                         workdir / "gateway.log")  # fmt: skip
        try:
            _wait_http(f"http://127.0.0.1:{up_port}/v1/models", upstream, workdir / "upstream.log")
            _wait_http(f"http://127.0.0.1:{gw_port}/v1/models", gateway, workdir / "gateway.log")
            direct_url = f"http://127.0.0.1:{up_port}/v1/chat/completions"
            paid_url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
            # warm up both (connections, the gateway's channel cache)
            asyncio.run(_load(direct_url, [], 1.0))
            warm = vouchers()
            asyncio.run(_load(paid_url, warm, len(warm) / RATE))
            direct: list[float] = []
            paid: list[float] = []
            failures: dict[str, dict[str, int]] = {"direct": {}, "gateway": {}}
            for _ in range(rounds):
                for name, url, headers in (("direct", direct_url, []),
                                           ("gateway", paid_url, vouchers())):  # fmt: skip
                    lat, bad = asyncio.run(_load(url, headers, seconds))
                    (direct if name == "direct" else paid).extend(lat)
                    for outcome, count in bad.items():
                        failures[name][outcome] = failures[name].get(outcome, 0) + count
        finally:
            _stop(gateway)
            _stop(upstream)
    d50, d99 = _percentile(direct, 0.50), _percentile(direct, 0.99)
    g50, g99 = _percentile(paid, 0.50), _percentile(paid, 0.99)
    added50, added99 = g50 - d50, g99 - d99
    return {
        "rate_per_second": RATE,
        "requests_each": len(direct),
        "rounds": rounds,
        "direct_p50_ms": round(d50, 2),
        "direct_p99_ms": round(d99, 2),
        "gateway_p50_ms": round(g50, 2),
        "gateway_p99_ms": round(g99, 2),
        "added_p50_ms": round(added50, 2),
        "added_p99_ms": round(added99, 2),
        "mean_direct_ms": round(statistics.fmean(direct), 2),
        "mean_gateway_ms": round(statistics.fmean(paid), 2),
        "failed": failures,
        "bound_p50_ms": ADDED_P50_BOUND_MS,
        "bound_p99_ms": ADDED_P99_BOUND_MS,
        "meets_bound": added50 <= ADDED_P50_BOUND_MS
        and added99 <= ADDED_P99_BOUND_MS
        and not failures["gateway"],
    }


def run_section(quick: bool) -> dict[str, Any]:
    """The node software section: metering and the gateway's overhead."""
    with tempfile.TemporaryDirectory() as tmp:
        print("node software: metering an epoch ...", flush=True)
        metering = measure_metering(Path(tmp), quick)
        print(metering, flush=True)
        print("node software: gateway overhead at 200 requests/s ...", flush=True)
        gateway = measure_gateway(Path(tmp), quick)
        print(gateway, flush=True)
    return {"metering": metering, "gateway": gateway}


def render(section: dict[str, Any]) -> list[str]:
    """The section's lines in bench/RESULTS.md."""
    m, g = section["metering"], section["gateway"]
    return [
        "| node software (this machine, this run) | measured | reference | target |",
        "| --- | ---: | ---: | --- |",
        f"| an epoch's row from {m['scrapes']:,} scrapes of a {m['series_exposed']}-series "
        f"exposition (read from the scrape store and computed; {m['values']:,} values) | "
        f"{m['row_seconds']} s | bare pass over the values {m['bare_pass_seconds']} s "
        f"({m['row_over_bare']}x) | under {m['target_seconds']:g} s: "
        f"{'met' if m['meets_target'] else 'NOT met'} |",
        f"| parsing one scrape (prometheus_client's parser) | {m['parse_ms_per_scrape']} ms | | |",
        f"| gateway p50 at {g['rate_per_second']} requests/s, voucher checked on each "
        f"({g['requests_each']:,} requests each way) | {g['gateway_p50_ms']} ms | direct "
        f"{g['direct_p50_ms']} ms (+{g['added_p50_ms']} ms) | at most +{g['bound_p50_ms']:g} ms |",
        f"| gateway p99 | {g['gateway_p99_ms']} ms | direct {g['direct_p99_ms']} ms "
        f"(+{g['added_p99_ms']} ms) | at most +{g['bound_p99_ms']:g} ms: "
        f"{'met' if g['meets_bound'] else 'NOT met'} |",
        "",
    ]
