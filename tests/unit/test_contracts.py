"""The one read path: codecs derived from the ABIs, by name, and reads in batches."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from brownie import web3
from eth_abi.abi import decode as reference_decode
from hypothesis import given, settings
from hypothesis import strategies as st
from web3 import Web3

from edgeshare.artifacts import CONTRACTS, load_artifact
from edgeshare.contracts import get_canonical_type, get_codec
from edgeshare.errors import CallFailed
from edgeshare.market import fetch_portfolio
from edgeshare.rpc import BATCH_CALLS
from edgeshare.signer import Signer
from edgeshare.status import (
    CHANNEL_EPOCHS_SHOWN,
    fetch_channel_revenue,
    fetch_clock,
    fetch_node_views,
    fetch_pending,
)
from edgeshare.suite import NodeSpec, Suite, send_transfer_shares
from edgeshare.tx import Transactor
from tests.conftest import SHARES, Payer

SRC = Path(__file__).resolve().parents[2] / "src" / "edgeshare"


def _value(typ: str) -> st.SearchStrategy[Any]:
    """Values of one canonical ABI type."""
    if typ.endswith("[]"):
        return st.lists(_value(typ[:-2]), max_size=3)
    if typ.startswith("("):
        inner = _split_tuple(typ[1:-1])
        return st.tuples(*(_value(t) for t in inner))
    if typ.startswith("uint"):
        return st.integers(0, 2 ** int(typ[4:] or 256) - 1)
    if typ.startswith("int"):
        bits = int(typ[3:] or 256)
        return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if typ == "address":
        return st.binary(min_size=20, max_size=20).map(lambda b: Web3.to_checksum_address(b))
    if typ == "bool":
        return st.booleans()
    if typ.startswith("bytes") and typ != "bytes":
        size = int(typ[5:])
        return st.binary(min_size=size, max_size=size)
    if typ == "bytes":
        return st.binary(max_size=80)
    assert typ == "string", typ
    return st.text(max_size=40)


def _split_tuple(body: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(body):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    return [*parts, body[start:]] if body else parts


FUNCTIONS = [
    (contract, item)
    for contract in CONTRACTS
    for item in load_artifact(contract).abi
    if item["type"] == "function"
]


@pytest.mark.parametrize(
    ("contract", "item"), FUNCTIONS, ids=[f"{c}.{i['name']}" for c, i in FUNCTIONS]
)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_codec__encodes_every_function_exactly_as_web3(
    contract: str, item: dict[str, Any], data: Any
) -> None:
    types = [get_canonical_type(i) for i in item["inputs"]]
    args = [data.draw(_value(t)) for t in types]
    reference = Web3().eth.contract(abi=load_artifact(contract).abi)
    expected = reference.encode_abi(item["name"], args=args)
    assert get_codec(contract).fn(item["name"], len(args)).encode(*args) == expected


def test_codec__takes_a_struct_by_field_name() -> None:
    settle = get_codec("RevenueRouter").fn("settle_many")
    report = {"nodeId": 1, "epoch": 2, "version": 0, "inferences": 3, "revenue": 4,
              "latencyMs": 5, "uptimeBps": 6, "deadline": 7}  # fmt: skip
    assert settle.encode([report], b"\x01" * 65) == settle.encode(
        [tuple(report.values())], b"\x01" * 65
    )
    with pytest.raises(ValueError, match="lacks deadline"):
        settle.encode([{k: v for k, v in report.items() if k != "deadline"}], b"")


def test_codec__decodes_a_struct_result_by_field_name(suite: Suite, node: tuple[int, Any]) -> None:
    node_id, share = node
    registry = load_artifact("NodeRegistry").abi
    raw = web3.eth.call({"to": suite.registry.address,
                         "data": get_codec("NodeRegistry").fn("node").encode(node_id)})  # fmt: skip
    outputs = next(i for i in registry if i.get("name") == "node")["outputs"]
    (positional,) = reference_decode([get_canonical_type(o) for o in outputs], bytes(raw))
    decoded = get_codec("NodeRegistry").fn("node").decode(bytes(raw))
    names = [c["name"] for c in outputs[0]["components"]]
    assert list(decoded) == names
    assert decoded["share_token"] == share.address  # checksummed, by name
    assert [decoded[n] if n not in {"operator", "pending_operator", "attestor", "share_token"}
            else decoded[n].lower() for n in names] == [
        v.lower() if isinstance(v, str) and v.startswith("0x") else v for v in positional
    ]  # fmt: skip
    record = suite.fetch_node(node_id)
    assert record.share_token == share.address and record.status == "active"


def test_events__decoded_by_name_from_a_receipt(
    suite: Suite, deployer: Any, operator: Any, attestor: Any
) -> None:
    tx = Transactor(web3, Signer(address=deployer.address))
    spec = NodeSpec(
        operator=operator.address, attestor=attestor.address, shares=7 * SHARES,
        price_per_1k=5, operator_cut_bps=100, region="Lima", external_id="x-1",
    )  # fmt: skip
    receipt = tx.send(suite.registry.tx("register_node", spec.operator, spec.attestor,
                                        spec.shares, spec.price_per_1k, spec.operator_cut_bps,
                                        spec.region, spec.metadata_uri,
                                        spec.get_external_id_hash()), "register")  # fmt: skip
    (event,) = suite.registry.events(receipt, "NodeRegistered")
    assert event["operator"] == operator.address and event["attestor"] == attestor.address
    assert (event["shares"], event["region"], event["price_per_1k"]) == (7 * SHARES, "Lima", 5)
    assert event["external_id"] == "0x" + spec.get_external_id_hash().hex()
    assert suite.router.events(receipt, "UsageSettled") == []


def test_reader__names_a_call_that_reverts(suite: Suite) -> None:
    with pytest.raises(CallFailed, match=r"NodeRegistry\.node\(99\) failed: .*unknown node"):
        suite.registry.call("node", 99)


@contextmanager
def _count_http() -> Iterator[list[int]]:
    """How many HTTP requests (of any client) go out inside the block."""
    counted = [0]
    original = requests.Session.post

    def post(self: requests.Session, *args: Any, **kwargs: Any) -> Any:
        counted[0] += 1
        return original(self, *args, **kwargs)

    requests.Session.post = post  # type: ignore[method-assign]
    try:
        yield counted
    finally:
        requests.Session.post = original  # type: ignore[method-assign]


def test_reads__many_nodes_cost_a_few_requests_not_a_few_per_node(
    suite: Suite, register: Callable[..., tuple[int, Any]], operator: Any, investor: Any
) -> None:
    ids = [register(external_id=f"n-{i}")[0] for i in range(25)]
    tx = Transactor(web3, Signer(address=operator.address))
    for node_id in ids[::5]:
        send_transfer_shares(tx, suite, node_id, investor.address, SHARES)
    fresh = Suite.load(web3, suite.manifest)  # nothing cached
    with _count_http() as requests_sent:
        records = fresh.fetch_nodes()
    assert [r.node_id for r in records] == list(range(1, len(records) + 1))
    assert requests_sent[0] <= 3  # the count, then the records in one batch
    with _count_http() as requests_sent:
        held = fetch_portfolio(fresh, investor.address)
    assert {h.node_id for h in held} == set(ids[::5])
    assert all(h.shares == SHARES for h in held)
    assert requests_sent[0] <= 3  # the count, then every read in one or two batches


def test_reader__gathers_lists_of_reads_in_one_request_each_with_its_results(
    suite: Suite, register: Callable[..., tuple[int, Any]]
) -> None:
    node_id, _ = register(external_id="gathered")
    share = suite.share(node_id)
    lists = [[suite.registry.read("node_count"), share.read("totalSupply")], [],
             [share.read("name")]]  # fmt: skip
    with _count_http() as requests_sent:
        found = suite.reader.gather(lists)
    assert requests_sent[0] == 1
    assert found == [[suite.registry.call("node_count"), share.call("totalSupply")], [],
                     [share.call("name")]]  # fmt: skip


def test_reads__a_node_view_is_one_request(
    suite: Suite, register: Callable[..., tuple[int, Any]], pay: Payer
) -> None:
    """Vesting, the operator's dues, pending reports and channel revenue of several nodes
    travel together, and each node gets its own."""
    ids = [register(external_id=f"view-{i}")[0] for i in range(3)]
    price = suite.fetch_nodes(ids[:1])[0].price_per_1k
    pay(ids[0], 10 * price, vest=False)  # finalized, still vesting
    pay.settle(ids[1], 5 * price)  # pending
    clock = fetch_clock(suite)
    records = suite.fetch_nodes(ids)
    with _count_http() as requests_sent:
        views = fetch_node_views(suite, clock, ids, records)
    epochs = [clock.current_epoch - r.registered_epoch + 1 for r in records]
    reads = 3 * len(ids) + sum(epochs) + sum(min(e, CHANNEL_EPOCHS_SHOWN) for e in epochs)
    assert requests_sent[0] == -(-reads // BATCH_CALLS)  # all in one set of batches
    registered = [(r.node_id, r.registered_epoch) for r in records]
    channel = fetch_channel_revenue(suite, clock, registered)
    for view, record in zip(views, records, strict=True):
        share = suite.share_at(record.share_token)
        assert view.node_id == record.node_id
        assert view.unvested == share.call("unvested")
        assert view.vesting_ends_at == share.call("vesting_ends_at")
        assert view.operator_owed == suite.router.call("owed", record.operator)
        assert view.channel_revenue == channel[record.node_id]
        assert view.pending == fetch_pending(
            suite, clock, [(record.node_id, record.registered_epoch)]
        )
    assert views[0].unvested > 0 and views[0].operator_owed > 0
    assert [len(v.pending) for v in views] == [0, 1, 0]
    assert views[1].pending[0].revenue == 5 * price


def test_source__no_selector_or_layout_is_typed_out_by_hand() -> None:
    """Selectors and struct layouts come from the ABI through edgeshare.contracts only."""
    signature = re.compile(r"keccak\(text=f?[\"'][a-z_A-Z]+\(")
    positional = re.compile(r"\"\((address|uint256),(address|uint256)")
    found = []
    for path in SRC.rglob("*.py"):
        if path.name == "contracts.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if signature.search(line) or positional.search(line) or "functions." in line:
                found.append(f"{path.name}:{number}: {line.strip()}")
    assert found == []


def test_source__no_module_but_config_reads_the_environment() -> None:
    reads = re.compile(r"os\.environ\.get|os\.getenv|os\.environ\[")
    found = [
        f"{path.name}:{n}"
        for path in SRC.rglob("*.py")
        if path.name != "config.py"
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if reads.search(line)
    ]
    assert found == []
