"""The `kubernetes` provider: each runtime is a Deployment of one pod and a Service in one
namespace per cluster registration, talked to with lightkube.

A deploy creates (or, when the spec changed, patches) the objects, then follows the rollout
by listing the runtime's pod and its events every `poll_seconds`: scheduled, image pulled,
container started, ready. Kubernetes' own failures (FailedScheduling, an image that cannot be
pulled, OOMKilled, CrashLoopBackOff) end it with a message that says what to change, and the
objects are deleted so that nothing half-created stays behind. A runtime is RUNNING only once
the model answers through the address the gateway will use: `/v1/models` lists it and a
one-token completion returns."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import httpx
import httpx2
from lightkube import ALL_NS, ApiError, AsyncClient
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import (
    Event,
    Node,
    PersistentVolumeClaim,
    Pod,
    Secret,
    Service,
)
from lightkube.types import PatchType

from budapp.adapters.clusters.base import (
    ClusterUnreachable,
    Inventory,
    Progress,
    ProviderError,
    RuntimeSpec,
    RuntimeState,
    RuntimeStatus,
    UnknownRuntime,
)
from budapp.adapters.clusters.catalog import RuntimeTemplate, TemplateCatalog
from budapp.adapters.clusters.kubernetes.connection import Connection
from budapp.adapters.clusters.kubernetes.inventory import build_inventory, is_gpu_resource
from budapp.adapters.clusters.kubernetes.manifests import (
    MANAGED_BY,
    RUNTIME_LABEL,
    SPEC_HASH,
    ClusterSettings,
    model_cache_claim,
    object_name,
    runtime_objects,
)
from budapp.adapters.clusters.kubernetes.rollout import read_pod
from budapp.core.logging import get_logger

log = get_logger("budapp.clusters.kubernetes")

T = TypeVar("T")
_KINDS: dict[str, Any] = {
    "Deployment": Deployment,
    "Service": Service,
    "Secret": Secret,
    "PersistentVolumeClaim": PersistentVolumeClaim,
}
_MESSAGE_LENGTH = 500
_MAX_LOG_LINES = 10_000
_FIELD_MANAGER = "budapp"


class KubernetesProvider:
    def __init__(
        self,
        connection: Connection,
        settings: ClusterSettings,
        templates: TemplateCatalog,
        *,
        timeout: float = 10.0,
        poll_seconds: float = 2.0,
    ) -> None:
        self.connection = connection
        self.settings = settings
        self.templates = templates
        self.timeout = timeout
        self.poll_seconds = poll_seconds
        self.where = f"{connection.where}, namespace {settings.namespace}"

    # --- inventory -------------------------------------------------------------------------

    async def inventory(self) -> Inventory:
        async with self._client() as client:

            async def read(kind: Any, namespace: str | None = None) -> list[dict[str, Any]]:
                return [item.to_dict() async for item in client.list(kind, namespace=namespace)]

            nodes = await self._call(read(Node))
            try:
                pods = await self._call(read(Pod, ALL_NS))
            except AccessDenied:
                # Without cluster-wide pod reads, free is what is allocatable.
                log.warning("kubernetes_pods_unreadable", where=self.where)
                pods = []
        return build_inventory(nodes, pods, self.settings.tolerations)

    # --- runtimes --------------------------------------------------------------------------

    async def deploy_runtime(
        self, spec: RuntimeSpec, progress: Progress | None = None
    ) -> RuntimeStatus:
        say = _Progress(progress)
        template = self._template(spec)
        await self.ensure_runtime(spec)
        await say(f"created Deployment {object_name(spec.runtime_id)} in {self.settings.namespace}")
        status = await self._follow(spec, template, say)
        if status.state is RuntimeState.FAILED:
            # Nothing half-created stays behind; the model cache is kept for the next try.
            with contextlib.suppress(ProviderError):
                await self.stop_runtime(spec.runtime_id)
        return status

    async def ensure_runtime(self, spec: RuntimeSpec) -> None:
        template = self._template(spec)
        async with self._client() as client:
            gpu_resource, node_labels = await self._gpu_resource(client, spec)
            objects = runtime_objects(
                spec, template, self.settings, gpu_resource=gpu_resource, node_labels=node_labels
            )
            claim = model_cache_claim(self.settings)
            for body in ([claim] if claim else []) + objects:
                await self._apply(client, body, replace=body["kind"] != "PersistentVolumeClaim")

    async def stop_runtime(self, runtime_id: str) -> None:
        name = object_name(runtime_id)
        async with self._client() as client:
            for kind, object_ in ((Deployment, name), (Service, name), (Secret, name + "-env")):
                try:
                    await self._call(
                        client.delete(kind, object_, namespace=self.settings.namespace)
                    )
                except UnknownRuntime:
                    continue

    async def runtime_status(self, runtime_id: str) -> RuntimeStatus:
        name = object_name(runtime_id)
        async with self._client() as client:
            deployment = await self._get(client, Deployment, name)
            if deployment is None:
                raise UnknownRuntime(f"{self.where} has no runtime {runtime_id}")
            pods = await self._pods(client, name)
            url = await self._url(client, name, self._template_of(deployment))
        report = read_pod(pods[0], []) if pods else None
        available = ((deployment.get("status") or {}).get("availableReplicas") or 0) >= 1
        if available and report and report.ready:
            state = RuntimeState.RUNNING
        elif report and report.restarts >= self.settings.max_restarts and report.crashing:
            state = RuntimeState.FAILED
        else:
            state = RuntimeState.STARTING
        return RuntimeStatus(
            runtime_id=runtime_id,
            state=state,
            url=url,
            restarts=report.restarts if report else 0,
            message=report.summary if report and state is not RuntimeState.RUNNING else None,
        )

    async def runtime_logs(self, runtime_id: str, lines: int = 100) -> list[str]:
        name = object_name(runtime_id)
        async with self._client() as client:
            pods = await self._pods(client, name)
            if not pods:
                if await self._get(client, Deployment, name) is None:
                    raise UnknownRuntime(f"{self.where} has no runtime {runtime_id}")
                return []
            pod = pods[0]["metadata"]["name"]
            tail = max(1, min(lines, _MAX_LOG_LINES))

            async def read() -> list[str]:
                stream = client.log(pod, namespace=self.settings.namespace, tail_lines=tail)
                return [line.rstrip("\n") async for line in stream]

            return await self._call(read())

    async def runtime_ids(self) -> set[str]:
        """The runtimes budapp runs in this namespace (by the runtime id each was made for)."""
        async with self._client() as client:

            async def names() -> set[str]:
                ids = set()
                async for deployment in client.list(
                    Deployment, namespace=self.settings.namespace, labels=dict(MANAGED_BY)
                ):
                    meta = deployment.metadata
                    if meta is None:
                        continue
                    annotations = meta.annotations or {}
                    runtime = annotations.get(RUNTIME_LABEL) or (meta.labels or {}).get(
                        RUNTIME_LABEL
                    )
                    if runtime:
                        ids.add(runtime)
                return ids

            return await self._call(names())

    # --- the rollout -----------------------------------------------------------------------

    async def _follow(
        self, spec: RuntimeSpec, template: RuntimeTemplate, say: _Progress
    ) -> RuntimeStatus:
        k8s = template.container
        name = object_name(spec.runtime_id)
        started = time.monotonic()
        scheduled_at: float | None = None
        pulling_since: float | None = None
        check = "the model has not answered yet"
        while True:
            async with self._client() as client:
                pods = await self._pods(client, name)
                pod = pods[0] if pods else None
                events = await self._events(client, pod["metadata"]["name"]) if pod else []
                url = await self._url(client, name, template)
            now = time.monotonic()
            report = read_pod(pod, events) if pod else None

            def failed(message: str, restarts: int = 0, url: str = url) -> RuntimeStatus:
                return RuntimeStatus(
                    runtime_id=spec.runtime_id,
                    state=RuntimeState.FAILED,
                    url=url,
                    restarts=restarts,
                    message=message[:2000],
                )

            if report is None or not report.scheduled:
                reason = report.unscheduled if report else "no pod yet"
                await say(f"waiting for a node: {reason}")
                if now - started > k8s.schedule_timeout_seconds:
                    return failed(
                        f"the pod could not be scheduled within {k8s.schedule_timeout_seconds:g} "
                        f"s: {reason}"
                    )
            else:
                scheduled_at = scheduled_at or now
                await say(f"scheduled on node {report.node}")
                if report.pull_error:
                    pulling_since = pulling_since or now
                    if report.pull_error_final or (
                        now - pulling_since > k8s.image_pull_timeout_seconds
                    ):
                        return failed(
                            f"the image {k8s.image} cannot be pulled: {report.pull_error}"
                        )
                    await say(f"pulling image {k8s.image}: {report.pull_error}")
                elif report.pulled:
                    await say(f"image {k8s.image} pulled")
                if report.crashing and report.restarts >= self.settings.max_restarts:
                    return failed(report.crash_message(self.settings.max_restarts), report.restarts)
                if report.running:
                    await say("container started")
                if report.ready:
                    await say("pod ready; asking the model for a token")
                    answer = await _model_answers(url, spec.model_name, self.timeout)
                    if answer is None:
                        await say("the model answered")
                        return RuntimeStatus(
                            runtime_id=spec.runtime_id,
                            state=RuntimeState.RUNNING,
                            url=url,
                            restarts=report.restarts,
                        )
                    check = answer
                if now - scheduled_at > template.startup_timeout + k8s.image_pull_timeout_seconds:
                    return failed(
                        f"the runtime was not ready within {template.startup_timeout:g} s "
                        f"({report.summary}; {check})",
                        report.restarts,
                    )
            await asyncio.sleep(self.poll_seconds)

    # --- helpers ---------------------------------------------------------------------------

    def _template(self, spec: RuntimeSpec) -> RuntimeTemplate:
        template = self.templates.get(spec.template)
        if template.kubernetes is None:
            raise ProviderError(
                f"runtime template {template.name!r} has no container image for Kubernetes"
            )
        return template

    def _template_of(self, deployment: dict[str, Any]) -> RuntimeTemplate | None:
        labels = (deployment.get("metadata") or {}).get("labels") or {}
        with contextlib.suppress(ProviderError):
            return self.templates.get(labels.get("app.kubernetes.io/name", ""))
        return None

    async def _gpu_resource(
        self, client: AsyncClient, spec: RuntimeSpec
    ) -> tuple[str | None, dict[str, str]]:
        """The GPU resource to request, read from the planned node (a MIG profile, an AMD
        GPU...), and that node's labels."""
        placement = spec.placement
        if placement is None or placement.device_kind != "gpu" or not placement.device_count:
            return None, {}
        node = await self._get(client, Node, placement.node) if placement.node else None
        if node is None:
            return "nvidia.com/gpu", {}
        labels: dict[str, str] = (node.get("metadata") or {}).get("labels") or {}
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        resources = sorted(name for name in allocatable if is_gpu_resource(name))
        return (resources[0] if resources else "nvidia.com/gpu"), labels

    async def _apply(self, client: AsyncClient, body: dict[str, Any], *, replace: bool) -> None:
        kind = _KINDS[body["kind"]]
        name = body["metadata"]["name"]
        namespace = self.settings.namespace
        current = await self._get(client, kind, name)
        if current is None:
            try:
                await self._call(client.create(kind.from_dict(body)))
                return
            except RuntimeConflict:
                # Another replica of budapp created it a moment ago.
                current = await self._get(client, kind, name)
                if current is None:
                    raise
        if not replace or _same(current, body):
            return
        patch = {"metadata": {"labels": body["metadata"]["labels"]}}
        for field in ("spec", "stringData", "type"):
            if field in body:
                patch[field] = body[field]
        if "annotations" in body["metadata"]:
            patch["metadata"]["annotations"] = body["metadata"]["annotations"]
        await self._call(
            client.patch(kind, name, patch, namespace=namespace, patch_type=PatchType.MERGE)
        )

    async def _get(self, client: AsyncClient, kind: Any, name: str) -> dict[str, Any] | None:
        namespace = None if kind is Node else self.settings.namespace
        try:
            found = await self._call(client.get(kind, name, namespace=namespace))
        except UnknownRuntime:
            return None
        result: dict[str, Any] = found.to_dict()
        return result

    async def _pods(self, client: AsyncClient, name: str) -> list[dict[str, Any]]:
        """The runtime's pods, newest first, leaving out those being deleted."""

        selector: dict[str, Any] = {RUNTIME_LABEL: name}

        async def read() -> list[dict[str, Any]]:
            return [
                pod.to_dict()
                async for pod in client.list(
                    Pod, namespace=self.settings.namespace, labels=selector
                )
            ]

        pods = [p for p in await self._call(read()) if not p["metadata"].get("deletionTimestamp")]
        return sorted(
            pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", reverse=True
        )

    async def _events(self, client: AsyncClient, pod: str) -> list[dict[str, Any]]:
        async def read() -> list[dict[str, Any]]:
            return [
                event.to_dict()
                async for event in client.list(
                    Event,
                    namespace=self.settings.namespace,
                    fields={"involvedObject.name": pod},
                )
            ]

        return await self._call(read())

    async def _url(self, client: AsyncClient, name: str, template: RuntimeTemplate | None) -> str:
        port = template.kubernetes.port if template and template.kubernetes else 8000
        node_port = ""
        if "{node_port}" in self.settings.service_url:
            service = await self._get(client, Service, name)
            ports = ((service or {}).get("spec") or {}).get("ports") or [{}]
            node_port = str(ports[0].get("nodePort", ""))
        return self.settings.service_url.format(
            service=name, namespace=self.settings.namespace, port=port, node_port=node_port
        ).rstrip("/")

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[AsyncClient]:
        client = AsyncClient(
            self.connection.config,
            namespace=self.settings.namespace,
            timeout=httpx2.Timeout(self.timeout),
            field_manager=_FIELD_MANAGER,
            trust_env=False,
        )
        try:
            yield client
        finally:
            await client.close()

    async def _call(self, call: Awaitable[T]) -> T:
        """One API call, its failures as provider errors that say what happened."""
        try:
            return await call
        except ApiError as exc:
            raise self._api_error(
                exc.status.code or 0, exc.status.message or exc.status.reason
            ) from None
        except httpx2.HTTPStatusError as exc:
            # Not a Status body: a proxy or load balancer in front of the API server answered.
            raise self._api_error(exc.response.status_code, exc.response.reason_phrase) from None
        except httpx2.TimeoutException:
            raise ClusterUnreachable(
                f"{self.where} did not answer within {self.timeout:g} s"
            ) from None
        except httpx2.HTTPError as exc:
            raise ClusterUnreachable(f"{self.where} is unreachable: {exc}") from None

    def _api_error(self, code: int, text: str | None) -> ProviderError:
        message = (text or "no message")[:_MESSAGE_LENGTH]
        if code == 401:
            return ProviderError(
                f"{self.where} refused the kubeconfig's credentials (401 Unauthorized): "
                "the token or certificate is expired, revoked or unknown"
            )
        if code == 403:
            return AccessDenied(f"{self.where} forbids it (403): {message}")
        if code == 404:
            return UnknownRuntime(f"{self.where}: {message}")
        if code == 409:
            return RuntimeConflict(f"{self.where}: {message}")
        if code >= 500:
            return ClusterUnreachable(f"{self.where} failed ({code}): {message}")
        return ProviderError(f"{self.where} refused the request ({code}): {message}")


class AccessDenied(ProviderError):
    """403: the credentials are valid but lack a permission (RBAC)."""


class RuntimeConflict(ProviderError):
    """409 from the API server: the object exists already, or changed under us."""


class _Progress:
    """Reports each distinct line once, so that a rollout polled every few seconds reads as a
    short list of stages."""

    def __init__(self, sink: Progress | None) -> None:
        self.sink = sink
        self.seen: set[str] = set()

    async def __call__(self, line: str) -> None:
        if self.sink is None or line in self.seen:
            return
        self.seen.add(line)
        await self.sink(line)


def _same(current: dict[str, Any], body: dict[str, Any]) -> bool:
    want = (body["metadata"].get("annotations") or {}).get(SPEC_HASH)
    have = ((current.get("metadata") or {}).get("annotations") or {}).get(SPEC_HASH)
    if want is not None:
        return bool(want == have)
    return all(current.get(field) == body.get(field) for field in ("spec", "type")) and (
        "stringData" not in body
    )


async def _model_answers(url: str, model: str, seconds: float) -> str | None:
    """None when the model lists itself and completes one token; otherwise why not."""
    try:
        async with httpx.AsyncClient(base_url=url, timeout=seconds, trust_env=False) as client:
            listed = await client.get("/v1/models")
            if listed.status_code != 200:
                return f"GET /v1/models answered {listed.status_code}"
            names = {item.get("id") for item in listed.json().get("data", [])}
            if model not in names:
                return f"the runtime serves {sorted(map(str, names))}, not {model!r}"
            completion = await client.post(
                "/v1/completions", json={"model": model, "prompt": "ping", "max_tokens": 1}
            )
            if completion.status_code != 200:
                return f"a one-token completion answered {completion.status_code}"
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        return f"budapp cannot reach the runtime at {url}: {type(exc).__name__}"
    return None
