"""Datasets over HTTP: JSONL, CSV and Parquet uploads with their previews, immutable versions
by content hash, and bad files that leave nothing behind."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from budapp.core.components import components
from budapp.datasets.models import Dataset, DatasetVersion
from tests.catalog.helpers import sha256, stored_objects
from tests.factories import World

JSONL = b"".join(
    json.dumps({"prompt": f"question {i}", "answer": f"answer {i}", "score": i}).encode() + b"\n"
    for i in range(50)
)
CSV = b"prompt,answer\n" + b"".join(f"q{i},a{i}\n".encode() for i in range(30))


def parquet_bytes(rows: int = 40) -> bytes:
    table = pa.table({"text": [f"row {i}" for i in range(rows)], "label": list(range(rows))})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    filename: str,
    content: bytes,
    path: str = "/datasets",
    **fields: Any,
) -> httpx.Response:
    return await client.post(
        path, data=fields, files={"file": (filename, content)}, headers=headers
    )


async def count_rows(app: FastAPI) -> tuple[int, int]:
    async with components(app).engine.connect() as connection:
        datasets = (await connection.execute(select(func.count()).select_from(Dataset))).one()[0]
        versions = (
            await connection.execute(select(func.count()).select_from(DatasetVersion))
        ).one()[0]
    return int(datasets), int(versions)


async def test_jsonl_upload_preview_and_download(
    app: FastAPI, client: httpx.AsyncClient, world: World, backend: str
) -> None:
    headers = world["user"].headers
    response = await upload(
        client, headers, "qa.jsonl", JSONL, name="qa", description="questions", sha256=sha256(JSONL)
    )
    assert response.status_code == 201, response.text
    dataset = response.json()["data"]
    version = dataset["versions"][0]
    assert (version["version"], version["format"], version["row_count"]) == (1, "jsonl", 50)
    assert version["sha256"] == sha256(JSONL)
    assert [c["name"] for c in version["columns"]] == ["prompt", "answer", "score"]

    fetched = (await client.get(f"/datasets/{dataset['id']}", headers=headers)).json()["data"]
    assert fetched["preview_version"] == 1
    assert len(fetched["preview"]) == app.state.settings.dataset_preview_rows
    assert fetched["preview"][0] == {"prompt": "question 0", "answer": "answer 0", "score": 0}

    download = await client.get(f"/datasets/{dataset['id']}/download", headers=headers)
    assert download.content == JSONL
    assert download.headers["x-checksum-sha256"] == sha256(JSONL)


@pytest.mark.parametrize(
    ("filename", "content", "rows", "columns"),
    [
        (
            "pairs.csv",
            CSV,
            30,
            [{"name": "prompt", "type": "string"}, {"name": "answer", "type": "string"}],
        ),
        (
            "table.parquet",
            parquet_bytes(),
            40,
            [{"name": "text", "type": "string"}, {"name": "label", "type": "int64"}],
        ),
    ],
)
async def test_csv_and_parquet_uploads(
    client: httpx.AsyncClient,
    world: World,
    filename: str,
    content: bytes,
    rows: int,
    columns: list[dict[str, str]],
) -> None:
    response = await upload(client, world["user"].headers, filename, content, name=filename)
    assert response.status_code == 201, response.text
    version = response.json()["data"]["versions"][0]
    assert (version["row_count"], version["columns"]) == (rows, columns)
    assert len(response.json()["data"]["preview"]) == 20


async def test_versions_are_immutable_and_identified_by_content(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    headers = world["user"].headers
    created = (await upload(client, headers, "qa.jsonl", JSONL, name="qa")).json()["data"]
    path = f"/datasets/{created['id']}/versions"
    second = await upload(client, headers, "qa.csv", CSV, path=path)
    assert second.status_code == 201, second.text
    assert second.json()["data"]["version"] == 2
    objects = stored_objects(app)
    same = await upload(client, headers, "again.jsonl", JSONL, path=path)
    assert same.status_code == 409
    assert "version 1" in same.json()["error"]["message"]
    assert stored_objects(app) == objects
    latest = (await client.get(f"/datasets/{created['id']}", headers=headers)).json()["data"]
    assert (latest["latest_version"], latest["preview_version"]) == (2, 2)
    assert [v["version"] for v in latest["versions"]] == [1, 2]
    first = await client.get(f"/datasets/{created['id']}", params={"version": 1}, headers=headers)
    assert first.json()["data"]["preview"][0]["prompt"] == "question 0"
    old = await client.get(f"/datasets/{created['id']}/download?version=1", headers=headers)
    assert old.content == JSONL
    missing = await client.get(f"/datasets/{created['id']}", params={"version": 9}, headers=headers)
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("filename", "content", "fields"),
    [
        ("empty.jsonl", b"", {}),
        ("bad.jsonl", b'{"a": 1}\n{"a": \n', {}),
        ("list.jsonl", b"[1, 2]\n", {}),
        ("latin.jsonl", '{"a": "caf\u00e9"}\n'.encode("latin-1"), {}),
        ("ragged.csv", b"a,b\n1,2\n3,4,5\n", {}),
        ("latin.csv", "a,b\ncaf\u00e9,1\n".encode("latin-1"), {}),
        ("header-only.csv", b"a,b\n", {}),
        ("dup.csv", b"a,a\n1,2\n", {}),
        ("broken.parquet", b"PAR1 this is not parquet PAR1", {}),
        ("truncated.parquet", parquet_bytes()[:-100], {}),
        ("data.xlsx", b"PK\x03\x04", {}),
        ("../../etc/passwd.csv", CSV, {}),
        ("qa.jsonl", JSONL, {"sha256": "0" * 64}),
        ("qa.jsonl", JSONL, {"format": "yaml"}),
        ("qa.jsonl", JSONL, {}),  # no name
    ],
)
async def test_bad_datasets_leave_nothing_behind(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    filename: str,
    content: bytes,
    fields: dict[str, str],
) -> None:
    objects, rows = stored_objects(app), await count_rows(app)
    body = {"name": "bad", **fields} if fields or filename != "qa.jsonl" else {}
    response = await upload(client, world["user"].headers, filename, content, **body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert stored_objects(app) == objects
    assert await count_rows(app) == rows


async def test_dataset_over_the_size_limit_is_413(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app.state.settings, "dataset_max_bytes", 2048)
    objects, rows = stored_objects(app), await count_rows(app)
    response = await upload(client, world["user"].headers, "qa.jsonl", JSONL, name="big")
    assert response.status_code == 413
    assert stored_objects(app) == objects
    assert await count_rows(app) == rows


async def test_row_limit(
    app: FastAPI, client: httpx.AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.settings, "dataset_max_rows", 10)
    response = await upload(client, world["user"].headers, "qa.jsonl", JSONL, name="many")
    assert response.status_code == 422
    assert "more than 10 rows" in response.json()["error"]["message"]


async def test_list_update_and_soft_delete(client: httpx.AsyncClient, world: World) -> None:
    headers = world["user"].headers
    created = (await upload(client, headers, "qa.jsonl", JSONL, name="qa")).json()["data"]
    await upload(client, headers, "pairs.csv", CSV, name="pairs")
    listed = await client.get("/datasets", params={"search": "pai"}, headers=headers)
    assert [d["name"] for d in listed.json()["data"]] == ["pairs"]
    renamed = await client.put(
        f"/datasets/{created['id']}", json={"name": "qa-v2"}, headers=headers
    )
    assert renamed.json()["data"]["name"] == "qa-v2"
    taken = await client.put(f"/datasets/{created['id']}", json={"name": "pairs"}, headers=headers)
    assert taken.status_code == 409
    assert (await client.delete(f"/datasets/{created['id']}", headers=headers)).status_code == 204
    assert (await client.get(f"/datasets/{created['id']}", headers=headers)).status_code == 404
    duplicate = await upload(client, headers, "pairs.csv", CSV, name="pairs")
    assert duplicate.status_code == 409
    other = await client.get("/datasets", headers=world["org_admin_b"].headers)
    assert other.json()["data"] == []
