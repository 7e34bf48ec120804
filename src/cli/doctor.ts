// `weft doctor`: the agent's leftover checks (src/agent/leftovers.ts) run once on this machine,
// without an agent: CNI configs that sort before weft's or belong to the AWS VPC CNI, and the
// VPC CNI's iptables chains, each printed with the commands that remove it. Exit 0 when
// nothing is in the way, 1 when something is or a check could not run (a clean answer must
// mean every check ran).
import type { Command } from 'commander';
import { DEFAULT_AGENT_OPTIONS, envValue } from '../agent/options.ts';
import type { LeftoverReport } from '../agent/leftovers.ts';

const SEVERITY: Record<string, string> = { 'blocks-pods': 'blocks pods', leftover: 'leftover' };

export function renderDoctor(r: LeftoverReport, checked: string): string {
  const lines: string[] = [];
  if (r.findings.length === 0 && r.notChecked.length === 0) lines.push(`weft doctor: nothing in weft's way on this node (checked ${checked})`);
  else if (r.findings.length === 0) lines.push('weft doctor: nothing found, but not every check ran');
  else lines.push(`weft doctor: ${r.findings.length} thing(s) in weft's way on this node`);
  for (const f of r.findings) {
    lines.push('', `[${SEVERITY[f.severity] ?? f.severity}] ${f.message}`, '  to remove it, run:', ...f.fix.map((c) => `    ${c}`));
  }
  if (r.notChecked.length > 0) lines.push('', 'not checked:', ...r.notChecked.map((n) => `  ${n}`));
  if (r.notes.length > 0) lines.push('', 'notes:', ...r.notes.map((n) => `  ${n}`));
  return `${lines.join('\n')}\n`;
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description("look for what another pod network (the AWS VPC CNI) left in weft's way on this node, with the commands that remove it; run as root")
    .option('--cni-conf-dir <dir>', "the container runtime's CNI config dir", envValue('cni-conf-dir') ?? DEFAULT_AGENT_OPTIONS.cniConfDir)
    .option('--json', 'print the findings as JSON')
    .addHelpText('after', '\nExit status: 0 nothing found, 1 something found or a check could not run. The agent runs the same checks every minute and shows them in `weft status`.')
    .action(async (o: { cniConfDir: string; json?: boolean }) => {
      const { findLeftovers } = await import('../agent/leftovers.ts');
      const report = await findLeftovers({ cniConfDir: o.cniConfDir });
      if (process.getuid?.() !== 0 && report.notChecked.length > 0) report.notes.push('iptables can only be read as root: run weft doctor as root');
      const clean = report.findings.length === 0 && report.notChecked.length === 0;
      if (o.json) process.stdout.write(`${JSON.stringify({ clean, ...report }, null, 2)}\n`);
      else process.stdout.write(renderDoctor(report, [o.cniConfDir, 'iptables'].filter((x) => x !== '').join(' and ')));
      if (!clean) process.exitCode = 1;
    });
}
