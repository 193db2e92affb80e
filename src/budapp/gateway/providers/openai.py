"""OpenAI and OpenAI-compatible providers: the body passes as it is; only the headers differ."""

from __future__ import annotations

from typing import Any

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def headers(values: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    if values.get("api_key"):
        found["authorization"] = f"Bearer {values['api_key']}"
    if values.get("organization"):
        found["openai-organization"] = str(values["organization"])
    return found
