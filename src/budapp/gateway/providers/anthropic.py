"""Anthropic's Messages API behind an OpenAI chat completions call: the request translated
to a message here; the message (or its stream of events) translated back in
`anthropic_answers`. Fields that Anthropic has no equivalent for are refused with a 400 that
names them rather than dropped, except those that only hint (`seed`, `service_tier`, `store`,
OpenAI's `metadata`), which are left out."""

from __future__ import annotations

from typing import Any

import orjson

from budapp.gateway.errors import GatewayError
from budapp.gateway.providers.anthropic_answers import MessageStream, translate_response
from budapp.gateway.providers.base import Provider, StreamTranslator, unsupported

VERSION = "2023-06-01"
DEFAULT_BASE_URL = "https://api.anthropic.com"
# Anthropic requires max_tokens; OpenAI's clients usually leave it out.
DEFAULT_MAX_TOKENS = 4096

# Ignored when sent: they ask for nothing Anthropic would do differently.
_IGNORED = frozenset({"model", "seed", "service_tier", "store", "metadata", "stream_options"})
# Accepted only with these values (what clients send as defaults).
_DEFAULTS_ONLY: dict[str, object] = {
    "n": 1,
    "logprobs": False,
    "presence_penalty": 0,
    "frequency_penalty": 0,
}
_TRANSLATED = frozenset(
    {
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "stream",
        "user",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
    }
)
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


class AnthropicProvider(Provider):
    translates = True

    def request(self, route: str, base_url: str, payload: dict[str, Any]) -> tuple[str, bytes]:
        if route != "chat/completions":
            raise GatewayError(
                400,
                f"Anthropic does not offer /v1/{route}: an Anthropic target answers "
                "/v1/chat/completions only",
                code="unsupported_by_provider",
            )
        return messages_url(base_url), orjson.dumps(translate_request(payload))

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        return translate_response(body)

    def stream(self) -> StreamTranslator:
        return MessageStream()


def messages_url(base_url: str) -> str:
    # Anthropic's base URL has no /v1 (its SDK adds it); one given with it is taken as meant.
    return base_url.removesuffix("/v1") + "/v1/messages"


# --- the request -------------------------------------------------------------------------------


def translate_request(payload: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat completions body as an Anthropic Messages API body."""
    given = {name: value for name, value in payload.items() if value is not None}
    _check_fields(given)
    system, messages = _messages(given.get("messages"))
    body: dict[str, Any] = {
        "model": payload.get("model"),
        "messages": messages,
        "max_tokens": _max_tokens(given),
    }
    if system:
        body["system"] = system
    _sampling(given, body)
    if "stream" in given:
        if not isinstance(given["stream"], bool):
            raise unsupported("`stream` must be a boolean", "stream")
        body["stream"] = given["stream"]
    if isinstance(given.get("user"), str):
        body["metadata"] = {"user_id": given["user"]}
    _response_format(given.get("response_format"))
    if "tools" in given:
        body["tools"] = _tools(given["tools"])
    choice = _tool_choice(given.get("tool_choice"), given.get("parallel_tool_calls"))
    if choice is not None:
        body["tool_choice"] = choice
    return body


def _check_fields(given: dict[str, Any]) -> None:
    for name, value in given.items():
        if name in _IGNORED or name in _TRANSLATED:
            continue
        if name not in _DEFAULTS_ONLY:
            raise unsupported(f"`{name}` is not supported by Anthropic targets", name)
        default = _DEFAULTS_ONLY[name]
        if value != default or isinstance(value, bool) != isinstance(default, bool):
            raise unsupported(
                f"`{name}` other than {orjson.dumps(default).decode()} is not supported by "
                "Anthropic targets",
                name,
            )


def _sampling(given: dict[str, Any], body: dict[str, Any]) -> None:
    for name in ("temperature", "top_p"):
        if name in given:
            if isinstance(given[name], bool) or not isinstance(given[name], int | float):
                raise unsupported(f"`{name}` must be a number", name)
            # OpenAI's temperature goes up to 2, Anthropic's to 1: refused rather than
            # silently changed, so that a router can try a target that accepts it.
            if not 0 <= given[name] <= 1:
                raise unsupported(f"Anthropic targets take a `{name}` from 0 to 1", name)
            body[name] = given[name]
    if "top_k" in given:
        body["top_k"] = _integer(given, "top_k")
    if "stop" in given:
        body["stop_sequences"] = _stop(given["stop"])


def _integer(given: dict[str, Any], name: str) -> int:
    value = given[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise unsupported(f"`{name}` must be a positive integer", name)
    return value


def _max_tokens(given: dict[str, Any]) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        if name in given:
            return _integer(given, name)
    return DEFAULT_MAX_TOKENS


def _stop(stop: object) -> list[str]:
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise unsupported("`stop` must be a string or a list of strings", "stop")
    return stops


def _response_format(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or value.get("type") != "text":
        raise unsupported(
            "`response_format` other than text (JSON mode, JSON schema) is not supported by "
            "Anthropic targets",
            "response_format",
        )


def _messages(raw: object) -> tuple[str, list[dict[str, Any]]]:
    """System and developer messages become `system`; the rest become turns, consecutive
    turns of the same role merged (Anthropic alternates user and assistant)."""
    if not isinstance(raw, list) or not raw:
        raise unsupported("`messages` must be a non-empty array", "messages")
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(raw):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise unsupported("each message must be an object with a role", where)
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.append(_text(content, where))
            continue
        if role == "user":
            blocks = _user_blocks(content, where)
        elif role == "assistant":
            blocks = _assistant_blocks(message, where)
        elif role == "tool":
            role, blocks = "user", [_tool_result(message, where)]
        else:
            raise unsupported(f"a message with role {role!r} is not supported", where)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise unsupported(
            "Anthropic needs at least one user message besides the system", "messages"
        )
    return "\n\n".join(system), turns


def _text(content: object, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise unsupported("only text content parts are supported here", where)
            texts.append(_part_text(part, where))
        return "\n".join(texts)
    raise unsupported("content must be a string or a list of content parts", where)


def _part_text(part: dict[str, Any], where: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise unsupported("a text content part needs a string `text`", where)
    return text


def _user_blocks(content: object, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise unsupported("content must be a string or a non-empty list of content parts", where)
    blocks = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": _part_text(part, where)})
        elif kind == "image_url":
            blocks.append(_image(part.get("image_url"), where))
        else:
            raise unsupported(
                f"content parts of type {kind!r} are not supported by Anthropic targets", where
            )
    return blocks


def _image(image: object, where: str) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else None
    if isinstance(url, str) and url.startswith("https://"):
        return {"type": "image", "source": {"type": "url", "url": url}}
    if isinstance(url, str) and url.startswith("data:"):
        header, _, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if encoding == "base64" and media_type in _IMAGE_TYPES and data:
            return {
                "type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": data},
            }
    raise unsupported(
        "an image must be an https URL or a base64 data URL of a JPEG, PNG, GIF or WebP image",
        where,
    )


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = _text(message.get("content"), where)
    if text:
        blocks.append({"type": "text", "text": text})
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise unsupported("`tool_calls` must be a list", where)
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(call.get("id"), str):
            raise unsupported("each tool call needs an id and a function", where)
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except (orjson.JSONDecodeError, TypeError):
            raise unsupported("a tool call's arguments must be a JSON object", where) from None
        if not isinstance(arguments, dict):
            raise unsupported("a tool call's arguments must be a JSON object", where)
        blocks.append(
            {"type": "tool_use", "id": call["id"], "name": function.get("name"), "input": arguments}
        )
    if not blocks:
        # An empty assistant turn is refused by Anthropic; an empty text keeps the turn.
        blocks.append({"type": "text", "text": ""})
    return blocks


def _tool_result(message: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str):
        raise unsupported("a tool message needs its `tool_call_id`", where)
    return {
        "type": "tool_result",
        "tool_use_id": call_id,
        "content": _text(message.get("content"), where),
    }


def _tools(tools: object) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise unsupported("`tools` must be a list", "tools")
    translated = []
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise unsupported("only tools of type function are supported", "tools")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise unsupported("only tools of type function are supported", "tools")
        if not isinstance(function.get("name"), str):
            raise unsupported("each function needs a name", "tools")
        entry: dict[str, Any] = {
            "name": function["name"],
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if isinstance(function.get("description"), str):
            entry["description"] = function["description"]
        translated.append(entry)
    return translated


def _tool_choice(choice: object, parallel: object) -> dict[str, Any] | None:
    translated: dict[str, Any]
    if choice is None:
        if parallel is not False:
            return None
        translated = {"type": "auto"}
    elif choice in ("auto", "none"):
        translated = {"type": choice}
    elif choice == "required":
        translated = {"type": "any"}
    elif isinstance(choice, dict) and isinstance((choice.get("function") or {}).get("name"), str):
        translated = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise unsupported("`tool_choice` must be auto, none, required or a function", "tool_choice")
    if parallel is False and translated["type"] != "none":
        translated["disable_parallel_tool_use"] = True
    return translated
