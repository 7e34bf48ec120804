#!/usr/bin/env bash
# What takes the space in weft's image: its files (from `podman export` of a container that is
# created, never started), summed by what they are for. docs/image.md and BENCHMARKS.md quote it.
#
#   scripts/image/sizes.sh [REF]      (default: the tag scripts/build-image.sh builds)
set -euo pipefail
cd "$(dirname "$0")/../.."
ref=${1:-ghcr.io/weft-net/weft:$(sed -n 's/^  "version": "\(.*\)",$/\1/p' package.json)}

container=$(podman create --network none "$ref")
trap 'podman rm --force "$container" >/dev/null' EXIT
echo "image $ref: $(podman image inspect --format '{{.Size}}' "$ref") bytes as podman counts it"
podman export "$container" | tar -tvf - | awk '
  $1 ~ /^-/ {
    size = $3; path = $6; sub(/^\.?\//, "/", path); if (path !~ /^\//) path = "/" path
    if (path == "/usr/local/bin/node") group = "Node 24 (stripped)"
    else if (path ~ /^\/opt\/weft\/build\/.*\.m?js$/) group = "agent bundle (weft.mjs)"
    else if (path ~ /^\/opt\/weft\/build\//) group = "native addon + static CNI front end"
    else if (path ~ /^\/usr\/lib\/cni\//) group = "CNI plugins (portmap, loopback)"
    else if (path ~ /(xtables|nft|libnftables|libnftnl|libmnl|libip[46]tc|libnetfilter|libnfnetlink|libjansson|libgmp|libedit|libtinfo|libbsd|libmd)/) group = "iptables + nftables (binaries, extensions, their libraries)"
    else if (path ~ /(libc\.so|libm\.so|ld-linux|libstdc\+\+|libgcc_s|libdl|libpthread)/) group = "C and C++ runtime (glibc, libstdc++)"
    else group = "the rest (dash, launcher, /etc, ld.so.cache)"
    bytes[group] += size; files[group]++; total += size
  }
  END {
    for (g in bytes) printf "%10.1f MB  %4d files  %s\n", bytes[g] / 1e6, files[g], g | "sort -rn"
    close("sort -rn")
    printf "%10.1f MB  total of regular files\n", total / 1e6
  }'
