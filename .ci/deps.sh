#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine of this kind: the
# Debian packages named as arguments (tshark checks that what
# `kapkan simulate` writes is what Wireshark reads; clickhouse-server,
# Debian's 18.16, is the oldest server the ClickHouse store supports and
# what its tests start on loopback; bird2 and gobgpd are the routers the
# BGP tests start on loopback), then the Go modules.
# Each step checks first, so a second run is quick.
set -euo pipefail
need_apt=()
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
# Go modules and tools pinned in go.mod, and the packaging tools (nfpm),
# pinned in a module of their own.
go mod download
go mod download -modfile=packaging/tools/go.mod
