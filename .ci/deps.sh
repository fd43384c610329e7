#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine of this kind. Each
# step checks first, so a second run is quick. Nothing beyond Go is needed
# yet; integration parts (bird2, ClickHouse, Chromium) are added here as the
# tests that need them land.
set -euo pipefail
need_apt=()
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
# Go modules and tools pinned in go.mod.
go mod download
