// Background garbage collection by ownerReference uid, as kube-controller-manager does it:
// a dependent whose owners are all gone is deleted; one that keeps some owners loses the
// references to the gone ones. Owners are matched by uid only, so an owner deleted and
// re-created under the same name is a different owner. A namespaced owner counts only in
// the dependent's own namespace; a cluster-scoped dependent cannot have namespaced owners.
import { RESOURCES, type StandinResource } from './resources.ts';
import type { Store } from './store.ts';
import type { KObject } from './validate.ts';

interface Owner { namespaced: boolean; namespace: string | undefined }

function liveOwners(store: Store): Map<string, Owner> {
  const owners = new Map<string, Owner>();
  for (const [r, o] of store.entries()) {
    if (o.metadata.uid !== undefined) owners.set(o.metadata.uid, { namespaced: RESOURCES[r].namespaced, namespace: o.metadata.namespace });
  }
  return owners;
}

function ownerPresent(owners: Map<string, Owner>, uid: string, dependent: Readonly<KObject>, dependentNamespaced: boolean): boolean {
  const owner = owners.get(uid);
  if (owner === undefined) return false;
  if (!owner.namespaced) return true;
  return dependentNamespaced && owner.namespace === dependent.metadata.namespace;
}

/** One full pass, repeated until nothing changes (a deletion may orphan further dependents). Returns deletions. */
export function collectGarbage(store: Store): number {
  let deleted = 0;
  for (;;) {
    const owners = liveOwners(store);
    const work: { r: StandinResource; o: Readonly<KObject>; keep: NonNullable<KObject['metadata']['ownerReferences']> }[] = [];
    for (const [r, o] of store.entries()) {
      const refs = o.metadata.ownerReferences;
      if (refs === undefined || refs.length === 0) continue;
      const keep = refs.filter((ref) => ownerPresent(owners, ref.uid, o, RESOURCES[r].namespaced));
      if (keep.length < refs.length) work.push({ r, o, keep });
    }
    if (work.length === 0) return deleted;
    for (const { r, o, keep } of work) {
      if (keep.length === 0) {
        store.remove(r, o.metadata.namespace, o.metadata.name, { uid: o.metadata.uid });
        deleted++;
      } else {
        const next = structuredClone(o) as KObject;
        next.metadata.ownerReferences = keep;
        store.replace(r, next, o.metadata.resourceVersion);
      }
    }
  }
}
