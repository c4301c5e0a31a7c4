#!/usr/bin/env bash
# Starts Azurite's Blob service on 127.0.0.1:${AZURITE_PORT:-10000} unless one
# already answers there, and waits until it listens. Data goes to .azurite/.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${AZURITE_PORT:-10000}
if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
  echo "azurite: already listening on 127.0.0.1:$port"
  exit 0
fi
mkdir -p .azurite
nohup node_modules/.bin/azurite-blob --blobHost 127.0.0.1 --blobPort "$port" --location .azurite \
  --skipApiVersionCheck --disableTelemetry --silent --loose >.azurite/azurite.log 2>&1 &
echo $! >.azurite/azurite.pid
for _ in $(seq 1 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
    echo "azurite: listening on 127.0.0.1:$port (pid $(cat .azurite/azurite.pid))"
    exit 0
  fi
  sleep 0.2
done
echo "azurite: did not start; see .azurite/azurite.log" >&2
exit 1
