"""Build the package data of ``edgeshare.artifacts`` from ``contracts/`` (``make artifacts``).

Development only: it needs Vyper (the ``dev`` extra) and a source checkout, and nothing
at run time imports it. ``python -m edgeshare._build_artifacts`` writes
``src/edgeshare/compiled/<evm_version>/<Name>.json`` for every contract in
``artifacts.CONTRACTS`` and every EVM version; ``--check`` writes nothing and exits 1
when the committed files differ from what the sources compile to.

The output is deterministic (stable key order, one trailing newline), so a rebuild from
unchanged sources leaves git clean, and the staleness test can compare text.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from edgeshare.artifacts import (
    ARTIFACT_FIELDS,
    CONTRACTS,
    EVM_VERSIONS,
    PACKAGE_DATA_DIR,
    EvmVersion,
    get_artifact_relpath,
)
from edgeshare.errors import ArtifactError

CHECKOUT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONTRACTS_DIR = CHECKOUT_ROOT / "contracts"
DEFAULT_OUT_DIR = Path(__file__).resolve().parent / PACKAGE_DATA_DIR


def compile_contract(contracts_dir: Path, relpath: str, evm_version: EvmVersion) -> dict[str, str]:
    """Compile one source with Vyper; the outputs named in ``ARTIFACT_FIELDS``.

    Args:
        contracts_dir: The folder imports resolve from (``contracts/``).
        relpath: The source, relative to ``contracts_dir``.
        evm_version: The EVM version to build for.

    Returns:
        Vyper's outputs by format name (the ABI as a list, the codes as 0x-hex).
    """
    from vyper.compiler import compile_from_file_input
    from vyper.compiler.input_bundle import FilesystemInputBundle
    from vyper.compiler.settings import Settings
    from vyper.exceptions import VyperException

    bundle = FilesystemInputBundle([contracts_dir])
    try:
        file_input = bundle.load_file(contracts_dir / relpath)
        out: dict[str, str] = compile_from_file_input(
            file_input,
            input_bundle=bundle,
            settings=Settings(evm_version=evm_version),
            output_formats=list(ARTIFACT_FIELDS),
        )
    except VyperException as exc:
        raise ArtifactError(f"cannot compile {relpath}: {exc}") from exc
    return {key: out[key] for key in ARTIFACT_FIELDS}


def build_artifacts(contracts_dir: Path = DEFAULT_CONTRACTS_DIR) -> dict[str, str]:
    """Compile every shipped contract for every EVM version.

    Returns:
        File text by path relative to the package-data folder.
    """
    import vyper

    files: dict[str, str] = {}
    for evm_version in EVM_VERSIONS:
        for name, relpath in CONTRACTS.items():
            data = {
                "name": name,
                "source": f"contracts/{relpath}",
                "compiler": f"vyper {vyper.__version__}",
                "evm_version": evm_version,
                **compile_contract(contracts_dir, relpath, evm_version),
            }
            files[get_artifact_relpath(name, evm_version)] = json.dumps(data, indent=1) + "\n"
    return files


def find_stale(files: dict[str, str], out_dir: Path = DEFAULT_OUT_DIR) -> list[str]:
    """The paths under ``out_dir`` that are missing, differ from ``files``, or are extra."""
    stale = [
        rel
        for rel, text in files.items()
        if not (out_dir / rel).is_file() or (out_dir / rel).read_text(encoding="utf-8") != text
    ]
    extra = [
        path.relative_to(out_dir).as_posix()
        for path in sorted(out_dir.rglob("*.json"))
        if path.relative_to(out_dir).as_posix() not in files
    ]
    return sorted(stale + extra)


def write_artifacts(files: dict[str, str], out_dir: Path = DEFAULT_OUT_DIR) -> list[str]:
    """Write ``files`` under ``out_dir`` and remove JSON no longer built; what changed."""
    changed = find_stale(files, out_dir)
    for rel in changed:
        path = out_dir / rel
        if rel not in files:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(files[rel], encoding="utf-8")
        tmp.replace(path)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m edgeshare._build_artifacts [--check]``; the exit code."""
    parser = argparse.ArgumentParser(prog="python -m edgeshare._build_artifacts")
    parser.add_argument("--check", action="store_true", help="write nothing; 1 if stale")
    parser.add_argument("--contracts", type=Path, default=DEFAULT_CONTRACTS_DIR)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR)
    args = parser.parse_args(argv)
    files = build_artifacts(args.contracts.resolve())
    if args.check:
        stale = find_stale(files, args.out)
        for rel in stale:
            print(f"stale: {args.out / rel}", file=sys.stderr)
        if stale:
            print("run `make artifacts` and commit the result", file=sys.stderr)
        return 1 if stale else 0
    changed = write_artifacts(files, args.out)
    print(f"{len(files)} artifacts in {args.out}: {len(changed)} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
