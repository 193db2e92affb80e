#!/usr/bin/env bash
# The one lint command: formatting, lint rules, strict types, and the layer contracts.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/uv.sh
$UV sync --frozen --quiet
$UV run ruff format --check src tests migrations benchmarks scripts
$UV run ruff check src tests migrations benchmarks scripts
$UV run mypy
$UV run lint-imports
