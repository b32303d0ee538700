"""The command line as a user meets it: every ``--help``, months it must refuse or report, one
clear error line for bad input, a run that survives a busy machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from flows.cli import app

REPO = Path(__file__).resolve().parents[1]


def _command_paths() -> list[list[str]]:
    """Every command and sub-command of ``voc`` as its argv prefix (``[]`` is ``voc`` itself)."""
    out: list[list[str]] = []

    def walk(cmd: object, path: list[str]) -> None:
        out.append(path)
        for name, sub in getattr(cmd, "commands", {}).items():  # a group (Typer vendors click)
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return out


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(p) for p in _command_paths()}
    assert {"", "train", "run", "demo", "review simulate", "db init", "db load-csv", "backtest",
            "kobert build-tiny-base", "kobert export-onnx"} <= names


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "voc")
def test_every_help_renders(path: list[str]) -> None:
    res = CliRunner().invoke(app, [*path, "--help"])
    assert res.exit_code == 0, f"voc {' '.join(path)} --help: {res.exception!r}\n{res.output}"
    assert "Usage" in res.output and "--help" in res.output


def _voc(*args: str, env: dict[str, str] | None = None, timeout_s: float = 900) -> subprocess.CompletedProcess[str]:
    """The real console entry point (``python -m flows.cli`` runs ``main()``) in a subprocess with
    its own Prefect home: an ephemeral API server started from scratch, as for a new user."""
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s
    )


def _fresh_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "VOC_"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false", **extra)
    return env


def test_future_month_is_refused_with_exit_2_and_named(tmp_path: Path) -> None:
    r = _voc("run", "--mode", "full", "--month", "2030-01", "--storage", str(tmp_path), env=_fresh_env(tmp_path))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "2030-01" in r.stderr and "future" in r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert not (tmp_path / "stat").exists(), "nothing written for a refused month"


def test_bad_month_text_is_a_usage_error() -> None:
    res = CliRunner().invoke(app, ["run", "--month", "2019-13"])
    assert res.exit_code == 2 and "2019-13" in res.output


@pytest.mark.slow  # end-to-end: a whole command or flow run
def test_empty_month_says_no_vocs_everywhere(tmp_path: Path, prefect_server) -> None:
    """Exit 0, ``no VOCs for 2011-01`` in the CLI output, the summary and the Prefect artifact."""
    import asyncio

    from prefect.client.orchestration import get_client

    res = CliRunner().invoke(app, ["run", "--mode", "full", "--month", "2011-01", "--storage", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "no VOCs for 2011-01" in res.stdout
    res = CliRunner().invoke(app, ["run", "--mode", "full", "--month", "2011-01", "--storage", str(tmp_path), "--json"])
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["note"] == "no VOCs for 2011-01" and summary["rows"] == 0 and summary["buildings"] == []
    assert not (tmp_path / "stat").exists(), "an empty month writes nothing"

    async def latest_summary() -> str:
        async with get_client() as c:
            arts = await c.read_latest_artifacts()
            return "\n".join(a.data for a in arts if a.key == "voc-full-summary")

    assert "no VOCs for 2011-01" in asyncio.run(latest_summary())
    res = CliRunner().invoke(app, ["run", "--mode", "refresh", "--month", "2011-01", "--storage", str(tmp_path)])
    assert res.exit_code == 0 and "no VOCs for 2011-01" in res.stdout


@pytest.mark.slow
def test_full_without_a_model_fails_in_one_line_unless_keyword_only_is_chosen(tmp_path: Path) -> None:
    """No champion although the source has labelled history: the run stops with the one clear
    message (no traceback, no retries); the explicit setting allows keyword-only tagging."""
    env = _fresh_env(tmp_path)
    r = _voc("run", "--mode", "full", "--month", "2019-11", "--storage", str(tmp_path / "s"), env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "error: no trained model under stat/voc-dev/models" in r.stderr and "run voc-train first" in r.stderr
    assert "Traceback" not in out and "Retrying" not in out, out
    assert not list((tmp_path / "s").rglob("tagged_*.csv"))

    r = _voc("run", "--mode", "full", "--month", "2019-11", "--building-id", "2", "--storage", str(tmp_path / "s"),
             env=dict(env, VOC_MODEL__ALLOW_KEYWORD_ONLY="true"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "taxonomy keywords only" in r.stdout
    # nothing for the operator to worry about in a clean run (no Prefect timeout warning per building)
    assert "WARNING" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert len(list((tmp_path / "s").rglob("tagged_2_201911_*.csv"))) == 1


@pytest.mark.slow
def test_bad_input_fails_once_with_row_field_value(tmp_path: Path, sample_raw) -> None:
    """A date that is not a date: exit 2, one error naming row, field and value; not retried."""
    bad = sample_raw.head(60).with_columns(
        pl.when(pl.int_range(0, 60) == 41).then(pl.lit("2019-13-45")).otherwise(pl.col("created_at")).alias("created_at")
    )
    src = tmp_path / "bad.csv"
    bad.write_csv(src)
    r = _voc("run", "--mode", "full", "--month", "2019-11", "--storage", str(tmp_path / "s"), "--source", str(src),
             env=_fresh_env(tmp_path, VOC_MODEL__ALLOW_KEYWORD_ONLY="true"))
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "created_at" in r.stderr and "2019-13-45" in r.stderr and "row" in r.stderr
    assert "Traceback" not in out and "Retrying" not in out, out
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "row 42" in errors[0] and "'2019-13-45'" in errors[0], out
    assert len(out.splitlines()) < 40, out


@contextmanager
def _busy(n: int = 2, seconds: int = 900) -> Iterator[None]:
    """``n`` CPU-burning processes that stop by themselves after ``seconds`` (and are killed at exit)."""
    burn = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass"
    procs = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(n)]
    try:
        time.sleep(1)
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


@pytest.mark.slow
def test_run_succeeds_on_a_busy_machine_with_a_fresh_prefect_home(tmp_path: Path) -> None:
    """Two CPU burners on a 2-core machine: the ephemeral Prefect API takes far longer than
    Prefect's 20 s default to answer; the CLI waits for it (PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS
    defaults to 600 s in the CLI) and the run completes."""
    env = _fresh_env(tmp_path, VOC_MODEL__ALLOW_KEYWORD_ONLY="true")
    with _busy():
        r = _voc("run", "--mode", "tagging-only", "--month", "2019-11", "--building-id", "2",
                 "--storage", str(tmp_path / "s"), env=env)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert "Timed out while attempting to connect" not in r.stdout + r.stderr
    assert len(list((tmp_path / "s").rglob("tagged_2_201911_*.csv"))) == 1


@pytest.mark.parametrize("bad", ["../x", "a/b", ".."])
def test_building_id_that_is_a_path_is_a_usage_error(bad: str, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["run", "--month", "2019-11", "--building-id", bad, "--storage", str(tmp_path)])
    assert res.exit_code == 2 and repr(bad) in res.output
    assert not (tmp_path / "stat").exists()
