/** The state of a distributed-evaluation queue: jobs by state, live workers, published settings (`selfdev queue status`). */
import { Queue } from 'bullmq';
import { PREFIX, QUEUE_NAME, connect, readSettings, redactUrl, type QueueSettings } from './queue.ts';

export interface QueueStatus {
  queue: string;
  counts: { waiting: number; active: number; delayed: number; completed: number; failed: number };
  workers: { name: string; addr: string }[];
  settings: QueueSettings | null;
}

export async function queueStatus(url: string, timeoutMs = 10_000): Promise<QueueStatus> {
  const conn = connect(url, 'selfdev-status');
  const q = new Queue(QUEUE_NAME, { connection: conn, prefix: PREFIX });
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      (async () => {
        const c = await q.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'completed', 'failed');
        const workers = (await q.getWorkers()).map((w) => ({ name: String(w.name ?? ''), addr: String(w.addr ?? '') }));
        return {
          queue: QUEUE_NAME,
          counts: { waiting: (c.waiting ?? 0) + (c.prioritized ?? 0), active: c.active ?? 0, delayed: c.delayed ?? 0, completed: c.completed ?? 0, failed: c.failed ?? 0 },
          workers,
          settings: await readSettings(conn),
        };
      })(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`cannot reach the queue at ${redactUrl(url)} within ${timeoutMs / 1000} s (is redis-server running there?)`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    await q.close().catch(() => undefined);
    conn.disconnect();
  }
}
