"""Metering from real Prometheus expositions: counters and their resets, histograms and
their p50, uptime slots, scrapes over HTTP, and the scrape store across restarts."""

from __future__ import annotations

import itertools
import math
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from edgeshare.chain import get_free_port
from edgeshare.errors import InputError
from edgeshare.metering import (
    MAX_LATENCY_MS,
    PRESETS,
    MeterSpec,
    Scrape,
    ScrapeStore,
    build_series_key,
    compute_epoch_usage,
    fetch_scrape,
    parse_scrape,
    resolve_spec,
)

VLLM = PRESETS["vllm"]
TGI = PRESETS["tgi"]
COUNTER = "vllm:request_success_total"
BOUNDS = (0.1, 0.5, 1.0)


class VllmServer:
    """A vLLM-like server's metrics: its success counter (labels model_name and
    finished_reason) and end-to-end latency histogram, named as vLLM names them, in a
    registry of its own (a new one is a restart: every counter back to 0)."""

    def __init__(self, buckets: tuple[float, ...] = BOUNDS) -> None:
        self.registry = CollectorRegistry()
        self.success = Counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            ["model_name", "finished_reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of end to end request latency in seconds.",
            ["model_name"],
            buckets=buckets,
            registry=self.registry,
        )
        running = Gauge(
            "vllm:num_requests_running", "Running.", ["model_name"], registry=self.registry
        )
        running.labels("m").set(2)

    def serve(self, n: int = 1, reason: str = "stop", seconds: float = 0.2) -> None:
        """``n`` requests served, each taking ``seconds``."""
        for _ in range(n):
            self.success.labels("m", reason).inc()
            self.latency.labels("m").observe(seconds)

    def scrape(self, at: int, spec: MeterSpec = VLLM) -> Scrape:
        """A scrape of the exposition as it is now."""
        scrape = parse_scrape(generate_latest(self.registry).decode(), spec, at)
        assert scrape.ok, scrape.error
        return scrape


def _usage(scrapes: list[Scrape], start: int = 1_000, end: int = 2_000, **kw: Any) -> Any:
    args: dict[str, Any] = {"interval": 10, "monitored_from": 0, **kw}
    spec = args.pop("spec", VLLM)
    return compute_epoch_usage(7, 3, start, end, scrapes, spec, **args)


def _key(reason: str) -> str:
    return build_series_key(COUNTER, {"model_name": "m", "finished_reason": reason})


# ------------------------------------------------------------------ parsing


def test_parse__vllm_exposition__keeps_only_the_needed_series() -> None:
    server = VllmServer()
    server.serve(3, seconds=0.3)
    scrape = server.scrape(1_000)
    assert scrape.error == ""
    assert scrape.series[_key("stop")] == 3.0
    le = 'vllm:e2e_request_latency_seconds_bucket{model_name="m",le="%s"}'
    assert scrape.series[le % "0.1"] == 0.0
    assert scrape.series[le % "0.5"] == 3.0
    assert scrape.series[le % "+Inf"] == 3.0
    assert len(scrape.series) == 1 + len(BOUNDS) + 1  # no gauge, _count, _sum or _created


def test_parse__tgi_counter__matches_with_or_without_total() -> None:
    # TGI's metrics-rs exporter writes counters without _total; prometheus_client's own
    # exposition adds it; the parser renames the first kind's samples: both must match
    metrics_rs = (
        "# TYPE tgi_request_success counter\n"
        'tgi_request_success{model="m"} 12\n'
        "# TYPE tgi_request_duration histogram\n"
        'tgi_request_duration_bucket{le="0.5"} 4\n'
        'tgi_request_duration_bucket{le="+Inf"} 12\n'
        "tgi_request_duration_sum 9.5\n"
        "tgi_request_duration_count 12\n"
    )
    registry = CollectorRegistry()
    Counter("tgi_request_success", "Successful requests.", ["model"], registry=registry).labels(
        "m"
    ).inc(12)
    client = generate_latest(registry).decode()
    assert "tgi_request_success_total" in client
    untyped = 'tgi_request_success{model="m"} 12\n'
    for text in (metrics_rs, client, untyped):
        scrape = parse_scrape(text, TGI, 5)
        assert scrape.ok and scrape.series['tgi_request_success{model="m"}'] == 12.0, text
    assert parse_scrape(metrics_rs, TGI, 5).series['tgi_request_duration_bucket{le="0.5"}'] == 4


def test_parse__le_is_canonical_and_last_in_the_key() -> None:
    text = (
        "# TYPE h histogram\n"
        'h_bucket{le="1",zone="a"} 1\nh_bucket{le="1.0",zone="b"} 2\n'
        'h_bucket{zone="a",le="+Inf"} 3\nh_bucket{le="nope"} 9\n'
    )
    spec = MeterSpec(success_counter="c", latency_histogram="h")
    scrape = parse_scrape(text, spec, 1)
    assert scrape.series == {
        'h_bucket{zone="a",le="1.0"}': 1.0,
        'h_bucket{zone="b",le="1.0"}': 2.0,
        'h_bucket{zone="a",le="+Inf"}': 3.0,
    }
    assert "no sample of c" in scrape.error and scrape.ok


def test_parse__success_labels__choose_the_series() -> None:
    server = VllmServer()
    server.serve(2, reason="stop")
    server.serve(5, reason="length")
    spec = resolve_spec("vllm", success_labels={"finished_reason": "length"})
    chosen = server.scrape(1, spec).series.keys() & {_key("length"), _key("stop")}
    assert chosen == {_key("length")}
    absent = resolve_spec("vllm", success_labels={"finished_reason": "abort"})
    scrape = server.scrape(1, absent)
    assert scrape.ok and "finished_reason" in scrape.error
    assert "keeps its last value" in scrape.error


def test_parse__missing_counter__is_ok_with_a_warning() -> None:
    registry = CollectorRegistry()
    Gauge("tgi_queue_size", "Queue.", registry=registry).set(0)
    scrape = parse_scrape(generate_latest(registry).decode(), TGI, 3)
    assert scrape.ok and scrape.series == {}
    assert "no sample of tgi_request_success" in scrape.error


@pytest.mark.parametrize(
    ("text", "problem"),
    [("<html><body>Bad gateway</body></html>\n", "not Prometheus text format"),
     ('x{a="1" 3\n', "not Prometheus text format"), ("", "holds no metrics"),
     ("# just a comment\n\n", "holds no metrics")],
)  # fmt: skip
def test_parse__garbage__is_a_failed_scrape(text: str, problem: str) -> None:
    scrape = parse_scrape(text, VLLM, 9)
    assert not scrape.ok and problem in scrape.error and scrape.series == {}


EXPOSITION_CHARACTERS = st.sampled_from('ab_:{}",=\\ \n#0123456789.+-eInfTYPEle')


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=EXPOSITION_CHARACTERS, max_size=80))
def test_parse__never_raises_on_arbitrary_text(text: str) -> None:
    scrape = parse_scrape(text, VLLM, 1)
    assert scrape.ok or scrape.error


def test_parse__openmetrics_exposition() -> None:
    server = VllmServer()
    server.serve(4)
    text = generate_openmetrics(server.registry).decode()
    scrape = parse_scrape(text, VLLM, 1, openmetrics=True)
    assert scrape.ok and scrape.series[_key("stop")] == 4.0


# ------------------------------------------------------------------ specs


def test_resolve_spec__preset_with_overrides() -> None:
    spec = resolve_spec("vllm", success_counter="vllm:request_success", latency_histogram=None)
    assert spec.success_counter == "vllm:request_success" and spec.latency_histogram is None
    triton = resolve_spec("triton", latency_mean=["a_us", "b"])  # a TOML list
    assert triton.latency_mean == ("a_us", "b")
    assert resolve_spec(None, success_counter="my_served_total").latency_unit == "seconds"


@pytest.mark.parametrize(
    ("preset", "overrides", "problem"),
    [("llamacpp", {}, "unknown metrics preset 'llamacpp'"),
     (None, {}, "success_counter: Field required"),
     ("vllm", {"sucess_counter": "x"}, "sucess_counter: unknown field"),
     ("vllm", {"success_counter": "not a name"}, "is not a Prometheus metric name"),
     ("vllm", {"latency_histogram": "h_bucket"}, "without _bucket"),
     ("vllm", {"latency_mean": ("s", "c")}, "not both"),
     ("vllm", {"latency_unit": "hours"}, "latency_unit"),
     ("vllm", {"success_labels": {"le": "1"}}, "not a label name")],
)  # fmt: skip
def test_resolve_spec__refuses_bad_input(
    preset: str | None, overrides: dict[str, Any], problem: str
) -> None:
    with pytest.raises(InputError, match="metrics") as raised:
        resolve_spec(preset, **overrides)
    assert problem in str(raised.value)


# ------------------------------------------------------------------ inferences


def test_inferences__increase_across_scrapes() -> None:
    server = VllmServer()
    server.serve(5)  # before metering started: not this epoch's
    scrapes = [server.scrape(1_000)]
    for at in range(1_010, 1_100, 10):
        server.serve(3)
        server.serve(1, reason="length")
        scrapes.append(server.scrape(at))
    assert _usage(scrapes).inferences == 9 * 4


def test_inferences__counter_reset__counted_like_prometheus_increase() -> None:
    server = VllmServer()
    server.serve(10)
    scrapes = [server.scrape(1_000)]
    server.serve(4)
    scrapes.append(server.scrape(1_010))  # 14
    server = VllmServer()  # the server restarts: its counters start again from 0
    server.serve(3)
    scrapes.append(server.scrape(1_020))  # 3 < 14: a reset, all 3 are new
    server.serve(2)
    scrapes.append(server.scrape(1_030))  # 5
    assert _usage(scrapes).inferences == 4 + 3 + 2


def test_inferences__series_missing_in_one_scrape_and_back__counts_nothing_twice() -> None:
    server = VllmServer()
    server.serve(10)
    server.serve(5, reason="length")
    full = server.scrape(1_000)
    server.serve(2)
    gap = server.scrape(1_010)
    partial = Scrape(gap.at, True, "", {k: v for k, v in gap.series.items() if "length" not in k})
    server.serve(1, reason="length")
    assert _usage([full, partial, server.scrape(1_020)]).inferences == 2 + 1


def test_inferences__new_labelled_series__counts_from_zero() -> None:
    server = VllmServer()
    server.serve(10)
    first = server.scrape(1_000)
    server.serve(3, reason="length")  # the series appears with 3
    scrapes = [first, server.scrape(1_010)]
    assert _key("length") not in first.series
    assert _usage(scrapes).inferences == 3


def test_inferences__epoch_boundary__two_epochs_add_up_to_the_increase_over_both() -> None:
    server = VllmServer()
    scrapes = [server.scrape(1_000)]
    for n, at in enumerate(range(1_015, 3_000, 15)):
        server.serve(n % 4)
        if n == 40:
            server = VllmServer()
        scrapes.append(server.scrape(at))
    whole = _usage(scrapes, 1_000, 3_000).inferences
    first = _usage(scrapes, 1_000, 2_000).inferences
    second = _usage(scrapes, 2_000, 3_000).inferences
    assert first > 0 and second > 0 and first + second == whole


def test_inferences__failed_scrapes__lose_nothing() -> None:
    server = VllmServer()
    scrapes = [server.scrape(1_000)]
    server.serve(4)
    scrapes.append(Scrape(1_010, False, "http://x/metrics: no answer within 2 s (ReadTimeout)"))
    server.serve(4)
    scrapes.append(server.scrape(1_020))
    assert _usage(scrapes).inferences == 8


# ------------------------------------------------------------------ latency


def test_latency__p50_interpolates_like_histogram_quantile() -> None:
    server = VllmServer()
    server.serve(5, seconds=3.0)  # before the epoch: not in its p50
    scrapes = [server.scrape(900)]
    for seconds, n in ((0.05, 2), (0.3, 4), (0.7, 3), (5.0, 1)):
        server.serve(n, seconds=seconds)
    scrapes.append(server.scrape(1_500))
    # bucket increases (cumulative): le=0.1: 2, 0.5: 6, 1.0: 9, +Inf: 10; rank 0.5 * 10 = 5
    # falls in (0.1, 0.5]: 0.1 + (0.5 - 0.1) * (5 - 2) / (6 - 2) = 0.4 s
    usage = _usage(scrapes)
    assert usage.latency_ms == 400
    assert usage.latency_note == "p50 of 10 requests (vllm:e2e_request_latency_seconds)"


def test_latency__rank_in_the_inf_bucket__is_the_highest_finite_bound() -> None:
    server = VllmServer()
    scrapes = [server.scrape(1_000)]
    server.serve(3, seconds=9.0)
    scrapes.append(server.scrape(1_010))
    assert _usage(scrapes).latency_ms == 1_000


def test_latency__first_bucket__starts_at_zero() -> None:
    server = VllmServer()
    scrapes = [server.scrape(1_000)]
    server.serve(4, seconds=0.01)
    scrapes.append(server.scrape(1_010))
    assert _usage(scrapes).latency_ms == 50  # 0 + 0.1 * 2 / 4


def test_latency__no_observations__is_none_with_a_note_not_zero() -> None:
    server = VllmServer()
    server.latency.labels("m")  # exposed, with every bucket at 0
    scrapes = [server.scrape(1_000), server.scrape(1_010)]
    usage = _usage(scrapes)
    assert usage.latency_ms is None and usage.latency_note == "no requests in the epoch"
    assert usage.inferences == 0


def test_latency__histogram_not_exposed__says_so() -> None:
    server = VllmServer()  # a labelled histogram appears only once observed
    usage = _usage([server.scrape(1_000), server.scrape(1_010)])
    assert usage.latency_ms is None
    assert "vllm:e2e_request_latency_seconds is not exposed" in usage.latency_note


def test_latency__no_successful_scrape__says_so() -> None:
    usage = _usage([Scrape(1_000, False, "down"), Scrape(1_010, False, "down")])
    assert usage.latency_ms is None and usage.latency_note == "no successful scrape in the epoch"
    assert usage.inferences == 0 and usage.uptime_bps == 0


def test_latency__tgi_histogram_from_prometheus_client() -> None:
    registry = CollectorRegistry()
    success = Counter("tgi_request_success", "ok", registry=registry)
    duration = Histogram("tgi_request_duration", "e2e", buckets=(0.5, 2.0), registry=registry)
    at, scrapes = 1_000, []
    for seconds in (None, 0.25, 1.0, 1.5, 0.4):
        if seconds is not None:
            success.inc()
            duration.observe(seconds)
        scrapes.append(parse_scrape(generate_latest(registry).decode(), TGI, at))
        at += 10
    usage = _usage(scrapes, spec=TGI)
    # 4 requests, rank 2: (0, 0.5] holds 2 -> 0.5 s
    assert (usage.inferences, usage.latency_ms) == (4, 500)


def test_latency__triton_mean__from_cumulative_microseconds() -> None:
    def exposition(count: int, micros: int) -> str:
        return (
            "# HELP nv_inference_request_success Number of successful inference requests\n"
            "# TYPE nv_inference_request_success counter\n"
            f'nv_inference_request_success{{model="resnet",version="1"}} {count}\n'
            "# TYPE nv_inference_request_duration_us counter\n"
            f'nv_inference_request_duration_us{{model="resnet",version="1"}} {micros}\n'
        )

    triton = PRESETS["triton"]
    scrapes = [
        parse_scrape(exposition(10, 900_000), triton, 1_000),
        parse_scrape(exposition(14, 1_000_001), triton, 1_010),
    ]
    usage = _usage(scrapes, spec=triton)
    assert usage.inferences == 4
    assert usage.latency_ms == 26  # 100_001 us / 4 = 25.00025 ms, rounded up
    assert "a mean, not a p50" in usage.latency_note


def test_latency__capped_at_uint32() -> None:
    spec = MeterSpec(success_counter="c", latency_histogram="h", latency_unit="seconds")
    huge = 'c 1\nh_bucket{le="1e12"} %d\nh_bucket{le="+Inf"} %d\n'
    scrapes = [parse_scrape(huge % (0, 0), spec, 1_000), parse_scrape(huge % (2, 2), spec, 1_010)]
    assert _usage(scrapes, spec=spec).latency_ms == MAX_LATENCY_MS


# ------------------------------------------------------------------ uptime


def _beat(at: int, ok: bool = True) -> Scrape:
    return Scrape(at, ok, "" if ok else "down", {"c": 1.0} if ok else {})


def test_uptime__missed_slots_and_failed_scrapes_are_down() -> None:
    ok_slots = [0, 1, 2, 5, 6, 8, 9]  # slot 3: a failed scrape; 4 and 7: none at all
    scrapes = [_beat(1_003 + 10 * s) for s in ok_slots] + [_beat(1_033, ok=False)]
    usage = _usage(scrapes, 1_000, 1_100, spec=MeterSpec(success_counter="c"))
    assert (usage.slots, usage.slots_up, usage.uptime_bps, usage.scrapes) == (10, 7, 7_000, 8)


def test_uptime__two_scrapes_in_one_slot__count_once() -> None:
    scrapes = [_beat(1_001), _beat(1_002), _beat(1_004, ok=False)]
    usage = _usage(scrapes, 1_000, 1_020)
    assert (usage.slots, usage.slots_up, usage.uptime_bps) == (2, 1, 5_000)


def test_uptime__slots_before_monitoring__do_not_count() -> None:
    scrapes = [_beat(at) for at in range(1_025, 1_100, 10)]
    usage = _usage(scrapes, 1_000, 1_100, monitored_from=1_025)
    assert (usage.slots, usage.slots_up, usage.uptime_bps) == (8, 8, 10_000)
    # the cut slot [1025, 1030) with no scrape in it does not count; a whole one would
    late = _usage(scrapes[1:], 1_000, 1_100, monitored_from=1_025)
    assert (late.slots, late.slots_up) == (7, 7)
    assert _usage(scrapes[1:], 1_000, 1_100, monitored_from=1_020).slots == 8


def test_uptime__a_short_last_slot__counts_only_if_scraped() -> None:
    scrapes = [_beat(at) for at in range(1_005, 1_095, 10)]
    assert _usage(scrapes, 1_000, 1_095).slots == 9
    assert _usage([*scrapes, _beat(1_094, ok=False)], 1_000, 1_095).slots == 10


def test_uptime__no_slot__reports_zero_slots() -> None:
    usage = _usage([_beat(1_010)], 1_000, 1_100, monitored_from=1_100)
    assert (usage.slots, usage.uptime_bps) == (0, 0)


def test_compute__refuses_a_bad_interval_or_epoch() -> None:
    with pytest.raises(InputError, match="interval"):
        _usage([], interval=0)
    with pytest.raises(InputError, match="end after it starts"):
        _usage([], 1_000, 1_000)


# ------------------------------------------------------------------ fetch_scrape


class Metrics(BaseHTTPRequestHandler):
    """A node's metrics endpoint and the ways it goes wrong, by path."""

    server_: ClassVar[VllmServer]

    def do_GET(self) -> None:
        path = self.path
        if path == "/slow":
            time.sleep(3)
        bodies: dict[str, tuple[int, str, bytes]] = {
            "/metrics": (200, CONTENT_TYPE_LATEST, generate_latest(self.server_.registry)),
            "/slow": (200, CONTENT_TYPE_LATEST, generate_latest(self.server_.registry)),
            "/openmetrics": (200, OPENMETRICS_TYPE, generate_openmetrics(self.server_.registry)),
            "/error": (500, "text/plain", b"internal error"),
            "/garbage": (200, "text/html", b"<html><body>Bad gateway</body></html>"),
            "/binary": (200, "text/plain", b"\xff\xfe\x00oops"),
            "/healthz": (200, "application/json", b'{"ok": true}'),
            "/sick": (503, "application/json", b'{"ok": false}'),
        }
        status, kind, body = bodies.get(path, (404, "text/plain", b"no such page"))
        try:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up (the timeout test)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    Metrics.server_ = VllmServer()
    Metrics.server_.serve(6)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_fetch_scrape__ok(endpoint: str) -> None:
    scrape = fetch_scrape(f"{endpoint}/metrics", VLLM, 42, timeout=5)
    assert scrape.ok and scrape.at == 42 and scrape.error == ""
    assert scrape.series[_key("stop")] == 6.0
    with httpx.Client() as client:
        again = fetch_scrape(
            f"{endpoint}/openmetrics", VLLM, 43, timeout=5, client=client,
            health_url=f"{endpoint}/healthz",
        )  # fmt: skip
        assert again.ok and again.series == scrape.series
        assert not client.is_closed  # a client given is the caller's to close


@pytest.mark.parametrize(
    ("path", "problem"),
    [("/error", "answered HTTP 500"), ("/garbage", "the body is not Prometheus text format"),
     ("/binary", "the body is not UTF-8"), ("/nowhere", "answered HTTP 404")],
)  # fmt: skip
def test_fetch_scrape__bad_answers__are_failed_scrapes(
    endpoint: str, path: str, problem: str
) -> None:
    scrape = fetch_scrape(f"{endpoint}{path}", VLLM, 1, timeout=5)
    assert not scrape.ok and scrape.series == {}
    assert scrape.error.startswith(f"{endpoint}{path}") and problem in scrape.error


def test_fetch_scrape__slow_server__times_out(endpoint: str) -> None:
    began = time.monotonic()
    scrape = fetch_scrape(f"{endpoint}/slow", VLLM, 1, timeout=0.5)
    assert time.monotonic() - began < 2.5
    assert not scrape.ok and f"{endpoint}/slow" in scrape.error
    assert "no answer within 0.5 s" in scrape.error and "Timeout" in scrape.error


def test_fetch_scrape__connection_refused() -> None:
    url = f"http://127.0.0.1:{get_free_port()}/metrics"
    scrape = fetch_scrape(url, VLLM, 1, timeout=2)
    assert not scrape.ok and scrape.error.startswith(f"{url}: cannot connect")


def test_fetch_scrape__failing_health_check__is_a_failed_scrape(endpoint: str) -> None:
    scrape = fetch_scrape(f"{endpoint}/metrics", VLLM, 1, timeout=5, health_url=f"{endpoint}/sick")
    assert not scrape.ok and scrape.series == {}
    assert scrape.error == f"health check failed: {endpoint}/sick answered HTTP 503"


def test_fetch_scrape__not_a_url() -> None:
    scrape = fetch_scrape("ftp://nowhere/metrics", VLLM, 1, timeout=1)
    assert not scrape.ok and scrape.error.startswith("ftp://nowhere/metrics: ")


# ------------------------------------------------------------------ the scrape store


def test_store__add_is_idempotent_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "agent" / "scrapes.db"
    server = VllmServer()
    scrapes = []
    for at in range(1_000, 1_060, 10):
        server.serve(2)
        scrapes.append(server.scrape(at))
    with ScrapeStore(path) as store:
        for scrape in scrapes[:4]:
            store.add(7, scrape)
    with ScrapeStore(path) as store:  # the agent restarted: it replays what it had
        for scrape in scrapes:
            store.add(7, scrape)
        store.add(7, Scrape(1_000, False, "a different scrape at the same time"))
        store.add(8, Scrape(1_000, False, "another node"))
        got = store.fetch(7, 0, 10_000)
        assert got == scrapes
        assert store.first_at(7) == 1_000 and store.first_at(9) is None
        assert _usage(got).inferences == 10


def test_store__baseline__carries_series_the_last_scrape_lacked(tmp_path: Path) -> None:
    server = VllmServer()
    server.serve(10)
    server.serve(5, reason="length")
    first = server.scrape(1_900)
    server.serve(1, reason="length")
    seen = server.scrape(1_950)
    # the last scrape before the epoch lacks the "length" series (a flaky exporter)
    lacking = Scrape(1_990, True, "", {k: v for k, v in seen.series.items() if "length" not in k})
    server.serve(2, reason="length")
    inside = server.scrape(2_010)
    with ScrapeStore(tmp_path / "s.db") as store:
        store.add_many(7, [first, seen, Scrape(1_960, False, "down"), lacking, inside])
        got = store.fetch(7, 2_000, 3_000)
    assert [s.at for s in got] == [1_990, 2_010]
    assert got[0].series[_key("length")] == 6.0  # carried from 1950
    assert _usage(got, 2_000, 3_000).inferences == 2


def test_store__prune__keeps_the_baseline(tmp_path: Path) -> None:
    server = VllmServer()
    scrapes = []
    for at in range(1_000, 1_100, 10):
        server.serve(1)
        scrapes.append(server.scrape(at))
    scrapes.append(Scrape(1_100, False, "down"))
    with ScrapeStore(tmp_path / "s.db") as store:
        store.add_many(7, [*scrapes, Scrape(1_105, True)])
        store.add(8, scrapes[0])
        assert store.prune(7, 1_101) == 10  # all but the last ok one before 1101
        assert [s.at for s in store.fetch(7, 0, 2_000)] == [1_090, 1_105]
        assert store.fetch(7, 1_101, 2_000)[0].at == 1_090
        assert store.first_at(8) == 1_000


# ------------------------------------------------------------------ properties

STEP = st.tuples(
    st.lists(st.integers(0, 4), min_size=3, max_size=3),  # increments per series
    st.booleans() | st.just(False),  # the server restarts before this scrape
    st.sets(st.integers(0, 2), max_size=2),  # series this scrape lacks
    st.integers(0, 5),  # 0: the scrape fails
)


def _simulate(steps: list[Any]) -> list[Scrape]:
    """Scrapes every 10 s from 1000 of a server whose three labelled series start at 0 and
    appear once they count something (as TGI's do), and after a restart again so."""
    values = [0.0, 0.0, 0.0]
    exposed = [False, False, False]
    scrapes = []
    for n, (increments, restart, hidden, fails) in enumerate(steps):
        if restart:
            values, exposed = [0.0, 0.0, 0.0], [False, False, False]
        for i, inc in enumerate(increments):
            values[i] += inc
            exposed[i] = exposed[i] or inc > 0
        series = {
            build_series_key("c", {"r": str(i)}): values[i]
            for i in range(3)
            if exposed[i] and i not in hidden
        }
        at = 1_000 + 10 * n
        scrapes.append(Scrape(at, True, "", series) if fails else Scrape(at, False, "down"))
    return scrapes


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=st.lists(STEP, min_size=1, max_size=40), data=st.data())
def test_property__splitting_at_any_epoch_boundary_conserves_the_increase(
    steps: list[Any], data: st.DataObject
) -> None:
    spec = MeterSpec(success_counter="c")
    scrapes = _simulate(steps)
    end = 1_000 + 10 * len(steps)
    cuts = sorted(data.draw(st.sets(st.integers(1_000, end), max_size=4)) | {1_000, end})
    epochs = list(itertools.pairwise(cuts))

    def total(fetch: Any) -> int:
        return sum(
            compute_epoch_usage(
                1, e, a, b, fetch(a, b), spec, interval=10, monitored_from=1_000
            ).inferences
            for e, (a, b) in enumerate(epochs)
            if b > a
        )

    whole = compute_epoch_usage(1, 0, 1_000, end, scrapes, spec, interval=10, monitored_from=0)
    assert total(lambda a, b: scrapes) == whole.inferences  # the whole history each time
    with tempfile.TemporaryDirectory() as folder, ScrapeStore(Path(folder) / "s.db") as store:
        store.add_many(1, scrapes[: len(scrapes) // 2])
        for scrape in scrapes[len(scrapes) // 2 :]:
            store.add(1, scrape)
        assert total(lambda a, b: store.fetch(1, a, b)) == whole.inferences  # baselines only
    if not any(restart for _, restart, _, _ in steps):
        # with no reset, the increase is each series' last value less its first
        ok = [s for s in scrapes if s.ok]
        expected = 0.0
        for key in {k for s in ok for k in s.series}:
            seen = [s.series[key] for s in ok if key in s.series]
            expected += seen[-1] - (ok[0].series.get(key, 0.0) if ok else 0.0)
        assert whole.inferences == round(expected)


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(0, 50), min_size=4, max_size=4))
def test_property__p50_is_within_its_bucket(counts: list[int]) -> None:
    spec = MeterSpec(success_counter="c", latency_histogram="h")
    bounds = ("0.1", "0.5", "1.0", "+Inf")
    cumulative = [sum(counts[: i + 1]) for i in range(4)]
    text = "".join(f'h_bucket{{le="{b}"}} {c}\n' for b, c in zip(bounds, cumulative, strict=True))
    zero = "".join(f'h_bucket{{le="{b}"}} 0\n' for b in bounds)
    scrapes = [parse_scrape("c 0\n" + zero, spec, 1_000), parse_scrape("c 0\n" + text, spec, 1_010)]
    usage = _usage(scrapes, spec=spec)
    if cumulative[-1] == 0:
        assert usage.latency_ms is None and usage.latency_note == "no requests in the epoch"
        return
    rank = cumulative[-1] / 2
    b = next(i for i, c in enumerate(cumulative) if c >= rank)
    upper = [100, 500, 1_000, 1_000][b]
    lower = [0, 100, 500, 1_000][b]
    assert usage.latency_ms is not None and lower <= usage.latency_ms <= upper
    assert not math.isnan(usage.latency_ms)
