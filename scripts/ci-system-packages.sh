#!/usr/bin/env bash
# Installs the Debian packages the suite drives when they are missing: the PostgreSQL server the store tests start
# (test/helpers/postgres.ts) and tmux, the real terminal the progress test runs `autobatch run` in.
set -euo pipefail
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
