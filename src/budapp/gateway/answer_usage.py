"""The tokens a call used: from the backend's `usage` when it gives one (in the answer, or in the
stream's usage chunk), otherwise estimated from the text."""

from __future__ import annotations

from typing import Any

import orjson

from budapp.gateway import tokens


def answer_usage(
    usage: Any, payload: dict[str, Any], body: dict[str, Any]
) -> tuple[int, int, bool]:
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        completion = usage.get("completion_tokens")
        return usage["prompt_tokens"], completion if isinstance(completion, int) else 0, False
    prompt = tokens.estimate(tokens.prompt_length(payload))
    return prompt, tokens.estimate(tokens.completion_length(body)), True


def stream_usage(
    usage: dict[str, Any] | None, payload: dict[str, Any], completion_chars: int
) -> tuple[int, int, bool]:
    if usage is not None and isinstance(usage.get("prompt_tokens"), int):
        completion = usage.get("completion_tokens")
        return usage["prompt_tokens"], completion if isinstance(completion, int) else 0, False
    return tokens.estimate(tokens.prompt_length(payload)), tokens.estimate(completion_chars), True


def take_usage(events: bytes, strip: bool) -> tuple[bytes, dict[str, Any] | None]:
    """Finds the usage in a run of events; drops the usage-only chunk the client did not ask for."""
    kept: list[bytes] = []
    usage = None
    for event in events.split(b"\n\n"):
        if not event:
            continue
        if b'"usage"' in event and event.startswith(b"data: {"):
            try:
                chunk = orjson.loads(event[6:])
            except orjson.JSONDecodeError:
                chunk = None
            if isinstance(chunk, dict) and isinstance(chunk.get("usage"), dict):
                usage = chunk["usage"]
                if strip and not chunk.get("choices"):
                    continue
        kept.append(event + b"\n\n")
    return b"".join(kept), usage


def content_chars(events: bytes) -> int:
    # Only for backends without usage: a rough count of the streamed text's characters.
    return events.count(b'"content":"') * 4 + events.count(b'"text":"') * 4
