"""Metering a node from its inference server's own Prometheus metrics.

The agent scrapes the server's ``/metrics`` every few seconds (``fetch_scrape``), keeps
only the samples the node's ``MeterSpec`` needs (``parse_scrape``), stores each scrape in
a local SQLite file (``ScrapeStore``) and, once an epoch has ended, turns the epoch's
scrapes into the node's usage row (``compute_epoch_usage``):

- **inferences**: the increase of the success counter over the epoch, summed over its
  series. Per series, each pair of consecutive successful scrapes adds ``v - prev``, or
  ``v`` when the value dropped (the server restarted: a counter reset, as Prometheus'
  ``increase()`` reads it, but with no extrapolation to the epoch's edges). A pair is
  counted in the epoch that holds its later scrape, so every increment lands in exactly
  one epoch: the epochs' inferences add up to the increase over all of them. A series
  missing from a scrape keeps its last value; a series first seen after the node's first
  successful scrape counts from 0 (a new label value, or the first request after a
  restart of a server that exposes a series only once it has one).
- **latency_ms**: the p50 of the latency histogram's bucket increases over the epoch
  (summed over its series), interpolated as PromQL's ``histogram_quantile(0.5, ...)``
  does, in milliseconds rounded up. Triton exposes no histogram by default, only
  cumulative sums: its preset reads the mean (a mean, not a p50). With no request in the
  epoch there is no p50: ``None`` and a note saying why, never an invented 0.
- **uptime_bps**: the share of the epoch's scrape slots (``interval`` seconds each) that
  hold a successful scrape (and health check, when one is configured), so a scrape that
  failed, and one that never happened, both count as downtime.

Names are the samples' names as the server exposes them: ``vllm:request_success_total``,
``tgi_request_success``. The ``prometheus_client`` parser renames the samples of a
counter exposed without ``_total`` (as TGI's and Triton's are) to end with ``_total``;
names here match either way.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families
from pydantic import Field, ValidationError, field_validator, model_validator
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    MetaData,
    Table,
    Text,
    and_,
    create_engine,
    delete,
    event,
    func,
    select,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from edgeshare.errors import EdgeShareError, InputError
from edgeshare.models import MAX_BPS, StrictModel

MAX_LATENCY_MS = 2**32 - 1
"""The usage report's ``latency_ms`` is a uint32: a longer p50 is reported as this."""
MAX_INFERENCES = 2**64 - 1
"""The usage report's ``inferences`` is a uint64."""
MAX_BODY_BYTES = 16 * 2**20
"""A metrics body larger than this is refused (vLLM's is a few hundred kB at most)."""
ACCEPT = "text/plain;version=0.0.4;q=1.0,*/*;q=0.1"
"""The Accept header of a scrape: the classic text format. (Offered OpenMetrics as well,
``prometheus_client`` servers such as vLLM answer with it and write the colons of names
such as ``vllm:request_success_total`` as underscores.)"""

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_MS_PER_UNIT = {"seconds": 1_000.0, "milliseconds": 1.0, "microseconds": 0.001}
_PARSE_ERRORS = (ValueError, IndexError, KeyError, TypeError, AttributeError)

# the OpenMetrics parser is not annotated
_openmetrics_families: Callable[[str], Iterable[Metric]] = (
    openmetrics_parser.text_string_to_metric_families
)

# roles of a stored series
_COUNTER, _BUCKET, _MEAN_SUM, _MEAN_COUNT = 0, 1, 2, 3


class MeterSpec(StrictModel):
    """What to read from one Prometheus exposition: the counter of served requests and
    the latency histogram (or, for a server that has none, the sums a mean comes from)."""

    success_counter: str
    """The counter of successfully served requests, as exposed: e.g.
    ``vllm:request_success_total`` (with or without ``_total`` matches either)."""
    success_labels: dict[str, str] = Field(default_factory=dict)
    """Only the counter's series with these label values (e.g. ``{"model_name": "m"}``);
    empty: every series, summed."""
    latency_histogram: str | None = None
    """The latency histogram's base name (its buckets are ``<name>_bucket``), e.g.
    ``vllm:e2e_request_latency_seconds``; None: no histogram."""
    latency_labels: dict[str, str] = Field(default_factory=dict)
    """Only the latency series (histogram or mean) with these label values; empty: all."""
    latency_unit: Literal["seconds", "milliseconds", "microseconds"] = "seconds"
    """The unit of the histogram's bucket bounds (or of the mean's sum)."""
    latency_mean: tuple[str, str] | None = None
    """``(sum counter, count counter)`` for a server that exposes only cumulative sums
    (Triton): latency is then their increases' ratio, a mean, not a p50."""

    @field_validator("latency_mean", mode="before")
    @classmethod
    def _pair_from_a_list(cls, value: Any) -> Any:
        """A two-item list (TOML and JSON have no tuples) is read as the pair."""
        return tuple(value) if isinstance(value, list) else value

    @field_validator("success_counter", "latency_histogram")
    @classmethod
    def _is_a_metric_name(cls, value: str | None) -> str | None:
        """A Prometheus metric name (letters, digits, ``_`` and ``:``)."""
        if value is not None and not _METRIC_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a Prometheus metric name")
        return value

    @field_validator("latency_mean")
    @classmethod
    def _are_metric_names(cls, value: tuple[str, str] | None) -> tuple[str, str] | None:
        """Both names of the pair are Prometheus metric names."""
        for name in value or ():
            if not _METRIC_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a Prometheus metric name")
        return value

    @field_validator("success_labels", "latency_labels")
    @classmethod
    def _are_label_names(cls, value: dict[str, str]) -> dict[str, str]:
        """Label names as Prometheus spells them (``le`` is the buckets' own)."""
        for name in value:
            if not _LABEL_NAME.fullmatch(name) or name == "le":
                raise ValueError(f"{name!r} is not a label name a series can be chosen by")
        return value

    @model_validator(mode="after")
    def _one_latency_source(self) -> MeterSpec:
        if self.latency_histogram is not None and self.latency_mean is not None:
            raise ValueError("give latency_histogram or latency_mean, not both")
        if self.latency_histogram is not None and self.latency_histogram.endswith("_bucket"):
            raise ValueError(
                f"latency_histogram is the histogram's base name: "
                f"{self.latency_histogram.removesuffix('_bucket')!r}, without _bucket"
            )
        return self


PRESETS: dict[str, MeterSpec] = {
    # docs.vllm.ai "Production Metrics": a counter with labels model_name and
    # finished_reason (stop, length, abort), and the end-to-end latency histogram, seconds.
    # vLLM has renamed metrics between versions (vllm-project/vllm#18354): override as needed.
    "vllm": MeterSpec(
        success_counter="vllm:request_success_total",
        latency_histogram="vllm:e2e_request_latency_seconds",
    ),
    # huggingface.co/docs/text-generation-inference/reference/metrics: exposed by the
    # metrics-rs exporter, whose counters have no _total suffix; the request duration
    # histogram (end to end) is in seconds.
    "tgi": MeterSpec(
        success_counter="tgi_request_success",
        latency_histogram="tgi_request_duration",
    ),
    # Triton's user guide, "Metrics" (port 8002): per-model counters with no _total
    # suffix. Latency is cumulative microseconds only (quantiles need its experimental
    # summary option), so the latency is the mean over successful requests, which the
    # guide pairs with the request duration (a summary's _count matches request_success).
    "triton": MeterSpec(
        success_counter="nv_inference_request_success",
        latency_unit="microseconds",
        latency_mean=("nv_inference_request_duration_us", "nv_inference_request_success"),
    ),
    # the EdgeShare gateway's own /metrics (edgeshare.gateway): paid requests the upstream
    # served, and the gateway's request duration histogram, seconds
    "edgeshare": MeterSpec(
        success_counter="edgeshare_gateway_served_total",
        latency_histogram="edgeshare_gateway_request_duration_seconds",
    ),
}
"""Specs for the servers EdgeShare knows, by name."""


def resolve_spec(preset: str | None, **overrides: Any) -> MeterSpec:
    """The spec of ``preset`` with ``overrides`` applied (or, with no preset, the spec the
    overrides alone describe).

    An override given as None sets its field to None (``latency_histogram=None`` turns
    latency off); leave a field out to keep the preset's.

    Raises:
        InputError: an unknown preset, an unknown field, or a value that is not valid
            (each problem named).
    """
    if preset is not None and preset not in PRESETS:
        raise InputError(f"unknown metrics preset {preset!r}: choose one of {', '.join(PRESETS)}")
    base = PRESETS[preset].model_dump() if preset is not None else {}
    try:
        return MeterSpec.model_validate({**base, **overrides})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "spec"
            message = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown field"
            problems.append(f"{where}: {message}")
        named = f"preset {preset!r}" if preset is not None else "no preset"
        raise InputError(f"metrics spec ({named}): {'; '.join(problems)}") from None


@dataclass(frozen=True, slots=True)
class Scrape:
    """One scrape of a node's metrics.

    ``series`` maps a canonical series key (``build_series_key``) to its value, for only
    the samples the spec needs; a failed scrape has none. ``error`` says why a scrape
    failed; on a successful one it may hold a warning (e.g. the success counter was not
    in the exposition, so it keeps its last value).
    """

    at: int
    """When, chain time (unix seconds)."""
    ok: bool
    """The server answered with a readable exposition (and the health check passed)."""
    error: str = ""
    """Why not ok, naming the URL and the problem; a warning when ok."""
    series: dict[str, float] = field(default_factory=dict)
    """The needed samples by canonical key."""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def build_series_key(name: str, labels: Mapping[str, str], le: str | None = None) -> str:
    """The canonical key of a series: ``name{a="1",b="2"}`` with the labels sorted by
    name and their values escaped as in the exposition format, ``name`` alone when there
    is no label; a bucket's ``le`` (canonical, see ``parse_scrape``) always comes last,
    whatever its name's order, so that it can be read back from the key's end."""
    parts = [f'{k}="{_escape(labels[k])}"' for k in sorted(labels) if k != "le"]
    if le is not None:
        parts.append(f'le="{le}"')
    return f"{name}{{{','.join(parts)}}}" if parts else name


def _canonical_le(text: str) -> str | None:
    """A bucket bound as stored (``"+Inf"``, or the float's repr: "1" and "1.0" agree);
    None for what is not a number."""
    try:
        bound = float(text)
    except ValueError:
        return None
    if math.isnan(bound):
        return None
    if math.isinf(bound):
        return "+Inf" if bound > 0 else "-Inf"
    return repr(bound)


def _counter_names(name: str) -> tuple[str, str]:
    """A counter's sample name with and without ``_total``."""
    base = name.removesuffix("_total")
    return base, base + "_total"


def _wanted(
    spec: MeterSpec, openmetrics: bool = False
) -> dict[str, tuple[int, str, dict[str, str]]]:
    """Sample name as parsed -> (role, the name its key is stored under, label filter);
    ``openmetrics``: also each name with its colons as underscores, as
    ``prometheus_client``'s OpenMetrics exposition writes them."""
    wanted: dict[str, tuple[int, str, dict[str, str]]] = {}
    if spec.latency_mean is not None:
        for role, name in zip((_MEAN_SUM, _MEAN_COUNT), spec.latency_mean, strict=True):
            for alias in _counter_names(name):
                wanted[alias] = (role, name, spec.latency_labels)
    if spec.latency_histogram is not None:
        bucket = spec.latency_histogram + "_bucket"
        wanted[bucket] = (_BUCKET, bucket, spec.latency_labels)
    for alias in _counter_names(spec.success_counter):
        # the success counter wins a clash (Triton's mean shares its count)
        wanted[alias] = (_COUNTER, spec.success_counter, spec.success_labels)
    if openmetrics:
        wanted.update({k.replace(":", "_"): v for k, v in wanted.items() if ":" in k})
    return wanted


def _families(text: str, openmetrics: bool) -> Iterator[Metric]:
    if openmetrics:
        yield from _openmetrics_families(text)
    else:
        yield from text_string_to_metric_families(text)


def parse_scrape(text: str, spec: MeterSpec, at: int, *, openmetrics: bool = False) -> Scrape:
    """Read the samples ``spec`` needs from one exposition, with ``prometheus_client``'s
    parser (the OpenMetrics one with ``openmetrics=True``).

    Keys (``build_series_key``) use the spec's names, so a counter is stored under one
    name whether or not the server exposes it with ``_total`` (and in OpenMetrics
    whether or not its colons are written as underscores); a bucket's ``le`` is
    stored canonical (``+Inf``, or the bound as ``repr(float)``). Samples whose value is
    not finite, and buckets whose ``le`` is not a number, are left out. When a series is
    exposed twice the later sample wins (the exposition is malformed either way).

    Never raises for bad text: a body that does not parse, or holds no sample at all, is
    a failed scrape (``ok=False``, ``error`` saying why). A body that parses but has no
    sample of the success counter is a successful scrape with a warning in ``error``:
    the server answered, and servers that expose a labelled counter only once it has
    counted something (TGI) do so until their first request; the counter then keeps its
    last value, so nothing is counted or lost. (A misspelt name looks the same: the
    warning is the place to see it.)
    """
    wanted = _wanted(spec, openmetrics)
    series: dict[str, float] = {}
    samples = 0
    counted = False
    try:
        for family in _families(text, openmetrics):
            for sample in family.samples:
                samples += 1
                found = wanted.get(sample.name)
                if found is None:
                    continue
                role, name, choose = found
                labels = sample.labels
                if any(labels.get(k) != v for k, v in choose.items()):
                    continue
                value = float(sample.value)
                if not math.isfinite(value):
                    continue
                if role == _BUCKET:
                    le = _canonical_le(labels.get("le", ""))
                    if le is None:
                        continue
                    key = build_series_key(name, labels, le)
                else:
                    key = build_series_key(name, labels)
                    counted = counted or role == _COUNTER
                series[key] = value
    except _PARSE_ERRORS as exc:
        detail = str(exc) or type(exc).__name__
        kind = "OpenMetrics" if openmetrics else "Prometheus text format"
        return Scrape(at=at, ok=False, error=f"the body is not {kind}: {detail}")
    if samples == 0:
        return Scrape(at=at, ok=False, error="the body holds no metrics")
    warning = ""
    if not counted:
        chosen = f" with labels {spec.success_labels}" if spec.success_labels else ""
        warning = (
            f"no sample of {spec.success_counter}{chosen} in the exposition; it keeps its "
            "last value"
        )
    return Scrape(at=at, ok=True, error=warning, series=series)


def _get(
    client: httpx.Client, url: str, timeout: float, accept: str
) -> tuple[httpx.Response | None, bytes, str]:
    """GET ``url`` with a timeout (per step, and overall), reading at most
    ``MAX_BODY_BYTES``: (response, body, "") or (None/response, b"", what went wrong)."""
    deadline = time.monotonic() + timeout
    try:
        with client.stream("GET", url, headers={"Accept": accept}, timeout=timeout) as response:
            if not 200 <= response.status_code < 300:
                return response, b"", f"{url} answered HTTP {response.status_code}"
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    return response, b"", f"{url}: the body is over {MAX_BODY_BYTES} bytes"
                if time.monotonic() > deadline:
                    return response, b"", f"{url}: no complete answer within {timeout:g} s"
            return response, bytes(body), ""
    except httpx.TimeoutException as exc:
        return None, b"", f"{url}: no answer within {timeout:g} s ({type(exc).__name__})"
    except httpx.ConnectError as exc:
        return None, b"", f"{url}: cannot connect ({str(exc) or type(exc).__name__})"
    except httpx.HTTPError as exc:
        return None, b"", f"{url}: {type(exc).__name__}: {exc}"
    except httpx.InvalidURL as exc:
        return None, b"", f"{url}: not a usable URL ({exc})"


def fetch_scrape(
    url: str,
    spec: MeterSpec,
    at: int,
    *,
    timeout: float,
    client: httpx.Client | None = None,
    health_url: str | None = None,
) -> Scrape:
    """Scrape ``url`` (a Prometheus ``/metrics``) and keep what ``spec`` needs.

    Never raises for the network or the body: a timeout (``timeout`` seconds for each
    step and for the whole answer), a refused connection, an answer that is not 2xx, a
    body over ``MAX_BODY_BYTES``, one that is not UTF-8 or does not parse, and a
    ``health_url`` that does not answer 2xx are all a failed scrape (``ok=False``) whose
    ``error`` names the URL and the problem. A failed scrape keeps no series (the
    counters' next successful scrape counts what happened meanwhile). See
    ``parse_scrape`` for a body that lacks the success counter.

    Args:
        at: The scrape's time, chain time (the agent's clock).
        client: An ``httpx.Client`` to reuse (its connections stay open between
            scrapes); without one, a client is made for this call.
        health_url: Also GET this; the scrape is ok only if it answers 2xx.
    """
    own = client is None
    http = httpx.Client() if client is None else client
    try:
        response, body, problem = _get(http, url, timeout, ACCEPT)
        if problem:
            return Scrape(at=at, ok=False, error=problem)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Scrape(at=at, ok=False, error=f"{url}: the body is not UTF-8 (byte {exc.start})")
        kind = response.headers.get("content-type", "") if response is not None else ""
        scrape = parse_scrape(text, spec, at, openmetrics="openmetrics" in kind.lower())
        if scrape.error:
            scrape = replace(scrape, error=f"{url}: {scrape.error}")
        if scrape.ok and health_url is not None:
            _, _, problem = _get(http, health_url, timeout, "*/*")
            if problem:
                return Scrape(at=at, ok=False, error=f"health check failed: {problem}")
        return scrape
    finally:
        if own:
            http.close()


# ------------------------------------------------------------------ the scrape store

_METADATA = MetaData()
_scrapes = Table(
    "scrapes",
    _METADATA,
    Column("node_id", BigInteger, primary_key=True, autoincrement=False),
    Column("at", BigInteger, primary_key=True, autoincrement=False),
    Column("ok", Boolean, nullable=False),
    Column("error", Text, nullable=False),
    # the scrape's own series, JSON {key: value}
    Column("series", Text, nullable=False),
    # JSON {key: value}: the last value of each series an earlier successful scrape had
    # and this one lacks, so that this scrape alone can be an epoch's baseline
    Column("carried", Text, nullable=False),
)


def _dumps(series: Mapping[str, float]) -> str:
    return json.dumps(series, separators=(",", ":"))


class ScrapeStore:
    """Scrapes kept in one SQLite file (SQLAlchemy Core, WAL), per node.

    Each ``add`` commits, so a killed agent loses at most the scrape it was writing, and
    adding a scrape again (same node and ``at``) changes nothing, so a restarted agent
    that replays counts nothing twice. WAL with ``synchronous=NORMAL`` survives the
    process being killed at any moment; a power cut may lose the last commits (scrapes
    lost read as downtime; nothing is ever counted twice).

    Each successful scrape is stored with the last value of every series earlier
    successful scrapes had and it lacks, so ``fetch`` can hand ``compute_epoch_usage``
    one baseline scrape that stands for the whole history before the epoch. Scrapes
    should be added in time order (the agent's clock never goes backwards): a scrape
    added before a later one already stored is kept, but the later ones' carried values
    are not revised.
    """

    def __init__(self, path: Path) -> None:
        """Open (and create, with its folder) the store at ``path``.

        Raises:
            EdgeShareError: the file cannot be opened or is not a scrape store.
        """
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._engine: Engine = create_engine(f"sqlite:///{path}")

        @event.listens_for(self._engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

        # the latest successful scrape added through this object, per node: (at, state)
        self._last: dict[int, tuple[int, dict[str, float]]] = {}
        try:
            with self._engine.begin() as db:
                _METADATA.create_all(db)
        except SQLAlchemyError as exc:
            self._engine.dispose()
            raise EdgeShareError(f"the scrape store {path} cannot be opened: {exc}") from None

    def close(self) -> None:
        """Close the store's connections."""
        self._engine.dispose()

    def __enter__(self) -> ScrapeStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _state_before(
        self, db: Any, node_id: int, at: int, trusted: bool
    ) -> tuple[int, dict[str, float]]:
        """(at, every series' last value) as of the node's last successful scrape before
        ``at``; (-1, {}) when there is none. ``trusted``: the cache was checked already in
        this transaction, which holds the write lock."""
        cached = self._last.get(node_id)
        if cached is not None and cached[0] < at and trusted:
            return cached
        if cached is not None and cached[0] < at:
            newer = db.execute(
                select(func.count())
                .select_from(_scrapes)
                .where(_scrapes.c.node_id == node_id, _scrapes.c.at > cached[0])
                .where(_scrapes.c.at < at, _scrapes.c.ok)
            ).scalar()
            if not newer:  # no other writer added one in between
                return cached
        row = db.execute(
            select(_scrapes.c.at, _scrapes.c.series, _scrapes.c.carried)
            .where(_scrapes.c.node_id == node_id, _scrapes.c.at < at, _scrapes.c.ok)
            .order_by(_scrapes.c.at.desc())
            .limit(1)
        ).first()
        if row is None:
            return -1, {}
        return int(row.at), {**json.loads(row.carried), **json.loads(row.series)}

    def add(self, node_id: int, scrape: Scrape) -> None:
        """Store ``scrape`` for ``node_id`` (committed before returning); a scrape of the
        same node and ``at`` already stored is kept as it is."""
        self.add_many(node_id, [scrape])

    def add_many(self, node_id: int, scrapes: Iterable[Scrape]) -> None:
        """Store many scrapes of one node in one transaction (as ``add`` does each), in
        the order given, which should be time order."""
        try:
            with self._engine.begin() as db:
                for n, scrape in enumerate(scrapes):
                    self._insert(db, node_id, scrape, trusted=n > 0)
        except SQLAlchemyError as exc:
            self._last.pop(node_id, None)
            raise EdgeShareError(f"the scrape store {self.path} failed: {exc}") from None

    def _insert(self, db: Any, node_id: int, scrape: Scrape, *, trusted: bool) -> None:
        carried: dict[str, float] = {}
        state: dict[str, float] | None = None
        if scrape.ok:
            _, before = self._state_before(db, node_id, scrape.at, trusted)
            carried = {k: v for k, v in before.items() if k not in scrape.series}
            state = {**before, **scrape.series}
        row = {
            "node_id": node_id,
            "at": scrape.at,
            "ok": scrape.ok,
            "error": scrape.error,
            "series": _dumps(scrape.series),
            "carried": _dumps(carried),
        }
        done = db.execute(sqlite_insert(_scrapes).values(row).on_conflict_do_nothing())
        if state is not None and done.rowcount:
            cached = self._last.get(node_id)
            if cached is None or cached[0] < scrape.at:
                self._last[node_id] = (scrape.at, state)

    def fetch(self, node_id: int, start: int, end: int) -> list[Scrape]:
        """The node's scrapes with ``start <= at < end``, in time order, after the last
        successful one before ``start`` (the baseline, when there is one), whose series
        include the last value of every series earlier scrapes had."""
        try:
            with self._engine.connect() as db:
                base = db.execute(
                    select(_scrapes)
                    .where(_scrapes.c.node_id == node_id, _scrapes.c.at < start, _scrapes.c.ok)
                    .order_by(_scrapes.c.at.desc())
                    .limit(1)
                ).first()
                rows = db.execute(
                    select(_scrapes.c.at, _scrapes.c.ok, _scrapes.c.error, _scrapes.c.series)
                    .where(_scrapes.c.node_id == node_id)
                    .where(_scrapes.c.at >= start, _scrapes.c.at < end)
                    .order_by(_scrapes.c.at)
                ).all()
        except SQLAlchemyError as exc:
            raise EdgeShareError(f"the scrape store {self.path} failed: {exc}") from None
        out: list[Scrape] = []
        if base is not None:
            series = {**json.loads(base.carried), **json.loads(base.series)}
            out.append(Scrape(int(base.at), True, base.error, series))
        loads = json.loads
        out.extend(Scrape(int(at), bool(ok), error, loads(s)) for at, ok, error, s in rows)
        return out

    def first_at(self, node_id: int) -> int | None:
        """When the node's earliest stored scrape (ok or not) was taken; None if none."""
        try:
            with self._engine.connect() as db:
                found = db.execute(
                    select(func.min(_scrapes.c.at)).where(_scrapes.c.node_id == node_id)
                ).scalar()
        except SQLAlchemyError as exc:
            raise EdgeShareError(f"the scrape store {self.path} failed: {exc}") from None
        return None if found is None else int(found)

    def prune(self, node_id: int, before: int) -> int:
        """Delete the node's scrapes taken before ``before``, except the last successful
        one (the next epoch's baseline, which carries every series' last value); returns
        how many were deleted."""
        try:
            with self._engine.begin() as db:
                keep = db.execute(
                    select(func.max(_scrapes.c.at)).where(
                        _scrapes.c.node_id == node_id, _scrapes.c.at < before, _scrapes.c.ok
                    )
                ).scalar()
                condition = and_(_scrapes.c.node_id == node_id, _scrapes.c.at < before)
                if keep is not None:
                    condition = and_(condition, _scrapes.c.at != keep)
                return int(db.execute(delete(_scrapes).where(condition)).rowcount)
        except SQLAlchemyError as exc:
            raise EdgeShareError(f"the scrape store {self.path} failed: {exc}") from None


# ------------------------------------------------------------------ an epoch's usage


class EpochUsage(StrictModel):
    """A node's usage in one epoch, measured from its scrapes: a usage row's figures."""

    node_id: Annotated[int, Field(ge=0)]
    """The node."""
    epoch: Annotated[int, Field(ge=0)]
    """The epoch."""
    start: int
    """The epoch's first second, chain time."""
    end: int
    """The next epoch's first second (the epoch is ``[start, end)``)."""
    inferences: Annotated[int, Field(ge=0, le=MAX_INFERENCES)]
    """The success counter's increase over the epoch, rounded to an integer."""
    latency_ms: Annotated[int, Field(ge=0, le=MAX_LATENCY_MS)] | None
    """p50 latency (a mean for a spec with ``latency_mean``), ms rounded up; None when
    the epoch gives none (``latency_note`` says why)."""
    latency_note: str
    """What ``latency_ms`` is, or why it is None (e.g. "no requests in the epoch")."""
    uptime_bps: Annotated[int, Field(ge=0, le=MAX_BPS)]
    """``10_000 * slots_up // slots``; 0 when there is no slot (then ``slots`` is 0 and
    the caller decides what to report)."""
    slots: Annotated[int, Field(ge=0)]
    """Scrape slots of the epoch that count (see ``compute_epoch_usage``)."""
    slots_up: Annotated[int, Field(ge=0)]
    """Slots holding a successful scrape."""
    scrapes: Annotated[int, Field(ge=0)]
    """Scrapes taken in the epoch, successful or not."""


def _bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """PromQL's ``histogram_quantile`` over (upper bound, cumulative count) pairs sorted
    by bound, the last one +Inf (Prometheus promql/quantile.go, bucketQuantile): counts
    forced monotonic, linear interpolation inside the bucket holding the rank, the first
    bucket's lower bound 0, a rank in the +Inf bucket read as the highest finite bound.
    NaN when there is no observation or fewer than two buckets."""
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return math.nan
    counts: list[float] = []
    top = 0.0
    for _, count in buckets:
        top = max(top, count)
        counts.append(top)
    observations = counts[-1]
    if observations <= 0:
        return math.nan
    rank = q * observations
    b = next((i for i in range(len(buckets) - 1) if counts[i] >= rank), len(buckets) - 1)
    if b == len(buckets) - 1:
        return buckets[-2][0]
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    bucket_start, bucket_end, count = 0.0, buckets[b][0], counts[b]
    if b > 0:
        bucket_start = buckets[b - 1][0]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    return bucket_start + (bucket_end - bucket_start) * (rank / count)


def _to_ms(value: float, unit: str) -> int:
    """A latency in ``unit`` as whole milliseconds, rounded up (float noise below a
    nanosecond ignored, so 0.25 s is 250 ms, not 251), within uint32."""
    ms = round(value * _MS_PER_UNIT[unit], 6)
    if not ms < MAX_LATENCY_MS:  # also inf and NaN
        return MAX_LATENCY_MS
    return max(math.ceil(ms), 0)


def _increases(
    scrapes: Sequence[Scrape], start: int, end: int
) -> tuple[dict[str, float], dict[str, float], bool]:
    """Each series' increase over ``[start, end)`` from the successful scrapes (see
    ``compute_epoch_usage``), the last value of every series seen, and whether any
    successful scrape falls in the epoch."""
    last: dict[str, float] = {}
    increase: dict[str, float] = {}
    started = False
    in_epoch = False
    for scrape in sorted(scrapes, key=lambda s: s.at):
        if not scrape.ok or scrape.at >= end:
            continue
        if scrape.at < start or not started:
            # history before the epoch, or the node's first successful scrape: the
            # reference values, counted in no epoch
            last.update(scrape.series)
            started = True
            in_epoch = in_epoch or scrape.at >= start
            continue
        in_epoch = True
        get = last.get
        for key, value in scrape.series.items():
            prev = get(key)
            # a new series counts from 0; a drop is a reset: the value is all new
            delta = value if prev is None or value < prev else value - prev
            if delta:
                increase[key] = increase.get(key, 0.0) + delta
            last[key] = value
    return increase, last, in_epoch


def _latency(
    spec: MeterSpec, increase: Mapping[str, float], seen: Iterable[str], any_ok: bool
) -> tuple[int | None, str]:
    """(latency_ms or None, note) from the series' increases."""
    if spec.latency_histogram is None and spec.latency_mean is None:
        return None, "no latency metric is configured"
    if not any_ok:
        return None, "no successful scrape in the epoch"
    if spec.latency_mean is not None:
        total, count = spec.latency_mean
        # keys are stored under the spec's names (the count's may be the success
        # counter's own, spelt with or without _total)
        names = {total.removesuffix("_total"): 0, count.removesuffix("_total"): 1}
        sums = [0.0, 0.0]
        exposed = [False, False]
        for key in seen:
            role = names.get(key.split("{", 1)[0].removesuffix("_total"))
            if role is not None:
                exposed[role] = True
                sums[role] += increase.get(key, 0.0)
        missing = [name for name, shown in zip((total, count), exposed, strict=True) if not shown]
        if missing:
            return None, f"{' and '.join(missing)} not exposed"
        if sums[1] <= 0:
            return None, "no requests in the epoch"
        mean_ms = _to_ms(sums[0] / sums[1], spec.latency_unit)
        return mean_ms, (
            f"mean of {round(sums[1])} requests ({total} / {count}): a mean, not a p50 "
            "(the server exposes no latency histogram)"
        )
    name = spec.latency_histogram or ""
    bucket = name + "_bucket"
    by_bound: dict[float, float] = {}
    for key in seen:
        if not key.startswith(bucket) or key.split("{", 1)[0] != bucket:
            continue
        le = key[key.rfind('le="') + 4 : -2]
        bound = float(le)
        by_bound[bound] = by_bound.get(bound, 0.0) + increase.get(key, 0.0)
    if not by_bound:
        return None, (
            f"the histogram {name} is not exposed (no {bucket} samples: a server may expose "
            "a labelled histogram only once it has served a request)"
        )
    buckets = sorted(by_bound.items())
    if not math.isinf(buckets[-1][0]):
        return None, f"the histogram {name} has no +Inf bucket"
    observations = max(count for _, count in buckets)  # as forced monotonic
    if observations <= 0:
        return None, "no requests in the epoch"
    p50 = _bucket_quantile(0.5, buckets)
    if math.isnan(p50):
        return None, f"the histogram {name} has no finite bucket"
    return _to_ms(p50, spec.latency_unit), f"p50 of {round(observations)} requests ({name})"


def _uptime(
    scrapes: Sequence[Scrape], start: int, end: int, interval: int, monitored_from: int
) -> tuple[int, int, int]:
    """(slots, slots up, scrapes in the epoch)."""
    lo = max(start, monitored_from)
    taken = 0
    seen: set[int] = set()
    up: set[int] = set()
    for scrape in scrapes:
        if start <= scrape.at < end:
            taken += 1
            if scrape.at >= lo:
                slot = (scrape.at - start) // interval
                seen.add(slot)
                if scrape.ok:
                    up.add(slot)
    if end <= lo:
        return 0, 0, taken
    first, last = (lo - start) // interval, (end - 1 - start) // interval
    # a slot cut short (by monitored_from, or by the epoch's end) counts only if a scrape
    # fell in it: one scrape per interval may well miss a slot shorter than the interval
    slots = 0
    for slot in {first, last}:
        whole = start + slot * interval >= lo and start + (slot + 1) * interval <= end
        slots += whole or slot in seen
    slots += max(last - first - 1, 0)  # the slots between the first and the last are whole
    return slots, len(up), taken


def compute_epoch_usage(
    node_id: int,
    epoch: int,
    start: int,
    end: int,
    scrapes: Sequence[Scrape],
    spec: MeterSpec,
    *,
    interval: int,
    monitored_from: int,
) -> EpochUsage:
    """The node's usage in the epoch ``[start, end)`` from its scrapes.

    ``scrapes`` are what ``ScrapeStore.fetch(node_id, start, end)`` returns (the epoch's,
    after a baseline), or any longer history: scrapes before ``start`` only set each
    series' starting value, scrapes at or after ``end`` are ignored, order does not
    matter.

    Inferences: per series of the success counter, each pair of consecutive successful
    scrapes adds ``v - prev``, or ``v`` when the value dropped (a reset); the pair counts
    in the epoch of its later scrape, with no extrapolation, so adjacent epochs' figures
    add up to the increase over both. A series missing from a scrape keeps its last
    value; one first seen after the node's first successful scrape counts from 0. The
    node's first successful scrape only sets the starting values. The series' sum is
    rounded to an integer.

    Latency: the p50 of the histogram's bucket increases summed over its series
    (``histogram_quantile(0.5)``), or the ratio of ``latency_mean``'s increases, in ms
    rounded up (capped at ``MAX_LATENCY_MS``). None, with the reason in
    ``latency_note``, when the epoch had no request ("no requests in the epoch"), when
    the histogram is not exposed, when no scrape of the epoch succeeded, or when no
    latency metric is configured.

    Uptime: the epoch is cut into slots of ``interval`` seconds from ``start`` (the last
    may be shorter); the slots that count are those after ``monitored_from`` (when the
    node's metering began); a slot is up when it holds a successful scrape. A slot cut
    short (by ``monitored_from`` or by the epoch's end) counts only if some scrape fell
    in it. The agent should scrape once per slot, at a fixed offset into it, or more
    often: a slot with no scrape is down.

    Raises:
        InputError: ``interval`` is not positive or ``end <= start``.
    """
    if interval < 1:
        raise InputError(f"the scrape interval must be at least 1 s, not {interval}")
    if end <= start:
        raise InputError(f"an epoch must end after it starts: [{start}, {end})")
    increase, last, any_ok = _increases(scrapes, start, end)
    counter = spec.success_counter
    inferences = 0.0
    for key, delta in increase.items():
        if key.split("{", 1)[0] == counter:
            inferences += delta
    latency_ms, note = _latency(spec, increase, last, any_ok)
    slots, slots_up, taken = _uptime(scrapes, start, end, interval, monitored_from)
    return EpochUsage(
        node_id=node_id,
        epoch=epoch,
        start=start,
        end=end,
        inferences=min(max(round(inferences), 0), MAX_INFERENCES),
        latency_ms=latency_ms,
        latency_note=note,
        uptime_bps=MAX_BPS * slots_up // slots if slots else 0,
        slots=slots,
        slots_up=slots_up,
        scrapes=taken,
    )
