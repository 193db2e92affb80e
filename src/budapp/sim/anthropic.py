"""Anthropic's Messages API (`POST /v1/messages`): its request, its answer, its stream events
and its error shape, enough for a gateway that translates OpenAI calls to be tested against
a real server. Like protocol.py, only what the simulator uses is checked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from budapp.sim.errors import ApiError, bad_request
from budapp.sim.protocol import GenerationRequest, Prompt
from budapp.sim.responses import Choice, new_id
from budapp.sim.text import count_tokens

# Anthropic's error type for each status it answers with.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}
TOOL_USE = "tool_use"
# A tool call's input is streamed in pieces of this many characters, as input_json_delta.
_JSON_PIECE = 8
# What a forced tool call fills each required property of the tool's input schema with.
_SAMPLE_VALUES: dict[str, Any] = {
    "string": "sim",
    "integer": 1,
    "number": 1,
    "boolean": True,
    "array": [],
    "object": {},
}


def error_body(error: ApiError) -> bytes:
    type_ = ERROR_TYPES.get(error.status, "api_error")
    return orjson.dumps({"type": "error", "error": {"type": type_, "message": error.message}})


@dataclass(slots=True)
class ToolCall:
    """The tool the request forces (`tool_choice` any or tool) and the input the simulator
    calls it with: each required property of its schema, filled with a sample value."""

    id: str
    name: str
    input: dict[str, Any]

    def pieces(self) -> list[str]:
        text = orjson.dumps(self.input).decode()
        return [text[i : i + _JSON_PIECE] for i in range(0, len(text), _JSON_PIECE)] or ["{}"]


@dataclass(slots=True)
class MessagesRequest:
    generation: GenerationRequest
    stop_sequences: list[str]
    tool: ToolCall | None = None


def _forced_tool(body: dict[str, Any]) -> ToolCall | None:
    """Anthropic's `tools` and `tool_choice`: a call is made only when the choice forces one
    (`any`: the first tool, `tool`: the named one); `auto` and `none` answer with text."""
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if tools is None and choice is None:
        return None
    if not isinstance(tools, list) or not all(
        isinstance(t, dict) and isinstance(t.get("name"), str) for t in tools
    ):
        raise bad_request("tools: must be a list of tools with a name")
    if choice is None:
        return None
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise bad_request("tool_choice: type must be auto, any, tool or none")
    if choice["type"] in ("auto", "none"):
        return None
    if not tools:
        raise bad_request("tool_choice: there are no tools to choose from")
    if choice["type"] == "any":
        tool = tools[0]
    else:
        named = [t for t in tools if t["name"] == choice.get("name")]
        if not named:
            raise bad_request(f"tool_choice: no tool named {choice.get('name')!r}")
        tool = named[0]
    schema = tool.get("input_schema")
    properties = schema.get("properties", {}) if isinstance(schema, dict) else {}
    required = schema.get("required", []) if isinstance(schema, dict) else []
    arguments = {
        name: _SAMPLE_VALUES.get(str((properties.get(name) or {}).get("type")), "sim")
        for name in required
        if isinstance(name, str)
    }
    return ToolCall(new_id("toolu_"), tool["name"], arguments)


def _text_of(content: object, where: str) -> str:
    """The text of a string or of a list of content blocks (text, tool use and tool results;
    images count no tokens)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad_request(f"{where}: content must be a string or a list of content blocks")
    texts = []
    for block in content:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise bad_request(f"{where}: each content block must be an object with a type")
        kind = block["type"]
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise bad_request(f"{where}: a text block needs a string text")
            texts.append(block["text"])
        elif kind == "tool_use":
            texts.append(orjson.dumps(block.get("input")).decode())
        elif kind == "tool_result":
            inner = block.get("content")
            texts.append(_text_of(inner, where) if inner is not None else "")
        elif kind != "image":
            raise bad_request(f"{where}: unknown content block type {kind!r}")
    return "\n".join(texts)


def parse_messages(body: dict[str, Any]) -> MessagesRequest:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise bad_request("max_tokens: Field required (an integer >= 1)")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages: at least one message is required")
    tokens = 0
    system = body.get("system")
    if system is not None:
        tokens += count_tokens(_text_of(system, "system"))
    echo = ""
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise bad_request(f"{where}: role must be 'user' or 'assistant'")
        text = _text_of(message.get("content"), where)
        tokens += count_tokens(text)
        if message["role"] == "user":
            echo = text
    stops = body.get("stop_sequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise bad_request("stop_sequences: must be a list of non-empty strings")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_request("stream: must be a boolean")
    generation = GenerationRequest(
        model=model,
        prompts=[Prompt(tokens, echo)],
        n=1,
        max_tokens=max_tokens,
        ignore_eos=False,
        stream=stream,
        include_usage=False,
        seed=None,
    )
    return MessagesRequest(generation, stops, _forced_tool(body))


def call_tool(choice: Choice, tool: ToolCall) -> None:
    """Makes the planned choice a call of `tool`: its pieces are the input's JSON."""
    choice.pieces = tool.pieces()
    choice.finish_reason = TOOL_USE


def apply_stop(choice: Choice, stops: list[str]) -> str | None:
    """Cuts the choice before the first stop sequence in its text (Anthropic leaves the
    sequence out); returns the sequence that matched."""
    if not stops:
        return None
    text = "".join(choice.pieces)
    found = [(at, stop) for stop in stops if (at := text.find(stop)) >= 0]
    if not found:
        return None
    at, stop = min(found)
    kept: list[str] = []
    length = 0
    for piece in choice.pieces:
        if length + len(piece) > at:
            break
        kept.append(piece)
        length += len(piece)
    choice.pieces = kept
    choice.finish_reason = "stop_sequence"
    return stop


def message(
    model: str,
    choice: Choice,
    prompt_tokens: int,
    stop_sequence: str | None,
    tool: ToolCall | None = None,
) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": "".join(choice.pieces)}
    if tool is not None:
        block = {"type": TOOL_USE, "id": tool.id, "name": tool.name, "input": tool.input}
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [block],
        "stop_reason": STOP_REASONS.get(choice.finish_reason, choice.finish_reason),
        "stop_sequence": stop_sequence,
        "usage": {"input_tokens": prompt_tokens, "output_tokens": len(choice.pieces)},
    }


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class MessagesEncoder:
    """The stream events of one message, with the methods of responses.ChunkEncoder that the
    simulator's stream loop calls (one choice: index 0)."""

    chat = True

    def __init__(
        self,
        model: str,
        prompt_tokens: int,
        stop_sequence: str | None,
        tool: ToolCall | None = None,
    ) -> None:
        self._model = model
        self._prompt_tokens = prompt_tokens
        self._stop_sequence = stop_sequence
        self._tool = tool
        self._produced = 0
        self.done = _event("message_stop", {"type": "message_stop"})

    def role(self, index: int) -> bytes:
        del index
        start: dict[str, Any] = {
            "id": new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self._prompt_tokens, "output_tokens": 1},
        }
        block: dict[str, Any] = {"type": "text", "text": ""}
        if self._tool is not None:
            block = {"type": TOOL_USE, "id": self._tool.id, "name": self._tool.name, "input": {}}
        return (
            _event("message_start", {"type": "message_start", "message": start})
            + _event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": block},
            )
            + _event("ping", {"type": "ping"})
        )

    def piece(self, index: int, piece: str, tokens: int = 1) -> bytes:
        self._produced += tokens
        delta = (
            {"type": "input_json_delta", "partial_json": piece}
            if self._tool is not None
            else {"type": "text_delta", "text": piece}
        )
        return _event(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        )

    def finish(self, index: int, reason: str) -> bytes:
        delta = {
            "stop_reason": STOP_REASONS.get(reason, reason),
            "stop_sequence": self._stop_sequence,
        }
        return _event(
            "content_block_stop", {"type": "content_block_stop", "index": index}
        ) + _event(
            "message_delta",
            {"type": "message_delta", "delta": delta, "usage": {"output_tokens": self._produced}},
        )

    def usage(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        del prompt_tokens, completion_tokens
        return b""  # in message_start and message_delta already
