/**
 * The factory prompt: task description + API reference (the contract document, read at run time)
 * + a one-shot example + optional "inspirations" (earlier programs with their scores, OpenEvolve /
 * FunSearch style) and earlier failures with their error messages, all bounded in length.
 *
 * Two renderings of the same content:
 *  - `text` for completion models: Markdown that ends with the opening of a code block
 *    (`PROGRAM_HEADER`), so the model continues with code; stop at the closing fence.
 *  - `messages` for chat endpoints: a system message (task, rules, API reference) and a user
 *    message (example, inspirations, failures, request).
 * The output is a pure function of the inputs (no clock, no randomness).
 */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { ChatMessage, FactoryPrompt } from './types.ts';

export const CONTRACT_PATH = 'docs/algorithm-contract.md';

/** The opening of the code block that completion models continue; also the end-of-program stop. */
export const CODE_OPEN = '```js\n';
export const CODE_CLOSE = '\n```';
/**
 * The last lines of every completion prompt. The seed corpus (`corpus.ts`) trains the builtin model
 * on `PROGRAM_HEADER + program + CODE_CLOSE`, so a left-truncated prompt still ends the same way.
 */
export const PROGRAM_HEADER = '## New algorithm\n\n' + CODE_OPEN;

export const DEFAULT_TASK = [
  'You design model-merging algorithms. Several fine-tuned language models share one base model;',
  'for every weight tensor, each fine-tuned model contributes a task vector (its weights minus the',
  "base model's weights). Write a JavaScript function `merge(taskVectors, ctx)` that combines the task",
  'vectors of one tensor into a single tensor of the same shape; the result is added to the base',
  'model, and the merged model is scored on grade-school math word problems (GSM8k). Higher accuracy',
  'is better. Invent an algorithm that merges the models better than the ones shown.',
].join('\n');

export interface Inspiration {
  /** Program source. */
  code: string;
  /** Its score (higher is better), e.g. dev accuracy. */
  score: number;
  /** Optional short label (id or name). */
  name?: string;
}

export interface Failure {
  code: string;
  /** The error message the sandbox reported. */
  error: string;
  name?: string;
}

export interface PromptInputs {
  /** What to do (defaults to DEFAULT_TASK). */
  task?: string;
  /** The API reference: the text of docs/algorithm-contract.md. */
  apiReference: string;
  /** The one-shot example program. */
  example: { name: string; code: string };
  /** Earlier good programs with scores. */
  inspirations?: Inspiration[];
  /** Earlier failed programs with their errors. */
  failures?: Failure[];
  limits?: Partial<PromptLimits>;
}

export interface PromptLimits {
  /** At most this many inspirations (the best by score are kept). */
  maxInspirations: number;
  /** At most this many failures (the first ones given are kept). */
  maxFailures: number;
  /** Programs longer than this are cut (with a marker). */
  maxProgramChars: number;
  /** Error messages longer than this are cut. */
  maxErrorChars: number;
  /** Budget for the inspirations + failures sections together; lowest-priority entries are dropped. */
  maxHistoryChars: number;
}

export const DEFAULT_LIMITS: PromptLimits = {
  maxInspirations: 3,
  maxFailures: 2,
  maxProgramChars: 3000,
  maxErrorChars: 400,
  maxHistoryChars: 9000,
};

const RULES = [
  'Rules:',
  '- Answer with exactly one ```js code block that defines `function merge(taskVectors, ctx)`; helper functions may be defined in the same block.',
  '- Use only the API described in the reference; no imports, no require, no I/O.',
  '- Return a tensor with the same shape as the task vectors.',
].join('\n');

/** Build the prompt in both renderings. Throws on malformed inputs. */
export function buildPrompt(inp: PromptInputs): FactoryPrompt {
  const task = (inp.task ?? DEFAULT_TASK).trim();
  if (!task) throw new Error('factory prompt: task description is empty');
  if (typeof inp.apiReference !== 'string' || !inp.apiReference.trim()) throw new Error('factory prompt: API reference is empty');
  if (!inp.example || typeof inp.example.code !== 'string' || !inp.example.code.trim()) throw new Error('factory prompt: example program is empty');
  const lim = { ...DEFAULT_LIMITS, ...(inp.limits ?? {}) };
  for (const [k, v] of Object.entries(lim)) if (!Number.isInteger(v) || v < 0) throw new Error(`factory prompt: limit ${k} must be a non-negative integer, got ${v}`);
  for (const [i, s] of (inp.inspirations ?? []).entries()) {
    if (typeof s.code !== 'string') throw new Error(`factory prompt: inspiration ${i} has no code`);
    if (!Number.isFinite(s.score)) throw new Error(`factory prompt: inspiration ${i} has a non-finite score ${s.score}`);
  }
  for (const [i, f] of (inp.failures ?? []).entries()) {
    if (typeof f.code !== 'string' || typeof f.error !== 'string') throw new Error(`factory prompt: failure ${i} needs code and error strings`);
  }

  const api = inp.apiReference.trim();
  const example = `## Example algorithm (${inp.example.name})\n\n${fence(inp.example.code.trim())}`;
  const history = historySections(inp.inspirations ?? [], inp.failures ?? [], lim);
  const ask = history
    ? 'Write a new algorithm that scores higher than the ones above. Avoid the errors shown.'
    : 'Write a new algorithm that scores higher than the example.';

  const text = [
    '# Task\n\n' + task,
    RULES,
    '# API reference\n\n' + demoteHeadings(api),
    example,
    ...(history ? [history] : []),
    ask + '\n\n' + PROGRAM_HEADER,
  ].join('\n\n');

  const system = ['# Task\n\n' + task, RULES, '# API reference\n\n' + demoteHeadings(api)].join('\n\n');
  const user = [example, ...(history ? [history] : []), ask + ' Reply with one ```js code block.'].join('\n\n');
  const messages: ChatMessage[] = [
    { role: 'system', content: system },
    { role: 'user', content: user },
  ];
  return { text, messages, prefix: CODE_OPEN, stop: [CODE_CLOSE] };
}

function historySections(insp: Inspiration[], fails: Failure[], lim: PromptLimits): string {
  // best first when choosing; shown in ascending score order so the best sits next to the request
  const chosen = insp
    .map((s, i) => ({ ...s, i }))
    .sort((a, b) => b.score - a.score || a.i - b.i)
    .slice(0, lim.maxInspirations);
  const failures = fails.slice(0, lim.maxFailures);
  const render = () => {
    const parts: string[] = [];
    if (chosen.length) {
      parts.push('## Earlier algorithms and their scores (higher is better)');
      for (const s of [...chosen].reverse()) {
        parts.push(`### ${s.name ? `${oneLine(s.name)}, ` : ''}score ${formatScore(s.score)}\n\n${fence(cut(s.code.trim(), lim.maxProgramChars))}`);
      }
    }
    if (failures.length) {
      parts.push('## Earlier algorithms that failed');
      for (const f of failures) {
        parts.push(`### ${f.name ? `${oneLine(f.name)}: ` : ''}error: ${oneLine(cut(f.error.trim(), lim.maxErrorChars, ' …'))}\n\n${fence(cut(f.code.trim(), lim.maxProgramChars))}`);
      }
    }
    return parts.join('\n\n');
  };
  let out = render();
  // over budget: drop failures from the end, then the weakest inspiration
  while (out.length > lim.maxHistoryChars && (failures.length || chosen.length)) {
    if (failures.length) failures.pop();
    else chosen.pop();
    out = render();
  }
  return out;
}

/** A fence that cannot be closed early by backticks inside the code. */
function fence(code: string): string {
  let ticks = '```';
  while (code.includes(ticks)) ticks += '`';
  return `${ticks}js\n${code}\n${ticks}`;
}

function cut(s: string, max: number, marker = '\n// … (truncated)'): string {
  if (s.length <= max) return s;
  const nl = s.lastIndexOf('\n', max);
  return s.slice(0, nl > max / 2 ? nl : max) + marker;
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

function formatScore(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(4).replace(/0+$/, '').replace(/\.$/, '');
}

/** Nest the reference under our "# API reference" heading: "# X" → "## X" (outside code blocks). */
function demoteHeadings(md: string): string {
  let inCode = false;
  return md
    .split('\n')
    .map((l) => {
      if (/^\s*(```|~~~)/.test(l)) inCode = !inCode;
      return !inCode && /^#{1,5} /.test(l) ? '#' + l : l;
    })
    .join('\n');
}

/** Read the contract and an example program from a checkout (clear errors naming the files). */
export function loadPromptFiles(root: string, examplePath: string): { apiReference: string; example: { name: string; code: string } } {
  const contract = join(root, CONTRACT_PATH);
  const read = (p: string, what: string) => {
    try {
      return readFileSync(p, 'utf8');
    } catch (e) {
      throw new Error(`factory prompt: cannot read the ${what} ${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  const apiReference = read(contract, 'API reference');
  const exPath = examplePath.startsWith('/') ? examplePath : join(root, examplePath);
  // files in algorithms/ start with a lint directive line that is not part of the contract
  const code = read(exPath, 'example algorithm').replace(/^\/\* global torch \*\/.*\n/, '');
  if (!/\bfunction\s+merge\s*\(/.test(code)) throw new Error(`factory prompt: example ${exPath} does not define function merge(`);
  return { apiReference, example: { name: basename(exPath), code } };
}
