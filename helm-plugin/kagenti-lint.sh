#!/bin/sh
# Helm post-renderer: the rendered manifests on stdin go to stdout unchanged when they pass
# `kagenti-webhook lint`; otherwise lint's report goes to stderr, the exit code is not 0 and Helm stops. Helm 4 does
# not show a post-renderer plugin's stderr (Helm 3 only on failure): to read the findings, run
# `helm template ... | kagenti-webhook lint -`.
# Arguments, if any, are lint's flags; else KAGENTI_LINT_FLAGS (split on spaces), default --external-issuer.
# Objects without a namespace are linted in the release's: Helm sets HELM_NAMESPACE for its plugins, passed on
# here as --namespace (a -n/--namespace among the flags comes later and wins).
if [ "$#" -eq 0 ]; then
  # shellcheck disable=SC2086 # the flags are meant to be split
  set -- ${KAGENTI_LINT_FLAGS:---external-issuer}
fi
exec kagenti-webhook lint --post-renderer ${HELM_NAMESPACE:+--namespace "$HELM_NAMESPACE"} "$@"
