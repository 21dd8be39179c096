"""The node agent: meters each local node, and every epoch signs and posts its usage report.

One long-running process per machine, for any number of nodes (``edgeshare agent run
--config agent.toml``). Every ``scrape_interval`` seconds it scrapes each node's
Prometheus metrics (``edgeshare.metering``) at the agent's clock, an estimate of chain
time; once an epoch has ended on chain and ``grace`` seconds more have passed, it builds
each node's usage row from the epoch's scrapes, signs the report with the attestor key
(a keystore, or a remote signer that speaks ``eth_signTypedData_v4``), and posts it
through ``edgeshare.poster`` (idempotent, batched, stuck transactions replaced) or writes
it to a file for a separate payer (``edgeshare attest post`` reads it). On a schedule it
also redeems the vouchers the node's gateway collected (``edgeshare.channels``).

Crash safety. Each (node, epoch) moves through states kept in SQLite, each transition
committed before the next step starts::

    built -> signed -> posted (tx hashes) | written (file) -> settled
    held     (figures that cannot be reported as they are: no latency measured, ...)
    skipped  (the router takes no report: the node was not registered or not active)
    disputed (the guardian disputed the settled report: a correction is a person's call)

A row's figures (inferences, revenue, latency, uptime) and its deadline are stored
before it is signed, so a restart signs exactly what was built, and signing is
deterministic (RFC 6979). A report whose deadline comes close before it settles is
signed again with the same figures and a new deadline (the old signature is then void
on chain). Posting is idempotent: a restart posts only what the chain does not show as
settled. No epoch is skipped: after downtime every ended epoch since the node's
monitoring began is built from what the scrapes show (missed scrape slots count as
downtime; increments during the gap land in the epoch of the next scrape).

Test hooks: ``EDGESHARE_AGENT_FAILPOINT=<step>`` makes the process SIGKILL itself right
after that step (``FAILPOINTS``); SIGTERM (and SIGINT) stop it after the current step.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sqlite3
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

import httpx
from eth_utils.crypto import keccak
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, model_validator
from web3 import Web3

from edgeshare.attestation import (
    MAX_REPORT_REVENUE,
    Eip712Domain,
    SignedReport,
    UsageReport,
    fetch_domain,
    sign,
)
from edgeshare.channels import check_on_chain, fetch_channels_domain, redeem_vouchers
from edgeshare.config import load_settings, read_env, read_secret_env
from edgeshare.errors import (
    ChainUnavailable,
    EdgeShareError,
    InputError,
    KeyUnavailable,
    describe_problems,
)
from edgeshare.metering import (
    MeterSpec,
    ScrapeStore,
    compute_epoch_usage,
    fetch_scrape,
    resolve_spec,
)
from edgeshare.models import Address, StrictModel, read_text_file
from edgeshare.pipeline import send_transactions
from edgeshare.poster import (
    DEADLINE_MARGIN,
    DISPUTED,
    FINALIZED,
    PENDING,
    check_reports,
    fetch_records,
    is_done,
    post_reports,
)
from edgeshare.remote_signer import RemoteSigner
from edgeshare.rpc import redact_urls
from edgeshare.signer import Signer, load_signer_from_keystore
from edgeshare.suite import Suite
from edgeshare.tx import Receipt, Transactor
from edgeshare.usage import write_reports_file

if TYPE_CHECKING:  # the gateway's module (starlette, uvicorn) is imported only to redeem
    from edgeshare.gateway import VoucherStore

_log = logging.getLogger("edgeshare.agent")

FAILPOINT_ENV = "EDGESHARE_AGENT_FAILPOINT"
FAILPOINTS = (
    "after_scrape",  # the iteration's scrapes are stored
    "after_build",  # a row's figures are stored (state built, held or skipped)
    "after_sign",  # a signed report is stored
    "after_send",  # settle transaction(s) sent, no receipt yet (write mode: file written)
    "after_settle",  # a report is marked settled
    "after_redeem_send",  # a redemption transaction sent, no receipt yet
)
"""Where ``EDGESHARE_AGENT_FAILPOINT`` can kill the agent (SIGKILL, at the first time the
step is reached in the process)."""

DEFAULT_LISTEN = "127.0.0.1:9464"
MAX_WORKERS = 16
"""Scrapes run in parallel on at most this many threads."""
TERMS_CHUNK = 200
"""(node, epoch) pairs whose usage terms are read per batch while catching up."""
PRUNE_EVERY = 3_600.0
"""Seconds between two prunings of old scrapes."""
REDEEM_MARGIN = 120
"""Seconds before an epoch's end, at least (two scrape intervals if longer, a quarter of
the epoch at most), when the agent redeems its gateways' vouchers."""
RESIGN_MARGIN = 600
"""A report not settled within this many seconds (plus the poster's margin) of its
deadline is signed again with a new deadline."""

_KEY_LIKE = re.compile(r"(?<![0-9a-fA-F])(?:0x)?[0-9a-fA-F]{64}(?![0-9a-fA-F])")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_HEX_RUN = re.compile(r"[0-9a-fA-F]{32}")
_LISTEN = re.compile(r"^(?P<host>[A-Za-z0-9_.\-]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")

# ------------------------------------------------------------------------- config


def _to_path(value: Any) -> Any:
    """A TOML string is a path (the strict models take only Path objects)."""
    return Path(value) if isinstance(value, str) else value


def _env_name(value: str) -> str:
    if _HEX_RUN.search(value):
        raise ValueError(
            "takes the NAME of an environment variable, and what was given looks like a "
            "key itself (not shown)"
        )
    if not _ENV_NAME.match(value):
        raise ValueError(
            "takes the NAME of an environment variable (letters, digits and _, not "
            "starting with a digit); what was given is not one (not shown)"
        )
    return value


def _http_url(value: str) -> str:
    if not value.lower().startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


def _listen_address(value: str) -> str:
    if value and (not _LISTEN.match(value) or int(value.rsplit(":", 1)[1]) > 65_535):
        raise ValueError('must be HOST:PORT, e.g. 127.0.0.1:9464 (or "" for none)')
    return value


PathField = Annotated[Path, BeforeValidator(_to_path)]
EnvName = Annotated[str, AfterValidator(_env_name)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]


class ChainSection(StrictModel):
    """``[chain]``: where the suite is."""

    rpc_url: HttpUrl | None = None
    """The chain's JSON-RPC URL (default: ``network``, else ``$EDGESHARE_RPC_URL``, else
    ``$ETH_RPC_URL``). A URL with an API key is better kept in the environment."""
    network: str | None = None
    """A network of ``edgeshare.toml`` (its ``rpc_url`` may read ``${VAR}``) or of
    brownie's config, instead of ``rpc_url``."""
    manifest: PathField | None = None
    """The suite's manifest (default ``deployments/<chain_id>.json`` beside this file)."""
    confirmations: Annotated[int, Field(ge=1, le=100)] = 1
    """Blocks to wait for after each transaction."""
    rpc_timeout: Annotated[float, Field(gt=0, le=600)] = 30.0
    """Seconds per RPC request."""

    @model_validator(mode="after")
    def _one_target(self) -> ChainSection:
        if self.rpc_url and self.network:
            raise ValueError("give rpc_url or network, not both")
        return self


class AgentSection(StrictModel):
    """``[agent]``: the agent's own settings."""

    state: PathField
    """The agent's SQLite file: scrapes, each report's state, redemptions."""
    scrape_interval: Annotated[int, Field(ge=1, le=3_600)] = 15
    """Seconds between scrapes; also the uptime slot (a slot without a good scrape is
    downtime). Scrapes are taken in the middle of each slot of the chain's epoch grid."""
    scrape_timeout: Annotated[float, Field(gt=0, le=600)] = 5.0
    """Seconds a scrape may take."""
    grace: Annotated[int, Field(ge=0, le=86_400)] = 30
    """Seconds after an epoch's end (chain time) before its reports are built."""
    mode: Literal["post", "write"] = "post"
    """``post``: settle the reports with the payer key; ``write``: write them as files in
    ``reports_dir`` for a separate payer (``edgeshare attest post FILE``)."""
    reports_dir: PathField | None = None
    """Where ``write`` mode puts the files: ``epoch-<epoch>.json``, every node's report of
    the epoch that is not settled yet."""
    batch_size: Annotated[int, Field(ge=1, le=100)] = 50
    """Reports (and vouchers) per transaction."""
    redeem_every: Annotated[int, Field(ge=1)] = 1_800
    """Seconds (chain time) between two redemptions of the gateways' vouchers (keep it
    well below the gateway's ``--min-voucher-life``, an hour by default); the agent also
    redeems once in each epoch's last minutes."""
    listen: Annotated[str, AfterValidator(_listen_address)] = DEFAULT_LISTEN
    """Where ``/metrics`` and ``/healthz`` are served (HOST:PORT; "" for nowhere)."""
    report_validity: Annotated[int, Field(ge=3_600, le=365 * 86_400)] = 7 * 86_400
    """Seconds a signature stays valid (the report's deadline)."""
    keep_scrapes: Annotated[int, Field(ge=0)] = 7 * 86_400
    """Seconds of scrapes kept after their epochs are built."""

    @model_validator(mode="after")
    def _write_has_a_dir(self) -> AgentSection:
        if self.mode == "write" and self.reports_dir is None:
            raise ValueError('mode = "write" needs reports_dir')
        return self


class AttestorSection(StrictModel):
    """``[attestor]``: the key that signs the reports (never the key itself)."""

    keystore: PathField | None = None
    """An encrypted JSON keystore."""
    password_env: EnvName | None = None
    """The NAME of the environment variable holding the keystore's password."""
    signer_url: HttpUrl | None = None
    """A remote signer (JSON-RPC ``eth_signTypedData_v4``) holding the attestor's key."""
    address: Address | None = None
    """The attestor: required with ``signer_url``; with a keystore, checked against it."""

    @model_validator(mode="after")
    def _one_source(self) -> AttestorSection:
        if (self.keystore is None) == (self.signer_url is None):
            raise ValueError("give keystore (with password_env) or signer_url (with address)")
        if self.keystore is not None and self.password_env is None:
            raise ValueError("keystore needs password_env")
        if self.signer_url is not None and self.address is None:
            raise ValueError("signer_url needs address")
        if self.signer_url is not None and self.password_env is not None:
            raise ValueError("password_env goes with keystore, not signer_url")
        return self


class PayerSection(StrictModel):
    """``[payer]``: the key that sends transactions (settlements and redemptions)."""

    keystore: PathField | None = None
    """An encrypted JSON keystore."""
    password_env: EnvName | None = None
    """The NAME of the environment variable holding the keystore's password."""
    key_env: EnvName | None = None
    """The NAME of the environment variable holding the private key."""

    @model_validator(mode="after")
    def _one_source(self) -> PayerSection:
        if (self.keystore is None) == (self.key_env is None):
            raise ValueError("give keystore (with password_env) or key_env")
        if self.keystore is not None and self.password_env is None:
            raise ValueError("keystore needs password_env")
        if self.key_env is not None and self.password_env is not None:
            raise ValueError("password_env goes with keystore, not key_env")
        return self


class NodeSection(StrictModel):
    """``[[node]]``: one node this machine runs."""

    id: Annotated[int, Field(ge=1)]
    """The node's id in the registry."""
    metrics_url: HttpUrl
    """The inference server's (or the gateway's) Prometheus ``/metrics``."""
    preset: str | None = None
    """``vllm``, ``tgi``, ``triton`` or ``edgeshare`` (the gateway's own metrics); the
    fields below override it, or describe the server without one."""
    success_counter: str | None = None
    """The counter of served requests, as exposed (see ``MeterSpec``)."""
    success_labels: dict[str, str] | None = None
    """Only the counter's series with these label values."""
    latency_histogram: str | None = None
    """The latency histogram's base name."""
    latency_labels: dict[str, str] | None = None
    """Only the latency series with these label values."""
    latency_unit: Literal["seconds", "milliseconds", "microseconds"] | None = None
    """The histogram's unit."""
    latency_mean: list[str] | None = None
    """``[sum counter, count counter]`` for a server with no histogram (a mean)."""
    health_url: HttpUrl | None = None
    """Also GET this each scrape; a scrape counts as up only if it answers 2xx."""
    gateway_db: PathField | None = None
    """The node's gateway voucher store, whose vouchers the agent redeems."""
    start_epoch: Annotated[int, Field(ge=0)] | None = None
    """Report no epoch before this one (e.g. epochs already reported another way)."""

    def get_spec(self) -> MeterSpec:
        """The node's metering spec (``edgeshare.metering.resolve_spec``).

        Raises:
            InputError: an unknown preset, or fields that describe no valid spec.
        """
        names = (
            "success_counter",
            "success_labels",
            "latency_histogram",
            "latency_labels",
            "latency_unit",
            "latency_mean",
        )
        overrides = {n: getattr(self, n) for n in names if getattr(self, n) is not None}
        return resolve_spec(self.preset, **overrides)


class AgentConfig(StrictModel):
    """``agent.toml``."""

    chain: ChainSection = Field(default_factory=ChainSection)
    """Where the suite is."""
    agent: AgentSection
    """The agent's settings."""
    attestor: AttestorSection | None = None
    """The attestor key (required in a file; a program may pass a signer instead)."""
    payer: PayerSection | None = None
    """The transaction key: required for ``mode = "post"`` and to redeem vouchers."""
    node: Annotated[list[NodeSection], Field(min_length=1)]
    """The nodes this machine runs."""

    @model_validator(mode="after")
    def _consistent(self) -> AgentConfig:
        ids = [n.id for n in self.node]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"node {twice[0]} is listed more than once")
        return self

    def get_node(self, node_id: int) -> NodeSection:
        """The ``[[node]]`` of ``node_id``."""
        return next(n for n in self.node if n.id == node_id)

    @property
    def redeems(self) -> bool:
        """Some node has a gateway whose vouchers the agent redeems."""
        return any(n.gateway_db is not None for n in self.node)


_PATH_KEYS = {
    ("chain", "manifest"),
    ("agent", "state"),
    ("agent", "reports_dir"),
    ("attestor", "keystore"),
    ("payer", "keystore"),
    ("node", "gateway_db"),
}


def _locate_lines(text: str) -> dict[tuple[str | int, ...], int]:
    """Line numbers of a TOML file's tables and keys, by path (``("node", 0, "id")``);
    best effort (multi-line values are not followed), for error messages."""
    found: dict[tuple[str | int, ...], int] = {}
    arrays: dict[str, int] = {}
    table: tuple[str | int, ...] = ()
    header = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    key = re.compile(r"^\s*([A-Za-z0-9_\-.\"' ]+?)\s*=")
    for number, line in enumerate(text.splitlines(), 1):
        match = header.match(line)
        if match:
            names = [p.strip().strip("\"'") for p in match.group(2).split(".")]
            path: list[str | int] = []
            for i, name in enumerate(names):
                path.append(name)
                dotted = ".".join(names[: i + 1])
                if match.group(1) == "[[" and i == len(names) - 1:
                    arrays[dotted] = arrays.get(dotted, -1) + 1
                    path.append(arrays[dotted])
                elif dotted in arrays:
                    path.append(arrays[dotted])
            table = tuple(path)
            found.setdefault(table, number)
            continue
        match = key.match(line)
        if match:
            parts = tuple(p.strip().strip("\"'") for p in match.group(1).split("."))
            found.setdefault(table + parts, number)
    return found


def _where(path: Path, lines: Mapping[tuple[str | int, ...], int], loc: Sequence[Any]) -> str:
    """``FILE line N, field a.b`` for a pydantic error location."""
    dotted = ".".join(str(p) for p in loc)
    for i in range(len(loc), 0, -1):
        number = lines.get(tuple(loc[:i]))
        if number is not None:
            return f"{path} line {number}" + (f", {dotted}" if dotted else "")
    return f"{path}" + (f", {dotted}" if dotted else "")


def _find_keys(value: Any, loc: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Where a string that looks like a private key is, anywhere in parsed TOML."""
    if isinstance(value, str):
        if _KEY_LIKE.search(value):
            yield loc
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _find_keys(v, (*loc, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _find_keys(v, (*loc, i))


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Relative paths in the file are relative to the file's folder (in place)."""
    for section, name in _PATH_KEYS:
        tables = data.get(section)
        for table in tables if isinstance(tables, list) else [tables]:
            if isinstance(table, dict) and isinstance(table.get(name), str):
                value = Path(table[name]).expanduser()
                table[name] = str(value if value.is_absolute() else base / value)


def load_agent_config(path: Path) -> AgentConfig:
    """Read and check ``agent.toml``: every problem is named with its line and field.

    Relative paths are taken from the file's folder. A value anywhere in the file that
    looks like a private key (64 hex digits) is refused without being shown: the file
    names a keystore or an environment variable, never a key.

    Raises:
        InputError: the file is missing or not TOML, has unknown keys or bad values,
            holds something like a key, or lacks a section the agent needs.
    """
    text = read_text_file(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path} is not valid TOML: {exc}") from None
    lines = _locate_lines(text)
    leaks = list(_find_keys(data))
    if leaks:
        raise InputError(
            describe_problems(
                [
                    f"{_where(path, lines, loc)}: looks like a private key (not shown); the "
                    "config never holds a key: name a keystore (keystore + password_env) "
                    "or an environment variable (key_env)"
                    for loc in leaks
                ],
                "the agent did not start",
            )
        )
    _resolve_paths(data, path.resolve().parent)
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_input=False):
            message = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown key"
            problems.append(f"{_where(path, lines, err['loc'])}: {message}")
        raise InputError(describe_problems(problems, "the agent did not start")) from None
    problems = []
    if config.attestor is None:
        problems.append(f"{path}: [attestor] is missing: the key that signs the reports")
    if config.payer is None and config.agent.mode == "post":
        problems.append(f'{path}: mode = "post" needs [payer]: the key that settles reports')
    if config.payer is None and config.redeems:
        problems.append(f"{path}: gateway_db needs [payer]: the key that redeems vouchers")
    for i, node in enumerate(config.node):
        try:
            node.get_spec()
        except InputError as exc:
            problems.append(f"{_where(path, lines, ('node', i))} (node {node.id}): {exc}")
    if problems:
        raise InputError(describe_problems(problems, "the agent did not start"))
    return config


# ---------------------------------------------------------------------------- keys


class ReportSigner(Protocol):
    """Signs usage reports as a node's attestor."""

    address: str

    def sign_report(self, report: UsageReport, domain: Eip712Domain) -> SignedReport:
        """The report with the attestor's signature."""
        ...


class LocalReportSigner:
    """An attestor key held in this process (from a keystore)."""

    def __init__(self, signer: Signer) -> None:
        self.address: str = signer.address
        self._key = signer.export_key()

    def __repr__(self) -> str:
        return f"LocalReportSigner({self.address})"

    def sign_report(self, report: UsageReport, domain: Eip712Domain) -> SignedReport:
        """Sign with libsecp256k1 (deterministic: the same report, the same signature)."""
        return sign(report, self._key, domain)


class RemoteReportSigner:
    """An attestor key held by a remote signer (``edgeshare.remote_signer``)."""

    def __init__(self, remote: RemoteSigner) -> None:
        self.address: str = remote.address
        self._remote = remote

    def __repr__(self) -> str:
        return f"RemoteReportSigner({self._remote!r})"

    def sign_report(self, report: UsageReport, domain: Eip712Domain) -> SignedReport:
        """Sign remotely; the signature is checked to recover to the attestor."""
        return self._remote.sign_report(report, domain)


def _password(name: str, what: str, environ: Mapping[str, str]) -> str:
    value = read_secret_env(name, environ)
    if not value:
        raise KeyUnavailable(
            f"{what}.password_env names {name}, which is not set (it must hold the "
            "keystore's password)"
        )
    return value


def load_attestor(
    section: AttestorSection, environ: Mapping[str, str] | None = None
) -> ReportSigner:
    """The attestor's signer from ``[attestor]``.

    Raises:
        KeyUnavailable: the keystore is missing or cannot be decrypted, its password's
            variable is not set, or it is not the ``address`` given.
    """
    env = os.environ if environ is None else environ
    if section.signer_url is not None:
        assert section.address is not None  # the model requires it
        return RemoteReportSigner(RemoteSigner(section.signer_url, section.address))
    assert section.keystore is not None and section.password_env is not None
    signer = load_signer_from_keystore(
        section.keystore, _password(section.password_env, "attestor", env)
    )
    if section.address is not None and section.address != signer.address:
        raise KeyUnavailable(
            f"attestor keystore {section.keystore} holds {signer.address}, not the "
            f"address given ({section.address})"
        )
    return LocalReportSigner(signer)


def load_payer(section: PayerSection, environ: Mapping[str, str] | None = None) -> Signer:
    """The transaction key from ``[payer]``.

    Raises:
        KeyUnavailable: the keystore or variable is missing, empty or not a key.
    """
    env = os.environ if environ is None else environ
    if section.key_env is not None:
        value = read_secret_env(section.key_env, env)
        if not value:
            raise KeyUnavailable(
                f"payer.key_env names {section.key_env}, which is not set (it must hold "
                "the private key)"
            )
        try:
            return Signer.from_key(value)
        except KeyUnavailable:
            raise KeyUnavailable(
                f"payer.key_env: {section.key_env} does not hold a valid 32-byte hex key"
            ) from None
    assert section.keystore is not None and section.password_env is not None
    return load_signer_from_keystore(
        section.keystore, _password(section.password_env, "payer", env)
    )


class _RecordingSigner(Signer):
    """A signer that remembers the hash and target of every transaction it signs, so the
    agent can store a settlement's hashes the moment it is sent."""

    def __init__(self, inner: Signer) -> None:
        super().__init__(address=inner.address)
        self._inner = inner
        self.signed: list[tuple[str, str]] = []
        """(to, hash) of each transaction signed, in order."""

    @property
    def is_local(self) -> bool:
        """As the wrapped signer."""
        return self._inner.is_local

    def sign_transaction(self, tx: dict[str, Any]) -> bytes:
        """Sign with the wrapped signer and record the hash."""
        raw = self._inner.sign_transaction(tx)
        self.signed.append((str(tx.get("to", "")).lower(), "0x" + keccak(raw).hex()))
        return raw

    def sign_message_hash(self, digest: bytes) -> bytes:
        """As the wrapped signer."""
        return self._inner.sign_message_hash(digest)

    def export_key(self) -> str:
        """As the wrapped signer."""
        return self._inner.export_key()


@dataclass
class _HookedTransactor(Transactor):
    """A Transactor that calls ``on_sent`` once a single transaction is sent, before its
    receipt (the redemption's failpoint and state)."""

    on_sent: Callable[[], None] | None = None

    def send(self, tx: dict[str, Any], what: str) -> Receipt:
        """As ``Transactor.send``, calling ``on_sent`` between sending and the receipt."""

        def progress(stage: str, _done: int, _total: int) -> None:
            if stage == "sent" and self.on_sent is not None:
                self.on_sent()

        (receipt,) = send_transactions(self, [tx], what, progress)
        return receipt


# --------------------------------------------------------------------- chain clock


class ChainClock:
    """The agent's estimate of chain time, which scrapes are stamped with: it runs on this
    machine's monotonic clock from the latest block's timestamp, and never goes backwards.

    A new block whose timestamp is ahead of the estimate moves it forward to that
    timestamp (the estimate lagged: the block it started from was seen late). A block
    behind the estimate is normal (the latest block is up to a block interval old) and
    changes nothing, unless the estimate has run ``MAX_AHEAD`` seconds ahead of it (this
    machine's clock runs faster than the chain's): then the estimate waits for the chain.
    A chain whose blocks stop (an idle local chain) leaves the estimate running.

    The estimate is never below a block timestamp it was told of (``observe``): once the
    work loop has seen the block that makes an epoch due, no later scrape is stamped
    inside that epoch.

    Args:
        fetch: Returns (block number, timestamp) of the latest block.
        monotonic: This machine's monotonic clock (seconds).
    """

    MAX_AHEAD = 120
    """Seconds the estimate may run ahead of a new block before it waits for the chain."""

    def __init__(
        self, fetch: Callable[[], tuple[int, int]], monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._fetch = fetch
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._block = -1
        self._anchor = 0
        self._anchored_at = 0.0
        self._last = 0.0

    @property
    def is_set(self) -> bool:
        """A block was seen: ``now`` can answer."""
        return self._block >= 0

    def observe(self, block: int, timestamp: int) -> None:
        """Take in a block (read here or elsewhere)."""
        with self._lock:
            now = self._monotonic()
            if self._block < 0:
                self._anchor, self._anchored_at = timestamp, now
            elif block != self._block:
                estimate = self._anchor + (now - self._anchored_at)
                if timestamp > estimate or estimate - timestamp > self.MAX_AHEAD:
                    self._anchor, self._anchored_at = timestamp, now
            self._block = block

    def refresh(self) -> bool:
        """Read the latest block; False (and the estimate kept) when the chain fails."""
        try:
            block, timestamp = self._fetch()
        except Exception as exc:  # an unreachable chain must not stop the scrapes
            _event("error", logging.WARNING, step="clock", error=_describe(exc))
            return False
        self.observe(block, timestamp)
        return True

    def now_float(self) -> float:
        """Chain time now, estimated, in seconds (never less than returned before)."""
        with self._lock:
            if self._block < 0:
                raise RuntimeError("the chain clock has read no block yet")
            value = self._anchor + (self._monotonic() - self._anchored_at)
            self._last = max(self._last, value)
            return self._last

    def now(self) -> int:
        """Chain time now, estimated, whole seconds."""
        return int(self.now_float())


# ---------------------------------------------------------------------------- logs


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, event, and the event's
    fields; records of other loggers become event ``log`` with their message. URLs in
    messages are cut to their host (they may carry API keys)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        fields = getattr(record, "agent_fields", None)
        name = getattr(record, "agent_event", None)
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
        }
        if isinstance(fields, dict) and isinstance(name, str):
            line["event"] = name
            line.update(fields)
        else:
            line["event"] = "log"
            line["logger"] = record.name
            line["message"] = redact_urls(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            line["exception"] = _describe(record.exc_info[1])
        return json.dumps(line, default=str)


def configure_json_logging(level: int = logging.INFO, stream: Any = None) -> None:
    """Send every log record to ``stream`` (default stderr) as a JSON line: the agent's
    at ``level``, other libraries' at WARNING and above."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)
    _log.setLevel(level)


def _event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log event ``name`` with ``fields`` (JSON lines with ``JsonFormatter``; elsewhere the
    message reads ``name {fields}``)."""
    text = json.dumps(fields, default=str)
    _log.log(level, "%s %s", name, text, extra={"agent_event": name, "agent_fields": fields})


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return redact_urls(text if isinstance(exc, EdgeShareError) else f"{type(exc).__name__}: {text}")


def _failpoint(step: str) -> None:
    """SIGKILL this process if ``EDGESHARE_AGENT_FAILPOINT`` names ``step`` (test hook)."""
    if read_env(FAILPOINT_ENV) == step:
        _event("failpoint", logging.WARNING, step=step)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)


# --------------------------------------------------------------------------- state

BUILT, SIGNED, POSTED, WRITTEN, SETTLED = "built", "signed", "posted", "written", "settled"
HELD, SKIPPED, DISPUTED_STATE = "held", "skipped", "disputed"
STATES = (BUILT, SIGNED, POSTED, WRITTEN, SETTLED, HELD, SKIPPED, DISPUTED_STATE)
"""Every state a (node, epoch) can be in."""
OPEN_STATES = (SIGNED, POSTED, WRITTEN)
"""Signed and not yet seen settled on chain."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agent_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS agent_nodes (
    node_id INTEGER PRIMARY KEY,
    monitored_from INTEGER,
    last_scrape_at INTEGER,
    last_scrape_ok INTEGER,
    last_scrape_error TEXT NOT NULL DEFAULT '',
    last_good_scrape_at INTEGER
);
CREATE TABLE IF NOT EXISTS agent_reports (
    node_id INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    state TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,
    inferences TEXT NOT NULL,
    revenue TEXT NOT NULL,
    latency_ms INTEGER,
    uptime_bps INTEGER NOT NULL,
    deadline INTEGER NOT NULL,
    slots INTEGER NOT NULL,
    slots_up INTEGER NOT NULL,
    scrapes INTEGER NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    signature TEXT,
    tx_hashes TEXT NOT NULL DEFAULT '[]',
    file TEXT,
    built_at INTEGER NOT NULL,
    signed_at INTEGER,
    sent_at INTEGER,
    settled_at INTEGER,
    PRIMARY KEY (node_id, epoch)
);
CREATE INDEX IF NOT EXISTS agent_reports_state ON agent_reports (state);
CREATE TABLE IF NOT EXISTS agent_redemptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    state TEXT NOT NULL,
    vouchers INTEGER NOT NULL,
    redeemed INTEGER NOT NULL DEFAULT 0,
    amount TEXT NOT NULL DEFAULT '0',
    tx_hashes TEXT NOT NULL DEFAULT '[]',
    error TEXT NOT NULL DEFAULT ''
);
"""


@dataclass(frozen=True)
class ReportRow:
    """One (node, epoch) as the state file holds it."""

    node_id: int
    epoch: int
    state: str
    version: int
    inferences: int
    revenue: int
    latency_ms: int | None
    """None only for a held row (no latency was measured)."""
    uptime_bps: int
    deadline: int
    slots: int
    slots_up: int
    scrapes: int
    note: str
    """Why the row is held or skipped, or what its latency is."""
    signature: str | None
    tx_hashes: tuple[str, ...]
    file: str | None
    built_at: int
    signed_at: int | None
    sent_at: int | None
    settled_at: int | None

    def get_report(self) -> UsageReport:
        """The report these figures make (unsigned)."""
        return UsageReport(
            node_id=self.node_id,
            epoch=self.epoch,
            version=self.version,
            inferences=self.inferences,
            revenue=self.revenue,
            latency_ms=self.latency_ms or 0,
            uptime_bps=self.uptime_bps,
            deadline=self.deadline,
        )

    def get_signed(self) -> SignedReport:
        """The signed report (only for a row with a signature)."""
        if self.signature is None:
            raise ValueError(f"node {self.node_id} epoch {self.epoch} is not signed")
        return SignedReport(**self.get_report().model_dump(), signature=self.signature)


@dataclass(frozen=True)
class NodeRow:
    """What the state file knows of one node."""

    node_id: int
    monitored_from: int | None
    """Chain time of the node's first scrape: the agent reports from its epoch on."""
    last_scrape_at: int | None
    last_scrape_ok: bool | None
    last_scrape_error: str
    last_good_scrape_at: int | None


@dataclass(frozen=True)
class RedemptionRow:
    """One redemption run for one node."""

    id: int
    node_id: int
    started_at: int
    state: str
    """``sending``, ``sent`` (a transaction went out, no receipt yet), ``done``, ``failed``."""
    vouchers: int
    redeemed: int
    amount: int
    tx_hashes: tuple[str, ...]
    error: str


class AgentState:
    """The agent's SQLite file (stdlib sqlite3, WAL): every transition is committed
    before the agent moves on, and ``agent status`` can read it while the agent runs.

    The scrape store (``edgeshare.metering.ScrapeStore``, table ``scrapes``) shares the
    file; the agent's tables are ``agent_*``.

    Args:
        path: The file (created, with its folder, unless ``read_only``).
        read_only: Open an existing file for reading only.
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        if read_only:
            if not path.is_file():
                raise InputError(f"no agent state at {path}: the agent has not run yet")
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            # one thread at a time uses a connection, but not always the one that opened it
            self._db = sqlite3.connect(path, timeout=10, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self._db:
                self._db.executescript(_SCHEMA)
        self._db.row_factory = sqlite3.Row

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    @contextmanager
    def _commit(self) -> Iterator[sqlite3.Connection]:
        with self._db:
            yield self._db

    # meta
    def get_meta(self) -> dict[str, str]:
        """Every meta value (chain id, router, genesis, epoch length, last chain time)."""
        try:
            rows = self._db.execute("SELECT key, value FROM agent_meta").fetchall()
        except sqlite3.OperationalError:
            raise InputError(f"{self.path} is not an agent state file") from None
        return {r["key"]: r["value"] for r in rows}

    def set_meta(self, values: Mapping[str, Any]) -> None:
        """Store meta values."""
        with self._commit() as db:
            db.executemany(
                "INSERT INTO agent_meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(k, str(v)) for k, v in values.items()],
            )

    # nodes
    def get_node(self, node_id: int) -> NodeRow:
        """The node's row (an empty one if the agent never saw it)."""
        row = self._db.execute("SELECT * FROM agent_nodes WHERE node_id = ?", (node_id,)).fetchone()
        if row is None:
            return NodeRow(node_id, None, None, None, "", None)
        ok = row["last_scrape_ok"]
        return NodeRow(
            node_id,
            row["monitored_from"],
            row["last_scrape_at"],
            None if ok is None else bool(ok),
            row["last_scrape_error"],
            row["last_good_scrape_at"],
        )

    def set_monitored_from(self, node_id: int, at: int) -> None:
        """Record when the node's monitoring began (kept if already set)."""
        with self._commit() as db:
            db.execute(
                "INSERT INTO agent_nodes (node_id, monitored_from) VALUES (?, ?) "
                "ON CONFLICT (node_id) DO UPDATE SET monitored_from = "
                "COALESCE(agent_nodes.monitored_from, excluded.monitored_from)",
                (node_id, at),
            )

    def record_scrape(self, node_id: int, at: int, ok: bool, error: str) -> None:
        """Record the node's latest scrape (for status and health)."""
        with self._commit() as db:
            db.execute(
                "INSERT INTO agent_nodes (node_id, last_scrape_at, last_scrape_ok, "
                "last_scrape_error, last_good_scrape_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (node_id) DO UPDATE SET last_scrape_at = excluded.last_scrape_at, "
                "last_scrape_ok = excluded.last_scrape_ok, "
                "last_scrape_error = excluded.last_scrape_error, "
                "last_good_scrape_at = COALESCE(excluded.last_good_scrape_at, "
                "agent_nodes.last_good_scrape_at)",
                (node_id, at, int(ok), error, at if ok else None),
            )

    # reports
    def fetch_epochs(self, node_id: int, first: int, last: int) -> set[int]:
        """The node's epochs in [first, last] that have a row."""
        rows = self._db.execute(
            "SELECT epoch FROM agent_reports WHERE node_id = ? AND epoch BETWEEN ? AND ?",
            (node_id, first, last),
        ).fetchall()
        return {int(r["epoch"]) for r in rows}

    def add_row(self, row: ReportRow) -> None:
        """Store a new row (its figures and deadline), committed."""
        with self._commit() as db:
            db.execute(
                "INSERT INTO agent_reports (node_id, epoch, state, version, inferences, "
                "revenue, latency_ms, uptime_bps, deadline, slots, slots_up, scrapes, note, "
                "built_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.node_id, row.epoch, row.state, row.version, str(row.inferences),
                    str(row.revenue), row.latency_ms, row.uptime_bps, row.deadline,
                    row.slots, row.slots_up, row.scrapes, row.note, row.built_at,
                ),
            )  # fmt: skip

    def fetch_rows(
        self, states: Sequence[str] = STATES, node_id: int | None = None, epoch: int | None = None
    ) -> list[ReportRow]:
        """Rows in ``states`` (of one node or epoch, or all), by node and epoch."""
        marks = ",".join("?" * len(states))
        query = f"SELECT * FROM agent_reports WHERE state IN ({marks})"
        args: list[Any] = list(states)
        if node_id is not None:
            query += " AND node_id = ?"
            args.append(node_id)
        if epoch is not None:
            query += " AND epoch = ?"
            args.append(epoch)
        rows = self._db.execute(query + " ORDER BY node_id, epoch", args).fetchall()
        return [_to_row(r) for r in rows]

    def set_signed(self, node_id: int, epoch: int, signature: str, deadline: int, at: int) -> None:
        """The row is signed (with ``deadline``): state signed."""
        with self._commit() as db:
            db.execute(
                "UPDATE agent_reports SET state = ?, signature = ?, deadline = ?, signed_at = ? "
                "WHERE node_id = ? AND epoch = ?",
                (SIGNED, signature, deadline, at, node_id, epoch),
            )

    def set_sent(
        self, keys: Sequence[tuple[int, int]], state: str, at: int, hashes: Sequence[str] = (),
        file: str | None = None,
    ) -> None:  # fmt: skip
        """The rows went out: ``posted`` with their transactions, or ``written`` to ``file``."""
        with self._commit() as db:
            db.executemany(
                "UPDATE agent_reports SET state = ?, sent_at = ?, tx_hashes = ?, "
                "file = COALESCE(?, file) WHERE node_id = ? AND epoch = ?",
                [(state, at, json.dumps(list(hashes)), file, n, e) for n, e in keys],
            )

    def set_final(self, node_id: int, epoch: int, state: str, at: int, note: str = "") -> None:
        """The chain shows the epoch settled (or disputed)."""
        with self._commit() as db:
            db.execute(
                "UPDATE agent_reports SET state = ?, settled_at = ?, "
                "note = CASE WHEN ? = '' THEN note ELSE ? END WHERE node_id = ? AND epoch = ?",
                (state, at, note, note, node_id, epoch),
            )

    def count_states(self) -> dict[int, dict[str, int]]:
        """Rows per node and state."""
        out: dict[int, dict[str, int]] = {}
        for r in self._db.execute(
            "SELECT node_id, state, COUNT(*) AS n FROM agent_reports GROUP BY node_id, state"
        ):
            out.setdefault(int(r["node_id"]), {})[str(r["state"])] = int(r["n"])
        return out

    def fetch_last_reported(self) -> dict[int, int]:
        """Per node, the latest epoch posted, written or settled."""
        rows = self._db.execute(
            "SELECT node_id, MAX(epoch) AS e FROM agent_reports WHERE state IN (?, ?, ?) "
            "GROUP BY node_id",
            (POSTED, WRITTEN, SETTLED),
        )
        return {int(r["node_id"]): int(r["e"]) for r in rows}

    def fetch_last_epoch(self, node_id: int) -> int | None:
        """The node's latest epoch with a row."""
        row = self._db.execute(
            "SELECT MAX(epoch) AS e FROM agent_reports WHERE node_id = ?", (node_id,)
        ).fetchone()
        return None if row["e"] is None else int(row["e"])

    # redemptions
    def start_redemption(self, node_id: int, at: int, vouchers: int) -> int:
        """A redemption begins; returns its id."""
        with self._commit() as db:
            cursor = db.execute(
                "INSERT INTO agent_redemptions (node_id, started_at, state, vouchers) "
                "VALUES (?, ?, 'sending', ?)",
                (node_id, at, vouchers),
            )
            return int(cursor.lastrowid or 0)

    def update_redemption(self, rid: int, state: str, **values: Any) -> None:
        """Move a redemption on (``redeemed``, ``amount``, ``tx_hashes``, ``error``)."""
        sets = ["state = ?"] + [f"{k} = ?" for k in values]
        args = [state] + [
            json.dumps(list(v)) if k == "tx_hashes" else str(v) if k == "amount" else v
            for k, v in values.items()
        ]
        with self._commit() as db:
            db.execute(f"UPDATE agent_redemptions SET {', '.join(sets)} WHERE id = ?", [*args, rid])

    def fetch_last_redemption(self, node_id: int) -> RedemptionRow | None:
        """The node's latest redemption."""
        r = self._db.execute(
            "SELECT * FROM agent_redemptions WHERE node_id = ? ORDER BY id DESC LIMIT 1",
            (node_id,),
        ).fetchone()
        if r is None:
            return None
        return RedemptionRow(
            int(r["id"]), int(r["node_id"]), int(r["started_at"]), str(r["state"]),
            int(r["vouchers"]), int(r["redeemed"]), int(r["amount"]),
            tuple(json.loads(r["tx_hashes"])), str(r["error"]),
        )  # fmt: skip

    def fetch_redeemed_total(self, node_id: int) -> int:
        """Base units the agent's redemptions paid the node, in all."""
        rows = self._db.execute(
            "SELECT amount FROM agent_redemptions WHERE node_id = ? AND state = 'done'",
            (node_id,),
        )
        return sum(int(r["amount"]) for r in rows)


def _to_row(r: sqlite3.Row) -> ReportRow:
    return ReportRow(
        node_id=int(r["node_id"]),
        epoch=int(r["epoch"]),
        state=str(r["state"]),
        version=int(r["version"]),
        inferences=int(r["inferences"]),
        revenue=int(r["revenue"]),
        latency_ms=None if r["latency_ms"] is None else int(r["latency_ms"]),
        uptime_bps=int(r["uptime_bps"]),
        deadline=int(r["deadline"]),
        slots=int(r["slots"]),
        slots_up=int(r["slots_up"]),
        scrapes=int(r["scrapes"]),
        note=str(r["note"]),
        signature=r["signature"],
        tx_hashes=tuple(json.loads(r["tx_hashes"])),
        file=r["file"],
        built_at=int(r["built_at"]),
        signed_at=r["signed_at"],
        sent_at=r["sent_at"],
        settled_at=r["settled_at"],
    )


# ------------------------------------------------------------- metrics and health


class AgentMetrics:
    """The agent's own Prometheus metrics (a registry of its own)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.scrapes = Counter(
            "edgeshare_agent_scrapes",
            "Scrapes of the nodes' metrics, by result (ok or error).",
            ["node", "result"],
            registry=self.registry,
        )
        self.reports = Gauge(
            "edgeshare_agent_reports",
            "Reports in the agent's state file, by state.",
            ["node", "state"],
            registry=self.registry,
        )
        self.last_epoch = Gauge(
            "edgeshare_agent_last_epoch_reported",
            "The latest epoch whose report was posted, written or settled.",
            ["node"],
            registry=self.registry,
        )
        self.redeemed = Counter(
            "edgeshare_agent_redeemed_base_units",
            "Stablecoin base units the agent's voucher redemptions paid the node.",
            ["node"],
            registry=self.registry,
        )
        self.errors = Counter(
            "edgeshare_agent_errors",
            "Steps that failed (retried at the next iteration), by step.",
            ["step"],
            registry=self.registry,
        )
        self.chain_time = Gauge(
            "edgeshare_agent_chain_time_seconds",
            "The latest block's timestamp the agent saw.",
            registry=self.registry,
        )
        self.last_iteration = Gauge(
            "edgeshare_agent_last_iteration_timestamp_seconds",
            "When (this machine's clock) the agent last finished an iteration of its work.",
            registry=self.registry,
        )


def _serve_http(
    listen: str, metrics: AgentMetrics, health: Callable[[], tuple[int, dict[str, Any]]]
) -> ThreadingHTTPServer:
    """Serve ``GET /metrics`` and ``GET /healthz`` on ``listen`` in a daemon thread."""
    host, _, port = listen.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                status, body, kind = 200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST
            elif path in ("/healthz", "/health"):
                status, data = health()
                body, kind = json.dumps(data).encode(), "application/json"
            else:
                status, body, kind = 404, b'{"error": "not found"}', "application/json"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Requests are not logged (Prometheus asks every few seconds)."""

    server = ThreadingHTTPServer((host.strip("[]"), int(port)), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="edgeshare-agent-http", daemon=True).start()
    return server


# --------------------------------------------------------------------------- agent


@dataclass(frozen=True)
class ChainView:
    """The latest block, as one iteration of the agent's work sees it."""

    block: int
    time: int
    """The block's timestamp: what decides which epochs are due."""
    current_epoch: int
    """The router's current epoch at that block."""


@dataclass
class _Health:
    started: float = field(default_factory=time.monotonic)
    last_scrape: float | None = None
    last_work: float | None = None
    last_error: str = ""
    scrapes: dict[int, tuple[int, bool, str]] = field(default_factory=dict)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Agent:
    """Meters the configured nodes and reports their epochs; see the module's text.

    Args:
        config: The configuration (``load_agent_config``, or built in code).
        suite: The deployed suite.
        attestor: Signs the reports (``LocalReportSigner``, ``RemoteReportSigner``).
        payer: Sends settlements and redemptions (None: ``write`` mode, no gateways).
        max_fee_per_gas: The most wei per gas any transaction may offer.
        check: Check the configuration against the chain first (``check``).

    Raises:
        InputError: ``check`` found problems (each named); nothing was started.
    """

    def __init__(
        self,
        config: AgentConfig,
        suite: Suite,
        attestor: ReportSigner,
        payer: Signer | None = None,
        *,
        max_fee_per_gas: int | None = None,
        check: bool = True,
    ) -> None:
        self.config = config
        self.suite = suite
        self.attestor = attestor
        self.interval = config.agent.scrape_interval
        self._specs = {n.id: n.get_spec() for n in config.node}
        genesis, length = suite.reader.many(
            [suite.registry.read("GENESIS"), suite.registry.read("EPOCH_LENGTH")]
        )
        self.genesis, self.epoch_length = int(genesis), int(length)
        self.domain = fetch_domain(suite.router)
        self.metrics = AgentMetrics()
        self._signer = _RecordingSigner(payer) if payer is not None else None
        self.tx: _HookedTransactor | None = None
        if self._signer is not None:
            self.tx = _HookedTransactor(
                suite.w3,
                self._signer,
                config.chain.confirmations,
                max_fee_per_gas=max_fee_per_gas,
            )
        self.clock = ChainClock(self._fetch_head)
        self._stop = threading.Event()
        self._http = httpx.Client()
        self._pool = ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(config.node)))
        self._health = _Health()
        self._next_redeem = 0
        self._redeemed_in = -1
        """The epoch whose closing redemption was made."""
        self._redeem_margin = min(max(2 * self.interval, REDEEM_MARGIN), self.epoch_length // 4)
        """Seconds before each epoch's end when its vouchers are redeemed."""
        self._last_prune = -PRUNE_EVERY
        self._channels_domain: Eip712Domain | None = None
        self._voucher_stores: dict[Path, VoucherStore] = {}
        self.state = AgentState(config.agent.state)
        self.store = ScrapeStore(config.agent.state)
        if check:
            try:
                self.check()
            except BaseException:
                self.close()
                raise

    # ---------------------------------------------------------------- set-up
    @property
    def payer_address(self) -> str | None:
        """Who sends the transactions (None: no payer key)."""
        return self._signer.address if self._signer is not None else None

    def _fetch_head(self) -> tuple[int, int]:
        block = self.suite.rpc.call("eth_getBlockByNumber", ["latest", False])
        return int(block["number"], 16), int(block["timestamp"], 16)

    def check(self) -> None:
        """Check the configuration against the chain and the state file; warn (log) about
        metrics that cannot be scraped now.

        Raises:
            InputError: every problem found: a state file of another suite, nodes not
                registered, an attestor that is not the node's, a payer that is neither
                the node's operator nor its attestor where it must be, a remote signer
                that does not sign as the attestor.
        """
        problems: list[str] = []
        config, suite = self.config, self.suite
        meta = self.state.get_meta()
        ours = {
            "chain_id": str(suite.manifest.chain_id),
            "router": suite.router.address,
            "genesis": str(self.genesis),
            "epoch_length": str(self.epoch_length),
        }
        clash = [k for k, v in ours.items() if k in meta and meta[k] != v]
        if clash:
            problems.append(
                f"the state file {config.agent.state} belongs to another suite (chain "
                f"{meta.get('chain_id')}, router {meta.get('router')}); this config's chain "
                f"is {ours['chain_id']}, router {ours['router']}: give [agent] state a new file"
            )
        count = suite.fetch_node_count()
        known = [n.id for n in config.node if n.id <= count]
        problems += [
            f"node {n.id} is not registered (registered: 1..{count})"
            for n in config.node
            if n.id > count
        ]
        records = {r.node_id: r for r in suite.fetch_nodes(known)} if known else {}
        payer = self.payer_address
        for node in config.node:
            record = records.get(node.id)
            if record is None:
                continue
            if record.attestor != self.attestor.address:
                problems.append(
                    f"node {node.id}'s attestor on chain is {record.attestor}; the configured "
                    f"attestor is {self.attestor.address}"
                )
            must_send = config.agent.mode == "post" or node.gateway_db is not None
            if must_send and payer is not None and payer not in (record.operator, record.attestor):
                why = (
                    "zero-revenue reports and voucher redemptions"
                    if node.gateway_db is not None
                    else "zero-revenue reports (an epoch without inferences)"
                )
                problems.append(
                    f"node {node.id}: the payer {payer} is neither its operator "
                    f"({record.operator}) nor its attestor; the router and the channels take "
                    f"{why} only from them: use the operator's key as [payer]"
                )
            if record.status == "retired":
                _event("warning", logging.WARNING, node=node.id, message="the node is retired")
        if isinstance(self.attestor, RemoteReportSigner) and config.node:
            probe = UsageReport(
                node_id=config.node[0].id, epoch=0, inferences=0, revenue=0, latency_ms=0,
                uptime_bps=0, deadline=0,
            )  # fmt: skip  # deadline 0: void on chain, whoever holds it
            try:
                self.attestor.sign_report(probe, self.domain)
            except EdgeShareError as exc:
                problems.append(f"attestor: {exc}")
        if problems:
            raise InputError(describe_problems(problems, "the agent did not start"))
        self.state.set_meta(ours)
        probes = self._pool.map(
            lambda n: fetch_scrape(
                n.metrics_url, self._specs[n.id], 0, timeout=config.agent.scrape_timeout,
                client=self._http, health_url=n.health_url,
            ),
            config.node,
        )  # fmt: skip
        for node, scrape in zip(config.node, probes, strict=True):
            if node.gateway_db is not None and not node.gateway_db.exists():
                _event(
                    "warning",
                    logging.WARNING,
                    node=node.id,
                    message=f"gateway_db {node.gateway_db} does not exist yet (the gateway "
                    "creates it): no voucher to redeem until it does",
                )
            if not scrape.ok or scrape.error:
                _event(
                    "warning",
                    logging.WARNING,
                    node=node.id,
                    message=f"metrics: {redact_urls(scrape.error)}",
                )

    def close(self) -> None:
        """Release the agent's files, connections and threads."""
        self._pool.shutdown(wait=False)
        self._http.close()
        self.state.close()
        self.store.close()
        for store in self._voucher_stores.values():
            store.close()

    # ---------------------------------------------------------------- epochs
    def epoch_start(self, epoch: int) -> int:
        """When ``epoch`` begins, chain time."""
        return self.genesis + epoch * self.epoch_length

    def epoch_of(self, at: int) -> int:
        """The epoch ``at`` falls in."""
        return max(at - self.genesis, 0) // self.epoch_length

    def last_due_epoch(self, chain_time: int) -> int:
        """The latest epoch whose end plus the grace has passed at ``chain_time`` (-1:
        none yet)."""
        passed = chain_time - self.config.agent.grace - self.genesis
        return passed // self.epoch_length - 1 if passed >= 0 else -1

    def _slot_bounds(self, t: float) -> tuple[float, float]:
        """The uptime slot holding chain time ``t``: slots of ``scrape_interval`` seconds
        from each epoch's start, the last one of an epoch cut short at its end."""
        epoch = self.epoch_of(int(t))
        start, end = self.epoch_start(epoch), self.epoch_start(epoch + 1)
        slot_start = start + (int(t) - start) // self.interval * self.interval
        return float(slot_start), float(min(slot_start + self.interval, end))

    def next_scrape_at(self, t: float) -> float:
        """When to scrape after a scrape at ``t``: the middle of the next slot (so that a
        late or early scrape still lands in its slot)."""
        _, end = self._slot_bounds(t)
        start, next_end = self._slot_bounds(end)
        return (start + next_end) / 2

    # ------------------------------------------------------------------ loop
    def stop(self) -> None:
        """Ask the agent to stop after the current step."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """A stop was asked for."""
        return self._stop.is_set()

    def run(self, *, once: bool = False, handle_signals: bool = False) -> None:
        """Run until stopped (``stop``, SIGTERM/SIGINT with ``handle_signals``), or one
        iteration with ``once``: a scrape, every due epoch, a redemption.

        Args:
            once: One iteration, then return.
            handle_signals: Stop gracefully on SIGTERM and SIGINT (main thread only).
        """
        if handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._on_signal)
        _event(
            "started",
            nodes=[n.id for n in self.config.node],
            mode=self.config.agent.mode,
            attestor=self.attestor.address,
            payer=self.payer_address,
            once=once,
            chain_id=self.suite.manifest.chain_id,
        )
        server = None
        try:
            if once:
                self.run_once()
                return
            if self.config.agent.listen:
                server = _serve_http(self.config.agent.listen, self.metrics, self.get_health)
                _event("listening", address=f"{server.server_address[0]!s}:{server.server_port}")
            scraper = threading.Thread(
                target=self._scrape_loop, name="edgeshare-agent-scrape", daemon=True
            )
            scraper.start()
            while not self.stopping:
                began = time.monotonic()
                self.work()
                self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))
            scraper.join(timeout=self.config.agent.scrape_timeout + 30)
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()
            _event("stopped")

    def run_once(self, *, redeem: bool = True) -> None:
        """One iteration in this thread: scrape every node now, then ``work`` (with a
        redemption whatever the schedule, unless ``redeem`` is False)."""
        if not self.clock.refresh() and not self.clock.is_set:
            raise ChainUnavailable("the chain does not answer: no block to stamp scrapes with")
        self.scrape_all(self.state, self.store, self.clock.now())
        if not self.stopping:
            self.work(force_redeem=redeem)

    def start(self) -> threading.Thread:
        """Run the agent in a background thread (no signal handling); ``stop`` ends it."""
        thread = threading.Thread(target=self.run, name="edgeshare-agent", daemon=True)
        thread.start()
        return thread

    def _on_signal(self, signum: int, _frame: Any) -> None:
        _event("stopping", signal=signal.Signals(signum).name, after="the current step")
        self.stop()

    def _scrape_loop(self) -> None:
        state, store = AgentState(self.config.agent.state), ScrapeStore(self.config.agent.state)
        try:
            while not self.stopping:
                if not self.clock.refresh() and not self.clock.is_set:
                    self._stop.wait(1.0)  # no block seen yet: nothing to stamp a scrape with
                    continue
                t = self.clock.now_float()
                self.scrape_all(state, store, int(t))
                target = self.next_scrape_at(t)
                _event("next_scrape", logging.DEBUG, t=t, target=target)
                while not self.stopping:
                    remaining = target - self.clock.now_float()
                    if remaining <= 0:
                        break
                    self._stop.wait(min(remaining, 1.0))
        finally:
            state.close()
            store.close()

    def scrape_all(self, state: AgentState, store: ScrapeStore, at: int) -> None:
        """Scrape every node at chain time ``at`` (in parallel) and store the scrapes."""
        cfg = self.config.agent
        try:
            scrapes = list(
                self._pool.map(
                    lambda n: fetch_scrape(
                        n.metrics_url, self._specs[n.id], at, timeout=cfg.scrape_timeout,
                        client=self._http, health_url=n.health_url,
                    ),
                    self.config.node,
                )
            )  # fmt: skip
            failed = []
            for node, scrape in zip(self.config.node, scrapes, strict=True):
                store.add(node.id, scrape)
                state.set_monitored_from(node.id, at)
                state.record_scrape(node.id, at, scrape.ok, scrape.error)
                result = "ok" if scrape.ok else "error"
                self.metrics.scrapes.labels(node=str(node.id), result=result).inc()
                self._health.scrapes[node.id] = (at, scrape.ok, scrape.error)
                if not scrape.ok:
                    failed.append({"node": node.id, "error": redact_urls(scrape.error)})
            self._health.last_scrape = time.monotonic()
            level = logging.WARNING if failed else logging.INFO
            _event("scrape", level, at=at, ok=len(scrapes) - len(failed), failed=failed[:20])
        except Exception as exc:
            self._fail("scrape", exc)
            return
        _failpoint("after_scrape")

    def _fail(self, step: str, exc: BaseException) -> None:
        message = _describe(exc)
        self.metrics.errors.labels(step=step).inc()
        self._health.last_error = f"{step}: {message}"
        _event("error", logging.ERROR, step=step, error=message)

    def fetch_view(self) -> ChainView:
        """The latest block (and the clock anchored on it)."""
        block, timestamp = self._fetch_head()
        self.clock.observe(block, timestamp)
        current = max(timestamp - self.genesis, 0) // self.epoch_length
        return ChainView(block, timestamp, current)

    def work(self, *, force_redeem: bool = False) -> None:
        """One iteration of the work: build, sign and post (or write) every due epoch,
        note what settled, redeem when due. A step that fails is logged and retried at
        the next iteration; the others still run."""
        try:
            view = self.fetch_view()
        except Exception as exc:
            self._fail("chain", exc)
            return
        self.metrics.chain_time.set(view.time)
        self.state.set_meta({"chain_time": view.time, "chain_time_wall": int(time.time())})
        steps: list[tuple[str, Callable[[ChainView], None]]] = [
            ("build", self._build),
            ("sign", self._sign),
            ("reconcile", self._reconcile),
            ("post" if self.config.agent.mode == "post" else "write", self._send),
            ("redeem", lambda v: self._redeem(v, force_redeem)),
            ("prune", self._prune),
        ]
        for name, step in steps:
            if self.stopping:
                break
            try:
                step(view)
            except Exception as exc:
                self._fail(name, exc)
        self._update_gauges()
        self._health.last_work = time.monotonic()
        self.metrics.last_iteration.set(time.time())

    # ---------------------------------------------------------------- build
    def _build(self, view: ChainView) -> None:
        last = self.last_due_epoch(view.time)
        if last < 0:
            return
        for node in self.config.node:
            if self.stopping:
                return
            monitored = self.state.get_node(node.id).monitored_from
            if monitored is None:
                # the first scrape was stored, and the agent stopped before noting it
                monitored = self.store.first_at(node.id)
                if monitored is None:
                    continue
                self.state.set_monitored_from(node.id, monitored)
            first = max(self.epoch_of(monitored), node.start_epoch or 0)
            if first > last:
                continue
            have = self.state.fetch_epochs(node.id, first, last)
            todo = [e for e in range(first, last + 1) if e not in have]
            for chunk in _chunks(todo, TERMS_CHUNK):
                reads = [self.suite.registry.read("usage_terms", node.id, e) for e in chunk]
                for epoch, terms in zip(chunk, self.suite.reader.many(reads), strict=True):
                    if self.stopping:
                        return
                    if terms["attestor"] != self.attestor.address:
                        # this node waits for a person; the others are still built
                        self._fail("build", InputError(
                            f"node {node.id}'s attestor is now {terms['attestor']}, not "
                            f"{self.attestor.address}: its epochs from {epoch} wait"
                        ))  # fmt: skip
                        break
                    row = self._build_row(node, epoch, terms, monitored, view)
                    self.state.add_row(row)
                    event = {BUILT: "epoch_built", HELD: "held", SKIPPED: "skipped"}[row.state]
                    _event(
                        event,
                        logging.WARNING if row.state == HELD else logging.INFO,
                        node=node.id,
                        epoch=epoch,
                        inferences=row.inferences,
                        revenue=str(row.revenue),
                        latency_ms=row.latency_ms,
                        uptime_bps=row.uptime_bps,
                        slots=row.slots,
                        slots_up=row.slots_up,
                        scrapes=row.scrapes,
                        note=row.note,
                    )
                    _failpoint("after_build")

    def _build_row(
        self, node: NodeSection, epoch: int, terms: Mapping[str, Any], monitored: int,
        view: ChainView,
    ) -> ReportRow:  # fmt: skip
        """The (node, epoch) row from its scrapes and the epoch's terms on chain."""
        start, end = self.epoch_start(epoch), self.epoch_start(epoch + 1)
        scrapes = self.store.fetch(node.id, start, end)
        usage = compute_epoch_usage(
            node.id, epoch, start, end, scrapes, self._specs[node.id],
            interval=self.interval, monitored_from=monitored,
        )  # fmt: skip
        revenue = usage.inferences * int(terms["price_per_1k"]) // 1_000
        state, note, latency = BUILT, usage.latency_note, usage.latency_ms
        if not terms["registered"]:
            state, note = SKIPPED, "the node was registered after this epoch"
        elif not terms["active"]:
            state, note = SKIPPED, "the node was paused or retired in this epoch"
        elif usage.slots == 0:
            state, note = SKIPPED, "no scrape slot of the epoch falls after monitoring began"
        elif revenue > MAX_REPORT_REVENUE:
            state, note = HELD, f"revenue {revenue} exceeds one report's limit"
        elif latency is None and usage.inferences > 0:
            state = HELD
            note = (
                f"{usage.inferences} inferences but no latency: {usage.latency_note}; no "
                "latency is invented: sign this epoch with `edgeshare attest sign` once "
                "its latency is known"
            )
        elif latency is None:
            # nothing was served, so there is nothing to measure: 0 by convention
            latency, note = 0, f"latency 0: nothing to measure ({usage.latency_note})"
        return ReportRow(
            node_id=node.id, epoch=epoch, state=state, version=0,
            inferences=usage.inferences, revenue=revenue, latency_ms=latency,
            uptime_bps=usage.uptime_bps, deadline=view.time + self.config.agent.report_validity,
            slots=usage.slots, slots_up=usage.slots_up, scrapes=usage.scrapes, note=note,
            signature=None, tx_hashes=(), file=None, built_at=view.time, signed_at=None,
            sent_at=None, settled_at=None,
        )  # fmt: skip

    # ----------------------------------------------------------------- sign
    def _sign(self, view: ChainView) -> None:
        for row in self.state.fetch_rows([BUILT]):
            if self.stopping:
                return
            self._sign_row(row, row.deadline, view, "report_signed")

    def _sign_row(self, row: ReportRow, deadline: int, view: ChainView, event: str) -> None:
        report = row.get_report().model_copy(update={"deadline": deadline})
        signed = self.attestor.sign_report(report, self.domain)
        self.state.set_signed(row.node_id, row.epoch, signed.signature, deadline, view.time)
        _event(event, node=row.node_id, epoch=row.epoch, deadline=deadline)
        _failpoint("after_sign")

    # ------------------------------------------------------------ reconcile
    def _reconcile(self, view: ChainView) -> None:
        """Mark what the chain shows settled (or disputed); sign again, with a new
        deadline, what is not settled and whose deadline comes close."""
        rows = self.state.fetch_rows(OPEN_STATES)
        if not rows:
            return
        records = fetch_records(self.suite, [(r.node_id, r.epoch) for r in rows])
        for row, record in zip(rows, records, strict=True):
            if self.stopping:
                return
            if record.state in (PENDING, FINALIZED):
                other = record.version != row.version
                note = f"settled by another report (version {record.version})" if other else ""
                self.state.set_final(row.node_id, row.epoch, SETTLED, view.time, note)
                _event("settled", node=row.node_id, epoch=row.epoch, version=record.version,
                       paid=str(record.revenue), finalizable_at=record.finalizable_at)  # fmt: skip
                _failpoint("after_settle")
            elif record.state == DISPUTED and is_done(row.get_signed(), record):
                note = (
                    f"the guardian disputed version {record.version}; a correction is "
                    f"version {record.version + 1} (`edgeshare attest sign`, version column)"
                )
                self.state.set_final(row.node_id, row.epoch, DISPUTED_STATE, view.time, note)
                _event("disputed", logging.WARNING, node=row.node_id, epoch=row.epoch, note=note)
            elif row.deadline < view.time + DEADLINE_MARGIN + RESIGN_MARGIN:
                deadline = view.time + self.config.agent.report_validity
                self._sign_row(row, deadline, view, "report_resigned")

    # ------------------------------------------------------------ post/write
    def _send(self, view: ChainView) -> None:
        if self.config.agent.mode == "write":
            self._write(view)
        else:
            self._post(view)

    def _post(self, view: ChainView) -> None:
        rows = self.state.fetch_rows([SIGNED, POSTED])
        if not rows or self.tx is None or self._signer is None:
            return
        reports = [r.get_signed() for r in rows]
        problems = check_reports(self.suite, reports, self.domain, self._signer.address)
        bad: set[int] = set()
        for problem in problems:
            match = re.match(r"report (\d+) ", problem)
            if match:
                bad.add(int(match.group(1)))
            _event("error", logging.ERROR, step="post", error=problem)
        if problems and not bad:
            raise InputError(describe_problems(problems))
        ready = [(row, rep) for i, (row, rep) in enumerate(zip(rows, reports, strict=True))
                 if i not in bad]  # fmt: skip
        if not ready:
            return
        keys = [(row.node_id, row.epoch) for row, _ in ready]
        router = self.suite.router.address.lower()
        signer = self._signer
        signer.signed.clear()

        def progress(stage: str, _done: int, _total: int) -> None:
            if stage != "sent":
                return
            hashes = [h for to, h in signer.signed if to == router]
            if hashes:  # the settlements (an approval is sent first when needed)
                self.state.set_sent(keys, POSTED, view.time, hashes)
                _event("reports_sent", reports=len(keys), transactions=hashes)
                _failpoint("after_send")

        result = post_reports(
            self.tx, self.suite, [rep for _, rep in ready], self.domain,
            batch_size=self.config.agent.batch_size, on_progress=progress,
        )  # fmt: skip
        if result.transactions:
            self.state.set_sent(keys, POSTED, view.time, result.transactions)
        _event(
            "reports_posted",
            reports=result.total,
            settled=result.settled,
            already_settled=result.already_settled,
            paid=str(result.revenue),
            transactions=result.transactions,
            gas_used=result.gas_used,
        )
        self._reconcile(view)

    def _write(self, view: ChainView) -> None:
        folder = self.config.agent.reports_dir
        assert folder is not None  # the config requires it in write mode
        todo = sorted({r.epoch for r in self.state.fetch_rows([SIGNED])})
        for epoch in todo:
            if self.stopping:
                return
            rows = self.state.fetch_rows([SIGNED, WRITTEN], epoch=epoch)
            path = folder / f"epoch-{epoch}.json"
            write_reports_file(path, self.domain, [r.get_signed() for r in rows])
            fresh = [(r.node_id, r.epoch) for r in rows if r.state == SIGNED]
            self.state.set_sent(fresh, WRITTEN, view.time, file=str(path))
            _event("reports_written", epoch=epoch, reports=len(rows), file=str(path))
            _failpoint("after_send")

    # --------------------------------------------------------------- redeem
    def _voucher_store(self, path: Path) -> VoucherStore:
        store = self._voucher_stores.get(path)
        if store is None:
            from edgeshare.gateway import VoucherStore

            store = self._voucher_stores[path] = VoucherStore(path)
        return store

    def _redeem(self, view: ChainView, force: bool) -> None:
        """Redeem every gateway's latest vouchers: every ``redeem_every`` seconds, and once
        in the last ``_redeem_margin`` seconds of each epoch (what channels pay counts
        toward the epoch it is redeemed in, so the epoch's report asks the payer only for
        the rest). A node whose redemption fails is tried again at the next iteration;
        the others still redeem."""
        nodes = [n for n in self.config.node if n.gateway_db is not None]
        if not nodes or self.tx is None or self._signer is None:
            return
        ends = self.epoch_start(view.current_epoch + 1)
        closing = view.time >= ends - self._redeem_margin
        closing = closing and self._redeemed_in != view.current_epoch
        if not force and not closing and view.time < self._next_redeem:
            return
        if self._channels_domain is None:
            self._channels_domain = fetch_channels_domain(self.suite)
        failed = 0
        for node in nodes:
            if self.stopping:
                return
            try:
                self._redeem_node(node, view, self._channels_domain)
            except Exception as exc:
                failed += 1
                self._fail("redeem", exc)
        if not failed:
            self._next_redeem = view.time + self.config.agent.redeem_every
            if closing:
                self._redeemed_in = view.current_epoch

    def _close_interrupted(self, last: RedemptionRow) -> None:
        """A redemption the agent stopped in before its receipt: ``done`` with what it
        redeemed if its transactions were mined, else ``interrupted`` (what it would have
        paid is redeemed by the next one)."""
        receipts = [self.suite.rpc.call("eth_getTransactionReceipt", [h]) for h in last.tx_hashes]
        if not receipts or not all(r and int(r["status"], 16) == 1 for r in receipts):
            self.state.update_redemption(
                last.id, "interrupted", error="the agent stopped before its receipt"
            )
            return
        paid = [
            e for r in receipts for e in self.suite.channels.events(Receipt.from_rpc(r),
                                                                    "VoucherRedeemed")
        ]  # fmt: skip
        amount = sum(int(e["amount"]) for e in paid)
        self.state.update_redemption(last.id, "done", redeemed=len(paid), amount=amount)
        self.metrics.redeemed.labels(node=str(last.node_id)).inc(amount)

    def _redeem_node(self, node: NodeSection, view: ChainView, domain: Eip712Domain) -> None:
        """Redeem one gateway's latest vouchers, those that pay now: a voucher already
        redeemed, or signed by an app key its customer revoked, is left out (it would pay
        nothing, and must not stop the others)."""
        assert node.gateway_db is not None and self.tx is not None and self._signer is not None
        channels = self.suite.channels.address.lower()
        signer, tx = self._signer, self.tx
        last = self.state.fetch_last_redemption(node.id)
        if last is not None and last.state in ("sending", "sent"):
            self._close_interrupted(last)
        stored = self._voucher_store(node.gateway_db).fetch_latest(node.id)
        verdicts = check_on_chain(self.suite, stored, tx.signer.address)
        vouchers = [v for v, (amount, reason) in zip(stored, verdicts, strict=True)
                    if reason == 0 and amount > 0]  # fmt: skip
        if not vouchers:
            return
        rid = self.state.start_redemption(node.id, view.time, len(vouchers))
        signer.signed.clear()

        def on_sent() -> None:
            hashes = [h for to, h in signer.signed if to == channels]
            self.state.update_redemption(rid, "sent", tx_hashes=hashes)
            _failpoint("after_redeem_send")

        tx.on_sent = on_sent
        try:
            result = redeem_vouchers(
                tx, self.suite, vouchers, domain, batch_size=self.config.agent.batch_size
            )
        except Exception as exc:
            self.state.update_redemption(rid, "failed", error=_describe(exc))
            raise
        finally:
            tx.on_sent = None
        self.state.update_redemption(
            rid, "done", redeemed=result.redeemed, amount=result.amount,
            tx_hashes=result.transactions,
        )  # fmt: skip
        self.metrics.redeemed.labels(node=str(node.id)).inc(result.amount)
        _event(
            "redeemed",
            node=node.id,
            vouchers=len(vouchers),
            redeemed=result.redeemed,
            amount=str(result.amount),
            skipped=len(stored) - len(vouchers) + len(result.skipped),
            transactions=result.transactions,
        )

    # ---------------------------------------------------------------- prune
    def _prune(self, view: ChainView) -> None:
        """Delete scrapes no epoch still needs and older than ``keep_scrapes``."""
        now = time.monotonic()
        if now - self._last_prune < PRUNE_EVERY:
            return
        self._last_prune = now
        for node in self.config.node:
            last = self.state.fetch_last_epoch(node.id)
            if last is None:
                continue
            before = min(self.epoch_start(last + 1), view.time - self.config.agent.keep_scrapes)
            deleted = self.store.prune(node.id, before)
            if deleted:
                _event("pruned", logging.DEBUG, node=node.id, scrapes=deleted, before=before)

    # ---------------------------------------------------------------- health
    def _update_gauges(self) -> None:
        counts = self.state.count_states()
        reported = self.state.fetch_last_reported()
        for node in self.config.node:
            mine = counts.get(node.id, {})
            for state in STATES:
                self.metrics.reports.labels(node=str(node.id), state=state).set(mine.get(state, 0))
            if node.id in reported:
                self.metrics.last_epoch.labels(node=str(node.id)).set(reported[node.id])

    def get_health(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) of ``/healthz``: 200 while scrapes and the work loop keep
        their schedule, 503 when either is late or the agent is stopping."""
        now, health = time.monotonic(), self._health
        late_scrape = 3 * self.interval + self.config.agent.scrape_timeout
        late_work = 3 * self.interval + 180  # a settlement may wait for its receipt
        scrape_age = now - (health.last_scrape or health.started)
        work_age = now - (health.last_work or health.started)
        ok = scrape_age <= late_scrape and work_age <= late_work and not self.stopping
        body = {
            "status": "ok" if ok else ("stopping" if self.stopping else "late"),
            "chain_time": self.clock.now() if self.clock.is_set else None,
            "last_scrape_age_s": round(scrape_age, 1),
            "last_work_age_s": round(work_age, 1),
            "last_error": health.last_error,
            "nodes": {
                str(n): {"last_scrape_at": at, "ok": good, "error": redact_urls(err)}
                for n, (at, good, err) in health.scrapes.items()
            },
        }
        return (200 if ok else 503), body


# ------------------------------------------------------------------ opening, status


def get_rpc_url(chain: ChainSection, environ: Mapping[str, str] | None = None) -> str:
    """The chain's URL: ``rpc_url``, else ``network`` (edgeshare.toml, then brownie's
    config), else ``$EDGESHARE_RPC_URL`` / ``$ETH_RPC_URL``.

    Raises:
        InputError: none is given, or the network is unknown.
    """
    from edgeshare.chain import ENGINES, get_network_url

    env = os.environ if environ is None else environ
    if chain.rpc_url:
        return chain.rpc_url
    settings = load_settings(env)
    if chain.network:
        if chain.network in ENGINES:
            raise InputError(
                f"[chain] network = {chain.network!r} would start a new, empty chain; give rpc_url"
            )
        named = settings.get_network(chain.network, env)
        return named.rpc_url if named else get_network_url(chain.network)
    if settings.rpc_url:
        return settings.rpc_url
    raise InputError("[chain] needs rpc_url or network (or set EDGESHARE_RPC_URL)")


def open_agent(config: AgentConfig, environ: Mapping[str, str] | None = None) -> Agent:
    """The agent of ``config``: keys loaded first (nothing touches the chain before
    they are), then the chain, the manifest's suite, and every check (``Agent.check``).

    Raises:
        InputError: a key cannot be loaded, the chain or manifest is wrong, or a check
            failed (each problem named).
    """
    from edgeshare.chain import connect
    from edgeshare.deploy import get_default_manifest_path, read_manifest

    env = os.environ if environ is None else environ
    if config.attestor is None:
        raise InputError("the config has no [attestor]")
    attestor = load_attestor(config.attestor, env)
    payer = load_payer(config.payer, env) if config.payer is not None else None
    url = get_rpc_url(config.chain, env)
    w3: Web3 = connect(url, config.chain.rpc_timeout)
    path = config.chain.manifest or get_default_manifest_path(int(w3.eth.chain_id))
    manifest = read_manifest(path)
    if manifest is None:
        raise InputError(f"no manifest at {path}: set [chain] manifest")
    suite = Suite.load(w3, manifest)
    return Agent(config, suite, attestor, payer, max_fee_per_gas=load_settings(env).max_fee_per_gas)


class PendingItem(StrictModel):
    """A report the agent has not seen settled."""

    epoch: int
    state: str
    deadline: int
    """When its signature stops being valid (it is signed again before)."""
    sent_at: int | None
    """Chain time it was posted or written."""
    transactions: list[str]
    file: str | None


class HeldItem(StrictModel):
    """An epoch the agent will not report by itself."""

    epoch: int
    state: str
    """``held``, ``skipped`` or ``disputed``."""
    reason: str


class RedemptionView(StrictModel):
    """The node's latest voucher redemption."""

    at: int
    """Chain time it began."""
    state: str
    vouchers: int
    redeemed: int
    amount: int
    transactions: list[str]
    error: str


class NodeStatusView(StrictModel):
    """What the agent did for one node and what is pending."""

    node_id: int
    monitored_from: int | None
    """Chain time of the first scrape."""
    last_scrape_at: int | None
    last_scrape_ok: bool | None
    last_scrape_error: str
    last_good_scrape_at: int | None
    reports: dict[str, int]
    """Epochs by state."""
    last_epoch_reported: int | None
    """The latest epoch posted, written or settled."""
    pending: list[PendingItem]
    held: list[HeldItem]
    """Held, skipped and disputed epochs, with why."""
    next_epoch: int | None
    """The next epoch to be reported."""
    next_epoch_ends_at: int | None
    """When it ends (chain time; built ``grace`` seconds later)."""
    last_redemption: RedemptionView | None
    redeemed_total: int
    """Base units the agent's redemptions paid, in all."""


class AgentStatusView(StrictModel):
    """``edgeshare agent status``: what the state file says."""

    state: str
    """The state file."""
    chain_id: int | None
    router: str | None
    chain_time: int | None
    """Chain time now, estimated from the last block the agent saw and this machine's
    clock since."""
    chain_time_seen_at: int | None
    """When (this machine's clock) the agent last read the chain."""
    epoch_length: int | None
    current_epoch: int | None
    """The epoch at ``chain_time``."""
    mode: str
    nodes: list[NodeStatusView]


def read_status(config: AgentConfig, now: float | None = None) -> AgentStatusView:
    """The agent's status from its state file alone (works while it runs).

    Raises:
        InputError: there is no state file yet, or it is not one.
    """
    state = AgentState(config.agent.state, read_only=True)
    try:
        meta = state.get_meta()
        wall = time.time() if now is None else now

        def number(key: str) -> int | None:
            return int(meta[key]) if key in meta else None

        seen_time, seen_wall = number("chain_time"), number("chain_time_wall")
        chain_time = (
            seen_time + max(0, int(wall) - seen_wall)
            if seen_time is not None and seen_wall is not None
            else None
        )
        genesis, length = number("genesis"), number("epoch_length")
        current = (
            max(chain_time - genesis, 0) // length
            if chain_time is not None and genesis is not None and length
            else None
        )
        counts = state.count_states()
        reported = state.fetch_last_reported()
        nodes = []
        for node in config.node:
            info = state.get_node(node.id)
            rows = state.fetch_rows(node_id=node.id)
            pending = [
                PendingItem(
                    epoch=r.epoch,
                    state=r.state,
                    deadline=r.deadline,
                    sent_at=r.sent_at,
                    transactions=list(r.tx_hashes),
                    file=r.file,
                )
                for r in rows
                if r.state in (BUILT, *OPEN_STATES)
            ]
            held = [
                HeldItem(epoch=r.epoch, state=r.state, reason=r.note)
                for r in rows
                if r.state in (HELD, SKIPPED, DISPUTED_STATE)
            ]
            next_epoch: int | None = None
            if rows:
                next_epoch = rows[-1].epoch + 1
            elif info.monitored_from is not None and genesis is not None and length:
                next_epoch = max(
                    max(info.monitored_from - genesis, 0) // length, node.start_epoch or 0
                )
            ends = (
                genesis + (next_epoch + 1) * length
                if next_epoch is not None and genesis is not None and length
                else None
            )
            last = state.fetch_last_redemption(node.id)
            nodes.append(
                NodeStatusView(
                    node_id=node.id,
                    monitored_from=info.monitored_from,
                    last_scrape_at=info.last_scrape_at,
                    last_scrape_ok=info.last_scrape_ok,
                    last_scrape_error=redact_urls(info.last_scrape_error),
                    last_good_scrape_at=info.last_good_scrape_at,
                    reports={s: counts.get(node.id, {}).get(s, 0) for s in STATES},
                    last_epoch_reported=reported.get(node.id),
                    pending=pending,
                    held=held,
                    next_epoch=next_epoch,
                    next_epoch_ends_at=ends,
                    last_redemption=None
                    if last is None
                    else RedemptionView(
                        at=last.started_at,
                        state=last.state,
                        vouchers=last.vouchers,
                        redeemed=last.redeemed,
                        amount=last.amount,
                        transactions=list(last.tx_hashes),
                        error=last.error,
                    ),
                    redeemed_total=state.fetch_redeemed_total(node.id),
                )
            )
        return AgentStatusView(
            state=str(config.agent.state),
            chain_id=number("chain_id"),
            router=meta.get("router"),
            chain_time=chain_time,
            chain_time_seen_at=seen_wall,
            epoch_length=length,
            current_epoch=current,
            mode=config.agent.mode,
            nodes=nodes,
        )
    finally:
        state.close()
