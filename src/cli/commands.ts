import type { Command } from './command.ts';

/**
 * Every command, loaded lazily so that `selfdev inspect` does not pay for the neural-network
 * engine. Add a command by adding one line here (keep them in the order `--help` shows them).
 */
export const COMMANDS: Array<{ name: string; summary: string; load: () => Promise<Command> }> = [
  { name: 'demo', summary: 'Run the embedded end-to-end default (what `npm start` runs).', load: async () => (await import('./demo.ts')).command },
];
