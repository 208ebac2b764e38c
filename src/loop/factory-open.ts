/**
 * The factory of iteration t (moved out of controller.ts): the control arms' samplers, the builtin
 * model (DPO-trained from iteration 2), a llama.cpp GGUF (`dpo.command`'s OUT/model.gguf from
 * iteration 2), or an OpenAI-compatible endpoint.
 *
 * An endpoint with `factory.server` is started for the sampling of each iteration
 * (`startFactoryServer`, src/factory/server.ts) on the current factory folder (`server.dir` in
 * iteration 1, then the folder `dpo.command` wrote for the previous iteration), which lists
 * `factory.model` at `GET {url}/models` before anything is sampled. It is stopped (the whole
 * process group) as soon as the batch is drawn, so `dpo.command` and the scoring servers
 * get the GPU, and started again on the trained folder for the next iteration. Without `server`, the
 * endpoint must be up: `GET {url}/models` is checked once before sampling (a refused connection or
 * an unlisted model stops the run before anything is stored).
 */
import { isAbsolute, join, relative, resolve } from 'node:path';
import { openFactory, type AlgorithmFactory } from '../factory/index.ts';
import type { OpenAIFactory } from '../factory/openai.ts';
import type { RunStore } from '../store/store.ts';
import { CorpusSampler, EvolutionSampler, evolutionPool } from './arms.ts';
import { trainsFactory, type LoopConfig, type OpenAIFactoryConfig } from './config.ts';

export interface LoopFactory {
  factory: AlgorithmFactory;
  /** What the iteration sampled from (iterations.sampled_from). */
  source: string;
  /** Close the factory and stop its server (if the loop started one). Idempotent. */
  release(): Promise<void>;
}

/** The iteration's sampled_from: a folder relative to runDir when inside it (absolute otherwise). */
export function relativeToRun(dir: string, runDir: string): string {
  const abs = resolve(dir);
  const rel = relative(resolve(runDir), abs);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : abs;
}

export function factoryMaxTokens(cfg: LoopConfig): number | undefined {
  return cfg.factory.kind === 'corpus' ? undefined : cfg.factory.maxTokens;
}

/** The trained factory folder of iteration t − 1 (absolute), when the arm trains and it exists. */
function trainedFolder(cfg: LoopConfig, runDir: string, t: number, store: RunStore): string | null {
  const prev = t > 1 && trainsFactory(cfg.arm) ? store.iteration(t - 1, cfg.arm)?.factoryCheckpoint : null;
  return prev ? resolve(runDir, prev) : null;
}

/** The factory for iteration t: the corpus arm, or the trained checkpoint of iteration t−1 (builtin, llamacpp), or the configured endpoint. */
export async function openLoopFactory(cfg: LoopConfig, root: string, runDir: string, t: number, store: RunStore): Promise<LoopFactory> {
  const f = cfg.factory;
  const plain = (factory: AlgorithmFactory, source = factory.name): LoopFactory => ({ factory, source, release: () => factory.close() });
  // control arms: 'random' always samples the untrained factory; 'evolution' mutates its best programs so far (from iteration 2)
  const pool = cfg.arm === 'evolution' && t > 1 ? evolutionPool(store, cfg.arm) : [];
  if (pool.length) return plain(new EvolutionSampler(pool));
  switch (f.kind) {
    case 'corpus':
      return plain(new CorpusSampler(resolve(root, cfg.world.algorithms)));
    case 'builtin': {
      const dir = trainedFolder(cfg, runDir, t, store) ?? resolve(root, f.dir);
      return plain(await openFactory({ kind: 'builtin', dir, batchSize: f.batchSize, defaultMaxTokens: f.maxTokens, maxPromptTokens: f.maxPromptTokens }), relativeToRun(dir, runDir));
    }
    case 'openai':
      return openEndpointFactory(f, cfg, root, runDir, t, store);
    case 'llamacpp': {
      // after an external DPO step (dpo.command) the trainer's OUT/model.gguf is the next factory
      const prev = trainedFolder(cfg, runDir, t, store);
      const path = prev ? join(prev, 'model.gguf') : resolve(root, f.path);
      return plain(await openFactory({ kind: 'llamacpp', path, defaultMaxTokens: f.maxTokens, maxPromptTokens: f.maxPromptTokens }));
    }
  }
}

async function openEndpointFactory(f: OpenAIFactoryConfig, cfg: LoopConfig, root: string, runDir: string, t: number, store: RunStore): Promise<LoopFactory> {
  const folder = f.server ? (trainedFolder(cfg, runDir, t, store) ?? resolve(root, f.server.dir)) : null;
  // the factory's server (src/factory/server.ts), started on the current factory folder for this iteration's sampling
  const server = f.server && folder ? await (await import('../factory/server.ts')).startFactoryServer({ command: f.server.command, url: f.url, model: f.model, readyTimeoutSec: f.server.readyTimeoutSec }, folder) : null;
  const stopServer = async () => {
    await server?.stop();
  };
  let factory: OpenAIFactory;
  try {
    factory = (await openFactory({
      kind: 'openai', baseURL: f.url, model: f.model, mode: f.mode ?? 'chat', defaultMaxTokens: f.maxTokens, concurrency: f.concurrency, timeoutMs: f.timeoutMs,
      retries: f.retries, apiKeyEnv: f.apiKeyEnv, extraBody: f.extraBody, promptStyle: f.promptStyle,
      tokenizer: f.promptStyle === 'builtin' ? resolve(root, f.tokenizer ?? folder!) : undefined, maxPromptTokens: f.maxPromptTokens,
    })) as OpenAIFactory;
    await factory.checkModel(); // a wrong URL or model stops the run here, before anything is stored
  } catch (e) {
    await stopServer();
    throw e;
  }
  let released = false;
  return {
    factory,
    source: folder ? `${factory.name} (${relativeToRun(folder, runDir)})` : factory.name,
    release: async () => {
      if (released) return;
      released = true;
      await factory.close();
      await stopServer();
    },
  };
}
