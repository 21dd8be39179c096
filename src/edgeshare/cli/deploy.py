"""``edgeshare deploy``: deploy the suite, or finish a deployment from its manifest."""

from __future__ import annotations

import tempfile
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
    build_target,
    load_signer,
    open_chain,
)
from edgeshare.deploy import (
    DeployStep,
    build_params,
    deploy_suite,
    get_default_manifest_path,
    read_manifest,
)
from edgeshare.tx import Transactor


def deploy(
    rpc_url: RpcUrl = None,
    network: Network = None,
    private_key_env: PrivateKeyEnv = None,
    keystore: Keystore = None,
    stablecoin: Annotated[
        str | None,
        typer.Option(help="Existing stablecoin address; default: deploy a mock (local only)."),
    ] = None,
    epoch_length: Annotated[
        int | None, typer.Option(help="Seconds per epoch (default 86400).")
    ] = None,
    challenge_period: Annotated[
        int | None,
        typer.Option(
            help="Seconds settled revenue can be disputed, at least 3600 (default 86400)."
        ),
    ] = None,
    unlock_period: Annotated[
        int | None,
        typer.Option(help="Seconds new revenue vests over, at least one epoch (default 86400)."),
    ] = None,
    evm_version: Annotated[
        str | None,
        typer.Option(
            help="Build for cancun or shanghai (default: shanghai on Ganache, else cancun)."
        ),
    ] = None,
    protocol_fee_bps: Annotated[
        int | None, typer.Option(help="Protocol fee, basis points of gross (default 500).")
    ] = None,
    market_fee_bps: Annotated[
        int | None,
        typer.Option(
            help="Share market fee, bps of a fill's stablecoin leg, max 100 (default 10)."
        ),
    ] = None,
    offering_fee_bps: Annotated[
        int | None,
        typer.Option(
            help="Offering fee, bps of a successful offering's proceeds, max 1000 (default 100)."
        ),
    ] = None,
    treasury: Annotated[
        str | None, typer.Option(help="Where protocol fees accrue (default: the deployer).")
    ] = None,
    manifest: ManifestPath = None,
    dry_run: Annotated[
        bool, typer.Option(help="Show what would be deployed; send nothing.")
    ] = False,
    confirmations: Confirmations = 1,
    json_output: Json = False,
) -> None:
    """Deploy the EdgeShare suite, or finish one from its manifest (idempotent)."""
    target = build_target(rpc_url, network)
    signer = load_signer(private_key_env, keystore, target)
    fee_ceiling = target.settings.max_fee_per_gas
    overrides = {
        "stablecoin": stablecoin,
        "epoch_length": epoch_length,
        "challenge_period": challenge_period,
        "unlock_period": unlock_period,
        "protocol_fee_bps": protocol_fee_bps,
        "market_fee_bps": market_fee_bps,
        "offering_fee_bps": offering_fee_bps,
        "treasury": treasury,
        "evm_version": evm_version,
    }
    if manifest is not None:
        build_params(read_manifest(manifest), **overrides)  # bad input fails before any chain
    else:
        build_params(None, **overrides)
    throwaway = tempfile.TemporaryDirectory(prefix="edgeshare-deploy-")
    with throwaway as scratch, open_chain(target) as w3:
        tx = Transactor(w3, signer, confirmations, max_fee_per_gas=fee_ceiling)
        path: Path = manifest or get_default_manifest_path(tx.chain_id)
        if target.is_started_here and manifest is None:
            # the chain stops with this command: a manifest in deployments/ would name
            # contracts that no longer exist, and the next command would trip on it
            path = Path(scratch) / path.name
        params = build_params(read_manifest(path), **overrides)

        def show(step: DeployStep) -> None:
            if not json_output:
                console.note(f"{step.action:>12}  {step.contract}  {step.address or ''}")

        result = deploy_suite(tx, params, path, dry_run=dry_run, on_step=show)
    data = result.manifest.model_dump(mode="json")
    kept = not (target.is_started_here and manifest is None)
    if json_output:
        console.print_json(
            {
                "manifest": data,
                "path": str(result.path) if kept else None,
                "dry_run": dry_run,
                "steps": [step.__dict__ for step in result.steps],
            }
        )
        return
    rows = [
        [step.contract, step.action, step.address or "-", step.gas_used or "-"]
        for step in result.steps
    ]
    title = f"EdgeShare on chain {data['chain_id']}" + (" (dry run)" if dry_run else "")
    console.print_table(title, ["contract", "action", "address", "gas used"], rows)
    if dry_run:
        console.note("dry run: nothing was sent and no manifest was written")
    elif not kept:
        console.warn(
            "this command started its own chain and has stopped it: the suite is gone, and "
            "no manifest was written. To keep a suite, start a chain (`anvil`) and pass "
            "--rpc-url, or run `edgeshare demo` for the whole story"
        )
    else:
        console.note(
            f"manifest: {result.path}  deployer (owner, registrar, guardian): {signer.address}"
        )
        if target.is_started_here:
            console.warn(
                f"the local chain this command started has been stopped: {result.path} names "
                "contracts that no longer exist"
            )
