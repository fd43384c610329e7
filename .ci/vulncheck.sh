#!/usr/bin/env bash
# govulncheck over every package. The Go vulnerability database is served
# at vuln.go.dev, which some build machines cannot reach; its source, the
# golang.org/x/vulndb module (one OSV file per entry in data/osv), is
# served by the module proxy like any module. So the database is built
# here from that module with its own indexdb command, kept per vulndb
# version, and govulncheck (the go tool pinned in go.mod) reads it as a
# file:// database.
#
#   VULNDB_VERSION  vulndb version (default: latest, the freshest entries)
#   VULNDB_URL      use this database instead (for instance https://vuln.go.dev)
#   VULNDB_CACHE    where built databases are kept (default $TMPDIR/kapkan-vulndb)
set -euo pipefail
cd "$(dirname "$0")/.."
db=${VULNDB_URL:-}
if [ -z "$db" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # Outside the module: resolving and downloading vulndb must not touch go.mod.
  ver=$(cd "$work" && go list -m -f '{{.Version}}' "golang.org/x/vulndb@${VULNDB_VERSION:-latest}")
  src=$(cd "$work" && go mod download -json "golang.org/x/vulndb@$ver" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  out=${VULNDB_CACHE:-${TMPDIR:-/tmp}/kapkan-vulndb}/$ver
  if [ ! -f "$out/index/db.json" ]; then
    rm -rf "$out.tmp"
    mkdir -p "$(dirname "$out")"
    (cd "$work" && go run "golang.org/x/vulndb/cmd/indexdb@$ver" -vulns "$src/data/osv" -out "$out.tmp")
    mv "$out.tmp" "$out"
  fi
  db=file://$out
  echo "vulnerability database: golang.org/x/vulndb@$ver ($(ls "$src/data/osv" | wc -l) entries), built in $out"
fi
# Findings the code calls fail the run unless accepted, with a reason, in
# .ci/vuln-accepted.txt.
go tool govulncheck -db "$db" -format json ./... | go run ./.ci/vulnfilter .ci/vuln-accepted.txt
