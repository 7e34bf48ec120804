import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HOST_PROC_SYS_NET, writeNetSysctl } from './pod-link.ts';
import { manifestObjects, resolveManifestOptions } from '../manifests/index.ts';
import { errnoCode } from '../errors.ts';

const erofs = (): Error => Object.assign(new Error('read-only file system'), { code: 'EROFS' });

test('a /proc/sys/net knob is written in place, or through the node\'s /proc/sys/net where /proc/sys is read-only', (t) => {
  const host = mkdtempSync(join(tmpdir(), 'weft-proc-sys-net-'));
  t.after(() => rmSync(host, { recursive: true, force: true }));
  const tried: string[] = [];
  writeNetSysctl('/proc/sys/net/ipv4/ip_forward', (p) => void tried.push(p), host);
  assert.deepEqual(tried, ['/proc/sys/net/ipv4/ip_forward']);

  tried.length = 0;
  writeNetSysctl('/proc/sys/net/ipv4/conf/eth0/arp_notify', (p) => {
    tried.push(p);
    if (p.startsWith('/proc/')) throw erofs();
  }, host);
  assert.deepEqual(tried, ['/proc/sys/net/ipv4/conf/eth0/arp_notify', `${host}/ipv4/conf/eth0/arp_notify`]);
});

test('without the mount, a read-only /proc/sys says what to mount; other errors pass through unchanged', () => {
  assert.throws(() => writeNetSysctl('/proc/sys/net/ipv4/ip_forward', () => { throw erofs(); }, '/nonexistent/proc/sys/net'),
    (e) => errnoCode(e) === 'EROFS' && /mount the node's \/proc\/sys\/net at \/nonexistent\/proc\/sys\/net/.test((e as Error).message));
  const enoent = Object.assign(new Error('gone'), { code: 'ENOENT' });
  assert.throws(() => writeNetSysctl('/proc/sys/net/ipv6/conf/eth0/accept_dad', () => { throw enoent; }), (e) => e === enoent);
  // Only /proc/sys/net knobs are rerouted (only they are per network namespace).
  assert.throws(() => writeNetSysctl('/proc/sys/kernel/x', () => { throw erofs(); }, '/'), (e) => errnoCode(e) === 'EROFS' && (e as Error).message === 'read-only file system');
});

test("weft's manifests mount the node's /proc/sys/net where the CNI server looks for it", () => {
  for (const mode of ['kube', 'mesh']) {
    const ds = manifestObjects(resolveManifestOptions({ mode })).find((o) => o.kind === 'DaemonSet') as unknown as {
      spec: { template: { spec: { containers: { name: string; volumeMounts: { name: string; mountPath: string }[] }[]; volumes: { name: string; hostPath?: { path: string } }[] } } };
    };
    const pod = ds.spec.template.spec;
    const mount = pod.containers.find((c) => c.name === 'weft')?.volumeMounts.find((m) => m.mountPath === HOST_PROC_SYS_NET);
    assert.ok(mount, `${mode}: nothing mounted at ${HOST_PROC_SYS_NET}`);
    assert.equal(pod.volumes.find((v) => v.name === mount.name)?.hostPath?.path, '/proc/sys/net');
  }
});
