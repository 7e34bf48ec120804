// Several processes sharing one store, as concurrent CNI invocations (or weft and host-local)
// do on a node. Workers are separate Node processes; they start together behind a barrier
// (each reports "ready", then all are told "go") so their work overlaps as much as possible.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const WORKERS = 8;
const PER_WORKER = 25;
const moduleUrl = (name: string): string => new URL(`./${name}`, import.meta.url).href;

interface Worker { ready: Promise<void>; done: Promise<string>; go(): void }

/** Starts a Node process running `body` (an async ESM snippet whose value is printed as JSON) after the barrier. */
function startWorker(body: string): Worker {
  const code = `
    import { once } from 'node:events';
    const work = async () => { ${body} };
    process.stdout.write('ready\\n');
    await once(process.stdin, 'data');
    process.stdin.destroy();
    process.stdout.write(JSON.stringify(await work()) + '\\n');`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let signalReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => { signalReady = resolve; });
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    if (stdout.startsWith('ready\n')) signalReady();
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
  const done = new Promise<string>((resolve, reject) => {
    child.on('close', (code) => {
      if (code === 0) resolve(stdout.slice('ready\n'.length).trim());
      else reject(new Error(`worker exited with ${code}: ${stderr}`));
    });
  });
  // A worker that dies before "ready" must fail the test rather than hang it.
  return { ready: Promise.race([ready, done.then(() => undefined)]), done, go: () => child.stdin.end('go\n') };
}

async function runTogether(bodies: string[]): Promise<unknown[]> {
  const workers = bodies.map(startWorker);
  await Promise.all(workers.map((w) => w.ready));
  for (const w of workers) w.go();
  return (await Promise.all(workers.map((w) => w.done))).map((out) => JSON.parse(out) as unknown);
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'weft-ipam-procs-'));
}

describe('IPAM store shared by processes', () => {
  it(`${WORKERS} processes allocating ${PER_WORKER} addresses each get distinct addresses, then release them all`, async (t) => {
    const dataDir = tempDir();
    t.after(() => rmSync(dataDir, { recursive: true, force: true }));
    const setup = `
      const { HostLocalIpam } = await import(${JSON.stringify(moduleUrl('allocator.ts'))});
      const { parseRangeSets } = await import(${JSON.stringify(moduleUrl('ranges.ts'))});
      const ipam = new HostLocalIpam({ dataDir: ${JSON.stringify(dataDir)}, network: 'procs', rangeSets: parseRangeSets([[{ subnet: '10.7.0.0/24' }]]) });`;
    const ids = (w: number): string => `Array.from({ length: ${PER_WORKER} }, (_, i) => 'w${w}-c' + i)`;
    const allocate = (w: number): string => `${setup}
      return Promise.all(${ids(w)}.map(async (id) => [id, (await ipam.allocate({ containerId: id, ifname: 'eth0' }))[0].address]));`;
    const release = (w: number): string => `${setup}
      return Promise.all(${ids(w)}.map(async (id) => [id, await ipam.release({ containerId: id, ifname: 'eth0' })]));`;
    const workers = Array.from({ length: WORKERS }, (_, w) => w);

    const allocated = (await runTogether(workers.map(allocate))).flat() as [string, string][];
    assert.equal(allocated.length, WORKERS * PER_WORKER);
    const addresses = new Set(allocated.map(([, address]) => address));
    assert.equal(addresses.size, WORKERS * PER_WORKER, 'every address must be handed out once');
    const storeDir = join(dataDir, 'procs');
    for (const [id, address] of allocated) {
      assert.match(address, /^10\.7\.0\.([2-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-4])$/);
      assert.equal(readFileSync(join(storeDir, address), 'latin1'), `${id}\r\neth0`);
    }
    assert.equal(readdirSync(storeDir).length, WORKERS * PER_WORKER + 2);

    const released = (await runTogether(workers.map(release))).flat() as [string, string[]][];
    for (const [id, addressesOfId] of released) {
      assert.deepEqual(addressesOfId, [allocated.find(([owner]) => owner === id)![1]], id);
    }
    assert.deepEqual(readdirSync(storeDir).sort(), ['last_reserved_ip.0', 'lock']);
  });

  it('the store lock admits one holder at a time across and within processes', async (t) => {
    const dir = tempDir();
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const counter = join(dir, 'counter');
    writeFileSync(counter, '0');
    // Each critical section claims a marker with O_EXCL (fails if anyone else is inside) and
    // does a read-modify-write of a counter with a yield in between (loses updates if two overlap).
    const body = `
      const { withStoreLock } = await import(${JSON.stringify(moduleUrl('store-lock.ts'))});
      const { open, readFile, rm, writeFile } = await import('node:fs/promises');
      const inside = ${JSON.stringify(join(dir, 'inside'))};
      const counter = ${JSON.stringify(counter)};
      await Promise.all(Array.from({ length: ${PER_WORKER} }, () => withStoreLock(${JSON.stringify(join(dir, 'lock'))}, async () => {
        const marker = await open(inside, 'wx');
        const n = Number(await readFile(counter, 'utf8'));
        await new Promise((resolve) => setImmediate(resolve));
        await writeFile(counter, String(n + 1));
        await marker.close();
        await rm(inside);
      })));
      return true;`;
    await runTogether(Array.from({ length: WORKERS }, () => body));
    assert.equal(readFileSync(counter, 'utf8'), String(WORKERS * PER_WORKER));
  });
});
