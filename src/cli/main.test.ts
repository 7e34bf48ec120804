// The `weft` command as a user meets it: the real bin/weft, no root needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const version = (JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { version: string }).version;
const weft = (...args: string[]): { code: number | null; stdout: string; stderr: string } => {
  const r = spawnSync(`${root}bin/weft`, args, { encoding: 'utf8', env: { ...process.env, WEFT_STATUS_SOCKET: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

test("--version (and flanneld's -version) print package.json's version", () => {
  for (const args of [['--version'], ['-version'], ['agent', '--version'], ['agent', '-version']]) {
    const r = weft(...args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout.trim(), version, args.join(' '));
  }
});

test("weft agent reads flanneld's one-dash long flags as flanneld does", () => {
  // Every flag before the last is parsed; the last one's bad value is what stops it, before any work.
  const r = weft('agent', '-etcd-endpoints=http://127.0.0.1:1', '-iface=eth0', '-ip-masq', '-etcd-prefix', '/x', '-log-level=loud');
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stderr, 'weft agent: --log-level="loud": expected one of trace, debug, info, warn, error\nsee `weft agent --help`\n');
  const bad = weft('agent', '-etcd-endpoints=localhost:2379');
  assert.match(bad.stderr, /--etcd-endpoints="localhost:2379": expected http\(s\):\/\/host:port/);
});

test("flanneld's flags that weft lacks: one line naming the flag and what to use, exit 2", () => {
  const r = weft('agent', '--ip-masq', '--net-config-path=/etc/kube-flannel/net-conf.json', '--healthz-port=8081');
  assert.equal(r.code, 2);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 2, r.stderr);
  assert.match(lines[0] ?? '', /^weft agent: --net-config-path is not supported by weft: .*--kube-config-map/);
  assert.equal(lines[1], 'see `weft agent --help`');
});

test('usage errors: one line and where the help is, exit 2, never the whole help', () => {
  const cases: [string[], RegExp][] = [
    [['agent', '--bogus'], /^weft agent: unknown option '--bogus'$/],
    [['status', '--socket'], /^weft status: option '--socket <path>' argument missing$/],
    [['lab', 'up', '--nodes', 'x'], /^weft lab up: option '--nodes <n>' argument 'x' is invalid\. expected a whole number\.$/],
    [['lab', 'exec'], /^weft lab exec: missing required argument 'member'$/],
    [['no-such-command'], /^weft: unknown command 'no-such-command'$/],
  ];
  for (const [args, re] of cases) {
    const r = weft(...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(lines[0] ?? '', re);
    assert.match(lines[1] ?? '', /^see `weft( [a-z-]+)* --help`$/);
  }
});

test('every command has --help; those that report state have --json', async () => {
  // Walked from the registry itself, so a new command cannot be missed.
  const { Command } = await import('commander');
  const { registerCommands } = await import('./commands.ts');
  const program = new Command('weft');
  registerCommands(program, 'test');
  const all: string[] = [];
  const walk = (c: InstanceType<typeof Command>, path: string): void => {
    for (const sub of c.commands) {
      const name = `${path}${path ? ' ' : ''}${sub.name()}`;
      all.push(name);
      assert.match(sub.helpInformation(), /^Usage: /, name);
      walk(sub, name);
    }
  };
  walk(program, '');
  const reportState = ['status', 'rmpeer', 'leave', 'uninstall', 'doctor', 'manifests', 'install-cni', 'probe', 'check', 'lab up', 'lab check', 'lab status', 'lab down'];
  for (const c of reportState) {
    assert.ok(all.includes(c), `${c} is a command`);
    const cmd = c.split(' ').reduce((at: InstanceType<typeof Command>, n) => at.commands.find((x) => x.name() === n)!, program);
    assert.ok(cmd.options.some((o) => o.long === '--json'), `${c} has --json`);
  }
  for (const c of ['agent', 'lab exec', 'cni']) assert.equal(weft(...c.split(' '), '--help').code, 0, `${c} --help through the real binary`);
});
