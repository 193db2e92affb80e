"""What budapp asks of an identity provider it trusts besides itself: the vocabulary shared by
every implementation (`oidc.py` is the one today), so that `auth/` depends on this interface
and never on a concrete protocol client."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Protocol


class ProviderUnavailable(Exception):
    """The provider could not be reached or answered nonsense."""


class TokenInvalid(Exception):
    """A token or code the provider did not vouch for; `reason` is a stable short word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None


@dataclass(frozen=True, slots=True)
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def generate(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"))


class IdentityProviderClient(Protocol):
    """One issuer: its tokens checked against its published keys, and the authorization-code
    flow of a browser login."""

    issuer: str
    client_id: str

    async def metadata(self) -> ProviderMetadata: ...

    async def validate(
        self,
        token: str,
        *,
        audience: str,
        nonce_hash: str | None = None,
        required: tuple[str, ...] = ("exp", "iat", "iss", "sub", "aud"),
    ) -> dict[str, Any]:
        """The claims of a token the issuer signed for `audience`, or TokenInvalid."""
        ...

    async def authorization_url(
        self, *, redirect_uri: str, scopes: list[str], state: str, nonce: str, pkce: Pkce
    ) -> str: ...

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str
    ) -> dict[str, Any]:
        """The token response (with an `id_token`) for an authorization code."""
        ...

    async def end_session_url(self, *, post_logout_redirect_uri: str | None) -> str | None: ...
