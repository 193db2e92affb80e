"""Azure OpenAI: OpenAI's bodies and answers, at a deployment's URL with the API version in
the query and the key in `api-key`. The deployment is the credential's, or else the target's
`model` (Azure takes the deployment from the path, so `model` is left out of the body)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from budapp.gateway.providers.base import Provider


class AzureProvider(Provider):
    def __init__(self, api_version: str, deployment: str | None) -> None:
        self._query = "?api-version=" + quote(api_version, safe="")
        self._deployment = quote(deployment, safe="") if deployment else None

    def request(self, route: str, base_url: str, payload: dict[str, Any]) -> tuple[str, bytes]:
        model = payload.pop("model", None)
        deployment = self._deployment or quote(str(model), safe="")
        url = f"{endpoint(base_url)}/openai/deployments/{deployment}/{route}{self._query}"
        return url, orjson.dumps(payload)


def endpoint(base_url: str) -> str:
    # The resource's endpoint, as the portal shows it; one given with /openai is taken as meant.
    return base_url.rstrip("/").removesuffix("/openai")
