"""Bad input is a clear 4xx and starts nothing; who may run, see and cancel benchmarks."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from budapp.benchmarks.config import BenchmarkConfig
from budapp.benchmarks.environment import BENCHMARK_ENVIRONMENT
from budapp.benchmarks.plans import next_stage
from budapp.core.components import components
from tests.benchmarks.conftest import benchmark_body
from tests.factories import World
from tests.sim.conftest import SimFactory


def url_target(base_url: str) -> dict[str, Any]:
    return {"kind": "url", "base_url": base_url + "/v1", "model": "m"}


async def runs(client: httpx.AsyncClient, world: World) -> int:
    listed = await client.get("/benchmarks", headers=world["org_admin"].headers)
    return int(listed.json()["meta"]["total"])


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"profile": {"kind": "concurrency", "concurrency": 0}}, "profile.concurrency.concurrency"),
        ({"profile": {"kind": "rate", "rate": -1}}, "profile.rate.rate"),
        ({"profile": {"kind": "capacity", "high": 10}}, "body"),
        ({"bounds": {"duration_seconds": 0}}, "bounds.duration_seconds"),
    ],
)
async def test_invalid_loads_are_refused(
    client: httpx.AsyncClient, world: World, fields: dict[str, Any], field: str
) -> None:
    body = benchmark_body(url_target("http://127.0.0.1:9"), **fields)
    response = await client.post(
        f"/projects/{world.project_a}/benchmarks", json=body, headers=world["user"].headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert await runs(client, world) == 0


async def test_operator_ceilings_are_never_exceeded(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    environment = components(app)[BENCHMARK_ENVIRONMENT]
    for fields, message in (
        ({"bounds": {"duration_seconds": environment.max_duration_seconds}}, "exceed"),
        ({"profile": {"kind": "rate", "rate": environment.max_rate * 2}}, "rate"),
        (
            {"profile": {"kind": "concurrency", "concurrency": environment.max_concurrency + 1}},
            "concurrency",
        ),
    ):
        body = benchmark_body(url_target("http://127.0.0.1:9"), **fields)
        response = await client.post(
            f"/projects/{world.project_a}/benchmarks", json=body, headers=world["user"].headers
        )
        assert response.status_code == 422, response.text
        assert message in response.json()["error"]["message"]
    assert await runs(client, world) == 0


async def test_unreachable_private_and_foreign_targets_are_refused(
    app: FastAPI, client: httpx.AsyncClient, world: World, start_sim: SimFactory
) -> None:
    headers = world["user"].headers
    path = f"/projects/{world.project_a}/benchmarks"
    environment = components(app)[BENCHMARK_ENVIRONMENT]
    before = environment.allow_private_urls
    try:
        environment.allow_private_urls = False
        sim = start_sim()
        private = await client.post(
            path, json=benchmark_body(url_target(sim.base_url)), headers=headers
        )
        assert private.status_code == 422
        assert "BUDAPP_BENCHMARK_ALLOW_PRIVATE_URLS" in private.json()["error"]["message"]
        environment.allow_private_urls = True
        unreachable = await client.post(
            path, json=benchmark_body(url_target("http://127.0.0.1:9")), headers=headers
        )
        assert unreachable.status_code == 422
        assert "unreachable" in unreachable.json()["error"]["message"]
    finally:
        environment.allow_private_urls = before
    foreign = await client.post(
        path,
        json=benchmark_body({"kind": "endpoint", "endpoint_id": str(uuid.uuid4())}),
        headers=headers,
    )
    assert foreign.status_code == 404
    other_project = await client.post(
        f"/projects/{world.project_b}/benchmarks",
        json=benchmark_body(url_target("http://127.0.0.1:9")),
        headers=headers,
    )
    assert other_project.status_code == 404
    outsider = await client.post(
        path,
        json=benchmark_body(url_target("http://127.0.0.1:9")),
        headers=world["outsider"].headers,
    )
    assert outsider.status_code == 404
    assert await runs(client, world) == 0


async def test_a_dataset_without_a_usable_column_is_refused(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = world["project_admin"].headers
    uploaded = await client.post(
        "/datasets",
        data={"name": f"numbers-{uuid.uuid4().hex[:6]}"},
        files={"file": ("d.jsonl", b'{"n": 1, "text": "hello"}\n{"n": 2, "text": "bye"}\n')},
        headers=headers,
    )
    assert uploaded.status_code == 201, uploaded.text
    dataset_id = uploaded.json()["data"]["id"]
    for column, wanted in (("n", "holds no prompts"), ("missing", "has no column")):
        body = benchmark_body(
            url_target("http://127.0.0.1:9"),
            prompts={"kind": "dataset", "dataset_id": dataset_id, "column": column},
        )
        response = await client.post(
            f"/projects/{world.project_a}/benchmarks", json=body, headers=headers
        )
        assert response.status_code == 422, response.text
        assert wanted in response.json()["error"]["message"]
    assert await runs(client, world) == 0


async def test_reading_needs_the_project_and_another_tenant_sees_nothing(
    client: httpx.AsyncClient, world: World
) -> None:
    missing = uuid.uuid4()
    for actor in ("user", "user_b", "org_admin_b"):
        response = await client.get(f"/benchmarks/{missing}", headers=world[actor].headers)
        assert response.status_code == 404
    listed = await client.get(
        f"/projects/{world.project_a}/benchmarks", headers=world["user_b"].headers
    )
    assert listed.status_code == 404
    assert (await client.get("/benchmarks")).status_code == 401


def test_a_sweep_interpolates_rates_between_the_two_it_measured() -> None:
    config = BenchmarkConfig.model_validate({"profile": {"kind": "sweep", "points": 5}})
    done = [
        {"stage": {}, "metrics": {"request_throughput": 2.0}},
        {"stage": {}, "metrics": {"request_throughput": 10.0}},
    ]
    rates = []
    while (stage := next_stage(config, done)) is not None:
        rates.append(stage.rate)
        done.append({"stage": stage.describe(), "metrics": {"request_throughput": stage.rate}})
    assert rates == [4.0, 6.0, 8.0]
    capped = next_stage(config, done[:2], max_rate=3.0)
    assert capped is not None
    assert capped.rate == 3.0
