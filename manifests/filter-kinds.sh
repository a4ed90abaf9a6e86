#!/usr/bin/env bash
# Filters a rendered multi-document stream (what `kubectl kustomize` prints) from stdin to stdout by kind:
#   filter-kinds.sh keep KIND...   only the documents of those kinds
#   filter-kinds.sh drop KIND...   every document but those
# `make deploy` applies the webhook configurations apart from the rest: last, after the rollout, on a first install;
# first on an upgrade (a new caBundle before new pods serve);
# `make undeploy` deletes everything but the Namespace (Kagenti's own chart installs into it too).
# A document's kind is its top-level `kind:` line, as kustomize writes it (unquoted, at column 0).
set -euo pipefail

usage() {
  echo "filter-kinds.sh: usage: filter-kinds.sh keep|drop KIND... (reads a multi-document YAML stream on stdin)" >&2
  exit 2
}
[ "$#" -ge 2 ] || usage
mode="$1"
shift
case "$mode" in keep | drop) ;; *) usage ;; esac

awk -v mode="$mode" -v kinds=" $* " '
  function flush() {
    if (doc != "" && (mode == "keep") == (kind != "" && index(kinds, " " kind " ") > 0)) printf "---\n%s", doc
    doc = ""
    kind = ""
  }
  /^---[ \t]*$/ { flush(); next }
  /^kind:[ \t]/ { kind = $2 }
  { doc = doc $0 "\n" }
  END { flush() }
'
