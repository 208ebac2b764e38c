/**
 * GSM8k-format data: loading with validation, the final-answer field, seeded dev/test carving.
 * A record is one JSON object per line with string fields `question` and `answer`; the answer ends
 * with a `#### N` line (the real files have exactly one `#### ` per record). Extra fields (e.g. the
 * tiny world's `family`) are kept.
 */
import { readRegularText } from '../io/files.ts';
import { mulberry32 } from '../tensor/random.ts';

export interface GsmDoc {
  question: string;
  answer: string;
  /** Present in the tiny-world benchmark files. */
  family?: string;
}

/** An input-file problem, with the file and 1-based line in the message. */
export class Gsm8kFormatError extends Error {
  override name = 'Gsm8kFormatError';
  constructor(
    readonly file: string,
    readonly line: number,
    detail: string,
  ) {
    super(`${file}:${line}: ${detail}`);
  }
}

const FINAL = /#### (-?[0-9.,]+)/;

/** Parse GSM8k JSONL text; `file` names the source in errors. A final newline is optional. */
export function parseGsm8kJsonl(text: string, file: string): GsmDoc[] {
  const lines = text.replace(/^\ufeff/, '').split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  if (lines.length === 0) throw new Gsm8kFormatError(file, 1, 'empty file, expected one JSON object per line');
  const docs: GsmDoc[] = [];
  lines.forEach((raw, i) => {
    const ln = i + 1;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') throw new Gsm8kFormatError(file, ln, 'empty line');
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new Gsm8kFormatError(file, ln, `invalid JSON (${(e as Error).message})`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Gsm8kFormatError(file, ln, 'expected a JSON object');
    const o = v as Record<string, unknown>;
    for (const k of ['question', 'answer'] as const) {
      if (!(k in o)) throw new Gsm8kFormatError(file, ln, `missing field "${k}"`);
      if (typeof o[k] !== 'string') throw new Gsm8kFormatError(file, ln, `field "${k}" must be a string, got ${o[k] === null ? 'null' : typeof o[k]}`);
    }
    const answer = o.answer as string;
    if (!answer.includes('#### ')) throw new Gsm8kFormatError(file, ln, 'answer has no "#### " final-answer marker');
    if (!FINAL.test(answer.slice(answer.lastIndexOf('#### ')))) throw new Gsm8kFormatError(file, ln, 'no number after the last "#### " in answer');
    if ('family' in o && typeof o.family !== 'string') throw new Gsm8kFormatError(file, ln, 'field "family" must be a string');
    const doc: GsmDoc = { question: o.question as string, answer };
    if (typeof o.family === 'string') doc.family = o.family;
    docs.push(doc);
  });
  return docs;
}

/** Read and validate a GSM8k-format JSONL file. */
export function loadGsm8k(file: string): GsmDoc[] {
  let text: string;
  try {
    text = readRegularText(file, 'GSM8k file'); // a FIFO or folder is refused, not waited on
  } catch (e) {
    throw new Error(`cannot read GSM8k file ${file}: ${(e as Error).message}`);
  }
  return parseGsm8kJsonl(text, file);
}

/** The final answer as written after the last `#### ` (e.g. `"1,080"`), like gsm8k_cot's target. */
export function finalAnswer(answer: string): string {
  const i = answer.lastIndexOf('####');
  if (i < 0) throw new Error('finalAnswer: no "####" in answer');
  return answer.slice(i + 4).trim();
}

/** mulberry32 stream (the same generator as the tiny world's, independent instance). */
export { mulberry32 } from '../tensor/random.ts';

/** A seeded permutation of 0..n-1 (Fisher–Yates over mulberry32). */
export function seededPermutation(n: number, seed: number): number[] {
  const rnd = mulberry32(seed);
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

export interface DevTestSplit<T> {
  dev: T[];
  test: T[];
  /** Indices into the input, ascending (each split keeps file order). */
  devIndices: number[];
  testIndices: number[];
}

/**
 * Carve a dev set out of an evaluation set (the Self-Developing setup: 100 dev + the rest test from
 * GSM8k's 1,319 test problems): the first `nDev` indices of a seeded permutation are dev, the rest
 * test; both keep file order. Same (length, nDev, seed) → same indices.
 */
export function splitDevTest<T>(docs: readonly T[], nDev = 100, seed = 0): DevTestSplit<T> {
  if (!Number.isInteger(nDev) || nDev < 0 || nDev > docs.length) throw new Error(`splitDevTest: nDev ${nDev} must be an integer in [0, ${docs.length}]`);
  const perm = seededPermutation(docs.length, seed);
  const devIndices = perm.slice(0, nDev).sort((a, b) => a - b);
  const testIndices = perm.slice(nDev).sort((a, b) => a - b);
  return { dev: devIndices.map((i) => docs[i]), test: testIndices.map((i) => docs[i]), devIndices, testIndices };
}
