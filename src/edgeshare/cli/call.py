"""`edgeshare call`: pick a node, pay it through a channel and call it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgeshare.cli import console
from edgeshare.cli.common import (
    BaseUnits,
    Confirmations,
    DbUrl,
    Json,
    Keystore,
    ManifestPath,
    Network,
    PrivateKeyEnv,
    RpcUrl,
    build_target,
    get_index_depth,
    load_signer,
    load_suite,
    open_chain,
)
from edgeshare.errors import InputError, raise_problems
from edgeshare.indexer import open_db, sync_index
from edgeshare.metadata import NodeMetadata
from edgeshare.models import parse_address, read_json_problems
from edgeshare.tx import Transactor
from edgeshare.units import amount_json

if TYPE_CHECKING:  # loaded when the command runs (`edgeshare --help` stays quick)
    from edgeshare import client as lib

MAX_PROMPT_CHARS = 1_000_000


def call(
    region: Annotated[
        str | None, typer.Option(help="The region the node must be in.", show_default=False)
    ] = None,
    max_latency_ms: Annotated[
        int | None,
        typer.Option(
            "--max-latency-ms", help="The highest attested p50 latency, ms.", show_default=False
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="The model to ask (and that the node must list; default: its first).",
            show_default=False,
        ),
    ] = None,
    prompt: Annotated[
        str | None, typer.Option(help="What to ask (one user message).", show_default=False)
    ] = None,
    messages: Annotated[
        Path | None,
        typer.Option(
            help='A JSON file with the messages array: [{"role": "user", "content": "..."}].',
            show_default=False,
        ),
    ] = None,
    node: Annotated[
        int | None,
        typer.Option(help="Call this node instead of picking one.", show_default=False),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            help="With --node: its base URL (default: from its metadata), e.g. https://host/v1.",
            show_default=False,
        ),
    ] = None,
    deposit: Annotated[
        str | None,
        typer.Option(
            help="When the channel cannot pay for the call (or there is none), deposit this "
            "much, in whole units (5 or 5.5).",
            show_default=False,
        ),
    ] = None,
    customer: Annotated[
        str | None,
        typer.Option(
            help="Whose channel, when the key is an app key the customer authorised.",
            show_default=False,
        ),
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="The most tokens to generate.", show_default=False)
    ] = None,
    stream: Annotated[
        bool, typer.Option("--stream", help="Print the answer as it is generated.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the node.")] = 60.0,
    client_db: Annotated[
        Path | None,
        typer.Option(
            help="The client's own database: what it signed, latencies it saw "
            "(default: $EDGESHARE_CLIENT_DB, else ~/.edgeshare/client.db).",
            show_default=False,
        ),
    ] = None,
    base_units: BaseUnits = False,
    private_key_env: PrivateKeyEnv = None,
    keystore: Keystore = None,
    rpc_url: RpcUrl = None,
    network: Network = None,
    manifest: ManifestPath = None,
    db: DbUrl = None,
    confirmations: Confirmations = 1,
    json_output: Json = False,
) -> None:
    """Pick the cheapest node in a region that meets a latency bound, pay it through your
    channel and ask it a chat completion; prints the answer, the node, the price paid and
    the latency. Nothing is sent (no deposit, no request) when an input is wrong."""
    from edgeshare import client as lib

    chat, problems = _read_messages(prompt, messages)
    problems += _check_inputs(
        region, max_latency_ms, node, endpoint, deposit, customer, max_tokens, timeout
    )
    raise_problems(problems)
    target = build_target(rpc_url, network, start_local=False)
    signer = load_signer(private_key_env, keystore, target)
    who = parse_address(customer, "--customer") if customer else signer.address
    with open_chain(target) as w3:
        suite = load_suite(w3, manifest)
        coin = suite.fetch_stablecoin_token()
        top_up = (
            None if deposit is None else coin.parse(deposit, "--deposit", base_units=base_units)
        )
        if top_up is not None and top_up <= 0:
            raise InputError("--deposit must be more than 0")
        meta: NodeMetadata | None = None
        if node is None:
            assert region is not None and max_latency_ms is not None  # checked above
            url, _ = sync_index(suite, db, confirmations=get_index_depth(network))
            with open_db(url) as conn:
                row = lib.pick_node(conn, suite, region, max_latency_ms, model)
            node, meta = row.node_id, row.metadata
            assert meta is not None and meta.endpoint is not None  # pick_node checked it
            endpoint = meta.endpoint
        else:
            meta = _node_metadata(suite, node, endpoint)
            endpoint = endpoint or lib.fetch_node_endpoint(suite, node)
        model = _choose_model(node, model, meta)
        payer = lib.Payer(suite, signer, node, customer=who, store=client_db, endpoint=endpoint)
        with payer:
            need = payer.get_next_amount() - payer.signed
            funded = None
            if payer.left < need:  # a free node (price 0) needs no channel
                if top_up is None:
                    raise InputError(
                        f"your channel to node {node} has {coin.format(payer.left)} left; the call "
                        f"costs {coin.format(need)}: pass --deposit AMOUNT to top it up"
                    )
                if customer:
                    raise InputError("an app key cannot deposit: the customer tops up the channel")
                tx = Transactor(
                    w3, signer, confirmations, max_fee_per_gas=target.settings.max_fee_per_gas
                )
                funded = payer.ensure_funded(tx, max(need, 1), top_up)
                if funded is not None and not json_output:
                    console.note(
                        f"deposited {coin.format(top_up)} into your channel to node {node}"
                    )
            streamed = stream and not json_output
            result = lib.send_chat(
                payer, chat, model, max_tokens=max_tokens, stream=stream, timeout=timeout,
                on_delta=_write_delta if streamed else None,
            )  # fmt: skip
    if json_output:
        console.print_json(_result_json(result, funded, top_up, coin.decimals))
        return
    if streamed:
        sys.stdout.write("\n")
        sys.stdout.flush()
    else:
        console.print_text(result.answer)
    resynced = " after a resync with the gateway" if result.resynced else ""
    console.note(
        f"node {result.node_id} ({result.model}) answered in {result.latency_ms} ms; paid "
        f"{coin.format(result.paid)}{resynced} ({coin.format(result.cumulative)} so far on "
        f"this channel, {coin.format(result.left)} left)"
    )


def _write_delta(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _read_messages(
    prompt: str | None, path: Path | None
) -> tuple[list[lib.ChatMessage], list[str]]:
    from edgeshare import client as lib

    if (prompt is None) == (path is None):
        return [], ["give --prompt TEXT or --messages FILE (one of them)"]
    if prompt is not None:
        if not prompt.strip():
            return [], ["--prompt is empty"]
        if len(prompt) > MAX_PROMPT_CHARS:
            return [], [f"--prompt is longer than {MAX_PROMPT_CHARS:,} characters"]
        return [lib.ChatMessage(role="user", content=prompt)], []
    assert path is not None
    try:
        parsed, problems = read_json_problems(path, lib.ChatMessages)
    except InputError as exc:  # unreadable: named by read_text_file
        return [], [f"--messages: {exc}"]
    return (parsed.root if parsed else []), [f"--messages {p}" for p in problems]


def _check_inputs(
    region: str | None,
    max_latency_ms: int | None,
    node: int | None,
    endpoint: str | None,
    deposit: str | None,
    customer: str | None,
    max_tokens: int | None,
    timeout: float,
) -> list[str]:
    problems = []
    if node is None and (region is None or max_latency_ms is None):
        problems.append("give --region and --max-latency-ms to pick a node, or --node N")
    if node is not None and node < 1:
        problems.append(f"--node must be 1 or more, got {node}")
    if node is not None and (region is not None or max_latency_ms is not None):
        problems.append("--node calls that node: --region and --max-latency-ms pick one; not both")
    if max_latency_ms is not None and max_latency_ms < 0:
        problems.append(f"--max-latency-ms must not be negative, got {max_latency_ms}")
    if endpoint is not None:
        if node is None:
            problems.append("--endpoint goes with --node (a picked node's comes from its metadata)")
        try:
            NodeMetadata(endpoint=endpoint)
        except ValueError as exc:
            problems.append(f"--endpoint: {_first_error(exc)}")
    if deposit is not None and customer is not None:
        problems.append("--deposit with --customer: an app key cannot deposit for the customer")
    if max_tokens is not None and max_tokens < 1:
        problems.append(f"--max-tokens must be 1 or more, got {max_tokens}")
    if not 0 < timeout <= 3_600:
        problems.append(f"--timeout must be above 0 and at most 3600 seconds, got {timeout}")
    return problems


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        found = errors()
        if found:
            return str(found[0]["msg"]).removeprefix("Value error, ")
    return str(exc)


def _node_metadata(suite: Any, node: int, endpoint: str | None) -> NodeMetadata | None:
    """The node's metadata when it can be read here (None with an --endpoint given)."""
    if endpoint is not None:
        return None
    from edgeshare.chain import is_local_chain_id
    from edgeshare.metadata import MetadataError, fetch_metadata

    uri = suite.fetch_node(node).metadata_uri
    try:
        return fetch_metadata(uri, allow_files=is_local_chain_id(suite.manifest.chain_id))
    except MetadataError:
        return None  # fetch_node_endpoint names the problem


def _choose_model(node: int, model: str | None, meta: NodeMetadata | None) -> str:
    listed = meta.models if meta else None
    if model is None:
        if not listed:
            raise InputError(f"node {node} lists no models: pass --model NAME")
        return listed[0]
    if listed and model not in listed:
        raise InputError(f"node {node} does not serve {model}; it serves {', '.join(listed)}")
    return model


def _result_json(
    result: lib.ChatResult, funded: Any, top_up: int | None, decimals: int
) -> dict[str, Any]:
    return {
        "node_id": result.node_id,
        "endpoint": result.endpoint,
        "model": result.model,
        "answer": result.answer,
        "finish_reason": result.finish_reason,
        "usage": result.usage,
        "paid": amount_json(result.paid, decimals),
        "cumulative": amount_json(result.cumulative, decimals),
        "left": amount_json(result.left, decimals),
        "latency_ms": result.latency_ms,
        "resynced": result.resynced,
        "deposited": amount_json(top_up, decimals) if funded is not None and top_up else None,
        "deposit_transaction": funded.transaction if funded is not None else None,
    }
