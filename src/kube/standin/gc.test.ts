import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api, type V1Lease, type V1Node } from '@kubernetes/client-node';
import { startStandinWithClient, waitFor } from '../testing.ts';

const ownedLease = (name: string, ...owners: V1Node[]): V1Lease => ({
  metadata: {
    name, labels: { 'weft.dev/claim': 'subnet' },
    ownerReferences: owners.map((n) => ({ apiVersion: 'v1', kind: 'Node', name: n.metadata?.name ?? '', uid: n.metadata?.uid ?? '', blockOwnerDeletion: false })),
  },
  spec: { holderIdentity: owners[0]?.metadata?.name ?? '' },
});

test('GC: deleting a Node removes the Leases it owns (by uid); a re-created same-name Node does not own the old Lease', async (t) => {
  const f = await startStandinWithClient();
  t.after(() => f.close());
  const core = f.client.config.makeApiClient(CoreV1Api);
  const oldNode = await core.createNode({ body: { metadata: { name: 'n1' } } });
  const other = await core.createNode({ body: { metadata: { name: 'n2' } } });
  assert.notEqual(await f.client.createLease('weft', ownedLease('old-claim', oldNode)), 'exists');
  assert.notEqual(await f.client.createLease('weft', ownedLease('shared', oldNode, other)), 'exists');
  await core.deleteNode({ name: 'n1' });
  const newNode = await core.createNode({ body: { metadata: { name: 'n1' } } });
  assert.notEqual(newNode.metadata?.uid, oldNode.metadata?.uid);
  assert.notEqual(await f.client.createLease('weft', ownedLease('new-claim', newNode)), 'exists');
  await waitFor('the old claim collected', async () => (await f.client.getLease('weft', 'old-claim')) === null);
  assert.ok(await f.client.getLease('weft', 'new-claim'), 'owned by the live Node');
  await waitFor('the gone owner dropped from the shared lease', async () => (await f.client.getLease('weft', 'shared'))?.metadata?.ownerReferences?.length === 1);
  assert.equal((await f.client.getLease('weft', 'shared'))?.metadata?.ownerReferences?.[0]?.uid, other.metadata?.uid);
  assert.equal(f.standin.collectGarbage(), 0);
});

test('GC: without it (gcDelayMs < 0) orphans stay until collectGarbage(); a namespaced owner counts only in its own namespace', async (t) => {
  const f = await startStandinWithClient({ gcDelayMs: -1 });
  t.after(() => f.close());
  const node = f.standin.addNode('n1') as V1Node;
  assert.notEqual(await f.client.createLease('weft', ownedLease('claim', node)), 'exists');
  f.standin.delete('nodes', undefined, 'n1');
  const owner = f.standin.create('configmaps', { metadata: { name: 'owner', namespace: 'default' } }) as { metadata: { uid: string } };
  f.standin.create('configmaps', { metadata: { name: 'elsewhere', namespace: 'weft', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata.uid }] } });
  f.standin.create('configmaps', { metadata: { name: 'beside', namespace: 'default', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata.uid }] } });
  assert.ok(await f.client.getLease('weft', 'claim'));
  assert.equal(f.standin.collectGarbage(), 2);
  assert.equal(await f.client.getLease('weft', 'claim'), null);
  assert.equal(f.standin.get('configmaps', 'weft', 'elsewhere'), undefined);
  assert.ok(f.standin.get('configmaps', 'default', 'beside'));
});
