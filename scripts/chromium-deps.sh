#!/usr/bin/env bash
# Makes sure a headless Chromium is installed (the console's browser tests
# drive it). Installs Debian's chromium package when missing: as root
# directly, otherwise through sudo. DSR_CHROMIUM names another binary.
set -euo pipefail
if [ -n "${DSR_CHROMIUM:-}" ] || command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null; then
  exit 0
fi
echo "chromium-deps: installing the chromium package (apt-get)"
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
