"""``edgeshare attest sign`` and ``edgeshare attest post``: signed usage reports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
    build_target,
    load_suite,
    open_chain,
    open_sender,
)
from edgeshare.poster import DEFAULT_BATCH, finalize_reports, post_reports
from edgeshare.signer import check_env_name, load_signer_from_env
from edgeshare.suite import fetch_domain_of
from edgeshare.units import format_utc
from edgeshare.usage import (
    build_signed_reports,
    read_reports_file,
    read_usage_csv,
    write_reports_file,
)

app = typer.Typer(help="Sign and post usage reports.", no_args_is_help=True)


@app.command("sign")
def sign_usage(
    usage: Annotated[
        Path,
        typer.Argument(help="Usage CSV: node_id,epoch,inferences,latency_ms,uptime_bps[,revenue]"),
    ],
    attestor_key_env: Annotated[
        str,
        typer.Option("--attestor-key-env", help="Environment variable holding the attestor's key."),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Where to write the signed reports (JSON).")
    ],
    rpc_url: RpcUrl = None,
    network: Network = None,
    manifest: ManifestPath = None,
    valid_for: Annotated[
        int, typer.Option(help="Seconds the signatures stay valid (the reports' deadline).")
    ] = 7 * 86_400,
    json_output: Json = False,
) -> None:
    """Price each row at its epoch's on-chain price and sign it as the node's attestor."""
    check_env_name(attestor_key_env, "--attestor-key-env")  # before anything can echo it
    file_problems: list[str] = []
    rows = read_usage_csv(usage, file_problems)  # reported with the chain's checks below
    key_signer = load_signer_from_env(attestor_key_env, "--attestor-key-env")
    if valid_for < 1:
        raise typer.BadParameter("--valid-for must be at least 1 second")
    target = build_target(rpc_url, network, start_local=False)
    with open_chain(target) as w3:
        suite = load_suite(w3, manifest)
        domain = fetch_domain_of(suite)
        coin = suite.fetch_stablecoin_token()
        now = int(w3.eth.get_block("latest")["timestamp"])
        signed = build_signed_reports(
            suite,
            usage,
            rows,
            key_signer.export_key(),
            domain,
            now + valid_for,
            earlier=file_problems,
        )
    write_reports_file(output, domain, signed)
    revenue = sum(r.revenue for r in signed)
    summary = {
        "reports": len(signed),
        "revenue": str(revenue),
        "decimals": coin.decimals,
        "attestor": key_signer.address,
        "output": str(output),
        "deadline": now + valid_for,
    }
    if json_output:
        console.print_json(summary)
    else:
        console.out.print(
            f"signed {summary['reports']} reports for {coin.format(revenue)} as "
            f"{summary['attestor']} -> {output}"
        )


@app.command("post")
def post(
    reports: Annotated[Path, typer.Argument(help="Signed reports from `edgeshare attest sign`.")],
    rpc_url: RpcUrl = None,
    network: Network = None,
    private_key_env: PrivateKeyEnv = None,
    keystore: Keystore = None,
    manifest: ManifestPath = None,
    batch_size: Annotated[
        int, typer.Option(help="Reports per transaction (1-100).")
    ] = DEFAULT_BATCH,
    confirmations: Confirmations = 1,
    dry_run: DryRun = False,
    json_output: Json = False,
) -> None:
    """Settle every report not yet settled, paying its revenue (safe to run again)."""
    parsed = read_reports_file(reports)
    opened = open_sender(
        rpc_url, network, private_key_env, keystore, manifest, confirmations, dry_run=dry_run
    )
    with (
        opened as (suite, tx),
        console.progress(disabled=json_output) as progress,
    ):
        result = post_reports(
            tx,
            suite,
            parsed.reports,
            parsed.domain,
            batch_size=batch_size,
            on_progress=progress,
        )
        coin = suite.fetch_stablecoin_token()
    if dry_run:
        console.print_planned(tx.planned, json_output)
        return
    data = result.__dict__
    if json_output:
        console.print_json({**data, "revenue": str(result.revenue), "decimals": coin.decimals})
        return
    console.out.print(
        f"settled {result.settled} of {result.total} reports in {len(result.transactions)} "
        f"transaction(s) for {coin.format(result.revenue)}; {result.already_settled} were "
        "settled before"
    )


@app.command("finalize")
def finalize(
    reports: Annotated[Path, typer.Argument(help="Signed reports from `edgeshare attest sign`.")],
    rpc_url: RpcUrl = None,
    network: Network = None,
    private_key_env: PrivateKeyEnv = None,
    keystore: Keystore = None,
    manifest: ManifestPath = None,
    confirmations: Confirmations = 1,
    dry_run: DryRun = False,
    json_output: Json = False,
) -> None:
    """Finalize the file's reports whose challenge window has passed (anyone may; idempotent)."""
    parsed = read_reports_file(reports)
    opened = open_sender(
        rpc_url, network, private_key_env, keystore, manifest, confirmations, dry_run=dry_run
    )
    with opened as (suite, tx):
        keys = [(r.node_id, r.epoch) for r in parsed.reports]
        with console.progress(disabled=json_output) as progress:
            result = finalize_reports(tx, suite, keys, progress)
        coin = suite.fetch_stablecoin_token()
    if dry_run:
        console.print_planned(tx.planned, json_output)
        return
    if json_output:
        console.print_json(
            {**result.__dict__, "gross": str(result.gross), "decimals": coin.decimals}
        )
        return
    due = (
        f" (the next becomes due at {format_utc(result.next_due_at)} chain time)"
        if result.next_due_at
        else ""
    )
    console.out.print(
        f"finalized {result.finalized} reports ({coin.format(result.gross)}) in "
        f"{len(result.transactions)} transaction(s); {result.not_due} not due yet{due}, "
        f"{result.skipped} already finalized, disputed or not settled"
    )
