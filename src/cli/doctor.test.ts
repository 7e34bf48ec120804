import { test } from 'node:test';
import assert from 'node:assert/strict';
import { confLeftovers, type LeftoverReport } from '../agent/leftovers.ts';
import { renderStatus, renderWarnings } from '../agent/render-status.ts';
import type { AgentStatus } from '../agent/status.ts';
import { renderDoctor } from './doctor.ts';

const blocked = confLeftovers('/etc/cni/net.d', [
  { name: '10-aws.conflist', types: ['aws-cni', 'egress-cni', 'portmap'] },
  { name: '10-flannel.conflist', types: ['flannel', 'portmap'] },
]);

test('doctor: each finding with its severity and the commands, one per line; what did not run; notes', () => {
  const r: LeftoverReport = { ...blocked, notChecked: ['iptables-legacy-save failed (exit 1): Permission denied'] };
  const text = renderDoctor(r, '/etc/cni/net.d and iptables');
  assert.match(text, /^weft doctor: 1 thing\(s\) in weft's way on this node\n/);
  assert.match(text, /\n\[blocks pods\] \/etc\/cni\/net\.d\/10-aws\.conflist sorts before weft's 10-flannel\.conflist/);
  assert.match(text, /\n {2}to remove it, run:\n {4}rm \/etc\/cni\/net\.d\/10-aws\.conflist\n/);
  assert.match(text, /\nnot checked:\n {2}iptables-legacy-save failed/);
  assert.equal(renderDoctor({ findings: [], notes: [], notChecked: [] }, '/d and iptables'), "weft doctor: nothing in weft's way on this node (checked /d and iptables)\n");
  assert.match(renderDoctor({ findings: [], notes: [], notChecked: ['x'] }, ''), /^weft doctor: nothing found, but not every check ran\n/);
});

test('weft status ends with the warnings and their fixes; a malformed or absent list shows nothing', () => {
  const status: AgentStatus = {
    node: 'n1', mode: 'etcd', phase: 'degraded', ready: false, reasons: ['x'], publicIp: null, interface: null, backend: null,
    store: { kind: 'etcd', endpoints: [], prefix: '/p' }, lease: null, network: null, mtu: null, peers: [], rejected: [], rejectedCount: 0,
    lastSync: null, errors: [], warnings: blocked.findings,
  };
  const text = renderStatus(status);
  assert.match(text, /\nwarnings \(in weft's way on this node now\):\n {2}\/etc\/cni\/net\.d\/10-aws\.conflist sorts before .*\n {4}to remove it, run:\n {6}rm \/etc\/cni\/net\.d\/10-aws\.conflist\n$/);
  assert.equal(renderWarnings(undefined), '');
  assert.equal(renderWarnings([{ message: 7 }] as unknown as AgentStatus['warnings']), '');
  assert.doesNotMatch(renderStatus({ ...status, warnings: [] }), /warnings/);
});
