// weft and the reference host-local plugin (Debian containernetworking-plugins) on one store:
// each must see the other's allocations, continue the other's round-robin, and free the other's
// files. host-local needs no root or network namespace for IPAM, so this runs as a unit test.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { isWeftError } from '../errors.ts';
import { HostLocalIpam } from './allocator.ts';
import { parseRangeSets } from './ranges.ts';

const HOST_LOCAL = '/usr/lib/cni/host-local';
const NETWORK = 'interop';
const RANGES = [[{ subnet: '10.9.0.0/29' }], [{ subnet: 'fd00:9::/64' }]];

interface HostLocalResult { ips: { address: string; gateway: string }[] }

function hostLocal(command: 'ADD' | 'DEL', dataDir: string, containerId: string): HostLocalResult | undefined {
  const config = { cniVersion: '1.0.0', name: NETWORK, type: 'weft-test', ipam: { type: 'host-local', dataDir, ranges: RANGES } };
  const out = execFileSync(HOST_LOCAL, [], {
    input: JSON.stringify(config),
    env: { CNI_COMMAND: command, CNI_CONTAINERID: containerId, CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0', CNI_PATH: dirname(HOST_LOCAL) },
    encoding: 'utf8',
  });
  return command === 'ADD' ? JSON.parse(out) as HostLocalResult : undefined;
}

const skip = existsSync(HOST_LOCAL) ? false : `${HOST_LOCAL} is not installed (Debian package containernetworking-plugins)`;

it('shares one store with host-local: allocations, round-robin and release cross over both ways', { skip }, async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'weft-ipam-interop-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const weft = new HostLocalIpam({ dataDir, network: NETWORK, rangeSets: parseRangeSets(RANGES) });
  const files = (): string[] => readdirSync(join(dataDir, NETWORK)).filter((f) => !f.startsWith('last_reserved_ip.') && f !== 'lock').sort();

  // host-local first: weft sees its files as taken and owned, and continues after them.
  assert.deepEqual(hostLocal('ADD', dataDir, 'hl1')!.ips.map((ip) => ip.address), ['10.9.0.2/29', 'fd00:9::2/64']);
  assert.deepEqual(await weft.lookup({ containerId: 'hl1', ifname: 'eth0' }), ['10.9.0.2', 'fd00:9::2']);
  const ours = await weft.allocate({ containerId: 'weft1', ifname: 'eth0' });
  assert.deepEqual(ours.map((a) => `${a.address}/${a.prefix}`), ['10.9.0.3/29', 'fd00:9::3/64']);
  await assert.rejects(weft.allocate({ containerId: 'hl1', ifname: 'eth0' }), (e: unknown) => isWeftError(e, 'WEFT_IPAM_CONFLICT'));

  // host-local continues after weft's last_reserved_ip, and its DEL finds weft's files.
  assert.deepEqual(hostLocal('ADD', dataDir, 'hl2')!.ips.map((ip) => ip.address), ['10.9.0.4/29', 'fd00:9::4/64']);
  hostLocal('DEL', dataDir, 'weft1');
  assert.deepEqual(files(), ['10.9.0.2', '10.9.0.4', 'fd00:9::2', 'fd00:9::4']);

  // weft frees host-local's files.
  assert.deepEqual(await weft.release({ containerId: 'hl1', ifname: 'eth0' }), ['10.9.0.2', 'fd00:9::2']);
  assert.deepEqual(await weft.gc([]), ['10.9.0.4', 'fd00:9::4']);
  assert.deepEqual(files(), []);
});
