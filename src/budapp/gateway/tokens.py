"""Token counts for calls whose backend reports no usage. An estimate (about four characters
per token, as OpenAI's own rule of thumb says for English): the meter marks such rows
`estimated`. Backends that report usage (vLLM, SGLang, budapp-sim, OpenAI) are counted exactly."""

from __future__ import annotations

from typing import Any


def estimate(text_length: int) -> int:
    return max(1, (text_length + 3) // 4) if text_length else 0


def prompt_length(payload: dict[str, Any]) -> int:
    """Characters of the prompt: chat messages' text, a completion prompt or embedding input."""
    total = 0
    for message in payload.get("messages") or ():
        if isinstance(message, dict):
            total += _length(message.get("content"))
    total += _length(payload.get("prompt"))
    total += _length(payload.get("input"))
    return total


def _length(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        # Token ids count as one token (four characters) each.
        return sum(4 if isinstance(item, int) else _length(item) for item in value)
    if isinstance(value, dict):
        return _length(value.get("text"))
    return 0


def completion_length(body: dict[str, Any]) -> int:
    total = 0
    for choice in body.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        message = choice.get("message") or choice.get("delta") or {}
        total += _length(message.get("content") if isinstance(message, dict) else None)
        total += _length(choice.get("text"))
    return total
