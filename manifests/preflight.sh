#!/usr/bin/env bash
# Run by `make deploy` before anything is applied (by hand: `manifests/preflight.sh && kubectl apply -k
# manifests/default`; `OVERLAY=self-signed manifests/preflight.sh && ...` for that overlay).
# The cluster must honour the webhooks' matchConditions. Without them (Kubernetes before 1.28, where the field
# is alpha and off, and the API server drops it without an error) the ConfigMap webhooks would be called, with
# failurePolicy Fail, for every ConfigMap write in the cluster, and the workload webhook for every Deployment,
# StatefulSet, DaemonSet, ReplicaSet, Job and CronJob.
# Then, for every overlay but self-signed, that cert-manager is installed: without it the serving certificate
# is never issued and the webhook never becomes ready.
# KUBECTL overrides the kubectl command and is split into words as make splits it (KUBECTL="kubectl --context
# prod"); OVERLAY names the overlay (default: default), as for make.
# Exit codes: 0 go ahead, 1 this cluster is refused (nothing was applied), 2 the cluster could not be asked.
set -euo pipefail
read -r -a kubectl <<<"${KUBECTL:-kubectl}"
[ "${#kubectl[@]}" -gt 0 ] || kubectl=(kubectl)
KUBECTL="${kubectl[*]}"
OVERLAY="${OVERLAY:-default}"

# cert-manager's Certificate CRD, for the overlays that get their serving certificate from it.
check_cert_manager() {
  if [ "$OVERLAY" = "self-signed" ]; then
    return 0
  fi
  local err
  if err="$("${kubectl[@]}" get crd certificates.cert-manager.io -o name 2>&1 >/dev/null)"; then
    return 0
  fi
  echo "preflight: cert-manager not found: '$KUBECTL get crd certificates.cert-manager.io' failed (${err%%$'\n'*}). manifests/$OVERLAY gets the webhook's serving certificate from cert-manager: without it the webhook's pods never start, and once its configurations (failurePolicy Fail) are registered no agent pod can be created. Install cert-manager first, or deploy with OVERLAY=self-signed. Nothing was applied." >&2
  exit 1
}

if ! out="$("${kubectl[@]}" version -o json 2>/dev/null)"; then
  : # kubectl exits non-zero when it prints the client version but cannot reach the server; look at what it printed
fi
server="$(printf '%s\n' "${out:-}" | sed -n '/"serverVersion"/,/}/p')"
major="$(printf '%s\n' "$server" | sed -n 's/.*"major": *"\([0-9][0-9]*\).*/\1/p' | head -n 1)"
minor="$(printf '%s\n' "$server" | sed -n 's/.*"minor": *"\([0-9][0-9]*\).*/\1/p' | head -n 1)"
if [ -z "$major" ] || [ -z "$minor" ]; then
  echo "preflight: could not read the cluster's version from '$KUBECTL version -o json' (is the current context reachable?)" >&2
  exit 2
fi
if [ "$major" -ne 1 ] || [ "$minor" -ge 30 ]; then
  echo "preflight: Kubernetes $major.$minor: ok"
  check_cert_manager
  exit 0
fi
if [ "$minor" -ge 28 ]; then
  echo "preflight: Kubernetes 1.$minor: webhook matchConditions are beta here (feature gate AdmissionWebhookMatchConditions, on by default); installing. If your cluster turned that gate off, uninstall now: every ConfigMap and workload write would be sent to the webhook."
  check_cert_manager
  exit 0
fi
echo "preflight: Kubernetes 1.$minor is too old: the webhooks need matchConditions (1.28 with its default feature gates, GA in 1.30). Without them every ConfigMap and workload write in the cluster would wait on this webhook, and fail when it is down. Nothing was applied." >&2
exit 1
