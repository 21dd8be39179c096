"""Node lists: reading ``NODES.yaml`` and registering what is not registered yet.

Every entry has an ``external_id`` of its operator's choosing; the registry refuses the
same (operator, external id) twice, so registering a list is idempotent even across a
crash: a re-run skips the nodes that made it on chain.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, ValidationError

from edgeshare.errors import InputError
from edgeshare.models import StrictModel, read_text_file
from edgeshare.pipeline import send_pipelined
from edgeshare.suite import NodeSpec, Suite
from edgeshare.tx import Transactor


class _Loader(yaml.SafeLoader):  # type: ignore[misc]
    """YAML 1.1 reads 0x... as a hex integer; an address must stay text."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:int"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(0|[1-9][0-9_]*)$"), list("-+0123456789")
)


class NodeEntry(NodeSpec):
    """One node of a node list; ``external_id`` is required here."""

    external_id: Annotated[str, Field(min_length=1, max_length=200)]
    """The operator's own id for the node, unique per operator."""


class NodesFile(StrictModel):
    """``NODES.yaml``: ``nodes:`` followed by a list of entries."""

    nodes: Annotated[list[NodeEntry], Field(min_length=1)]
    """The nodes to register."""


def read_nodes_file(path: Path) -> list[NodeEntry]:
    """Parse and validate a node list; every problem is reported with index and field."""
    text = read_text_file(path)
    try:
        data: Any = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise InputError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or "nodes" not in data:
        raise InputError(f"{path} must be a mapping with a 'nodes' list")
    try:
        parsed = NodesFile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = list(err["loc"])
            where = (
                f"nodes[{loc[1]}].{'.'.join(str(p) for p in loc[2:])}"
                if len(loc) > 1
                else ".".join(map(str, loc))
            )
            message = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown field"
            problems.append(f"{path}: {where}: {message}")
        raise InputError(
            f"{len(problems)} problem(s), nothing was sent:\n  " + "\n  ".join(problems)
        ) from None
    seen: dict[tuple[str, str], int] = {}
    problems = []
    for i, entry in enumerate(parsed.nodes):
        key = (entry.operator, entry.external_id)
        if key in seen:
            problems.append(
                f"{path}: nodes[{i}].external_id: {entry.external_id!r} of operator "
                f"{entry.operator} is also nodes[{seen[key]}]"
            )
        seen.setdefault(key, i)
    if problems:
        raise InputError(
            f"{len(problems)} problem(s), nothing was sent:\n  " + "\n  ".join(problems)
        )
    return parsed.nodes


@dataclass(frozen=True)
class Registration:
    """What happened to one entry of a node list."""

    external_id: str
    operator: str
    node_id: int
    action: str  # "registered" or "already registered"


def register_nodes(
    tx: Transactor,
    suite: Suite,
    entries: Sequence[NodeEntry],
    on_progress: Callable[[str, int, int], None] | None = None,
) -> list[Registration]:
    """Register every entry not registered yet (by operator and external id)."""
    progress = on_progress or (lambda _s, _d, _t: None)
    registry = suite.registry
    existing = suite.reader.many(
        [registry.read("node_by_external_id", e.operator, e.get_external_id_hash())
         for e in entries]
    )  # fmt: skip
    todo = [e for e, node_id in zip(entries, existing, strict=True) if node_id == 0]
    registered: dict[tuple[str, str], int] = {}
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
        for receipt in receipts:
            for event in registry.events(receipt, "NodeRegistered"):
                entry = hashes[event["external_id"]]
                registered[(entry.operator, entry.external_id)] = int(event["node_id"])
    out = []
    for entry, node_id in zip(entries, existing, strict=True):
        if node_id:
            out.append(
                Registration(entry.external_id, entry.operator, node_id, "already registered")
            )
        else:
            out.append(
                Registration(
                    entry.external_id,
                    entry.operator,
                    registered[(entry.operator, entry.external_id)],
                    "registered",
                )
            )
    return out
