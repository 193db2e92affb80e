# `make run` and `make test` are the README's two commands; both install what they need.
SHELL := /bin/bash

.PHONY: run test lint format migrate bench

run:
	@source scripts/uv.sh && $$UV sync --frozen --quiet && $$UV run budapp serve

test:
	@bash scripts/test.sh

lint:
	@bash scripts/lint.sh

format:
	@source scripts/uv.sh && $$UV run ruff format src tests migrations benchmarks scripts && $$UV run ruff check --fix src tests migrations benchmarks scripts

migrate:
	@source scripts/uv.sh && $$UV run budapp migrate

bench:
	@bash benchmarks/run.sh sqlite
