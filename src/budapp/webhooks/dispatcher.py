"""The delivery worker: runs in every budapp process (unless disabled), takes due deliveries
from the database, sends them, and records the outcome.

Deliveries are rows, so nothing is lost on a restart. A claim moves the row's
`next_attempt_at` to the end of a lease: a replica that dies mid-attempt leaves the row to be
taken again when the lease ends (delivery is at least once; receivers deduplicate by
`X-Budapp-Delivery`). Failed attempts are retried with exponential backoff and jitter."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from budapp import __version__
from budapp.adapters.events import EventBus
from budapp.core.components import Components, Key
from budapp.core.db import utcnow
from budapp.core.keyring import DecryptionError, Keyring
from budapp.core.logging import get_logger
from budapp.webhooks.destinations import DestinationRefused, resolve
from budapp.webhooks.models import DeliveryStatus, Webhook, WebhookDelivery
from budapp.webhooks.repository import DeliveryRepository, WebhookRepository
from budapp.webhooks.service import PENDING_TOPIC, TEST_EVENT, open_secret
from budapp.webhooks.signing import sign

log = get_logger("budapp.webhooks")
_EXCERPT = 1024
_random = secrets.SystemRandom()


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    timeout_seconds: float = 10.0
    max_attempts: int = 8
    backoff_base_seconds: float = 10.0
    backoff_max_seconds: float = 3600.0
    allow_private: bool = False
    batch_size: int = 10
    poll_seconds: float = 5.0

    @property
    def lease(self) -> timedelta:
        # Longer than any attempt can take (resolution, connect, send, read).
        return timedelta(seconds=self.timeout_seconds * 2 + 30)

    def backoff(self, attempts: int) -> timedelta:
        """Exponential, with "equal jitter": half the delay fixed, half random, so retries
        of many deliveries that failed together do not arrive together."""
        delay = min(self.backoff_base_seconds * 2 ** (attempts - 1), self.backoff_max_seconds)
        return timedelta(seconds=delay / 2 + _random.uniform(0, delay / 2))


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt needs, read when the delivery is claimed."""

    delivery_id: uuid.UUID
    attempts: int
    event: str
    body: str
    url: str | None
    secret: str | None
    refusal: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    response_status: int | None = None
    response_excerpt: str | None = None
    error: str | None = None
    duration_ms: int | None = None
    # A retry cannot help (the webhook is gone or its secret unreadable).
    final: bool = False


class WebhookDispatcher:
    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        keyring: Keyring,
        bus: EventBus,
        policy: DeliveryPolicy,
    ) -> None:
        self.factory = factory
        self.keyring = keyring
        self.policy = policy
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._client = httpx.AsyncClient(
            # Never follow a redirect: it could lead to an address the guard did not check.
            follow_redirects=False,
            timeout=httpx.Timeout(policy.timeout_seconds),
            # An environment proxy would connect on our behalf to an unchecked address.
            trust_env=False,
            headers={"User-Agent": f"budapp-webhooks/{__version__}"},
        )
        bus.subscribe(PENDING_TOPIC, self._on_pending)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    async def close(self) -> None:
        """Lets the attempts under way finish and be recorded (within one timeout), so a
        graceful shutdown does not leave them to be sent again when their lease ends."""
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            # Past the deadline, wait_for cancels it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._task, timeout=self.policy.timeout_seconds + 5)
            self._task = None
        await self._client.aclose()

    async def deliver_due(self) -> int:
        """Claims one batch of due deliveries and attempts them all; returns how many."""
        attempts = await self._claim()
        await asyncio.gather(*(self._attempt(attempt) for attempt in attempts))
        return len(attempts)

    def _on_pending(self, _: dict[str, Any] | None) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                taken = await self.deliver_due()
            except Exception as exc:
                log.warning("webhook_dispatch_failed", error=repr(exc))
                taken = 0
            if taken >= self.policy.batch_size or self._stopping:
                continue  # more may be due right now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.policy.poll_seconds)
            self._wake.clear()

    async def _claim(self) -> list[Attempt]:
        now = utcnow()
        async with self.factory() as session:
            claimed = await DeliveryRepository(session).claim_due(
                now, self.policy.batch_size, now + self.policy.lease
            )
            webhooks = await WebhookRepository(session).by_ids(
                list({row.webhook_id for row in claimed})
            )
            await session.commit()
        return [self._prepare(row, webhooks.get(row.webhook_id)) for row in claimed]

    def _prepare(self, row: WebhookDelivery, webhook: Webhook | None) -> Attempt:
        refusal = None
        secret = None
        if webhook is None or webhook.deleted_at is not None:
            refusal = "the webhook was deleted"
        elif not webhook.active and row.event != TEST_EVENT:
            refusal = "the webhook is inactive"
        else:
            try:
                secret = open_secret(self.keyring, webhook)
            except DecryptionError as exc:
                refusal = f"the webhook's secret cannot be read ({exc}); rotate it"
        return Attempt(
            row.id,
            row.attempts + 1,
            row.event,
            row.body,
            webhook.url if webhook is not None else None,
            secret,
            refusal,
        )

    async def _attempt(self, attempt: Attempt) -> None:
        if attempt.refusal is not None or attempt.url is None or attempt.secret is None:
            outcome = Outcome(ok=False, error=attempt.refusal, final=True)
        else:
            outcome = await self._send(attempt, attempt.url, attempt.secret)
        try:
            await self._record(attempt, outcome)
        except Exception as exc:
            # The lease runs out and the delivery is tried again.
            log.warning(
                "webhook_record_failed", delivery_id=str(attempt.delivery_id), error=repr(exc)
            )

    async def _send(self, attempt: Attempt, url: str, secret: str) -> Outcome:
        started = time.perf_counter()
        try:
            response_status, excerpt = await asyncio.wait_for(
                self._post(attempt, url, secret), timeout=self.policy.timeout_seconds
            )
        except DestinationRefused as exc:
            return Outcome(ok=False, error=f"destination refused: {exc}")
        except TimeoutError:
            return Outcome(ok=False, error="timed out", duration_ms=_since(started))
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return Outcome(ok=False, error=error, duration_ms=_since(started))
        ok = 200 <= response_status < 300
        failure: str | None = None
        if not ok:
            failure = f"HTTP {response_status}"
            if 300 <= response_status < 400:
                failure += " (redirects are not followed)"
        return Outcome(ok, response_status, excerpt, failure, _since(started))

    async def _post(self, attempt: Attempt, url: str, secret: str) -> tuple[int, str]:
        destination = await resolve(url, allow_private=self.policy.allow_private)
        body = attempt.body.encode()
        timestamp = int(time.time())
        headers = {
            "Host": destination.host_header,
            "Content-Type": "application/json",
            "X-Budapp-Event": attempt.event,
            "X-Budapp-Delivery": str(attempt.delivery_id),
            "X-Budapp-Timestamp": str(timestamp),
            "X-Budapp-Signature": sign(secret, timestamp, body),
        }
        extensions = {"sni_hostname": destination.sni_hostname} if destination.sni_hostname else {}
        request = self._client.build_request(
            "POST", destination.url, content=body, headers=headers, extensions=extensions
        )
        response = await self._client.send(request, stream=True)
        try:
            excerpt = b""
            async for chunk in response.aiter_bytes():
                excerpt += chunk
                if len(excerpt) >= _EXCERPT:
                    break
        finally:
            await response.aclose()
        return response.status_code, excerpt[:_EXCERPT].decode("utf-8", "replace")

    async def _record(self, attempt: Attempt, outcome: Outcome) -> None:
        now = utcnow()
        values: dict[str, Any] = {
            "response_status": outcome.response_status,
            "response_excerpt": outcome.response_excerpt,
            "error": outcome.error[:1000] if outcome.error else None,
            "duration_ms": outcome.duration_ms,
            "updated_at": now,
        }
        if outcome.ok:
            values |= {"status": DeliveryStatus.SUCCEEDED, "completed_at": now}
            values["next_attempt_at"] = None
        elif outcome.final or attempt.attempts >= self.policy.max_attempts:
            values |= {"status": DeliveryStatus.FAILED, "completed_at": now}
            values["next_attempt_at"] = None
        else:
            values["next_attempt_at"] = now + self.policy.backoff(attempt.attempts)
        async with self.factory() as session:
            await DeliveryRepository(session).record(attempt.delivery_id, values)
            await session.commit()
        log.info(
            "webhook_delivery",
            delivery_id=str(attempt.delivery_id),
            event_name=attempt.event,
            attempt=attempt.attempts,
            status=str(values.get("status", DeliveryStatus.PENDING)),
            response_status=outcome.response_status,
            error=outcome.error,
        )


def _since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


WEBHOOK_DISPATCHER: Key[WebhookDispatcher] = Key("webhook dispatcher")


def webhook_dispatcher(components: Components) -> WebhookDispatcher | None:
    """The delivery worker, in every replica that enables it (deliveries are claimed once)."""
    settings = components.settings
    if not settings.webhook_worker_enabled:
        return None
    policy = DeliveryPolicy(
        timeout_seconds=settings.webhook_timeout_seconds,
        max_attempts=settings.webhook_max_attempts,
        backoff_base_seconds=settings.webhook_backoff_base_seconds,
        backoff_max_seconds=settings.webhook_backoff_max_seconds,
        allow_private=settings.webhook_private_destinations_allowed,
        batch_size=settings.webhook_batch_size,
        poll_seconds=settings.webhook_poll_seconds,
    )
    return components.provide(
        WEBHOOK_DISPATCHER,
        WebhookDispatcher(
            components.session_factory, components.keyring, components.event_bus, policy
        ),
    )
