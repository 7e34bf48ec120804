// The agent's CNI server (src/agent/cni.ts) for test/e2e/cni-blocks.test.ts, run inside a
// scratch node's namespace (nsenter --net=...) so its bridge and routes land there. It serves
// the abstract socket @weft-cni, where the weft-cni front end looks first.
//
//   block-cni-server.ts <ready-file> <events-file> <ipam-data-dir> <blocks>
//
// <blocks> is a comma-separated list of CIDR blocks: the server allocates through block IPAM
// over a fake BlockSource owning exactly them (grow() always refuses). "host-local" instead
// starts the server as etcd mode does (no ipam option, onRequest as the third argument).
// Every activate, grow and request is appended to <events-file> as one JSON line; an
// activation records how many store files were in its block at that moment.
import { appendFileSync, existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startAgentCniServer } from '../../../src/agent/cni.ts';
import type { CniServerOptions } from '../../../src/cni/server.ts';
import { WeftError } from '../../../src/errors.ts';
import { blockIpamFactory, type BlockSource } from '../../../src/ipam/block-ipam.ts';
import { createLogger } from '../../../src/log/logger.ts';
import { cidrContains, parseCidr, tryParseIp } from '../../../src/net/cidr.ts';

const [readyFile, eventsFile, dataDir, blocksArg] = process.argv.slice(2);
if (!readyFile || !eventsFile || !dataDir || !blocksArg) throw new Error('usage: block-cni-server.ts <ready-file> <events-file> <ipam-data-dir> <blocks|host-local>');

const record = (event: Record<string, unknown>): void => appendFileSync(eventsFile, `${JSON.stringify(event)}\n`);

/** Address files of the network's store inside block. */
function filesIn(block: string): number {
  const store = join(dataDir!, 'weftnet');
  if (!existsSync(store)) return 0;
  const cidr = parseCidr(block);
  return readdirSync(store).filter((f) => {
    const ip = tryParseIp(f);
    return ip !== undefined && cidrContains(cidr, ip);
  }).length;
}

function fakeSource(blocks: string[]): BlockSource {
  const active: string[] = [];
  return {
    blocks: () => blocks,
    active: () => active,
    activate: (block) => {
      record({ event: 'activate', block, filesInBlock: filesIn(block) });
      if (!active.includes(block)) active.push(block);
    },
    grow: () => {
      record({ event: 'grow' });
      return Promise.reject(new WeftError('WEFT_IPAM_EXHAUSTED', 'the test block source has no more blocks'));
    },
  };
}

const log = createLogger({ name: 'block-cni-server', level: 'warn', fd: 2 });
const onRequest: CniServerOptions['onRequest'] = (r) => record({ event: 'request', verb: r.verb, result: r.result });
const server = blocksArg === 'host-local'
  ? await startAgentCniServer('@weft-cni', log, onRequest)
  : await startAgentCniServer('@weft-cni', log, { onRequest, ipam: blockIpamFactory(fakeSource(blocksArg.split(','))) });
writeFileSync(readyFile, `${process.pid}\n`);
process.once('SIGTERM', () => {
  void server.stop().then(() => {
    rmSync(readyFile, { force: true });
    process.exit(0);
  });
});
