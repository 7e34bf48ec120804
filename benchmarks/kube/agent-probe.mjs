// Loaded into a cold-started agent by bench:kube (NODE_OPTIONS=--import <this file>), plain
// JavaScript so that it needs no TypeScript stripper. Like bench:control's loop-probe.mjs, every
// 250 ms it writes to WEFT_BENCH_PROBE_FILE the event loop's worst delay so far,
// process.memoryUsage() and V8's heap spaces. Besides, once the benchmark has taken its own
// readings and creates <file>.gc, it runs a full garbage collection and writes what is then
// live to <file>.after-gc (so garbage left by the start-up is told apart from what is kept);
// <file>.snapshot, holding a path, writes a heap snapshot there (investigation only).
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import process from 'node:process';
import { setInterval } from 'node:timers';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

const file = process.env.WEFT_BENCH_PROBE_FILE;

function report() {
  const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]));
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { at: Date.now(), memory: process.memoryUsage(), heap: v8.getHeapStatistics(), spaces, vmRssKb: kb('VmRSS'), rssAnonKb: kb('RssAnon'), rssFileKb: kb('RssFile') };
}

if (file) {
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  let gc;
  const tick = () => {
    try {
      writeFileSync(file, JSON.stringify({ ...report(), loopMaxMs: loop.max / 1e6, loopP99Ms: loop.percentile(99) / 1e6 }));
      if (existsSync(`${file}.gc`)) {
        rmSync(`${file}.gc`);
        if (!gc) {
          // only now: the agent ran without the flag until the benchmark's own readings were taken
          v8.setFlagsFromString('--expose-gc');
          gc = runInNewContext('gc');
        }
        gc();
        gc();
        writeFileSync(`${file}.after-gc`, JSON.stringify(report()));
      }
      if (existsSync(`${file}.snapshot`)) {
        const target = readFileSync(`${file}.snapshot`, 'utf8').trim();
        rmSync(`${file}.snapshot`);
        v8.writeHeapSnapshot(target);
      }
    } catch {
      // the bench removed its directory: nothing to report to
    }
  };
  setInterval(tick, 250).unref();
}
