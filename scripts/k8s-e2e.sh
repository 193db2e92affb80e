#!/usr/bin/env bash
# Deploys budapp-sim through a running budapp onto a real Kubernetes cluster (kind, k3s), and
# checks the rollout, a call through the gateway, scaling and deletion. Not run in CI: no
# cluster exists there. Needs: curl, jq, kubectl pointing at the cluster, the budapp-sim image
# loaded into it (`kind load docker-image budapp/budapp-sim:latest`), and a budapp reachable at
# $BUDAPP (default http://127.0.0.1:9081) with an org admin's token in $TOKEN and an API key of
# a project in $API_KEY and that project's id in $PROJECT.
set -euo pipefail
BUDAPP="${BUDAPP:-http://127.0.0.1:9081}"
NAMESPACE="${NAMESPACE:-budapp-e2e}"
AUTH="Authorization: Bearer ${TOKEN:?set TOKEN}"
: "${API_KEY:?set API_KEY}" "${PROJECT:?set PROJECT}"
call() { curl -fsS -H "$AUTH" -H 'content-type: application/json' "$@"; }
wait_run() {
  for _ in $(seq 1 300); do
    status=$(call "$BUDAPP/workflows/$1" | jq -r .data.status)
    case "$status" in SUCCEEDED) return 0 ;; FAILED|CANCELLED) call "$BUDAPP/workflows/$1" | jq .; return 1 ;; esac
    sleep 2
  done
  return 1
}

kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
kubeconfig=$(kubectl config view --raw --minify --flatten | jq -Rs .)
credential=$(call -X POST "$BUDAPP/credentials" \
  -d "{\"name\":\"e2e-$RANDOM\",\"spec\":{\"kind\":\"kubeconfig\",\"kubeconfig\":$kubeconfig}}" | jq -r .data.id)
cluster=$(call -X POST "$BUDAPP/clusters" -d "{\"name\":\"e2e-$RANDOM\",\"provider\":\"kubernetes\",
  \"kubernetes\":{\"credential_id\":\"$credential\",\"namespace\":\"$NAMESPACE\",
  \"service_type\":\"NodePort\",\"service_url\":\"http://${NODE_ADDRESS:-127.0.0.1}:{node_port}\",
  \"cpu_request\":\"100m\",\"memory_request\":\"256Mi\"}}" | jq -r .data.id)
call -X POST "$BUDAPP/clusters/$cluster/onboard" | jq '.data.nodes[] | {name, devices}'

model=$(call -X POST "$BUDAPP/models/local" -d '{"name":"e2e-tiny","repo_id":"example/tiny","parameter_count":1000000}' | jq -r .data.id)
endpoint=$(call -X POST "$BUDAPP/endpoints" -d "{\"project_id\":\"$PROJECT\",\"name\":\"e2e\",
  \"model_id\":\"$model\",\"cluster_id\":\"$cluster\",\"runtime\":\"sim\"}" | jq -r .data.id)
run=$(call -X POST "$BUDAPP/endpoints/$endpoint/deploy" | jq -r .data.workflow_id)
wait_run "$run"
call "$BUDAPP/workflows/$run" | jq -r '.data.steps[] | "\(.name): \(.detail)"'
kubectl -n "$NAMESPACE" get deployments,services,pods -l app.kubernetes.io/managed-by=budapp

curl -fsS "${GATEWAY:-$BUDAPP}/v1/chat/completions" -H "Authorization: Bearer $API_KEY" \
  -H 'content-type: application/json' -d '{"model":"e2e-tiny","messages":[{"role":"user","content":"hi"}]}' | jq .

run=$(call -X POST "$BUDAPP/endpoints/$endpoint/scale" -d '{"replicas":2}' | jq -r .data.workflow_id)
wait_run "$run"
test "$(kubectl -n "$NAMESPACE" get deployments -l "budapp.io/endpoint-id=$endpoint" -o name | wc -l)" = 2

run=$(call -X DELETE "$BUDAPP/endpoints/$endpoint" | jq -r .data.workflow_id)
wait_run "$run"
test -z "$(kubectl -n "$NAMESPACE" get deployments -l "budapp.io/endpoint-id=$endpoint" -o name)"
echo "k8s e2e: deploy, call, scale and delete passed"
