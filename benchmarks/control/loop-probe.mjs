// Loaded into a cold-started agent by bench:control (NODE_OPTIONS=--import <this file>), plain
// JavaScript so that it needs no TypeScript stripper. Every 250 ms it writes, to the file named by
// WEFT_BENCH_PROBE_FILE, the event loop's worst delay so far and where the process's memory is:
// process.memoryUsage() and V8's heap spaces. Its own cost: one unref'd timer and a small write.
import { writeFileSync } from 'node:fs';
import process from 'node:process';
import { setInterval } from 'node:timers';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';

const file = process.env.WEFT_BENCH_PROBE_FILE;
if (file) {
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const write = () => {
    const spaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]));
    try {
      writeFileSync(file, JSON.stringify({ at: Date.now(), loopMaxMs: loop.max / 1e6, loopP99Ms: loop.percentile(99) / 1e6, memory: process.memoryUsage(), spaces }));
    } catch {
      // the bench removed its directory: nothing to report to
    }
  };
  setInterval(write, 250).unref();
}
