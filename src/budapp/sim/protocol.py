"""Parsing of the request bodies, with OpenAI's 400 messages and `param` names.

Hand-written rather than a schema library: these checks run on every request of a load test,
and they only look at the fields the simulator uses. Other OpenAI parameters (temperature,
stop, tools, logprobs, ...) are accepted and ignored, as vLLM does with what it does not support.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from budapp.sim.errors import bad_request
from budapp.sim.text import count_tokens

MAX_TOKENS_PER_REQUEST = 1 << 20


@dataclass(slots=True)
class Prompt:
    tokens: int
    text: str  # what seeds the generator and what `echo` repeats ("" for token-id prompts)


@dataclass(slots=True)
class GenerationRequest:
    model: str
    prompts: list[Prompt]  # one for chat; one or more for completions
    n: int
    max_tokens: int | None
    ignore_eos: bool
    stream: bool
    include_usage: bool
    seed: int | None

    @property
    def prompt_tokens(self) -> int:
        return sum(prompt.tokens for prompt in self.prompts)


@dataclass(slots=True)
class EmbeddingRequest:
    model: str
    inputs: list[str | list[int]]
    base64: bool
    dimensions: int | None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("you must provide a model parameter (a non-empty string)", "model")
    return model


def _optional_int(body: dict[str, Any], name: str, minimum: int, maximum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not _is_int(value) or not minimum <= value <= maximum:
        raise bad_request(f"{name} must be an integer from {minimum} to {maximum}", name)
    result: int = value
    return result


def _optional_bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad_request(f"{name} must be a boolean", name)
    return value


def _message_text(content: object, index: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise bad_request(
                    "each content part must be an object with a type",
                    f"messages.[{index}].content",
                )
            if part["type"] == "text":
                text = part.get("text")
                if not isinstance(text, str):
                    raise bad_request(
                        "a text content part needs a string text", f"messages.[{index}].content"
                    )
                texts.append(text)
        return "\n".join(texts)
    raise bad_request(
        "content must be a string, a list of content parts, or null",
        f"messages.[{index}].content",
    )


def _chat_prompt(messages: object) -> Prompt:
    """Counts the text of every message; echo repeats the last user message."""
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages must be a non-empty array", "messages")
    tokens = 0
    echo = ""
    last = ""
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise bad_request("each message must be an object with a role", f"messages.[{index}]")
        text = _message_text(message.get("content"), index)
        tokens += count_tokens(text)
        last = text
        if message["role"] == "user":
            echo = text
    return Prompt(tokens, echo or last)


def _completion_prompts(prompt: object) -> list[Prompt]:
    message = "prompt must be a string, an array of strings, or an array of token ids"
    if isinstance(prompt, str):
        return [Prompt(count_tokens(prompt), prompt)]
    if not isinstance(prompt, list) or not prompt:
        raise bad_request(message, "prompt")
    if all(isinstance(item, str) for item in prompt):
        return [Prompt(count_tokens(item), item) for item in prompt]
    if all(_is_int(item) for item in prompt):
        return [Prompt(len(prompt), "")]
    if all(isinstance(item, list) and all(_is_int(i) for i in item) for item in prompt):
        return [Prompt(len(item), "") for item in prompt]
    raise bad_request(message, "prompt")


def _generation(body: dict[str, Any], prompts: list[Prompt], max_choices: int) -> GenerationRequest:
    model = _model(body)
    n = _optional_int(body, "n", 1, max_choices) or 1
    if len(prompts) * n > max_choices:
        raise bad_request(f"at most {max_choices} choices per request (prompts x n)", "n")
    max_tokens = _optional_int(body, "max_tokens", 1, 1 << 20)
    max_completion_tokens = _optional_int(body, "max_completion_tokens", 1, 1 << 20)
    stream = _optional_bool(body, "stream")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not stream:
            raise bad_request(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "stream_options",
            )
        if not isinstance(options, dict):
            raise bad_request("stream_options must be an object", "stream_options")
        include_usage = _optional_bool(options, "include_usage")
    ignore_eos = _optional_bool(body, "ignore_eos")
    limit = max_completion_tokens if max_completion_tokens is not None else max_tokens
    # Without ignore_eos the configured length bounds the output; with it, the request does.
    if ignore_eos and limit is not None and limit * n * len(prompts) > MAX_TOKENS_PER_REQUEST:
        raise bad_request(
            f"ignore_eos: at most {MAX_TOKENS_PER_REQUEST} tokens per request (max_tokens x n)",
            "max_tokens",
        )
    seed = body.get("seed")
    if seed is not None and not _is_int(seed):
        raise bad_request("seed must be an integer", "seed")
    return GenerationRequest(
        model=model,
        prompts=prompts,
        n=n,
        max_tokens=limit,
        ignore_eos=ignore_eos,
        stream=stream,
        include_usage=include_usage,
        seed=seed,
    )


def parse_chat(body: dict[str, Any], max_choices: int) -> GenerationRequest:
    return _generation(body, [_chat_prompt(body.get("messages"))], max_choices)


def parse_completion(body: dict[str, Any], max_choices: int) -> GenerationRequest:
    if "prompt" not in body:
        raise bad_request("you must provide a prompt parameter", "prompt")
    return _generation(body, _completion_prompts(body["prompt"]), max_choices)


def parse_embedding(body: dict[str, Any]) -> EmbeddingRequest:
    model = _model(body)
    raw = body.get("input")
    message = "input must be a string, an array of strings, or an array of token ids"
    inputs: list[str | list[int]]
    if isinstance(raw, str):
        inputs = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(item, str) for item in raw):
        inputs = list(raw)
    elif isinstance(raw, list) and raw and all(_is_int(item) for item in raw):
        inputs = [list(raw)]
    elif (
        isinstance(raw, list)
        and raw
        and all(isinstance(item, list) and item and all(_is_int(i) for i in item) for item in raw)
    ):
        inputs = [list(item) for item in raw]
    else:
        raise bad_request(message, "input")
    encoding = body.get("encoding_format")
    if encoding not in (None, "float", "base64"):
        raise bad_request("encoding_format must be 'float' or 'base64'", "encoding_format")
    return EmbeddingRequest(
        model=model,
        inputs=inputs,
        base64=encoding == "base64",
        dimensions=_optional_int(body, "dimensions", 1, 65536),
    )
