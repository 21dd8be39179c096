"""What the wheel promises: the library and the CLI run without brownie, Vyper, pytest
or hypothesis, and pyproject's runtime dependencies are exactly what they import."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from edgeshare.chain import get_network_url
from edgeshare.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "edgeshare"
DEV_ONLY = ("brownie", "vyper", "pytest", "hypothesis", "solcx", "vvm")
BROWNIE_ONLY = {"brownie_support"}  # needs brownie, by design
# the dev-only modules are made unimportable the standard way: None in sys.modules makes
# `import x` raise ModuleNotFoundError and importlib.util.find_spec("x") return None, as
# when x is not installed
BLOCKER = f"""
import sys
DEV_ONLY = {DEV_ONLY!r}
early = sorted(m for m in sys.modules if m.split(".")[0] in DEV_ONLY)
assert not early, f"imported before the blocker: {{early}}"
for name in DEV_ONLY:
    sys.modules[name] = None
"""


def run_blocked(code: str, home: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter of this venv with the dev-only modules blocked."""
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + code],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), "COLUMNS": "120"},
        cwd=home,
        timeout=300,
        check=False,
    )


def test_cli_and_library__import_and_run_help_without_dev_tools(tmp_path: Path) -> None:
    code = """
import importlib, json, pkgutil, typer
import edgeshare, edgeshare.cli
from edgeshare.cli import app, main
modules = sorted(m.name for m in pkgutil.walk_packages(edgeshare.__path__, "edgeshare."))
for name in modules:
    if name != "edgeshare.brownie_support":
        importlib.import_module(name)
def paths(command, prefix):
    yield prefix
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from paths(sub, [*prefix, name])
helped = []
for path in paths(typer.main.get_command(app), []):
    sys.argv = ["edgeshare", *path, "--help"]
    try:
        main()
    except SystemExit as exc:
        assert not exc.code, (path, exc.code)
    helped.append(" ".join(path))
loaded = sorted(m for m, mod in sys.modules.items() if m.split(".")[0] in DEV_ONLY and mod)
print("RESULT " + json.dumps({"modules": modules, "helped": helped, "loaded": loaded}))
"""
    result = run_blocked(code, tmp_path)
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line.removeprefix("RESULT "))
    assert out["loaded"] == []
    assert {"edgeshare.cli.deploy", "edgeshare.deploy", "edgeshare.poster"} <= set(out["modules"])
    assert {"", "deploy", "attest sign", "attest post", "claim", "nodes register"} <= set(
        out["helped"]
    )


def test_network_name__without_brownie__says_how_to_get_its_config(tmp_path: Path) -> None:
    code = """
from edgeshare.cli import main
sys.argv = ["edgeshare", "deploy", "--network", "sepolia", "--dry-run"]
main()
"""
    result = run_blocked(code, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "--rpc-url" in result.stderr and "edgeshare[brownie]" in result.stderr
    assert "Traceback" not in result.stderr


def test_brownie_support__without_brownie__fails_to_import_with_the_extra_named(
    tmp_path: Path,
) -> None:
    result = run_blocked("import edgeshare.brownie_support", tmp_path)
    assert result.returncode == 1
    assert "ImportError" in result.stderr and "edgeshare[brownie]" in result.stderr


def test_get_network_url__without_a_brownie_home__reads_brownies_bundled_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Path, "home", lambda: tmp_path)
    monkeypatch.setenv("WEB3_INFURA_PROJECT_ID", "abc123")
    assert get_network_url("sepolia") == "https://sepolia.infura.io/v3/abc123"
    with pytest.raises(InputError, match="unknown network 'nope'"):
        get_network_url("nope")


def test_get_network_url__reads_the_users_brownie_config_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Path, "home", lambda: tmp_path)
    (tmp_path / ".brownie").mkdir()
    (tmp_path / ".brownie" / "network-config.yaml").write_text(
        "live:\n  - name: Mine\n    networks:\n      - id: mine\n        host: http://10.0.0.1:8545\n"
    )
    assert get_network_url("mine") == "http://10.0.0.1:8545"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level third-party modules imported by the runtime modules -> files importing them."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.stem in BROWNIE_ONLY:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("edgeshare", "__future__"):
                    found.setdefault(top, set()).add(path.relative_to(PACKAGE).as_posix())
    return found


def test_runtime_dependencies__are_what_the_code_imports() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        _normalize(re.split(r"[\s\[<>=!~;]", d, maxsplit=1)[0]) for d in project["dependencies"]
    }
    providers = importlib.metadata.packages_distributions()
    imports = _third_party_imports()
    # Vyper only in _build_artifacts (make artifacts), imported inside its functions
    # imported only where used: Vyper by `make artifacts`, httpx2 (the `openai` extra's
    # HTTP client) by the client's openai_http_client
    lazy_dev = {"vyper": {"_build_artifacts.py"}, "httpx2": {"client.py"}}
    needed: dict[str, str] = {}
    for top, files in imports.items():
        if lazy_dev.get(top) == files:
            continue
        dists = {_normalize(d) for d in providers.get(top, [])}
        assert dists, f"{top} (imported by {sorted(files)}) comes from no installed distribution"
        assert dists & declared, (
            f"{top} ({sorted(dists)}) is imported by {sorted(files)} but not a dependency"
        )
        needed[top] = sorted(dists & declared)[0]
    unused = declared - set(needed.values())
    assert not unused, f"dependencies nothing imports: {sorted(unused)}"
    dev_tools = ("eth-brownie", "vyper", "pytest", "hypothesis", "py-solc-x")
    assert not declared & {_normalize(d) for d in dev_tools}
    assert project["optional-dependencies"]["brownie"] == ["eth-brownie==1.22.2"]
    assert project["optional-dependencies"]["postgres"] == ["psycopg[binary]==3.3.9"]


def test_runtime_dependencies__include_the_locked_versions() -> None:
    """`make install` pins requirements.lock; each runtime range must admit its pin."""
    from packaging.requirements import Requirement

    lock = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        name, _, version = line.strip().partition("==")
        if version:
            lock[_normalize(name)] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"]:
        req = Requirement(dep)
        pinned = lock.get(_normalize(req.name))
        assert pinned is not None, f"{req.name} is not in requirements.lock"
        assert req.specifier.contains(pinned), f"{dep} excludes the locked {pinned}"
