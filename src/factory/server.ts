/**
 * The factory's own server (run config `factory.server`): an OpenAI-compatible server the loop
 * starts on the current factory folder before an iteration samples and stops right after, so that
 * `dpo.command` and the scoring servers get the GPU, and the next iteration samples from the
 * trained weights.
 *
 * `startFactoryServer` runs `sh -c command` in its own process group (ServerProcess, the same
 * machinery as eval.server's scoring servers: orphan watchdog, SIGTERM then SIGKILL of the whole
 * group) with MODEL = the folder and PORT = the port of the factory URL, and polls
 * `GET {url}/models` until the server lists the model. The scratch folder the watchdog is given is
 * an empty temp folder of its own (the watchdog removes it if this process dies, never MODEL), and
 * `stop()` removes it. A failed start stops what was started and throws with the server's output.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServerProcess, ServedEvalError, modelsUrl } from '../eval/served.ts';

export interface FactoryServerSpec {
  /** Run with `sh -c`, env MODEL (the factory folder) and PORT (the port of `url`). */
  command: string;
  /** The factory's base URL (with its version path, e.g. http://127.0.0.1:8000/v1). */
  url: string;
  /** The model id the server must list at GET {url}/models. */
  model: string;
  /** Seconds to wait for the server to list the model (default 600). */
  readyTimeoutSec?: number;
}

export interface FactoryServer {
  /** The folder it serves (MODEL). */
  readonly folder: string;
  /** The server's process group (tests). */
  readonly process: ServerProcess;
  /** Stop the whole process group and remove the scratch folder (idempotent). */
  stop(): Promise<void>;
}

/** The port a factory URL names (its explicit port, else the scheme's). */
export function urlPort(url: string): number {
  const u = new URL(url);
  return u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
}

/** Start the factory's server on `folder` and wait until it lists `spec.model`. */
export async function startFactoryServer(spec: FactoryServerSpec, folder: string): Promise<FactoryServer> {
  const scratch = mkdtempSync(join(tmpdir(), 'selfdev-factory-server-'));
  let proc: ServerProcess;
  try {
    proc = new ServerProcess(spec.command, urlPort(spec.url), folder, scratch, 'factory.server');
  } catch (e) {
    rmSync(scratch, { recursive: true, force: true });
    throw e;
  }
  let stopped: Promise<void> | null = null;
  const stop = () =>
    (stopped ??= (async () => {
      await proc.stop();
      rmSync(scratch, { recursive: true, force: true });
    })());
  try {
    await proc.waitReady(modelsUrl(spec.url), spec.model, spec.readyTimeoutSec ?? 600);
  } catch (e) {
    await stop();
    throw e instanceof ServedEvalError ? e : new Error(`factory.server: ${(e as Error).message}`);
  }
  return { folder, process: proc, stop };
}
