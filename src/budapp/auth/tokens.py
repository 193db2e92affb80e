"""Access tokens: short-lived EdDSA-signed JWTs with the claims of the original platform
(`sub`, `org_id`, `preferred_username`, Keycloak-style `realm_access`/`resource_access` roles)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

from budapp.core.components import Key
from budapp.core.db import utcnow
from budapp.core.errors import Unauthorized
from budapp.core.security import SigningKey

CLIENT_ID = "budapp"
# Tolerated clock difference between the replicas that issue and check a token.
LEEWAY_SECONDS = 30


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    organization_id: uuid.UUID
    # `exp`, in seconds since the epoch.
    expires_at: float


class TokenIssuer:
    def __init__(self, key: SigningKey, *, issuer: str, audience: str, ttl_seconds: int) -> None:
        self.key = key
        self.issuer = issuer
        self.audience = audience
        self.ttl = timedelta(seconds=ttl_seconds)
        self._public_key = key.public_key

    def issue(
        self,
        *,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        organization_id: uuid.UUID,
        email: str,
        role: str,
        now: datetime | None = None,
    ) -> tuple[str, int]:
        issued = now or utcnow()
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "sid": str(session_id),
            "jti": uuid.uuid4().hex,
            "iat": int(issued.timestamp()),
            "nbf": int(issued.timestamp()),
            "exp": int((issued + self.ttl).timestamp()),
            "org_id": str(organization_id),
            "preferred_username": email,
            "email": email,
            "realm_access": {"roles": [role]},
            "resource_access": {CLIENT_ID: {"roles": [role]}},
        }
        token = jwt.encode(
            claims, self.key.private_key, algorithm="EdDSA", headers={"kid": self.key.kid}
        )
        return token, int(self.ttl.total_seconds())

    def decode(self, token: str) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._public_key,
                algorithms=["EdDSA"],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "sid", "org_id"]},
            )
            return AccessClaims(
                user_id=uuid.UUID(claims["sub"]),
                session_id=uuid.UUID(claims["sid"]),
                organization_id=uuid.UUID(claims["org_id"]),
                expires_at=float(claims["exp"]),
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise Unauthorized("Invalid or expired access token") from exc


TOKEN_ISSUER: Key[TokenIssuer] = Key("token issuer")
