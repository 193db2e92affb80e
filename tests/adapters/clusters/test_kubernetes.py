"""The kubernetes provider against the API emulator (tests/fixtures/kube_apiserver.py): the
inventory, the objects a deploy creates (each validated against the Kubernetes schemas by
the emulator), the rollout's stages, and every fault of the issue: an unreadable, unsafe or
expired kubeconfig, 401, 403, more GPUs than any node has, an image that does not exist,
OOMKilled, and the API server going away mid-deploy."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lightkube import AsyncClient
from lightkube.resources.core_v1 import Pod

from budapp.adapters.clusters import ClusterConnector
from budapp.adapters.clusters.base import (
    ClusterUnreachable,
    Placement,
    ProviderError,
    RuntimeSpec,
    RuntimeState,
    UnknownRuntime,
)
from budapp.adapters.clusters.catalog import SHIPPED, KubernetesRuntime, TemplateCatalog
from budapp.adapters.clusters.kubernetes import (
    KubeconfigError,
    KubernetesProvider,
    from_kubeconfig,
)
from tests.fixtures.kube_apiserver import Grant, KubeApiServer, cpu_node, gpu_node, kube_apiserver

NAMESPACE = "models"


def catalog(**kubernetes: Any) -> TemplateCatalog:
    """The shipped templates, with the rollout timeouts the tests can wait out."""
    shipped = TemplateCatalog.load([SHIPPED])
    templates = {}
    for name in shipped.names:
        template = shipped.get(name)
        assert template.kubernetes is not None
        limits = {
            "schedule_timeout_seconds": 1.5,
            "image_pull_timeout_seconds": 1.5,
            "startup_timeout_seconds": 30,
            **kubernetes,
        }
        templates[name] = template.model_copy(
            update={"kubernetes": template.kubernetes.model_copy(update=limits)}
        )
    return TemplateCatalog(templates)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[KubeApiServer]:
    async with kube_apiserver(tmp_path) as api:
        api.add_node(gpu_node("gpu-a", gpus=8))
        api.add_node(cpu_node("cpu-a"))
        yield api


def provider_for(
    server: KubeApiServer, token: str | None = None, **config: Any
) -> KubernetesProvider:
    connector = ClusterConnector(None, templates=catalog(), kubernetes_poll_seconds=0.1)
    settings = {
        "namespace": NAMESPACE,
        "service_type": "NodePort",
        "service_url": "http://127.0.0.1:{node_port}",
        **config,
    }
    kubeconfig = server.kubeconfig(token or server.token())
    provider = connector.connect("kubernetes", settings, {"kubeconfig": kubeconfig})
    assert isinstance(provider, KubernetesProvider)
    return provider


def gpu_spec(runtime_id: str = "ep-1-0", gpus: int = 2, **fields: Any) -> RuntimeSpec:
    return RuntimeSpec(
        runtime_id=runtime_id,
        template="vllm",
        model_name="llama-8b",
        model_path="meta-llama/Llama-3.1-8B-Instruct",
        context_length=4096,
        env={"HF_TOKEN": "hf_secret", "CUDA_VISIBLE_DEVICES": "0,1"},
        placement=Placement(node="gpu-a", device_kind="gpu", device_count=gpus),
        endpoint_id="e1",
        **fields,
    )


class Stages:
    def __init__(self) -> None:
        self.lines: list[str] = []

    async def __call__(self, line: str) -> None:
        self.lines.append(line)


# --- inventory -------------------------------------------------------------------------------


async def test_inventory_reads_gpus_by_resource_mig_amd_and_taints(server: KubeApiServer) -> None:
    server.add_node(
        gpu_node(
            "mig-a",
            gpus=7,
            resource="nvidia.com/mig-1g.10gb",
            product="NVIDIA-A100-SXM4-80GB",
        )
    )
    amd = gpu_node("amd-a", gpus=8, resource="amd.com/gpu")
    amd["metadata"]["labels"] = {
        "amd.com/gpu.product-name": "AMD-Instinct-MI300X",
        "amd.com/gpu.vram": "192G",
    }
    server.add_node(amd)
    server.add_node(
        gpu_node(
            "tainted", gpus=4, taints=[{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}]
        )
    )
    inventory = await provider_for(server).inventory()
    nodes = {node.name: node for node in inventory.nodes}
    h100 = next(d for d in nodes["gpu-a"].devices if d.kind == "gpu")
    assert (h100.resource, h100.count) == ("nvidia.com/gpu", 8)
    assert h100.name == "NVIDIA-H100-80GB-HBM3 (nvidia.com/gpu)"
    assert h100.memory_total_bytes == 81559 * 2**20
    mig = next(d for d in nodes["mig-a"].devices if d.kind == "gpu")
    assert (mig.resource, mig.count, mig.memory_total_bytes) == (
        "nvidia.com/mig-1g.10gb",
        7,
        10 * 2**30,
    )
    assert "MIG 1g.10gb" in mig.name
    mi300 = next(d for d in nodes["amd-a"].devices if d.kind == "gpu")
    assert (mi300.resource, mi300.memory_total_bytes) == ("amd.com/gpu", 192 * 2**30)
    assert mi300.name.startswith("AMD-Instinct-MI300X")
    # A taint budapp's pods do not tolerate: listed, but it offers no GPU to the planner.
    assert nodes["tainted"].taints == ["dedicated=ml:NoSchedule"]
    assert next(d for d in nodes["tainted"].devices if d.kind == "gpu").count == 0
    assert nodes["cpu-a"].cpu_cores == 7
    assert nodes["cpu-a"].memory_total_bytes == 32 * 2**30
    assert inventory.gpu_count == 8 + 7 + 8


async def test_inventory_counts_gpus_taken_by_running_pods(server: KubeApiServer) -> None:
    provider = provider_for(server)
    status = await provider.deploy_runtime(gpu_spec(gpus=3))
    assert status.state is RuntimeState.RUNNING, status.message
    inventory = await provider.inventory()
    gpus = next(
        d for n in inventory.nodes if n.name == "gpu-a" for d in n.devices if d.kind == "gpu"
    )
    assert gpus.count == 5


# --- deploy --------------------------------------------------------------------------------


async def test_deploy_creates_a_deployment_with_gpu_requests_probes_and_cache(
    server: KubeApiServer,
) -> None:
    provider = provider_for(
        server,
        model_cache_size="500Gi",
        model_cache_storage_class="fast-nfs",
        runtime_class="nvidia",
        tolerations=[{"key": "team", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
    )
    stages = Stages()
    status = await provider.deploy_runtime(gpu_spec(), stages)

    assert status.state is RuntimeState.RUNNING, status.message
    assert status.url is not None
    assert status.url.startswith("http://127.0.0.1:")
    assert server.invalid == [], server.invalid
    deployment = server.get("deployments", NAMESPACE, "ep-1-0")
    assert deployment is not None
    assert deployment["metadata"]["labels"]["budapp.io/endpoint-id"] == "e1"
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"].startswith("vllm/vllm-openai:")
    assert container["command"][:3] == ["vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct"]
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "2"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    startup = container["startupProbe"]
    # Long enough for large weights: the whole startup timeout of the template.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/models"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["shm"]["emptyDir"]["medium"] == "Memory"
    assert volumes["model-cache"]["persistentVolumeClaim"]["claimName"] == "budapp-model-cache"
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert {t.get("key") for t in pod["tolerations"]} == {"team", "nvidia.com/gpu"}
    # The token goes in a Secret, not in the pod spec; the local-only pinning is dropped.
    assert container["envFrom"] == [{"secretRef": {"name": "ep-1-0-env"}}]
    secret = server.get("secrets", NAMESPACE, "ep-1-0-env")
    assert secret is not None
    assert base64.b64decode(secret["data"]["HF_TOKEN"]) == b"hf_secret"
    assert "CUDA_VISIBLE_DEVICES" not in secret["data"]
    claim = server.get("persistentvolumeclaims", NAMESPACE, "budapp-model-cache")
    assert claim is not None
    assert claim["spec"]["storageClassName"] == "fast-nfs"
    service = server.get("services", NAMESPACE, "ep-1-0")
    assert service is not None
    assert service["spec"]["selector"] == {"budapp.io/runtime-id": "ep-1-0"}
    assert stages.lines[0] == "created Deployment ep-1-0 in models"
    assert "scheduled on node gpu-a" in stages.lines
    assert any(line.startswith("image vllm/vllm-openai") for line in stages.lines)
    assert stages.lines[-1] == "the model answered"


async def test_deploy_again_leaves_the_pod_alone_and_a_new_spec_replaces_it(
    server: KubeApiServer,
) -> None:
    provider = provider_for(server)
    await provider.deploy_runtime(gpu_spec())
    pods = server.names("pods", NAMESPACE)
    again = await provider.deploy_runtime(gpu_spec())
    assert again.state is RuntimeState.RUNNING
    assert server.names("pods", NAMESPACE) == pods
    changed = await provider.deploy_runtime(gpu_spec(gpus=4))
    assert changed.state is RuntimeState.RUNNING, changed.message
    assert server.names("pods", NAMESPACE) != pods
    deployment = server.get("deployments", NAMESPACE, "ep-1-0")
    assert deployment is not None
    requests = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert requests["nvidia.com/gpu"] == "4"


async def test_status_logs_and_stop(server: KubeApiServer) -> None:
    provider = provider_for(server)
    spec = RuntimeSpec(runtime_id="ep-2-0", template="sim", model_name="tiny")
    assert (await provider.deploy_runtime(spec)).state is RuntimeState.RUNNING
    status = await provider.runtime_status("ep-2-0")
    assert status.state is RuntimeState.RUNNING
    assert await provider.runtime_ids() == {"ep-2-0"}
    assert any(
        "Uvicorn" in line or "startup" in line.lower()
        for line in await provider.runtime_logs("ep-2-0")
    )
    await provider.stop_runtime("ep-2-0")
    await provider.stop_runtime("ep-2-0")  # already gone: nothing to do
    assert server.names("deployments", NAMESPACE) == set()
    assert server.names("services", NAMESPACE) == set()
    with pytest.raises(UnknownRuntime):
        await provider.runtime_status("ep-2-0")


async def test_a_watch_streams_what_changes(server: KubeApiServer) -> None:
    config = from_kubeconfig(server.kubeconfig(server.token()), context=None).config
    client = AsyncClient(config, namespace=NAMESPACE)
    seen: list[str] = []

    async def watch() -> None:
        async for kind, pod in client.watch(Pod, namespace=NAMESPACE, server_timeout=5):
            assert pod.metadata is not None
            seen.append(kind)
            if kind == "DELETED":
                return

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.2)
    provider = provider_for(server)
    spec = RuntimeSpec(runtime_id="ep-3-0", template="sim", model_name="tiny")
    await provider.deploy_runtime(spec)
    await provider.stop_runtime("ep-3-0")
    await asyncio.wait_for(watcher, 10)
    await client.close()
    assert "MODIFIED" in seen
    assert seen[-1] == "DELETED"


# --- faults ----------------------------------------------------------------------------------


async def test_more_gpus_than_any_node_fails_with_the_schedulers_reason(
    server: KubeApiServer,
) -> None:
    provider = provider_for(server)
    status = await provider.deploy_runtime(gpu_spec(gpus=16))
    assert status.state is RuntimeState.FAILED
    assert status.message is not None
    assert "could not be scheduled" in status.message
    assert "Insufficient nvidia.com/gpu" in status.message
    # Nothing half-created stays behind.
    assert server.names("deployments", NAMESPACE) == set()
    assert server.names("services", NAMESPACE) == set()
    assert server.names("secrets", NAMESPACE) == set()


async def test_an_image_that_does_not_exist_fails_at_once(server: KubeApiServer) -> None:
    provider = provider_for(server)
    server.missing_images.add(catalog().get("sim").container.image)
    spec = RuntimeSpec(runtime_id="ep-4-0", template="sim", model_name="tiny")
    status = await provider.deploy_runtime(spec)
    assert status.state is RuntimeState.FAILED
    assert status.message is not None
    assert "cannot be pulled" in status.message
    assert "not found" in status.message
    assert server.names("deployments", NAMESPACE) == set()


async def test_oom_killed_fails_with_advice(server: KubeApiServer) -> None:
    provider = provider_for(server, max_restarts=2)
    server.oom_images.add(catalog().get("sim").container.image)
    spec = RuntimeSpec(runtime_id="ep-5-0", template="sim", model_name="tiny")
    status = await provider.deploy_runtime(spec)
    assert status.state is RuntimeState.FAILED
    assert status.message is not None
    assert "ran out of memory (OOMKilled)" in status.message
    assert server.names("deployments", NAMESPACE) == set()


async def test_a_namespace_without_permission_is_a_403_that_says_so(server: KubeApiServer) -> None:
    token = server.token(Grant(namespaces={"elsewhere"}))
    provider = provider_for(server, token)
    spec = RuntimeSpec(runtime_id="ep-6-0", template="sim", model_name="tiny")
    with pytest.raises(ProviderError) as refused:
        await provider.deploy_runtime(spec)
    message = str(refused.value)
    assert "forbids it (403)" in message
    assert 'in the namespace "models"' in message
    assert not isinstance(refused.value, ClusterUnreachable)


async def test_a_token_the_server_does_not_know_is_a_401(server: KubeApiServer) -> None:
    provider = provider_for(server, "revoked-token")
    with pytest.raises(ProviderError, match=r"refused the kubeconfig's credentials \(401"):
        await provider.inventory()


async def test_the_api_server_going_away_mid_deploy_is_unreachable(server: KubeApiServer) -> None:
    provider = provider_for(server)
    deploy = asyncio.create_task(provider.deploy_runtime(gpu_spec(gpus=16)))
    while not server.names("deployments", NAMESPACE):  # noqa: ASYNC110 - polls the emulator
        await asyncio.sleep(0.05)
    await server.down()
    with pytest.raises(ClusterUnreachable, match="unreachable"):
        await asyncio.wait_for(deploy, 20)
    await server.up()
    # What was created is still there, and the provider can list it for reconciliation.
    assert await provider.runtime_ids() == {"ep-1-0"}


def _kubeconfig(user: dict[str, Any], cluster: dict[str, Any] | None = None) -> str:
    return json.dumps(
        {
            "current-context": "c",
            "clusters": [
                {"name": "k", "cluster": cluster or {"server": "https://k8s.example:6443"}}
            ],
            "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
            "users": [{"name": "u", "user": user}],
        }
    )


def _certificate(not_after: datetime) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "budapp")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(not_after - timedelta(days=30))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.PEM)).decode()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("clusters: [unclosed", "not valid YAML"),
        ("- a list", "not a YAML mapping"),
        (_kubeconfig({"exec": {"apiVersion": "x", "command": "aws"}}), "uses 'exec'"),
        (_kubeconfig({"tokenFile": "/etc/passwd"}), "uses 'tokenFile'"),
        (
            _kubeconfig({"token": "t"}, {"server": "https://k", "certificate-authority": "/ca"}),
            "certificate-authority-data",
        ),
        (json.dumps({"clusters": [], "contexts": [], "users": []}), "No current context"),
    ],
)
def test_unreadable_or_unsafe_kubeconfigs_are_refused(text: str, reason: str) -> None:
    with pytest.raises(KubeconfigError, match=reason):
        from_kubeconfig(text, context=None)


def test_an_expired_client_certificate_is_refused() -> None:
    expired = _certificate(datetime.now(UTC) - timedelta(days=1))
    text = _kubeconfig({"client-certificate-data": expired, "client-key-data": expired})
    with pytest.raises(KubeconfigError, match="client certificate expired"):
        from_kubeconfig(text, context=None)
    valid = _certificate(datetime.now(UTC) + timedelta(days=1))
    from_kubeconfig(
        _kubeconfig({"client-certificate-data": valid, "client-key-data": valid}), context=None
    )


def test_a_kubernetes_runtime_needs_an_image() -> None:
    assert KubernetesRuntime(image="x").port == 8000


@pytest.mark.parametrize(
    ("text", "value"),
    [("3800m", "3.8"), ("64Gi", str(64 * 2**30)), ("1e3", "1000"), ("8", "8"), ("junk", "0")],
)
def test_quantities_read_as_kubernetes_writes_them(text: str, value: str) -> None:
    from decimal import Decimal  # noqa: PLC0415

    from budapp.adapters.clusters.kubernetes.inventory import quantity  # noqa: PLC0415

    assert quantity(text) == Decimal(value)
