// The VPC CNI's leftovers on a node, for real (root only): a network namespace of this test's
// own gets the AWS VPC CNI's iptables chains (AWS-SNAT-CHAIN-0/1 jumped to from POSTROUTING,
// AWS-CONNMARK-CHAIN-0 from PREROUTING), and a scratch CNI conf dir gets its 10-aws.conflist
// next to flannel's 10-flannel.conflist (weft serving flannel's config), which 10-aws sorts
// before. `weft doctor` and an agent (mesh mode, one node: no store needed) running in that
// namespace must both report them, the agent as a readiness reason; the fix commands weft
// prints are then run as printed, after which doctor is clean and the agent ready. The
// namespace, the conf dir and the agent (by its PID) are removed whatever happens.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchStatus, type AgentStatus, type NodeWarning } from '../../src/agent/status.ts';
import { Cleanup, mustRun, rand, run, WEFT_BIN } from './support/sandbox.ts';
import { waitFor } from './support/lab-harness.ts';

const skip = process.getuid?.() !== 0 ? 'needs root (creates a network namespace)' : false;
const cleanup = new Cleanup();
after(() => cleanup.run());

const inNs = (ns: string, argv: readonly string[]): string[] => ['ip', 'netns', 'exec', ns, ...argv];

/** The VPC CNI's rules, in the shape its nodes have them (nat table). */
const AWS_RULES = [
  ['-t', 'nat', '-N', 'AWS-SNAT-CHAIN-0'],
  ['-t', 'nat', '-N', 'AWS-SNAT-CHAIN-1'],
  ['-t', 'nat', '-N', 'AWS-CONNMARK-CHAIN-0'],
  ['-t', 'nat', '-A', 'POSTROUTING', '-m', 'comment', '--comment', 'AWS SNAT CHAIN', '-j', 'AWS-SNAT-CHAIN-0'],
  ['-t', 'nat', '-A', 'AWS-SNAT-CHAIN-0', '!', '-d', '172.31.0.0/16', '-m', 'comment', '--comment', 'AWS SNAT CHAIN', '-j', 'AWS-SNAT-CHAIN-1'],
  ['-t', 'nat', '-A', 'AWS-SNAT-CHAIN-1', '!', '-o', 'vlan+', '-m', 'comment', '--comment', 'AWS, SNAT', '-m', 'addrtype', '!', '--dst-type', 'LOCAL', '-j', 'SNAT', '--to-source', '10.201.0.2'],
  ['-t', 'nat', '-A', 'PREROUTING', '-i', 'eni+', '-m', 'comment', '--comment', 'AWS, outbound connections', '-j', 'AWS-CONNMARK-CHAIN-0'],
  ['-t', 'nat', '-A', 'AWS-CONNMARK-CHAIN-0', '-m', 'comment', '--comment', 'AWS, CONNMARK', '-j', 'CONNMARK', '--set-xmark', '0x80/0x80'],
];

interface DoctorAnswer { clean: boolean; findings: NodeWarning[]; notes: string[]; notChecked: string[] }

async function doctor(ns: string, confDir: string): Promise<{ code: number; answer: DoctorAnswer }> {
  const argv = inNs(ns, [WEFT_BIN, 'doctor', '--cni-conf-dir', confDir, '--json']);
  const r = await run(argv);
  assert.equal(r.stderr.trim(), '', `doctor printed nothing on stderr: ${r.stderr}`);
  return { code: r.code, answer: JSON.parse(r.stdout) as DoctorAnswer };
}

test("the VPC CNI's conflist and iptables chains: doctor and the agent report them with fixes that work", { skip }, async (t) => {
  const ns = `weft-left-${rand()}`;
  await mustRun(['ip', 'netns', 'add', ns]);
  cleanup.push(`delete netns ${ns}`, () => mustRun(['ip', 'netns', 'delete', ns]));
  // An underlay for the agent to choose: the default route's interface.
  for (const argv of [
    ['ip', '-n', ns, 'link', 'set', 'lo', 'up'],
    ['ip', '-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'gw0'],
    ['ip', '-n', ns, 'link', 'set', 'gw0', 'up'],
    ['ip', '-n', ns, 'addr', 'add', '10.201.0.2/24', 'dev', 'eth0'],
    ['ip', '-n', ns, 'link', 'set', 'eth0', 'up'],
    ['ip', '-n', ns, 'route', 'add', 'default', 'via', '10.201.0.1', 'dev', 'eth0'],
  ]) await mustRun(argv);
  for (const rule of AWS_RULES) await mustRun(inNs(ns, ['iptables', ...rule]));

  const dir = mkdtempSync(join(tmpdir(), 'weft-leftovers-e2e-'));
  cleanup.push(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  const confDir = join(dir, 'net.d');
  await mustRun(['mkdir', confDir]);
  writeFileSync(join(confDir, '10-aws.conflist'), JSON.stringify({
    cniVersion: '0.4.0', name: 'aws-cni', disableCheck: true,
    plugins: [{ name: 'aws-cni', type: 'aws-cni', vethPrefix: 'eni', mtu: '9001' }, { type: 'egress-cni' }, { type: 'portmap', capabilities: { portMappings: true }, snat: true }],
  }));
  writeFileSync(join(confDir, '10-flannel.conflist'), JSON.stringify({
    name: 'cbr0', cniVersion: '0.3.1', plugins: [{ type: 'flannel', delegate: { hairpinMode: true, isDefaultGateway: true } }, { type: 'portmap', capabilities: { portMappings: true } }],
  }));

  // doctor, as root in the node's namespace.
  const before = await doctor(ns, confDir);
  t.diagnostic(`doctor: ${JSON.stringify(before.answer.findings.map((f) => [f.key, f.severity]))}`);
  assert.equal(before.code, 1, 'exit 1: something is in the way');
  assert.equal(before.answer.clean, false);
  assert.deepEqual(before.answer.notChecked, []);
  const byKey = new Map(before.answer.findings.map((f) => [f.key, f]));
  const order = byKey.get('cni-config order');
  assert.equal(order?.severity, 'blocks-pods');
  assert.match(order?.message ?? '', /10-aws\.conflist sorts before weft's 10-flannel\.conflist/);
  assert.deepEqual(order?.fix, [`rm ${join(confDir, '10-aws.conflist')}`]);
  const chains = before.answer.findings.find((f) => f.key.startsWith('iptables '));
  assert.ok(chains, 'the chains are found');
  assert.match(chains.message, /nat AWS-CONNMARK-CHAIN-0 \(1 rule\), nat AWS-SNAT-CHAIN-0 \(1 rule\), nat AWS-SNAT-CHAIN-1 \(1 rule\)/);

  // The agent in the same namespace, with its files in the scratch dir.
  const log: string[] = [];
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(WEFT_|FLANNELD_|WEAVE_|KUBE_PEERS|IPALLOC_|CONN_LIMIT)/.test(k)));
  const socket = join(dir, 'agent.sock');
  const agent = spawn('ip', inNs(ns, [
    WEFT_BIN, 'agent', '--store', 'mesh', '--ipalloc-init', 'consensus=1', '--nickname', 'n1',
    '--mesh-dir', join(dir, 'mesh'), '--subnet-file', join(dir, 'subnet.env'), '--status-socket', socket,
    '--lock-file', join(dir, 'agent.lock'), '--cni-socket', '', '--cni-conf-dir', confDir,
  ]).slice(1), { env: { ...env, NODE_NAME: 'n1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => agent.once('exit', () => resolve()));
  cleanup.push('stop the agent', async () => {
    if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGTERM');
    await exited;
  });
  agent.stdout.setEncoding('utf8').on('data', (d: string) => log.push(d));
  agent.stderr.setEncoding('utf8').on('data', (d: string) => log.push(d));
  const logLines = (): { level: number; msg: string; about?: string }[] => log.join('').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));

  const reported = await waitFor('the agent to report both leftovers, the conflist as a readiness reason', async () => {
    const s: AgentStatus = await fetchStatus(socket);
    const keys = (s.warnings ?? []).map((w) => w.key).sort();
    return s.reasons.some((r) => /sorts before weft's 10-flannel\.conflist/.test(r)) && keys.length === 2 && keys[0] === 'cni-config order' ? s : undefined;
  }, 90_000, 250);
  assert.equal(reported.ready, false, 'not ready: new pods would get the VPC CNI\'s network');
  assert.deepEqual(reported.warnings?.find((w) => w.key.startsWith('iptables '))?.fix, chains.fix, 'the agent prints the same fix as doctor');
  const text = await run(['env', `WEFT_STATUS_SOCKET=${socket}`, WEFT_BIN, 'status']);
  assert.match(text.stdout, /warnings \(in weft's way on this node now\):[\s\S]*to remove it, run:\n {6}rm .*10-aws\.conflist\n/);
  const warned = logLines().filter((l) => l.level === 40 && /AWS VPC CNI|sorts before weft's/.test(l.msg));
  assert.equal(warned.length, 2, `one warning each in the log:\n${warned.map((l) => l.msg).join('\n')}`);
  assert.match(warned.find((l) => l.about === 'cni-config order')?.msg ?? '', /to remove it, run: rm .*10-aws\.conflist$/);

  // The fixes, run exactly as printed.
  for (const command of before.answer.findings.flatMap((f) => f.fix)) await mustRun(inNs(ns, ['sh', '-c', command]));
  const after = await doctor(ns, confDir);
  assert.deepEqual(after.answer.findings, [], 'nothing left after the fixes');
  assert.equal(after.code, 0);
  assert.doesNotMatch(await mustRun(inNs(ns, ['iptables-save'])), /AWS-/, 'the chains and every jump to them are gone');
  assert.match(await mustRun(inNs(ns, ['iptables-save', '-t', 'nat'])), /-A POSTROUTING|:POSTROUTING/, 'the nat table itself is still there');

  // The agent looks again every minute: the warnings go, and the node becomes ready.
  await waitFor('the agent to see the leftovers gone and become ready', async () => {
    const s = await fetchStatus(socket);
    return s.ready && (s.warnings ?? []).length === 0 ? s : undefined;
  }, 150_000, 500);
  assert.equal(logLines().filter((l) => l.msg.startsWith('resolved: ')).length, 2, 'each resolution said once');
});
