"""The `budcluster` provider: a remote cluster service over HTTP, called directly
(`<base_url>/<path>`) or through a Dapr sidecar's service invocation
(`<sidecar>/v1.0/invoke/<app id>/method/<path>`, with the `dapr-api-token` header).
The contract is docs/budcluster-contract.md."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from budapp.adapters.clusters.base import (
    ClusterUnreachable,
    Inventory,
    Progress,
    ProviderError,
    RuntimeSpec,
    RuntimeStatus,
    UnknownRuntime,
)

_MAX_LOG_LINES = 10_000
T = TypeVar("T", bound=BaseModel)


class _Logs(BaseModel):
    lines: list[str]


class BudclusterProvider:
    def __init__(
        self,
        base_url: str,
        *,
        dapr_app_id: str | None = None,
        token: str | None = None,
        dapr_api_token: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        base = base_url.rstrip("/")
        self.prefix = f"{base}/v1.0/invoke/{dapr_app_id}/method" if dapr_app_id else base
        self.headers = {"accept": "application/json"}
        if token:
            self.headers["authorization"] = f"Bearer {token}"
        if dapr_api_token:
            self.headers["dapr-api-token"] = dapr_api_token
        self.timeout = timeout
        # Named in errors; never includes a credential.
        self.where = f"budcluster at {base}" + (f" (Dapr app {dapr_app_id})" if dapr_app_id else "")

    async def inventory(self) -> Inventory:
        return _parse(Inventory, await self._request("GET", "inventory"), self.where)

    async def deploy_runtime(
        self,
        spec: RuntimeSpec,
        progress: Progress | None = None,  # noqa: ARG002 - the service reports no stages
    ) -> RuntimeStatus:
        # The contract's fields only: placement is the remote service's own business.
        body = spec.model_dump(mode="json", exclude={"placement", "endpoint_id"})
        return _parse(RuntimeStatus, await self._request("POST", "runtimes", json=body), self.where)

    async def stop_runtime(self, runtime_id: str) -> None:
        try:
            await self._request("DELETE", f"runtimes/{runtime_id}")
        except UnknownRuntime:
            return

    async def runtime_status(self, runtime_id: str) -> RuntimeStatus:
        answer = await self._request("GET", f"runtimes/{runtime_id}")
        return _parse(RuntimeStatus, answer, self.where)

    async def runtime_logs(self, runtime_id: str, lines: int = 100) -> list[str]:
        params = {"lines": max(1, min(lines, _MAX_LOG_LINES))}
        answer = await self._request("GET", f"runtimes/{runtime_id}/logs", params=params)
        return _parse(_Logs, answer, self.where).lines

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        url = f"{self.prefix}/{path}"
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.request(
                    method, url, json=json, params=params, headers=self.headers
                )
        except httpx.TimeoutException:
            raise ClusterUnreachable(
                f"{self.where} did not answer within {self.timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise ClusterUnreachable(f"{self.where} is unreachable: {exc}") from exc
        if response.status_code == 204:
            return None
        if response.status_code >= 500:
            raise ClusterUnreachable(
                f"{self.where} failed ({response.status_code}): {_message(response)}"
            )
        if response.status_code in (401, 403):
            raise ProviderError(f"{self.where} refused the credentials ({response.status_code})")
        if response.status_code == 404 and path.startswith("runtimes/"):
            raise UnknownRuntime(f"{self.where} has no runtime {path.split('/')[1]}")
        if response.status_code >= 400:
            raise ProviderError(
                f"{self.where} refused {method} {path} ({response.status_code}): "
                f"{_message(response)}"
            )
        try:
            return response.json()
        except ValueError:
            raise ProviderError(
                f"{self.where} answered {method} {path} with invalid JSON"
            ) from None


def _message(response: httpx.Response) -> str:
    # Only the contract's error message is shown: echoing any body would let whoever
    # registers a cluster read pages of internal services through budapp's errors.
    try:
        return str(response.json()["error"]["message"])[:500]
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase or "no error message"


def _parse(model: type[T], answer: Any, where: str) -> T:
    try:
        return model.model_validate(answer)
    except ValidationError as exc:
        fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors()[:5])
        raise ProviderError(f"{where} answered with an unexpected shape ({fields})") from None
