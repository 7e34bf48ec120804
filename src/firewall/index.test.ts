import { test } from 'node:test';
import assert from 'node:assert/strict';
import { calcFlannelRules, createFirewall } from './index.ts';
import { fakeRunner } from './testing/fake-runner.ts';

const rules = calcFlannelRules({ network: '10.244.0.0/16', subnet: '10.244.1.0/24' });

test('createFirewall: auto-detects, then removeOtherBackend clears the unused mode (as flanneld does)', async () => {
  const run = fakeRunner((argv) => (argv[0] === 'iptables-save' ? { stdout: '*nat\n-A POSTROUTING -j KUBE-POSTROUTING\nCOMMIT\n' } : {}));
  const fw = await createFirewall({ runner: run });
  assert.equal(fw.kind, 'iptables');
  assert.match(fw.reason, /1 rule/);
  run.calls.length = 0;
  await fw.removeOtherBackend(rules);
  assert.deepEqual(run.calls.map((c) => c.argv.join(' ')), ['nft --version', 'nft -f -']);
  assert.match(run.calls[1]?.input ?? '', /^add table ip flannel-ipv4\ndelete table ip flannel-ipv4\n$/);
});

test('removeOtherBackend does nothing when the other tool is not installed', async () => {
  const run = fakeRunner((argv) => (argv[0] === 'iptables' && argv[1] === '--version' ? { code: 127 } : {}));
  const fw = await createFirewall({ runner: run });
  assert.equal(fw.kind, 'nftables');
  run.calls.length = 0;
  await fw.removeOtherBackend(rules);
  assert.deepEqual(run.calls.map((c) => c.argv.join(' ')), ['iptables --version']);
});
