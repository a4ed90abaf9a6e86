#!/usr/bin/env bash
# Run by `make deploy` before anything is applied (by hand: `manifests/preflight.sh && kubectl apply -k
# manifests/default`; `OVERLAY=self-signed manifests/preflight.sh && ...` for that overlay).
# The cluster must honour the webhooks' matchConditions. Without them (Kubernetes before 1.28, where the field
# is alpha and off, and the API server drops it without an error) the ConfigMap webhooks would be called, with
# failurePolicy Fail, for every ConfigMap write in the cluster, and the workload webhook for every Deployment,
# StatefulSet, DaemonSet, ReplicaSet, Job and CronJob.
# Then, when the overlay's render holds cert-manager objects (manifests/default, with-network-policy, and an
# overlay of your own built on them), that cert-manager is installed: without it the serving certificate is never
# issued and the webhook never becomes ready.
# KUBECTL overrides the kubectl command (KUBECTL="kubectl --context prod") and is split into words at spaces and
# tabs. Quotes in it are not understood, so KUBECTL="kubectl --context 'my ctx'" is not supported, here or by
# `make deploy` (which runs this script with it): use a kubeconfig context name without spaces, or KUBECONFIG.
# Then the nodes' kubelet versions: native sidecars (featureGates.nativeSidecars, the pod annotation
# kagenti.io/native-sidecars: "true") are run by the kubelet, which may lag the API server by three minor versions.
# The oldest is printed; it stops the install only when the overlay's config (featureGates.nativeSidecars in the
# config.yaml of its ConfigMap kagenti-webhook-config; comments and other objects do not count) turns native
# sidecars on for every agent and a node's kubelet is older than 1.28 (there spiffe-helper would never exit and every agent pod would stay in
# Init). A node list that cannot be read is a note, not a stop: the check is advice for the other cases. So is a
# config it cannot read (no such key in the render, or a form of YAML the reader below does not follow): unknown,
# said in a note, not taken as off.
# OVERLAY names the overlay, a directory beside this script (default: default), as for make.
# Exit codes: 0 go ahead (printed last, once every check passed; the kubelet note just before it), 1 this cluster is
# refused (nothing was applied), 2 the cluster could not be asked (nothing was applied).
set -euo pipefail
read -r -a kubectl <<<"${KUBECTL:-kubectl}"
[ "${#kubectl[@]}" -gt 0 ] || kubectl=(kubectl)
KUBECTL="${kubectl[*]}"
OVERLAY="${OVERLAY:-default}"
overlay_dir="$(dirname "$0")/$OVERLAY"
# the overlay's render (needs_cert_manager fills it in; manifests/base's for self-signed before `make certs`; empty
# when the overlay does not render)
rendered=""

# Whether the overlay gets its serving certificate from cert-manager: its render holds a cert-manager.io object.
# manifests/self-signed renders only once `make certs` wrote its certificates (make deploy runs it after this
# check): when it does not render, it needs no cert-manager, and its config is read from manifests/base's render. Any other overlay that does not render is not guessed
# at: its error, and the likely cause.
needs_cert_manager() {
  local out
  # stdout and stderr together: on success kustomize's warnings never start a line with apiVersion
  if out="$("${kubectl[@]}" kustomize "$overlay_dir" 2>&1)"; then
    rendered="$out"
    grep -q '^apiVersion: cert-manager\.io/' <<<"$out"
    return
  fi
  local name="${OVERLAY#./}"
  name="${name%/}"
  if [ "$name" = "self-signed" ]; then
    # its config is base's (the overlay adds only the serving Secret): read that for the kubelet check
    rendered="$("${kubectl[@]}" kustomize "$(dirname "$0")/base" 2>/dev/null)" || rendered=""
    return 1
  fi
  local first="${out%%$'\n'*}"
  echo "preflight: manifests/$OVERLAY does not render (${first:-kubectl kustomize failed}). An overlay built on self-signed needs its certificates first: make certs. Nothing was applied." >&2
  exit 2
}

# cert-manager's Certificate CRD, for the overlays that get their serving certificate from it.
check_cert_manager() {
  needs_cert_manager || return 0
  local err
  if err="$("${kubectl[@]}" get crd certificates.cert-manager.io -o name 2>&1 >/dev/null)"; then
    return 0
  fi
  case "$err" in
    *"(NotFound)"*) ;;
    *)
      echo "preflight: could not ask the cluster whether cert-manager is installed: '$KUBECTL get crd certificates.cert-manager.io' failed (${err%%$'\n'*}). Check the context and your permissions (get on customresourcedefinitions), then run it again. Nothing was applied." >&2
      exit 2
      ;;
  esac
  echo "preflight: cert-manager not found: '$KUBECTL get crd certificates.cert-manager.io' failed (${err%%$'\n'*}). manifests/$OVERLAY gets the webhook's serving certificate from cert-manager: without it the webhook's pods never start, and once its configurations (failurePolicy Fail) are registered no agent pod can be created. Install cert-manager first, or deploy with OVERLAY=self-signed. Nothing was applied." >&2
  exit 1
}

# The value of featureGates.nativeSidecars in the config file of the render on stdin: the config.yaml key of the
# ConfigMap kagenti-webhook-config (kustomize adds a hash to its name), and nothing else in the render (other
# objects, comments). kustomize writes that key as a literal block (|), or as a quoted string when the block form
# cannot hold it (a line that ends in spaces or holds a tab, comments included: double quotes, \n, \t, \" and \\
# escaped, long lines folded; a one-line file: single quotes); featureGates may be a block or a one-line flow mapping
# ({nativeSidecars: true}). Prints true, false (not set, or false: the default is off), or unknown: the render holds
# no such key, or holds it (or the file) in a form this reader does not follow (a JSON document, a quoted key, a
# flow mapping over several lines), which is not taken for off.
native_sidecars() {
  awk '
    # "ok" then the value of the config.yaml key, one line each (block indentation removed; a quoted string
    # unfolded and unescaped); "unreadable" for a key in another form; nothing when there is no such key
    function flush() {
      if (is_cm && is_name && state != "") {
        print state
        if (state == "ok") for (i = 1; i <= n; i++) print lines[i]
      }
      is_cm = 0; is_name = 0; n = 0; top = ""; in_block = 0; block_indent = -1; in_quoted = 0; state = ""
    }
    # where the quote q that closes the quoted string is in s (0: not on this line)
    function closing(s, q,   i, c) {
      for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (q == "\"" && c == "\\") { i++; continue }
        if (c == q) {
          if (q == "\047" && substr(s, i + 1, 1) == "\047") { i++; continue }
          return i
        }
      }
      return 0
    }
    # a double-quoted line with its escapes decoded (those a config needs; other control characters become ?)
    function unescape(s,   out, i, c) {
      out = ""
      for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (c != "\\") { out = out c; continue }
        c = substr(s, ++i, 1)
        if (c == "n") out = out "\n"
        else if (c == "t") out = out "\t"
        else if (c == "r") out = out "\r"
        else if (c == "x") { out = out "?"; i += 2 }
        else if (c == "u") { out = out "?"; i += 4 }
        else if (c == "U") { out = out "?"; i += 8 }
        else if (index("0abefvNLP_", c)) out = out "?"
        else out = out c # \" \\ \/, and \ before a space or a tab
      }
      return out
    }
    # the quoted string in q_lines[1..q_n] (the text between its quotes), as the lines of the file: a line break
    # and the white space around it fold into one space, empty lines into line breaks, and a double-quoted line
    # that ends in an escaped \ joins the next with nothing between them
    function unquote(   i, l, text, empties, joined, k, m, parts) {
      text = ""; empties = 0; joined = 1
      for (i = 1; i <= q_n; i++) {
        l = q_lines[i]
        if (i > 1) sub(/^[ \t]+/, "", l)
        if (i < q_n) {
          sub(/[ \t]+$/, "", l)
          if (l == "" && i > 1) { empties++; continue }
        }
        if (!joined) { if (empties) while (empties--) text = text "\n"; else text = text " " }
        empties = 0; joined = 0
        if (q == "\"") {
          if (i < q_n && match(l, /\\+$/) && RLENGTH % 2 == 1) { l = substr(l, 1, length(l) - 1); joined = 1 }
          l = unescape(l)
        } else gsub(/\047\047/, "\047", l)
        text = text l
      }
      m = split(text, parts, "\n")
      if (text ~ /\n$/) m-- # the last line break ends the last line
      for (k = 1; k <= m; k++) lines[++n] = parts[k]
      state = "ok"
    }
    BEGIN { flush() }
    /^---/ { if (in_quoted) state = "unreadable"; flush(); next }
    {
      if (in_quoted) {
        q_lines[++q_n] = $0
        if ((c = closing($0, q))) { q_lines[q_n] = substr($0, 1, c - 1); in_quoted = 0; unquote() }
        next
      }
      if (in_block) {
        if ($0 ~ /^[[:space:]]*$/) { lines[++n] = ""; next }
        match($0, /^ */)
        if (RLENGTH > 2) {
          if (block_indent < 0) block_indent = RLENGTH
          lines[++n] = substr($0, block_indent + 1)
          next
        }
        in_block = 0
      }
      if ($0 ~ /^[^ #]/) { top = $0; sub(/:.*/, "", top) }
      if ($0 ~ /^kind:[[:space:]]*ConfigMap[[:space:]]*$/) is_cm = 1
      if (top == "metadata" && $0 ~ /^  name:[[:space:]]*kagenti-webhook-config(-[a-z0-9]+)?[[:space:]]*$/) is_name = 1
      if (top == "data" && $0 ~ /^  config\.yaml:/) {
        rest = $0; sub(/^  config\.yaml:[[:space:]]*/, "", rest)
        n = 0; state = "unreadable"
        if (rest ~ /^[|>]/) { in_block = 1; block_indent = -1; state = "ok" }
        else if (rest ~ /^["\047]/) {
          q = substr(rest, 1, 1); rest = substr(rest, 2); q_n = 1; q_lines[1] = rest
          if ((c = closing(rest, q))) { q_lines[1] = substr(rest, 1, c - 1); unquote() } else in_quoted = 1
        }
      }
    }
    END { if (in_quoted) state = "unreadable"; flush() }
  ' | awk '
    # featureGates.nativeSidecars in that file, comments dropped. Read only in the forms followed here: top-level
    # keys written plainly (no quotes), featureGates as a block of plain keys or a {...} mapping on its own line, the
    # value true or false. Any other form (a JSON document, a quoted key, a {...} mapping over several lines, the
    # value on its own line or tagged) is unknown: serve may well read it as on.
    function value(v) {
      sub(/^[[:space:]]+/, "", v); sub(/[[:space:]]+$/, "", v)
      if (v ~ /^(true|True|TRUE)$/) found = "true"
      else if (v ~ /^(false|False|FALSE)$/) found = "false"
      else other = 1
    }
    NR == 1 { state = $0; next }
    other { next }
    {
      line = $0
      sub(/(^|[[:space:]])#.*/, "", line)
      if (line ~ /^[[:space:]]*$/) next
      match(line, /^ */); indent = RLENGTH
      if (indent == 0) {
        in_gates = 0
        if (!keys && line ~ /^---[[:space:]]*$/) next # the document start, before any key
        # a plain key, then ":" and a space or the end of the line
        if (line !~ /^[A-Za-z_][A-Za-z0-9_-]*[[:space:]]*:([[:space:]]|$)/) { other = 1; next }
        keys++
        key = line; sub(/[[:space:]]*:.*/, "", key)
        if (key != "featureGates") next
        rest = line; sub(/^[^:]*:[[:space:]]*/, "", rest); sub(/[[:space:]]+$/, "", rest)
        if (rest == "") { in_gates = 1; gate_indent = -1; next }
        # a one-line flow mapping of plain keys and values
        inner = substr(rest, 2, length(rest) - 2)
        if (rest !~ /^\{.*\}$/ || inner ~ /[{}"\047]/ || index(inner, "[") || index(inner, "]")) { other = 1; next }
        k = split(inner, pairs, ",")
        for (j = 1; j <= k; j++) if (pairs[j] ~ /^[[:space:]]*nativeSidecars[[:space:]]*:/) { v = pairs[j]; sub(/^[^:]*:/, "", v); value(v) }
        next
      }
      if (!in_gates) next
      if (gate_indent < 0) gate_indent = indent
      if (indent > gate_indent) next # inside the value of another gate
      if (indent < gate_indent || line !~ /^ *[A-Za-z_][A-Za-z0-9_-]*[[:space:]]*:([[:space:]]|$)/) { other = 1; next }
      if (line ~ /^ *nativeSidecars[[:space:]]*:/) { v = line; sub(/^[^:]*:/, "", v); value(v) }
    }
    END { print (state != "ok" || other ? "unknown" : found == "true" ? "true" : "false") }
  '
}

# The nodes' kubelet versions and what they mean for native sidecars: a note for the go-ahead (in $kubelet_note), or
# exit 1 when the config turns native sidecars on and a kubelet is older than 1.28.
kubelet_note=""
check_kubelets() {
  local out
  if ! out="$("${kubectl[@]}" get nodes -o 'jsonpath={range .items[*]}{.metadata.name}{" "}{.status.nodeInfo.kubeletVersion}{"\n"}{end}' 2>&1)"; then
    kubelet_note="preflight: could not read the nodes' kubelet versions: '$KUBECTL get nodes' failed (${out%%$'\n'*}). Native sidecars (kagenti.io/native-sidecars: \"true\", featureGates.nativeSidecars) need kubelet 1.29 or later on every node that runs agents: check the nodes before using them."
    return 0
  fi
  local name version total=0 before28=0 before29=0 oldest="" oldest_node="" oldest_minor=1000
  while read -r name version; do
    [[ "$version" =~ ^v?([0-9]+)\.([0-9]+) ]] || continue
    local major="${BASH_REMATCH[1]}" minor="${BASH_REMATCH[2]}"
    [ "$major" -eq 1 ] || minor=1000 # a major version after 1 is newer than any 1.x
    total=$((total + 1))
    [ "$minor" -lt 29 ] && before29=$((before29 + 1))
    [ "$minor" -lt 28 ] && before28=$((before28 + 1))
    if [ "$minor" -lt "$oldest_minor" ]; then
      oldest_minor="$minor"
      oldest="$version"
      oldest_node="$name"
    fi
  done <<<"$out"
  [ "$total" -gt 0 ] || return 0 # no node yet (or none readable): nothing to say
  # the overlay's config asks for native sidecars on every agent (its render holds the config file)
  local native="" config
  config="$(native_sidecars <<<"$rendered")"
  [ "$config" = "true" ] && native=1
  if [ "$before29" -eq 0 ]; then
    kubelet_note="preflight: oldest kubelet: $oldest (node $oldest_node): native sidecars work on every node."
  elif [ -n "$native" ] && [ "$before28" -gt 0 ]; then
    echo "preflight: manifests/$OVERLAY's config sets featureGates.nativeSidecars: true, but node $oldest_node runs kubelet $oldest ($before28 of $total nodes are older than 1.28). Such a kubelet does not know native sidecars: spiffe-helper runs as an ordinary init container that never exits, so every agent pod scheduled there stays in Init. Upgrade those nodes, or set featureGates.nativeSidecars: false in the config. Nothing was applied." >&2
    exit 1
  else
    kubelet_note="preflight: oldest kubelet: $oldest (node $oldest_node; $before29 of $total nodes are older than 1.29). Native sidecars (kagenti.io/native-sidecars: \"true\", featureGates.nativeSidecars) need kubelet 1.29 or later, or 1.28 with the SidecarContainers feature gate on: without it a 1.28 node fails such a pod (InitContainerRestartPolicyForbidden), and on an older one it stays in Init (spiffe-helper never exits).${native:+ The config turns them on for every agent: make sure each 1.28 node has the gate on.} Upgrade those nodes, keep agents off them, or leave native sidecars off."
    if [ "$config" = "unknown" ]; then
      local risk="make sure each 1.28 node has the SidecarContainers gate on"
      [ "$before28" -eq 0 ] || risk="every agent pod scheduled on a node older than 1.28 stays in Init"
      kubelet_note+=$'\n'"preflight: could not read featureGates.nativeSidecars from manifests/$OVERLAY's config (the config.yaml of ConfigMap kagenti-webhook-config: not in the render, or in a form this script does not read), so whether the config turns native sidecars on is unknown, not off: if it does, $risk. Check the config's featureGates before deploying."
    fi
  fi
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
  go_ahead="preflight: Kubernetes $major.$minor: ok"
elif [ "$minor" -ge 28 ]; then
  go_ahead="preflight: Kubernetes 1.$minor: webhook matchConditions are beta here (feature gate AdmissionWebhookMatchConditions, on by default); installing. If your cluster turned that gate off, uninstall now: every ConfigMap and workload write would be sent to the webhook."
else
  echo "preflight: Kubernetes 1.$minor is too old: the webhooks need matchConditions (1.28 with its default feature gates, GA in 1.30). Without them every ConfigMap and workload write in the cluster would wait on this webhook, and fail when it is down. Nothing was applied." >&2
  exit 1
fi
check_cert_manager
check_kubelets
[ -z "$kubelet_note" ] || echo "$kubelet_note"
echo "$go_ahead"
