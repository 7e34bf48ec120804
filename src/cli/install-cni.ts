// `weft install-cni`: the DaemonSet's init container (src/cni/install.ts, docs/manifests.md).
import type { Command } from 'commander';
import { isWeftError } from '../errors.ts';
import { UsageError } from './flanneld-args.ts';
import type { InstallCniOptions } from '../cni/install.ts';

/** As commander gives them: the plugins as one comma-separated string. */
interface InstallFlags extends Omit<InstallCniOptions, 'plugins'> {
  plugins: string;
  json?: boolean;
}

export function registerInstallCni(program: Command): void {
  program
    .command('install-cni')
    .description("install weft's CNI front end, the reference plugins the node lacks, and the conflist, each atomically (what the DaemonSet's init container runs)")
    .requiredOption('--conflist <file>', 'the conflist to install (the ConfigMap\'s cni-conf.json)')
    .requiredOption('--conf-dir <dir>', "the container runtime's CNI config dir (the node's /etc/cni/net.d)")
    .option('--conf-name <name>', 'file name of the conflist there; runtimes use the first in byte order', '05-weft.conflist')
    .requiredOption('--bin-dir <dir>', "the runtime's CNI plugin dir (the node's /opt/cni/bin)")
    .requiredOption('--front-end <file>', 'the static CNI front end (build/weft-cni), installed as <bin-dir>/weft')
    .option('--plugins-dir <dir>', 'where the reference plugins to install are', '/usr/lib/cni')
    .option('--plugins <names>', "reference plugins to install where the node has none (a node's own is never replaced); comma-separated", 'portmap,loopback')
    .option('--json', 'print what was done as JSON')
    .action(async (flags: InstallFlags) => {
      const { installCni, renderInstallReport, shadowWarning } = await import('../cni/install.ts');
      const options = {
        conflist: flags.conflist, confDir: flags.confDir, confName: flags.confName, binDir: flags.binDir, frontEnd: flags.frontEnd,
        pluginsDir: flags.pluginsDir, plugins: flags.plugins.split(',').map((p) => p.trim()).filter((p) => p !== ''),
      };
      let report;
      try {
        report = installCni(options);
      } catch (e) {
        // A bad name or list on the command line is a usage error; a bad file or I/O is not.
        if (isWeftError(e, 'WEFT_INVALID_CONFIG') && /^--/.test(e.message)) throw new UsageError('weft install-cni', e.message);
        throw e;
      }
      const warning = shadowWarning(report, options.confDir, options.confName);
      if (warning) process.stderr.write(`${warning}\n`);
      process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : renderInstallReport(report));
    });
}
