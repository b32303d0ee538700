"""The command line as a user meets it: every ``--help``, months it must refuse or report, one
clear error line for bad input, a run that survives a busy machine."""

from __future__ import annotations

import json
import os
import re
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

from flows.cli.main import app

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
    """The real console entry point (``python -m flows.cli.main`` runs ``main()``) in a subprocess with
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

    assert "no VOCs for 2011-01" in asyncio.run(latest_summary()).replace("\\", "")  # Markdown escapes off (voc.mdtext)
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


@pytest.mark.slow
def test_one_voc_id_in_two_buildings_fails_once_naming_both(tmp_path: Path, sample_raw) -> None:
    """The same voc_id in buildings 1 and 2 (a real VOC of the sample copied): exit 2, one error
    line naming the rows, the id and both buildings; nothing written."""
    row = sample_raw.filter(pl.col("building_id") == "1").head(1)
    src = tmp_path / "dup.csv"
    pl.concat([sample_raw.head(60), row.with_columns(pl.lit("2").alias("building_id"))]).write_csv(src)
    r = _voc("run", "--mode", "full", "--month", "2019-11", "--storage", str(tmp_path / "s"), "--source", str(src),
             env=_fresh_env(tmp_path, VOC_MODEL__ALLOW_KEYWORD_ONLY="true"))
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    vid = row["voc_id"][0]
    assert len(errors) == 1 and f"voc_id '{vid}' is in two buildings, building_id '1'" in errors[0], out
    assert "and '2' (row 61)" in errors[0] and "Traceback" not in out, out
    assert not list((tmp_path / "s").rglob("tagged_*.csv"))


@pytest.mark.slow
def test_hostile_building_ids_run_a_month_and_its_index(tmp_path: Path, sample_raw) -> None:
    """Building ids that read as a URL scheme, a run id and Hangul (artifact keys) run a whole month:
    exit 0, the month index lists both buildings and each link opens that building's dashboard."""
    from urllib.parse import unquote

    ids = {"1": "javascript:x", "2": "full_20990101_000000 본관"}
    src = tmp_path / "hostile.csv"
    sample_raw.with_columns(pl.col("building_id").replace(ids)).write_csv(src)
    r = _voc("run", "--mode", "full", "--month", "2019-11", "--storage", str(tmp_path / "s"), "--source", str(src), "--json",
             env=_fresh_env(tmp_path, VOC_MODEL__ALLOW_KEYWORD_ONLY="true"))
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert "index_error" not in summary and summary["index"], summary
    index = Path(summary["index"])
    hrefs = [h for h in re.findall(r'<a href="([^"]+)"', index.read_text("utf-8")) if not h.startswith("review_")]
    assert len(hrefs) == 2  # the two dashboards (the review workbook's link aside)
    for href in hrefs:
        page = index.parent.joinpath(*[unquote(seg) for seg in href.split("/")])
        assert page.is_file() and page.parent.name in ids.values(), href


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


# --------------------------------------------------------------------------------------------
# issue 22: usage and input errors are one `error:` line, exit 2, before any Prefect API starts


def _main(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``voc ARGV`` through the console entry point ``main()``, in-process: (exit code, stdout, stderr)."""
    from flows.cli.main import main

    monkeypatch.setattr(sys, "argv", ["voc", *argv])
    with pytest.raises(SystemExit) as exc:
        main()
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def _bad_inputs(tmp_path: Path, sample_raw: pl.DataFrame) -> dict[str, tuple[list[str], dict[str, str], list[str]]]:
    """name → (argv, environment, what the one error line must contain)."""
    bad_date = tmp_path / "bad_date.csv"
    sample_raw.head(60).with_columns(
        pl.when(pl.int_range(0, 60) == 41).then(pl.lit("2019-13-45")).otherwise(pl.col("created_at")).alias("created_at")
    ).write_csv(bad_date)
    cp949 = tmp_path / "excel_export.csv"  # a Korean Excel export read as UTF-8
    cp949.write_bytes(sample_raw.head(20).write_csv().encode("cp949", errors="replace"))
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    st = str(tmp_path / "s")
    month = ["run", "--month", "2019-11", "--storage", st]
    return {
        "unknown option": (["run", "--monthh", "2019-11"], {}, ["No such option: --monthh", "voc run --help"]),
        "month out of range": (["run", "--month", "2019-13"], {}, ["'--month'", "2019-13"]),
        "until not a month": (["train", "--until", "2019-1x"], {}, ["'--until'", "2019-1x"]),
        "missing --source": ([*month, "--source", str(tmp_path / "nope.csv")], {}, ["neither an existing CSV file"]),
        "missing VOC_SOURCE": (month, {"VOC_SOURCE": str(tmp_path / "nope.csv")}, ["neither an existing CSV file"]),
        "wrong encoding": ([*month, "--source", str(cp949)], {}, ["not valid utf-8: line 2", "--encoding cp949"]),
        "unknown encoding": ([*month, "--encoding", "latin1"], {}, ["--encoding", "latin1"]),
        "schema error": ([*month, "--source", str(bad_date)], {}, ["row 42", "created_at", "'2019-13-45'"]),
        "storage under a file": (["train", "--storage", str(a_file / "sub")], {}, ["is not a directory", str(a_file)]),
        "demo schema error": (["demo", "--source", str(bad_date), "--storage", st], {}, ["row 42"]),
    }


@pytest.mark.parametrize(
    "case",
    ["unknown option", "month out of range", "until not a month", "missing --source", "missing VOC_SOURCE",
     "wrong encoding", "unknown encoding", "schema error", "storage under a file", "demo schema error"],
)
def test_usage_and_input_errors_are_one_line_with_exit_2(
    case: str, tmp_path: Path, sample_raw: pl.DataFrame, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No Rich box, no traceback, no second line: ``error: …`` on stderr, exit 2, nothing on
    stdout, nothing written — the input is checked before a flow (and Prefect's API) starts."""
    argv, env, needles = _bad_inputs(tmp_path, sample_raw)[case]
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code, out, err = _main(argv, monkeypatch, capsys)
    assert code == 2, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert all(n in lines[0] for n in needles), (needles, err)
    assert "╭" not in err and "Traceback" not in err and out == ""
    assert not (tmp_path / "s").exists(), "nothing written"


def test_help_still_prints_and_exits_0(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _main(["run", "--help"], monkeypatch, capsys)
    assert code == 0 and "Usage" in out and "--month" in out and err == ""


def test_preflight_passes_the_shipped_sample(tmp_path: Path) -> None:
    from flows.cli.main import preflight

    preflight(source=None, encoding=None, storage=str(tmp_path / "new" / "root"))  # to be created: fine
    preflight(source=None, encoding="UTF8", storage=None)


def test_missing_source_file_in_the_environment_exits_2_in_a_real_process(tmp_path: Path) -> None:
    """The real console entry point: a VOC_SOURCE file that does not exist (exit 1 after Prefect
    started, before issue 22) is one line and exit 2."""
    env = _fresh_env(tmp_path, VOC_SOURCE=str(tmp_path / "gone.csv"))
    r = _voc("run", "--mode", "full", "--month", "2019-11", "--storage", str(tmp_path / "s"), env=env, timeout_s=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and "neither an existing CSV file" in r.stderr
    assert not (tmp_path / "prefect-home").exists(), "no Prefect API was started"
