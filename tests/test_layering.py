"""The layering the tree promises (docs/architecture.md): a pure library under flows, adapters
chosen in one place, and no import cycle — read from the source, every import (lazy ones too)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IO_OR_ORCHESTRATION = ("flows", "config", "prefect", "prefect_dask", "dask", "distributed", "boto3", "botocore",
                       "psycopg", "psycopg_pool", "httpx", "requests", "gspread", "fastapi", "uvicorn", "socket", "urllib.request", "http.client")


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of the file (function-level imports too)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            if node.module == "flows":
                out |= {f"flows.{a.name}" for a in node.names}
    return out


def flows_graph() -> dict[str, set[str]]:
    mods = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
        for p in (ROOT / "flows").rglob("*.py")
    }
    return {m: {d for d in imports_of(p) if d in mods and d != m} for m, p in mods.items()}


def test_the_library_does_no_io_and_knows_no_orchestrator() -> None:
    bad = {
        str(p.relative_to(ROOT)): sorted(
            d for d in imports_of(p) if any(d == x or d.startswith(x + ".") for x in IO_OR_ORCHESTRATION)
        )
        for p in (ROOT / "voc").rglob("*.py")
    }
    assert {k: v for k, v in bad.items() if v} == {}


def test_flows_modules_import_each_other_without_cycles() -> None:
    graph = flows_graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append(path[path.index(d):] + [d] if d in path else [m, d])
            elif d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_backends_import_only_the_base_interfaces() -> None:
    graph = flows_graph()
    for backend in ("flows.adapters.db", "flows.adapters.s3", "flows.adapters.review_backends", "flows.adapters.sources", "flows.adapters.storage"):
        assert not graph[backend] & {"flows.resources", "flows.monthly", "flows.train", "flows.adapters.db", "flows.adapters.s3"}, backend
    # the one place that picks a backend from settings
    assert {"flows.adapters.db", "flows.adapters.s3", "flows.adapters.review_backends"} <= graph["flows.resources"]
    assert not graph["flows.monthly"] & {"flows.adapters.db", "flows.adapters.s3", "flows.adapters.review_backends"}
