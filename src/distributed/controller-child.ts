/** Test child: runs the loop on the queue `argv[5]` with root `argv[4]`, the JSON config `argv[2]`, run folder `argv[3]`; one line per fresh evaluation. */
import { readFileSync } from 'node:fs';
import { runLoop } from '../loop/controller.ts';

const [cfgPath, runDir, root, queue] = process.argv.slice(2);
const cfg = JSON.parse(readFileSync(cfgPath!, 'utf8')) as unknown;
await runLoop(cfg, runDir!, {
  root,
  queue,
  onEvent: (e) => {
    if (e.type === 'evaluated' && !e.cached) process.stdout.write(`evaluated ${e.hash}\n`);
  },
});
process.stdout.write('finished\n');
