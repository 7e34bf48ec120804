// A check for a finding of bench:mesh (not part of the bench run): while seeding, each elector's
// record carries the Paxos value, a list of up to N peer names, so one record is O(N) bytes and
// the records of a full state O(N²): about 0.9 MB at 200 electors. The node once split records by
// count, so past a frame (1 MiB) part of the full state a new connection needs was dropped. It
// now splits them by bytes (and stops gossiping the vote once it has a ring); this shows a
// full state of well over a frame arriving whole.
//
// One real MeshNode on 127.0.0.1; a fake peer dials it and gossips `--records` records, each an
// elector that accepted a value of all of them (what consensus=N leaves in every record); then a
// second client dials and the node sends its full state. Prints what happened.
//   node benchmarks/mesh/repro-large-state.ts --records 260
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger } from '../../src/log/logger.ts';
import { randomPeerName } from '../../src/mesh/identity.ts';
import { encodeMessage } from '../../src/mesh/messages.ts';
import { MeshNode, meshIdOf } from '../../src/mesh/node.ts';
import { dialChannel, type Channel } from '../../src/mesh/wire/index.ts';
import { positive } from '../stats.ts';

const { values } = parseArgs({ options: { records: { type: 'string', default: '260' } } });
const count = positive('records', values.records, 4096);
const UNIVERSE = '10.32.0.0/12';
const dir = mkdtempSync(join(tmpdir(), 'weft-repro-'));
process.on('uncaughtException', (e) => {
  console.log(`UNCAUGHT in the node's process: ${e.message}`);
  rmSync(dir, { recursive: true, force: true });
  process.exit(1);
});

const node = new MeshNode({
  dir, nickname: 'target', listenHost: '127.0.0.1', port: 0, targets: [], psks: null, universe: UNIVERSE, blockPrefix: 26,
  init: { mode: 'consensus', peers: count }, connLimit: 30, version: 'repro',
  log: createLogger({ name: 'repro', level: 'warn', destination: { write: (line: string) => void console.log(`node logged: ${(JSON.parse(line) as { msg: string }).msg}`) } }),
});
await node.start();
node.announce({ publicIp: '127.0.0.1', backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: '02:00:00:00:00:01' } });

const channel = (nickname: string): Promise<Channel> => dialChannel('127.0.0.1', node.port, {
  self: { name: randomPeerName(), uid: '0123456789abcdef', nickname, port: 1 }, meshId: meshIdOf(UNIVERSE, 26), psks: null,
});

const names = Array.from({ length: count }, () => randomPeerName()).sort();
const records = names.map((name, i) => ({
  name, uid: '0123456789abcdef', nickname: `p${i}`, incarnation: 1, seq: 5, addr: `127.0.0.${(i % 250) + 2}:6783`, publicIp: '127.0.0.1',
  backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: '02:00:00:00:00:02' }, ring: null, elector: true,
  paxos: { promise: { round: 1, proposer: names[0]! }, accepted: { ballot: { round: 1, proposer: names[0]! }, value: names } },
  owned: 0, free: 0, wants: 0, left: false, heartbeat: 0,
}));
console.log(`one record: ${JSON.stringify(records[0]).length} bytes; all ${count}: ${encodeMessage({ t: 'state', records }).length} bytes in one message`);

const gossip = await channel('gossip');
let closed = false;
gossip.onClose((why) => { closed = true; console.log(`the gossiping peer's connection closed: ${why?.message ?? 'locally'}`); });
for (let i = 0; i < count; i += 50) gossip.send(encodeMessage({ t: 'state', records: records.slice(i, i + 50) }));
await new Promise((r) => setTimeout(r, 2000));
console.log(`the node knows ${node.status().peers.length} peers (itself included); gossip connection ${closed ? 'closed' : 'open'}`);

const second = await channel('second');
let got = 0;
second.onMessage((m) => { got += m.length; });
second.onClose((why) => console.log(`the second connection closed: ${why?.message ?? 'locally'}`));
await new Promise((r) => setTimeout(r, 3000));
console.log(`the second connection received ${got} bytes of full state`);
await node.stop();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
