"""Anthropic's answers in OpenAI's shape: a message as a `chat.completion`, and its stream of
events, read by read, as `chat.completion.chunk` events."""

from __future__ import annotations

import time
from typing import Any

import orjson

from budapp.gateway.providers.base import StreamTranslator

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def usage(figures: dict[str, Any]) -> dict[str, Any]:
    """Anthropic's usage in OpenAI's terms: cached input counts as prompt tokens (as OpenAI
    counts it), and cache reads are reported as cached tokens."""
    cached = _count(figures.get("cache_read_input_tokens"))
    prompt = (
        _count(figures.get("input_tokens"))
        + _count(figures.get("cache_creation_input_tokens"))
        + cached
    )
    completion = _count(figures.get("output_tokens"))
    result: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached:
        result["prompt_tokens_details"] = {"cached_tokens": cached}
    return result


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def translate_response(message: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic message as a `chat.completion`."""
    content = message.get("content")
    if message.get("type") != "message" or not isinstance(content, list):
        raise ValueError("not an Anthropic message")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    reply: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        reply["tool_calls"] = calls
    figures = message.get("usage")
    return {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model"),
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": FINISH_REASONS.get(str(message.get("stop_reason")), "stop"),
            }
        ],
        "usage": usage(figures if isinstance(figures, dict) else {}),
    }


# --- the stream --------------------------------------------------------------------------------


class MessageStream(StreamTranslator):
    """Anthropic's stream events, as they arrive in reads of any size, to OpenAI's
    `chat.completion.chunk` events: one client event per text delta, the usage chunk (which
    the gateway drops for clients that did not ask) and `[DONE]` at `message_stop`."""

    def __init__(self) -> None:
        super().__init__()
        self._buffer = b""
        self._head = b""
        self._usage: dict[str, Any] = {}
        self._tools: dict[int, int] = {}  # content block index -> tool call index
        self.done = False

    def feed(self, data: bytes) -> bytes:
        if self.done or self.failed:
            return b""
        self._buffer += data
        out: list[bytes] = []
        while True:
            # SSE events end with a blank line; servers may use \r\n.
            end, size = _event_end(self._buffer)
            if end < 0:
                break
            event, self._buffer = self._buffer[:end], self._buffer[end + size :]
            out.append(self._event(event))
            if self.done or self.failed:
                break
        return b"".join(out)

    def finish(self) -> bytes:
        if self.done or self.failed:
            return b""
        self.fail("5xx", "The provider ended the stream before its end")
        return _error_event(self.failure[1], "api_error")

    def _event(self, raw: bytes) -> bytes:
        data = b"".join(
            line[5:].lstrip(b" ")
            for line in raw.replace(b"\r\n", b"\n").split(b"\n")
            if line.startswith(b"data:")
        )
        if not data:
            return b""
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.fail("5xx", "The provider sent an event that is not JSON")
            return _error_event(self.failure[1], "api_error")
        if not isinstance(event, dict):
            return b""
        handler = _HANDLERS.get(str(event.get("type")))
        return handler(self, event) if handler is not None else b""

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._head + orjson.dumps([choice]) + b"}\n\n"

    def _start(self, event: dict[str, Any]) -> bytes:
        message = event.get("message")
        message = message if isinstance(message, dict) else {}
        self._usage = dict(message.get("usage") or {})
        envelope = orjson.dumps(
            {
                "id": message.get("id"),
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": message.get("model"),
            }
        )
        self._head = b"data: " + envelope[:-1] + b',"choices":'
        return self._chunk({"role": "assistant", "content": ""})

    def _block_start(self, event: dict[str, Any]) -> bytes:
        block = event.get("content_block")
        if not isinstance(block, dict):
            return b""
        if block.get("type") == "text" and block.get("text"):
            return self._chunk({"content": block["text"]})
        if block.get("type") != "tool_use":
            return b""
        index = len(self._tools)
        self._tools[_count(event.get("index"))] = index
        call = {
            "index": index,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": ""},
        }
        return self._chunk({"tool_calls": [call]})

    def _block_delta(self, event: dict[str, Any]) -> bytes:
        delta = event.get("delta")
        if not isinstance(delta, dict):
            return b""
        if delta.get("type") == "text_delta":
            return self._chunk({"content": delta.get("text", "")})
        if delta.get("type") == "input_json_delta":
            index = self._tools.get(_count(event.get("index")))
            if index is None:
                return b""
            call = {"index": index, "function": {"arguments": delta.get("partial_json", "")}}
            return self._chunk({"tool_calls": [call]})
        return b""  # thinking and signature deltas have no OpenAI equivalent

    def _message_delta(self, event: dict[str, Any]) -> bytes:
        figures = event.get("usage")
        if isinstance(figures, dict):
            # Cumulative counts: the last one given wins.
            self._usage.update({k: v for k, v in figures.items() if v is not None})
        delta = event.get("delta")
        reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if reason is None:
            return b""
        return self._chunk({}, FINISH_REASONS.get(str(reason), "stop"))

    def _stop(self, _event: dict[str, Any]) -> bytes:
        self.done = True
        figures = orjson.dumps(usage(self._usage))
        return self._head + b'[],"usage":' + figures + b"}\n\n" + b"data: [DONE]\n\n"

    def _error(self, event: dict[str, Any]) -> bytes:
        error = event.get("error")
        error = error if isinstance(error, dict) else {}
        message = error.get("message")
        kind = str(error.get("type") or "api_error")
        self.fail(
            "429" if kind == "rate_limit_error" else "5xx",
            message if isinstance(message, str) else "The provider reported an error",
        )
        return _error_event(self.failure[1], kind)


_HANDLERS = {
    "message_start": MessageStream._start,
    "content_block_start": MessageStream._block_start,
    "content_block_delta": MessageStream._block_delta,
    "message_delta": MessageStream._message_delta,
    "message_stop": MessageStream._stop,
    "error": MessageStream._error,
}


def _event_end(buffer: bytes) -> tuple[int, int]:
    """Where the first complete event ends, and the length of its separator; (-1, 0): none."""
    ends = [(at, len(sep)) for sep in (b"\n\n", b"\r\n\r\n") if (at := buffer.find(sep)) >= 0]
    return min(ends) if ends else (-1, 0)


def _error_event(message: str, type_: str) -> bytes:
    error = {"message": message, "type": type_, "param": None, "code": "upstream_error"}
    return b"data: " + orjson.dumps({"error": error}) + b"\n\n"
