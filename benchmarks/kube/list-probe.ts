// One list of every Node, in a fresh process, to see what the list path alone costs (bench:kube
// runs it in the control-plane host's namespace against a stand-in holding N Nodes):
//   client: as the reflector lists today: KubeClient.listNodes() (client-node deserialises the
//           response into its model classes), then each item copied to plain JSON and slimmed;
//   raw:    the same GET read as JSON by fetch and slimmed, no model classes, no copy.
// Prints one JSON line: RSS before, the peak, RSS after (the slimmed items kept alive) and after a
// full GC, MB. Run with --expose-gc.
//   node --expose-gc list-probe.ts --kubeconfig FILE --how client|raw
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { connectKube } from '../../src/kube/client.ts';
import { slimNode } from '../../src/kube/slim.ts';

const { values } = parseArgs({ options: { kubeconfig: { type: 'string' }, how: { type: 'string' } }, strict: true });
if (!values.kubeconfig || (values.how !== 'client' && values.how !== 'raw')) throw new Error('usage: list-probe.ts --kubeconfig FILE --how client|raw');
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

const mb = (field: 'VmRSS' | 'VmHWM'): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? NaN) / 1024;

const client = await connectKube({ kubeconfigFile: values.kubeconfig });
gc();
const before = mb('VmRSS');
const hwmBefore = mb('VmHWM');
let kept: unknown[];
if (values.how === 'client') {
  kept = (await client.listNodes()).items.map((item) => slimNode(JSON.parse(JSON.stringify(item)) as object));
} else {
  const res = await fetch(`${client.server}/api/v1/nodes`, { headers: { Accept: 'application/json' } });
  kept = ((await res.json()) as { items: object[] }).items.map((item) => slimNode(item));
}
const after = mb('VmRSS');
gc();
process.stdout.write(`${JSON.stringify({ how: values.how, items: kept.length, beforeMb: before, peakMb: Math.max(mb('VmHWM'), hwmBefore), afterMb: after, afterGcMb: mb('VmRSS') })}\n`);
process.exit(0);
