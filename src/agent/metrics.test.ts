import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AgentMetrics } from './metrics.ts';

test('the exposition carries build info, readiness, peers by path, CNI requests and IPAM usage', async () => {
  const m = new AgentMetrics({ version: '1.2.3', mode: 'etcd', ipamUsage: () => ({ used: 3, free: 250 }) });
  m.readiness('degraded', false);
  m.leaseExpiry(Date.UTC(2026, 0, 2));
  m.peers(new Map([['vxlan', 2], ['unreachable', 1]]), 4);
  m.reconciled(0.002, 5);
  m.cniRequest('ADD', 'ok', 0.03);
  m.cniRequest('ADD', 'error', 0.01);
  m.storeError('lease-renewal');
  const text = await m.text();
  assert.match(text, /weft_build_info\{version="1\.2\.3",mode="etcd",nodejs="v[\d.]+"\} 1/);
  assert.match(text, /weft_ready 0/);
  assert.match(text, /weft_phase\{phase="degraded"\} 1/);
  assert.match(text, /weft_phase\{phase="ready"\} 0/);
  assert.match(text, /weft_lease_expiry_timestamp_seconds 1767312000/);
  assert.match(text, /weft_peers\{path="vxlan"\} 2/);
  assert.match(text, /weft_peers\{path="unreachable"\} 1/);
  assert.match(text, /weft_rejected_peers 4/);
  assert.match(text, /weft_reconcile_changes_total 5/);
  assert.match(text, /weft_cni_requests_total\{verb="ADD",result="ok"\} 1/);
  assert.match(text, /weft_cni_requests_total\{verb="ADD",result="error"\} 1/);
  assert.match(text, /weft_cni_request_duration_seconds_bucket\{le="0.05",verb="ADD"\} 2/);
  assert.match(text, /weft_ipam_addresses\{state="used"\} 3/);
  assert.match(text, /weft_ipam_addresses\{state="free"\} 250/);
  assert.match(text, /weft_store_errors_total\{what="lease-renewal"\} 1/);
  assert.match(text, /weft_event_loop_delay_seconds\{quantile="max"\} [\d.e-]+/);
  m.close();
});

test('two agents in one process keep separate registries', async () => {
  const a = new AgentMetrics({ version: '1', mode: 'etcd' });
  const b = new AgentMetrics({ version: '1', mode: 'mesh' });
  a.cniRequest('DEL', 'ok', 0.001);
  assert.match(await a.text(), /weft_cni_requests_total\{verb="DEL",result="ok"\} 1/);
  assert.doesNotMatch(await b.text(), /verb="DEL"/);
  a.close();
  b.close();
});

test("a mode's own metrics are read at scrape time, counters as their running totals", async () => {
  let sent = 10;
  const m = new AgentMetrics({
    version: '1', mode: 'mesh',
    modeMetrics: [
      { name: 'weft_mesh_peers', help: 'peers', kind: 'gauge', read: () => 3 },
      { name: 'weft_mesh_gossip_sent_bytes_total', help: 'sent', kind: 'counter', read: () => sent },
    ],
  });
  assert.match(await m.text(), /weft_mesh_peers 3/);
  assert.match(await m.text(), /weft_mesh_gossip_sent_bytes_total 10/);
  sent = 25;
  assert.match(await m.text(), /weft_mesh_gossip_sent_bytes_total 25/);
  m.close();
});

test('the fast path: active or not, and its packets by outcome, read at scrape time', async () => {
  let active = true;
  const stats = { rx_redirect: 7, tx_local: 1, tx_remote: 3, tx_remote_neigh: 0, pass_nat: 2, pass_not_pod: 0, pass_other: 11 };
  const m = new AgentMetrics({ version: 't', mode: 'etcd', fastPath: () => (active ? { active, uplinks: [], pods: 1, peers: 1, stats } : { active, reason: 'no BTF', uplinks: [], pods: 0, peers: 0 }) });
  let text = await m.text();
  assert.match(text, /weft_fast_path_active 1/);
  assert.match(text, /weft_fast_path_packets_total\{outcome="rx_redirect"\} 7/);
  assert.match(text, /weft_fast_path_packets_total\{outcome="pass_nat"\} 2/);
  active = false;
  text = await m.text();
  assert.match(text, /weft_fast_path_active 0/);
  assert.doesNotMatch(text, /weft_fast_path_packets_total\{/);
  assert.doesNotMatch(await new AgentMetrics({ version: 't', mode: 'etcd' }).text(), /weft_fast_path/);
});
