// End-to-end tests of the weft CNI plugin on real kernel networking: the front end is
// exec'd in a scratch node namespace exactly as a runtime does it, against real pod
// namespaces, both with a CNI server running (the fast path) and without (standalone).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isRoot, sh, TestNode } from './support/cni-node.ts';

const skip = isRoot() ? false : 'needs root (network namespaces)';

for (const mode of ['server', 'standalone'] as const) {
  describe(`weft CNI plugin (${mode})`, { skip }, () => {
    let node: TestNode;
    before(async () => {
      node = await TestNode.create({ server: mode === 'server' });
    });
    after(async () => {
      await node?.destroy();
    });

    for (const version of ['0.3.1', '0.4.0', '1.0.0', '1.1.0']) {
      test(`ADD, CHECK, DEL and DEL again with cniVersion ${version}`, async () => {
        const netns = node.addPodNetns();
        const id = `life-${version.replaceAll('.', '')}`;
        const config = node.config({}, version);
        const add = await node.add(id, netns, config);
        assert.equal(add.code, 0, add.stdout + add.stderr);
        const result = add.json!;
        assert.equal(result.cniVersion, version);
        const ips = result.ips as { address: string; gateway: string; interface: number; version?: string }[];
        assert.equal(ips.length, 1);
        assert.match(ips[0]!.address, /^10\.77\.5\.\d+\/24$/);
        assert.equal(ips[0]!.gateway, '10.77.5.1');
        assert.equal(ips[0]!.version, version < '1.0.0' ? '4' : undefined);
        const ifaces = result.interfaces as { name: string; mac: string; sandbox?: string; mtu?: number }[];
        assert.deepEqual(ifaces.map((i) => i.name).filter((n) => n === 'cni0' || n === 'eth0'), ['cni0', 'eth0']);
        assert.equal(ifaces[2]!.sandbox, netns);
        assert.equal(ifaces[2]!.mtu, version === '1.1.0' ? 1450 : undefined);

        // What the kernel has: the pod's address, MTU, routes, and a working path to the gateway.
        const pod = netns.replace('/run/netns/', '');
        const eth0 = JSON.parse(sh('ip', ['-j', '-n', pod, 'addr', 'show', 'eth0']))[0];
        assert.equal(eth0.mtu, 1450);
        assert.equal(eth0.address, ifaces[2]!.mac);
        assert.ok(eth0.addr_info.some((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}` === ips[0]!.address));
        const routes = JSON.parse(sh('ip', ['-j', '-n', pod, 'route', 'show'])) as { dst: string; gateway?: string }[];
        assert.ok(routes.some((r) => r.dst === 'default' && r.gateway === '10.77.5.1'));
        assert.ok(routes.some((r) => r.dst === '10.77.0.0/16' && r.gateway === '10.77.5.1'));
        assert.equal(node.inPod(netns, ['ping', '-c', '1', '-W', '2', '10.77.5.1']).code, 0);
        assert.equal(node.inPod(netns, ['cat', '/proc/sys/net/ipv4/conf/eth0/arp_notify']).stdout.trim(), '1');
        const host = JSON.parse(sh('ip', ['-j', '-n', node.name, '-d', 'link', 'show', ifaces[1]!.name]))[0];
        assert.equal(host.master, 'cni0');
        assert.equal(host.linkinfo.info_slave_data.hairpin, true);
        assert.equal(readFileSync(`/proc/sys/net/ipv4/ip_forward`, 'utf8').trim(), '0', 'the root namespace is untouched');
        assert.equal(node.inNode(['cat', '/proc/sys/net/ipv4/ip_forward']).stdout.trim(), '1');

        if (version !== '0.3.1') {
          const check = await node.cni({ CNI_COMMAND: 'CHECK', CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: 'eth0' }, { ...config, prevResult: result });
          assert.equal(check.code, 0, check.stdout);
        }
        assert.equal((await node.del(id, netns, config)).code, 0);
        assert.equal(sh('ip', ['-n', pod, 'link', 'show']).includes('eth0'), false);
        assert.equal((await node.del(id, netns, config)).code, 0, 'DEL is idempotent');
        assert.equal((await node.del(id, '', config)).code, 0, 'DEL needs no netns');
        assert.deepEqual(node.ipamFiles(), []);
        if (version !== '0.3.1') {
          const check = await node.cni({ CNI_COMMAND: 'CHECK', CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: 'eth0' }, { ...config, prevResult: result });
          assert.equal(check.code, 1);
          assert.match(String(check.json?.msg), /eth0 is missing/);
        }
      });
    }

    test('pods on the node reach each other, and the node reaches them', async () => {
      const a = node.addPodNetns();
      const b = node.addPodNetns();
      const ra = await node.add('reach-a', a);
      const rb = await node.add('reach-b', b);
      const ipOf = (r: typeof ra): string => ((r.json!.ips as { address: string }[])[0]!.address.split('/')[0]) as string;
      assert.equal(node.inPod(a, ['ping', '-c', '1', '-W', '2', ipOf(rb)]).code, 0);
      assert.equal(node.inPod(b, ['ping', '-c', '1', '-W', '2', ipOf(ra)]).code, 0);
      assert.equal(node.inNode(['ping', '-c', '1', '-W', '2', ipOf(ra)]).code, 0);
      await node.del('reach-a', a);
      await node.del('reach-b', b);
      assert.deepEqual(node.ipamFiles(), []);
    });

    test('bad input gets a CNI error naming the problem, and nothing is left behind', async () => {
      const netns = node.addPodNetns();
      const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'bad-1', CNI_NETNS: netns, CNI_IFNAME: 'eth0' };
      const cases: [Record<string, string>, string | Record<string, unknown>, number, RegExp][] = [
        [env, '{"cniVersion":', 6, /error decoding network config/],
        [env, node.config({}, '2.0.0'), 1, /incompatible CNI versions/],
        [{ ...env, CNI_NETNS: '' }, node.config(), 4, /CNI_NETNS/],
        [{ ...env, CNI_CONTAINERID: '', CNI_IFNAME: '' }, node.config(), 4, /\[CNI_CONTAINERID,CNI_IFNAME\]/],
        [{ ...env, CNI_NETNS: '/run/netns/weft-does-not-exist' }, node.config(), 8, /does not exist/],
        [env, node.config({ subnetFile: join(node.dir, 'missing.env') }), 11, /no such file.*agent/],
        [env, node.config({ mtu: 'large' }), 7, /"mtu"/],
      ];
      for (const [e, stdin, code, msg] of cases) {
        const r = await node.cni(e, stdin);
        assert.equal(r.code, 1, `${JSON.stringify(e)}: exit code`);
        assert.equal(r.json?.code, code, r.stdout);
        assert.match(String(r.json?.msg), msg);
        assert.doesNotMatch(r.stdout + r.stderr, /\n\s+at /, 'no stack trace');
      }
      const badEnv = join(node.dir, 'bad.env');
      writeFileSync(badEnv, 'FLANNEL_NETWORK=10.77.0.0/16\nFLANNEL_SUBNET=10.77.5.1/24\nFLANNEL_MTU=fat\nFLANNEL_IPMASQ=true\n');
      const r = await node.add('bad-2', netns, node.config({ subnetFile: badEnv }));
      assert.equal(r.json?.code, 11);
      assert.match(String(r.json?.msg), /FLANNEL_MTU="fat"/);
      assert.deepEqual(node.ipamFiles(), []);
      assert.deepEqual(node.veths(), []);
    });

    test('a request over 1 MiB is refused with CNI error 6 before it reaches the server', async () => {
      const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'huge-1', CNI_NETNS: node.addPodNetns(), CNI_IFNAME: 'eth0' };
      // The front end stops reading stdin at the bound, so node.cni()'s write of the rest gets EPIPE.
      const r = await node.cni(env, { ...node.config(), pad: 'x'.repeat(2 << 20) });
      assert.equal(r.code, 1);
      const answer = r.json as { code: number; msg: string } | undefined;
      assert.equal(answer?.code, 6, r.stdout);
      assert.match(answer.msg, /larger than 1 MiB/);
      assert.deepEqual(node.ipamFiles(), []);
      const ok = await node.cni({ CNI_COMMAND: 'VERSION' }, '{}');
      assert.equal(ok.code, 0, ok.stdout);
    });

    test('a second ADD for the same interface fails and leaves the first intact', async () => {
      const netns = node.addPodNetns();
      const first = await node.add('dup-1', netns);
      assert.equal(first.code, 0);
      const second = await node.add('dup-1', netns);
      assert.equal(second.code, 1);
      assert.match(String(second.json?.msg), /eth0 already exists/);
      assert.equal(node.ipamFiles().length, 1);
      assert.equal(node.inPod(netns, ['ping', '-c', '1', '-W', '2', '10.77.5.1']).code, 0);
      await node.del('dup-1', netns);
    });

    test('an ADD that fails after taking an address gives it back and removes its links', async () => {
      const netns = node.addPodNetns();
      // A multicast MAC passes the config but the kernel refuses to bring the interface up.
      const r = await node.add('rollback-1', netns, node.config({ runtimeConfig: { mac: '01:00:5e:00:00:01' } }));
      assert.equal(r.code, 1, r.stdout);
      assert.deepEqual(node.ipamFiles(), []);
      assert.deepEqual(node.veths(), []);
      assert.equal(sh('ip', ['-n', netns.replace('/run/netns/', ''), 'link', 'show']).includes('eth0'), false);
    });

    test('DEL releases everything even when subnet.env is gone', async () => {
      const env = join(node.dir, 'vanishing.env');
      writeFileSync(env, readFileSync(node.subnetFile));
      const netns = node.addPodNetns();
      const config = node.config({ subnetFile: env });
      assert.equal((await node.add('orphan-1', netns, config)).code, 0);
      rmSync(env);
      const r = await node.del('orphan-1', netns, config);
      assert.equal(r.code, 0, r.stdout);
      assert.deepEqual(node.ipamFiles(), []);
      assert.deepEqual(node.veths(), []);
    });

    test('DEL of something never added succeeds', async () => {
      const r = await node.del('never-added', node.addPodNetns());
      assert.equal(r.code, 0, r.stdout);
      assert.equal(r.stdout, '');
    });

    test('an exhausted subnet gives a clear error and leaks nothing', async () => {
      const small = await TestNode.create({ server: mode === 'server', subnetEnv: 'FLANNEL_NETWORK=10.78.0.0/16\nFLANNEL_SUBNET=10.78.9.1/29\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n' });
      try {
        // A /29 has 8 addresses: network, gateway (.1) and broadcast are never handed out.
        const got: string[] = [];
        for (let i = 0; i < 5; i++) {
          const r = await small.add(`full-${i}`, small.addPodNetns());
          assert.equal(r.code, 0, r.stdout);
          got.push((r.json!.ips as { address: string }[])[0]!.address);
        }
        assert.deepEqual(got.sort(), ['10.78.9.2/29', '10.78.9.3/29', '10.78.9.4/29', '10.78.9.5/29', '10.78.9.6/29']);
        const extra = small.addPodNetns();
        const r = await small.add('full-5', extra);
        assert.equal(r.code, 1);
        assert.equal(r.json?.code, 100);
        assert.match(String(r.json?.msg), /no IP addresses available/);
        assert.equal(small.ipamFiles().length, 5);
        assert.equal(small.veths().length, 5);
        const status = await small.cni({ CNI_COMMAND: 'STATUS' }, small.config({}, '1.1.0'));
        assert.equal(status.code, 1);
        assert.match(String(status.json?.msg), /no free addresses/);
        for (let i = 0; i < 5; i++) assert.equal((await small.del(`full-${i}`, small.pods[i]!.replace(/^/, '/run/netns/'))).code, 0);
        assert.deepEqual(small.ipamFiles(), []);
        assert.deepEqual(small.veths(), []);
      } finally {
        await small.destroy();
      }
    });

    test('50 concurrent ADDs get 50 distinct addresses, and 50 DELs leave nothing', async () => {
      const pods = Array.from({ length: 50 }, () => node.addPodNetns());
      const adds = await Promise.all(pods.map((p, i) => node.add(`burst-${i}`, p)));
      for (const r of adds) assert.equal(r.code, 0, r.stdout + r.stderr);
      const addresses = adds.map((r) => (r.json!.ips as { address: string }[])[0]!.address);
      assert.equal(new Set(addresses).size, 50);
      assert.equal(node.ipamFiles().length, 50);
      const dels = await Promise.all(pods.map((p, i) => node.del(`burst-${i}`, p)));
      for (const r of dels) assert.equal(r.code, 0, r.stdout);
      assert.deepEqual(node.ipamFiles(), []);
      assert.deepEqual(node.veths(), []);
    });

    test('GC releases the addresses of attachments the runtime no longer lists; STATUS is ready', async () => {
      const keep = node.addPodNetns();
      const drop = node.addPodNetns();
      const config = node.config({}, '1.1.0');
      assert.equal((await node.add('gc-keep', keep, config)).code, 0);
      assert.equal((await node.add('gc-drop', drop, config)).code, 0);
      const gc = await node.cni({ CNI_COMMAND: 'GC' }, { ...config, 'cni.dev/valid-attachments': [{ containerID: 'gc-keep', ifname: 'eth0' }] });
      assert.equal(gc.code, 0, gc.stdout);
      assert.equal(node.ipamFiles().length, 1);
      assert.equal(readFileSync(join(node.ipamDir, 'weftnet', node.ipamFiles()[0]!), 'utf8'), 'gc-keep\r\neth0');
      const status = await node.cni({ CNI_COMMAND: 'STATUS' }, config);
      assert.equal(status.code, 0, status.stdout);
      await node.del('gc-keep', keep, config);
      await node.del('gc-drop', drop, config);
    });

    test("flannel's CNI form works as a drop-in and keeps flannel's delegate record", async () => {
      const netns = node.addPodNetns();
      const flannelDir = join(node.dir, 'flannel');
      const config = {
        cniVersion: '0.3.1', name: 'cbr0', type: 'flannel', subnetFile: node.subnetFile, dataDir: flannelDir,
        delegate: { hairpinMode: true, isDefaultGateway: true }, ipam: { dataDir: node.ipamDir },
      };
      const r = await node.add('flannel-1', netns, config);
      assert.equal(r.code, 0, r.stdout);
      assert.equal(node.ipamFiles('cbr0').length, 1);
      const record = JSON.parse(readFileSync(join(flannelDir, 'flannel-1'), 'utf8'));
      assert.equal(record.type, 'bridge');
      assert.deepEqual(record.ipam.ranges, [[{ subnet: '10.77.5.0/24' }]]);
      assert.equal((await node.del('flannel-1', netns, config)).code, 0);
      assert.equal(existsSync(join(flannelDir, 'flannel-1')), false);
      assert.deepEqual(node.ipamFiles('cbr0'), []);
    });

    test('with FLANNEL_IPMASQ=false the plugin masquerades each pod itself, and DEL removes it', async () => {
      const env = join(node.dir, 'nomasq.env');
      writeFileSync(env, 'FLANNEL_NETWORK=10.77.0.0/16\nFLANNEL_SUBNET=10.77.5.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n');
      const netns = node.addPodNetns();
      const config = node.config({ subnetFile: env });
      const r = await node.add('masq-1', netns, config);
      assert.equal(r.code, 0, r.stdout);
      const address = (r.json!.ips as { address: string }[])[0]!.address.split('/')[0] as string;
      const rules = node.inNode(['iptables-save', '-t', 'nat']).stdout;
      assert.match(rules, new RegExp(`-A POSTROUTING -s ${address.replaceAll('.', '\\.')}/32 .*-j CNI-`));
      assert.match(rules, /MASQUERADE/);
      assert.equal((await node.del('masq-1', netns, config)).code, 0);
      assert.doesNotMatch(node.inNode(['iptables-save', '-t', 'nat']).stdout, /CNI-/);
    });
  });
}

// A full disk, for real: the IPAM store on a one-page tmpfs, mounted in a private mount
// namespace (unshare -m) so the host never sees it. The address file's owner fits in the
// page, last_reserved_ip.0 does not: the ADD must fail with ENOSPC and leave nothing behind.
describe('IPAM on a full filesystem', { skip }, () => {
  test('an ADD that hits ENOSPC writing last_reserved_ip.0 gives its address back', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-enospc-'));
    try {
      const allocator = new URL('../../src/ipam/allocator.ts', import.meta.url).href;
      const ranges = new URL('../../src/ipam/ranges.ts', import.meta.url).href;
      const code = `
        import { readdirSync } from 'node:fs';
        import { HostLocalIpam } from ${JSON.stringify(allocator)};
        import { parseRangeSets } from ${JSON.stringify(ranges)};
        const ipam = new HostLocalIpam({ dataDir: process.argv[1], network: 'full', rangeSets: parseRangeSets([[{ subnet: '10.79.0.0/24' }]]) });
        const out = {};
        try { out.added = await ipam.allocate({ containerId: 'c1', ifname: 'eth0' }); } catch (e) { out.error = e.message; }
        out.files = readdirSync(ipam.storeDir).sort();
        out.released = await ipam.release({ containerId: 'other', ifname: 'eth0' });
        console.log(JSON.stringify(out));`;
      const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c',
        'mount -t tmpfs -o size=4k,mode=0755 weft-enospc "$1" && exec "$2" --input-type=module -e "$3" "$1"',
        'sh', dir, process.execPath, code], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { added?: unknown; error?: string; files: string[]; released: string[] };
      assert.equal(out.added, undefined);
      assert.match(String(out.error), /cannot write .*last_reserved_ip\.0: ENOSPC/);
      assert.deepEqual(out.files, ['lock'], 'neither the address file nor an empty last_reserved_ip.0 is left');
      assert.deepEqual(out.released, [], 'a DEL still works');
      assert.deepEqual(readdirSync(dir), [], 'the tmpfs was private to that mount namespace');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
