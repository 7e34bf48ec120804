#!/usr/bin/env bash
# Builds weft's container image from the Dockerfile with podman, offline but for Debian's
# packages and npm's registry (docs/image.md):
#  1. the Debian base the Dockerfile's FROM names, made with debootstrap if podman lacks it
#     (scripts/image/debian-base.sh; cached in the state dir);
#  2. the context's node_modules (npm ci) if missing or older than the lockfile: the image's
#     Node 24 and what the build stage bundles;
#  3. podman build (its layer cache makes an unchanged rebuild take seconds), then the size.
#
#   scripts/build-image.sh [--tag REF]
#
# REF defaults to the manifests' image, ghcr.io/weft-net/weft:<package.json version>.
# WEFT_IMAGE_STATE (default /var/cache/weft/image) holds the base's root filesystem.
# Prints the image's size last, as "image REF: N MB (B bytes)".
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' package.json)
tag="ghcr.io/weft-net/weft:$version"
while [ $# -gt 0 ]; do
  case $1 in
    --tag) tag=${2:?--tag needs an image reference}; shift 2 ;;
    --tag=*) tag=${1#--tag=}; shift ;;
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-image: unknown argument $1 (usage: scripts/build-image.sh [--tag REF])" >&2; exit 2 ;;
  esac
done
command -v podman >/dev/null || { echo "build-image: podman is not installed (apt-get install podman)" >&2; exit 1; }

state=${WEFT_IMAGE_STATE:-/var/cache/weft/image}
mkdir -p "$state"
base=$(sed -n 's/^ARG DEBIAN_IMAGE=//p' Dockerfile)
# One build at a time: two would debootstrap twice and confuse the cache bookkeeping below.
exec 9>"$state/lock"
flock 9
scripts/image/debian-base.sh "$base" "$state"

if [ ! -x node_modules/node/bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

before=$(podman images --all --quiet --no-trunc | sort -u)
# --network host: the RUN steps reach the Debian mirror through the machine's own network,
# and podman creates no bridge or NAT rules in the host's namespace for them.
podman build --pull=never --network host --label "org.opencontainers.image.version=$version" -t "$tag" -f Dockerfile . 2>&1 |
  tee "$state/build.log"

# podman keeps every step's image as its layer cache, and a change of the sources leaves the
# previous build's steps unused for good. Those of the previous run that this one neither made
# nor used, and that no name or child image holds, are removed; the rest is this run's cache.
kept=$( {
  comm -13 <(echo "$before") <(podman images --all --quiet --no-trunc | sort -u)
  sed -n 's/^--> Using cache \([0-9a-f]\{64\}\)$/sha256:\1/p' "$state/build.log"
} | sort -u)
if [ -f "$state/build-images" ]; then
  while IFS= read -r id; do
    if [ -z "$id" ] || grep -qxF "$id" <<<"$kept"; then continue; fi
    [ "$(podman image inspect --format '{{len .RepoTags}}' "$id" 2>/dev/null || echo 1)" = 0 ] || continue
    podman image rm "$id" >/dev/null 2>&1 || true
  done <"$state/build-images"
fi
echo "$kept" >"$state/build-images"

bytes=$(podman image inspect --format '{{.Size}}' "$tag")
echo "image $tag: $(( (bytes + 500000) / 1000000 )) MB ($bytes bytes)"
