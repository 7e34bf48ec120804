# weft's container image: the node agent (from its bundle, on Node 24), the native addon, the
# static CNI front end, the reference CNI plugins the conflist chains (portmap, loopback), and
# the iptables (nft and legacy) and nftables userspace the firewall module runs. See
# docs/image.md. Build it with scripts/build-image.sh, or anywhere Docker runs:
#
#   npm ci && docker build -t weft .
#
# The context must have node_modules from `npm ci` on linux/amd64: it brings the pinned Node 24,
# esbuild and the agent's dependencies, which the build stage bundles (docs/image.md says why
# the image build does not run npm itself). Everything else is built or installed here.
ARG DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim

# ---- build: the addons, the CNI front end, the fast path's BPF object and the bundle, against the image's glibc ----
FROM ${DEBIAN_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev binutils clang llvm libbpf-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The lockfile is copied so that a change of the dependencies (node_modules is only mounted,
# to keep its 300 MB out of the layers) invalidates the build step's cache.
COPY package.json package-lock.json ./
COPY scripts/build-native.ts scripts/
COPY src src
# WEFT_CNI_BUILD_FALLBACK=none: the front end is installed on hosts that have no checkout, so
# with the agent down it answers a CNI error (code 11) instead of running a standalone plugin.
RUN --mount=type=bind,source=node_modules,target=/src/node_modules \
    WEFT_CNI_BUILD_FALLBACK=none node_modules/node/bin/node scripts/build-native.ts \
 && mkdir -p /out/usr/local/bin /out/opt/weft/build \
 && cp -L node_modules/node/bin/node /out/usr/local/bin/node \
 && strip --strip-all /out/usr/local/bin/node \
 && cp -a build/. /out/opt/weft/build/ \
 && strip --strip-unneeded /out/opt/weft/build/weft_native.node /out/opt/weft/build/weft_bpf.node \
 && strip --strip-all /out/opt/weft/build/weft-cni \
 && llvm-strip -g /out/opt/weft/build/fastpath.bpf.o

# ---- rootfs: Debian's tools, then only the files the image runs and the libraries they load ----
# (libbpf1 so that collect-rootfs finds what weft_bpf.node loads: libbpf, libelf, libz.)
FROM ${DEBIAN_IMAGE} AS rootfs
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables nftables containernetworking-plugins iputils-ping libbpf1 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /
COPY scripts/image/weft /usr/local/bin/weft
COPY scripts/image/collect-rootfs.sh /usr/local/sbin/collect-rootfs
RUN collect-rootfs /rootfs \
      /usr/local/bin/weft /usr/local/bin/node /opt/weft/build \
      /usr/bin/dash \
      /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi /usr/lib/x86_64-linux-gnu/xtables \
      /usr/sbin/nft \
      /usr/lib/cni/portmap /usr/lib/cni/loopback \
      /usr/bin/ping

# ---- the image ----
FROM scratch
COPY --from=rootfs /rootfs/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin
LABEL org.opencontainers.image.title="weft" \
      org.opencontainers.image.description="weft node agent, CNI front end and reference plugins" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/usr/local/bin/weft"]
CMD ["agent"]
