#!/usr/bin/env bash
# Run by `make deploy` before anything is applied: the cluster must honour the webhooks' matchConditions.
# Without them (Kubernetes before 1.28, where the field is alpha and off, and the API server drops it without
# an error) the ConfigMap webhooks would be called, with failurePolicy Fail, for every ConfigMap write in the
# cluster, and the workload webhook for every Deployment, StatefulSet, DaemonSet, ReplicaSet, Job and CronJob.
# KUBECTL overrides the kubectl binary.
set -euo pipefail
KUBECTL="${KUBECTL:-kubectl}"

if ! out="$("$KUBECTL" version -o json 2>/dev/null)"; then
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
  exit 0
fi
if [ "$minor" -ge 28 ]; then
  echo "preflight: Kubernetes 1.$minor: webhook matchConditions are beta here (feature gate AdmissionWebhookMatchConditions, on by default); installing. If your cluster turned that gate off, uninstall now: every ConfigMap and workload write would be sent to the webhook."
  exit 0
fi
echo "preflight: Kubernetes 1.$minor is too old: the webhooks need matchConditions (1.28 with its default feature gates, GA in 1.30). Without them every ConfigMap and workload write in the cluster would wait on this webhook, and fail when it is down. Nothing was applied." >&2
exit 1
