// The measured process of `npm run bench:eventloop`: one event loop that serves CNI requests
// (the weft CNI server with BridgeOperations, as the agent runs it) and programs peers through
// a real backend, as the agent's single JavaScript thread does. It runs inside the scratch node
// namespace and takes one JSON command per line on stdin, answering one JSON line per command
// on stdout; the driver (run.ts) times CNI ADDs from its own process, so a blocked loop here
// cannot distort the clock that measures it.
import { createInterface } from 'node:readline';
import { monitorEventLoopDelay, performance, type RecordableHistogram } from 'node:perf_hooks';
import { BridgeOperations } from '../../src/cni/bridge-plugin.ts';
import { startCniServer } from '../../src/cni/server.ts';
import { HostGwBackend, VxlanBackend, type Backend, type ReconcileReport } from '../../src/dataplane/index.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { Rtnetlink } from '../../src/netlink/index.ts';
import { NETWORK, OWN_SUBNET, syntheticPeers, UNDERLAY_IP } from './lab.ts';

export type ServerCommand =
  | { cmd: 'backend'; kind: 'vxlan' | 'host-gw'; sliceSize: number | null }
  | { cmd: 'program'; peers: number }
  | { cmd: 'teardown' }
  | { cmd: 'quit' };

export interface PassResult {
  reply: 'pass';
  /** Wall time of the reconcile call, from call to settled promise. */
  ms: number;
  changes: number;
  errors: number;
  /** Event loop delay while the pass ran (monitorEventLoopDelay, 1 ms resolution). */
  maxDelayMs: number;
  p99DelayMs: number;
  cniRequests: number;
}

function send(message: object): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

const ms = (h: Pick<RecordableHistogram, 'max' | 'percentile'>, p?: number): number => (p === undefined ? h.max : h.percentile(p)) / 1e6;

export async function runServer(): Promise<void> {
  const nl = Rtnetlink.open();
  const eth0 = nl.getLink('eth0');
  if (!eth0) throw new Error('bench:eventloop server: no eth0 here: it must run inside the scratch node namespace');
  const local = { underlayInterface: 'eth0', underlayIndex: eth0.index, underlayMtu: eth0.mtu, publicIp: UNDERLAY_IP };
  const ops = new BridgeOperations({ log: silentLogger });
  let cniRequests = 0;
  const server = await startCniServer({ socket: '@weft-cni', ops, log: silentLogger, onRequest: () => cniRequests++ });
  let backend: Backend | undefined;
  let kind: 'vxlan' | 'host-gw' = 'vxlan';
  send({ reply: 'ready' });

  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    const command = JSON.parse(line) as ServerCommand;
    switch (command.cmd) {
      case 'backend': {
        kind = command.kind;
        const sliceSize = command.sliceSize ?? Infinity;
        backend = kind === 'vxlan' ? new VxlanBackend(nl, local, { network: NETWORK, sliceSize }) : new HostGwBackend(nl, local, { network: NETWORK, sliceSize });
        backend.prepare(undefined);
        backend.attach(OWN_SUBNET);
        send({ reply: 'backend' });
        break;
      }
      case 'program': {
        if (!backend) throw new Error('program before backend');
        const peers = syntheticPeers(command.peers, kind);
        const h = monitorEventLoopDelay({ resolution: 1 });
        const before = cniRequests;
        h.enable();
        // The monitor's first timer turn only starts its clock: let it tick before the pass.
        await new Promise((resolve) => setTimeout(resolve, 10));
        send({ reply: 'started' });
        const t0 = performance.now();
        const report: ReconcileReport = await backend.reconcile(peers);
        const took = performance.now() - t0;
        // The delay is recorded when the monitor's timer finally fires: a pass that blocked the
        // loop from start to end has had no timer turn yet, so give it one before reading.
        await new Promise((resolve) => setTimeout(resolve, 10));
        h.disable();
        const result: PassResult = {
          reply: 'pass', ms: took, changes: report.changes, errors: report.errors.length,
          maxDelayMs: ms(h), p99DelayMs: ms(h, 99), cniRequests: cniRequests - before,
        };
        send(result);
        break;
      }
      case 'teardown':
        await backend?.teardown();
        backend = undefined;
        send({ reply: 'teardown' });
        break;
      case 'quit':
        await new Promise<void>((resolve) => server.close(() => resolve()));
        ops.close();
        nl.close();
        send({ reply: 'bye', cniRequests });
        return;
    }
  }
}
