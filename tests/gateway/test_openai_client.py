"""The official `openai` client against the gateway, every route, streaming and not."""

from __future__ import annotations

import base64

import httpx
from fastapi import FastAPI

from tests.factories import World
from tests.gateway.conftest import (
    create_router,
    flush_usage,
    new_key,
    openai_client,
    url_target,
)
from tests.sim.conftest import RunningSim


async def test_chat_completion_through_a_router(
    app: FastAPI, client: httpx.AsyncClient, world: World, gateway_url: str, sim: RunningSim
) -> None:
    router = await create_router(client, world, [url_target(sim, model="served-model")])
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        answer = await ai.chat.completions.create(
            model=router["name"], messages=[{"role": "user", "content": "hello there"}]
        )
    assert answer.choices[0].message.content
    assert answer.model == "served-model"
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 8


async def test_chat_stream_arrives_in_chunks_without_the_usage_chunk_not_asked_for(
    client: httpx.AsyncClient, world: World, gateway_url: str, sim: RunningSim
) -> None:
    router = await create_router(client, world, [url_target(sim)])
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        stream = await ai.chat.completions.create(
            model=router["name"], messages=[{"role": "user", "content": "hi"}], stream=True
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_chat_stream_with_usage_asked_for_gets_it(
    client: httpx.AsyncClient, world: World, gateway_url: str, sim: RunningSim
) -> None:
    router = await create_router(client, world, [url_target(sim)])
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        stream = await ai.chat.completions.create(
            model=router["name"],
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 8


async def test_completions_streaming_and_not(
    client: httpx.AsyncClient, world: World, gateway_url: str, sim: RunningSim
) -> None:
    router = await create_router(client, world, [url_target(sim)])
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        whole = await ai.completions.create(model=router["name"], prompt="Once upon")
        stream = await ai.completions.create(model=router["name"], prompt="Once upon", stream=True)
        pieces = [chunk.choices[0].text async for chunk in stream if chunk.choices]
    assert whole.choices[0].text
    assert whole.usage is not None
    assert "".join(pieces)


async def test_embeddings_as_floats_and_base64(
    client: httpx.AsyncClient, world: World, gateway_url: str, sim: RunningSim
) -> None:
    router = await create_router(client, world, [url_target(sim)])
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        floats = await ai.embeddings.create(model=router["name"], input=["a", "b"], dimensions=16)
        packed = await ai.embeddings.create(
            model=router["name"], input="a", encoding_format="base64"
        )
    assert [len(item.embedding) for item in floats.data] == [16, 16]
    assert isinstance(packed.data[0].embedding, str)
    assert len(base64.b64decode(packed.data[0].embedding)) == 384 * 4


async def test_models_lists_the_projects_routers(
    client: httpx.AsyncClient, world: World, gateway_url: str, sim: RunningSim
) -> None:
    first = await create_router(client, world, [url_target(sim)], name="alpha")
    second = await create_router(client, world, [url_target(sim)], name="beta")
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        models = [model.id async for model in ai.models.list()]
        one = await ai.models.retrieve("beta")
    assert models == [first["name"], second["name"]]
    assert one.id == "beta"


async def test_usage_of_each_call_is_metered(
    app: FastAPI, client: httpx.AsyncClient, world: World, gateway_url: str, sim: RunningSim
) -> None:
    router = await create_router(client, world, [url_target(sim)])
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        await ai.chat.completions.create(
            model=router["name"], messages=[{"role": "user", "content": "one two"}]
        )
        stream = await ai.chat.completions.create(
            model=router["name"], messages=[{"role": "user", "content": "one two"}], stream=True
        )
        [chunk async for chunk in stream]
    await flush_usage(app)
    response = await client.get(
        "/usage",
        params={"project_id": str(world.project_a), "api_key_id": key["id"]},
        headers=world["user"].headers,
    )
    assert response.status_code == 200, response.text
    (row,) = response.json()["data"]
    assert row["requests"] == 2
    assert row["completion_tokens"] == 16
    assert row["prompt_tokens"] > 0
    assert row["ttft_count"] == 1
