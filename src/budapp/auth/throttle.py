"""Brute-force protection for password login: failed attempts per account, and all attempts
per client address, each within a window. Counters live in the window-counter adapter, so
limits are shared by every replica when Redis is configured."""

from __future__ import annotations

import hashlib

from budapp.adapters.cache import WindowCounter
from budapp.core.components import Key
from budapp.core.errors import RateLimited


class LoginThrottle:
    def __init__(
        self,
        counter: WindowCounter,
        *,
        max_failures_per_account: int,
        failure_window_seconds: int,
        max_attempts_per_address: int,
        address_window_seconds: int,
    ) -> None:
        self.counter = counter
        self.max_failures = max_failures_per_account
        self.failure_window = failure_window_seconds
        self.max_attempts = max_attempts_per_address
        self.address_window = address_window_seconds

    async def before_attempt(self, email: str, address: str) -> None:
        attempts = await self.counter.increment(_key("address", address), self.address_window)
        if attempts.count > self.max_attempts:
            raise RateLimited(
                "Too many login attempts from this address; try again later",
                retry_after=max(attempts.resets_in, 1),
            )
        failures = await self.counter.current(_key("account", email))
        if failures.count >= self.max_failures:
            raise RateLimited(
                "Too many failed logins for this account; try again later",
                retry_after=max(failures.resets_in, 1),
            )

    async def failed(self, email: str) -> None:
        await self.counter.increment(_key("account", email), self.failure_window)

    async def succeeded(self, email: str) -> None:
        await self.counter.clear(_key("account", email))


def _key(kind: str, value: str) -> str:
    # Hashed so that e-mail addresses do not sit in plain text in a shared cache.
    return f"login:{kind}:{hashlib.sha256(value.lower().encode()).hexdigest()[:32]}"


LOGIN_THROTTLE: Key[LoginThrottle] = Key("login throttle")
