"""The model catalogue over HTTP: cloud, local (uploaded or referenced) and custom models,
the scan's verdict and its override, bad uploads that leave nothing behind, filters."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from budapp.audit.models import AuditRecord
from budapp.catalog.models import ScanStatus
from budapp.catalog.scanning import SCAN_WORKER
from budapp.core.components import STORAGE, components
from tests.catalog import samples
from tests.catalog.helpers import (
    count_rows,
    sha256,
    stored_objects,
    upload_model,
    wait_for_scan,
)
from tests.credentials.samples import create_id
from tests.factories import World

OPENAI = {"kind": "openai", "api_key": "sk-test-0123456789abcdef"}


def benign_files() -> dict[str, bytes]:
    return {
        "config.json": samples.config_json(),
        "model.safetensors": samples.safetensors_file(),
        "README.md": samples.model_card("apache-2.0"),
    }


# --- cloud models -----------------------------------------------------------------------------


async def test_cloud_model_with_a_credential_of_the_organization(
    client: httpx.AsyncClient, world: World
) -> None:
    admin = world["org_admin"].headers
    credential = await create_id(client, admin, OPENAI)
    response = await client.post(
        "/models/cloud",
        json={
            "name": "gpt-4o",
            "provider": "openai",
            "provider_model_id": "gpt-4o-2024-08-06",
            "credential_id": str(credential),
            "tags": ["chat", "hosted", "chat"],
            "context_length": 128000,
        },
        headers=admin,
    )
    assert response.status_code == 201, response.text
    model = response.json()["data"]
    assert model["source"] == "cloud"
    assert model["scan_status"] == "not_required"
    assert model["deployable"] is True
    assert model["tags"] == ["chat", "hosted"]
    assert model["context_length"] == 128000


async def test_cloud_model_refuses_a_credential_of_another_organization(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    foreign = await create_id(client, world["org_admin_b"].headers, OPENAI)
    before = await count_rows(app)
    for actor in ("org_admin", "super_admin"):
        response = await client.post(
            "/models/cloud",
            json={
                "name": f"stolen-{actor}",
                "provider": "openai",
                "provider_model_id": "gpt-4o",
                "credential_id": str(foreign),
            },
            headers=world[actor].headers,
        )
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "NOT_FOUND"
    assert await count_rows(app) == before


async def test_cloud_model_credential_must_match_the_provider(
    client: httpx.AsyncClient, world: World
) -> None:
    admin = world["org_admin"].headers
    credential = await create_id(client, admin, {"kind": "anthropic", "api_key": "x" * 20})
    response = await client.post(
        "/models/cloud",
        json={
            "name": "m",
            "provider": "openai",
            "provider_model_id": "gpt-4o",
            "credential_id": str(credential),
        },
        headers=admin,
    )
    assert response.status_code == 422


async def test_a_credential_used_by_a_model_cannot_be_deleted(
    client: httpx.AsyncClient, world: World
) -> None:
    admin = world["org_admin"].headers
    credential = await create_id(client, admin, OPENAI)
    created = await client.post(
        "/models/cloud",
        json={
            "name": "m",
            "provider": "openai",
            "provider_model_id": "gpt-4o",
            "credential_id": str(credential),
        },
        headers=admin,
    )
    assert (await client.delete(f"/credentials/{credential}", headers=admin)).status_code == 409
    model_id = created.json()["data"]["id"]
    assert (await client.delete(f"/models/{model_id}", headers=admin)).status_code == 204
    assert (await client.delete(f"/credentials/{credential}", headers=admin)).status_code == 204


# --- local models: upload, scan, download -------------------------------------------------------


async def test_uploaded_model_passes_the_scan_and_gets_its_metadata(
    app: FastAPI, client: httpx.AsyncClient, world: World, backend: str
) -> None:
    headers = world["user"].headers
    files = benign_files()
    response = await upload_model(
        client,
        headers,
        files,
        name="tiny-llama",
        tags="chat,small",
        sha256=[f"model.safetensors:{sha256(files['model.safetensors'])}"],
    )
    assert response.status_code == 201, response.text
    created = response.json()["data"]
    assert created["scan_status"] == "pending"
    assert created["deployable"] is False
    assert {f["path"]: f["sha256"] for f in created["files"]} == {
        path: sha256(data) for path, data in files.items()
    }
    model = await wait_for_scan(client, headers, created["id"])
    assert model["scan_status"] == "passed", model["scan_findings"]
    assert model["deployable"] is True
    assert model["architecture"] == "LlamaForCausalLM"
    assert model["parameter_count"] == 256
    assert model["context_length"] == 8192
    assert model["dtype"] == "bfloat16"
    assert model["file_format"] == "safetensors"
    assert model["license"] == "apache-2.0"
    assert model["license_flagged"] is False
    assert model["total_size"] == sum(len(d) for d in files.values())

    weights = next(f for f in model["files"] if f["path"] == "model.safetensors")
    download = await client.get(f"/models/{model['id']}/files/{weights['id']}", headers=headers)
    assert download.status_code == 200
    assert download.content == files["model.safetensors"]
    assert download.headers["x-checksum-sha256"] == weights["sha256"]
    assert f"models/{world.org_a}/{model['id']}/{weights['id']}" in stored_objects(app)


async def test_poisoned_model_is_blocked_until_an_org_admin_overrides(
    app: FastAPI, client: httpx.AsyncClient, world: World, backend: str
) -> None:
    user = world["user"].headers
    response = await upload_model(
        client,
        user,
        {"config.json": samples.config_json(), "pytorch_model.bin": samples.malicious_pickle()},
        name="poisoned",
    )
    assert response.status_code == 201, response.text
    model = await wait_for_scan(client, user, response.json()["data"]["id"])
    assert model["scan_status"] == "failed"
    assert [f["code"] for f in model["scan_findings"]] == ["unsafe_pickle"]
    assert model["deployable"] is False

    blocked = await client.get(f"/models/{model['id']}/deployable", headers=user)
    assert blocked.status_code == 409
    assert blocked.json()["error"]["details"][0]["file"] == "pytorch_model.bin"

    reason = {"reason": "reviewed by security: test fixture only"}
    refused = await client.post(f"/models/{model['id']}/scan-override", json=reason, headers=user)
    assert refused.status_code == 403
    admin = world["org_admin"].headers
    allowed = await client.post(f"/models/{model['id']}/scan-override", json=reason, headers=admin)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["data"]["scan_override_by"] == str(world["org_admin"].id)
    assert (await client.get(f"/models/{model['id']}/deployable", headers=user)).status_code == 200

    async with components(app).session_factory() as session:
        records = (
            await session.scalars(
                select(AuditRecord).where(
                    AuditRecord.resource_type == "model",
                    AuditRecord.resource_id == model["id"],
                    AuditRecord.action == "model.scan_override",
                )
            )
        ).all()
    assert len(records) == 1
    assert records[0].actor_id == str(world["org_admin"].id)
    changes = json.loads(records[0].details)["changes"]
    assert changes["scan_override_reason"]["new"] == reason["reason"]


async def test_override_is_only_for_failed_scans(client: httpx.AsyncClient, world: World) -> None:
    admin = world["org_admin"].headers
    created = await client.post(
        "/models/local", json={"name": "ref", "repo_id": "org/model"}, headers=admin
    )
    model_id = created.json()["data"]["id"]
    response = await client.post(
        f"/models/{model_id}/scan-override", json={"reason": "no reason at all"}, headers=admin
    )
    assert response.status_code == 409


@pytest.mark.parametrize(
    ("files", "fields", "status"),
    [
        ({"config.json": b""}, {}, 422),  # empty file
        ({"../../etc/passwd.json": b"{}"}, {}, 422),  # path traversal
        ({"/abs/model.bin": b"x"}, {}, 422),
        ({"a/../b.json": b"{}"}, {}, 422),
        ({"run.exe": b"MZ"}, {}, 422),  # unknown type
        ({"model.py": b"import os"}, {}, 422),
        ({"config.json": b"{}"}, {"sha256": "config.json:" + "0" * 64}, 422),  # wrong checksum
        ({"config.json": b"{}"}, {"sha256": "other.json:" + "0" * 64}, 422),
        ({"config.json": b"{}"}, {"modality": "smell"}, 422),
        ({"config.json": b"{}"}, {"name": "   "}, 422),
    ],
)
async def test_bad_uploads_leave_nothing_behind(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    files: dict[str, bytes],
    fields: dict[str, Any],
    status: int,
) -> None:
    headers = world["user"].headers
    # A good file first: it is stored before the bad part arrives and must be removed again.
    good = {"tokenizer.json": b'{"version": "1.0"}'}
    objects, rows = stored_objects(app), await count_rows(app)
    response = await upload_model(client, headers, {**good, **files}, **fields)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert stored_objects(app) == objects
    assert await count_rows(app) == rows


async def test_upload_without_files_is_refused(client: httpx.AsyncClient, world: World) -> None:
    response = await client.post(
        "/models/local",
        files={"name": (None, "nothing")},
        headers=world["user"].headers,
    )
    assert response.status_code == 422
    assert "No files" in response.json()["error"]["message"]


async def test_upload_over_the_file_limit_is_413_and_leaves_nothing(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app.state.settings, "model_file_max_bytes", 6 * 1024 * 1024)
    objects, rows = stored_objects(app), await count_rows(app)
    big = b"\0" * (7 * 1024 * 1024)
    response = await upload_model(
        client, world["user"].headers, {"config.json": b"{}", "model.safetensors": big}
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert stored_objects(app) == objects
    assert await count_rows(app) == rows


async def test_duplicate_name_is_a_conflict_and_leaves_no_objects(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    headers = world["user"].headers
    assert (await upload_model(client, headers, benign_files(), name="dup")).status_code == 201
    objects = stored_objects(app)
    again = await upload_model(client, headers, benign_files(), name="dup")
    assert again.status_code == 409
    assert stored_objects(app) == objects


async def test_malformed_multipart_is_refused(client: httpx.AsyncClient, world: World) -> None:
    headers = {**world["user"].headers, "content-type": "multipart/form-data; boundary=xyz"}
    response = await client.post("/models/local", content=b"--xyz\r\nbroken", headers=headers)
    assert response.status_code == 422
    plain = await client.post(
        "/models/local",
        content=b"hello",
        headers={**world["user"].headers, "content-type": "text/plain"},
    )
    assert plain.status_code == 422


async def test_zip_bomb_upload_fails_the_scan(client: httpx.AsyncClient, world: World) -> None:
    headers = world["user"].headers
    response = await upload_model(client, headers, {"pytorch_model.bin": samples.zip_bomb()})
    model = await wait_for_scan(client, headers, response.json()["data"]["id"])
    assert model["scan_status"] == "failed"
    assert [f["code"] for f in model["scan_findings"]] == ["zip_bomb"]


async def test_gguf_and_torch_archive_uploads_pass(client: httpx.AsyncClient, world: World) -> None:
    headers = world["user"].headers
    gguf = await upload_model(client, headers, {"model.gguf": samples.gguf_file()})
    model = await wait_for_scan(client, headers, gguf.json()["data"]["id"])
    assert (model["scan_status"], model["quantization"], model["architecture"]) == (
        "passed",
        "F16",
        "llama",
    )
    archive = samples.torch_archive(samples.tensor_pickle())
    torch = await upload_model(client, headers, {"pytorch_model.bin": archive})
    model = await wait_for_scan(client, headers, torch.json()["data"]["id"])
    assert model["scan_status"] == "passed", model["scan_findings"]


async def test_object_altered_in_storage_fails_the_scan(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    headers = world["user"].headers
    # Hold the worker back while the stored object is swapped.
    await components(app)[SCAN_WORKER].close()
    try:
        response = await upload_model(client, headers, {"config.json": samples.config_json()})
        created = response.json()["data"]
        key = f"models/{world.org_a}/{created['id']}/{created['files'][0]['id']}"
        (components(app)[STORAGE].root / key).write_bytes(b'{"tampered": true}')
        assert await components(app)[SCAN_WORKER].run_once() is True
    finally:
        await components(app)[SCAN_WORKER].start()
    model = await wait_for_scan(client, headers, created["id"])
    assert [f["code"] for f in model["scan_findings"]] == ["checksum_mismatch"]


# --- references, custom, metadata, list ----------------------------------------------------------


async def test_hugging_face_reference_and_custom_model(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = world["user"].headers
    reference = await client.post(
        "/models/local",
        json={"name": "llama", "repo_id": "meta-llama/Llama-3.1-8B", "license": "llama3.1"},
        headers=headers,
    )
    assert reference.status_code == 201, reference.text
    data = reference.json()["data"]
    assert (data["source"], data["repo_id"], data["scan_status"]) == (
        "local",
        "meta-llama/Llama-3.1-8B",
        "not_scanned",
    )
    assert data["license_commercial_use"] == "conditional"
    assert data["license_flagged"] is True
    bad = await client.post(
        "/models/local", json={"name": "x", "repo_id": "../../etc"}, headers=headers
    )
    assert bad.status_code == 422
    custom = await client.post(
        "/models/custom",
        json={"name": "mine", "uri": "s3://bucket/weights/", "modality": "embedding"},
        headers=headers,
    )
    assert custom.status_code == 201, custom.text
    assert custom.json()["data"]["source"] == "custom"


async def test_update_metadata_and_tags(client: httpx.AsyncClient, world: World) -> None:
    headers = world["user"].headers
    created = await client.post(
        "/models/custom", json={"name": "m1", "uri": "hf://a/b"}, headers=headers
    )
    model_id = created.json()["data"]["id"]
    response = await client.put(
        f"/models/{model_id}",
        json={
            "parameter_count": 7_000_000_000,
            "context_length": 32768,
            "architecture": "MistralForCausalLM",
            "quantization": "awq",
            "modality": "text",
            "license": "cc-by-nc-4.0",
            "tags": ["b", "a"],
        },
        headers=headers,
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["parameter_count"], data["tags"], data["license_commercial_use"]) == (
        7_000_000_000,
        ["a", "b"],
        "prohibited",
    )
    listed = await client.get("/models", params={"tag": "a"}, headers=headers)
    assert [m["id"] for m in listed.json()["data"]] == [model_id]
    unknown = await client.put(f"/models/{model_id}", json={"colour": "red"}, headers=headers)
    assert unknown.status_code == 422


async def test_list_filters_and_pagination(client: httpx.AsyncClient, world: World) -> None:
    headers = world["org_admin"].headers
    credential = await create_id(client, headers, OPENAI)
    for index in range(3):
        await client.post(
            "/models/cloud",
            json={
                "name": f"cloud-{index}",
                "provider": "openai",
                "provider_model_id": f"gpt-{index}",
                "credential_id": str(credential),
                "tags": ["hosted"],
            },
            headers=headers,
        )
    await client.post(
        "/models/custom",
        json={"name": "embedder", "uri": "s3://b/e", "modality": "embedding"},
        headers=headers,
    )
    page = await client.get("/models", params={"per_page": 2, "page": 2}, headers=headers)
    assert page.json()["meta"] == {"total": 4, "page": 2, "per_page": 2}
    by_source = await client.get("/models", params={"source": "cloud"}, headers=headers)
    assert by_source.json()["meta"]["total"] == 3
    by_modality = await client.get("/models", params={"modality": "embedding"}, headers=headers)
    assert [m["name"] for m in by_modality.json()["data"]] == ["embedder"]
    search = await client.get("/models", params={"search": "GPT-1"}, headers=headers)
    assert [m["name"] for m in search.json()["data"]] == ["cloud-1"]
    provider = await client.get("/models", params={"provider": "openai"}, headers=headers)
    assert provider.json()["meta"]["total"] == 3
    other_org = await client.get("/models", headers=world["org_admin_b"].headers)
    assert other_org.json()["meta"]["total"] == 0
    assert (await client.get("/models", params={"bogus": 1}, headers=headers)).status_code == 422


async def test_delete_is_soft_and_refused_while_referenced(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    headers = world["user"].headers
    created = await client.post(
        "/models/custom", json={"name": "d", "uri": "hf://a/b"}, headers=headers
    )
    model_id = uuid.UUID(created.json()["data"]["id"])
    in_use: set[uuid.UUID] = {model_id}

    async def endpoints_using(_: Any, resource_id: uuid.UUID) -> str | None:
        return "1 endpoint(s)" if resource_id in in_use else None

    components(app).references.register("model", endpoints_using)
    refused = await client.delete(f"/models/{model_id}", headers=headers)
    assert refused.status_code == 409
    in_use.clear()
    assert (await client.delete(f"/models/{model_id}", headers=headers)).status_code == 204
    assert (await client.get(f"/models/{model_id}", headers=headers)).status_code == 404
    # The name is free again.
    again = await client.post(
        "/models/custom", json={"name": "d", "uri": "hf://a/b"}, headers=headers
    )
    assert again.status_code == 201


# --- leaderboard -------------------------------------------------------------------------------


async def test_leaderboard_is_empty_but_well_formed(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get("/models/leaderboard", headers=world["user"].headers)
    assert response.status_code == 200
    assert response.json() == {"data": [], "meta": {"total": 0, "page": 1, "per_page": 20}}


async def test_leaderboard_ranks_by_best_result(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    from budapp.catalog.models import ModelEvaluation  # noqa: PLC0415

    headers = world["org_admin"].headers
    ids = []
    for name in ("alpha", "beta"):
        created = await client.post(
            "/models/custom", json={"name": name, "uri": "hf://a/b"}, headers=headers
        )
        ids.append(uuid.UUID(created.json()["data"]["id"]))
    results = [
        (ids[0], "accuracy", 0.61, True),
        (ids[0], "accuracy", 0.70, True),
        (ids[1], "accuracy", 0.65, True),
        (ids[0], "ttft_ms", 120.0, False),
        (ids[1], "ttft_ms", 80.0, False),
    ]
    async with components(app).session_factory() as session:
        for model_id, metric, value, higher in results:
            session.add(
                ModelEvaluation(
                    organization_id=world.org_a,
                    model_id=model_id,
                    kind="evaluation" if metric == "accuracy" else "benchmark",
                    name="suite",
                    metric=metric,
                    value=value,
                    higher_is_better=higher,
                )
            )
        await session.commit()
    board = (await client.get("/models/leaderboard", headers=headers)).json()["data"]
    assert [(e["metric"], e["rank"], e["model_name"], e["value"]) for e in board] == [
        ("accuracy", 1, "alpha", 0.70),
        ("accuracy", 2, "beta", 0.65),
        ("ttft_ms", 1, "beta", 80.0),
        ("ttft_ms", 2, "alpha", 120.0),
    ]
    only = await client.get("/models/leaderboard", params={"kind": "benchmark"}, headers=headers)
    assert {e["metric"] for e in only.json()["data"]} == {"ttft_ms"}
    other = await client.get("/models/leaderboard", headers=world["org_admin_b"].headers)
    assert other.json()["data"] == []


def test_scan_status_values_are_stable() -> None:
    assert [s.value for s in ScanStatus] == [
        "not_required",
        "not_scanned",
        "pending",
        "passed",
        "failed",
    ]
