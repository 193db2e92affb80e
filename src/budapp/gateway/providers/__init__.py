"""How each router target is called: its base URL, its headers (computed once, when the
project's routing is loaded) and, for providers that do not take OpenAI's request as it is,
the adapter that translates. Chosen from the kind of the target's credential."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from budapp.gateway.providers import anthropic, openai
from budapp.gateway.providers.azure import AzureProvider
from budapp.gateway.providers.base import Provider, StreamTranslator, unsupported

# identity: streams are relayed as raw bytes, which must not arrive compressed.
BASE_HEADERS = {
    "content-type": "application/json",
    "accept": "application/json",
    "accept-encoding": "identity",
}

__all__ = [
    "BASE_HEADERS",
    "KINDS",
    "Provider",
    "StreamTranslator",
    "Upstream",
    "unsupported",
    "upstream",
]


@dataclass(frozen=True, slots=True)
class Upstream:
    base_url: str
    headers: dict[str, str]
    provider: Provider | None = None


def upstream(values: dict[str, Any] | None, base_url: str | None) -> Upstream | None:
    """How to call a target. `values`: its credential's (None: no credential); `base_url`: a
    url target's, which wins over the credential's (None: a registry model, called where its
    credential says). None: it cannot be called (a credential of another kind, no address)."""
    if values is None:
        return Upstream(base_url.rstrip("/"), dict(BASE_HEADERS)) if base_url else None
    build = _BUILDERS.get(str(values.get("kind")))
    return build(values, base_url) if build is not None else None


def _openai(values: dict[str, Any], base_url: str | None) -> Upstream | None:
    address = base_url or values.get("base_url")
    if values["kind"] == "openai":
        address = address or openai.DEFAULT_BASE_URL
    if not address:
        return None
    return Upstream(address.rstrip("/"), {**BASE_HEADERS, **openai.headers(values)})


def _azure(values: dict[str, Any], base_url: str | None) -> Upstream | None:
    address = base_url or values.get("endpoint")
    if not address or not values.get("api_key") or not values.get("api_version"):
        return None
    return Upstream(
        address.rstrip("/"),
        {**BASE_HEADERS, "api-key": values["api_key"]},
        AzureProvider(values["api_version"], values.get("deployment")),
    )


def _anthropic(values: dict[str, Any], base_url: str | None) -> Upstream | None:
    if not values.get("api_key"):
        return None
    address = base_url or values.get("base_url") or anthropic.DEFAULT_BASE_URL
    headers = {
        **BASE_HEADERS,
        "x-api-key": values["api_key"],
        "anthropic-version": anthropic.VERSION,
    }
    return Upstream(address.rstrip("/"), headers, anthropic.AnthropicProvider())


_BUILDERS: dict[str, Callable[[dict[str, Any], str | None], Upstream | None]] = {
    "openai": _openai,
    "openai_compatible": _openai,
    "azure_openai": _azure,
    "anthropic": _anthropic,
}
# The credential kinds a target can be called with.
KINDS = frozenset(_BUILDERS)
