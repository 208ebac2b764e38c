import { readRegularText } from '../io/files.ts';
import { parseArgs } from 'node:util';
import { UsageError, type Command, parseCli } from './command.ts';
import { scoreResponse, type Variant } from '../eval/scoring.ts';
import { cutAtStop } from '../eval/prompt.ts';

const usage = `selfdev score COMPLETIONS.jsonl [options]

Scores model generations with lm-evaluation-harness gsm8k rules (strict-match: first "#### N";
flexible-extract: last number; exact string match after removing ",", "$", everything up to the last
"#### " and a trailing "."). Each line is a JSON object {"completion": "...", "answer": "..."} where
answer is the full GSM8k answer or a bare number; an optional "family" field adds a per-family table.

Options:
  --variant V   gsm8k (default) or gsm8k_cot (strict: "The answer is N.")
  --cut         cut each completion at the first stop string (Question:, </s>, <|im_end|>) first
  --json        print the result as one JSON object

Example:
  selfdev score runs/dev-completions.jsonl --json`;

interface Line {
  completion: string;
  answer: string;
  family?: string;
}

function parseLines(text: string, file: string): Line[] {
  const lines = text.replace(/^\ufeff/, '').split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const out: Line[] = [];
  lines.forEach((raw, i) => {
    const where = `${file}:${i + 1}`;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') throw new Error(`${where}: empty line`);
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new Error(`${where}: invalid JSON (${(e as Error).message})`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${where}: expected a JSON object`);
    const o = v as Record<string, unknown>;
    if (!('completion' in o)) throw new Error(`${where}: missing field "completion"`);
    if (typeof o.completion !== 'string') throw new Error(`${where}: field "completion" must be a string`);
    if (!('answer' in o)) throw new Error(`${where}: missing field "answer"`);
    let answer: string;
    if (typeof o.answer === 'string') answer = o.answer;
    else if (typeof o.answer === 'number' && Number.isFinite(o.answer)) answer = String(o.answer);
    else throw new Error(`${where}: field "answer" must be a string or a number`);
    if (answer.trim() === '') throw new Error(`${where}: field "answer" is empty`);
    const item: Line = { completion: o.completion, answer };
    if (o.family !== undefined) {
      if (typeof o.family !== 'string') throw new Error(`${where}: field "family" must be a string`);
      item.family = o.family;
    }
    out.push(item);
  });
  return out;
}

interface Tally {
  n: number;
  strict: number;
  flexible: number;
}

function pct(k: number, n: number): string {
  return n === 0 ? '-' : `${((100 * k) / n).toFixed(2)}%`;
}

export const command: Command = {
  name: 'score',
  summary: 'Score GSM8k-format completions (lm-eval strict and flexible exact match).',
  usage,
  async run(args) {
    const parsed = parseCli(() => parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' }, cut: { type: 'boolean' }, variant: { type: 'string' } } }));
    const [file, ...extra] = parsed.positionals;
    if (file === undefined || extra.length > 0) throw new UsageError(`expected exactly one COMPLETIONS.jsonl\n\n${usage}`);
    const variant = (parsed.values.variant ?? 'gsm8k') as Variant;
    if (variant !== 'gsm8k' && variant !== 'gsm8k_cot') throw new UsageError(`--variant must be gsm8k or gsm8k_cot, got ${parsed.values.variant}`);
    let text: string;
    try {
      text = readRegularText(file, 'completions file');
    } catch (e) {
      throw new Error(`cannot read ${file}: ${(e as Error).message}`);
    }
    const items = parseLines(text, file);
    if (items.length === 0) throw new Error(`${file}: no completions`);
    const total: Tally = { n: 0, strict: 0, flexible: 0 };
    const byFamily = new Map<string, Tally>();
    for (const it of items) {
      const completion = parsed.values.cut === true ? cutAtStop(it.completion) : it.completion;
      const r = scoreResponse(completion, it.answer, variant);
      const tallies = [total];
      if (it.family !== undefined) {
        if (!byFamily.has(it.family)) byFamily.set(it.family, { n: 0, strict: 0, flexible: 0 });
        tallies.push(byFamily.get(it.family)!);
      }
      for (const t of tallies) {
        t.n++;
        if (r.strict.correct) t.strict++;
        if (r.flexible.correct) t.flexible++;
      }
    }
    const summary = (t: Tally) => ({
      n: t.n,
      strict: { correct: t.strict, accuracy: t.strict / t.n },
      flexible: { correct: t.flexible, accuracy: t.flexible / t.n },
    });
    if (parsed.values.json === true) {
      const out: Record<string, unknown> = { file, variant, ...summary(total) };
      if (byFamily.size > 0) out.families = Object.fromEntries([...byFamily].map(([k, t]) => [k, summary(t)]));
      console.log(JSON.stringify(out));
      return 0;
    }
    console.log(`${file}: ${total.n} completions, ${variant}`);
    console.log(`  strict-match      ${String(total.strict).padStart(6)}/${total.n}  ${pct(total.strict, total.n)}`);
    console.log(`  flexible-extract  ${String(total.flexible).padStart(6)}/${total.n}  ${pct(total.flexible, total.n)}`);
    if (byFamily.size > 0) {
      const w = Math.max(6, ...[...byFamily.keys()].map((k) => k.length));
      console.log(`  ${'family'.padEnd(w)}  ${'n'.padStart(5)}  ${'strict'.padStart(8)}  ${'flexible'.padStart(8)}`);
      for (const [k, t] of [...byFamily].sort((a, b) => a[0].localeCompare(b[0]))) {
        console.log(`  ${k.padEnd(w)}  ${String(t.n).padStart(5)}  ${pct(t.strict, t.n).padStart(8)}  ${pct(t.flexible, t.n).padStart(8)}`);
      }
    }
    return 0;
  },
};
