"""Admission on the gateway's request path: the body read under its size limit, the budgets a
call counts against, what it reserves of the token budgets, and the 429 with OpenAI's
`x-ratelimit-*` headers when one is spent."""

from __future__ import annotations

import math
from typing import Any

import orjson
from starlette.requests import Request

from budapp.adapters.ratelimit import Budget, Outcome
from budapp.api_keys.resolver import ApiKeyIdentity
from budapp.gateway import tokens
from budapp.gateway.errors import GatewayError, bad_request
from budapp.gateway.routing import ProjectConfig


async def read_payload(request: Request, limit: int) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise too_large(limit)
    body = bytes(received)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise bad_request("The request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise bad_request("The request body must be a JSON object")
    return payload


def reservation(payload: dict[str, Any], route: str) -> int:
    """What a call may spend, taken from the token budgets when it is admitted: its prompt
    (estimated) and the completion it allows (`max_tokens` times `n`). Calls in flight so hold
    their share, and a budget can be overshot only by the call admitted last (and by
    completions of calls that set no `max_tokens`)."""
    prompt = tokens.estimate(tokens.prompt_length(payload))
    if route == "embeddings":
        return prompt
    ceiling = payload.get("max_completion_tokens") or payload.get("max_tokens")
    choices = payload.get("n")
    completion = ceiling if isinstance(ceiling, int) and ceiling > 0 else 0
    return prompt + completion * (choices if isinstance(choices, int) and 0 < choices <= 128 else 1)


def too_large(limit: int) -> GatewayError:
    return GatewayError(413, f"The request body is larger than {limit} bytes", code="too_large")


def budgets_for(identity: ApiKeyIdentity, config: ProjectConfig) -> list[Budget]:
    budgets = []
    if config.key_rpm:
        budgets.append(Budget(f"k:{identity.key_id}:r", config.key_rpm, "requests"))
    if config.key_tpm:
        budgets.append(Budget(f"k:{identity.key_id}:t", config.key_tpm, "tokens"))
    if config.rpm:
        budgets.append(Budget(f"p:{identity.project_id}:r", config.rpm, "requests"))
    if config.tpm:
        budgets.append(Budget(f"p:{identity.project_id}:t", config.tpm, "tokens"))
    return budgets


def rate_headers(budgets: list[Budget], outcome: Outcome) -> dict[str, str]:
    """OpenAI's `x-ratelimit-*` headers, for the tightest request and token budget."""
    headers: dict[str, str] = {}
    reset = f"{max(outcome.resets_in, 0.001):.3f}s"
    for kind in ("requests", "tokens"):
        left = [
            (b.limit - count, b.limit)
            for b, count in zip(budgets, outcome.counts, strict=True)
            if b.kind == kind
        ]
        if left:
            remaining, limit = min(left)
            headers[f"x-ratelimit-limit-{kind}"] = str(limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(max(remaining, 0))
            headers[f"x-ratelimit-reset-{kind}"] = reset
    return headers


def rate_limited(budgets: list[Budget], outcome: Outcome, headers: dict[str, str]) -> GatewayError:
    refused = budgets[outcome.refused or 0]
    scope = {"k": "API key", "p": "project", "t": "router target"}[refused.key[0]]
    unit = "requests" if refused.kind == "requests" else "tokens"
    return GatewayError(
        429,
        f"Rate limit reached: the {scope}'s limit of {refused.limit} {unit} per minute; "
        f"retry in {math.ceil(outcome.resets_in)} s",
        type_="requests" if unit == "requests" else "tokens",
        code="rate_limit_exceeded",
        headers={**headers, "retry-after": str(max(1, math.ceil(outcome.resets_in)))},
    )
