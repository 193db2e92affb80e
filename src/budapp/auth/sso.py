"""Browser single sign-on: the authorization-code flow with PKCE, state and nonce kept
server-side, ending in budapp's own session tokens exactly as a password login does."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from budapp.adapters.identity import Pkce, ProviderUnavailable, TokenInvalid
from budapp.auth.models import OidcLogin
from budapp.auth.providers import IdentityProvider, IdentityProviders
from budapp.auth.provisioning import Provisioner
from budapp.auth.repository import OidcLoginRepository
from budapp.auth.schemas import TokenPair
from budapp.auth.service import AuthService, ClientInfo, LoginFailed
from budapp.core.auth import Principal
from budapp.core.db import utcnow
from budapp.core.errors import BudappError, InvalidInput, ServiceUnavailable, Unauthorized
from budapp.core.keyring import DecryptionError, Keyring, Sealed
from budapp.core.security import hash_token

# How long the one-time code handed to the redirect target stays valid.
LOGIN_CODE_TTL = timedelta(seconds=60)


class ProviderDown(ServiceUnavailable):
    # The audit record of the failed login is kept.
    commit = True


@dataclass(frozen=True, slots=True)
class SsoConfig:
    callback_url: str
    redirect_targets: list[str]
    login_ttl: timedelta


@dataclass(frozen=True, slots=True)
class CallbackResult:
    tokens: TokenPair | None = None
    redirect_url: str | None = None


def is_allowed_target(url: str, targets: list[str]) -> bool:
    """True when `url` lies under one of the configured targets (same scheme, host and port,
    path at or below the target's path). Everything else is an open redirect."""
    if any(ord(char) < 0x21 or char == "\\" for char in url):
        return False
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return False
    if parsed.username is not None or parsed.password is not None:
        return False
    for target in targets:
        allowed = urlsplit(target)
        if (parsed.scheme, parsed.netloc.lower()) != (allowed.scheme, allowed.netloc.lower()):
            continue
        base = allowed.path.rstrip("/")
        if not base or parsed.path == base or parsed.path.startswith(base + "/"):
            return True
    return False


def _associated(state_hash: str) -> bytes:
    return f"oidc-login:{state_hash}".encode()


class SsoService:
    def __init__(  # noqa: PLR0917 - the collaborators of one flow
        self,
        session: AsyncSession,
        providers: IdentityProviders,
        provisioner: Provisioner,
        auth: AuthService,
        keyring: Keyring,
        config: SsoConfig,
    ) -> None:
        self.session = session
        self.repository = OidcLoginRepository(session)
        self.providers = providers
        self.provisioner = provisioner
        self.auth = auth
        self.keyring = keyring
        self.config = config

    def _checked_target(self, redirect_to: str | None) -> str | None:
        if redirect_to is None:
            return None
        if not is_allowed_target(redirect_to, self.config.redirect_targets):
            raise InvalidInput(
                "redirect_to is not one of the configured redirect targets",
                details=[{"field": "redirect_to", "message": "not allowed"}],
            )
        return redirect_to

    async def begin(self, provider_name: str | None, redirect_to: str | None) -> str:
        """Records a login in flight and returns the provider's authorization URL."""
        provider = self.providers.pick(provider_name)
        target = self._checked_target(redirect_to)
        state, nonce, pkce = secrets.token_urlsafe(32), secrets.token_urlsafe(32), Pkce.generate()
        try:
            url = await provider.client.authorization_url(
                redirect_uri=self.config.callback_url,
                scopes=provider.settings.scopes,
                state=state,
                nonce=nonce,
                pkce=pkce,
            )
        except ProviderUnavailable:
            raise ServiceUnavailable(
                f"The identity provider {provider.name} cannot be reached; try again shortly"
            ) from None
        now = utcnow()
        state_hash = hash_token(state)
        sealed = self.keyring.seal(pkce.verifier.encode(), _associated(state_hash))
        await self.repository.prune(now)
        self.repository.add(
            OidcLogin(
                state_hash=state_hash,
                provider=provider.name,
                nonce_hash=hash_token(nonce),
                verifier_key_id=sealed.key_id,
                verifier_sealed=sealed.ciphertext,
                redirect_to=target,
                expires_at=now + self.config.login_ttl,
            )
        )
        await self.session.flush()
        return url

    async def complete(
        self,
        *,
        state: str | None,
        code: str | None,
        error: str | None,
        client: ClientInfo,
    ) -> CallbackResult:
        now = utcnow()
        login = await self.repository.claim_state(hash_token(state), now) if state else None
        provider_name = login.provider if login else "unknown"
        if login is None:
            reason = "missing_state" if not state else "unknown_or_replayed_state"
            await self.auth.audit_failure(provider_name, reason)
            raise LoginFailed("This login link is invalid, expired or already used; start again")
        provider = self.providers.by_name(login.provider)
        if error is not None or not code:
            await self.auth.audit_failure(provider.name, "provider_error", {"error": error})
            raise LoginFailed(f"The identity provider refused the login ({error or 'no code'})")
        try:
            claims = await self._verified_claims(provider, login, code)
            user = await self.provisioner.user_for(provider, claims, login=True)
        except ProviderUnavailable:
            await self.auth.audit_failure(provider.name, "provider_unavailable")
            raise ProviderDown(
                f"The identity provider {provider.name} cannot be reached; try again shortly"
            ) from None
        except TokenInvalid as exc:
            await self.auth.audit_failure(provider.name, exc.reason)
            raise LoginFailed(exc.message) from None
        except BudappError as exc:
            await self.auth.audit_failure(provider.name, "refused", {"message": exc.message})
            exc.commit = True  # keep the audit record of the refusal
            raise
        sid = claims.get("sid")
        auth_session = await self.auth.open_session(
            user,
            client,
            now=now,
            provider=provider.name,
            provider_session_id=sid[:255] if isinstance(sid, str) else None,
        )
        if login.redirect_to is None:
            return CallbackResult(tokens=await self.auth.issue(user, auth_session, now))
        login_code = secrets.token_urlsafe(32)
        login.login_code_hash = hash_token(login_code)
        login.auth_session_id = auth_session.id
        login.expires_at = now + LOGIN_CODE_TTL
        await self.session.flush()
        separator = "&" if urlsplit(login.redirect_to).query else "?"
        query = urlencode({"login_code": login_code})
        return CallbackResult(redirect_url=f"{login.redirect_to}{separator}{query}")

    async def _verified_claims(
        self, provider: IdentityProvider, login: OidcLogin, code: str
    ) -> dict[str, object]:
        try:
            verifier = self.keyring.open(
                Sealed(login.verifier_key_id, login.verifier_sealed), _associated(login.state_hash)
            ).decode()
        except DecryptionError:
            # The data key it was sealed with has been retired since.
            raise TokenInvalid(
                "state", "This login can no longer be completed; start again"
            ) from None

        response = await provider.client.exchange_code(
            code=code, redirect_uri=self.config.callback_url, code_verifier=verifier
        )
        # The ID token is always for our client id, whatever audience API tokens carry.
        return await provider.client.validate(
            response["id_token"], audience=provider.settings.client_id, nonce_hash=login.nonce_hash
        )

    async def redeem(self, login_code: str) -> TokenPair:
        now = utcnow()
        session_id = await self.repository.claim_login_code(hash_token(login_code), now)
        if session_id is None:
            raise Unauthorized("The login code is invalid, expired or already used")
        return await self.auth.resume_session(session_id, now)

    async def logout(self, principal: Principal, redirect_to: str | None) -> str | None:
        """Ends the budapp session; returns the provider's end-session URL when the session
        came from a provider that offers one, for the browser to visit next."""
        target = self._checked_target(redirect_to)
        provider_name = await self.auth.session_provider(principal)
        await self.auth.logout(principal, all_sessions=False)
        if provider_name is None:
            return None
        try:
            provider = self.providers.by_name(provider_name)
        except BudappError:
            return None  # the provider was removed from the configuration since
        return await provider.client.end_session_url(post_logout_redirect_uri=target)
