"""The house kept in order by tools, configured in pyproject.toml: the import contracts
(``[tool.importlinter]``: voc is pure, the layers of flows/, no import cycle), the linter
(``[tool.ruff]``) and the type checker (``[tool.mypy]``: strict for voc/). Each runs as its own
process on the whole tree; a failure shows the tool's own report."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# What the pure library must never import (docs/architecture.md): the orchestrator, the storage,
# database and sheet clients, and anything that opens a network connection.
IO_OR_ORCHESTRATION = {
    "flows", "config", "prefect", "prefect_dask", "dask", "distributed", "boto3", "botocore",
    "psycopg", "psycopg_pool", "httpx", "requests", "gspread", "fastapi", "uvicorn", "socket", "http",
}


def _tool(name: str) -> str:
    """The console script ``name`` of this interpreter's environment (else the one on PATH)."""
    exe = BIN / name
    found = str(exe) if exe.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -c requirements.lock -e '.[test]'")
    return found


def _run(*argv: str, timeout: float = 600) -> None:
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    output = (proc.stdout + proc.stderr).strip()
    command = " ".join([Path(argv[0]).name, *argv[1:]])
    assert proc.returncode == 0, f"`{command}` exited {proc.returncode}:\n{output}"


def _contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def test_the_library_contract_forbids_io_and_orchestration() -> None:
    """The contract that keeps voc/ pure names every I/O and orchestration package (a contract
    that lost one would still be kept)."""
    pure = _contracts()["voc-pure"]
    assert pure["type"] == "forbidden" and pure["source_modules"] == ["voc"]
    missing = IO_OR_ORCHESTRATION - set(pure["forbidden_modules"])
    assert not missing, f"voc-pure no longer forbids {sorted(missing)}"


def test_every_contract_kind_is_declared() -> None:
    kinds = {c["type"] for c in _contracts().values()}
    assert {"forbidden", "layers", "acyclic_siblings"} <= kinds


def test_import_contracts_are_kept() -> None:
    _run(_tool("lint-imports"))


def test_ruff_finds_nothing() -> None:
    _run(_tool("ruff"), "check", "--output-format", "concise", ".")


def test_mypy_finds_nothing() -> None:
    _run(_tool("mypy"))


def _modules(package: str) -> set[str]:
    """Every module file of ``package`` as its repository path, ``__init__``/``__main__`` left out."""
    return {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / package).rglob("*.py")
        if p.stem not in {"__init__", "__main__"}
    }


def test_the_architecture_document_names_every_module_and_only_modules_that_exist() -> None:
    """docs/architecture.md's diagram and tree match the code: each module of voc/ and flows/ is
    named there (by file name under its folder), and every ``flows/…``/``voc/…`` path it names exists."""
    import re

    doc = (ROOT / "docs" / "architecture.md").read_text("utf-8")
    named_paths = set(re.findall(r"\b((?:flows|voc)/[\w/]*\w\.py)\b", doc))
    assert not {p for p in named_paths if not (ROOT / p).exists()}, "docs/architecture.md names missing files"
    unnamed = {m for m in _modules("voc") | _modules("flows") if Path(m).name not in doc}
    assert not unnamed, f"docs/architecture.md does not place {sorted(unnamed)}"
