"""The budcluster provider against a loopback server implementing the documented contract,
called directly and through Dapr service-invocation paths."""

from __future__ import annotations

import socket

import pytest

from budapp.adapters.clusters.base import (
    ClusterUnreachable,
    ProviderError,
    RuntimeSpec,
    RuntimeState,
    UnknownRuntime,
)
from budapp.adapters.clusters.budcluster import BudclusterProvider
from tests.fixtures.budcluster_server import SAMPLE_INVENTORY, ClusterState, serve

SPEC = RuntimeSpec(runtime_id="ep-1-0", template="vllm", model_name="m", model_path="/m")


async def exercise(provider: BudclusterProvider, state: ClusterState) -> None:
    inventory = await provider.inventory()
    assert [node.name for node in inventory.nodes] == ["gpu-node-1", "cpu-node-1"]
    assert inventory.gpu_count == 8
    assert inventory.cpu_cores == 96
    assert inventory.gpu_memory_total_bytes == 8 * 80 * 2**30
    deployed = await provider.deploy_runtime(SPEC)
    assert deployed.state is RuntimeState.RUNNING
    assert state.runtimes["ep-1-0"]["spec"]["model_path"] == "/m"
    assert (await provider.runtime_status("ep-1-0")).url == "http://10.0.0.7:8000/ep-1-0"
    assert await provider.runtime_logs("ep-1-0", 2) == ["ep-1-0 line 298", "ep-1-0 line 299"]
    await provider.stop_runtime("ep-1-0")
    assert state.runtimes == {}
    await provider.stop_runtime("ep-1-0")  # stopping twice is fine
    with pytest.raises(UnknownRuntime):
        await provider.runtime_status("ep-1-0")


async def test_direct_calls_carry_the_bearer_token() -> None:
    state = ClusterState(token="s3cret", inventory=SAMPLE_INVENTORY)
    with serve(state) as url:
        await exercise(BudclusterProvider(url, token="s3cret"), state)
    assert {path for _, path, _ in state.requests} >= {"/inventory", "/runtimes"}
    assert all(headers["authorization"] == "Bearer s3cret" for _, _, headers in state.requests)


async def test_calls_through_a_dapr_sidecar_use_invoke_paths_and_the_api_token() -> None:
    state = ClusterState(
        token="s3cret",
        dapr_app_id="budcluster",
        dapr_api_token="dapr-tok",
        inventory=SAMPLE_INVENTORY,
    )
    with serve(state) as url:
        provider = BudclusterProvider(
            url, dapr_app_id="budcluster", token="s3cret", dapr_api_token="dapr-tok"
        )
        await exercise(provider, state)
    assert state.requests[0][1] == "/v1.0/invoke/budcluster/method/inventory"
    assert all(headers["dapr-api-token"] == "dapr-tok" for _, _, headers in state.requests)


async def test_a_wrong_token_is_a_clear_error_without_the_token() -> None:
    state = ClusterState(token="right", inventory=SAMPLE_INVENTORY)
    with serve(state) as url, pytest.raises(ProviderError) as raised:
        await BudclusterProvider(url, token="wrong-token").inventory()
    assert "refused the credentials (401)" in str(raised.value)
    assert "wrong-token" not in str(raised.value)


async def test_an_unreachable_service_is_reported_as_such() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ClusterUnreachable, match="unreachable"):
        await BudclusterProvider(f"http://127.0.0.1:{port}", timeout=2).inventory()


async def test_a_failing_or_malformed_service_is_an_error() -> None:
    state = ClusterState(fail_with=503)
    with serve(state) as url:
        with pytest.raises(ClusterUnreachable, match="failed \\(503\\): broken"):
            await BudclusterProvider(url).inventory()
        state.fail_with = None
        state.raw_inventory = b"not json"
        with pytest.raises(ProviderError, match="invalid JSON"):
            await BudclusterProvider(url).inventory()
        state.raw_inventory = b'{"nodes": [{"name": "n"}]}'
        with pytest.raises(ProviderError, match="unexpected shape"):
            await BudclusterProvider(url).inventory()


async def test_error_bodies_outside_the_contract_are_not_echoed() -> None:
    state = ClusterState(inventory=SAMPLE_INVENTORY)
    with serve(state) as url, pytest.raises(ProviderError) as raised:
        await BudclusterProvider(f"{url}/internal").inventory()
    assert str(raised.value).endswith("refused GET inventory (404): Not Found")
    assert "hunter2" not in str(raised.value)
