// Facts from the CNI specification that the rest of src/cni relies on (docs/cni-spec-notes.md §1).

/** Versions we accept in configs. 0.3.x is what kube-flannel's cni-conf.json says; 0.1/0.2 are gone. */
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST_VERSION: CniVersion = '1.1.0';

export const COMMANDS = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'] as const;
export type CniCommand = (typeof COMMANDS)[number];

export function isSupportedVersion(v: string): v is CniVersion {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Compares dotted versions numerically: -1, 0 or 1. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

/** 0.3.x and 0.4.0 results carry "version" on each IP; 1.0.0 removed it. */
export const resultHasIpVersion = (v: CniVersion): boolean => compareVersions(v, '1.0.0') < 0;
/** CHECK exists from 0.4.0 on. */
export const versionHasCheck = (v: CniVersion): boolean => compareVersions(v, '0.4.0') >= 0;
/** STATUS and GC exist from 1.1.0 on; interfaces[].mtu too. */
export const versionHas11 = (v: CniVersion): boolean => compareVersions(v, '1.1.0') >= 0;

/** Error codes of the spec (docs/cni-spec-notes.md §1.11), plus weft's own from 100 on. */
export const CniErrorCodes = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  unknownContainer: 3,
  invalidEnvironment: 4,
  ioFailure: 5,
  decodeFailure: 6,
  invalidConfig: 7,
  invalidNetns: 8,
  tryAgainLater: 11,
  notAvailable: 50,
  notAvailableLimitedConnectivity: 51,
  // weft's own:
  addressesExhausted: 100,
  addressConflict: 101,
  kernelRefused: 102,
  firewallFailed: 103,
  checkFailed: 104,
  internal: 999,
} as const;

/** Container IDs and network names: libcni's pkg/utils regex. */
export const ID_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Why an interface name is invalid, or undefined if it is fine (libcni's ValidateInterfaceName). */
export function interfaceNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (Buffer.byteLength(name) > 15) return 'is longer than 15 bytes';
  if (name === '.' || name === '..') return 'is "." or ".."';
  if (/[/:\s]/.test(name)) return 'contains "/", ":" or whitespace';
  return undefined;
}
