// Firewall rules against the real tools and kernel, inside scratch network namespaces only:
// iptables-nft and nftables rules are per namespace, so nothing here touches the host's
// firewall. Needs root; skipped with a message otherwise.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import {
  calcFlannelRules, createBackend, detectBackend, netnsRunner, setupContainerMasq, teardownContainerMasq,
  type BackendKind, type FirewallRules,
} from '../../src/firewall/index.ts';

const exec = promisify(execFile);
const skip = process.getuid?.() !== 0 ? 'needs root (creates network namespaces)' : false;
const created: string[] = [];

after(async () => {
  // Also runs when a test failed: never leave namespaces behind.
  for (const ns of created) await exec('ip', ['netns', 'delete', ns]).catch(() => undefined);
});

async function newNs(): Promise<string> {
  const ns = `weft-fw-${randomBytes(4).toString('hex')}`;
  await exec('ip', ['netns', 'add', ns]);
  created.push(ns);
  await exec('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  return ns;
}

/** Runs a command in a namespace; resolves with stdout, rejects on failure. */
async function inNs(ns: string, argv: string[]): Promise<string> {
  return (await exec('ip', ['netns', 'exec', ns, ...argv])).stdout;
}

/** Exit status of a command in a namespace (for "this must fail" checks). */
async function statusInNs(ns: string, argv: string[]): Promise<number> {
  try {
    await exec('ip', ['netns', 'exec', ns, ...argv]);
    return 0;
  } catch (e) {
    return typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : 1;
  }
}

const N = '10.99.0.0/16';
const P = '10.99.1.0/24';
const rules: FirewallRules = calcFlannelRules({ network: N, subnet: P, ipv6Network: 'fd00:99::/48', ipv6Subnet: 'fd00:99:0:1::/64' });

// flanneld's rules, written out by hand from docs/flannel-compat.md §4 rather than from the generator.
const M = '-m comment --comment "flanneld masq"';
const F = '-m comment --comment "flanneld forward"';
const IPTABLES_V4 = [
  `-A POSTROUTING ${M} -j FLANNEL-POSTRTG`,
  `-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 ${M} -j RETURN`,
  `-A FLANNEL-POSTRTG -s ${P} -d ${N} ${M} -j RETURN`,
  `-A FLANNEL-POSTRTG -s ${N} -d ${P} ${M} -j RETURN`,
  `-A FLANNEL-POSTRTG ! -s ${N} -d ${P} ${M} -j RETURN`,
  `-A FLANNEL-POSTRTG -s ${N} ! -d 224.0.0.0/4 ${M} -j MASQUERADE --random-fully`,
  `-A FLANNEL-POSTRTG ! -s ${N} -d ${N} ${M} -j MASQUERADE --random-fully`,
  `-A FORWARD ${F} -j FLANNEL-FWD`,
  `-A FLANNEL-FWD -s ${N} ${F} -j ACCEPT`,
  `-A FLANNEL-FWD -d ${N} ${F} -j ACCEPT`,
];
const NFT_V4 = [
  'meta mark 0x00004000 return',
  `ip saddr ${P} ip daddr ${N} return`,
  `ip saddr ${N} ip daddr ${P} return`,
  `ip saddr != ${P} ip daddr ${N} return`,
  `ip saddr ${N} ip daddr != 224.0.0.0/4 masquerade fully-random`,
  `ip saddr != ${N} ip daddr ${N} masquerade fully-random`,
  `ip saddr ${N} accept`,
  `ip daddr ${N} accept`,
];

/** The rule lines currently installed, in kernel order, as the tool prints them. */
async function installed(ns: string, kind: BackendKind, family: 'ip' | 'ip6' = 'ip'): Promise<string[]> {
  if (kind === 'iptables') {
    const out = await inNs(ns, [family === 'ip' ? 'iptables-save' : 'ip6tables-save']);
    return out.split('\n').filter((l) => l.startsWith('-A '));
  }
  const tables = JSON.parse(await inNs(ns, ['nft', '-j', 'list', 'tables'])) as { nftables: { table?: { name: string; family: string } }[] };
  const name = family === 'ip' ? 'flannel-ipv4' : 'flannel-ipv6';
  if (!tables.nftables.some((i) => i.table?.name === name && i.table.family === family)) return [];
  const out = await inNs(ns, ['nft', 'list', 'table', family, name]);
  return out.split('\n').map((l) => l.trim()).filter((l) => /^(ip6? |meta )/.test(l));
}

/** pod (10.99.1.2) — node (router, 10.99.1.1 / 192.0.2.1) — outside (192.0.2.2, no route back to N). */
async function topology(): Promise<{ pod: string; node: string; outside: string }> {
  const [pod, node, outside] = [await newNs(), await newNs(), await newNs()];
  // Each veth is created inside a scratch namespace, so nothing appears in the root namespace.
  await exec('ip', ['-n', node, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod]);
  await exec('ip', ['-n', node, 'link', 'add', 'o0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outside]);
  const steps: [string, string[]][] = [
    [pod, ['addr', 'add', '10.99.1.2/24', 'dev', 'eth0']], [pod, ['link', 'set', 'eth0', 'up']],
    [pod, ['route', 'add', 'default', 'via', '10.99.1.1']],
    [node, ['addr', 'add', '10.99.1.1/24', 'dev', 'p0']], [node, ['link', 'set', 'p0', 'up']],
    [node, ['addr', 'add', '192.0.2.1/24', 'dev', 'o0']], [node, ['link', 'set', 'o0', 'up']],
    [outside, ['addr', 'add', '192.0.2.2/24', 'dev', 'eth0']], [outside, ['link', 'set', 'eth0', 'up']],
  ];
  for (const [ns, args] of steps) await exec('ip', ['-n', ns, ...args]);
  await inNs(node, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  return { pod, node, outside };
}

const ping = (from: string): Promise<number> => statusInNs(from, ['ping', '-n', '-q', '-c', '1', '-W', '2', '192.0.2.2']);

/**
 * Sends UDP from `pod` to a one-shot echo server in `outside` and returns the source address
 * the server saw. The sender repeats until the echo comes back, so no timing is assumed.
 */
async function udpSourceSeenOutside(pod: string, outside: string): Promise<string> {
  const server = spawn('ip', ['netns', 'exec', outside, process.execPath, '-e', `
    const s = require('node:dgram').createSocket('udp4');
    s.on('message', (m, r) => s.send(m, r.port, r.address, () => { console.log(r.address); s.close(); }));
    s.bind(9999, '192.0.2.2', () => console.log('ready'));`], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const exited = new Promise<void>((resolve) => server.on('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    server.stdout.on('data', (b: Buffer) => { out += b.toString(); if (out.startsWith('ready\n')) resolve(); });
    server.on('close', () => reject(new Error(`echo server exited early: ${out}`)));
  });
  await inNs(pod, [process.execPath, '-e', `
    const s = require('node:dgram').createSocket('udp4');
    let n = 0;
    const t = setInterval(() => { if (++n > 100) { console.error('no echo'); process.exit(1); } s.send('weft', 9999, '192.0.2.2'); }, 100);
    s.on('message', () => { clearInterval(t); s.close(); });`]);
  await exited;
  return out.split('\n')[1] ?? '';
}

for (const kind of ['iptables', 'nftables'] as const) {
  describe(`${kind} backend`, { skip }, () => {
    test('ensure twice leaves exactly one copy of each rule, in order; check agrees', async () => {
      const ns = await newNs();
      const fw = createBackend(kind, { runner: netnsRunner(ns) });
      assert.equal((await fw.check(rules)).inSync, false);
      assert.equal((await fw.ensure(rules)).changed, true);
      const second = await fw.ensure(rules);
      assert.deepEqual(second, { inSync: true, missing: [], unexpected: [], changed: false });
      assertExact(kind, await installed(ns, kind));
      assert.equal((await installed(ns, kind, 'ip6')).length, 10 - (kind === 'nftables' ? 2 : 0));
      assert.equal((await fw.check(rules)).inSync, true);
    });

    test('a partial or tampered set is detected and rebuilt exactly', async () => {
      const ns = await newNs();
      const fw = createBackend(kind, { runner: netnsRunner(ns) });
      await fw.ensure(rules);
      if (kind === 'iptables') {
        await inNs(ns, ['iptables', '-t', 'nat', '-D', 'FLANNEL-POSTRTG', '3']);
        await inNs(ns, ['iptables', '-t', 'nat', '-I', 'FLANNEL-POSTRTG', '-s', '6.6.6.6/32', '-j', 'RETURN']);
        await inNs(ns, ['iptables', '-t', 'filter', '-A', 'FORWARD', '-m', 'comment', '--comment', 'flanneld forward', '-j', 'FLANNEL-FWD']);
      } else {
        await inNs(ns, ['nft', 'insert rule ip flannel-ipv4 postrtg ip saddr 6.6.6.6 return']);
        await inNs(ns, ['nft', 'flush chain ip flannel-ipv4 forward']);
      }
      const drift = await fw.check(rules);
      assert.equal(drift.inSync, false);
      assert.ok(drift.missing.length >= 1, JSON.stringify(drift));
      assert.ok(drift.unexpected.some((u) => u.includes('6.6.6.6')), JSON.stringify(drift));
      assert.equal((await fw.ensure(rules)).changed, true);
      assertExact(kind, await installed(ns, kind));
    });

    test('remove leaves nothing behind, and is idempotent', async () => {
      const ns = await newNs();
      const fw = createBackend(kind, { runner: netnsRunner(ns) });
      await fw.ensure(rules);
      await fw.remove(rules);
      await fw.remove(rules);
      assert.deepEqual(await installed(ns, kind), []);
      assert.deepEqual(await installed(ns, kind, 'ip6'), []);
      const everything = kind === 'iptables' ? await inNs(ns, ['iptables-save']) + await inNs(ns, ['ip6tables-save']) : await inNs(ns, ['nft', 'list', 'ruleset']);
      assert.doesNotMatch(everything, /flannel/i);
    });

    test('pod → outside works through the node only with the rules, and is seen from the node address', { timeout: 120_000 }, async () => {
      const { pod, node, outside } = await topology();
      assert.notEqual(await ping(pod), 0, 'without masquerade the reply has no route back to the pod network');
      const fw = createBackend(kind, { runner: netnsRunner(node) });
      await fw.ensure(calcFlannelRules({ network: N, subnet: P, randomFully: await fw.supportsRandomFully() }));
      assert.equal(await ping(pod), 0);
      assert.equal(await udpSourceSeenOutside(pod, outside), '192.0.2.1');
      await fw.remove(rules);
      assert.notEqual(await ping(pod), 0, 'after remove the pod is unreachable from outside again');
    });
  });
}

/** Per chain, exactly the expected lines in order (iptables-save orders tables and chains its own way). */
function assertExact(kind: BackendKind, lines: string[]): void {
  if (kind === 'nftables') {
    assert.deepEqual(lines, NFT_V4);
    return;
  }
  const chainOf = (l: string): string => l.split(' ')[1] ?? '';
  for (const chain of ['POSTROUTING', 'FLANNEL-POSTRTG', 'FORWARD', 'FLANNEL-FWD']) {
    assert.deepEqual(lines.filter((l) => chainOf(l) === chain), IPTABLES_V4.filter((l) => chainOf(l) === chain), chain);
  }
  assert.equal(lines.length, IPTABLES_V4.length);
}

describe('per-container masquerade (bridge ipMasq, FLANNEL_IPMASQ=false)', { skip }, () => {
  const chain = 'CNI-d7d30e1b6e7b059597f03edc';
  const c = '-m comment --comment "name: \\"probenet\\" id: \\"probe-ctr-1\\""';

  test('setup twice gives one copy of the bridge plugin rules; teardown (twice) removes them', async () => {
    const ns = await newNs();
    const runner = netnsRunner(ns);
    const o = { runner, network: 'probenet', containerId: 'probe-ctr-1', ips: ['10.99.1.2/24'] };
    await setupContainerMasq(o);
    await setupContainerMasq(o);
    assert.deepEqual(await installed(ns, 'iptables'), [
      `-A POSTROUTING -s 10.99.1.2/32 ${c} -j ${chain}`,
      `-A ${chain} -d 10.99.1.0/24 ${c} -j ACCEPT`,
      `-A ${chain} ! -d 224.0.0.0/4 ${c} -j MASQUERADE`,
    ]);
    await teardownContainerMasq({ runner, network: 'probenet', containerId: 'probe-ctr-1' });
    await teardownContainerMasq({ runner, network: 'probenet', containerId: 'probe-ctr-1' });
    assert.deepEqual(await installed(ns, 'iptables'), []);
    assert.doesNotMatch(await inNs(ns, ['iptables-save', '-t', 'nat']), /CNI-/);
  });

  test('the per-container chain alone lets the pod reach outside, from the node address', { timeout: 120_000 }, async () => {
    const { pod, node, outside } = await topology();
    const runner = netnsRunner(node);
    await setupContainerMasq({ runner, network: 'probenet', containerId: 'probe-ctr-1', ips: ['10.99.1.2/24'] });
    assert.equal(await ping(pod), 0);
    assert.equal(await udpSourceSeenOutside(pod, outside), '192.0.2.1');
    await teardownContainerMasq({ runner, network: 'probenet', containerId: 'probe-ctr-1' });
    assert.notEqual(await ping(pod), 0);
  });
});

describe('backend auto-detection with the real tools', { skip }, () => {
  test('fresh namespace → iptables; only weft nft tables → nftables; iptables rules → iptables', async () => {
    const ns = await newNs();
    const runner = netnsRunner(ns);
    assert.equal((await detectBackend({ runner })).kind, 'iptables');
    const nft = createBackend('nftables', { runner });
    await nft.ensure(rules);
    assert.equal((await detectBackend({ runner })).kind, 'nftables');
    await nft.remove(rules);
    await createBackend('iptables', { runner }).ensure(rules);
    assert.equal((await detectBackend({ runner })).kind, 'iptables');
  });
});
