#!/usr/bin/env bash
# System services and packages the tests use: Debian's Chromium (dashboard browser tests) and a
# running PostgreSQL on 127.0.0.1:5432. Idempotent; needs root for apt-get.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium missing: install Debian's chromium package (browser tests will be skipped)" >&2
  fi
fi
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
fi
