#!/usr/bin/env bash
# Runs every fuzz target of ./pkg/... for a bounded time each, one after
# another (go test fuzzes one target per invocation): the publish body
# decoder, the SSE encoder round trip and decoder, the id and stream id
# rules, and token extraction. About 10 s per target; FUZZTIME=30s
# ./scripts/fuzz.sh fuzzes longer, FUZZ=FuzzParseID only the targets whose
# name matches that regular expression.
#
# The seed corpora alone (f.Add in each target and the files under
# <package>/testdata/fuzz/<FuzzName>/) also run in every normal `go test`
# as regression cases; this script explores beyond them.
#
# A finding fails the script. go test writes the failing input to
# <package>/testdata/fuzz/<FuzzName>/<hash>: commit that file, it becomes a
# regression case that runs in every `go test`, then fix the bug.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime="${FUZZTIME:-10s}"

# "<package dir> <FuzzName>" for every fuzz target under pkg/.
mapfile -t targets < <(
  grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' pkg |
    sed -E 's|^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)$|\1 \2|' | sort -u |
    grep -E " .*${FUZZ:-}" || true
)
if ((${#targets[@]} == 0)); then
  echo "fuzz.sh: no fuzz targets under pkg/" >&2
  exit 1
fi

# corpus_files DIR: the names of DIR's files, sorted (nothing when it is missing).
corpus_files() { { find "$1" -maxdepth 1 -type f -printf '%f\n' 2>/dev/null || true; } | sort; }

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=()
start=$SECONDS
for t in "${targets[@]}"; do
  read -r dir name <<<"$t"
  corpus="$dir/testdata/fuzz/$name"
  before=$(corpus_files "$corpus")
  echo "== fuzz $name ($dir, $fuzztime)"
  if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 10s "./$dir/" >"$logs/$name.log" 2>&1; then
    tail -n 1 "$logs/$name.log"
    continue
  fi
  # The fuzzing engine itself sometimes gives up waiting for a busy worker
  # ("context deadline exceeded", no failing input): not a finding. Once more.
  if grep -q '^    context deadline exceeded$' "$logs/$name.log" &&
    [ "$before" = "$(corpus_files "$corpus")" ]; then
    echo "fuzz.sh: $name: the fuzzing engine timed out on a worker (no input failed); running it again"
    if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 10s "./$dir/" >"$logs/$name.log" 2>&1; then
      tail -n 1 "$logs/$name.log"
      continue
    fi
  fi
  grep -v '^fuzz: elapsed' "$logs/$name.log" | tail -n 30
  new=$(comm -13 <(echo "$before") <(corpus_files "$corpus"))
  if [ -n "$new" ]; then
    for f in $new; do
      echo "fuzz.sh: $name found a failing input: $corpus/$f"
      echo "fuzz.sh: commit $corpus/$f (it becomes a regression case of every go test), then fix the bug."
    done
  else
    echo "fuzz.sh: $name fails on its committed seed corpus (a regression case above): fix the bug."
  fi
  failed+=("$name")
done

echo "== fuzzing took $((SECONDS - start))s for ${#targets[@]} targets"
if ((${#failed[@]})); then
  echo "fuzz.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
