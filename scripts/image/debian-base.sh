#!/usr/bin/env bash
# Makes the Debian base image the Dockerfile's FROM names, on a machine that cannot pull it
# (no registry but Debian's packages): debootstrap's minbase variant of bookworm, trimmed as
# Debian's official -slim images are (no docs but copyright files, no man pages, no locales),
# with the official images' apt sources, imported into podman under the official name.
#
#   scripts/image/debian-base.sh IMAGE STATE_DIR
#
# The root filesystem is cached as STATE_DIR/<name>.tar, so a second machine state (podman's
# storage reset) imports it again without debootstrap. Does nothing if podman has IMAGE.
# The mirrors are the machine's (/etc/apt/sources.list(.d)), or $WEFT_DEBIAN_MIRROR and
# $WEFT_DEBIAN_SECURITY_MIRROR.
set -euo pipefail
image=$1
state=$2
suite=bookworm

if podman image exists "$image"; then exit 0; fi
mkdir -p "$state"
tarball="$state/debian-$suite-slim.tar"

# The machine's own Debian mirrors (deb822 "URIs:" or one-line "deb URL SUITE" form): the
# first URL ending in /$1, else Debian's own.
mirror() {
  local found
  found=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '/^URIs:/ { print $2 } /^deb / { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' |
    grep -E "/$1/?\$" | head -n 1 || true)
  echo "${found:-http://deb.debian.org/$1}"
}

if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || { echo "debian-base: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
  url=${WEFT_DEBIAN_MIRROR:-$(mirror debian)}
  security=${WEFT_DEBIAN_SECURITY_MIRROR:-$(mirror debian-security)}
  root=$(mktemp -d "$state/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  echo "debian-base: debootstrap --variant=minbase $suite from $url (cached in $tarball)"
  if ! debootstrap --variant=minbase "$suite" "$root" "$url" >"$state/debootstrap.log" 2>&1; then
    tail -n 20 "$state/debootstrap.log" >&2
    echo "debian-base: debootstrap failed; its log is $state/debootstrap.log" >&2
    exit 1
  fi
  # As the official images: later installs skip docs too, apt keeps no .debs, and the apt
  # sources are Debian's own (the machine's mirror for the main archive).
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/info/*
path-exclude /usr/share/man/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
EOF
  printf 'APT::Install-Recommends "false";\n' >"$root/etc/apt/apt.conf.d/docker-no-recommends"
  printf 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb || true"; };\n' >"$root/etc/apt/apt.conf.d/docker-clean"
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $url
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$root"/usr/share/{man,info,locale,groff,lintian}/* "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root/etc/resolv.conf" "$root/etc/hostname"
  tar --numeric-owner -C "$root" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
fi

podman import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["bash"]' \
  "$tarball" "$image" >/dev/null
echo "debian-base: imported $image from $tarball"
