// The registry of subcommands: one line each, so the CLI's surface is visible at a glance.
import type { Command } from 'commander';
import { registerCni } from './cni.ts';
import { registerLab } from './lab.ts';

export function registerCommands(program: Command): void {
  registerCni(program);
  registerLab(program);
}
