/**
 * Child-process entry of the sandbox (forked by sandbox.ts with tsx). Receives one request at a
 * time over IPC, runs it in a fresh isolate and answers. Any uncaught failure ends the process;
 * the parent reports `crash` and forks a new one.
 */
import { execute, prewarm } from './execute.ts';
import { executeFileMerge } from './file-merge.ts';
import type { RetryNotice, RunRequest, RunResponse } from './types.ts';

if (!process.send) throw new Error('sandbox runner must be started with child_process.fork');

process.on('message', (req: RunRequest) => {
  let res: RunResponse;
  // tells the parent that the program is re-run after machine load starved it (sandbox.ts extends
  // its kill budget); the child is busy, but a short message on an empty pipe is written at once
  const onRetry = (attempt: number, wallMs: number): void => {
    process.send!({ type: 'retry', id: req.id, attempt, wallMs } satisfies RetryNotice);
  };
  try {
    res = { id: req.id, ...(req.type === 'merge-file' ? executeFileMerge(req, { onRetry }) : execute(req, { onRetry })) };
  } catch (e) {
    res = { id: req.id, ok: false, category: 'crash', message: `sandbox runner error: ${e instanceof Error ? e.message : String(e)}` };
  }
  process.send!(res);
  // get the next isolate ready while the parent is busy with this result
  const mb = req.limits.memoryMb;
  setImmediate(() => prewarm(mb));
});
process.on('disconnect', () => process.exit(0));
process.send({ type: 'ready' });
