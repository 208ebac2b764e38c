/** Test child: runs the loop on `argv[3]` with the JSON config `argv[2]`, printing one line per fresh evaluation. */
import { readFileSync } from 'node:fs';
import { runLoop } from './controller.ts';

const [cfgPath, runDir] = process.argv.slice(2);
const cfg = JSON.parse(readFileSync(cfgPath!, 'utf8')) as unknown;
await runLoop(cfg, runDir!, {
  onEvent: (e) => {
    if (e.type === 'evaluated' && !e.cached) process.stdout.write(`evaluated ${e.hash}\n`);
  },
});
process.stdout.write('finished\n');
