#!/usr/bin/env bash
# Runs every test of SSE Broker. On a fresh Debian machine it first installs
# what the tests need (Chromium for the browser tests); Go must be on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# The browser tests must not skip here: a missing browser is a failure.
export SSEB_REQUIRE_BROWSER=1

echo "== gofmt / vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted"; exit 1; fi
go vet ./...

echo "== go test -race"
go test -race -count=1 -timeout 9m ./...
