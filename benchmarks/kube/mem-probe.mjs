// Loaded with --import into a short-lived process by bench:kube (`weft --version`, a bare
// import of a client chunk): when the process exits, writes its memory to the file named by
// WEFT_BENCH_MEM_FILE: process.memoryUsage() and /proc/self/status's VmRSS and VmHWM (kB).
// Plain JavaScript, so that it needs no TypeScript stripper and adds next to nothing.
import { readFileSync, writeFileSync } from 'node:fs';
import process from 'node:process';

const file = process.env.WEFT_BENCH_MEM_FILE;
if (file) {
  process.on('exit', () => {
    const status = readFileSync('/proc/self/status', 'utf8');
    const kb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    writeFileSync(file, JSON.stringify({ memory: process.memoryUsage(), vmRssKb: kb('VmRSS'), vmHwmKb: kb('VmHWM') }));
  });
}
