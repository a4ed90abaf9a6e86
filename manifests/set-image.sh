#!/usr/bin/env bash
# Sets the webhook's image in a rendered stream (what `kubectl kustomize` prints), stdin to stdout, for
# `make manifests` and `make deploy`:
#   set-image.sh OVERLAY IMAGE            the image is the Makefile's default: only the base's own reference
#                                         (manifests/base/deployment.yaml) becomes IMAGE; an image an overlay sets
#                                         with kustomize `images:` (newTag, digest) is left as it is, so make
#                                         deploys what `kubectl apply -k` would
#   set-image.sh OVERLAY IMAGE SETTING    IMG=... or VERSION=... was given (SETTING says which, as the user wrote
#                                         it): every reference to ghcr.io/kagenti/kagenti-webhook, by tag or by
#                                         digest, becomes IMAGE; one the overlay set is named on stderr, and when
#                                         the overlay renamed the image (images: newName), nothing is replaced
#                                         and stderr says IMAGE was not applied
#   set-image.sh --check IMAGE [SETTING]  only checks IMAGE (make deploy, before it touches the cluster)
# A reference is the value of an `image:` line, as kustomize writes it (unquoted, alone on its line).
set -euo pipefail

usage() {
  echo "set-image.sh: usage: set-image.sh OVERLAY IMAGE [IMG=...|VERSION=...] (reads a multi-document YAML stream on stdin)" >&2
  exit 2
}
[ "$#" -ge 2 ] && [ "$#" -le 3 ] && [ -n "$2" ] || usage
overlay="$1"
image="$2"
setting="${3:-}"

# IMAGE must be an image reference as the container runtime reads it (name[:tag][@algorithm:hex]): a space, a quote,
# an uppercase repository or an empty tag would render a Deployment whose pods never pull (InvalidImageName).
component='[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*'
label='[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?'
domain="(${label}(\.${label})*|\[[0-9A-Fa-f:]+\])(:[0-9]+)?"
reference="^(${domain}/)?${component}(/${component})*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@[a-z0-9]+([+._-][a-z0-9]+)*:[0-9a-fA-F]{32,})?\$"
default_source="package.json's version"
if ! [[ "$image" =~ $reference ]] || [ "${#image}" -gt 255 ]; then
  printf "make: the image '%s' (from %s) is not a valid image reference: the Deployment would name an image no node can pull (InvalidImageName). Fix: give registry/repository[:tag][@sha256:<64 hex>], the repository in lowercase, no spaces or quotes, at most 255 characters; nothing was %s\n" "$image" "${setting:-$default_source}" "$([ "$overlay" = --check ] && echo done || echo printed)" >&2
  exit 2
fi
[ "$overlay" = "--check" ] && exit 0

repo="ghcr.io/kagenti/kagenti-webhook"
base_file="$(dirname "$0")/base/deployment.yaml"
base="$(sed -n "s|^[[:space:]]*image: \\(${repo//./\\.}:[^[:space:]]*\\)\$|\\1|p" "$base_file" | head -n 1)"
if [ -z "$base" ]; then
  echo "set-image.sh: $base_file names no image $repo:<tag>, so the base's default reference is unknown; nothing was printed" >&2
  exit 2
fi

awk -v overlay="$overlay" -v image="$image" -v setting="$setting" -v base="$base" -v repo="$repo" '
  function ours(ref) { return index(ref, repo ":") == 1 || index(ref, repo "@") == 1 }
  match($0, /^[ \t]*(- )?image: /) {
    prefix = substr($0, 1, RLENGTH)
    ref = substr($0, RLENGTH + 1)
    if (ref == base || (setting != "" && ours(ref))) {
      if (ours(ref)) applied = 1
      if (ref != base && ref != image && !(ref in named)) {
        named[ref] = 1
        printf "make: %s replaces %s, the webhook image manifests/%s sets (kustomize images:), with %s (without IMG= and VERSION=, make keeps the overlay'"'"'s image)\n", setting, ref, overlay, image > "/dev/stderr"
      }
      print prefix image
      next
    }
    if (ref == image) { applied = 1; print; next }
    if (!(ref in others)) { others[ref] = 1; other = other (other == "" ? "" : ", ") ref }
  }
  { print }
  END {
    if (setting != "" && !applied)
      printf "make: warning: %s is not applied: manifests/%s names no image %s (it renders %s: its kustomize images: newName renames it), so the render keeps the image the overlay names, as kubectl apply -k would. Fix: set that overlay'"'"'s images: to %s (newName, newTag or digest), or drop its newName.\n", setting, overlay, repo, (other == "" ? "no image" : other), image > "/dev/stderr"
  }
'
