"""The pure parts of the provider adapters: OpenAI requests to Anthropic's and Azure's, and
Anthropic's answers and stream events back to OpenAI's shape."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from budapp.gateway.errors import GatewayError
from budapp.gateway.providers import KINDS, upstream
from budapp.gateway.providers.anthropic import AnthropicProvider, translate_request
from budapp.gateway.providers.anthropic_answers import MessageStream, translate_response
from budapp.gateway.providers.azure import AzureProvider
from budapp.routers.service import CALLABLE_KINDS

USER = {"role": "user", "content": "Hello"}


def test_every_kind_the_routers_accept_has_an_adapter() -> None:
    assert set(CALLABLE_KINDS) == KINDS


# --- requests -----------------------------------------------------------------------------------


def test_system_messages_max_tokens_stop_and_sampling_are_translated() -> None:
    body = translate_request(
        {
            "model": "claude-x",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Be kind."}]},
                USER,
                {"role": "assistant", "content": "Hi!"},
                {"role": "user", "content": [{"type": "text", "text": "More"}]},
            ],
            "max_completion_tokens": 99,
            "max_tokens": 5,
            "temperature": 0.2,
            "top_p": 0.9,
            "stop": "END",
            "stream": True,
            "stream_options": {"include_usage": True},
            "user": "u-1",
            "n": 1,
            "seed": 4,
            "presence_penalty": 0,
        }
    )
    assert body == {
        "model": "claude-x",
        "system": "Be brief.\n\nBe kind.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Hi!"}]},
            {"role": "user", "content": [{"type": "text", "text": "More"}]},
        ],
        "max_tokens": 99,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "stream": True,
        "metadata": {"user_id": "u-1"},
    }


def test_max_tokens_has_a_default_because_anthropic_requires_it() -> None:
    assert translate_request({"model": "m", "messages": [USER]})["max_tokens"] == 4096
    assert translate_request({"model": "m", "messages": [USER], "max_tokens": 7})["max_tokens"] == 7


def test_images_become_image_blocks() -> None:
    parts = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    body = translate_request({"model": "m", "messages": [{"role": "user", "content": parts}]})
    assert body["messages"][0]["content"][1:] == [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_tools_tool_calls_and_tool_results_are_translated() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "The weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
    }
    body = translate_request(
        {
            "model": "m",
            "messages": [
                USER,
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
            ],
            "tools": tools,
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "parallel_tool_calls": False,
        }
    )
    assert body["tools"] == [
        {
            "name": "weather",
            "description": "The weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    assert body["tool_choice"] == {
        "type": "tool",
        "name": "weather",
        "disable_parallel_tool_use": True,
    }
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}}
        ],
    }
    # Consecutive tool results are one user turn.
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "rain"},
        ],
    }
    assert translate_request({"model": "m", "messages": [USER], "tool_choice": "required"})[
        "tool_choice"
    ] == {"type": "any"}


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"n": 2}, "n"),
        ({"n": True}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"logit_bias": {"1": 2}}, "logit_bias"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"audio": {"voice": "x"}}, "audio"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": [1]}, "stop"),
        ({"temperature": "hot"}, "temperature"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "only"}]}, "messages"),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages[0]"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}
                ]
            },
            "messages[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "http://x/a.png"}}],
                    }
                ]
            },
            "messages[0]",
        ),
        ({"tools": [{"type": "code_interpreter"}]}, "tools"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"temperature": 1.5}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
    ],
)
def test_what_anthropic_cannot_do_is_a_400_naming_the_field(
    change: dict[str, Any], param: str
) -> None:
    with pytest.raises(GatewayError) as caught:
        translate_request({"model": "m", "messages": [USER], **change})
    assert caught.value.status == 400
    assert caught.value.param == param
    assert caught.value.code == "unsupported_by_provider"


def test_anthropic_offers_chat_only() -> None:
    provider = AnthropicProvider()
    url, _ = provider.request(
        "chat/completions", "https://api.anthropic.com", {"model": "m", "messages": [USER]}
    )
    assert url == "https://api.anthropic.com/v1/messages"
    assert (
        provider.request("chat/completions", "http://h/v1", {"model": "m", "messages": [USER]})[0]
        == "http://h/v1/messages"
    )
    for route in ("completions", "embeddings"):
        with pytest.raises(GatewayError) as caught:
            provider.request(route, "https://api.anthropic.com", {"model": "m", "input": "x"})
        assert caught.value.status == 400
        assert route in caught.value.message


def test_azure_takes_the_deployment_from_the_credential_or_the_model() -> None:
    fixed = AzureProvider("2024-10-21", "prod-gpt")
    url, body = fixed.request(
        "chat/completions", "https://r.openai.azure.com", {"model": "gpt-4o", "messages": [USER]}
    )
    assert (
        url
        == "https://r.openai.azure.com/openai/deployments/prod-gpt/chat/completions?api-version=2024-10-21"
    )
    assert orjson.loads(body) == {"messages": [USER]}
    by_model = AzureProvider("2024-10-21", None)
    url, _ = by_model.request(
        "embeddings", "https://r.openai.azure.com/openai", {"model": "emb 1", "input": "x"}
    )
    assert (
        url
        == "https://r.openai.azure.com/openai/deployments/emb%201/embeddings?api-version=2024-10-21"
    )


def test_headers_and_addresses_follow_the_credential_kind() -> None:
    plain = upstream(None, "http://h/v1/")
    assert plain is not None
    assert plain.base_url == "http://h/v1"
    assert "authorization" not in plain.headers
    openai_ = upstream({"kind": "openai", "api_key": "sk-1", "organization": "org-9"}, None)
    assert openai_ is not None
    assert openai_.base_url == "https://api.openai.com/v1"
    assert openai_.headers["authorization"] == "Bearer sk-1"
    assert openai_.headers["openai-organization"] == "org-9"
    keyless = upstream({"kind": "openai_compatible", "base_url": "http://vllm/v1"}, None)
    assert keyless is not None
    assert "authorization" not in keyless.headers
    azure = upstream(
        {"kind": "azure_openai", "api_key": "az", "endpoint": "https://r", "api_version": "v"}, None
    )
    assert azure is not None
    assert azure.headers["api-key"] == "az"
    assert "authorization" not in azure.headers
    anthropic = upstream({"kind": "anthropic", "api_key": "sk-ant"}, None)
    assert anthropic is not None
    assert anthropic.base_url == "https://api.anthropic.com"
    assert anthropic.headers["x-api-key"] == "sk-ant"
    assert anthropic.headers["anthropic-version"] == "2023-06-01"
    assert upstream({"kind": "huggingface", "token": "hf"}, "http://h") is None
    assert upstream({"kind": "openai_compatible"}, None) is None


# --- answers ------------------------------------------------------------------------------------


def test_a_message_becomes_a_chat_completion() -> None:
    answer = translate_response(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": " there"}],
            "stop_reason": "max_tokens",
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 4},
        }
    )
    assert answer["object"] == "chat.completion"
    assert answer["id"] == "msg_1"
    assert answer["model"] == "claude-x"
    assert answer["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there", "refusal": None},
            "logprobs": None,
            "finish_reason": "length",
        }
    ]
    assert answer["usage"] == {
        "prompt_tokens": 14,
        "completion_tokens": 3,
        "total_tokens": 17,
        "prompt_tokens_details": {"cached_tokens": 4},
    }


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
    ],
)
def test_stop_reasons_map_to_finish_reasons(reason: str, finish: str) -> None:
    message = {"type": "message", "content": [], "stop_reason": reason, "usage": {}}
    assert translate_response(message)["choices"][0]["finish_reason"] == finish


def test_a_tool_use_becomes_a_tool_call() -> None:
    answer = translate_response(
        {
            "type": "message",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
    )
    message = answer["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
        }
    ]


def test_something_else_than_a_message_is_refused() -> None:
    with pytest.raises(ValueError, match="not an Anthropic message"):
        translate_response({"object": "chat.completion"})


# --- streams ------------------------------------------------------------------------------------


def event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


STREAM = b"".join(
    [
        event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "model": "claude-x",
                    "usage": {"input_tokens": 12, "output_tokens": 1},
                },
            },
        ),
        event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        event("ping", {"type": "ping"}),
        event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hel"},
            },
        ),
        event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "lo"},
            },
        ),
        event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 2},
            },
        ),
        event("message_stop", {"type": "message_stop"}),
    ]
)


def chunks(translated: bytes) -> list[Any]:
    found = []
    for block in translated.split(b"\n\n"):
        if block:
            assert block.startswith(b"data: ")
            data = block[6:]
            found.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return found


def test_a_stream_becomes_chat_completion_chunks_with_usage_and_done() -> None:
    stream = MessageStream()
    out = stream.feed(STREAM) + stream.close()
    found = chunks(out)
    assert found[-1] == "[DONE]"
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "msg_1" for c in found[:-1])
    assert found[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"].get("content") for c in found[1:3]] == ["Hel", "lo"]
    assert found[3]["choices"][0]["finish_reason"] == "stop"
    assert found[4]["choices"] == []
    assert found[4]["usage"] == {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}
    assert not stream.failed


@pytest.mark.parametrize("size", [1, 7, 64])
def test_events_split_across_reads_give_the_same_chunks(size: int) -> None:
    whole = MessageStream().feed(STREAM)
    stream = MessageStream()
    pieces = b"".join(stream.feed(STREAM[i : i + size]) for i in range(0, len(STREAM), size))
    # Only `created` may differ between two translations.
    strip = [
        {k: v for k, v in c.items() if k != "created"} if isinstance(c, dict) else c
        for c in chunks(pieces)
    ]
    expected = [
        {k: v for k, v in c.items() if k != "created"} if isinstance(c, dict) else c
        for c in chunks(whole)
    ]
    assert strip == expected
    # Every piece handed on holds whole events only.
    assert pieces.endswith(b"\n\n")


def test_crlf_separated_events_are_understood() -> None:
    stream = MessageStream()
    found = chunks(stream.feed(STREAM.replace(b"\n", b"\r\n")))
    assert found[-1] == "[DONE]"


def test_an_error_event_ends_the_stream_with_an_openai_error() -> None:
    stream = MessageStream()
    error = event(
        "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    found = chunks(stream.feed(STREAM[: STREAM.index(b"event: content_block_stop")] + error))
    assert found[-1] == {
        "error": {
            "message": "Overloaded",
            "type": "overloaded_error",
            "param": None,
            "code": "upstream_error",
        }
    }
    assert stream.failed
    assert stream.close() == b""


def test_a_stream_that_stops_early_ends_with_an_error() -> None:
    stream = MessageStream()
    stream.feed(STREAM[:200])
    found = chunks(stream.close())
    assert "error" in found[-1]
    assert stream.failed


def test_tool_use_streams_as_tool_call_deltas() -> None:
    stream = MessageStream()
    out = stream.feed(
        STREAM[: STREAM.index(b"event: content_block_start")]
        + event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "weather",
                    "input": {},
                },
            },
        )
        + event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"city":'},
            },
        )
        + event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use"},
                "usage": {"output_tokens": 5},
            },
        )
    )
    found = chunks(out)
    assert found[1]["choices"][0]["delta"]["tool_calls"] == [
        {
            "index": 0,
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "weather", "arguments": ""},
        }
    ]
    assert found[2]["choices"][0]["delta"]["tool_calls"] == [
        {"index": 0, "function": {"arguments": '{"city":'}}
    ]
    assert found[3]["choices"][0]["finish_reason"] == "tool_calls"
