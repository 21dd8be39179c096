"""Node lists: reading ``NODES.yaml`` and registering what is not registered yet.

Every entry has an ``external_id`` of its operator's choosing; the registry refuses the
same (operator, external id) twice, so registering a list is idempotent even across a
crash: a re-run skips the nodes that made it on chain, and says how the terms of those
differ from the file (and which ``edgeshare operator`` command changes each).

Amounts in the file are whole units: ``shares: 1000000`` is one million shares (18
decimals), ``price_per_1k: 0.45`` is 0.45 of the suite's stablecoin (its decimals are read
from the chain). Base units only when written so: ``shares: "1000000 base"``. Numbers
with a fraction are read as text, never as floats. The file layer converts to
``NodeEntry`` (base units), which is what the library registers.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BeforeValidator, Field, ValidationError

from edgeshare.chain import is_local_chain_id
from edgeshare.errors import InputError
from edgeshare.metadata import (
    DATA_PREFIX,
    MAX_URI_BYTES,
    PUBLISHED_SCHEMES,
    Endpoint,
    MetadataError,
    Models,
    NodeMetadata,
    add_content_hash,
    build_data_uri,
    build_document,
    build_file_uri,
    fetch_metadata,
    get_document_name,
    get_uri_hash,
)
from edgeshare.models import MAX_OPERATOR_CUT_BPS, Address, StrictModel, read_text_file
from edgeshare.pipeline import send_pipelined
from edgeshare.rpc import RpcError
from edgeshare.suite import MAX_PRICE, NodeRecord, NodeSpec, Suite
from edgeshare.tx import Transactor
from edgeshare.units import (
    SHARE_DECIMALS,
    Token,
    format_bps,
    format_price,
    format_units,
    is_base_units_text,
)
from edgeshare.units import parse_amount as parse_units

MAX_PROBLEMS_SHOWN = 50
ZERO_ADDRESS = "0x" + "0" * 40
METADATA_FIELDS = ("endpoint", "models", "gpu", "capacity_rps")


class _Loader(yaml.SafeLoader):  # type: ignore[misc]
    """YAML 1.1 reads 0x... as a hex integer and 0.45 as a float: an address must stay
    text, and an amount must reach ``edgeshare.units`` as its exact decimal text."""


_Loader.yaml_implicit_resolvers = {
    key: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
    ]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(0|[1-9][0-9_]*)$"), list("-+0123456789")
)


def _is_base_units_text(value: object) -> bool:
    return isinstance(value, str) and is_base_units_text(value)


def _parse_shares(value: object) -> object:
    """Shares in whole units (18 decimals), or ``"N base"``; below one share only in base
    units (``shares: 1000`` once meant 1000 base units: a quadrillionth of a share)."""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        return value  # the int check names the type
    try:
        amount = parse_units(value, SHARE_DECIMALS, "shares")
    except InputError as exc:
        raise ValueError(str(exc).removeprefix("shares: ")) from None
    if amount < 10**SHARE_DECIMALS and not _is_base_units_text(value):
        raise ValueError(
            f"{value} is less than one whole share; shares are whole units (18 decimals): "
            f'write "{amount} base" if you mean {amount} base units'
        )
    return amount


def _not_zero(value: str) -> str:
    if value == ZERO_ADDRESS:
        raise ValueError("must not be the zero address")
    return value


NonZeroAddress = Annotated[Address, AfterValidator(_not_zero)]
AmountText = Annotated[str | int, Field(union_mode="left_to_right")]


class NodeListEntry(StrictModel):
    """One entry of a node list as written: amounts in whole units."""

    external_id: Annotated[str, Field(min_length=1, max_length=200)]
    """The operator's own id for the node, unique per operator."""
    operator: NonZeroAddress
    """Runs the node and receives all its shares at registration."""
    attestor: NonZeroAddress
    """Signs the node's usage reports."""
    shares: Annotated[int, BeforeValidator(_parse_shares), Field(ge=1, le=2**128)]
    """Share supply in whole shares (``1000000``), or ``"N base"`` (18-decimal base units)."""
    price_per_1k: AmountText
    """Stablecoin per 1,000 inferences in whole units (``0.45``), or ``"N base"``."""
    operator_cut_bps: Annotated[int, Field(ge=0, le=MAX_OPERATOR_CUT_BPS)]
    """The operator's share of gross revenue in basis points."""
    region: Annotated[str, Field(min_length=1, max_length=32)]
    """Where the node serves."""
    metadata_uri: Annotated[str, Field(min_length=1, max_length=MAX_URI_BYTES)] | None = None
    """Where the metadata document is published (``ipfs://`` or ``https://``); required on
    public chains when a metadata field is given; without metadata fields it is
    registered as written."""
    endpoint: Endpoint | None = None
    """The URL developers send requests to (http or https)."""
    models: Models | None = None
    """The models the node serves."""
    gpu: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    """The accelerator, e.g. ``H100 80GB``."""
    capacity_rps: Annotated[int, Field(ge=1, le=10**9)] | None = None
    """Sustained requests per second the node can take."""

    def get_metadata(self) -> NodeMetadata:
        """The entry's metadata fields as a document (possibly empty)."""
        return NodeMetadata(
            endpoint=self.endpoint, models=self.models, gpu=self.gpu, capacity_rps=self.capacity_rps
        )


class NodeEntry(NodeSpec):
    """One node to register, in base units; ``external_id`` is required here."""

    external_id: Annotated[str, Field(min_length=1, max_length=200)]
    """The operator's own id for the node, unique per operator."""
    metadata: NodeMetadata | None = None
    """The metadata document ``metadata_uri`` points to, when the node list gave one."""
    metadata_file: Path | None = None
    """Where the document is written before registering (next to the node list): what a
    ``file:`` URI names, or the copy to publish at an ``ipfs://``/``https://`` URI."""


@dataclass(frozen=True)
class NodeList:
    """A node list read from a file: its entries checked as far as the file alone allows.

    ``resolve`` finishes the checks against the chain (the stablecoin's decimals, the chain
    id's metadata rules, the registrar) and reports every problem of both in one error.
    """

    path: Path
    raw: list[Any]
    """The entries as YAML gave them."""
    parsed: list[NodeListEntry | None]
    """Each entry validated (None where it has problems)."""
    problems: list[tuple[int, str]] = field(default_factory=list)
    """(entry index, message) of what is wrong so far."""

    def get_address_notes(self) -> list[str]:
        """Addresses written without their EIP-55 checksum, in the form they are read as
        (a typo in an all-lowercase address cannot be caught: check these)."""
        notes = []
        for i, (raw, entry) in enumerate(zip(self.raw, self.parsed, strict=True)):
            if entry is None:
                continue
            for name in ("operator", "attestor"):
                written, read = raw.get(name), getattr(entry, name)
                if written != read:
                    notes.append(
                        f"nodes[{i}].{name} was written without its checksum; it is {read}"
                    )
        return notes

    def resolve(self, suite: Suite, *, registrar: str | None = None) -> list[NodeEntry]:
        """The entries in base units with their metadata URIs, or an InputError listing
        every problem of the file and of the chain checks (the registrar, when given, must
        be the registry's; the registry must not be paused)."""
        facts = fetch_chain_facts(suite)
        token, chain_id = facts.token, suite.manifest.chain_id
        problems = list(self.problems)
        entries: list[NodeEntry] = []
        for i, (raw, entry) in enumerate(zip(self.raw, self.parsed, strict=True)):
            where = f"nodes[{i}]"
            price = None
            value = raw.get("price_per_1k") if isinstance(raw, dict) else None
            if isinstance(value, (str, int)) and not isinstance(value, bool):
                price = self._parse_price(value, token, i, problems)
            if entry is None or price is None:
                continue
            try:
                uri, metadata, document_at = self._build_metadata_uri(entry, chain_id)
            except MetadataError as exc:
                problems.append((i, f"{where}.metadata_uri: {exc}"))
                continue
            entries.append(
                NodeEntry(
                    operator=entry.operator, attestor=entry.attestor, shares=entry.shares,
                    price_per_1k=price, operator_cut_bps=entry.operator_cut_bps,
                    region=entry.region, metadata_uri=uri, external_id=entry.external_id,
                    metadata=metadata, metadata_file=document_at,
                )
            )  # fmt: skip
        problems.sort(key=lambda p: p[0])
        texts = [f"{self.path}: {text}" for _, text in problems]
        if registrar is not None and registrar != facts.registrar:
            texts.append(
                f"the signer {registrar} is not the registry's registrar ({facts.registrar}): "
                "only the registrar can register nodes"
            )
        if facts.paused:
            texts.append("the registry is paused (by the guardian): nothing can be registered")
        if texts:
            raise_problems(texts)
        return entries

    def _parse_price(
        self, value: str | int, token: Token, index: int, problems: list[tuple[int, str]]
    ) -> int | None:
        name = f"nodes[{index}].price_per_1k"
        try:
            price = token.parse(value, name)
        except InputError as exc:
            problems.append((index, str(exc)))
            return None
        if price > MAX_PRICE:
            problems.append((index, f"{name}: {value} is above the registry's cap"))
            return None
        return price

    def _build_metadata_uri(
        self, entry: NodeListEntry, chain_id: int
    ) -> tuple[str, NodeMetadata | None, Path | None]:
        """(URI to register, document, where to write it) for an entry."""
        metadata = entry.get_metadata()
        if metadata.is_empty():
            return entry.metadata_uri or "", None, None
        document = build_document(metadata)
        next_to_list = self.path.resolve().parent / get_document_name(document)
        if entry.metadata_uri is not None:
            scheme = entry.metadata_uri.partition(":")[0].lower()
            if scheme not in PUBLISHED_SCHEMES:
                raise MetadataError(
                    f"{entry.metadata_uri!r}: with metadata fields, give an ipfs:// or "
                    "https:// URI where the document is published (or, on a local chain, "
                    "none)"
                )
            uri = add_content_hash(entry.metadata_uri, document)
        elif not is_local_chain_id(chain_id):
            raise MetadataError(
                f"required on chain {chain_id} when {', '.join(METADATA_FIELDS)} are given: "
                "publish the metadata document at an ipfs:// or https:// URI and name it here "
                f"(nodes register writes the document to {next_to_list.name} first)"
            )
        else:
            uri = build_data_uri(document)
            if len(uri.encode()) > MAX_URI_BYTES:
                uri = build_file_uri(next_to_list, document)
        if len(uri.encode()) > MAX_URI_BYTES:
            raise MetadataError(
                f"the URI with its #sha256 is {len(uri.encode())} bytes; the registry keeps "
                f"at most {MAX_URI_BYTES}: {uri}"
            )
        return uri, metadata, None if uri.startswith(DATA_PREFIX) else next_to_list


def raise_problems(problems: Sequence[str]) -> None:
    """One InputError listing every problem (up to ``MAX_PROBLEMS_SHOWN``)."""
    shown = list(problems[:MAX_PROBLEMS_SHOWN])
    if len(problems) > MAX_PROBLEMS_SHOWN:
        shown.append(f"... and {len(problems) - MAX_PROBLEMS_SHOWN} more")
    raise InputError(f"{len(problems)} problem(s), nothing was sent:\n  " + "\n  ".join(shown))


def read_nodes_file(path: Path) -> NodeList:
    """Read and check a node list as far as the file alone allows.

    A file that is not a YAML mapping with a non-empty ``nodes`` list is refused at once;
    problems of entries are kept, with index and field, for ``NodeList.resolve`` to report
    together with the chain checks (``register_nodes`` resolves a NodeList itself).
    """
    text = read_text_file(path)
    try:
        data: Any = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise InputError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or "nodes" not in data:
        raise InputError(f"{path} must be a mapping with a 'nodes' list")
    extra = sorted(str(k) for k in data if k != "nodes")
    raw = data["nodes"]
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{path}: nodes: must be a non-empty list of entries")
    problems: list[tuple[int, str]] = [(-1, f"{k}: unknown field") for k in extra]
    parsed: list[NodeListEntry | None] = []
    for i, item in enumerate(raw):
        try:
            parsed.append(NodeListEntry.model_validate(item))
        except ValidationError as exc:
            parsed.append(None)
            problems += [(i, _describe(i, err)) for err in exc.errors()]
    seen: dict[tuple[str, str], int] = {}
    for i, entry in enumerate(parsed):
        if entry is None:
            continue
        key = (entry.operator, entry.external_id)
        if key in seen:
            problems.append(
                (i, f"nodes[{i}].external_id: {entry.external_id!r} of operator "
                    f"{entry.operator} is also nodes[{seen[key]}]")
            )  # fmt: skip
        seen.setdefault(key, i)
    return NodeList(path, raw, parsed, problems)


def _describe(index: int, err: Any) -> str:
    loc = [str(p) for p in err["loc"]]
    where = ".".join([f"nodes[{index}]", *loc])
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown field"
    return f"{where}: {message}"


@dataclass(frozen=True)
class ChainFacts:
    """What registering checks on chain first (one batch of reads)."""

    token: Token
    registrar: str
    paused: bool


def fetch_chain_facts(suite: Suite) -> ChainFacts:
    """The stablecoin's decimals and symbol, the registrar and the pause switch."""
    registrar, paused = suite.reader.many(
        [suite.registry.read("registrar"), suite.registry.read("paused")]
    )
    return ChainFacts(suite.fetch_stablecoin_token(), str(registrar), bool(paused))


@dataclass(frozen=True)
class Difference:
    """One term of a registered node that differs from its node list entry."""

    field: str
    on_chain: str
    in_file: str
    command: str | None
    """The ``edgeshare operator`` command (run by the operator) that changes it, or None
    when it cannot change."""
    note: str = ""


@dataclass(frozen=True)
class Registration:
    """What happened to one entry of a node list."""

    external_id: str
    operator: str
    node_id: int
    """0 for a node a dry run would register."""
    action: str
    """``registered``, ``already registered`` or (dry run) ``would register``."""
    entry: NodeEntry | None = None
    differences: tuple[Difference, ...] = ()
    """For an already registered node: its terms that differ from the entry."""
    gas: int | None = None
    """The gas limit a dry run simulated the registration with."""


def register_nodes(
    tx: Transactor,
    suite: Suite,
    entries: NodeList | Sequence[NodeEntry],
    on_progress: Callable[[str, int, int], None] | None = None,
) -> list[Registration]:
    """Register every entry not registered yet (by operator and external id).

    A ``NodeList`` is resolved first (every problem of the file and of the chain checks
    in one InputError, nothing sent). Registered entries whose terms differ from the
    chain come back with their ``differences``. With ``tx.dry_run`` nothing is sent and
    no file is written: the registrations are simulated (``action`` "would register",
    ``gas`` the limit).
    """
    progress = on_progress or (lambda _s, _d, _t: None)
    if isinstance(entries, NodeList):
        entries = entries.resolve(suite, registrar=tx.signer.address)
    registry = suite.registry
    existing = suite.reader.many(
        [registry.read("node_by_external_id", e.operator, e.get_external_id_hash())
         for e in entries]
    )  # fmt: skip
    known = [(e, int(n)) for e, n in zip(entries, existing, strict=True) if n]
    differences = _fetch_differences(suite, known) if known else {}
    todo = [e for e, node_id in zip(entries, existing, strict=True) if node_id == 0]
    registered: dict[tuple[str, str], int] = {}
    gas: dict[tuple[str, str], int] = {}
    if not tx.dry_run:
        # new entries register the document's URI; registered ones whose metadata differs
        # are told to set it (`operator set-metadata`): both need the document written
        for entry in entries:
            _write_document(entry)
    if todo:
        datas = [
            registry.calldata(
                "register_node", e.operator, e.attestor, e.shares, e.price_per_1k,
                e.operator_cut_bps, e.region, e.metadata_uri, e.get_external_id_hash(),
            )
            for e in todo
        ]  # fmt: skip
        receipts = send_pipelined(
            tx, suite.rpc, registry.address, datas, "register nodes", progress
        )
        hashes = {"0x" + e.get_external_id_hash().hex(): e for e in todo}
        for entry, receipt in zip(todo, receipts, strict=True):
            if receipt.is_simulated:
                gas[(entry.operator, entry.external_id)] = receipt.gas_used
            for event in registry.events(receipt, "NodeRegistered"):
                found = hashes[event["external_id"]]
                registered[(found.operator, found.external_id)] = int(event["node_id"])
    out = []
    for entry, node_id in zip(entries, existing, strict=True):
        key = (entry.operator, entry.external_id)
        if node_id:
            diffs = differences.get(int(node_id), ())
            out.append(Registration(entry.external_id, entry.operator, int(node_id),
                                    "already registered", entry, diffs))  # fmt: skip
        elif tx.dry_run:
            out.append(Registration(entry.external_id, entry.operator, 0, "would register",
                                    entry, gas=gas.get(key)))  # fmt: skip
        else:
            out.append(Registration(entry.external_id, entry.operator, registered[key],
                                    "registered", entry))  # fmt: skip
    return out


def _write_document(entry: NodeEntry) -> None:
    """Write the entry's metadata document where its URI (or its publisher) expects it."""
    if entry.metadata is None or entry.metadata_file is None:
        return
    document = build_document(entry.metadata)
    target = entry.metadata_file
    if target.exists() and target.read_bytes() == document:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_bytes(document)
    tmp.replace(target)


def _fetch_differences(
    suite: Suite, known: Sequence[tuple[NodeEntry, int]]
) -> dict[int, tuple[Difference, ...]]:
    """The terms of each registered node that differ from its entry."""
    records = suite.fetch_nodes([n for _, n in known])
    supplies = suite.reader.try_many(
        [suite.share_at(r.share_token).read("totalSupply") for r in records]
    )
    token = suite.fetch_stablecoin_token()
    out = {}
    for (entry, node_id), record, supply in zip(known, records, supplies, strict=True):
        found = build_differences(
            entry, record, None if isinstance(supply, RpcError) else int(supply), token,
            allow_files=is_local_chain_id(suite.manifest.chain_id),
        )  # fmt: skip
        if found:
            out[node_id] = tuple(found)
    return out


def build_differences(
    entry: NodeEntry,
    record: NodeRecord,
    supply: int | None,
    token: Token,
    *,
    allow_files: bool = False,
) -> list[Difference]:
    """How a registered node's terms (as they will be from the next epoch on) differ from
    its entry, each with the command that changes it (metadata documents in ``data:``,
    and with ``allow_files`` ``file:``, URIs are shown as their fields)."""
    n = record.node_id
    found = []
    if entry.price_per_1k != record.next_price_per_1k:
        now = format_price(record.price_per_1k, token)
        on_chain = (
            now
            if record.price_per_1k == record.next_price_per_1k
            else f"{now}, from the next epoch {format_price(record.next_price_per_1k, token)}"
        )
        plain = format_units(entry.price_per_1k, token.decimals).replace(",", "")
        found.append(Difference("price_per_1k", on_chain, format_price(entry.price_per_1k, token),
                                f"edgeshare operator set-price {n} {plain}"))  # fmt: skip
    cut = record.pending_cut_bps if record.pending_cut_epoch else record.next_operator_cut_bps
    if entry.operator_cut_bps != cut:
        on_chain = f"{record.operator_cut_bps} bps ({format_bps(record.operator_cut_bps)})"
        if cut != record.operator_cut_bps:
            when = (
                f"epoch {record.pending_cut_epoch}"
                if record.pending_cut_epoch
                else "the next epoch"
            )
            on_chain += f", {cut} bps from {when}"
        found.append(Difference(
            "operator_cut_bps", on_chain,
            f"{entry.operator_cut_bps} bps ({format_bps(entry.operator_cut_bps)})",
            f"edgeshare operator propose-cut {n} {format_bps(entry.operator_cut_bps)}",
            "an increase takes effect after the registry's delay, a decrease next epoch",
        ))  # fmt: skip
    if entry.attestor != record.attestor:
        rotate = f"edgeshare operator rotate-attestor {n} {entry.attestor}"
        found.append(Difference("attestor", record.attestor, entry.attestor, rotate))
    if not _same_metadata(entry.metadata_uri, record.metadata_uri):
        found.append(Difference(
            "metadata", _describe_uri(record.metadata_uri, allow_files),
            _describe_uri(entry.metadata_uri, allow_files),
            f"edgeshare operator set-metadata {n} {shlex.quote(entry.metadata_uri)}"
            if entry.metadata_uri else None,
            "" if entry.metadata_uri else "the registry keeps the URI it has",
        ))  # fmt: skip
    if supply is not None and supply != entry.shares:
        found.append(Difference(
            "shares", f"{format_units(supply, SHARE_DECIMALS)} shares",
            f"{format_units(entry.shares, SHARE_DECIMALS)} shares", None,
            "cannot change: a node's share supply is fixed at registration",
        ))  # fmt: skip
    if entry.region != record.region:
        found.append(Difference("region", record.region, entry.region, None,
                                "cannot change: the region is fixed at registration "
                                "(register a new node with another external_id)"))  # fmt: skip
    if entry.operator != record.operator:
        found.append(Difference("operator", record.operator, entry.operator, None,
                                "the node was handed over (transfer_operator); the new "
                                "operator runs the commands"))  # fmt: skip
    return found


def _describe_uri(uri: str, allow_files: bool) -> str:
    """A metadata URI as a person reads it: the document it holds, else the URI."""
    if not uri:
        return "(none)"
    try:
        document = build_document(fetch_metadata(uri, allow_files=allow_files)).decode()
    except MetadataError:
        return uri
    where = "a data: URI" if uri.startswith("data:") else uri.partition("#")[0]
    return f"{document} (in {where})"


def _same_metadata(file_uri: str, chain_uri: str) -> bool:
    """Equal URIs, or both carrying the same content hash (the same document, wherever the
    node list was when it was written)."""
    if file_uri == chain_uri:
        return True
    ours, theirs = get_uri_hash(file_uri), get_uri_hash(chain_uri)
    return ours is not None and ours == theirs
