"""The load generator's own ceiling: how many streamed requests a second one generator process
sustains against budapp-sim (no delays, 16 tokens, one worker in its own process), with
budapp's generator (aiohttp) and with the same streaming loop written on httpx.

    uv run python benchmarks/loadgen.py [--seconds 10] [--concurrency 32]

Prints one line per client; record them in RESULTS.md with the machine's load."""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
import orjson
from tests.benchmarks.conftest import sim_in_process

from budapp.benchmarks.config import BenchmarkConfig
from budapp.benchmarks.loadgen import LoadGenerator, Stage, Target
from budapp.benchmarks.prompts import PromptSource


def config(seconds: float) -> BenchmarkConfig:
    return BenchmarkConfig.model_validate(
        {
            "profile": {"kind": "concurrency", "concurrency": 1},
            "prompts": {"input_tokens": {"value": 32}, "output_tokens": {"value": 16}},
            "bounds": {"duration_seconds": seconds, "drain_seconds": 5},
        }
    )


async def with_aiohttp(base: str, seconds: float, concurrency: int) -> tuple[int, float]:
    cfg = config(seconds)
    generator = LoadGenerator(Target((base + "/v1",), "m"), cfg, PromptSource(cfg))
    started = time.process_time()
    outcome = await generator.run_stage(Stage(0, "c", "closed", concurrency))
    ok = sum(1 for r in outcome.records if r.status == "ok")
    return ok, time.process_time() - started


async def with_httpx(base: str, seconds: float, concurrency: int) -> tuple[int, float]:
    cfg = config(seconds)
    prompts = PromptSource(cfg)
    done = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    started = time.process_time()
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def worker(offset: int) -> None:
            nonlocal done
            sequence = offset
            while time.perf_counter() < deadline:
                body = prompts.body(prompts.prompt(sequence), "m")
                async with client.stream("POST", "/v1/chat/completions", json=body) as reply:
                    async for line in reply.aiter_lines():
                        if line.startswith("data:") and line[5:].strip() != "[DONE]":
                            orjson.loads(line[5:])
                done += 1
                sequence += concurrency

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return done, time.process_time() - started


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    options = parser.parse_args()
    with sim_in_process("--log-level", "warning") as base:
        for name, run in (("aiohttp (budapp)", with_aiohttp), ("httpx", with_httpx)):
            ok, cpu = await run(base, options.seconds, options.concurrency)
            rate = ok / options.seconds
            print(
                f"{name:18} {rate:8.0f} streamed req/s  {cpu / ok * 1e6:6.0f} µs CPU/request"
                f"  (concurrency {options.concurrency}, {options.seconds:g} s)"
            )


if __name__ == "__main__":
    asyncio.run(main())
