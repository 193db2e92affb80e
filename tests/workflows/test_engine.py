"""Workflows run on the durable engine with their steps recorded: retries, permanent
failures, cancel and retry over the API, and who may see and control a run."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.factories import World
from tests.workflows.conftest import start_run, wait_for_status


@pytest.fixture
def control(tmp_path: Path) -> Path:
    return tmp_path


def _executions(control: Path) -> list[str]:
    path = control / "executions"
    return path.read_text().split() if path.exists() else []


async def test_a_run_goes_through_its_steps(
    app: FastAPI, client: httpx.AsyncClient, world: World, control: Path
) -> None:
    run_id = await start_run(app, control, organization_id=world.org_a, project_id=world.project_a)
    body = await wait_for_status(client, run_id, world["org_admin"].headers, {"SUCCEEDED"})
    assert body["progress"] == 1.0
    assert (body["steps_done"], body["steps_total"]) == (3, 3)
    assert [(s["name"], s["status"], s["attempts"]) for s in body["steps"]] == [
        ("prepare", "SUCCEEDED", 1),
        ("work", "SUCCEEDED", 1),
        ("finish", "SUCCEEDED", 1),
    ]
    assert all(s["started_at"] and s["finished_at"] for s in body["steps"])
    assert body["started_at"]
    assert body["finished_at"]
    assert _executions(control) == ["prepare", "work", "finish"]


async def test_a_failing_step_is_retried_then_the_run_fails_with_its_error(
    app: FastAPI, client: httpx.AsyncClient, world: World, control: Path
) -> None:
    (control / "fail-work").touch()
    run_id = await start_run(app, control, organization_id=world.org_a, project_id=world.project_a)
    headers = world["org_admin"].headers
    body = await wait_for_status(client, run_id, headers, {"FAILED"})
    assert body["error"] == "work was told to fail"
    steps = {s["name"]: s for s in body["steps"]}
    assert (steps["work"]["status"], steps["work"]["attempts"]) == ("FAILED", 3)
    assert steps["work"]["error"] == "work was told to fail"
    assert steps["finish"]["status"] == "PENDING"
    assert _executions(control) == ["prepare", "work", "work", "work"]

    # Fix the cause, retry: a new run with the same arguments.
    (control / "fail-work").unlink()
    retried = await client.post(f"/workflows/{run_id}/retry", headers=headers)
    assert retried.status_code == 202, retried.text
    fresh = retried.json()["data"]
    assert fresh["retry_of"] == str(run_id)
    done = await wait_for_status(client, fresh["id"], headers, {"SUCCEEDED"})
    assert done["arguments"] == {"dir": str(control)}
    # A succeeded run cannot be retried.
    again = await client.post(f"/workflows/{fresh['id']}/retry", headers=headers)
    assert again.status_code == 409


async def test_cancel_stops_the_run_at_the_next_step(
    app: FastAPI, client: httpx.AsyncClient, world: World, control: Path
) -> None:
    (control / "hold-work").touch()
    run_id = await start_run(app, control, organization_id=world.org_a, project_id=world.project_a)
    headers = world["project_admin"].headers
    # Wait until "work" is holding: "prepare" is then done.
    while True:
        body = await wait_for_status(client, run_id, headers, {"RUNNING"})
        if body["steps"][1]["detail"] == "holding":
            break
    response = await client.post(f"/workflows/{run_id}/cancel", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()["data"]
    assert body["status"] == "CANCELLED"
    assert {s["name"]: s["status"] for s in body["steps"]} == {
        "prepare": "SUCCEEDED",
        "work": "FAILED",
        "finish": "SKIPPED",
    }
    (control / "hold-work").unlink()
    # The engine stops the run before its next step: "finish" never executes.
    import asyncio  # noqa: PLC0415

    await asyncio.sleep(0.5)
    assert "finish" not in _executions(control)
    final = (await client.get(f"/workflows/{run_id}", headers=headers)).json()["data"]
    assert final["status"] == "CANCELLED"
    assert (await client.post(f"/workflows/{run_id}/cancel", headers=headers)).status_code == 409


async def test_visibility_and_control_follow_project_permissions(
    app: FastAPI, client: httpx.AsyncClient, world: World, control: Path
) -> None:
    run_id = await start_run(app, control, organization_id=world.org_a, project_id=world.project_a)
    await wait_for_status(client, run_id, world["org_admin"].headers, {"SUCCEEDED"})
    # A developer of project A sees it; someone of A outside the project and anyone of B don't.
    assert (
        await client.get(f"/workflows/{run_id}", headers=world["user"].headers)
    ).status_code == 200
    for outsider in ("outsider", "user_b", "org_admin_b"):
        response = await client.get(f"/workflows/{run_id}", headers=world[outsider].headers)
        assert response.status_code == 404
    listed = await client.get("/workflows", headers=world["user"].headers)
    assert [row["id"] for row in listed.json()["data"]] == [str(run_id)]
    assert (await client.get("/workflows", headers=world["user_b"].headers)).json()["data"] == []
    filtered = await client.get(
        "/workflows", params={"status": "FAILED"}, headers=world["org_admin"].headers
    )
    assert filtered.json()["meta"]["total"] == 0
    bad = await client.get("/workflows", params={"status": "NOPE"}, headers=world["user"].headers)
    assert bad.status_code == 422
    assert (await client.get("/workflows")).status_code == 401
    assert (await client.get(f"/workflows/{run_id}")).status_code == 401
    for action in ("cancel", "retry"):
        for outsider in ("outsider", "user_b", "org_admin_b"):
            response = await client.post(
                f"/workflows/{run_id}/{action}", headers=world[outsider].headers
            )
            assert response.status_code == 404, (action, outsider)
        # Someone allowed to control it gets the business answer: the run has succeeded.
        response = await client.post(f"/workflows/{run_id}/{action}", headers=world["user"].headers)
        assert response.status_code == 409


async def test_runs_outside_a_project_are_for_org_admins(
    app: FastAPI, client: httpx.AsyncClient, world: World, control: Path
) -> None:
    run_id = await start_run(app, control, organization_id=world.org_a, project_id=None)
    await wait_for_status(client, run_id, world["org_admin"].headers, {"SUCCEEDED"})
    assert (
        await client.get(f"/workflows/{run_id}", headers=world["project_admin"].headers)
    ).status_code == 404
    assert (
        await client.get(f"/workflows/{run_id}", headers=world["super_admin"].headers)
    ).status_code == 200


async def test_the_cli_follows_a_run_with_a_progress_bar(
    app: FastAPI, client: httpx.AsyncClient, world: World, control: Path, db_url: str
) -> None:
    import asyncio  # noqa: PLC0415

    from typer.testing import CliRunner  # noqa: PLC0415

    from budapp.cli import app as cli  # noqa: PLC0415

    (control / "fail-finish").touch()
    run_id = await start_run(app, control, organization_id=world.org_a, project_id=None)
    env = {"BUDAPP_DATABASE_URL": db_url, "BUDAPP_DATA_DIR": str(control / "cli")}
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["workflows", "watch", str(run_id)], env=env
    )
    assert result.exit_code == 1, result.output
    assert "failed: finish was told to fail" in result.output
    missing = await asyncio.to_thread(
        CliRunner().invoke, cli, ["workflows", "watch", str(uuid.uuid4())], env=env
    )
    assert missing.exit_code != 0
