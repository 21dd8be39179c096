"""Deploy (or finish deploying) the EdgeShare suite on brownie's active network.

    brownie run scripts/deploy.py                       # development anvil
    brownie run scripts/deploy.py main deployments/x.json 0xStablecoin --network sepolia

The same library function as ``edgeshare deploy``; see that command for the options.
"""

from __future__ import annotations

from pathlib import Path

from edgeshare.brownie_support import get_signer, get_web3
from edgeshare.deploy import build_params, deploy_suite, get_default_manifest_path, read_manifest
from edgeshare.models import Manifest
from edgeshare.tx import Transactor


def main(manifest: str = "", stablecoin: str = "") -> Manifest:
    """Deploy what the manifest lacks; returns the manifest."""
    tx = Transactor(get_web3(), get_signer())
    path = Path(manifest) if manifest else get_default_manifest_path(tx.chain_id)
    params = build_params(read_manifest(path), stablecoin=stablecoin or None)
    result = deploy_suite(tx, params, path)
    for step in result.steps:
        print(f"{step.action:>10}  {step.contract:<24} {step.address or ''}")
    print(f"manifest: {path}")
    return result.manifest
