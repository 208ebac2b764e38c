/**
 * Test fixtures for the evaluator and the server: small model folders made with the nn engine.
 * - `makeRandomModel`: random weights (scores ~0; for plumbing and speed).
 * - `makeOverfitModel`: a 1-layer model trained for a few seconds to reproduce fixed answers to two
 *   fixed questions, whose calculator annotations carry a WRONG value (`<<2+3=7>>`), so a test can see
 *   the calculator forcing the right one (`<<2+3=5>>`).
 * Byte-level tokenizer (no merges): the endpoint's re-tokenisation of prompt + text is then exactly
 * the builtin engine's token sequence.
 */
import * as O from '../nn/ops.ts';
import { Llama, makeConfig } from '../nn/model.ts';
import type { LlamaConfig } from '../nn/model.ts';
import { Tokenizer } from '../nn/tokenizer.ts';
import { saveModel } from '../nn/checkpoint.ts';
import { encodePair } from '../nn/data.ts';
import { train } from '../nn/train.ts';

export const OVERFIT_DATA = [
  { question: 'Tom has 2 apples and gets 3 more. How many apples does he have?', completion: ' 2 + 3 = <<2+3=7>>7\n#### 7', answer: '2 + 3 = <<2+3=5>>5\n#### 5', family: 'addsub' },
  { question: 'A box holds 6 pens. How many pens are in 4 boxes?', completion: ' 6 * 4 = <<6*4=24>>24\n#### 24', answer: '6 * 4 = <<6*4=24>>24\n#### 24', family: 'muldiv' },
];

export async function makeRandomModel(dir: string, cfg: Partial<LlamaConfig> = {}, seed = 1): Promise<LlamaConfig> {
  await O.initBackend();
  const tok = new Tokenizer();
  const config = makeConfig({ vocab_size: tok.vocabSize, hidden_size: 32, num_attention_heads: 4, num_hidden_layers: 2, intermediate_size: 64, ...cfg });
  const m = Llama.init(config, seed);
  saveModel(dir, m, tok);
  m.dispose();
  return config;
}

export async function makeOverfitModel(dir: string, steps = 60): Promise<{ loss: number; seconds: number }> {
  await O.initBackend();
  const tok = new Tokenizer();
  const config = makeConfig({ vocab_size: tok.vocabSize, hidden_size: 48, num_attention_heads: 4, num_hidden_layers: 1, intermediate_size: 96, max_position_embeddings: 256 });
  const m = Llama.init(config, 7);
  const ex = OVERFIT_DATA.map((d) => encodePair(tok, `Question: ${d.question}\nAnswer:`, d.completion));
  const r = train(m, tok, ex, { steps, lr: 2e-2, batchSize: 2, seqLen: 128, warmup: 5, seed: 3, progress: false });
  saveModel(dir, m, tok);
  m.dispose();
  return r;
}

/** A real `selfdev serve` child process on a free port (tests): its base URL (…/v1) and a stop function. */
export async function startServeProcess(dir: string, opts: { name?: string; timeoutMs?: number; args?: string[] } = {}): Promise<{ url: string; pid: number; stop: () => Promise<void> }> {
  const { spawn } = await import('node:child_process');
  const bin = new URL('../../bin/selfdev.mjs', import.meta.url).pathname;
  const child = spawn(process.execPath, [bin, 'serve', dir, '--port', '0', '--quiet', ...(opts.name ? ['--name', opts.name] : []), ...(opts.args ?? [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  };
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`selfdev serve did not start in ${opts.timeoutMs ?? 60_000} ms: ${stderr}`)), opts.timeoutMs ?? 60_000);
      child.stdout!.on('data', (d) => {
        out += d;
        const m = /listening on (\S+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`selfdev serve exited with ${code}: ${stderr}`));
      });
    });
    return { url: `${url.replace(/\/+$/, '')}/v1`, pid: child.pid!, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
