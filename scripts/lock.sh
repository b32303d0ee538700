#!/usr/bin/env bash
# Regenerate requirements.lock: every package of the runtime and the kobert/test extras pinned,
# resolved by uv for CPython 3.11 on Linux x86-64 (torch = the CPU wheel 2.13.0).
# Install from it with `pip install -c requirements.lock -e '.[…]'` (README); tests/test_lock.py
# fails when pyproject.toml and the lock disagree.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v uv >/dev/null || pip install -q uv
uv pip compile pyproject.toml --extra kobert --extra test \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
  --constraint scripts/lock-constraints.txt --find-links /opt/wheels \
  --no-header --annotation-style line -o requirements.lock.tmp
{ echo "# Tested set of every dependency (runtime + kobert + test extras); regenerate: bash scripts/lock.sh"
  cat requirements.lock.tmp; } > requirements.lock
rm -f requirements.lock.tmp
