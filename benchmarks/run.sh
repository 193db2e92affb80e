#!/usr/bin/env bash
# Load benchmark of budapp on one uvicorn worker: GET /bench/hello (the ceiling), GET /auth/me,
# GET /projects (a page of 20 out of 10,000) and POST /auth/login (argon2-bound).
#
#   benchmarks/run.sh sqlite|postgres [--record]
#   BENCH_PROFILE=1 benchmarks/run.sh sqlite   # also samples the server with py-spy during
#                                               # GET /projects (slower; not for the table)
#
# Seeds a fresh database, starts the server on 127.0.0.1:$BENCH_PORT, runs wrk against each
# scenario (a short warm-up, then the measured run), prints the results table, appends it to
# benchmarks/out/history.md and, with --record, to benchmarks/RESULTS.md. See README.md.
set -euo pipefail

usage() {
  echo "usage: $0 sqlite|postgres [--record]" >&2
  exit 2
}

DB="${1:-}"
case "$DB" in sqlite | postgres) ;; *) usage ;; esac
RECORD=0
if [[ $# -ge 2 ]]; then
  [[ "$2" == "--record" ]] || usage
  RECORD=1
fi
if [[ $RECORD -eq 1 && "${BENCH_PROFILE:-0}" == 1 ]]; then
  echo "a profiled run is slowed by py-spy: it is not recorded in RESULTS.md" >&2
  exit 2
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

HOST=127.0.0.1
PORT="${BENCH_PORT:-9381}"
BASE="http://$HOST:$PORT"
DURATION="${BENCH_DURATION:-15s}"
WARMUP="${BENCH_WARMUP:-3s}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
THREADS="${BENCH_THREADS:-1}"
TIMEOUT="${BENCH_TIMEOUT:-10s}"
PROFILE="${BENCH_PROFILE:-0}"
# Measured runs per scenario; the table keeps the fastest (the one least disturbed by anything
# else on the machine) and shows the spread.
REPEAT="${BENCH_REPEAT:-3}"
# Scheduling priority of the server and wrk (nice value; negative needs root): on a machine that
# other jobs share, e.g. -10 keeps them from disturbing the measurement as much. PostgreSQL's
# own processes are left alone.
NICE="${BENCH_NICE:-0}"
POSTGRES_URL="${BENCH_POSTGRES_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/budapp_bench}"
OUT="$ROOT/benchmarks/out/$DB"
WRK_DIR="$ROOT/benchmarks/wrk"

# --- load tool ----------------------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
  echo "== installing wrk (Debian package)"
  SUDO=""
  [[ $EUID -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get install -y wrk >/dev/null 2>&1 ||
    { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y wrk >/dev/null; }
fi
command -v curl >/dev/null 2>&1 || { echo "curl is required" >&2; exit 1; }

# --- environment --------------------------------------------------------------------------------
uv sync --frozen --quiet
PY="$(uv run --frozen --quiet python -c 'import sys; print(sys.executable)')"

rm -rf "$OUT"
mkdir -p "$OUT/data"

# Only the settings below; nothing inherited from the caller's BUDAPP_* variables or a .env.
for name in $(compgen -e | grep '^BUDAPP_' || true); do unset "$name"; done
export BUDAPP_DATA_DIR="$OUT/data"
export BUDAPP_LOG_LEVEL=WARNING
export BUDAPP_ACCESS_LOG=false
export BUDAPP_REDIS_URL=""
export BUDAPP_AUTO_MIGRATE=false
# All load comes from 127.0.0.1; the per-address login limit (30 a minute) would otherwise turn
# the login scenario into a 429 benchmark. The argon2 cost stays at its production default.
export BUDAPP_LOGIN_MAX_ATTEMPTS_PER_ADDRESS=1000000000
if [[ "$DB" == sqlite ]]; then
  export BUDAPP_DATABASE_URL="sqlite+aiosqlite:///$OUT/data/budapp.db"
else
  export BUDAPP_DATABASE_URL="$POSTGRES_URL"
fi
export BENCH_EMAIL="${BENCH_EMAIL:-bench-admin@example.com}"
export BENCH_PASSWORD="${BENCH_PASSWORD:-bench-Passw0rd-2026}"
export BENCH_PROJECTS="${BENCH_PROJECTS:-10000}"
# Run from the output folder: pydantic-settings reads `.env` from the working directory, and a
# developer's .env must not change the benchmark. `benchmarks` is found through PYTHONPATH.
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [[ -f "$ROOT/.env" ]]; then echo "note: $ROOT/.env is ignored by the benchmark" >&2; fi
cd "$OUT"
export BENCH_SETTINGS="wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency --timeout $TIMEOUT, best of $REPEAT runs after a $WARMUP warm-up; 1 uvicorn worker; $BENCH_PROJECTS projects; nice $NICE"

# --- database -----------------------------------------------------------------------------------
echo "== seeding $DB"
"$PY" -m benchmarks.seed reset
uv run --project "$ROOT" --frozen --quiet budapp migrate
"$PY" -m benchmarks.seed seed
if [[ "$DB" == postgres ]]; then
  BENCH_POSTGRES_VERSION="$("$PY" -m benchmarks.seed version)"
  export BENCH_POSTGRES_VERSION
fi

# --- server -------------------------------------------------------------------------------------
if curl -s -o /dev/null -m 2 "$BASE/"; then
  echo "something already listens on $BASE (another benchmark run?); set BENCH_PORT" >&2
  exit 1
fi
echo "== starting one uvicorn worker on $BASE"
nice -n "$NICE" "$PY" -m benchmarks.app --host "$HOST" --port "$PORT" >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
stop_server() {
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for _ in $(seq 1 120); do
  curl -fsS -o /dev/null "$BASE/bench/hello" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/server.log" >&2; exit 1; }
  sleep 0.5
done
curl -fsS -o /dev/null "$BASE/bench/hello"

login() {
  curl -fsS -H 'Content-Type: application/json' \
    -d "{\"email\":\"$BENCH_EMAIL\",\"password\":\"$BENCH_PASSWORD\"}" "$BASE/auth/login" |
    "$PY" -c 'import json, sys; print(json.load(sys.stdin)["data"]["access_token"])'
}

# Fails the run if a scenario's single request does not answer what the benchmark assumes.
check() {
  local path="$1" expectation="$2"
  curl -fsS -H "Authorization: Bearer $BENCH_TOKEN" "$BASE$path" |
    "$PY" -c "import json, sys; body = json.load(sys.stdin); assert $expectation, body['meta']"
}

server_ticks() {
  # utime + stime of the server process, all its threads included (aiosqlite, argon2).
  awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"
}

seconds() {
  # wrk durations (15s, 2m, 1h) in seconds, for py-spy.
  local value="$1"
  case "$value" in
    *h) echo $((${value%h} * 3600)) ;;
    *m) echo $((${value%m} * 60)) ;;
    *s) echo "${value%s}" ;;
    *) echo "$value" ;;
  esac
}

machine_ticks() {
  # Busy and total CPU ticks of the whole machine, all cores.
  awk '/^cpu / {total = 0; for (i = 2; i <= NF; i++) total += $i; print total - $5 - $6, total}' /proc/stat
}

# Waits until the server has finished the requests the warm-up left in flight (wrk stops
# sending, not the server working), so that they do not eat into the measured run.
wait_idle() {
  local before after
  for _ in $(seq 1 120); do
    before="$(server_ticks)"
    sleep 0.5
    after="$(server_ticks)"
    (( after - before <= 2 )) && return 0
  done
  echo "warning: the server did not become idle after the warm-up" >&2
}

scenario() {
  local name="$1" path="$2" script="$3"
  echo "== $name: $path"
  nice -n "$NICE" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" --timeout "$TIMEOUT" \
    -s "$WRK_DIR/$script" \
    "$BASE$path" >/dev/null
  wait_idle
  local run before after started ended machine_before machine_after profiler
  for run in $(seq 1 "$REPEAT"); do
    profiler=""
    if [[ "$PROFILE" == 1 && "$name" == projects && "$run" == 1 ]]; then
      # Samples every thread without pausing the server; the run is slower for it.
      uvx --quiet py-spy record --nonblocking --threads --rate 100 --format raw \
        --duration "$(seconds "$DURATION")" --pid "$SERVER_PID" \
        --output "$OUT/$name.pyspy.txt" >"$OUT/$name.pyspy.log" 2>&1 &
      profiler=$!
      sleep 1
    fi
    before="$(server_ticks)"
    machine_before="$(machine_ticks)"
    started="$(date +%s.%N)"
    nice -n "$NICE" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout "$TIMEOUT" --latency \
      -s "$WRK_DIR/$script" "$BASE$path" | tee "$OUT/$name.$run.txt"
    ended="$(date +%s.%N)"
    after="$(server_ticks)"
    machine_after="$(machine_ticks)"
    echo "$((after - before)) $(awk "BEGIN { print $ended - $started }") $(getconf CLK_TCK)" \
      "$machine_before $machine_after" >"$OUT/$name.$run.cpu"
    if [[ -n "$profiler" ]]; then
      wait "$profiler" || echo "warning: py-spy failed, see $OUT/$name.pyspy.log" >&2
      "$PY" -m benchmarks.profile_summary "$OUT/$name.pyspy.txt" | tee "$OUT/$name.pyspy.summary"
    fi
    wait_idle
  done
}

# Another process busy on this machine makes every number below wrong: measure and report it.
read -r busy_before total_before <<<"$(machine_ticks)"
sleep 2
read -r busy_after total_after <<<"$(machine_ticks)"
BACKGROUND="$(awk "BEGIN { printf \"%.1f\", 100 * ($busy_after - $busy_before) / ($total_after - $total_before) }")"
echo "$BACKGROUND" >"$OUT/background.txt"
echo "== background CPU load before the runs: $BACKGROUND% of the machine"
if awk "BEGIN { exit !($BACKGROUND > 10) }"; then
  echo "warning: something else is using the CPU; the results will be noisy" >&2
fi

export BENCH_TOKEN=""
scenario hello /bench/hello get.lua

BENCH_TOKEN="$(login)"
check /auth/me "body['data']['email'] == '$BENCH_EMAIL' and body['data']['projects']"
scenario me /auth/me get.lua

BENCH_TOKEN="$(login)"
check /projects "len(body['data']) == 20 and body['meta']['total'] == $BENCH_PROJECTS"
scenario projects /projects get.lua

BENCH_TOKEN=""
scenario login /auth/login login.lua

stop_server
trap - EXIT INT TERM

# --- results ------------------------------------------------------------------------------------
COMMAND="benchmarks/run.sh $DB"
for knob in BENCH_PROFILE BENCH_NICE BENCH_REPEAT BENCH_THREADS BENCH_CONNECTIONS BENCH_WARMUP \
  BENCH_DURATION; do
  if [[ -n "${!knob:-}" ]]; then COMMAND="$knob=${!knob} $COMMAND"; fi
done
if [[ "$PROFILE" == 1 ]]; then
  COMMAND="$COMMAND (profiled: GET /projects is slowed by py-spy)"
fi
"$PY" -m benchmarks.report "$OUT" --db "$DB" --command "$COMMAND" | tee "$OUT/summary.md"
{
  echo
  cat "$OUT/results.md"
} >>"$ROOT/benchmarks/out/history.md"
if [[ $RECORD -eq 1 ]]; then
  {
    echo
    cat "$OUT/results.md"
  } >>"$ROOT/benchmarks/RESULTS.md"
  echo "== appended to benchmarks/RESULTS.md"
fi
