// `weft probe --to` targets: ADDR, ADDR:PORT ([ADDR]:PORT for IPv6), or METHOD://ADDR[:PORT]
// for one method only. A plain target is probed with every method of --kinds; tcp and udp use
// its port, else --port. Only IP literals: a probe resolves no names.
import { isIP } from 'node:net';
import { WeftError } from '../errors.ts';
import { MAX_TARGETS, isProbeMethod, type ProbeMethod, type ProbeTarget } from './types.ts';

const bad = (spec: string, why: string): WeftError => new WeftError('WEFT_INVALID_CONFIG', `--to ${JSON.stringify(spec.slice(0, 80))}: ${why}`);

function splitHostPort(spec: string, rest: string): { address: string; port?: number } {
  let address = rest;
  let port: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest);
  if (bracketed?.[1] !== undefined) {
    address = bracketed[1];
    port = bracketed[2];
  } else if (isIP(rest) === 0) {
    const i = rest.lastIndexOf(':');
    if (i > 0 && rest.indexOf(':') === i) {
      address = rest.slice(0, i);
      port = rest.slice(i + 1);
    }
  }
  if (isIP(address) === 0) throw bad(spec, 'expected an IP address (optionally with :port), e.g. 10.244.1.5 or 10.244.1.5:6785 or [fd00::5]:6785');
  if (port === undefined) return { address };
  const n = Number(port);
  if (!/^\d{1,5}$/.test(port) || n < 1 || n > 65535) throw bad(spec, 'the port must be 1-65535');
  return { address, port: n };
}

export function parseTargets(specs: readonly string[], methods: readonly ProbeMethod[], defaultPort: number): ProbeTarget[] {
  const out: ProbeTarget[] = [];
  for (const spec of specs.flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '')) {
    const scheme = /^([a-z]+):\/\/(.*)$/.exec(spec);
    if (scheme?.[1] !== undefined && !isProbeMethod(scheme[1])) throw bad(spec, `unknown method ${scheme[1]}; expected icmp://, tcp:// or udp://`);
    const only = scheme?.[1] as ProbeMethod | undefined;
    const { address, port } = splitHostPort(spec, scheme?.[2] ?? spec);
    for (const method of only === undefined ? methods : [only]) {
      out.push(method === 'icmp' ? { method, address } : { method, address, port: port ?? defaultPort });
    }
    if (out.length > MAX_TARGETS * 3) throw bad(spec, `more than ${MAX_TARGETS} targets`);
  }
  if (out.length === 0) throw new WeftError('WEFT_INVALID_CONFIG', '--to: no target given; e.g. --to 10.244.1.5,10.244.2.7');
  return out;
}
