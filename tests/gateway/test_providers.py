"""Hosted-provider targets end to end: the official `openai` client, through the gateway, to
budapp-sim speaking Anthropic's Messages API and Azure OpenAI's routes; what the provider
received, the answers and streams translated back, usage, errors and fallback; and registry
cloud models as router targets."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

from tests.credentials.samples import create_id
from tests.factories import World
from tests.gateway.conftest import (
    SimFactory,
    canned_backend,
    create_router,
    flush_usage,
    new_key,
    openai_client,
    url_target,
)
from tests.usage.test_metering import records_of

ANTHROPIC_KEY = "sk-ant-sim-0123456789"
AZURE_KEY = "azure-sim-0123456789"
MESSAGES = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "alpha beta gamma delta"},
]


async def anthropic_credential(
    client: httpx.AsyncClient, world: World, base_url: str | None = None, **spec: Any
) -> uuid.UUID:
    fields = {"kind": "anthropic", "api_key": ANTHROPIC_KEY, **spec}
    if base_url is not None:
        fields["base_url"] = base_url
    return await create_id(client, world["org_admin"].headers, fields)


async def anthropic_router(
    client: httpx.AsyncClient, world: World, sim_url: str, **target: Any
) -> dict[str, Any]:
    credential = await anthropic_credential(client, world)
    return await create_router(
        client,
        world,
        [
            {
                "kind": "url",
                "base_url": sim_url,
                "model": "claude-sim",
                "credential_id": str(credential),
                **target,
            }
        ],
        by="org_admin",
    )


async def test_chat_through_an_anthropic_target_is_translated_both_ways(
    app: FastAPI, client: httpx.AsyncClient, world: World, gateway_url: str, start_sim: SimFactory
) -> None:
    sim = start_sim(api_key=ANTHROPIC_KEY, record_requests=8, text_source="echo")
    router = await anthropic_router(client, world, sim.base_url)
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        answer = await ai.chat.completions.create(
            model=router["name"], messages=MESSAGES, max_tokens=12, stop=["delta"], temperature=0.5
        )
    (received,) = sim.app.received
    assert received.path == "/v1/messages"
    assert received.headers["x-api-key"] == ANTHROPIC_KEY
    assert received.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in received.headers
    assert received.body == {
        "model": "claude-sim",
        "system": "Answer briefly.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "alpha beta gamma delta"}]}
        ],
        "max_tokens": 12,
        "stop_sequences": ["delta"],
        "temperature": 0.5,
    }
    assert answer.object == "chat.completion"
    assert answer.id.startswith("msg_")
    assert answer.model == "claude-sim"
    # The echoed prompt, cut before the stop sequence.
    assert answer.choices[0].message.content == "alpha beta gamma"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    # "Answer briefly." (3) + "alpha beta gamma delta" (4), counted by the provider.
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (7, 3)
    await flush_usage(app)
    (record,) = await records_of(app, key["id"])
    assert (record.prompt_tokens, record.completion_tokens, record.estimated) == (7, 3, False)
    assert record.model == "claude-sim"


async def test_max_tokens_reached_is_finish_reason_length(
    client: httpx.AsyncClient, world: World, gateway_url: str, start_sim: SimFactory
) -> None:
    sim = start_sim(output_tokens_min=20, output_tokens_max=20)
    router = await anthropic_router(client, world, sim.base_url)
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        answer = await ai.chat.completions.create(
            model=router["name"], messages=MESSAGES, max_completion_tokens=4
        )
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 4


@pytest.mark.parametrize("include_usage", [False, True])
async def test_an_anthropic_stream_arrives_as_openai_chunks_and_is_metered(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    gateway_url: str,
    start_sim: SimFactory,
    include_usage: bool,
) -> None:
    sim = start_sim(itl_ms=2, output_tokens_min=10, output_tokens_max=10, record_requests=2)
    router = await anthropic_router(client, world, sim.base_url)
    key = await new_key(client, world)
    options: dict[str, Any] = {"stream_options": {"include_usage": True}} if include_usage else {}
    async with openai_client(gateway_url, key["key"]) as ai:
        stream = await ai.chat.completions.create(
            model=router["name"], messages=MESSAGES, stream=True, **options
        )
        chunks = [chunk async for chunk in stream]
    assert sim.app.received[0].body["stream"] is True
    assert "stream_options" not in sim.app.received[0].body
    with_choices = [c for c in chunks if c.choices]
    assert with_choices[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in with_choices)
    assert len(text.split()) >= 5
    assert with_choices[-1].choices[0].finish_reason == "stop"
    if include_usage:
        assert chunks[-1].choices == []
        assert chunks[-1].usage is not None
        assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (7, 10)
    else:
        assert all(c.choices for c in chunks)
    await flush_usage(app)
    (record,) = await records_of(app, key["id"])
    assert (record.prompt_tokens, record.completion_tokens, record.estimated) == (7, 10, False)
    assert record.status == 200
    assert record.ttft_ms is not None


WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.mark.parametrize("stream", [False, True])
async def test_a_forced_tool_call_comes_back_as_openai_tool_calls(
    client: httpx.AsyncClient,
    world: World,
    gateway_url: str,
    start_sim: SimFactory,
    stream: bool,
) -> None:
    sim = start_sim(record_requests=1)
    router = await anthropic_router(client, world, sim.base_url)
    key = await new_key(client, world)
    choice: Any = {"type": "function", "function": {"name": "get_weather"}}
    async with openai_client(gateway_url, key["key"]) as ai:
        if stream:
            chunks = [
                chunk
                async for chunk in await ai.chat.completions.create(
                    model=router["name"],
                    messages=MESSAGES,
                    tools=[WEATHER_TOOL],
                    tool_choice=choice,
                    stream=True,
                )
            ]
            calls = [call for chunk in chunks for call in (chunk.choices[0].delta.tool_calls or [])]
            name = calls[0].function.name if calls[0].function else None
            arguments = "".join(c.function.arguments or "" for c in calls if c.function)
            call_id, finish = calls[0].id, chunks[-1].choices[0].finish_reason
        else:
            answer = await ai.chat.completions.create(
                model=router["name"], messages=MESSAGES, tools=[WEATHER_TOOL], tool_choice=choice
            )
            [call] = answer.choices[0].message.tool_calls or []
            assert call.type == "function"
            name, arguments = call.function.name, call.function.arguments
            call_id, finish = call.id, answer.choices[0].finish_reason
    sent = sim.app.received[0].body
    assert sent["tools"][0]["name"] == "get_weather"
    assert sent["tools"][0]["input_schema"] == WEATHER_TOOL["function"]["parameters"]
    assert sent["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert name == "get_weather"
    assert json.loads(arguments) == {"city": "sim"}
    assert call_id is not None
    assert call_id.startswith("toolu_")
    assert finish == "tool_calls"


async def test_an_azure_target_calls_the_deployment_streaming_and_not(
    client: httpx.AsyncClient, world: World, gateway_url: str, start_sim: SimFactory
) -> None:
    sim = start_sim(api_key=AZURE_KEY, record_requests=8, output_tokens_min=6, output_tokens_max=6)
    credential = await create_id(
        client,
        world["org_admin"].headers,
        {
            "kind": "azure_openai",
            "api_key": AZURE_KEY,
            "endpoint": sim.base_url,
            "api_version": "2024-10-21",
        },
    )
    target = {
        "kind": "url",
        "base_url": sim.base_url,
        "model": "gpt-4o-prod",
        "credential_id": str(credential),
    }
    router = await create_router(client, world, [target], by="org_admin")
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        answer = await ai.chat.completions.create(model=router["name"], messages=MESSAGES)
        stream = await ai.chat.completions.create(
            model=router["name"], messages=MESSAGES, stream=True
        )
        chunks = [chunk async for chunk in stream]
        vectors = await ai.embeddings.create(model=router["name"], input="hi", dimensions=4)
    assert answer.model == "gpt-4o-prod"
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 6
    assert all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks)
    assert len(vectors.data[0].embedding) == 4
    paths = [r.path for r in sim.app.received]
    assert paths == [
        "/openai/deployments/gpt-4o-prod/chat/completions",
        "/openai/deployments/gpt-4o-prod/chat/completions",
        "/openai/deployments/gpt-4o-prod/embeddings",
    ]
    for received in sim.app.received:
        assert received.query == "api-version=2024-10-21"
        assert received.headers["api-key"] == AZURE_KEY
        assert "authorization" not in received.headers
        assert "model" not in received.body


async def test_an_overloaded_anthropic_target_falls_back_to_the_next(
    client: httpx.AsyncClient, world: World, gateway_url: str, start_sim: SimFactory
) -> None:
    overloaded, healthy = start_sim(failure_rate=1.0, failure_status=529), start_sim()
    credential = await anthropic_credential(client, world)
    targets = [
        {
            "kind": "url",
            "base_url": overloaded.base_url,
            "model": "claude-sim",
            "credential_id": str(credential),
        },
        url_target(healthy, model="fallback", priority=1),
    ]
    router = await create_router(client, world, targets, by="org_admin", cooldown_seconds=60)
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        answers = [
            await ai.chat.completions.create(model=router["name"], messages=MESSAGES)
            for _ in range(3)
        ]
    assert [a.model for a in answers] == ["fallback"] * 3
    # Tried once, then cooling down.
    assert overloaded.metric("budapp_sim_requests_total", route="/v1/messages", status="529") == 1


async def test_an_anthropic_stream_that_opens_with_an_error_falls_back(
    client: httpx.AsyncClient, world: World, gateway_url: str, start_sim: SimFactory
) -> None:
    """Anthropic may accept a stream (200) and then send `overloaded_error` as its first
    event: nothing has reached the client yet, so the next target answers."""
    event = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    answer = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
        b"event: error\ndata: " + event + b"\n\n"
    )
    healthy = start_sim()
    credential = await anthropic_credential(client, world)
    with canned_backend(answer) as overloaded:
        targets = [
            {
                "kind": "url",
                "base_url": overloaded,
                "model": "claude-sim",
                "credential_id": str(credential),
            },
            url_target(healthy, model="fallback", priority=1),
        ]
        router = await create_router(client, world, targets, by="org_admin")
        alone = await create_router(client, world, targets[:1], by="org_admin")
        key = await new_key(client, world)
        async with openai_client(gateway_url, key["key"]) as ai:
            stream = await ai.chat.completions.create(
                model=router["name"], messages=MESSAGES, stream=True
            )
            chunks = [chunk async for chunk in stream]
            assert {chunk.model for chunk in chunks} == {"fallback"}
            # With nowhere to fall back to, the provider's error is the answer.
            with pytest.raises(openai.InternalServerError) as refused:
                await ai.chat.completions.create(
                    model=alone["name"], messages=MESSAGES, stream=True
                )
    assert "Overloaded" in str(refused.value)


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (529, openai.InternalServerError, "upstream_error"),
        (500, openai.InternalServerError, "upstream_error"),
        (429, openai.RateLimitError, "upstream_rate_limited"),
    ],
)
async def test_anthropic_errors_map_to_openai_errors(
    client: httpx.AsyncClient,
    world: World,
    gateway_url: str,
    start_sim: SimFactory,
    status: int,
    error: type[openai.APIStatusError],
    code: str,
) -> None:
    sim = start_sim(failure_rate=1.0, failure_status=status)
    router = await anthropic_router(client, world, sim.base_url)
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        with pytest.raises(error) as caught:
            await ai.chat.completions.create(model=router["name"], messages=MESSAGES)
    assert caught.value.code == code
    assert "simulated failure" in caught.value.message


async def test_a_rejected_anthropic_key_is_passed_on_as_the_providers_4xx(
    client: httpx.AsyncClient, world: World, gateway_url: str, start_sim: SimFactory
) -> None:
    sim = start_sim(api_key="sk-ant-the-right-one")
    router = await anthropic_router(client, world, sim.base_url)
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        with pytest.raises(openai.AuthenticationError) as caught:
            await ai.chat.completions.create(model=router["name"], messages=MESSAGES)
    assert caught.value.code == "upstream_rejected"
    assert "x-api-key" in caught.value.message


async def test_a_stream_cut_by_anthropic_ends_with_an_error_event(
    app: FastAPI, client: httpx.AsyncClient, world: World, gateway_url: str, start_sim: SimFactory
) -> None:
    sim = start_sim(
        failure_rate=1.0, failure_mode="abort", itl_ms=5, output_tokens_min=30, output_tokens_max=30
    )
    router = await anthropic_router(client, world, sim.base_url)
    key = await new_key(client, world)
    body = {"model": router["name"], "messages": MESSAGES, "stream": True}
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as http:
        response = await http.post(
            "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key['key']}"}
        )
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert "[DONE]" not in events
    assert '"error"' in events[-1]
    await flush_usage(app)
    (record,) = await records_of(app, key["id"])
    assert record.status == 502


@pytest.mark.parametrize(
    ("route", "body", "param"),
    [
        ("chat/completions", {"messages": MESSAGES, "n": 2}, "n"),
        ("chat/completions", {"messages": MESSAGES, "logit_bias": {"1": 1}}, "logit_bias"),
        (
            "chat/completions",
            {"messages": MESSAGES, "response_format": {"type": "json_object"}},
            "response_format",
        ),
        ("completions", {"prompt": "Once"}, None),
        ("embeddings", {"input": "hi"}, None),
    ],
)
async def test_what_anthropic_cannot_do_is_a_400(
    client: httpx.AsyncClient,
    world: World,
    gateway_url: str,
    start_sim: SimFactory,
    route: str,
    body: dict[str, Any],
    param: str | None,
) -> None:
    sim = start_sim(record_requests=1)
    router = await anthropic_router(client, world, sim.base_url)
    key = await new_key(client, world)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as http:
        response = await http.post(
            f"/v1/{route}",
            json={"model": router["name"], **body},
            headers={"Authorization": f"Bearer {key['key']}"},
        )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "unsupported_by_provider"
    assert error["param"] == param
    assert "Anthropic" in error["message"]
    assert not sim.app.received


async def test_a_request_anthropic_cannot_take_goes_to_a_target_that_can(
    client: httpx.AsyncClient, world: World, gateway_url: str, start_sim: SimFactory
) -> None:
    claude, other = start_sim(), start_sim()
    credential = await anthropic_credential(client, world)
    targets = [
        {"kind": "url", "base_url": claude.base_url, "credential_id": str(credential)},
        url_target(other, model="openai-shaped", priority=1),
    ]
    router = await create_router(client, world, targets, by="org_admin")
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        two = await ai.chat.completions.create(model=router["name"], messages=MESSAGES, n=2)
        one = await ai.chat.completions.create(model=router["name"], messages=MESSAGES)
    assert two.model == "openai-shaped"
    assert len(two.choices) == 2
    assert one.id.startswith("msg_")


# --- registry cloud models as targets -----------------------------------------------------------


async def cloud_model(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    credential: uuid.UUID,
    provider: str = "anthropic",
    provider_model_id: str = "claude-sim-1",
) -> str:
    response = await client.post(
        "/models/cloud",
        json={
            "name": f"m-{uuid.uuid4().hex[:8]}",
            "provider": provider,
            "provider_model_id": provider_model_id,
            "credential_id": str(credential),
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["id"])


async def post_router(
    client: httpx.AsyncClient,
    world: World,
    targets: list[dict[str, Any]],
    by: str = "project_admin",
) -> httpx.Response:
    return await client.post(
        f"/projects/{world.project_a}/routers",
        json={"name": f"r-{uuid.uuid4().hex[:8]}", "targets": targets},
        headers=world[by].headers,
    )


async def test_a_cloud_model_target_is_called_through_its_provider(
    app: FastAPI, client: httpx.AsyncClient, world: World, gateway_url: str, start_sim: SimFactory
) -> None:
    sim = start_sim(api_key=ANTHROPIC_KEY, record_requests=4)
    credential = await anthropic_credential(client, world, sim.base_url)
    model_id = await cloud_model(client, world["org_admin"].headers, credential)
    router = await create_router(client, world, [{"kind": "model", "model_id": model_id}])
    assert router["targets"][0]["model_id"] == model_id
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        answer = await ai.chat.completions.create(model=router["name"], messages=MESSAGES)
    assert answer.model == "claude-sim-1"
    assert sim.app.received[0].body["model"] == "claude-sim-1"
    await flush_usage(app)
    (record,) = await records_of(app, key["id"])
    assert record.model == "claude-sim-1"


async def test_an_azure_cloud_model_uses_the_credentials_deployment(
    client: httpx.AsyncClient, world: World, gateway_url: str, start_sim: SimFactory
) -> None:
    sim = start_sim(record_requests=2)
    credential = await create_id(
        client,
        world["org_admin"].headers,
        {
            "kind": "azure_openai",
            "api_key": AZURE_KEY,
            "endpoint": sim.base_url,
            "api_version": "2024-10-21",
            "deployment": "fixed-deployment",
        },
    )
    model_id = await cloud_model(
        client, world["org_admin"].headers, credential, "azure_openai", "gpt-4o"
    )
    router = await create_router(client, world, [{"kind": "model", "model_id": model_id}])
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        answer = await ai.chat.completions.create(model=router["name"], messages=MESSAGES)
    assert answer.model == "fixed-deployment"
    assert sim.app.received[0].path == "/openai/deployments/fixed-deployment/chat/completions"


async def test_a_model_of_another_organization_is_not_found(
    client: httpx.AsyncClient, world: World
) -> None:
    credential = await create_id(
        client, world["org_admin_b"].headers, {"kind": "anthropic", "api_key": ANTHROPIC_KEY}
    )
    foreign = await cloud_model(client, world["org_admin_b"].headers, credential)
    response = await post_router(client, world, [{"kind": "model", "model_id": foreign}])
    assert response.status_code == 404, response.text
    unknown = await post_router(client, world, [{"kind": "model", "model_id": str(uuid.uuid4())}])
    assert unknown.status_code == 404


async def test_models_that_cannot_be_called_are_422(
    client: httpx.AsyncClient, world: World
) -> None:
    admin = world["org_admin"].headers
    custom = await client.post(
        "/models/custom", json={"name": "weights", "uri": "s3://bucket/w/"}, headers=admin
    )
    hf = await create_id(client, admin, {"kind": "huggingface", "token": "hf_0123456789abcdef"})
    bedrock_like = await cloud_model(client, admin, hf, "huggingface", "org/model")
    other_project = await client.post("/projects", json={"name": "elsewhere"}, headers=admin)
    elsewhere = await create_id(
        client,
        admin,
        {"kind": "anthropic", "api_key": ANTHROPIC_KEY},
        project_id=other_project.json()["data"]["id"],
    )
    not_ours = await cloud_model(client, admin, elsewhere)
    for model_id, words in [
        (custom.json()["data"]["id"], "only cloud models"),
        (bedrock_like, "cannot call huggingface"),
        (not_ours, "cannot be used by this project"),
    ]:
        response = await post_router(
            client, world, [{"kind": "model", "model_id": model_id}], by="org_admin"
        )
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert words in error["message"]
        assert error["details"][0]["field"] == "targets.0.model_id"


async def test_a_url_target_needs_a_credential_the_gateway_can_call_with(
    client: httpx.AsyncClient, world: World
) -> None:
    hf = await create_id(
        client, world["org_admin"].headers, {"kind": "huggingface", "token": "hf_0123456789abcdef"}
    )
    response = await post_router(
        client,
        world,
        [{"kind": "url", "base_url": "http://127.0.0.1:9", "credential_id": str(hf)}],
        by="org_admin",
    )
    assert response.status_code == 422, response.text


async def test_a_deleted_model_leaves_its_target_unavailable(
    client: httpx.AsyncClient, world: World, gateway_url: str, start_sim: SimFactory
) -> None:
    sim = start_sim()
    admin = world["org_admin"].headers
    credential = await anthropic_credential(client, world, sim.base_url)
    model_id = await cloud_model(client, admin, credential)
    router = await create_router(client, world, [{"kind": "model", "model_id": model_id}])
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        await ai.chat.completions.create(model=router["name"], messages=MESSAGES)
        assert (await client.delete(f"/models/{model_id}", headers=admin)).status_code == 204
        # The deletion reloads the project's routing at once (no wait for the TTL).
        with pytest.raises(openai.InternalServerError) as caught:
            await ai.chat.completions.create(model=router["name"], messages=MESSAGES)
    assert caught.value.status_code == 503
    assert caught.value.code == "no_target_available"


async def test_a_credential_update_reaches_the_gateway_at_once(
    client: httpx.AsyncClient, world: World, gateway_url: str, start_sim: SimFactory
) -> None:
    sim = start_sim(api_key=ANTHROPIC_KEY)
    admin = world["org_admin"].headers
    credential = await anthropic_credential(client, world, api_key="sk-ant-old-0123456789")
    router = await create_router(
        client,
        world,
        [{"kind": "url", "base_url": sim.base_url, "credential_id": str(credential)}],
        by="org_admin",
    )
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        with pytest.raises(openai.AuthenticationError):
            await ai.chat.completions.create(model=router["name"], messages=MESSAGES)
        updated = await client.put(
            f"/credentials/{credential}",
            json={"spec": {"api_key": ANTHROPIC_KEY}},
            headers=admin,
        )
        assert updated.status_code == 200, updated.text
        answer = await ai.chat.completions.create(model=router["name"], messages=MESSAGES)
    assert answer.choices[0].message.content
