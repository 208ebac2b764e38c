/**
 * The out-of-process twin of an in-process run (`npm run demo:out-of-process`, and its short version
 * in src/loop/out-of-process.test.ts): the same loop config with every role moved out of process as
 * a real-LLM user runs it, with selfdev's own CLI standing in for vLLM and TRL:
 *
 * - factory: `kind: openai`, mode completions, promptStyle builtin (the builtin model's own prompt:
 *   bos + the last maxPromptTokens tokens, sent as token ids), served by `selfdev serve` that the
 *   loop starts on the current factory folder for each iteration's sampling (`factory.server`);
 * - scoring: `eval.server`, a `selfdev serve` per scored candidate over the merged folder (F32);
 * - DPO: `dpo.command` running `selfdev dpo` with the config's DPO settings, the loop's seed ($SEED)
 *   and the loop's step count (--epochs), from $PREV (or the untrained factory) into $OUT.
 *
 * With the same seeds the twin samples the same programs as the in-process run: the factory's
 * per-sample seeds select the builtin engine's row streams (seedForRow), the prompt tokens are the
 * builtin factory's, greedy scoring does not depend on batching, and `selfdev dpo` runs the same
 * training as the in-process DPO (tested equal on a micro world). Known difference (docs/real-llm.md):
 * with the calculator on, the served scoring re-tokenizes prompt + text after each `<<EXPR=`, which
 * with a BPE tokenizer can differ from the engine's own tokens (a 0.5-point score change on some
 * weak programs of the embedded world, which then changes pairs and later iterations).
 */
import { resolve } from 'node:path';
import { freePort } from '../eval/served.ts';
import { BUILTIN_DEFAULT_MAX_TOKENS } from '../factory/builtin-prompt.ts';
import { resolveConfig, type LoopConfig } from './config.ts';

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The twin of `config` (a builtin-factory config); `root` resolves its relative paths. */
export async function outOfProcessConfig(config: unknown, root: string): Promise<LoopConfig> {
  const cfg = resolveConfig(config);
  const f = cfg.factory;
  if (f.kind !== 'builtin') throw new Error(`the out-of-process twin starts from a builtin factory (it serves that model), got factory.kind ${f.kind}`);
  if (cfg.arm === 'dpo-mutate' || cfg.arm === 'dpo-novel') throw new Error(`arm ${cfg.arm} is not supported by the out-of-process twin (use dpo, random or evolution)`);
  if (cfg.recursive) throw new Error('recursive runs need the builtin factory (the merge becomes the factory)');
  const bin = `${q(process.execPath)} ${q(resolve(root, 'bin/selfdev.mjs'))}`;
  const dir = resolve(root, f.dir);
  const d = cfg.dpo;
  const dpo = [
    `${bin} dpo --model "\${PREV:-${dir.replace(/["\\$`]/g, '\\$&')}}" --data "$PAIRS" --out "$OUT"`,
    `--epochs ${d.epochs} --batch ${d.batchSize} --lr ${d.lr} --beta ${d.beta} --loss ${d.lossType} --nll-alpha ${d.nllAlpha}`,
    d.maxLen !== undefined ? `--max-len ${d.maxLen}` : '',
    f.maxPromptTokens !== undefined ? `--max-prompt-len ${f.maxPromptTokens}` : '',
    '--seed "$SEED" > /dev/null',
  ].filter(Boolean).join(' ');
  const port = await freePort();
  return resolveConfig({
    ...cfg,
    factory: {
      kind: 'openai', url: `http://127.0.0.1:${port}/v1`, model: 'coder', mode: 'completions', promptStyle: 'builtin',
      ...(f.maxPromptTokens !== undefined ? { maxPromptTokens: f.maxPromptTokens } : {}),
      maxTokens: f.maxTokens ?? BUILTIN_DEFAULT_MAX_TOKENS,
      concurrency: 4, timeoutMs: 600_000,
      server: { command: `${bin} serve "$MODEL" --port "$PORT" --name coder --quiet`, dir, readyTimeoutSec: 300 },
    },
    eval: { ...cfg.eval, server: { command: `${bin} serve "$MODEL" --port "$PORT" --name merged --quiet`, model: 'merged', readyTimeoutSec: 300 } },
    dpo: { ...d, command: dpo },
  });
}
