"""The Helm chart, rendered by a real Helm engine (Helm's Go SDK, from the helm-python-sdk
wheel) for every values file, every manifest validated against the Kubernetes OpenAPI schemas
(kubernetes-validate, strict); the Grafana dashboards' structure; and the Dockerfile (hadolint,
and the issue's rules)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "budapp"
VALUES = [None, "values-dev.yaml", "values-stage.yaml", "values-prod.yaml"]
KUBERNETES = "1.30.0"
# Custom resources have no schema in kubernetes-validate; checked by hand below.
CUSTOM = {("monitoring.coreos.com/v1", "ServiceMonitor")}


def render(values_file: str | None, **overrides: Any) -> list[dict[str, Any]]:
    values = yaml.safe_load((CHART / values_file).read_text()) if values_file else {}
    values.update(overrides)
    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(values, name="budapp", namespace="budapp", is_install=True)
    return [doc for text in rendered.values() for doc in yaml.safe_load_all(text) if doc]


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


@pytest.mark.parametrize("values_file", VALUES)
def test_every_manifest_is_valid_kubernetes(values_file: str | None) -> None:
    docs = render(values_file)
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM:
            assert doc["spec"]["endpoints"][0]["path"] == "/metrics"
            continue
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


@pytest.mark.parametrize("values_file", VALUES)
def test_api_and_gateway_deploy_apart_with_probes_and_a_locked_down_container(
    values_file: str | None,
) -> None:
    deployments = of_kind(render(values_file), "Deployment")
    assert set(deployments) == {"budapp-api", "budapp-gateway"}
    for name, command in (("budapp-api", "serve"), ("budapp-gateway", "gateway")):
        pod = deployments[name]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["args"][0] == command
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
        assert mounts == {"/var/lib/budapp", "/tmp"}  # noqa: S108 - the pod's emptyDir
        replica_id = next(e for e in container["env"] if e["name"] == "BUDAPP_REPLICA_ID")
        assert replica_id["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_prod_scales_on_cpu_and_keeps_one_replica_through_disruptions() -> None:
    docs = render("values-prod.yaml")
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    assert set(hpas) == {"budapp-api", "budapp-gateway"}
    for hpa in hpas.values():
        assert hpa["spec"]["minReplicas"] >= 3
        target = hpa["spec"]["metrics"][0]["resource"]
        assert (target["name"], target["target"]["averageUtilization"]) == ("cpu", 70)
    pdbs = of_kind(docs, "PodDisruptionBudget")
    assert {pdb["spec"]["minAvailable"] for pdb in pdbs.values()} == {1}
    ingress = of_kind(docs, "Ingress")["budapp"]
    assert [rule["host"] for rule in ingress["spec"]["rules"]] == [
        "api.example.com",
        "gateway.example.com",
    ]


def test_dev_runs_one_of_each_without_autoscaling() -> None:
    docs = render("values-dev.yaml")
    assert of_kind(docs, "HorizontalPodAutoscaler") == {}
    assert {d["spec"]["replicas"] for d in of_kind(docs, "Deployment").values()} == {1}


def test_migrations_run_as_a_hook_before_the_pods() -> None:
    job = of_kind(render(None), "Job")["budapp-migrate"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    # What the job reads must exist before it: the ConfigMap, the Secret and the account.
    docs = render(None)
    for kind, name in (
        ("ConfigMap", "budapp"),
        ("Secret", "budapp-keys"),
        ("ServiceAccount", "budapp"),
    ):
        annotations = of_kind(docs, kind)[name]["metadata"]["annotations"]
        assert int(annotations["helm.sh/hook-weight"]) < 0


def test_keys_come_from_an_existing_secret_when_named() -> None:
    docs = render("values-stage.yaml")
    container = of_kind(docs, "Deployment")["budapp-api"]["spec"]["template"]["spec"]["containers"][
        0
    ]
    secrets = [
        source["secretRef"]["name"] for source in container["envFrom"] if "secretRef" in source
    ]
    assert secrets == ["budapp-keys", "budapp-database", "budapp-redis"]
    # Nothing secret was written into the chart's own Secret.
    assert of_kind(docs, "Secret")["budapp-keys"].get("stringData") in (None, {})


def test_inline_keys_go_into_the_charts_secret_not_the_configmap() -> None:
    docs = render("values-dev.yaml")
    secret = of_kind(docs, "Secret")["budapp-keys"]["stringData"]
    assert set(secret) == {"BUDAPP_DATABASE_URL", "BUDAPP_REDIS_URL", "BUDAPP_ENCRYPTION_KEYS"}
    config = of_kind(docs, "ConfigMap")["budapp"]["data"]
    assert not any("KEY" in name or "URL" in name for name in config)


def test_rbac_grants_the_provider_only_what_it_uses() -> None:
    docs = render(None)
    role = of_kind(docs, "Role")["budapp-runtimes"]
    verbs = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert verbs[("apps", "deployments")] == {"get", "list", "watch", "create", "patch", "delete"}
    assert verbs[("", "pods")] == {"get", "list", "watch"}
    assert verbs[("", "pods/log")] == {"get", "list", "watch"}
    assert all("*" not in v and "escalate" not in v and "bind" not in v for v in verbs.values())
    cluster = of_kind(docs, "ClusterRole")["budapp-inventory"]
    assert all(set(rule["verbs"]) <= {"get", "list"} for rule in cluster["rules"])


def test_service_monitors_scrape_budapp_and_the_runtimes() -> None:
    monitors = of_kind(render("values-prod.yaml"), "ServiceMonitor")
    runtimes = monitors["budapp-runtimes"]["spec"]["selector"]["matchLabels"]
    assert runtimes == {
        "app.kubernetes.io/managed-by": "budapp",
        "app.kubernetes.io/component": "model-runtime",
    }


def test_the_chart_lints_clean() -> None:
    report = helm.lint(str(CHART))
    assert report["errors"] == []
    assert all(message["severity"] <= 1 for message in report["messages"]), report


# --- Grafana dashboards ------------------------------------------------------------------------


DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))


def test_dashboards_ship_in_configmaps_for_grafanas_sidecar() -> None:
    maps = [
        m
        for m in of_kind(render(None), "ConfigMap").values()
        if "grafana_dashboard" in m["metadata"]["labels"]
    ]
    assert sorted(next(iter(m["data"])) for m in maps) == [p.name for p in DASHBOARDS]
    for config_map in maps:
        json.loads(next(iter(config_map["data"].values())))


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_has_the_structure_grafana_loads(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"])
    assert dashboard["title"].startswith("budapp / ")
    assert isinstance(dashboard["schemaVersion"], int)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["type"] in {"timeseries", "stat", "table", "gauge"}
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["targets"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert target["expr"].count("(") == target["expr"].count(")")
            # Every variable a query uses is defined.
            for used in re.findall(r"\$([a-z_]+)", target["expr"]):
                assert used in variables, used


def test_dashboards_cover_gateway_endpoints_and_workflows() -> None:
    text = " ".join(p.read_text() for p in DASHBOARDS)
    for metric in (
        "budapp_gateway_requests_total",
        "budapp_gateway_errors_total",
        "budapp_gateway_request_seconds_bucket",
        "budapp_gateway_time_to_first_token_seconds_bucket",
        "budapp_gateway_tokens_total",
        "kube_deployment_status_replicas_available",
        "budapp_workflow_runs_finished_total",
    ):
        assert metric in text, metric


# --- the Dockerfile ----------------------------------------------------------------------------


DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run(  # noqa: S603 - a fixed linter on a file of this repository
        [hadolint, "--failure-threshold", "info", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _stages() -> dict[str, str]:
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", DOCKERFILE, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_the_dockerfile_follows_the_images_rules() -> None:
    stages = _stages()
    assert list(stages) == ["build", "base", "sim", "budapp"]
    # budapp is the last stage, the default target; sim is its own target.
    final = stages["base"] + stages["budapp"]
    assert "USER 10001:10001" in stages["base"]
    assert "STOPSIGNAL SIGTERM" in stages["base"]
    for target in ("sim", "budapp"):
        assert "HEALTHCHECK" in stages[target]
        assert "/health" in stages[target]
    # No build tools or caches in what runs: nothing is installed after the build stage.
    for stage in ("base", "sim", "budapp"):
        assert not re.search(r"\b(pip|uv|apt-get|gcc)\b install", stages[stage])
        assert "COPY --from=build /src/.venv" in stages["base"] or stage != "base"
    assert "uv sync --frozen --no-dev" in stages["build"]
    assert 'ENTRYPOINT ["budapp"]' in final
