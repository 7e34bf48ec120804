// Where a big reconcile's time goes: the dumps, the plan and diff, the batch apply, from an
// empty kernel and again in sync, through the real backend, in a scratch namespace.
//   node benchmarks/eventloop/profile.ts [--peers 5000]
// (sliceSize Infinity is the old one-piece pass; 256 the default slices.)
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { HostGwBackend, VxlanBackend, type Backend } from '../../src/dataplane/index.ts';
import { Rtnetlink } from '../../src/netlink/index.ts';
import { NETWORK, OWN_SUBNET, scratchNode, syntheticPeers, UNDERLAY_IP } from './lab.ts';

const { values } = parseArgs({ options: { peers: { type: 'string', default: '5000' } } });
const count = Number(values.peers);

/** Wraps the instance's kernel calls so each one's total time is counted under its name. */
function instrument(nl: Rtnetlink): Map<string, number> {
  const spent = new Map<string, number>();
  for (const name of ['listRoutes', 'listNeighbours', 'listFdb', 'batchSettled', 'batch', 'listAddresses', 'getLink'] as const) {
    const original = (nl[name] as (...a: unknown[]) => unknown).bind(nl);
    (nl as unknown as Record<string, unknown>)[name] = (...args: unknown[]): unknown => {
      const t0 = performance.now();
      try {
        return original(...args);
      } finally {
        const took = performance.now() - t0;
        spent.set(name, (spent.get(name) ?? 0) + took);
        spent.set(`${name} max`, Math.max(spent.get(`${name} max`) ?? 0, took));
      }
    };
  }
  return spent;
}

async function pass(label: string, backend: Backend, peers: Parameters<Backend['reconcile']>[0], spent: Map<string, number>): Promise<void> {
  spent.clear();
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  await new Promise((r) => setTimeout(r, 20));
  const t0 = performance.now();
  const report = await backend.reconcile(peers);
  const total = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 20));
  h.disable();
  const io = [...spent].filter(([k]) => !k.endsWith(' max')).reduce((a, [, b]) => a + b, 0);
  const parts = [...spent].map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ');
  console.log(`${label}: reconcile ${total.toFixed(1)} ms (${report.changes} changes, ${report.errors.length} errors); kernel calls: ${parts}; JS plan/diff/encode/decode ~${(total - io).toFixed(1)} ms; event loop max delay ${(h.max / 1e6).toFixed(1)} ms`);
}

for (const [kind, sliceSize] of [['vxlan', Infinity], ['vxlan', 256], ['host-gw', Infinity], ['host-gw', 256]] as const) {
  const node = scratchNode('weft-evl-prof');
  try {
    const nl = Rtnetlink.open(node.path);
    const eth0 = nl.getLink('eth0');
    if (!eth0) throw new Error('no eth0');
    const local = { underlayInterface: 'eth0', underlayIndex: eth0.index, underlayMtu: eth0.mtu, publicIp: UNDERLAY_IP };
    const backend: Backend = kind === 'vxlan' ? new VxlanBackend(nl, local, { network: NETWORK, sliceSize }) : new HostGwBackend(nl, local, { network: NETWORK, sliceSize });
    backend.prepare(undefined);
    backend.attach(OWN_SUBNET);
    const spent = instrument(nl);
    const peers = syntheticPeers(count, kind);
    await pass(`${kind} slice ${sliceSize}: ${count} peers, empty kernel`, backend, peers, spent);
    await pass(`${kind} ${count} peers, in sync`, backend, peers, spent);
    await pass(`${kind} all peers gone`, backend, [], spent);
    nl.close();
  } finally {
    node.remove();
  }
}
