"""Identity providers budapp trusts besides itself (OpenID Connect issuers), behind the
`IdentityProviderClient` interface."""

from __future__ import annotations

import httpx

from budapp.adapters.identity.base import (
    IdentityProviderClient,
    Pkce,
    ProviderMetadata,
    ProviderUnavailable,
    TokenInvalid,
)
from budapp.adapters.identity.oidc import OidcClient, unverified_issuer


def create_identity_client(
    *,
    issuer: str,
    client_id: str,
    client_secret: str | None,
    http: httpx.AsyncClient,
    leeway_seconds: int,
    min_refresh_seconds: float,
    max_age_seconds: float,
) -> IdentityProviderClient:
    """The client of one issuer (OpenID Connect: discovery, keys, code flow)."""
    return OidcClient(
        issuer=issuer,
        client_id=client_id,
        client_secret=client_secret,
        http=http,
        leeway_seconds=leeway_seconds,
        min_refresh_seconds=min_refresh_seconds,
        max_age_seconds=max_age_seconds,
    )


__all__ = [
    "IdentityProviderClient",
    "Pkce",
    "ProviderMetadata",
    "ProviderUnavailable",
    "TokenInvalid",
    "create_identity_client",
    "unverified_issuer",
]
