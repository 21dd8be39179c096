"""`edgeshare gateway`: the paid OpenAI-compatible proxy in front of a node's server."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from pydantic import ValidationError

from edgeshare.cli import console
from edgeshare.cli.common import ManifestPath, Network, RpcUrl, get_option_error, open_suite
from edgeshare.config import read_secret_env
from edgeshare.errors import InputError

_OPTIONS = {"node_id": "--node", "db_path": "--db", "read_timeout": "--upstream-timeout"}


def gateway(
    node: Annotated[int, typer.Option("--node", min=1, help="The node the gateway is paid for.")],
    upstream: Annotated[
        str,
        typer.Option(
            "--upstream",
            help="The inference server's base URL, e.g. http://127.0.0.1:8000 (vLLM, TGI, "
            "Ollama, ...).",
        ),
    ],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65_535, help="Port to listen on (0: any free).")
    ] = 8080,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            help="The voucher store (SQLite; the agent redeems from it). Default: "
            "gateway-<node>.db here.",
            show_default=False,
        ),
    ] = None,
    max_body: Annotated[
        int, typer.Option("--max-body", min=1, help="Largest request body in bytes (then 413).")
    ] = 1_048_576,
    upstream_timeout: Annotated[
        float,
        typer.Option(
            "--upstream-timeout",
            min=0.001,
            help="Seconds the upstream may stay silent before its reply or between stream "
            "chunks (then 504).",
        ),
    ] = 120.0,
    connect_timeout: Annotated[
        float,
        typer.Option("--connect-timeout", min=0.001, help="Seconds to connect to the upstream."),
    ] = 5.0,
    upstream_key_env: Annotated[
        str | None,
        typer.Option(
            "--upstream-key-env",
            help="Environment variable holding the upstream's API key (sent as its bearer).",
            show_default=False,
        ),
    ] = None,
    refresh_interval: Annotated[
        float,
        typer.Option(
            "--refresh-interval",
            min=0.1,
            help="Seconds between reads of the price and the known channels from the chain.",
        ),
    ] = 30.0,
    min_voucher_life: Annotated[
        int,
        typer.Option(
            "--min-voucher-life",
            min=0,
            help="Seconds a voucher must stay redeemable (the agent redeems on a schedule).",
        ),
    ] = 3_600,
    rpc_url: RpcUrl = None,
    network: Network = None,
    manifest: ManifestPath = None,
) -> None:
    """Serve the paid gateway in front of the node's inference server: each request to
    /v1/chat/completions, /v1/completions or /v1/embeddings must carry a voucher that covers
    the channel's use at the node's on-chain price (else 402 says what is due). Metrics at
    /metrics, health at /healthz. Runs until Ctrl-C or SIGTERM."""
    from edgeshare import gateway as lib  # here: `edgeshare --help` does not load the server

    try:
        config = lib.GatewayConfig(
            node_id=node,
            upstream=upstream,
            db_path=db if db is not None else Path(f"gateway-{node}.db"),
            host=host,
            port=port,
            max_body=max_body,
            connect_timeout=connect_timeout,
            read_timeout=upstream_timeout,
            upstream_key_env=upstream_key_env,
            refresh_interval=refresh_interval,
            min_voucher_life=min_voucher_life,
        )
    except ValidationError as exc:
        raise get_option_error(exc, _OPTIONS) from None
    if upstream_key_env and not (read_secret_env(upstream_key_env) or "").strip():
        raise InputError(f"--upstream-key-env: the variable {upstream_key_env} is not set")
    with open_suite(rpc_url, network, manifest) as suite:
        coin = suite.fetch_stablecoin_token()
        node_record = suite.fetch_node(node)  # NodeNotFound: exit 2

        def listening(url: str) -> None:
            console.out.print(
                f"gateway for node {node} listening on {url} -> {config.upstream} "
                f"(price {coin.format(node_record.price_per_1k)} per 1,000 requests; "
                f"vouchers in {config.db_path})"
            )

        # uvicorn stops gracefully on SIGINT/SIGTERM, then raises the signal again: the
        # command then exits 0 (a stop asked for is not a failure)
        previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            lib.serve_gateway(config, suite, on_listen=listening)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _stopped(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)
