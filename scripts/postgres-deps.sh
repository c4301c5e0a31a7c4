#!/usr/bin/env bash
# Makes sure PostgreSQL server binaries are installed (the PostgreSQL connector's
# tests start a throwaway server from them). Installs Debian's postgresql
# package when missing: as root directly, otherwise through sudo.
set -euo pipefail
if command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  exit 0
fi
echo "postgres-deps: installing the postgresql server package (apt-get)"
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
