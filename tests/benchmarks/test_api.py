"""Benchmarks through the API: a deployed endpoint and a router (through budapp's own gateway,
over real HTTP), their results, exports, charts, comparison, the leaderboard, cancel, and bad
input refused before anything starts."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import httpx
import orjson
from fastapi import FastAPI

from budapp.benchmarks.environment import BENCHMARK_ENVIRONMENT
from budapp.core.components import components
from budapp.events.service import ORG_EVENTS_TOPIC
from tests.benchmarks.conftest import benchmark_body, wait_for_benchmark
from tests.endpoints.conftest import wait_for_run
from tests.factories import World
from tests.gateway.conftest import create_router
from tests.sim.conftest import SimFactory


async def deployed_endpoint(
    client: httpx.AsyncClient, world: World, model: dict[str, Any], cluster: str
) -> str:
    headers = world["project_admin"].headers
    created = await client.post(
        "/endpoints",
        json={
            "project_id": str(world.project_a),
            "name": f"served-{uuid.uuid4().hex[:6]}",
            "model_id": model["id"],
            "cluster_id": cluster,
            "runtime": "sim",
        },
        headers=headers,
    )
    endpoint_id: str = created.json()["data"]["id"]
    deployed = await client.post(f"/endpoints/{endpoint_id}/deploy", headers=headers)
    run = await wait_for_run(client, deployed.json()["data"]["workflow_id"], headers)
    assert run["status"] == "SUCCEEDED", run
    return endpoint_id


async def start(
    client: httpx.AsyncClient, world: World, body: dict[str, Any], by: str = "project_admin"
) -> dict[str, Any]:
    response = await client.post(
        f"/projects/{world.project_a}/benchmarks", json=body, headers=world[by].headers
    )
    assert response.status_code == 202, response.text
    created: dict[str, Any] = response.json()["data"]
    return created


async def test_a_sweep_of_a_deployed_endpoint_lands_on_the_leaderboard(
    client: httpx.AsyncClient, world: World, model: dict[str, Any], cluster: str
) -> None:
    headers = world["project_admin"].headers
    endpoint_id = await deployed_endpoint(client, world, model, cluster)
    body = benchmark_body(
        {"kind": "endpoint", "endpoint_id": endpoint_id},
        # Two points: synchronous and maximum throughput (the rates interpolated between
        # them depend on the two measured: tests/benchmarks/test_plans.py).
        profile={"kind": "sweep", "points": 2, "max_concurrency": 4},
        bounds={"duration_seconds": 1.0, "drain_seconds": 5},
        slos={"ttft_ms": 5000},
    )
    created = await start(client, world, body)
    assert created["command"].startswith("budapp bench run --url http://127.0.0.1:")
    for option in ("--profile sweep", "--points 2", "--max-concurrency 4", "--slo-ttft-ms 5000"):
        assert option in created["command"]
    run = await wait_for_benchmark(client, created["id"], headers)
    assert run["status"] == "SUCCEEDED", run
    assert run["partial"] is False
    assert run["snapshot"]["runtime"] == "sim"
    assert run["snapshot"]["model"]["id"] == model["id"]

    results = (await client.get(f"/benchmarks/{run['id']}/results", headers=headers)).json()
    stages = results["data"]["stages"]
    assert [stage["stage"]["label"] for stage in stages] == ["synchronous", "throughput"]
    for stage in stages:
        metrics = stage["metrics"]
        assert metrics["requests"]["succeeded"] > 0
        assert set(metrics["ttft_ms"]) >= {"mean", "std", "p50", "p90", "p95", "p99", "p99_9"}
        assert metrics["tokens"]["source"] == "usage"
        assert metrics["goodput"] is not None
    assert results["data"]["summary"]["headline_stage"] == 1

    board = await client.get(
        "/models/leaderboard",
        params={"metric": "tpot_p50_ms", "by": "endpoint"},
        headers=headers,
    )
    entries = board.json()["data"]
    assert {entry["model_id"] for entry in entries} == {model["id"]}
    assert {entry["endpoint_id"] for entry in entries} == {endpoint_id}
    assert {entry["runtime"] for entry in entries} == {"sim"}
    # The synchronous and the throughput stages: two loads, never ranked together.
    assert sorted(entry["conditions"] for entry in entries) == [
        "chat in=16 out=8 concurrency=1",
        "chat in=16 out=8 concurrency=4",
    ]

    for kind in ("latency", "ttft", "tpot", "throughput"):
        svg = await client.get(f"/benchmarks/{run['id']}/charts/{kind}", headers=headers)
        assert svg.status_code == 200
        assert svg.headers["content-type"] == "image/svg+xml"
        assert svg.content.lstrip().startswith(b"<?xml")
    png = await client.get(
        f"/benchmarks/{run['id']}/charts/latency", params={"format": "png"}, headers=headers
    )
    assert png.content.startswith(b"\x89PNG")

    exported = await client.get(f"/benchmarks/{run['id']}/export", headers=headers)
    assert orjson.loads(exported.content)["results"]["stages"][0]["stage"]["index"] == 0
    table = await client.get(
        f"/benchmarks/{run['id']}/export", params={"format": "csv"}, headers=headers
    )
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert [row["label"] for row in rows][:2] == ["synchronous", "throughput"]
    lines = await client.get(
        f"/benchmarks/{run['id']}/export", params={"format": "jsonl"}, headers=headers
    )
    records = [orjson.loads(line) for line in lines.text.splitlines()]
    total = sum(stage["metrics"]["requests"]["finished"] for stage in stages)
    assert len([r for r in records if r["status"] != "aborted"]) == total
    page = await client.get(
        f"/benchmarks/{run['id']}/requests", params={"limit": 2}, headers=headers
    )
    assert len(page.json()["data"]) == 2
    following = await client.get(
        f"/benchmarks/{run['id']}/requests",
        params={"limit": 2, "after": page.json()["meta"]["next_cursor"]},
        headers=headers,
    )
    assert following.json()["data"][0] != page.json()["data"][0]

    deleted = await client.delete(f"/benchmarks/{run['id']}", headers=headers)
    assert deleted.status_code == 204
    board = await client.get("/models/leaderboard", params={"by": "endpoint"}, headers=headers)
    assert board.json()["data"] == []


async def test_a_router_is_measured_through_the_gateway_with_a_key_of_its_own(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    gateway_url: str,
    start_sim: SimFactory,
) -> None:
    components(app)[BENCHMARK_ENVIRONMENT].gateway_url = gateway_url
    headers = world["project_admin"].headers
    sim = start_sim(output_tokens_min=8, output_tokens_max=8)
    router = await create_router(
        client, world, [{"kind": "url", "base_url": sim.base_url + "/v1"}], name="bench-chat"
    )
    runs = []
    for concurrency in (1, 3):
        body = benchmark_body(
            {"kind": "router", "router_id": router["id"]},
            name=f"c{concurrency}",
            profile={"kind": "concurrency", "concurrency": concurrency},
        )
        created = await start(client, world, body)
        assert created["api_key_id"] is not None
        assert "--api-key-env BUDAPP_API_KEY" in created["command"]
        run = await wait_for_benchmark(client, created["id"], headers)
        assert run["status"] == "SUCCEEDED", run
        runs.append(run)
        key = await client.get(
            f"/projects/{world.project_a}/api-keys/{run['api_key_id']}", headers=headers
        )
        assert key.json()["data"]["status"] == "revoked"
    results = (await client.get(f"/benchmarks/{runs[0]['id']}/results", headers=headers)).json()
    metrics = results["data"]["stages"][0]["metrics"]
    assert metrics["requests"]["succeeded"] == 6
    assert metrics["tokens"]["output"] == 6 * 8
    # The gateway metered the calls like any others: the whole path was measured.
    ids = [run["id"] for run in runs]
    compared = await client.get("/benchmarks/compare", params={"ids": ids}, headers=headers)
    assert compared.status_code == 200, compared.text
    data = compared.json()["data"]
    assert [row["id"] for row in data["runs"]] == ids
    assert "ttft_p50" in data["deltas"][0]["figures"]
    overlay = await client.get(
        "/benchmarks/compare/charts/latency", params={"ids": ids}, headers=headers
    )
    assert overlay.status_code == 200
    assert overlay.content.count(b"c1 p50") >= 1
    assert overlay.content.count(b"c3 p50") >= 1
    # Router runs report no leaderboard results: a router mixes targets.
    board = await client.get("/models/leaderboard", headers=headers)
    assert board.json()["data"] == []


async def test_a_cancelled_run_keeps_what_it_measured(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    start_sim: SimFactory,
    private_urls_allowed: None,
) -> None:
    heard: list[dict[str, Any]] = []
    components(app).event_bus.subscribe(
        ORG_EVENTS_TOPIC,
        lambda event: heard.append(event) if event and event["type"].startswith("bench") else None,
    )
    headers = world["project_admin"].headers
    sim = start_sim(ttft_ms=20)
    body = benchmark_body(
        {"kind": "url", "base_url": sim.base_url + "/v1", "model": "m"},
        profile={"kind": "rate", "rate": 20, "arrivals": "constant"},
        bounds={"duration_seconds": 60},
    )
    created = await start(client, world, body)
    for _ in range(200):
        shown = (await client.get(f"/benchmarks/{created['id']}", headers=headers)).json()
        if shown["data"]["progress"].get("requests_done", 0) >= 3:
            break
        await _pause()
    cancelled = await client.post(f"/benchmarks/{created['id']}/cancel", headers=headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["data"]["status"] == "CANCELLED"
    assert cancelled.json()["data"]["partial"] is True
    for _ in range(100):
        results = await client.get(f"/benchmarks/{created['id']}/results", headers=headers)
        if results.json()["data"]["stages"]:
            break
        await _pause()
    stage = results.json()["data"]["stages"][0]
    assert stage["stop_reason"] == "cancelled"
    assert stage["partial"] is True
    assert stage["metrics"]["requests"]["succeeded"] >= 3
    again = await client.post(f"/benchmarks/{created['id']}/cancel", headers=headers)
    assert again.status_code == 409
    # Live progress reached the WebSocket's topic: requests done, rate, TTFT and TPOT.
    progress = [e["data"] for e in heard if e["type"] == "benchmark.progress"]
    assert progress
    assert {"requests_done", "current_rate", "ttft_p50_ms", "tpot_p50_ms"} <= set(progress[-1])
    assert {e["data"]["benchmark_id"] for e in heard} == {created["id"]}
    statuses = [e["data"]["status"] for e in heard if e["type"] == "benchmark.status"]
    assert statuses[0] == "RUNNING"
    assert statuses[-1] == "CANCELLED"
    step = await client.get(f"/workflows/{created['workflow_id']}", headers=headers)
    measure = next(s for s in step.json()["data"]["steps"] if s["name"] == "measure")
    assert measure["detail"].startswith("stage 1 of at most 1 (rate 20/s)")


async def _pause() -> None:
    import asyncio  # noqa: PLC0415

    await asyncio.sleep(0.1)
