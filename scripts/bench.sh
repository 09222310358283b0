#!/usr/bin/env bash
# Runs one ssebench scenario against the broker and the r3labs baseline,
# side by side on this host: the server pinned to CPU 0, the tool to CPU 1
# (when taskset exists), RUNS runs each, a fresh server per run. Prints the
# medians and the ratios broker/baseline; appends every run's JSON line to
# bench/results/<scenario>.jsonl (charts: bench/results/<scenario>-<target>.svg,
# <scenario>-<store>-<target>.svg with STORE=bolt or redis).
#
#   scripts/bench.sh [scenario] [extra ssebench flags...]
#   RUNS=3 DURATION=5s scripts/bench.sh conversations -subscribers 200 -streams 100
#
# Environment: AWAKE (0; 1: see below), RUNS (3), DURATION (5s; empty: the scenario's), TARGETS
# ("broker baseline"; add floor for bench/floor, the least a net/http server
# can do for the same traffic), BROKER_PORT (18080), BASELINE_PORT (18081), FLOOR_PORT (18082),
# SERVER_CPU (0), TOOL_CPU (1), STORE (memory; bolt: the broker's durable
# embedded store, a fresh file per run in a temporary directory; redis: a
# fresh redis-server per run, configured as docker-compose.yml's (appendonly,
# fsync every second, noeviction), on REDIS_PORT (16399) and pinned to
# REDIS_CPU (the tool's: the broker keeps its core to itself, as it would
# with Redis on another host); the baseline has no store and is unaffected).
#
# AWAKE=1 keeps the server's and the tool's CPUs from going idle: a busy loop
# at SCHED_IDLE priority on each, which gives way at once to anything else
# that wants the CPU, and whose time counts for neither server. On a virtual
# machine whose idle vCPUs halt (this one: cpuidle haltpoll with
# guest_halt_poll_ns=0), waking a halted vCPU waits for the hypervisor, and
# the wait is counted as steal: in conversations (both CPUs idle half the
# time, thousands of wake-ups a second) steal went from 13-35% to under 1.5%
# (docs/performance-log.md, "Steal that the run causes"). The tag gets -awake.
#
# PERF=<seconds> records the server's CPU with `perf record -C` (kernel time
# included, which a Go profile does not see) for that long, starting PERF_AT
# (10) seconds after the load tool; give a DURATION that covers it (e.g.
# PERF=8 DURATION=20s). The files go to bench/results/perf-<tag>/ (not
# committed) and scripts/perfsplit.py prints what the CPU did in each.
#
# In the fanout scenario the broker runs with BROKER_HISTORY_MAX_EVENTS=1000000
# (its environment only): a flat-out publisher outruns some subscribers, the
# broker cuts them off, and ssebench resumes them with Last-Event-ID (as
# EventSource does); history must hold every event of the run for that resume
# to be exact, or the skipped events show up as gaps and loss. The baseline
# needs nothing: r3labs' AutoReplay keeps its whole log.
#
# A port already in use (BROKER_PORT, ..., REDIS_PORT) is refused before a
# server is started on it: the run would measure whatever answers there. A
# server that exits or does not come up stops the script with its log; a
# run ssebench fails (its server's figures unread included) prints the log;
# the script then goes on with the other runs and exits 1 at the end, naming
# the runs that failed.
set -euo pipefail
cd "$(dirname "$0")/.."

scenario=${1:-conversations}
shift || true
RUNS=${RUNS:-3}
DURATION=${DURATION-5s}
TARGETS=${TARGETS:-broker baseline}
BROKER_PORT=${BROKER_PORT:-18080}
BASELINE_PORT=${BASELINE_PORT:-18081}
FLOOR_PORT=${FLOOR_PORT:-18082}
AWAKE=${AWAKE:-0}
SERVER_CPU=${SERVER_CPU:-0}
TOOL_CPU=${TOOL_CPU:-1}
STORE=${STORE:-memory}
REDIS_PORT=${REDIS_PORT:-16399}
REDIS_CPU=${REDIS_CPU:-$TOOL_CPU}
PERF=${PERF:-}
PERF_AT=${PERF_AT:-10}
case $STORE in memory | bolt | redis) ;; *) echo "STORE must be memory, bolt or redis" >&2; exit 2 ;; esac
if [ "$STORE" = redis ] && ! command -v redis-server >/dev/null; then
	echo "STORE=redis needs redis-server (apt-get install -y redis-server)" >&2
	exit 2
fi

if [ -n "$PERF" ]; then
	if ! command -v perf >/dev/null; then
		echo "PERF needs perf (apt-get install -y linux-perf)" >&2
		exit 2
	fi
	# The recording must fall inside the publishing, or it profiles the
	# teardown instead.
	if ! [[ $PERF =~ ^[0-9]+$ && $PERF_AT =~ ^[0-9]+$ && $DURATION =~ ^[0-9]+s$ ]] ||
		[ "${DURATION%s}" -lt $((PERF_AT + PERF)) ]; then
		echo "PERF and PERF_AT are seconds, and PERF needs DURATION in seconds (e.g. 20s) of at least PERF_AT+PERF" >&2
		exit 2
	fi
fi

bin=$(mktemp -d)
server_pid='' redis_pid='' perf_pid='' spinner_pids=()
stop() { # pid: kill it and wait for it
	if [ -n "$1" ]; then kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; fi
}
cleanup() {
	stop "$server_pid"
	stop "$redis_pid"
	stop "$perf_pid"
	for pid in "${spinner_pids[@]}"; do stop "$pid"; done
	rm -rf "$bin"
}
trap cleanup EXIT
# Ctrl-C: ssebench records nothing of the run it cuts short and exits;
# stop here rather than go on to the next run.
trap 'exit 130' INT

echo "building broker, baseline and ssebench..." >&2
go build -o "$bin/broker" ./cmd/broker
go build -o "$bin/baseline" ./bench/baseline
go build -o "$bin/floor" ./bench/floor
go build -o "$bin/ssebench" ./cmd/ssebench

pin_server=() pin_tool=() pin_redis=()
if command -v taskset >/dev/null && taskset -c "$SERVER_CPU" true 2>/dev/null && taskset -c "$TOOL_CPU" true 2>/dev/null; then
	pin_server=(taskset -c "$SERVER_CPU") pin_tool=(taskset -c "$TOOL_CPU") pin_redis=(taskset -c "$REDIS_CPU")
else
	echo "taskset unavailable: server and tool are not pinned" >&2
	if [ -n "$PERF" ]; then
		echo "PERF records the server's CPU, so it needs the server pinned (taskset)" >&2
		exit 2
	fi
fi

mkdir -p bench/results
out=bench/results/$scenario.jsonl
tag=$(date -u +%Y%m%dT%H%M%SZ)-$scenario
store_suffix= # charts of runs on another store get their own file
if [ "$STORE" != memory ]; then tag=$tag-$STORE store_suffix=-$STORE; fi
if [ "$AWAKE" = 1 ]; then
	if ! command -v chrt >/dev/null || [ ${#pin_server[@]} = 0 ]; then
		echo "AWAKE=1 needs chrt and taskset (util-linux)" >&2
		exit 2
	fi
	for cpu in $(printf '%s\n' "$SERVER_CPU" "$TOOL_CPU" | sort -u); do
		taskset -c "$cpu" chrt --idle 0 sh -c 'while :; do :; done' &
		spinner_pids+=($!)
	done
	sleep 0.2
	for pid in "${spinner_pids[@]}"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "AWAKE=1: the busy loop did not start (chrt --idle refused?)" >&2
			exit 2
		fi
	done
	tag=$tag-awake
fi
perf_dir=bench/results/perf-$tag
if [ -n "$PERF" ]; then mkdir -p "$perf_dir"; fi
dur=()
[ -n "$DURATION" ] && dur=(-duration "$DURATION")

port_in_use() { # port: true when something already accepts connections on it
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

refuse_busy_port() { # port what
	if port_in_use "$1"; then
		echo "port $1 ($2) is already in use (a server left from an earlier run?): the run would measure that one; stop it or choose another port" >&2
		exit 1
	fi
}

show_log() { # file what: print a log that explains a failure (the trap deletes it at exit)
	echo "--- $2 ($1):" >&2
	tail -n 50 "$1" >&2 || true
	echo "---" >&2
}

wait_up() { # url: the server we started answers /metrics, and is still ours
	for _ in $(seq 100); do
		if ! kill -0 "$server_pid" 2>/dev/null; then
			echo "the server exited before it answered at $1" >&2
			show_log "$bin/server.log" "its log"
			exit 1
		fi
		if curl -fsS -o /dev/null "$1/metrics" 2>/dev/null; then
			# Something answered: make sure the server did not exit meanwhile
			# (the answer would then be another process's).
			if kill -0 "$server_pid" 2>/dev/null; then return 0; fi
		fi
		sleep 0.1
	done
	echo "server at $1 did not come up" >&2
	show_log "$bin/server.log" "its log"
	exit 1
}

start_redis() { # a fresh, empty redis-server for one broker run
	refuse_busy_port "$REDIS_PORT" REDIS_PORT
	rm -rf "$bin/redis" && mkdir "$bin/redis"
	"${pin_redis[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$bin/redis" --save '' \
		--appendonly yes --appendfsync everysec --maxmemory-policy noeviction >"$bin/redis.log" 2>&1 &
	redis_pid=$!
	for _ in $(seq 100); do
		if ! kill -0 "$redis_pid" 2>/dev/null; then break; fi
		redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "redis-server on port $REDIS_PORT did not come up" >&2
	show_log "$bin/redis.log" "its log"
	exit 1
}

failed=() # the runs ssebench failed: the script fails too, naming them
for run in $(seq "$RUNS"); do
	for target in $TARGETS; do
		case $target in
		broker)
			port=$BROKER_PORT
			refuse_busy_port "$port" BROKER_PORT
			broker_env=()
			if [ "$scenario" = fanout ]; then broker_env=(BROKER_HISTORY_MAX_EVENTS=1000000); fi
			store=$STORE
			case $STORE in
			bolt) rm -f "$bin/bench.db"; store=bolt:$bin/bench.db ;;
			redis) start_redis; store=redis://127.0.0.1:$REDIS_PORT/0 ;;
			esac
			broker_env+=(BROKER_STORE="$store")
			env "${broker_env[@]}" "${pin_server[@]}" "$bin/broker" --listen "127.0.0.1:$port" --demo=false --log-level warn >"$bin/server.log" 2>&1 &
			;;
		baseline)
			port=$BASELINE_PORT
			refuse_busy_port "$port" BASELINE_PORT
			"${pin_server[@]}" "$bin/baseline" -listen "127.0.0.1:$port" >"$bin/server.log" 2>&1 &
			;;
		floor)
			port=$FLOOR_PORT
			refuse_busy_port "$port" FLOOR_PORT
			"${pin_server[@]}" "$bin/floor" -listen "127.0.0.1:$port" >"$bin/server.log" 2>&1 &
			;;
		*) echo "unknown target $target" >&2; exit 2 ;;
		esac
		server_pid=$!
		url=http://127.0.0.1:$port
		wait_up "$url"
		echo "== run $run/$RUNS: $target $scenario" >&2
		if [ -n "$PERF" ]; then
			(sleep "$PERF_AT" && exec perf record -q -e cpu-clock -F 2000 --call-graph fp -C "$SERVER_CPU" \
				-o "$perf_dir/$target-$run.data" -- sleep "$PERF") >/dev/null 2>&1 &
			perf_pid=$!
		fi
		if ! "${pin_tool[@]}" "$bin/ssebench" -url "$url" -target "$target" -scenario "$scenario" -server-pid "$server_pid" \
			"${dur[@]}" -json "$out" -tag "$tag" -svg "bench/results/$scenario$store_suffix-$target.svg" "$@"; then
			echo "ssebench failed ($target run $run)" >&2
			failed+=("$target run $run")
			show_log "$bin/server.log" "the $target server's log"
		fi
		if [ -n "$perf_pid" ]; then
			wait "$perf_pid" || echo "perf record failed ($target run $run)" >&2
			perf_pid=
		fi
		stop "$server_pid"
		server_pid=
		stop "$redis_pid"
		redis_pid=
	done
done

echo
echo "tag $tag, results in $out"
"$bin/ssebench" summarize -tag "$tag" "$out"
if [ -n "$PERF" ]; then
	echo
	echo "perf profiles in $perf_dir:"
	files=()
	for target in $TARGETS; do
		for run in $(seq "$RUNS"); do
			if [ -s "$perf_dir/$target-$run.data" ]; then files+=("$perf_dir/$target-$run.data:$target"); fi
		done
	done
	if [ ${#files[@]} = 0 ]; then
		echo "no perf profile was recorded" >&2
	else
		scripts/perfsplit.py "${files[@]}" || echo "perfsplit failed" >&2
	fi
fi
if [ ${#failed[@]} -gt 0 ]; then
	echo >&2
	echo "${#failed[@]} of $((RUNS * $(wc -w <<<"$TARGETS"))) runs failed (ssebench said why above each):" >&2
	printf '  %s\n' "${failed[@]}" >&2
	exit 1
fi
