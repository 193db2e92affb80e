"""OpenAI's response bodies and stream chunks, byte for byte in their documented shape."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import orjson

from budapp.sim.embeddings import embed, embed_token_ids, to_base64
from budapp.sim.protocol import EmbeddingRequest
from budapp.sim.text import count_tokens


@dataclass(slots=True)
class Choice:
    index: int
    pieces: list[str]  # one per token; they join into the choice's text
    finish_reason: str


def new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_completion(
    model: str, created: int, choices: list[Choice], prompt_tokens: int
) -> dict[str, Any]:
    return {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": choice.index,
                "message": {
                    "role": "assistant",
                    "content": "".join(choice.pieces),
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": choice.finish_reason,
            }
            for choice in choices
        ],
        "usage": usage(prompt_tokens, sum(len(choice.pieces) for choice in choices)),
    }


def text_completion(
    model: str, created: int, choices: list[Choice], prompt_tokens: int
) -> dict[str, Any]:
    return {
        "id": new_id("cmpl-"),
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "text": "".join(choice.pieces),
                "index": choice.index,
                "logprobs": None,
                "finish_reason": choice.finish_reason,
            }
            for choice in choices
        ],
        "usage": usage(prompt_tokens, sum(len(choice.pieces) for choice in choices)),
    }


class ChunkEncoder:
    """Encodes the SSE events of one stream; the envelope of a chunk is encoded once."""

    done = b"data: [DONE]\n\n"

    def __init__(self, chat: bool, model: str, created: int, include_usage: bool) -> None:
        self.chat = chat
        envelope = orjson.dumps(
            {
                "id": new_id("chatcmpl-" if chat else "cmpl-"),
                "object": "chat.completion.chunk" if chat else "text_completion",
                "created": created,
                "model": model,
            }
        )
        self._head = b"data: " + envelope[:-1] + b',"choices":['
        # With include_usage every chunk carries "usage": null, and a last one the figures.
        self._tail = b'],"usage":null}\n\n' if include_usage else b"]}\n\n"

    def _event(self, choice: dict[str, Any]) -> bytes:
        return self._head + orjson.dumps(choice) + self._tail

    def role(self, index: int) -> bytes:
        return self._event(
            {
                "index": index,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        )

    def piece(self, index: int, piece: str, tokens: int = 1) -> bytes:  # noqa: ARG002 - counted by usage
        if self.chat:
            choice = {
                "index": index,
                "delta": {"content": piece},
                "logprobs": None,
                "finish_reason": None,
            }
        else:
            choice = {"text": piece, "index": index, "logprobs": None, "finish_reason": None}
        return self._event(choice)

    def finish(self, index: int, reason: str) -> bytes:
        if self.chat:
            choice = {"index": index, "delta": {}, "logprobs": None, "finish_reason": reason}
        else:
            choice = {"text": "", "index": index, "logprobs": None, "finish_reason": reason}
        return self._event(choice)

    def usage(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        figures = orjson.dumps(usage(prompt_tokens, completion_tokens))
        return self._head + b'],"usage":' + figures + b"}\n\n"

    @staticmethod
    def error(payload: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(payload) + b"\n\n"


DONE = ChunkEncoder.done


def embeddings(request: EmbeddingRequest, dimensions: int) -> tuple[dict[str, Any], int]:
    """The response body and the number of prompt tokens it counts."""
    data = []
    tokens = 0
    for index, item in enumerate(request.inputs):
        if isinstance(item, str):
            vector = embed(item, dimensions)
            tokens += count_tokens(item)
        else:
            vector = embed_token_ids(item, dimensions)
            tokens += len(item)
        encoded: list[float] | str = to_base64(vector) if request.base64 else vector
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    body = {
        "object": "list",
        "data": data,
        "model": request.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return body, tokens
