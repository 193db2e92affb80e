#!/usr/bin/env bash
# Load benchmark of budapp-sim, the inference simulator, on one uvicorn worker with wrk:
# non-streaming chat, completions and embeddings, and streaming chat (unpaced and paced).
#
#   benchmarks/sim.sh [--record]          # --record appends the table to benchmarks/RESULTS.md
#   benchmarks/sim.sh --only chat         # one scenario (not recordable)
#
# Knobs: BENCH_PORT (9391), BENCH_DURATION (10s), BENCH_WARMUP (3s), BENCH_CONNECTIONS (32),
# BENCH_REPEAT (3), BENCH_NICE (0; e.g. -10 as root on a shared machine).
# Outputs in benchmarks/out/sim/. See benchmarks/README.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! command -v wrk >/dev/null 2>&1; then
  echo "== installing wrk (Debian package)"
  SUDO=""
  [[ $EUID -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get install -y wrk >/dev/null 2>&1 ||
    { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y wrk >/dev/null; }
fi
source scripts/uv.sh
$UV sync --frozen --quiet
if curl -s -o /dev/null -m 2 "http://127.0.0.1:${BENCH_PORT:-9391}/"; then
  echo "something already listens on port ${BENCH_PORT:-9391}; set BENCH_PORT" >&2
  exit 1
fi
exec $UV run --frozen --quiet python -m benchmarks.sim "$@"
