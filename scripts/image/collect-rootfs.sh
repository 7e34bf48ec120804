#!/bin/bash
# Runs inside the Dockerfile's `rootfs` stage: copies the programs the image runs, and the
# shared libraries they load, into a root filesystem that the final stage copies FROM scratch.
# Nothing else comes along: no package manager, no coreutils, no perl, no docs, no locales.
#
#   collect-rootfs.sh OUT PATH...
#
# Each PATH (a file, a symlink chain, or a directory) is copied to the same path under OUT,
# with what `ldd` says it loads. Then the iptables/nft command names are linked, the few /etc
# files the tools read are added, and OUT's ld.so.cache is built.
set -euo pipefail
out=$1
shift

# Debian's merged /usr: /bin, /sbin, /lib and /lib64 are links into /usr, as on the base image.
mkdir -p "$out"/usr/{bin,sbin,lib,lib64} "$out"/{etc,tmp,run,root,var}
for d in bin sbin lib lib64; do ln -sfn "usr/$d" "$out/$d"; done
ln -sfn ../run "$out/var/run"
chmod 1777 "$out/tmp"
chmod 0700 "$out/root"

# One path, and every link on the way to its target (libfoo.so.1 -> libfoo.so.1.2.3).
copy_path() {
  local p=$1
  for _ in 1 2 3 4 5 6 7 8; do
    if [ -d "$p" ] && [ ! -L "$p" ]; then
      mkdir -p "$out$p"
      cp -a "$p/." "$out$p/"
    elif [ ! -e "$out$p" ] && [ ! -L "$out$p" ]; then
      mkdir -p "$out$(dirname "$p")"
      cp -a "$p" "$out$p"
    fi
    [ -L "$p" ] || return 0
    local target
    target=$(readlink "$p")
    case $target in /*) p=$target ;; *) p=$(dirname "$p")/$target ;; esac
  done
  echo "collect-rootfs: too many links at $1" >&2
  exit 1
}

# What a dynamically linked file loads (nothing for static ones and scripts).
libraries() {
  ldd "$1" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' || true
}

copy_with_libraries() {
  copy_path "$1"
  local lib
  for lib in $(libraries "$1"); do copy_path "$lib"; done
}

for path in "$@"; do
  if [ -d "$path" ] && [ ! -L "$path" ]; then
    copy_path "$path"
    while IFS= read -r -d '' f; do copy_with_libraries "$f"; done < <(find "$path" -type f -print0)
  else
    copy_with_libraries "$path"
  fi
done

# The command names weft runs (src/firewall): `iptables` is the nf_tables build, as Debian's
# default alternative; the -nft and -legacy names pick a build explicitly (detection, teardown).
# /usr/lib/weft/iptables-legacy holds the plain names for the legacy build: the launcher puts
# it first on PATH when the host uses legacy iptables.
mkdir -p "$out/usr/lib/weft/iptables-legacy"
for family in iptables ip6tables; do
  for tool in "" -save -restore; do
    ln -sfn xtables-nft-multi "$out/usr/sbin/$family$tool"
    ln -sfn xtables-nft-multi "$out/usr/sbin/$family-nft$tool"
    ln -sfn xtables-legacy-multi "$out/usr/sbin/$family-legacy$tool"
    ln -sfn /usr/sbin/xtables-legacy-multi "$out/usr/lib/weft/iptables-legacy/$family$tool"
  done
done
ln -sfn dash "$out/usr/bin/sh"

# Name lookups (etcd endpoints by name), protocol names for iptables and nft, and root.
for f in /etc/nsswitch.conf /etc/protocols /etc/services /etc/ethertypes /etc/ld.so.conf /etc/ld.so.conf.d; do
  [ -e "$f" ] && copy_path "$f"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$out/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$out/etc/group"
ldconfig -r "$out"
