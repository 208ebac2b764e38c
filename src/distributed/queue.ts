/**
 * What the controller (queue-runner.ts) and the workers (worker.ts) share about the queue: its name,
 * connections, the settings the controller publishes for the workers, the security warning, and how
 * a failed job's reason is read.
 */
import { Redis } from 'ioredis';
import { queueUrlProblem } from '../loop/config.ts';

/** One BullMQ queue for every run on a Redis database (a job id names one evaluation, whichever run asks). */
export const QUEUE_NAME = 'selfdev-eval';
/** The BullMQ key prefix. */
export const PREFIX = 'selfdev';
/** Hash the controller writes and workers read: lockDurationMs, maxStalledCount. */
export const SETTINGS_KEY = `${PREFIX}:${QUEUE_NAME}:settings`;

/** BullMQ's reason for a job whose worker died or lost its lock more often than allowed. */
export const STALLED_REASON = /stalled more than allowable limit/;
/** Prefix of a worker's refusal (fingerprint mismatch, malformed message): not retried, the controller stops the run with it. */
export const REFUSED = 'refused by worker';

export interface QueueSettings {
  lockDurationMs: number;
  /** Redeliveries of a job whose worker stopped renewing its lock (attempts − 1). */
  maxStalledCount: number;
}

/** A checked queue URL (a clear error for a bad one). */
export function checkQueueUrl(url: string, what = '--queue'): URL {
  const problem = queueUrlProblem(url);
  if (problem) throw new Error(`${what} ${problem}`);
  return new URL(url);
}

/** The URL for messages: the password replaced by *** (never printed). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[?::1\]?)$/;

/** The warning for a queue reachable by others without a password, or null. */
export function urlWarning(url: string): string | null {
  const u = new URL(url);
  if (LOOPBACK.test(u.hostname) || u.password) return null;
  return `warning: the queue ${u.protocol}//${u.host}${u.pathname} is not on loopback and has no password: anyone who reaches it can read the programs and put jobs in it (set a Redis password, redis://:PASSWORD@HOST:PORT/DB, or use TLS with rediss://)`;
}

/**
 * An ioredis connection for BullMQ: commands wait (and retry) through a broker restart instead of
 * failing after a few attempts.
 */
export function connect(url: string, name: string): Redis {
  const u = checkQueueUrl(url);
  const r = new Redis(u.toString(), { maxRetriesPerRequest: null, enableReadyCheck: true, connectionName: name, retryStrategy: (n) => Math.min(100 * n, 2000) });
  r.on('error', () => undefined); // reconnects on its own; failures surface through the commands
  return r;
}

export async function writeSettings(r: Redis, s: QueueSettings): Promise<void> {
  await r.hset(SETTINGS_KEY, { lockDurationMs: String(s.lockDurationMs), maxStalledCount: String(s.maxStalledCount) });
}

export async function readSettings(r: Redis): Promise<QueueSettings | null> {
  const h = await r.hgetall(SETTINGS_KEY);
  const lock = Number(h.lockDurationMs);
  const stalls = Number(h.maxStalledCount);
  if (!Number.isInteger(lock) || lock < 1000 || !Number.isInteger(stalls) || stalls < 0) return null;
  return { lockDurationMs: lock, maxStalledCount: stalls };
}
