"""The brownie scripts act through the library on brownie's active network."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from brownie import web3

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_deploy_script__deploys_then_reuses(tmp_path: Path, deployer: Any) -> None:
    deploy = load_script("deploy")
    path = tmp_path / "manifest.json"
    manifest = deploy.main(str(path))
    assert manifest.is_complete() and manifest.deployer == deployer.address
    assert manifest.chain_id == web3.eth.chain_id
    nonce = web3.eth.get_transaction_count(deployer.address)
    assert deploy.main(str(path)) == manifest
    assert web3.eth.get_transaction_count(deployer.address) == nonce
