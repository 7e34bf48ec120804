// The IPAM store against what the outside can do to it: writes that fail part-way (a full disk)
// and files that are not what weft or host-local write (huge, unreadable). Each must leave the
// store as it was, or cost at most the one odd file's address, never every later ADD and DEL.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isWeftError } from '../errors.ts';
import { HostLocalIpam, type HostLocalIpamOptions } from './allocator.ts';
import { MAX_STORE_FILE_BYTES, defaultStoreIo, type StoreIo } from './disk-store.ts';
import { parseRangeSets } from './ranges.ts';

const DUAL = [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/64' }]];
const V4 = [[{ subnet: '10.0.0.0/24' }]];

function newIpam(t: TestContext, ranges: unknown, extra: Partial<HostLocalIpamOptions> = {}): HostLocalIpam {
  const dataDir = mkdtempSync(join(tmpdir(), 'weft-ipam-faults-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  return new HostLocalIpam({ dataDir, network: 'faults', rangeSets: parseRangeSets(ranges), ...extra });
}

const storeFiles = (ipam: HostLocalIpam): string[] => readdirSync(ipam.storeDir).sort();
const text = (ipam: HostLocalIpam, name: string): string => readFileSync(join(ipam.storeDir, name), 'utf8');
const add = async (ipam: HostLocalIpam, containerId: string, requested?: string[]): Promise<string[]> =>
  (await ipam.allocate({ containerId, ifname: 'eth0', ...(requested ? { requested } : {}) })).map((a) => a.address);

/**
 * A writer that, while `armed`, fails the next write to a file whose name ends with `suffix`
 * as a full disk does: after part of the data. Later writes succeed (the undo's truncation
 * gave the space back).
 */
function failingIo(suffix: string): StoreIo & { armed: boolean; failures: number } {
  const io = {
    armed: true,
    failures: 0,
    async write(path: string, handle: Parameters<StoreIo['write']>[1], data: string): Promise<void> {
      if (!io.armed || !path.endsWith(suffix)) return defaultStoreIo.write(path, handle, data);
      io.armed = false;
      io.failures++;
      await handle.write(data.slice(0, 3));
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    },
  };
  return io;
}

async function rejectsWithIo(promise: Promise<unknown>, file: RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(isWeftError(e, 'WEFT_IO'), String(e));
    assert.match(e.message, file);
    assert.match(e.message, /ENOSPC/);
    return true;
  });
}

describe('IPAM store: a write that fails part-way leaves nothing of that ADD behind', () => {
  it('when last_reserved_ip.0 cannot be written on the first ADD, neither the address nor the file remains', async (t) => {
    const io = failingIo('last_reserved_ip.0');
    const ipam = newIpam(t, V4, { io });
    await rejectsWithIo(add(ipam, 'a'), /cannot write .*last_reserved_ip\.0: ENOSPC/);
    assert.equal(io.failures, 1);
    assert.deepEqual(storeFiles(ipam), ['lock']);
    assert.deepEqual(await add(ipam, 'a'), ['10.0.0.2'], 'the address was given back');
  });

  it('restores the previous last_reserved_ip, so round-robin continues where it was', async (t) => {
    const io = failingIo('last_reserved_ip.0');
    io.armed = false;
    const ipam = newIpam(t, V4, { io });
    assert.deepEqual(await add(ipam, 'a'), ['10.0.0.2']);
    io.armed = true;
    await rejectsWithIo(add(ipam, 'b'), /last_reserved_ip\.0/);
    assert.deepEqual(storeFiles(ipam), ['10.0.0.2', 'last_reserved_ip.0', 'lock']);
    assert.equal(text(ipam, 'last_reserved_ip.0'), '10.0.0.2');
    assert.deepEqual(await add(ipam, 'b'), ['10.0.0.3']);
  });

  it('undoes the first range set too when the second set\'s last_reserved_ip fails (dual stack)', async (t) => {
    const io = failingIo('last_reserved_ip.1');
    io.armed = false;
    const ipam = newIpam(t, DUAL, { io });
    assert.deepEqual(await add(ipam, 'a'), ['10.0.0.2', 'fd00::2']);
    io.armed = true;
    await rejectsWithIo(add(ipam, 'b'), /last_reserved_ip\.1/);
    assert.deepEqual(storeFiles(ipam), ['10.0.0.2', 'fd00::2', 'last_reserved_ip.0', 'last_reserved_ip.1', 'lock']);
    assert.equal(text(ipam, 'last_reserved_ip.0'), '10.0.0.2');
    assert.equal(text(ipam, 'last_reserved_ip.1'), 'fd00::2');
  });

  it('removes the address file when its owner cannot be written', async (t) => {
    const io = failingIo('10.0.0.2');
    const ipam = newIpam(t, V4, { io });
    await rejectsWithIo(add(ipam, 'a'), /cannot write .*10\.0\.0\.2: ENOSPC/);
    assert.deepEqual(storeFiles(ipam), ['lock']);
  });

  it('a requested address is given back as well', async (t) => {
    const io = failingIo('last_reserved_ip.0');
    const ipam = newIpam(t, V4, { io });
    await rejectsWithIo(add(ipam, 'a', ['10.0.0.9']), /last_reserved_ip\.0/);
    assert.deepEqual(storeFiles(ipam), ['lock']);
  });
});

/** A sparse file of 3 GiB: costs no disk, but reading it whole would take seconds, or fail (over 2 GiB). */
function hugeFile(ipam: HostLocalIpam, name: string): void {
  mkdirSync(ipam.storeDir, { recursive: true });
  const path = join(ipam.storeDir, name);
  writeFileSync(path, 'x');
  truncateSync(path, 3 * 2 ** 30);
}

describe('IPAM store: files that weft or host-local cannot have written', () => {
  it('an oversized owner file costs its address only: ADD, DEL, CHECK and GC go on working', async (t) => {
    const warnings: string[] = [];
    const ipam = newIpam(t, V4, { warn: (m) => warnings.push(m) });
    assert.deepEqual(await add(ipam, 'a'), ['10.0.0.2']);
    hugeFile(ipam, '10.0.0.3');
    assert.deepEqual(await add(ipam, 'b'), ['10.0.0.4'], 'skips the odd file, takes the next one');
    assert.ok(warnings.length > 0);
    assert.match(warnings[0]!, new RegExp(`IPAM file ${join(ipam.storeDir, '10.0.0.3')} is larger than ${MAX_STORE_FILE_BYTES} bytes`));
    assert.match(warnings[0]!, /remove the file if no pod uses that address/);
    assert.deepEqual(await ipam.lookup({ containerId: 'a', ifname: 'eth0' }), ['10.0.0.2']);
    assert.deepEqual(await ipam.release({ containerId: 'a', ifname: 'eth0' }), ['10.0.0.2']);
    await assert.rejects(add(ipam, 'c', ['10.0.0.3']), (e: unknown) => {
      assert.ok(isWeftError(e, 'WEFT_IPAM_CONFLICT'));
      assert.match(e.message, /10\.0\.0\.3 is not available .*\(IPAM file .*10\.0\.0\.3 is larger than/);
      return true;
    });
    assert.deepEqual(await ipam.gc([{ containerId: 'b', ifname: 'eth0' }]), [], 'gc does not delete a file it could not read');
    assert.deepEqual(storeFiles(ipam), ['10.0.0.3', '10.0.0.4', 'last_reserved_ip.0', 'lock']);
  });

  it('reads an owner file of exactly the bound', async (t) => {
    const ipam = newIpam(t, V4);
    mkdirSync(ipam.storeDir, { recursive: true });
    const id = 'c'.repeat(MAX_STORE_FILE_BYTES - '\r\neth0'.length);
    writeFileSync(join(ipam.storeDir, '10.0.0.7'), `${id}\r\neth0`);
    assert.deepEqual(await ipam.lookup({ containerId: id, ifname: 'eth0' }), ['10.0.0.7']);
  });

  it('an oversized last_reserved_ip restarts round-robin at rangeStart and is named', async (t) => {
    const warnings: string[] = [];
    const ipam = newIpam(t, V4, { warn: (m) => warnings.push(m) });
    hugeFile(ipam, 'last_reserved_ip.0');
    assert.deepEqual(await add(ipam, 'a'), ['10.0.0.2']);
    assert.match(warnings.join('\n'), /IPAM file .*last_reserved_ip\.0 is larger than/);
    assert.equal(text(ipam, 'last_reserved_ip.0'), '10.0.0.2', 'and is replaced by a good one');
  });

  it('a huge lock file changes nothing: the lock is only flock()ed, never read', async (t) => {
    const ipam = newIpam(t, V4);
    hugeFile(ipam, 'lock');
    assert.deepEqual(await add(ipam, 'a'), ['10.0.0.2']);
    assert.deepEqual(await ipam.release({ containerId: 'a', ifname: 'eth0' }), ['10.0.0.2']);
  });

  it('a directory or symlink named like an address breaks no ADD or DEL', async (t) => {
    const ipam = newIpam(t, V4);
    await add(ipam, 'a');
    mkdirSync(join(ipam.storeDir, '10.0.0.3'));
    symlinkSync('/dev/zero', join(ipam.storeDir, '10.0.0.5'));
    assert.deepEqual(await add(ipam, 'b'), ['10.0.0.4']);
    assert.deepEqual(await add(ipam, 'c'), ['10.0.0.6']);
    assert.deepEqual(await ipam.release({ containerId: 'a', ifname: 'eth0' }), ['10.0.0.2']);
  });
});
