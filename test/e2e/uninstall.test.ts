// `weft uninstall` removes exactly what the agent installs on a node: its firewall rules, its
// VXLAN device, its routes and subnet.env — and leaves the node's other routes alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './support/cni-node.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root (network namespaces)';
const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });

test('uninstall removes the rules, flannel.1, weft routes and subnet.env; nothing else', { skip }, (t) => {
  const ns = `weft-un-${randomBytes(3).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'weft-un-'));
  ip('netns', 'add', ns);
  t.after(() => {
    spawnSync('ip', ['netns', 'del', ns]);
    rmSync(dir, { recursive: true, force: true });
  });
  const inNs = (cmd: string, ...args: string[]): string => execFileSync('nsenter', [`--net=/run/netns/${ns}`, cmd, ...args], { encoding: 'utf8' });
  // A node as the agent leaves it: an uplink, flannel.1, a weft route, an operator's route, the rules.
  ip('-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0');
  ip('-n', ns, 'addr', 'add', '172.31.1.11/24', 'dev', 'eth0');
  ip('-n', ns, 'link', 'set', 'eth0', 'up');
  ip('-n', ns, 'link', 'set', 'peer0', 'up');
  ip('-n', ns, 'link', 'add', 'flannel.1', 'type', 'vxlan', 'id', '1', 'dev', 'eth0', 'local', '172.31.1.11', 'dstport', '8472', 'nolearning');
  ip('-n', ns, 'route', 'add', '10.16.9.0/24', 'via', '172.31.1.12', 'proto', '0x57');
  ip('-n', ns, 'route', 'add', '192.0.2.0/24', 'via', '172.31.1.1');
  const subnetFile = join(dir, 'subnet.env');
  writeFileSync(subnetFile, 'FLANNEL_NETWORK=10.16.0.0/16\nFLANNEL_SUBNET=10.16.5.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
  const ensure = `import { AgentFirewall } from '${ROOT}src/agent/firewall.ts'; import { silentLogger } from '${ROOT}src/log/logger.ts';
    await new AgentFirewall({ network: '10.16.0.0/16', ipMasq: true, forwardRules: true, nftables: false, log: silentLogger }).ensure('10.16.5.0/24');`;
  inNs(join(ROOT, 'node_modules/node/bin/node'), '--input-type=module', '-e', ensure);
  assert.match(inNs('iptables-save', '-t', 'nat'), /FLANNEL-POSTRTG/);

  const report = JSON.parse(inNs(join(ROOT, 'bin/weft'), 'uninstall', '--subnet-file', subnetFile, '--json'));
  assert.deepEqual(report, { firewallRules: true, devices: ['flannel.1'], routes: 1, subnetFile: true });
  assert.doesNotMatch(inNs('iptables-save'), /FLANNEL/);
  assert.equal(ip('-n', ns, 'link', 'show', 'type', 'vxlan'), '');
  const routes = ip('-n', ns, 'route', 'show');
  assert.doesNotMatch(routes, /10\.16\.9\.0/);
  assert.match(routes, /192\.0\.2\.0\/24 via 172\.31\.1\.1/, "the operator's route stays");
  assert.equal(existsSync(subnetFile), false);
});
