#!/usr/bin/env bash
# Installs budapp with its locked dependencies and runs the whole test suite: on SQLite, then on
# PostgreSQL when it is reachable (required when BUDAPP_REQUIRE_POSTGRES=1, as in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/uv.sh
$UV sync --frozen --quiet

postgres_url="${BUDAPP_TEST_POSTGRES_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/budapp_test}"

echo "== tests on SQLite"
env -u BUDAPP_TEST_DATABASE_URL $UV run pytest -q "$@"

if $UV run python scripts/wait_for.py postgres "$postgres_url" --timeout 3; then
  echo "== tests on PostgreSQL"
  BUDAPP_TEST_DATABASE_URL="$postgres_url" $UV run pytest -q "$@"
elif [ "${BUDAPP_REQUIRE_POSTGRES:-0}" = "1" ]; then
  echo "PostgreSQL is required (BUDAPP_REQUIRE_POSTGRES=1) but not reachable at $postgres_url" >&2
  exit 1
else
  echo "== PostgreSQL not reachable at $postgres_url: skipped the PostgreSQL run" >&2
fi
