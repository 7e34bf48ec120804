// `weft probe` and `weft probe serve` inside a lab (root only): the same probe code `weft check`
// runs in cluster pods, here between lab pods and nodes on one node and across nodes, over the
// lab's real overlay; and `lab check` on the same lab, whose probes use that code too.
// The lab (prb<hex>) is removed by `lab down` in an after hook, registered before it exists;
// the responders this test starts are stopped by their PIDs.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { CheckReport, LabStatus } from '../../src/lab/index.ts';
import { ETCD_BIN } from '../../src/lab/etcd.ts';
import { netnsPath } from '../../src/lab/netns.ts';
import { WEFT_BIN, WEFT_CNI_PLUGIN } from '../../src/lab/paths.ts';
import { run, type RunResult } from '../../src/lab/run.ts';
import { parseProbeReport } from '../../src/probe/report.ts';
import type { ProbeReport } from '../../src/probe/types.ts';

const missing = process.getuid?.() !== 0
  ? 'needs root: the lab creates network namespaces'
  : !(await access(WEFT_CNI_PLUGIN).then(() => true, () => false))
    ? 'build/weft-cni is not built'
    : !(await access(ETCD_BIN).then(() => true, () => false)) ? `${ETCD_BIN} is not installed` : false;

const weft = (...args: string[]): Promise<RunResult> => run([WEFT_BIN, ...args], { timeoutMs: 180_000 });
const inNs = (ns: string, ...argv: string[]): Promise<RunResult> => run(['nsenter', `--net=${netnsPath(ns)}`, '--', ...argv], { timeoutMs: 60_000 });

const responders: ChildProcessWithoutNullStreams[] = [];
after(() => {
  for (const r of responders) if (r.exitCode === null && r.pid !== undefined) process.kill(r.pid, 'SIGKILL');
});

/** `weft probe serve --port 0` in a namespace; resolves to its port once it listens. */
function serveIn(ns: string): Promise<{ port: number; child: ChildProcessWithoutNullStreams }> {
  const child = spawn('nsenter', [`--net=${netnsPath(ns)}`, '--', WEFT_BIN, 'probe', 'serve', '--port', '0', '--json', '--exit-after', '10m'], { stdio: ['pipe', 'pipe', 'pipe'] });
  responders.push(child);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on('close', (code) => reject(new Error(`weft probe serve in ${ns} exited (${code}) before it listened: ${stderr}`)));
    createInterface({ input: child.stdout }).once('line', (line) => {
      const port = (JSON.parse(line) as { listening?: { port?: unknown } }).listening?.port;
      if (typeof port === 'number') resolve({ port, child });
      else reject(new Error(`unexpected first line from weft probe serve: ${line}`));
    });
  });
}

async function probeFrom(ns: string, ...args: string[]): Promise<{ code: number | null; report: ProbeReport }> {
  const r = await inNs(ns, WEFT_BIN, 'probe', '--json', ...args);
  const report = parseProbeReport(r.stdout);
  assert.ok(report, `no report from weft probe in ${ns}: ${r.stdout} ${r.stderr}`);
  return { code: r.code, report };
}

test('weft probe between lab pods and nodes: icmp, tcp and udp pass on one node and across nodes; a path without a responder fails by name; lab check passes', { skip: missing, timeout: 600_000 }, async () => {
  const name = `prb${randomBytes(3).toString('hex')}`;
  after(async () => void (await weft('lab', 'down', '--name', name)));
  const up = await weft('lab', 'up', '--name', name, '--store', 'etcd', '--nodes', '2', '--pods-per-node', '2', '--json');
  assert.equal(up.code, 0, up.stderr);
  const status = JSON.parse(up.stdout) as LabStatus;
  const node = (n: string): LabStatus['nodes'][number] => status.nodes.find((x) => x.name === n) ?? assert.fail(`no node ${n}`);
  const pod = (n: string, p: string): { ns: string; ip: string } => {
    const found = node(n).pods.find((x) => x.name === p) ?? assert.fail(`no pod ${p}`);
    return { ns: found.ns, ip: found.addresses[0]?.split('/')[0] ?? assert.fail(`${p} has no address`) };
  };
  const [src, sameNode, otherNode, silent] = [pod('n1', 'n1-p1'), pod('n1', 'n1-p2'), pod('n2', 'n2-p1'), pod('n2', 'n2-p2')];
  const [local, remote] = [await serveIn(sameNode.ns), await serveIn(otherNode.ns)];

  const { code, report } = await probeFrom(src.ns, '--kinds', 'icmp,tcp,udp',
    '--to', `${sameNode.ip}:${local.port},${otherNode.ip}:${remote.port}`,
    '--to', `icmp://${node('n1').address},icmp://${node('n2').address}`);
  const failed = report.results.filter((r) => !r.ok).map((r) => `${r.method} ${r.address}: ${r.error}`);
  assert.deepEqual(failed, []);
  assert.equal(code, 0);
  assert.equal(report.results.length, 8);
  // Pod to pod is not masqueraded, on one node or across nodes: the responders saw the pod itself.
  for (const r of report.results.filter((x) => x.method !== 'icmp')) assert.equal(r.seen, src.ip, `${r.method} ${r.address}`);

  // The 4096-byte tcp echo crossed the VXLAN overlay in full-size segments both ways; a pod with
  // no responder fails tcp and udp (icmp still passes), with a reason, and the exit code says so.
  const partial = await probeFrom(src.ns, '--kinds', 'icmp,tcp,udp', '--to', `${silent.ip}:${remote.port}`, '--attempts', '2', '--timeout', '500ms');
  assert.equal(partial.code, 1);
  assert.deepEqual(partial.report.results.map((r) => [r.method, r.ok]), [['icmp', true], ['tcp', false], ['udp', false]]);
  assert.match(partial.report.results[1]?.error ?? '', /refused/);

  // The same lab's `lab check`: its icmp probes are src/probe/icmp.ts, its pod-outside probes `weft probe --kinds udp`.
  const check = await weft('lab', 'check', '--name', name, '--json');
  const checked = JSON.parse(check.stdout) as CheckReport;
  assert.deepEqual(checked.probes.filter((p) => !p.ok), []);
  assert.equal(check.code, 0);
  const outside = checked.probes.filter((p) => p.kind === 'pod-outside');
  assert.equal(outside.length, 4);
  for (const p of outside) assert.equal(p.source_seen, p.expected_source, `${p.from}: masqueraded to its node`);
  assert.ok(checked.probes.every((p) => typeof p.rtt_ms === 'number'));
});
