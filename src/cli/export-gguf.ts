import { lstatSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { UsageError, type Command, parseCli } from './command.ts';
import { checkOutputPath } from '../io/files.ts';
import { ProgressBar } from './progress.ts';

const usage = `selfdev export-gguf MODEL_DIR OUT.gguf [--dtype f32|f16] [--name NAME] [--verify]

Converts a Hugging Face Llama folder (config.json, safetensors weights, byte-level BPE
tokenizer.json) into a GGUF v3 file that llama.cpp (llama-cli, llama-server, node-llama-cpp,
Ollama) loads: llama.* metadata from config.json, the vocabulary and merges as a "gpt2" tokenizer,
Q/K rows permuted to llama.cpp's RoPE layout. The folder is validated first; the output file
appears only when complete, and never inside the model folder (the input is left as it was).

Options:
  --dtype f32|f16  storage type of the 2-D weights (default f32; norms always stay f32)
  --name NAME      general.name (default: the folder name)
  --verify         load the result with llama.cpp (node-llama-cpp, CPU) and check its greedy
                   continuations of a few prompts against the plain-TypeScript reference forward
                   of MODEL_DIR, prompts tokenized as the model's files say (BOS as
                   tokenizer.json / tokenizer_config.json add it) and by llama.cpp alike
                   (small models only; exits 1 on a disagreement)

Example:
  selfdev export-gguf ./merged merged.gguf --dtype f16`;

export const command: Command = {
  name: 'export-gguf',
  summary: 'Export a Llama model folder to a GGUF file for llama.cpp.',
  usage,
  async run(args) {
    const parsed = parseCli(() => parseArgs({ args, allowPositionals: true, options: { dtype: { type: 'string' }, name: { type: 'string' }, verify: { type: 'boolean' } } }));
    const [dir, out, ...extra] = parsed.positionals;
    if (!dir || !out || extra.length > 0) throw new UsageError(`expected MODEL_DIR and OUT.gguf\n\n${usage}`);
    const dtype = parsed.values.dtype ?? 'f32';
    if (dtype !== 'f32' && dtype !== 'f16') throw new UsageError(`--dtype must be f32 or f16, got '${dtype}'`);
    // the shared reader first: config.json against the tensors, a byte-level BPE tokenizer.json whose
    // ids fit vocab_size (nothing is sized from config.json before this); then the output must not
    // touch the model folder
    const { readLlamaFolder } = await import('../io/model-config.ts');
    readLlamaFolder(dir);
    checkGgufOutput(dir, out);
    const { exportGguf } = await import('../nn/export-gguf.ts');
    const bar = new ProgressBar('export-gguf');
    const t0 = performance.now();
    const res = exportGguf(dir, out, { dtype, name: parsed.values.name, onTensor: (done, total) => bar.update(done, total) });
    bar.done();
    console.log(`wrote ${res.outPath}: ${res.tensors} tensors, ${(res.bytes / 1e6).toFixed(1)} MB of ${dtype} weights, vocab ${res.vocabSize} (${((performance.now() - t0) / 1000).toFixed(1)}s)`);
    if (parsed.values.verify) {
      const { verifyGgufWithLlamaCpp } = await import('../nn/export-gguf.ts');
      const v = await verifyGgufWithLlamaCpp(dir, res.outPath);
      if (v.tokenMismatch) {
        const t = v.tokenMismatch;
        console.error(`llama.cpp tokenizes ${JSON.stringify(t.prompt)} as [${t.llama}], the model's files as [${t.files}] (GGUF add_bos_token vs tokenizer.json / tokenizer_config.json)`);
        return 1;
      }
      if (v.mismatch) {
        console.error(`llama.cpp disagrees with the reference on ${JSON.stringify(v.mismatch.prompt)} at step ${v.mismatch.step}: llama.cpp [${v.mismatch.llama}] vs reference [${v.mismatch.reference}]`);
        return 1;
      }
      console.log(`verified with llama.cpp: ${v.agreed}/${v.compared} greedy tokens equal the reference (near ties skipped), max next-token probability difference ${v.maxProbDiff.toExponential(1)} (prompts tokenized as the model's files say: ${v.promptPrefix.length ? `[${v.promptPrefix}] before the text` : 'nothing added before the text'}; llama.cpp the same)`);
    }
    return 0;
  },
};

/** OUT.gguf may not be, lie inside or contain the model folder (real paths), nor be an existing folder or special file. */
function checkGgufOutput(dir: string, out: string): void {
  checkOutputPath(out, [{ path: dir, what: `the model folder ${dir}` }], 'OUT.gguf');
  let st;
  try {
    st = lstatSync(out);
  } catch {
    return;
  }
  if (!st.isFile() && !st.isSymbolicLink()) throw new UsageError(`${out}: exists and is not a regular file`);
}
