import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePingRtt } from './ping.ts';

test('rtt comes from the reply line of iputils ping', () => {
  const out = `PING 10.16.1.3 (10.16.1.3) 56(84) bytes of data.
64 bytes from 10.16.1.3: icmp_seq=1 ttl=64 time=0.062 ms

--- 10.16.1.3 ping statistics ---
1 packets transmitted, 1 received, 0% packet loss, time 0ms
rtt min/avg/max/mdev = 0.062/0.062/0.062/0.000 ms
`;
  assert.equal(parsePingRtt(out), 0.062);
  assert.equal(parsePingRtt('64 bytes from 1.2.3.4: icmp_seq=1 ttl=64 time=12.5 ms'), 12.5);
});

test('the summary line is used when there is no reply line (ping -q)', () => {
  assert.equal(parsePingRtt('rtt min/avg/max/mdev = 0.100/0.250/0.400/0.010 ms\n'), 0.25);
});

test('no reply means no rtt', () => {
  const out = `PING 10.16.2.2 (10.16.2.2) 56(84) bytes of data.

--- 10.16.2.2 ping statistics ---
1 packets transmitted, 0 received, 100% packet loss, time 0ms
`;
  assert.equal(parsePingRtt(out), undefined);
  assert.equal(parsePingRtt('From 10.16.1.1 icmp_seq=1 Destination Host Unreachable'), undefined);
});
