#!/usr/bin/env bash
# Added latency and sustained req/s of budapp's gateway: the same budapp-sim backend called
# directly and through `budapp gateway` (usage metering and rate limits on), with wrk.
#
#   benchmarks/gateway.sh [--record]     # --record appends the table to benchmarks/RESULTS.md
#
# Knobs: BENCH_DURATION (10s), BENCH_WARMUP (2s), BENCH_REPEAT (2), BENCH_CONNECTIONS (16).
# Outputs in benchmarks/out/gateway/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
command -v wrk >/dev/null 2>&1 || { echo "wrk is needed (apt-get install -y wrk)" >&2; exit 1; }
source scripts/uv.sh
exec $UV run --frozen --quiet python -m benchmarks.gateway "$@"
