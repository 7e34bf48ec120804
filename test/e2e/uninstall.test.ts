// `weft uninstall` removes exactly what the agent installs on a node: its firewall rules, its
// VXLAN device, its routes and subnet.env — and leaves the node's other routes alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './support/cni-node.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root (network namespaces)';
const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });

test('uninstall removes the rules, flannel.1, weft routes and subnet.env; nothing else', { skip }, (t) => {
  // A node as the agent leaves it: an uplink, flannel.1, a weft route, an operator's route, the rules.
  const { dir, inNs, ns } = scratchNode(t);
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

  const report = JSON.parse(inNs(join(ROOT, 'bin/weft'), 'uninstall', '--subnet-file', subnetFile, '--lock-file', join(dir, 'agent.lock'), '--json'));
  assert.equal(report.firewallRules, true);
  assert.deepEqual(report.devices, ['flannel.1']);
  assert.equal(report.routes, 1);
  assert.equal(report.subnetFile, true);
  assert.doesNotMatch(inNs('iptables-save'), /FLANNEL/);
  assert.equal(ip('-n', ns, 'link', 'show', 'type', 'vxlan'), '');
  const routes = ip('-n', ns, 'route', 'show');
  assert.doesNotMatch(routes, /10\.16\.9\.0/);
  assert.match(routes, /192\.0\.2\.0\/24 via 172\.31\.1\.1/, "the operator's route stays");
  assert.equal(existsSync(subnetFile), false);
});

/** A fresh namespace with an uplink, and a scratch directory; both removed after the test. */
function scratchNode(t: { after(fn: () => void): void }): { ns: string; dir: string; inNs: (cmd: string, ...args: string[]) => string } {
  const ns = `weft-un-${randomBytes(3).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'weft-un-'));
  ip('netns', 'add', ns);
  t.after(() => {
    spawnSync('ip', ['netns', 'del', ns]);
    rmSync(dir, { recursive: true, force: true });
  });
  ip('-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0');
  ip('-n', ns, 'addr', 'add', '172.31.1.11/24', 'dev', 'eth0');
  ip('-n', ns, 'link', 'set', 'eth0', 'up');
  const inNs = (cmd: string, ...args: string[]): string => execFileSync('nsenter', [`--net=/run/netns/${ns}`, cmd, ...args], { encoding: 'utf8' });
  return { ns, dir, inNs };
}

const NODE = join(ROOT, 'node_modules/node/bin/node');
const WEFT = join(ROOT, 'bin/weft');

test('without subnet.env: uninstall still finds and removes the rules (iptables and nftables), by their chains and tables', { skip }, (t) => {
  const { dir, inNs, ns } = scratchNode(t);
  ip('-n', ns, 'link', 'add', 'flannel.1', 'type', 'vxlan', 'id', '1', 'dev', 'eth0', 'local', '172.31.1.11', 'dstport', '8472', 'nolearning');
  // The rules of a node whose subnet.env is gone: iptables for one network, nftables for another.
  const ensure = `import { AgentFirewall } from '${ROOT}src/agent/firewall.ts'; import { silentLogger } from '${ROOT}src/log/logger.ts';
    await new AgentFirewall({ network: '10.16.0.0/16', ipMasq: true, forwardRules: true, nftables: false, log: silentLogger }).ensure('10.16.5.0/24');
    await new AgentFirewall({ network: '10.44.0.0/16', ipMasq: true, forwardRules: true, nftables: true, log: silentLogger }).ensure('10.44.7.0/24');`;
  inNs(NODE, '--input-type=module', '-e', ensure);
  // An operator's own masquerade rule, which must stay.
  inNs('iptables', '-t', 'nat', '-A', 'POSTROUTING', '-s', '192.168.50.0/24', '-j', 'MASQUERADE');
  const before = inNs('iptables-save');
  assert.match(before, /:FLANNEL-POSTRTG/);
  assert.match(before, /:FLANNEL-FWD/);
  assert.match(inNs('nft', 'list', 'tables'), /table ip flannel-ipv4/);

  const missing = join(dir, 'subnet.env');
  const r = spawnSync('nsenter', [`--net=/run/netns/${ns}`, WEFT, 'uninstall', '--subnet-file', missing, '--lock-file', join(dir, 'agent.lock'), '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { firewallRules: boolean; firewall: string[]; devices: string[]; subnetFile: boolean };
  assert.equal(report.firewallRules, true);
  assert.ok(report.firewall.some((l) => /ipv4: nat FLANNEL-POSTRTG, filter FLANNEL-FWD/.test(l)), report.firewall.join('; '));
  assert.ok(report.firewall.includes('nft: table ip flannel-ipv4'), report.firewall.join('; '));
  assert.deepEqual(report.devices, ['flannel.1']);
  assert.equal(report.subnetFile, false);
  const rules = inNs('iptables-save');
  assert.doesNotMatch(rules, /FLANNEL|flanneld/);
  assert.match(rules, /-A POSTROUTING -s 192\.168\.50\.0\/24 -j MASQUERADE/, "the operator's rule stays");
  assert.doesNotMatch(inNs('nft', 'list', 'tables'), /flannel/);

  // Nothing left: a second run removes nothing and still succeeds.
  const again = JSON.parse(inNs(WEFT, 'uninstall', '--subnet-file', missing, '--lock-file', join(dir, 'agent.lock'), '--json')) as { firewall: string[]; devices: string[]; routes: number };
  assert.deepEqual([again.firewall, again.devices, again.routes], [[], [], 0]);
});

test('uninstall refuses while an agent holds the node lock, naming its PID, and removes nothing', { skip }, async (t) => {
  const { dir, inNs, ns } = scratchNode(t);
  ip('-n', ns, 'link', 'add', 'flannel.1', 'type', 'vxlan', 'id', '1', 'dev', 'eth0', 'local', '172.31.1.11', 'dstport', '8472', 'nolearning');
  const subnetFile = join(dir, 'subnet.env');
  writeFileSync(subnetFile, 'FLANNEL_NETWORK=10.16.0.0/16\nFLANNEL_SUBNET=10.16.5.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
  const lockFile = join(dir, 'agent.lock');
  // Stands in for a running agent: a process holding the lock exactly as startAgent takes it.
  const holder = spawn(NODE, ['--input-type=module', '-e', `import { acquireNodeLock } from '${ROOT}src/agent/node-lock.ts';
    acquireNodeLock(${JSON.stringify(lockFile)}); process.stdout.write('locked\\n'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(holder, 'exit');
  t.after(async () => {
    if (holder.exitCode === null && holder.signalCode === null) holder.kill('SIGKILL');
    await exited;
  });
  await once(holder.stdout, 'data');

  const r = spawnSync('nsenter', [`--net=/run/netns/${ns}`, WEFT, 'uninstall', '--subnet-file', subnetFile, '--lock-file', lockFile], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, new RegExp(`a weft agent \\(PID ${holder.pid}\\) is running on this node.*stop it first`));
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  assert.equal(existsSync(subnetFile), true, 'subnet.env stays');
  assert.match(inNs('ip', 'link', 'show', 'type', 'vxlan'), /flannel\.1/, 'the device stays');
});
