"""Node metadata documents and their URIs, and the node list's file layer, without a chain:
canonical bytes, the ``#sha256=`` fragment, what ``fetch_metadata`` reads and refuses, YAML
amounts kept as text, and the public-chain rule (an explicit ``ipfs://``/``https://`` URI).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from edgeshare import nodes
from edgeshare.errors import InputError
from edgeshare.metadata import (
    MetadataError,
    MetadataNotFetched,
    NodeMetadata,
    build_data_uri,
    build_document,
    build_file_uri,
    fetch_metadata,
    get_content_hash,
)
from edgeshare.units import Token

OPERATOR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
ATTESTOR = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
SEPOLIA = 11155111
FIELDS = {"gpu": "H100", "endpoint": "https://sg1.example.com/v1", "capacity_rps": 250,
          "models": ["llama-3-8b"]}  # fmt: skip


def test_document__canonical__sorted_keys_no_spaces_utf8() -> None:
    document = build_document(
        NodeMetadata(
            **FIELDS,
        )
    )
    assert document == json.dumps(FIELDS, sort_keys=True, separators=(",", ":")).encode()
    assert build_document(NodeMetadata(gpu="Jetson Orin — 64 GB")).decode() == (
        '{"gpu":"Jetson Orin — 64 GB"}'
    )


def test_fetch_metadata__data_uri__round_trips_and_checks_the_hash() -> None:
    document = build_document(NodeMetadata(**FIELDS))
    uri = build_data_uri(document)
    assert uri.endswith(f"#sha256={get_content_hash(document)}")
    assert fetch_metadata(uri).model_dump(exclude_none=True) == FIELDS
    other = base64.b64encode(build_document(NodeMetadata(gpu="A100"))).decode()
    forged = f"data:application/json;base64,{other}#{uri.partition('#')[2]}"
    with pytest.raises(MetadataError, match="does not match"):
        fetch_metadata(forged)
    with pytest.raises(MetadataError, match="no #sha256"):
        fetch_metadata(uri.partition("#")[0])


def test_fetch_metadata__file_uri__changed_file_refused(tmp_path: Path) -> None:
    document = build_document(NodeMetadata(**FIELDS))
    path = tmp_path / "doc.json"
    path.write_bytes(document)
    uri = build_file_uri(path, document)
    assert fetch_metadata(uri).gpu == "H100"
    with pytest.raises(MetadataNotFetched):
        fetch_metadata(uri, allow_files=False)
    path.write_bytes(document.replace(b"H100", b"H200"))
    with pytest.raises(MetadataError, match="does not match"):
        fetch_metadata(uri)
    path.unlink()
    with pytest.raises(MetadataError, match="cannot read"):
        fetch_metadata(uri)


@pytest.mark.parametrize(
    "uri",
    ["https://x.example/doc.json#sha256=" + "0" * 64, "ipfs://bafy/doc", "http://169.254.169.254/"],
)
def test_fetch_metadata__network_uris__not_fetched(uri: str) -> None:
    with pytest.raises(MetadataNotFetched):
        fetch_metadata(uri)


def _list(tmp_path: Path, **over: Any) -> nodes.NodeList:
    fields = {"external_id": "sg-1", "operator": OPERATOR, "attestor": ATTESTOR,
              "shares": "1000000", "price_per_1k": "0.45", "operator_cut_bps": 1500,
              "region": "Singapore", **over}  # fmt: skip
    lines = ["nodes:", "  - external_id: " + str(fields.pop("external_id"))]
    lines += [
        f"    {k}: {json.dumps(v) if not isinstance(v, str) else v}" for k, v in fields.items()
    ]
    path = tmp_path / "nodes.yaml"
    path.write_text("\n".join(lines) + "\n")
    return nodes.read_nodes_file(path)


def _resolve(monkeypatch: pytest.MonkeyPatch, node_list: nodes.NodeList, chain_id: int) -> Any:
    facts = nodes.ChainFacts(Token(6, "USDC"), OPERATOR, False)
    monkeypatch.setattr(nodes, "fetch_chain_facts", lambda _suite: facts)
    suite: Any = SimpleNamespace(manifest=SimpleNamespace(chain_id=chain_id))
    return node_list.resolve(suite)


def test_node_list__yaml_decimals__stay_text_and_parse_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node_list = _list(tmp_path, price_per_1k="0.29", shares="1.1")
    assert node_list.raw[0]["price_per_1k"] == "0.29"  # 0.29 as a float is 0.28999...
    (entry,) = _resolve(monkeypatch, node_list, 31337)
    assert entry.price_per_1k == 290_000 and entry.shares == 11 * 10**17


def test_node_list__public_chain__metadata_needs_a_published_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InputError, match=r"nodes\[0\].metadata_uri: required on chain 11155111"):
        _resolve(monkeypatch, _list(tmp_path, gpu="H100"), SEPOLIA)
    (entry,) = _resolve(
        monkeypatch, _list(tmp_path, gpu="H100", metadata_uri="ipfs://bafyexample"), SEPOLIA
    )
    document = build_document(NodeMetadata(gpu="H100"))
    assert entry.metadata_uri == f"ipfs://bafyexample#sha256={get_content_hash(document)}"
    assert entry.metadata_file == tmp_path / f"node-metadata-{get_content_hash(document)[:16]}.json"
    wrong = "ipfs://bafyexample#sha256=" + "ab" * 32
    with pytest.raises(InputError, match="is not the hash of the metadata fields"):
        _resolve(monkeypatch, _list(tmp_path, gpu="H100", metadata_uri=wrong), SEPOLIA)
    # without metadata fields a URI is registered as written, on any chain
    (plain,) = _resolve(monkeypatch, _list(tmp_path, metadata_uri="ipfs://n"), SEPOLIA)
    assert plain.metadata_uri == "ipfs://n" and plain.metadata is None
