"""``edgeshare nodes register`` and ``edgeshare nodes list``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeshare.cli import console
from edgeshare.cli.common import (
    Confirmations,
    Json,
    Keystore,
    ManifestPath,
    Network,
    PrivateKeyEnv,
    RpcUrl,
    open_sender,
    open_suite,
)
from edgeshare.nodes import read_nodes_file, register_nodes

app = typer.Typer(help="Register and list nodes.", no_args_is_help=True)


@app.command("register")
def register(
    nodes_file: Annotated[Path, typer.Argument(help="NODES.yaml: a 'nodes:' list of entries.")],
    rpc_url: RpcUrl = None,
    network: Network = None,
    private_key_env: PrivateKeyEnv = None,
    keystore: Keystore = None,
    manifest: ManifestPath = None,
    confirmations: Confirmations = 1,
    json_output: Json = False,
) -> None:
    """Register every node of the list not registered yet (idempotent, by external id)."""
    entries = read_nodes_file(nodes_file)  # the whole file is checked before anything else
    with (
        open_sender(rpc_url, network, private_key_env, keystore, manifest, confirmations) as (
            suite,
            tx,
        ),
        console.progress(disabled=json_output) as progress,
    ):
        done = register_nodes(tx, suite, entries, progress)
    if json_output:
        console.print_json([r.__dict__ for r in done])
        return
    console.print_table(
        "Nodes",
        ["node", "external id", "operator", "action"],
        [[r.node_id, r.external_id, r.operator, r.action] for r in done],
    )


@app.command("list")
def list_nodes(
    rpc_url: RpcUrl = None,
    network: Network = None,
    manifest: ManifestPath = None,
    json_output: Json = False,
) -> None:
    """Every registered node with its terms as the registry reports them now."""
    with open_suite(rpc_url, network, manifest) as suite:
        records = suite.fetch_nodes()
    if json_output:
        console.print_json([r.model_dump() for r in records])
        return
    console.print_table(
        "Registered nodes",
        [
            "node",
            "region",
            "status",
            "price/1k",
            "next price/1k",
            "cut bps",
            "operator",
            "share token",
        ],
        [
            [
                r.node_id,
                r.region,
                r.status,
                r.price_per_1k,
                r.next_price_per_1k,
                r.operator_cut_bps,
                r.operator,
                r.share_token,
            ]
            for r in records
        ],
    )
