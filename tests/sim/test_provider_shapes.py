"""The simulator's Anthropic Messages API and Azure OpenAI routes: their shapes, their keys,
their errors, and the failure injection on them."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest

from budapp.sim.text import count_tokens
from tests.sim.conftest import RunningSim, SimFactory

ANTHROPIC = {"anthropic-version": "2023-06-01"}
BODY: dict[str, Any] = {
    "model": "claude-sim",
    "max_tokens": 64,
    "system": "You are terse.",
    "messages": [{"role": "user", "content": "Hello, world!"}],
}


def events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """The (event, data) pairs of an Anthropic stream."""
    found = []
    for block in text.strip().split("\n\n"):
        name, data = block.split("\n")
        found.append((name.removeprefix("event: "), orjson.loads(data.removeprefix("data: "))))
    return found


def test_a_message_has_anthropics_shape_and_usage(sim: RunningSim) -> None:
    with sim.http() as http:
        response = http.post("/v1/messages", json=BODY, headers=ANTHROPIC)
    assert response.status_code == 200, response.text
    message = response.json()
    assert message["id"].startswith("msg_")
    assert message["type"] == "message"
    assert message["role"] == "assistant"
    assert message["model"] == "claude-sim"
    [block] = message["content"]
    assert block["type"] == "text"
    assert message["stop_reason"] == "end_turn"
    assert message["stop_sequence"] is None
    # The system prompt counts: "You are terse." + "Hello, world!".
    assert message["usage"] == {"input_tokens": 8, "output_tokens": 16}
    assert count_tokens(block["text"]) == 16


def test_max_tokens_is_required_and_caps_the_answer(sim: RunningSim) -> None:
    with sim.http() as http:
        missing = http.post(
            "/v1/messages", json={k: v for k, v in BODY.items() if k != "max_tokens"}
        )
        short = http.post("/v1/messages", json={**BODY, "max_tokens": 3}, headers=ANTHROPIC)
    assert missing.status_code == 400
    assert short.json()["stop_reason"] == "max_tokens"
    assert short.json()["usage"]["output_tokens"] == 3


def test_a_stop_sequence_cuts_the_answer_before_it(start_sim: SimFactory) -> None:
    sim = start_sim(text_source="echo")
    body = {**BODY, "messages": [{"role": "user", "content": "alpha beta gamma delta"}]}
    with sim.http() as http:
        response = http.post(
            "/v1/messages", json={**body, "stop_sequences": ["gamma"]}, headers=ANTHROPIC
        )
    message = response.json()
    assert message["content"][0]["text"] == "alpha beta"
    assert message["stop_reason"] == "stop_sequence"
    assert message["stop_sequence"] == "gamma"
    assert message["usage"]["output_tokens"] == 2


def test_a_stream_has_anthropics_events(sim: RunningSim) -> None:
    with sim.http() as http:
        response = http.post("/v1/messages", json={**BODY, "stream": True}, headers=ANTHROPIC)
    assert response.headers["content-type"].startswith("text/event-stream")
    stream = events(response.text)
    names = [name for name, _ in stream]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert names.count("content_block_delta") == 16
    assert all(name == data["type"] for name, data in stream)
    assert stream[0][1]["message"]["usage"]["input_tokens"] == 8
    delta = stream[-2][1]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"] == {"output_tokens": 16}


WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
    },
}
TOOLS: dict[str, Any] = {"tools": [{"name": "noop"}, WEATHER]}


def test_a_forced_tool_choice_answers_with_a_tool_use_block(sim: RunningSim) -> None:
    forced = {**BODY, **TOOLS, "tool_choice": {"type": "tool", "name": "get_weather"}}
    with sim.http() as http:
        named = http.post("/v1/messages", json=forced, headers=ANTHROPIC).json()
        first = http.post(
            "/v1/messages", json={**forced, "tool_choice": {"type": "any"}}, headers=ANTHROPIC
        ).json()
        auto = http.post(
            "/v1/messages", json={**forced, "tool_choice": {"type": "auto"}}, headers=ANTHROPIC
        ).json()
    [block] = named["content"]
    assert block["type"] == "tool_use"
    assert block["id"].startswith("toolu_")
    assert (block["name"], block["input"]) == ("get_weather", {"city": "sim", "days": 1})
    assert named["stop_reason"] == "tool_use"
    assert (first["content"][0]["name"], first["content"][0]["input"]) == ("noop", {})
    assert auto["content"][0]["type"] == "text"


def test_a_streamed_tool_call_sends_its_input_as_json_deltas(sim: RunningSim) -> None:
    forced = {**BODY, **TOOLS, "tool_choice": {"type": "tool", "name": "get_weather"}}
    with sim.http() as http:
        response = http.post("/v1/messages", json={**forced, "stream": True}, headers=ANTHROPIC)
    stream = events(response.text)
    start = stream[1][1]["content_block"]
    assert (start["type"], start["name"], start["input"]) == ("tool_use", "get_weather", {})
    deltas = [data["delta"] for name, data in stream if name == "content_block_delta"]
    assert len(deltas) > 1
    assert {delta["type"] for delta in deltas} == {"input_json_delta"}
    assert orjson.loads("".join(d["partial_json"] for d in deltas)) == {"city": "sim", "days": 1}
    assert stream[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_errors_have_anthropics_shape(start_sim: SimFactory) -> None:
    sim = start_sim(api_key="sk-ant-sim", failure_rate=1.0, failure_status=529)
    with sim.http() as http:
        no_version = http.post("/v1/messages", json=BODY, headers={"x-api-key": "sk-ant-sim"})
        wrong_key = http.post("/v1/messages", json=BODY, headers={**ANTHROPIC, "x-api-key": "x"})
        overloaded = http.post(
            "/v1/messages", json=BODY, headers={**ANTHROPIC, "x-api-key": "sk-ant-sim"}
        )
    assert no_version.status_code == 400
    assert no_version.json()["error"]["type"] == "invalid_request_error"
    assert wrong_key.status_code == 401
    assert wrong_key.json()["type"] == "error"
    assert wrong_key.json()["error"]["type"] == "authentication_error"
    assert overloaded.status_code == 529
    assert overloaded.json()["error"]["type"] == "overloaded_error"


@pytest.mark.parametrize(
    "change",
    [
        {"messages": []},
        {"messages": [{"role": "system", "content": "x"}]},
        {"messages": [{"role": "user", "content": [{"type": "video"}]}]},
        {"stop_sequences": "x"},
        {"model": ""},
        {"tools": [{"description": "no name"}], "tool_choice": {"type": "any"}},
        {"tools": [], "tool_choice": {"type": "any"}},
        {"tools": [{"name": "a"}], "tool_choice": {"type": "tool", "name": "b"}},
        {"tools": [{"name": "a"}], "tool_choice": {"type": "sometimes"}},
    ],
)
def test_malformed_messages_are_400(sim: RunningSim, change: dict[str, Any]) -> None:
    with sim.http() as http:
        response = http.post("/v1/messages", json={**BODY, **change}, headers=ANTHROPIC)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_the_stream_abort_mode_cuts_anthropic_streams_too(start_sim: SimFactory) -> None:
    sim = start_sim(failure_rate=1.0, failure_mode="abort")
    received = bytearray()
    with (  # noqa: PT012
        sim.http() as http,
        pytest.raises(httpx.RemoteProtocolError),
        http.stream(
            "POST", "/v1/messages", json={**BODY, "stream": True}, headers=ANTHROPIC
        ) as response,
    ):
        for chunk in response.iter_bytes():
            received += chunk
    assert b"message_start" in received
    assert b"message_stop" not in received


def test_azure_routes_serve_the_deployment_with_openais_client(start_sim: SimFactory) -> None:
    sim = start_sim(api_key="azure-key", record_requests=4)
    azure = openai.AzureOpenAI(
        azure_endpoint=sim.base_url, api_key="azure-key", api_version="2024-10-21", max_retries=0
    )
    answer = azure.chat.completions.create(
        model="my-deployment", messages=[{"role": "user", "content": "hi"}]
    )
    vectors = azure.embeddings.create(model="my-embedder", input="hi", dimensions=8)
    streamed = azure.chat.completions.create(
        model="my-deployment", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert answer.model == "my-deployment"
    assert len(vectors.data[0].embedding) == 8
    assert text
    first = sim.app.received[0]
    assert first.path == "/openai/deployments/my-deployment/chat/completions"
    assert first.query == "api-version=2024-10-21"
    assert first.headers["api-key"] == "azure-key"


def test_azure_needs_the_api_version_and_the_key(start_sim: SimFactory) -> None:
    sim = start_sim(api_key="azure-key")
    path = "/openai/deployments/d/chat/completions"
    body = {"messages": [{"role": "user", "content": "hi"}]}
    with sim.http() as http:
        no_version = http.post(path, json=body, headers={"api-key": "azure-key"})
        wrong_key = http.post(
            path, params={"api-version": "2024-10-21"}, json=body, headers={"api-key": "no"}
        )
        unknown = http.post("/openai/deployments/d/images", json=body)
    assert no_version.status_code == 400
    assert no_version.json()["error"]["param"] == "api-version"
    assert wrong_key.status_code == 401
    assert wrong_key.json()["error"]["code"] == "invalid_api_key"
    assert unknown.status_code == 404


def test_a_configured_key_is_required_on_openai_routes(start_sim: SimFactory) -> None:
    sim = start_sim(api_key="sk-sim")
    with pytest.raises(openai.AuthenticationError):
        sim.client().chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
    good = openai.OpenAI(base_url=sim.base_url + "/v1", api_key="sk-sim", max_retries=0)
    assert good.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])


def test_injected_failures_take_the_configured_status(start_sim: SimFactory) -> None:
    sim = start_sim(failure_rate=1.0, failure_status=429)
    with pytest.raises(openai.RateLimitError):
        sim.client().chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
