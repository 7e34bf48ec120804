// A tiny container image, built offline from Debian's busybox-static (docs/cni-spec-notes.md §3.1): the static
// /bin/busybox plus applet symlinks. As a plain rootfs tarball for `podman import`, or as an OCI
// image-layout archive for `ctr images import`.
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mustRun } from './sandbox.ts';

export const BUSYBOX = '/bin/busybox';
const APPLETS = ['sh', 'ip', 'ping', 'sleep', 'cat', 'ls', 'hostname'];

/** <dir>/rootfs: bin/busybox, its applets, and the empty directories a runtime mounts over. */
export function busyboxRootfs(dir: string): string {
  const root = join(dir, 'rootfs');
  for (const d of ['bin', 'proc', 'sys', 'dev', 'etc', 'tmp', 'run']) mkdirSync(join(root, d), { recursive: true });
  copyFileSync(BUSYBOX, join(root, 'bin', 'busybox'));
  for (const a of APPLETS) symlinkSync('busybox', join(root, 'bin', a));
  writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/:/bin/sh\n');
  writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\n');
  return root;
}

/** The rootfs as a tarball (for `podman import --change CMD=/bin/sh <tar> <ref>`). */
export async function busyboxRootfsTar(dir: string): Promise<string> {
  const root = busyboxRootfs(dir);
  const tar = join(dir, 'busybox-rootfs.tar');
  await mustRun(['tar', '--numeric-owner', '--owner=0', '--group=0', '-C', root, '-cf', tar, '.']);
  return tar;
}

const OCI_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x' };

/**
 * An OCI image-layout archive holding the busybox rootfs as one uncompressed layer, named `ref`
 * (annotation io.containerd.image.name, which `ctr images import` uses as the image name).
 */
export async function busyboxOciArchive(dir: string, ref: string): Promise<string> {
  const layout = join(dir, 'oci');
  const blobs = join(layout, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const layerTar = await busyboxRootfsTar(dir);
  const blob = (data: Buffer): { digest: string; size: number } => {
    const hex = createHash('sha256').update(data).digest('hex');
    writeFileSync(join(blobs, hex), data);
    return { digest: `sha256:${hex}`, size: data.length };
  };
  const layer = blob(readFileSync(layerTar));
  const config = blob(Buffer.from(JSON.stringify({
    architecture: OCI_ARCH[process.arch] ?? process.arch,
    os: 'linux',
    config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] },
    rootfs: { type: 'layers', diff_ids: [layer.digest] },
  })));
  const manifest = blob(Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
  })));
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(layout, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      ...manifest,
      annotations: { 'io.containerd.image.name': ref, 'org.opencontainers.image.ref.name': ref.split(':').pop() },
    }],
  }));
  const archive = join(dir, 'busybox-oci.tar');
  await mustRun(['tar', '--numeric-owner', '--owner=0', '--group=0', '-C', layout, '-cf', archive, '.']);
  if (statSync(archive).size === 0) throw new Error(`empty OCI archive ${archive}`);
  return archive;
}
