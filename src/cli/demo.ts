import type { Command } from './command.ts';

export const command: Command = {
  name: 'demo',
  summary: 'Run the embedded end-to-end default.',
  usage: 'selfdev demo\n\nRuns the most complete end-to-end pipeline available offline.',
  async run() {
    console.log('selfdev demo: nothing wired yet');
    return 0;
  },
};
