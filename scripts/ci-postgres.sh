#!/usr/bin/env bash
# Installs the PostgreSQL server binaries the store tests start (test/helpers/postgres.ts) when they are missing.
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql
fi
