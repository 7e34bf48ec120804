// `weft probe`: connectivity probes from wherever it runs (a lab pod's namespace, a probe pod
// in a cluster), and `weft probe serve`, the responder the tcp and udp probes talk to. The
// work is in src/probe; `weft lab check` and `weft check` run the same code.
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_PROBE_PORT, PROBE_METHODS, isProbeMethod, type ProbeMethod } from '../probe/types.ts';

function methods(value: string): ProbeMethod[] {
  const list = value.split(',').map((k) => k.trim()).filter((k) => k !== '');
  if (list.length === 0 || !list.every(isProbeMethod)) throw new InvalidArgumentError(`expected a comma-separated list of: ${PROBE_METHODS.join(', ')}.`);
  return [...new Set(list)];
}

function port(value: string): number {
  const n = Number(value);
  if (!/^\d{1,5}$/.test(value) || n > 65535) throw new InvalidArgumentError('expected a port number 0-65535.');
  return n;
}

function count(max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < 1 || n > max) throw new InvalidArgumentError(`expected a whole number 1-${max}.`);
    return n;
  };
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

async function seconds(flag: string, value: string, min: number, max: number): Promise<number> {
  const { parseDuration } = await import('../agent/options.ts');
  const s = parseDuration(flag, value, 1);
  if (s < min || s > max) throw new InvalidArgumentError(`--${flag} must be between ${min} s and ${max} s.`);
  return s;
}

interface ProbeFlags {
  to?: string[];
  kinds: ProbeMethod[];
  port: number;
  attempts: number;
  timeout: string;
  payloadBytes: number;
  concurrency: number;
  json?: boolean;
}

export function registerProbe(program: Command): void {
  const probe = program
    .command('probe')
    .description('probe addresses from here (icmp by ping, tcp and udp against `weft probe serve`) and print what passed; exits 1 when any probe fails')
    .option('--to <targets>', 'ADDR, ADDR:PORT or METHOD://ADDR[:PORT] (METHOD icmp, tcp or udp: that method only), comma-separated or repeated', collect)
    .option('--kinds <methods>', `methods for targets without METHOD://: ${PROBE_METHODS.join(', ')}`, methods, ['icmp'] as ProbeMethod[])
    .option('--port <n>', 'tcp and udp port of targets without one', port, DEFAULT_PROBE_PORT)
    .option('--attempts <n>', 'tries before a probe counts as failed', count(20), 3)
    .option('--timeout <duration>', 'how long each try waits for its answer (icmp: whole seconds)', '1s')
    .option('--payload-bytes <n>', 'tcp: bytes echoed, several full-size segments by default (0: handshake only)', (v) => (v === '0' ? 0 : count(65536)(v)), 4096)
    .option('--concurrency <n>', 'probes in flight at once', count(64), 16)
    .option('--json', 'print {"weft_probe":1,"results":[{method,address,port,ok,rtt_ms,error,seen,nonce,attempts}],"passed":N,"failed":M} on one line')
    .enablePositionalOptions()
    .action(async (o: ProbeFlags) => {
      const [{ parseTargets }, { runProbes }, { renderProbeReport }] = await Promise.all([
        import('../probe/targets.ts'), import('../probe/run.ts'), import('../probe/render.ts'),
      ]);
      const targets = parseTargets(o.to ?? [], o.kinds, o.port);
      const waitMs = Math.round((await seconds('timeout', o.timeout, 0.01, 60)) * 1000);
      const report = await runProbes(targets, { attempts: o.attempts, waitMs, concurrency: o.concurrency, tcpPayloadBytes: o.payloadBytes });
      process.stdout.write(o.json === true ? `${JSON.stringify(report)}\n` : renderProbeReport(report));
      if (report.failed > 0) process.exitCode = 1;
    });

  probe
    .command('serve')
    .description('answer tcp and udp probes on one port until SIGTERM or SIGINT')
    .option('--port <n>', 'the port, for tcp and udp (0: a free one, printed)', port, DEFAULT_PROBE_PORT)
    .option('--address <ip>', 'the address to listen on (default: all)')
    .addOption(new Option('--exit-after <duration>', 'stop by itself after this long (a leftover responder does not run forever)'))
    .option('--verbose', 'one line on stderr per probe answered')
    .option('--json', 'print {"listening":{"address","port"}} once listening')
    .action(async (o: { port: number; address?: string; exitAfter?: string; verbose?: boolean; json?: boolean }) => {
      const { startProbeServer } = await import('../probe/serve.ts');
      const exitAfter = o.exitAfter === undefined ? undefined : await seconds('exit-after', o.exitAfter, 1, 30 * 86400);
      const server = await startProbeServer({
        port: o.port,
        ...(o.address === undefined ? {} : { address: o.address }),
        ...(o.verbose === true ? { onProbe: (p) => void process.stderr.write(`${p.method} ${p.nonce} from ${p.from}\n`) } : {}),
      });
      const listening = { address: server.address, port: server.port };
      process.stdout.write(o.json === true ? `${JSON.stringify({ listening })}\n` : `weft probe serve: listening on ${server.address} port ${server.port} (tcp and udp)\n`);
      await new Promise<void>((resolve) => {
        const stop = (): void => resolve();
        process.once('SIGTERM', stop).once('SIGINT', stop);
        if (exitAfter !== undefined) setTimeout(stop, exitAfter * 1000).unref();
      });
      await server.close();
    });
}
