// The registry of subcommands: one line each, so the CLI's surface is visible at a glance.
import type { Command } from 'commander';
import { registerAgent } from './agent.ts';
import { registerCheck } from './check.ts';
import { registerCni } from './cni.ts';
import { registerDoctor } from './doctor.ts';
import { registerInstallCni } from './install-cni.ts';
import { registerLab } from './lab.ts';
import { registerManifests } from './manifests.ts';
import { registerProbe } from './probe.ts';
import { registerLeave, registerRmpeer, registerStatus } from './status.ts';

export function registerCommands(program: Command, version: string): void {
  registerAgent(program, version);
  registerStatus(program);
  registerRmpeer(program);
  registerLeave(program);
  registerCni(program);
  registerDoctor(program);
  registerLab(program);
  registerManifests(program);
  registerInstallCni(program);
  registerProbe(program);
  registerCheck(program, version);
}
