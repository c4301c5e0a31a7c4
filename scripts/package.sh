#!/usr/bin/env bash
# Builds the linux/amd64 handler and the deployable zip dist/dsr-functions.zip.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p dist
CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -ldflags='-s -w' -o dist/handler ./cmd/dsr
go run ./cmd/package -out dist/dsr-functions.zip -handler dist/handler -sources "${SOURCES:-sample/sources.json}"
