#!/usr/bin/env bash
# Runs every test of SSE Broker. On a fresh Debian machine it first installs
# what the tests need from Debian's packages: Chromium (browser tests),
# redis-server (Redis store, several nodes), nginx (the shipped load
# balancer config), docker-compose (to parse the compose files), shellcheck
# (the scripts), gcc and the C headers (go test -race needs cgo, and a Go
# installed from go.dev's tarball brings no C compiler). Go must be on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
[ -e /usr/include/stdlib.h ] || need+=(libc6-dev) # --no-install-recommends leaves it out
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# Tests needing a real Chromium, redis-server or nginx must not skip here:
# a missing one is a failure.
export SSEB_REQUIRE_BROWSER=1 SSEB_REQUIRE_REDIS=1 SSEB_REQUIRE_NGINX=1 SSEB_REQUIRE_EXAMPLES=1
export PATH="$PATH:/usr/sbin"

echo "== compose files (parsed by docker-compose)"
for f in docker-compose.yml docker-compose.single.yml; do
  docker-compose -f "$f" config -q
done

echo "== shellcheck"
shellcheck scripts/*.sh .ci/run

echo "== gofmt / vet / staticcheck"
unformatted=$( (git ls-files -z '*.go' 2>/dev/null || find . -name '*.go' -print0) | xargs -0 gofmt -l)
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted"; exit 1; fi
go vet ./...
go tool staticcheck ./... # pinned in go.mod's tool block

./scripts/fuzz.sh # every fuzz target ~10 s; their seed corpora also run in go test below
echo "== go test -race"
go test -race -count=1 -timeout 9m ./...
