"""An OpenID Connect relying party for one issuer: discovery, a JWKS cache that follows key
rotation, token validation and the authorization-code exchange.

Written on httpx + PyJWT rather than a full OAuth client library because budapp needs two
behaviours those clients do not combine: an *async* key cache where an unknown `kid` triggers
one rate-limited refetch (so a flood of forged tokens cannot make budapp hammer the provider),
and stale keys that keep validating while the provider is down.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from budapp.adapters.identity.base import Pkce, ProviderMetadata, ProviderUnavailable, TokenInvalid
from budapp.core.logging import get_logger
from budapp.core.security import hash_token

log = get_logger("budapp.oidc")

# Asymmetric algorithms only: `none` and the HMAC family are never accepted, so a public key
# can never be used as an HMAC secret ("algorithm confusion").
_KEY_TYPE_OF_ALGORITHM = {
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "PS384": "RSA",
    "PS512": "RSA",
    "ES256": "EC",
    "ES384": "EC",
    "ES512": "EC",
    "EdDSA": "OKP",
}
_ACCEPTED_KEY_TYPES = frozenset(_KEY_TYPE_OF_ALGORITHM.values())


@dataclass(frozen=True, slots=True)
class _VerificationKey:
    key: Any
    key_type: str
    # The algorithm the key is published for, when the provider says.
    algorithm: str | None


class OidcClient:
    """The `IdentityProviderClient` of an OpenID Connect issuer."""

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        client_secret: str | None,
        http: httpx.AsyncClient,
        leeway_seconds: int,
        min_refresh_seconds: float,
        max_age_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self._client_secret = client_secret
        self._http = http
        self._leeway = leeway_seconds
        self._min_refresh = min_refresh_seconds
        self._max_age = max_age_seconds
        self._clock = clock
        self._metadata: ProviderMetadata | None = None
        self._keys: dict[str | None, _VerificationKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()

    # --- discovery and keys --------------------------------------------------------------------

    async def metadata(self) -> ProviderMetadata:
        if self._metadata is None:
            self._metadata = await self._discover()
        return self._metadata

    async def _discover(self) -> ProviderMetadata:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = await self._get_json(url)
        if document.get("issuer") != self.issuer:
            # OpenID Connect Discovery §4.3: the document must name the issuer it describes.
            raise ProviderUnavailable(
                f"discovery document of {self.issuer} names issuer {document.get('issuer')!r}"
            )
        try:
            return ProviderMetadata(
                issuer=document["issuer"],
                authorization_endpoint=document["authorization_endpoint"],
                token_endpoint=document["token_endpoint"],
                jwks_uri=document["jwks_uri"],
                end_session_endpoint=document.get("end_session_endpoint"),
            )
        except KeyError as exc:
            raise ProviderUnavailable(f"discovery document lacks {exc.args[0]}") from None

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailable(f"{url}: {type(exc).__name__}") from exc
        if not isinstance(body, dict):
            raise ProviderUnavailable(f"{url}: not a JSON object")
        return body

    async def _refresh_keys(self, *, reason: str) -> None:
        """Fetches the key set; at most once per min_refresh interval however many callers
        ask at once. On failure the keys already held stay in use."""
        async with self._lock:
            now = self._clock()
            if self._attempted_at is not None and now - self._attempted_at < self._min_refresh:
                return
            self._attempted_at = now
            try:
                metadata = await self.metadata()
                document = await self._get_json(metadata.jwks_uri)
            except ProviderUnavailable:
                if not self._keys:
                    raise
                log.warning("oidc_jwks_refresh_failed", issuer=self.issuer, reason=reason)
                return
            keys: dict[str | None, _VerificationKey] = {}
            for entry in document.get("keys", []):
                if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                    continue
                key_type = entry.get("kty")
                if key_type not in _ACCEPTED_KEY_TYPES:
                    continue  # symmetric ("oct") keys are never trusted
                try:
                    key = jwt.PyJWK(entry)
                except jwt.PyJWTError:
                    continue  # a curve or algorithm we do not accept
                keys[entry.get("kid")] = _VerificationKey(key.key, key_type, entry.get("alg"))
            self._keys = keys
            self._fetched_at = now
            log.info("oidc_jwks_fetched", issuer=self.issuer, keys=len(keys), reason=reason)

    async def _key_for(self, kid: str | None) -> _VerificationKey:
        stale = self._fetched_at is None or self._clock() - self._fetched_at >= self._max_age
        if stale:
            await self._refresh_keys(reason="expired" if self._keys else "first use")
        key = self._find(kid)
        if key is None and not stale:
            # Perhaps the provider rotated its keys: look once more, rate-limited.
            await self._refresh_keys(reason="unknown kid")
            key = self._find(kid)
        if key is None:
            raise TokenInvalid("unknown_kid", "The token is signed with an unknown key")
        return key

    def _find(self, kid: str | None) -> _VerificationKey | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    # --- validation ------------------------------------------------------------------------

    async def validate(
        self,
        token: str,
        *,
        audience: str,
        nonce_hash: str | None = None,
        required: tuple[str, ...] = ("exp", "iat", "iss", "sub", "aud"),
    ) -> dict[str, Any]:
        """The claims of a JWT this issuer signed for `audience`, or TokenInvalid. `required`
        names the claims that must be present (a logout token may carry `sid` and no `sub`)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenInvalid("malformed", "The token is not a well-formed JWT") from None
        algorithm = header.get("alg")
        if algorithm not in _KEY_TYPE_OF_ALGORITHM:
            raise TokenInvalid("algorithm", f"Signature algorithm {algorithm!r} is not accepted")
        key = await self._key_for(header.get("kid"))
        if key.key_type != _KEY_TYPE_OF_ALGORITHM[algorithm] or key.algorithm not in (
            None,
            algorithm,
        ):
            raise TokenInvalid("algorithm", "The token's algorithm does not match its key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=audience,
                issuer=self.issuer,
                leeway=self._leeway,
                options={"require": list(required)},
            )
        except jwt.ExpiredSignatureError:
            raise TokenInvalid("expired", "The token has expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenInvalid("not_yet_valid", "The token is not valid yet") from None
        except jwt.InvalidIssuerError:
            raise TokenInvalid("issuer", "The token has the wrong issuer") from None
        except jwt.InvalidAudienceError:
            raise TokenInvalid("audience", "The token is not meant for budapp") from None
        except jwt.InvalidSignatureError:
            raise TokenInvalid("signature", "The token's signature is invalid") from None
        except jwt.PyJWTError as exc:
            raise TokenInvalid("malformed", f"The token is invalid: {exc}") from None
        if nonce_hash is not None:
            nonce = claims.get("nonce")
            if not isinstance(nonce, str) or not secrets.compare_digest(
                hash_token(nonce), nonce_hash
            ):
                raise TokenInvalid("nonce", "The ID token's nonce does not match the login")
        return claims

    # --- authorization code flow -------------------------------------------------------

    async def authorization_url(
        self, *, redirect_uri: str, scopes: list[str], state: str, nonce: str, pkce: Pkce
    ) -> str:
        metadata = await self.metadata()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(scopes),
                "state": state,
                "nonce": nonce,
                "code_challenge": pkce.challenge,
                "code_challenge_method": "S256",
            }
        )
        separator = "&" if "?" in metadata.authorization_endpoint else "?"
        return f"{metadata.authorization_endpoint}{separator}{query}"

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str
    ) -> dict[str, Any]:
        metadata = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
            "client_id": self.client_id,
        }
        # client_secret_basic for confidential clients; public clients rely on PKCE alone.
        auth: httpx.Auth | httpx._client.UseClientDefault = (
            httpx.BasicAuth(self.client_id, self._client_secret)
            if self._client_secret
            else httpx.USE_CLIENT_DEFAULT
        )
        try:
            response = await self._http.post(metadata.token_endpoint, data=form, auth=auth)
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"token endpoint: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise ProviderUnavailable(f"token endpoint answered {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise ProviderUnavailable("token endpoint answered with no JSON") from None
        if response.status_code != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            raise TokenInvalid("code", f"The provider refused the code ({error or 'error'})")
        if not isinstance(body.get("id_token"), str):
            raise TokenInvalid("code", "The provider returned no ID token")
        return body

    async def end_session_url(self, *, post_logout_redirect_uri: str | None) -> str | None:
        try:
            metadata = await self.metadata()
        except ProviderUnavailable:
            return None
        if metadata.end_session_endpoint is None:
            return None
        params = {"client_id": self.client_id}
        if post_logout_redirect_uri:
            params["post_logout_redirect_uri"] = post_logout_redirect_uri
        separator = "&" if "?" in metadata.end_session_endpoint else "?"
        return f"{metadata.end_session_endpoint}{separator}{urlencode(params)}"


def unverified_issuer(token: str) -> str | None:
    """The `iss` a JWT claims, before any check: used only to pick who verifies it."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    issuer = claims.get("iss")
    return issuer if isinstance(issuer, str) else None
