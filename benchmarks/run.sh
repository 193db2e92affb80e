#!/usr/bin/env bash
# Load benchmark of budapp on one uvicorn worker: GET /bench/hello (the ceiling), GET /auth/me,
# GET /projects (a page of 20 out of 10,000) and POST /auth/login (argon2-bound).
#
#   benchmarks/run.sh sqlite|postgres [--record]
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
export BENCH_SETTINGS="wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency --timeout $TIMEOUT after a $WARMUP warm-up; 1 uvicorn worker; $BENCH_PROJECTS projects"

# --- database -----------------------------------------------------------------------------------
echo "== seeding $DB"
"$PY" -m benchmarks.seed reset
uv run --frozen --quiet budapp migrate
"$PY" -m benchmarks.seed seed
if [[ "$DB" == postgres ]]; then
  BENCH_POSTGRES_VERSION="$("$PY" -m benchmarks.seed version)"
  export BENCH_POSTGRES_VERSION
fi

# --- server -------------------------------------------------------------------------------------
echo "== starting one uvicorn worker on $BASE"
"$PY" -m benchmarks.app --host "$HOST" --port "$PORT" >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
stop_server() {
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}
trap stop_server EXIT

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

scenario() {
  local name="$1" path="$2" script="$3"
  echo "== $name: $path"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" --timeout "$TIMEOUT" -s "$WRK_DIR/$script" \
    "$BASE$path" >/dev/null
  local before after started ended
  before="$(server_ticks)"
  started="$(date +%s.%N)"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout "$TIMEOUT" --latency \
    -s "$WRK_DIR/$script" "$BASE$path" | tee "$OUT/$name.txt"
  ended="$(date +%s.%N)"
  after="$(server_ticks)"
  echo "$((after - before)) $(awk "BEGIN { print $ended - $started }") $(getconf CLK_TCK)" >"$OUT/$name.cpu"
}

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
trap - EXIT

# --- results ------------------------------------------------------------------------------------
COMMAND="benchmarks/run.sh $DB"
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
