"""The brownie 1.22.2 / Vyper 0.4 shim (src/edgeshare/_brownie_vyper04.py).

Import brownie's submodules through ``brownie`` here: brownie's test runner reads the
source of each top-level import that lives in the project folder (``.venv`` does), and
``brownie.project`` is a compiled extension it cannot read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import brownie
from vyper.cli import vyper_json

from edgeshare import _brownie_vyper04 as shim

SOURCE = """# pragma version 0.4.3
@external
@view
def answer() -> uint256:
    return 42
"""


def _raw_compile() -> dict[str, Any]:
    original = vyper_json.compile_json.__wrapped__  # the unwrapped upstream function
    return original(
        {
            "language": "Vyper",
            "sources": {"contracts/A.vy": {"content": SOURCE}},
            "settings": {"outputSelection": {"*": ["evm.deployedBytecode"]}},
        }
    )


def test_upstream_vyper__still_returns_a_source_map_object() -> None:
    """When this fails, Vyper returns a string again and the shim can be removed."""
    source_map = _raw_compile()["contracts"]["contracts/A.vy"]["A"]["evm"]["deployedBytecode"][
        "sourceMap"
    ]
    assert isinstance(source_map, dict)
    assert isinstance(source_map["pc_pos_map_compressed"], str)


def test_fix_output__replaces_the_object_with_its_compressed_string() -> None:
    out = _raw_compile()
    expected = out["contracts"]["contracts/A.vy"]["A"]["evm"]["deployedBytecode"]["sourceMap"][
        "pc_pos_map_compressed"
    ]
    fixed = shim.fix_output(out)
    assert (
        fixed["contracts"]["contracts/A.vy"]["A"]["evm"]["deployedBytecode"]["sourceMap"]
        == expected
    )


def test_hook__is_active_in_this_interpreter() -> None:
    assert getattr(vyper_json.compile_json, "__edgeshare_wrapped__", False)


def test_brownie_compile_source__compiles_vyper_04() -> None:
    container = brownie.project.compile_source(SOURCE, vyper_version="0.4.3")
    assert container.Vyper.abi[0]["name"] == "answer"


def test_add_imports__supplies_interfaces_and_modules_brownie_left_out(tmp_path: Path) -> None:
    (tmp_path / "contracts" / "interfaces").mkdir(parents=True)
    (tmp_path / "contracts" / "modules").mkdir()
    (tmp_path / "contracts" / "interfaces" / "IThing.vyi").write_text("@external\ndef f(): ...\n")
    (tmp_path / "contracts" / "modules" / "helper.vy").write_text(SOURCE)
    (tmp_path / "contracts" / "A.vy").write_text(SOURCE)
    input_json: dict[str, Any] = {"sources": {"contracts/A.vy": {"content": SOURCE}}}
    shim.add_imports(input_json, root=tmp_path)
    assert sorted(input_json["interfaces"]) == [
        "contracts/interfaces/IThing.vyi",
        "contracts/modules/helper.vy",
    ]


def test_incremental_compile__of_a_contract_importing_a_module(tmp_path: Path) -> None:
    """brownie recompiles only what changed; the module it imports must still resolve."""
    (tmp_path / "contracts" / "modules").mkdir(parents=True)
    helper = """# pragma version 0.4.3
@internal
@pure
def _double(x: uint256) -> uint256:
    return 2 * x
"""
    main = """# pragma version 0.4.3
from .modules import helper
@external
@pure
def f(x: uint256) -> uint256:
    return helper._double(x)
"""
    (tmp_path / "contracts" / "modules" / "helper.vy").write_text(helper)
    input_json = {
        "language": "Vyper",
        "sources": {"contracts/Main.vy": {"content": main}},
        "settings": {"outputSelection": {"*": ["abi"]}},
    }
    out = vyper_json.compile_json(shim.add_imports(input_json, root=tmp_path))
    assert out["contracts"]["contracts/Main.vy"]["Main"]["abi"][0]["name"] == "f"


def test_project_build__has_every_suite_contract() -> None:
    build = Path(__file__).resolve().parents[2] / "build" / "contracts"
    for name in ("NodeRegistry", "NodeShare", "RevenueRouter", "MockStablecoin"):
        data = json.loads((build / f"{name}.json").read_text())
        assert data["bytecode"] and isinstance(data["deployedSourceMap"], str)
