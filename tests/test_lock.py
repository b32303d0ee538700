"""requirements.lock is the one tested set of versions: it satisfies every requirement of
pyproject.toml (runtime and the kobert/test extras), keeps out what is known broken, is what
README, CI and the worker set-up install from, and is what this environment runs."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]


def _lock() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (REPO / "requirements.lock").read_text("utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;]+)", line)
        assert m, f"requirements.lock: not a pin: {line!r}"
        pins[canonicalize_name(m.group(1))] = Version(m.group(3))
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in ("kobert", "test"):
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return reqs


def test_lock_satisfies_every_pyproject_requirement() -> None:
    lock = _lock()
    bad = []
    for req in _requirements():
        name = canonicalize_name(req.name)
        if name not in lock:
            bad.append(f"{req}: not in requirements.lock")
        elif not req.specifier.contains(lock[name], prereleases=True):
            bad.append(f"{req}: lock pins {lock[name]}")
    assert not bad, "pyproject.toml and requirements.lock disagree (run bash scripts/lock.sh):\n" + "\n".join(bad)


def test_known_broken_versions_are_excluded() -> None:
    lock = _lock()
    assert lock["prefect"] == Version("3.8.8")
    assert lock["sqlalchemy"] < Version("2.1"), "Prefect 3.8.8's scheduler fails with SQLAlchemy 2.1"
    assert lock["fastapi"] < Version("0.152"), "Prefect 3.8.8's server breaks with FastAPI >= 0.152"
    pyproject = {canonicalize_name(r.name): r for r in _requirements()}
    assert not pyproject["sqlalchemy"].specifier.contains("2.1.0"), "pyproject must exclude SQLAlchemy 2.1"


def test_readme_ci_and_worker_setup_install_from_the_lock() -> None:
    readme = (REPO / "README.md").read_text("utf-8")
    quick = next(line for line in readme.splitlines() if line.rstrip().endswith("voc demo") and "pip install" in line)
    tests = next(line for line in readme.splitlines() if "pytest" in line and "pip install" in line)
    for cmd in (quick, tests):
        assert all("-c requirements.lock" in part for part in cmd.split("&&") if "pip install" in part), cmd
    assert tests.strip() in (REPO / ".ci" / "run").read_text("utf-8"), ".ci/run runs README's exact test command"
    assert "requirements.lock" in (REPO / "deployments" / "README.md").read_text("utf-8")


def test_this_environment_runs_the_locked_versions() -> None:
    """What CI installed is what the lock says (a pip resolve that drifted would show here)."""
    drift = []
    for name, pinned in _lock().items():
        try:
            got = Version(version(name))
        except PackageNotFoundError:
            continue  # an extra this environment did not install
        if got != pinned:
            drift.append(f"{name}: installed {got}, lock {pinned}")
    assert not drift, "\n".join(drift)
