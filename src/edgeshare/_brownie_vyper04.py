"""Make eth-brownie 1.22.2 compile Vyper 0.4 contracts.

brownie 1.22.2 reads ``evm.deployedBytecode.sourceMap`` from Vyper's JSON output as a
solc-style string. Vyper 0.4 returns an object there whose ``pc_pos_map_compressed``
member is that string, so every compile fails with ``TypeError: str object expected;
got dict`` in ``brownie.project.compiler.vyper._get_unique_build_json``. brownie is
compiled with mypyc, so its own functions cannot be patched; instead we wrap
``vyper.cli.vyper_json.compile_json`` (which brownie calls through the module
attribute) so that its output carries the string.

brownie 1.22.2 also leaves Vyper 0.4 interface files (``*.vyi``) out of the JSON input,
and when it recompiles only the contracts that changed it leaves out the modules they
import (``*.vy``), so such a contract fails with ``ModuleNotFound``. The wrapper adds
every ``.vyi`` and ``.vy`` file found beside the sources it was given and not among
them (``add_imports``); Vyper resolves imports from them without compiling them.

It is activated for every interpreter of the project's virtualenv by a one-line
``.pth`` file that ``make install`` writes (``python -m edgeshare._brownie_vyper04``),
so ``brownie compile``, ``brownie test``, ``brownie run`` and plain ``pytest`` all get
it. Until ``vyper.cli.vyper_json`` is imported the hook costs nothing.

Only ``make install`` writes the ``.pth`` (into the project's .venv, where brownie is
installed); an installed wheel never imports this module, and nothing in it imports
brownie or Vyper, so it is harmless anywhere.

Remove this file and the ``.pth`` line when brownie reads Vyper 0.4's source map
object itself (checked against eth-brownie 1.22.2;
``tests/unit/test_brownie_compat.py`` says when Vyper returns a string again).
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import sys
import sysconfig
from pathlib import Path
from types import ModuleType
from typing import Any

TARGET = "vyper.cli.vyper_json"
PTH_NAME = "edgeshare-brownie-vyper04.pth"


def fix_output(output: dict[str, Any]) -> dict[str, Any]:
    """Replace each Vyper 0.4 source-map object in a compile_json output by its string."""
    for contracts in output.get("contracts", {}).values():
        for contract in contracts.values():
            deployed = contract.get("evm", {}).get("deployedBytecode", {})
            source_map = deployed.get("sourceMap")
            if isinstance(source_map, dict):
                deployed["sourceMap"] = source_map.get("pc_pos_map_compressed", "")
    return output


def add_imports(input_json: dict[str, Any], root: Path | None = None) -> dict[str, Any]:
    """Add each importable file under the sources' top folders that brownie left out."""
    base = Path.cwd() if root is None else root
    sources = input_json.get("sources", {})
    interfaces = input_json.setdefault("interfaces", {})
    stems = {Path(p).stem for p in sources}
    tops = {Path(p).parts[0] for p in sources if len(Path(p).parts) > 1}
    for top in sorted(tops):
        for path in sorted((base / top).rglob("*.vy*")):
            key = path.relative_to(base).as_posix()
            if path.suffix not in (".vy", ".vyi") or key in sources or key in interfaces:
                continue
            if path.stem in stems:  # Vyper forbids two inputs with the same stem
                continue
            interfaces[key] = {"content": path.read_text()}
            stems.add(path.stem)
    return input_json


def _wrap(module: ModuleType) -> None:
    original = module.compile_json
    if getattr(original, "__edgeshare_wrapped__", False):
        return

    @functools.wraps(original)
    def compile_json(input_json: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if isinstance(input_json, dict):
            input_json = add_imports(input_json)
        return fix_output(original(input_json, *args, **kwargs))

    compile_json.__edgeshare_wrapped__ = True  # type: ignore[attr-defined]
    module.compile_json = compile_json  # type: ignore[attr-defined]


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        _wrap(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Any, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _Loader(spec.loader)
                return spec
        return None


def install() -> None:
    """Wrap compile_json now if vyper_json is loaded, else as soon as it is imported."""
    if TARGET in sys.modules:
        _wrap(sys.modules[TARGET])
    elif not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


def write_pth() -> Path:
    """Write the .pth file that activates the fix in this interpreter's site-packages."""
    path = Path(sysconfig.get_paths()["purelib"]) / PTH_NAME
    path.write_text("import edgeshare._brownie_vyper04 as _m; _m.install()\n")
    return path


if __name__ == "__main__":
    print(f"wrote {write_pth()}")
