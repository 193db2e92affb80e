"""The identity providers budapp is configured to trust, by name and by issuer."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from budapp.adapters.identity import IdentityProviderClient, create_identity_client
from budapp.core.components import Key
from budapp.core.errors import InvalidInput, NotFound
from budapp.settings import OidcProviderSettings, Settings


@dataclass(frozen=True, slots=True)
class IdentityProvider:
    settings: OidcProviderSettings
    client: IdentityProviderClient

    @property
    def name(self) -> str:
        return self.settings.name


class IdentityProviders:
    def __init__(self, providers: list[IdentityProvider], http: httpx.AsyncClient | None) -> None:
        self._by_name = {provider.name: provider for provider in providers}
        self._by_issuer = {provider.settings.issuer: provider for provider in providers}
        self._http = http

    @classmethod
    def from_settings(cls, settings: Settings) -> IdentityProviders:
        if settings.identity_mode != "oidc" or not settings.oidc_providers:
            return cls([], None)
        # No redirects: a discovery or key URL that moves is a misconfiguration to surface.
        http = httpx.AsyncClient(timeout=settings.oidc_http_timeout_seconds, follow_redirects=False)
        providers = [
            IdentityProvider(
                entry,
                create_identity_client(
                    issuer=entry.issuer,
                    client_id=entry.client_id,
                    client_secret=(
                        entry.client_secret.get_secret_value() if entry.client_secret else None
                    ),
                    http=http,
                    leeway_seconds=settings.oidc_leeway_seconds,
                    min_refresh_seconds=settings.oidc_jwks_min_refresh_seconds,
                    max_age_seconds=settings.oidc_jwks_max_age_seconds,
                ),
            )
            for entry in settings.oidc_providers
        ]
        return cls(providers, http)

    def __bool__(self) -> bool:
        return bool(self._by_name)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._by_name.values())

    def by_issuer(self, issuer: str | None) -> IdentityProvider | None:
        return self._by_issuer.get(issuer) if issuer else None

    def by_name(self, name: str) -> IdentityProvider:
        provider = self._by_name.get(name)
        if provider is None:
            raise NotFound("Identity provider", name)
        return provider

    def pick(self, name: str | None) -> IdentityProvider:
        if name is not None:
            return self.by_name(name)
        if not self._by_name:
            raise NotFound("Identity provider")
        if len(self._by_name) > 1:
            raise InvalidInput(
                "Several identity providers are configured; choose one with ?provider=",
                details=[{"field": "provider", "choices": sorted(self._by_name)}],
            )
        return next(iter(self._by_name.values()))

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()


IDENTITY_PROVIDERS: Key[IdentityProviders] = Key("identity providers")
