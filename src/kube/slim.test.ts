import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Node } from '@kubernetes/client-node';
import { Reflector } from './reflector.ts';
import { NODES_PATH, slimFor } from './slim.ts';
import { memoryLogger, startStandinWithClient, waitFor } from './testing.ts';

test('a Node reflector keeps only what weft reads: name, uid, annotations, podCIDR, addresses (listed and watched alike)', async (t) => {
  const f = await startStandinWithClient();
  t.after(() => f.close());
  const images = Array.from({ length: 50 }, (_, i) => ({ names: [`registry.example/image-${i}@sha256:${'a'.repeat(64)}`], sizeBytes: 1e8 }));
  const fat = (name: string) => {
    const n = f.standin.addNode(name, { internalIP: '192.0.2.7', podCIDR: '10.16.7.0/24' }) as V1Node;
    f.standin.update('nodes', { ...n, metadata: { ...n.metadata, annotations: { 'flannel.alpha.coreos.com/public-ip': '192.0.2.7', 'kubectl.kubernetes.io/last-applied-configuration': 'x'.repeat(20_000) } }, status: { ...n.status, images } });
  };
  fat('listed');
  const r = new Reflector<V1Node>({ client: f.client, path: NODES_PATH, list: () => f.client.listNodes(), log: memoryLogger().log, slim: slimFor(NODES_PATH) });
  t.after(() => r.stop());
  let last: ReadonlyMap<string, V1Node> = new Map();
  r.start({ onSync: (m) => void (last = m), onError: () => undefined, onHealthy: () => undefined });
  await waitFor('the list', () => last.has('listed'));
  fat('watched');
  await waitFor('the watch event', () => last.has('watched'));
  for (const name of ['listed', 'watched']) {
    const n = last.get(name)!;
    assert.equal(n.metadata?.name, name);
    assert.equal(typeof n.metadata?.uid, 'string');
    assert.equal(n.metadata?.annotations?.['flannel.alpha.coreos.com/public-ip'], '192.0.2.7');
    assert.equal(n.spec?.podCIDR, '10.16.7.0/24');
    assert.deepEqual(n.status?.addresses?.find((a) => a.type === 'InternalIP')?.address, '192.0.2.7');
    assert.equal(n.status?.images, undefined, 'the image list is not kept');
    assert.equal(n.metadata?.annotations?.['kubectl.kubernetes.io/last-applied-configuration'], undefined, 'nor a long annotation');
    assert.ok(JSON.stringify(n).length < 600, `${JSON.stringify(n).length} bytes kept`);
  }
  assert.equal(slimFor('/apis/coordination.k8s.io/v1/namespaces/weft/leases'), undefined, 'Leases are kept whole (they are read back for updates)');
});
