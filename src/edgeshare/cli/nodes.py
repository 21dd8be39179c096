"""``edgeshare nodes register`` and ``edgeshare nodes list``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgeshare.cli import console
from edgeshare.cli.common import (
    Confirmations,
    DryRun,
    Json,
    Keystore,
    ManifestPath,
    Network,
    PrivateKeyEnv,
    RpcUrl,
    open_sender,
    open_suite,
)
from edgeshare.metadata import build_document
from edgeshare.nodes import Registration, read_nodes_file, register_nodes
from edgeshare.units import SHARE_DECIMALS, Token, format_bps, format_price, format_units

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
    dry_run: DryRun = False,
    json_output: Json = False,
) -> None:
    """Register every node of the list not registered yet (idempotent, by external id);
    for those registered, show how their terms differ from the file."""
    nodes = read_nodes_file(nodes_file)  # a file that is not a node list stops here
    for note in nodes.get_address_notes():
        console.note(note)
    with (
        open_sender(
            rpc_url, network, private_key_env, keystore, manifest, confirmations, dry_run=dry_run
        ) as (suite, tx),
        console.progress(disabled=json_output) as progress,
    ):
        done = register_nodes(tx, suite, nodes, progress)  # checks all of it, then sends
        token = suite.fetch_stablecoin_token()
        planned = list(tx.planned)
    if json_output:
        rows = [build_registration_json(r, token) for r in done]
        if dry_run:
            transactions = [
                {"what": p.what, "to": p.to, "data": p.data, "value": str(p.value), "gas": p.gas}
                for p in planned
            ]
            console.print_json(
                {"dry_run": True, "sent": 0, "nodes": rows, "transactions": transactions}
            )
        else:
            console.print_json(rows)
        return
    if dry_run:
        _print_dry_run(done, token)
    else:
        console.print_table(
            "Nodes",
            ["node", "external id", "operator", "action"],
            [[r.node_id, r.external_id, r.operator, _action(r)] for r in done],
        )
    _print_differences(done)
    for r in done:
        entry = r.entry
        if entry and entry.metadata_file and not entry.metadata_uri.startswith("file:"):
            verb = "would write" if dry_run else "wrote"
            console.note(
                f"{r.external_id}: {verb} {entry.metadata_file}; publish it unchanged at "
                f"{entry.metadata_uri.partition('#')[0]} (its hash is registered)"
            )


def _action(r: Registration) -> str:
    return f"{r.action}, terms differ" if r.differences else r.action


def _print_dry_run(done: list[Registration], token: Token) -> None:
    """Each registration a dry run simulated, as lines (addresses whole, to be checked)."""
    todo = [r for r in done if r.action == "would register" and r.entry is not None]
    console.note(
        f"dry run: nothing was sent; {len(todo)} registration(s) checked and simulated, "
        f"{len(done) - len(todo)} already registered"
    )
    lines = []
    for r in todo:
        e = r.entry
        assert e is not None
        gas = "" if r.gas is None else f" (simulated: gas limit {r.gas:,})"
        lines += [
            f"would register {r.external_id}{gas}",
            f"  operator      {e.operator}",
            f"  attestor      {e.attestor}",
            f"  shares        {format_units(e.shares, SHARE_DECIMALS)} shares "
            f"({e.shares} base units)",
            f"  price         {format_price(e.price_per_1k, token)}",
            f"  operator cut  {format_bps(e.operator_cut_bps)} ({e.operator_cut_bps} bps)",
            f"  region        {e.region}",
            f"  metadata URI  {e.metadata_uri or '-'}",
        ]
        if e.metadata is not None:
            lines.append(f"  metadata      {build_document(e.metadata).decode()}")
    for r in done:
        if r.action != "would register":
            same = "terms differ (below)" if r.differences else "same terms"
            lines.append(f"already registered: node {r.node_id} ({r.external_id}), {same}")
    if lines:
        console.print_text("\n".join(lines))


def _print_differences(done: list[Registration]) -> None:
    """How each registered node differs from the file, and the command for each term (as
    plain lines: a command must be copied whole)."""
    differ = [r for r in done if r.differences]
    if not differ:
        return
    lines = []
    for r in differ:
        lines.append(f"node {r.node_id} ({r.external_id}): registered terms differ from the file")
        for d in r.differences:
            lines.append(f"  {d.field}: on chain {d.on_chain}; in the file {d.in_file}")
            if d.command:
                lines.append(f"    change it (as the operator): {d.command}")
            if d.note:
                lines.append(f"    {d.note}")
    console.print_text("\n".join(lines))
    console.note(
        f"{len(differ)} registered node(s) differ from the file: nodes register does not "
        "change a registered node; its operator runs the commands above"
    )


def build_registration_json(r: Registration, token: Token) -> dict[str, Any]:
    """One registration for ``--json``: amounts as exact base units (strings) with decimals."""
    out: dict[str, Any] = {
        "external_id": r.external_id,
        "operator": r.operator,
        "node_id": r.node_id,
        "action": r.action,
        "differences": [
            {"field": d.field, "on_chain": d.on_chain, "in_file": d.in_file,
             "command": d.command, "note": d.note}
            for d in r.differences
        ],
    }  # fmt: skip
    if r.entry is not None:
        out |= {
            "attestor": r.entry.attestor,
            "shares": {"base_units": str(r.entry.shares), "decimals": SHARE_DECIMALS},
            "price_per_1k": {"base_units": str(r.entry.price_per_1k), "decimals": token.decimals},
            "price": format_price(r.entry.price_per_1k, token),
            "operator_cut_bps": r.entry.operator_cut_bps,
            "region": r.entry.region,
            "metadata_uri": r.entry.metadata_uri,
        }
    if r.gas is not None:
        out["gas"] = r.gas
    return out


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
        token = suite.fetch_stablecoin_token() if records and not json_output else None
    if json_output:
        console.print_json([r.model_dump() for r in records])
        return
    if not records:
        console.note("no node is registered yet")
        return
    assert token is not None
    console.print_table(
        "Registered nodes",
        ["node", "region", "status", "price per 1k", "next epoch", "cut", "operator",
         "share token"],
        [
            [
                r.node_id,
                r.region,
                r.status,
                token.format(r.price_per_1k),
                "same" if r.next_price_per_1k == r.price_per_1k
                else token.format(r.next_price_per_1k),
                format_bps(r.operator_cut_bps),
                r.operator,
                r.share_token,
            ]
            for r in records
        ],
    )  # fmt: skip
