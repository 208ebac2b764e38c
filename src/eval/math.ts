/**
 * MATH (Hendrycks et al., 2021): data and scoring as lm-evaluation-harness's `minerva_math` (v3.0)
 * and `hendrycks_math` (v1.0) tasks define them (read at EleutherAI/lm-evaluation-harness 4e7e0d4,
 * `lm_eval/tasks/{minerva_math,hendrycks_math}/utils.py` and YAMLs; written here from those rules).
 *
 * Data: one JSON object per line with string fields `problem` and `solution` (the solution holds the
 * reference in `\boxed{…}`, the last one counts); `type` (e.g. "Algebra") and `level` are optional,
 * `type` becomes the problem's family (per-subject accuracy). That is the layout of the Hugging Face
 * dataset `EleutherAI/hendrycks_math` (7 configs, test split 5,000 problems) exported to JSONL, and of
 * the original MATH release (hendrycks/math on GitHub: one JSON file per problem; concatenate them
 * one per line). No MATH data ships with selfdev.
 *
 * `minerva_math`: prompt `Problem:\n{problem}\n\nSolution:`, 4 fixed exemplars of Lewkowycz et al.
 * (2022) (sampler first_n, target = their full solution, ending `Final Answer: The final answer is
 * $X$. I hope it is correct.`), stop `Problem:`. The answer is the text of `Final Answer: The final
 * answer is (.*?). I hope it is correct.` (on the generation + "I hope it is correct."), then
 * Minerva's normalize_final_answer (appendix D of the paper: the part after the last `=`, textual
 * substitutions, units and words removed, the first `$…$`, `\text{}`, `\textbf{}`, `\overline{}`,
 * `\boxed{}` unwrapped, `\fracab` → `\frac{a}{b}`, `\sqrta` → `\sqrt{a}`, `$` removed, thousands
 * commas dropped from plain integers); the reference is the normalised content of the solution's last
 * `\boxed{}`. **Equivalence differs from lm-eval:** lm-eval compares with sympy (`parse_latex` both,
 * `simplify(a − b) == 0`; also its separate `math_verify` metric, not computed here). selfdev counts
 * a prediction correct when the normalised strings are equal, or when both are numbers — integers,
 * decimals, `\frac{a}{b}` / `\dfrac` / `\tfrac` of integers, `a/b`, with a sign — of equal value
 * (what sympy decides for those forms, e.g. `5.0` = `5`, `\frac{4}{8}` = `0.5`). It does not see other
 * algebraic equalities (`2\sqrt{2}` vs `\sqrt{8}`, `x+1` vs `1+x`), and it counts equal strings
 * right where sympy cannot parse them (intervals, tuples, text: lm-eval scores those 0).
 *
 * `hendrycks_math`: prompt `Problem: {problem}\nAnswer:`, zero-shot, stop `Problem:`; the answer is
 * the text between the first and the last `$` of the generation (the whole generation when it holds
 * fewer than two `$`); equivalence = string equality after the MATH paper's strip_string (newlines,
 * `\!`, `\\`→`\`, tfrac/dfrac→frac, `\left`/`\right`, degrees, `\$`, a unit after `\text{ `, `\%`,
 * leading zero of decimals, a short `k = ` prefix, `\sqrt3`→`\sqrt{3}`, spaces, `\frac12`→`\frac{1}{2}`,
 * `0.5`→`\frac{1}{2}`, `a/b`→`\frac{a}{b}` for integers). Exact port. (It has no trailing-zero rule:
 * `5.0` ≠ `5`.)
 *
 * Both tasks report one metric, exact_match: it fills both `strict` and `flexible` of a score.
 */
import { readRegularText } from '../io/files.ts';
import type { QA } from './prompt.ts';
import { pyStrip } from './scoring.ts';

export type MathTask = 'minerva_math' | 'hendrycks_math';
export const MATH_STOPS: readonly string[] = ['Problem:'];
export const MINERVA_INVALID = '[invalidanswer]';

export interface MathDoc {
  /** The problem statement (the evaluator's `question`). */
  question: string;
  /** The full solution with its `\boxed{}` answer (the evaluator's `answer`). */
  answer: string;
  /** The subject (`type`), when the file gives it. */
  family?: string;
  level?: string;
}

export class MathFormatError extends Error {
  override name = 'MathFormatError';
  constructor(readonly file: string, readonly line: number, detail: string) {
    super(`${file}:${line}: ${detail}`);
  }
}

// ------------------------------------------------------------------------------ boxed answers

/** The last `\boxed{…}` (or `\boxed …` up to a `$`, or `\fbox{…}`) of a string, braces balanced; null if none closes. */
export function lastBoxedOnlyString(s: string): string | null {
  if (s.includes('\\boxed ')) {
    const parts = s.split('\\boxed ');
    return `\\boxed ${parts[parts.length - 1].split('$')[0]}`;
  }
  let idx = s.lastIndexOf('\\boxed');
  if (idx < 0) {
    idx = s.lastIndexOf('\\fbox');
    if (idx < 0) return null;
  }
  let open = 0;
  for (let i = idx; i < s.length; i++) {
    if (s[i] === '{') open++;
    if (s[i] === '}') {
      open--;
      if (open === 0) return s.slice(idx, i + 1);
    }
  }
  return null;
}

/** The content of `\boxed{…}` / `\boxed …`; throws on anything else (lm-eval asserts). */
export function removeBoxed(s: string): string {
  if (s.includes('\\boxed ')) {
    if (!s.startsWith('\\boxed ')) throw new Error(`not a \\boxed answer: ${JSON.stringify(s)}`);
    return s.slice('\\boxed '.length);
  }
  if (!s.startsWith('\\boxed{') || !s.endsWith('}')) throw new Error(`not a \\boxed{…} answer: ${JSON.stringify(s)}`);
  return s.slice('\\boxed{'.length, -1);
}

/** The reference answer of a solution: the content of its last `\boxed{}`. */
export function boxedReference(solution: string): string {
  const b = lastBoxedOnlyString(solution);
  if (b === null) throw new Error('the solution has no closed \\boxed{…} answer');
  return removeBoxed(b);
}

// ------------------------------------------------------------------------------ data

/** Parse MATH JSONL (`problem`, `solution` with a `\boxed{}` answer; optional `type`, `level`). */
export function parseMathJsonl(text: string, file: string): MathDoc[] {
  const lines = text.replace(/^\ufeff/, '').split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  if (lines.length === 0) throw new MathFormatError(file, 1, 'empty file, expected one JSON object per line');
  return lines.map((raw, i) => {
    const ln = i + 1;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') throw new MathFormatError(file, ln, 'empty line');
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new MathFormatError(file, ln, `invalid JSON (${(e as Error).message})`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new MathFormatError(file, ln, 'expected a JSON object');
    const o = v as Record<string, unknown>;
    for (const k of ['problem', 'solution'] as const) {
      if (!(k in o)) throw new MathFormatError(file, ln, `missing field "${k}"${k === 'problem' && 'question' in o ? ' (this looks like GSM8k: use gsm8k:PATH)' : ''}`);
      if (typeof o[k] !== 'string') throw new MathFormatError(file, ln, `field "${k}" must be a string`);
    }
    for (const k of ['type', 'level'] as const) if (k in o && typeof o[k] !== 'string') throw new MathFormatError(file, ln, `field "${k}" must be a string`);
    const solution = o.solution as string;
    try {
      boxedReference(solution);
    } catch (e) {
      throw new MathFormatError(file, ln, `solution: ${(e as Error).message}`);
    }
    const doc: MathDoc = { question: o.problem as string, answer: solution };
    if (typeof o.type === 'string') doc.family = o.type;
    if (typeof o.level === 'string') doc.level = o.level;
    return doc;
  });
}

export function loadMath(file: string): MathDoc[] {
  let text: string;
  try {
    text = readRegularText(file, 'MATH file');
  } catch (e) {
    throw new Error(`cannot read MATH file ${file}: ${(e as Error).message}`);
  }
  return parseMathJsonl(text, file);
}

// ------------------------------------------------------------------------------ minerva_math

export const minervaQuery = (problem: string): string => `Problem:\n${problem}\n\nSolution:`;
export const hendrycksQuery = (problem: string): string => `Problem: ${problem}\nAnswer:`;

/** Minerva's 4-shot prompt (Lewkowycz et al. 2022), as lm-eval's minerva_math lists it: problem, solution. */
export const MINERVA_SHOTS: readonly QA[] = [
  ['Find the domain of the expression  $\\frac{\\sqrt{x-2}}{\\sqrt{5-x}}$.}', 'The expressions inside each square root must be non-negative. Therefore, $x-2 \\ge 0$, so $x\\ge2$, and $5 - x \\ge 0$, so $x \\le 5$. Also, the denominator cannot be equal to zero, so $5-x>0$, which gives $x<5$. Therefore, the domain of the expression is $\\boxed{[2,5)}$.\nFinal Answer: The final answer is $[2,5)$. I hope it is correct.'],
  ['If $\\det \\mathbf{A} = 2$ and $\\det \\mathbf{B} = 12,$ then find $\\det (\\mathbf{A} \\mathbf{B}).$', 'We have that $\\det (\\mathbf{A} \\mathbf{B}) = (\\det \\mathbf{A})(\\det \\mathbf{B}) = (2)(12) = \\boxed{24}.$\nFinal Answer: The final answer is $24$. I hope it is correct.'],
  ['Terrell usually lifts two 20-pound weights 12 times. If he uses two 15-pound weights instead, how many times must Terrell lift them in order to lift the same total weight?', 'If Terrell lifts two 20-pound weights 12 times, he lifts a total of $2\\cdot 12\\cdot20=480$ pounds of weight.  If he lifts two 15-pound weights instead for $n$ times, he will lift a total of $2\\cdot15\\cdot n=30n$ pounds of weight.  Equating this to 480 pounds, we can solve for $n$:\n\\begin{align*}\n30n&=480\\\n\\Rightarrow\\qquad n&=480/30=\\boxed{16}\n\\end{align*}\nFinal Answer: The final answer is $16$. I hope it is correct.'],
  ['If the system of equations\n\n\\begin{align*}\n6x-4y&=a,\\\n6y-9x &=b.\n\\end{align*}has a solution $(x, y)$ where $x$ and $y$ are both nonzero,\nfind $\\frac{a}{b},$ assuming $b$ is nonzero.', 'If we multiply the first equation by $-\\frac{3}{2}$, we obtain\n\n$$6y-9x=-\\frac{3}{2}a.$$Since we also know that $6y-9x=b$, we have\n\n$$-\\frac{3}{2}a=b\\Rightarrow\\frac{a}{b}=\\boxed{-\\frac{2}{3}}.$$\nFinal Answer: The final answer is $-\\frac{2}{3}$. I hope it is correct.'],
].map(([question, answer]) => ({ question, answer }));

/** `Final Answer: The final answer is X. I hope it is correct.` → X (stripped), else `[invalidanswer]`. */
export function minervaUnnormalizedAnswer(generation: string): string {
  const m = /Final Answer: The final answer is([^\n]*?)[^\n] I hope it is correct[^\n]/.exec(`${generation}I hope it is correct.`);
  return m ? pyStrip(m[1]) : MINERVA_INVALID;
}

const SUBSTITUTIONS: ReadonlyArray<[string, string]> = [
  ['an ', ''], ['a ', ''], ['.$', '$'], ['\\$', ''], ['\\ ', ''], [' ', ''], ['mbox', 'text'], [',\\text{and}', ','], ['\\text{and}', ','], ['\\text{m}', '\\text{}'],
];
const REMOVED_EXPRESSIONS: readonly string[] = [
  'square', 'ways', 'integers', 'dollars', 'mph', 'inches', 'ft', 'hours', 'km', 'units', '\\ldots', 'sue', 'points', 'feet', 'minutes', 'digits',
  'cents', 'degrees', 'cm', 'gm', 'pounds', 'meters', 'meals', 'edges', 'students', 'childrentickets', 'multiples', '\\text{s}', '\\text{.}',
  '\\text{\ns}', '\\text{}^2', '\\text{}^3', '\\text{\n}', '\\text{}', '\\mathrm{th}', '^\\circ', '^{\\circ}', '\\;', ',\\!', '{,}', '"', '\\dots',
];

/** Python str.isdigit for the strings that occur here: decimal digits and the superscript/subscript digits. */
const isDigitString = (s: string) => s.length > 0 && /^[\p{Nd}\u00b2\u00b3\u00b9\u2070\u2074-\u2079\u2080-\u2089]+$/u.test(s);

/** Minerva's normalize_final_answer (Python `.` = any character but `\n`, written `[^\n]`). */
export function normalizeFinalAnswer(answer: string): string {
  const parts = answer.split('=');
  let s = parts[parts.length - 1];
  for (const [before, after] of SUBSTITUTIONS) s = s.replaceAll(before, after);
  for (const e of REMOVED_EXPRESSIONS) s = s.replaceAll(e, '');
  s = s.replace(/([^\n]*?)(\$)([^\n]*?)(\$)([^\n]*)/g, '$$$3$$');
  s = s.replace(/(\\text\{)([^\n]*?)(\})/g, '$2');
  s = s.replace(/(\\textbf\{)([^\n]*?)(\})/g, '$2');
  s = s.replace(/(\\overline\{)([^\n]*?)(\})/g, '$2');
  s = s.replace(/(\\boxed\{)([^\n]*)(\})/g, '$2');
  s = s.replace(/(frac)([^{])([^\n])/g, 'frac{$2}{$3}');
  s = s.replace(/(sqrt)([^{])/g, 'sqrt{$2}');
  s = s.replaceAll('$', '');
  if (isDigitString(s.replaceAll(',', ''))) s = s.replaceAll(',', '');
  return s;
}

/** An exact rational for the plain number forms sympy reads the same way; null for anything else. */
export function parseRational(s: string): [bigint, bigint] | null {
  let t = s;
  let sign = 1n;
  if (t.startsWith('-')) {
    sign = -1n;
    t = t.slice(1);
  }
  const dec = (x: string): [bigint, bigint] | null => {
    const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(x) ?? /^(-?)()\.(\d+)$/.exec(x);
    if (!m) return null;
    const frac = m[3] ?? '';
    const n = BigInt((m[2] || '0') + frac) * (m[1] ? -1n : 1n);
    return [n, 10n ** BigInt(frac.length)];
  };
  let r: [bigint, bigint] | null = null;
  const f = /^\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}$/.exec(t) ?? /^(-?\d+)\/(-?\d+)$/.exec(t);
  if (f) {
    const a = dec(f[1]);
    const b = dec(f[2]);
    if (a && b && b[0] !== 0n) r = [a[0] * b[1], a[1] * b[0]];
  } else {
    r = dec(t);
  }
  if (!r) return null;
  return [sign * r[0], r[1]];
}

/** minerva_math's is_equiv as far as selfdev decides it (see the header): equal strings, or equal numbers. */
export function minervaEquivalent(prediction: string, reference: string): boolean {
  if (prediction === MINERVA_INVALID) return false;
  if (prediction === reference) return true;
  const a = parseRational(prediction);
  const b = parseRational(reference);
  return a !== null && b !== null && a[0] * b[1] === b[0] * a[1];
}

// ------------------------------------------------------------------------------ hendrycks_math

function fixFracs(s: string): string {
  const subs = s.split('\\frac');
  let out = subs[0];
  for (const sub of subs.slice(1)) {
    out += '\\frac';
    if (sub.length === 0) throw new Error('"\\frac" at the end'); // Python: IndexError → raw ==
    if (sub[0] === '{') {
      out += sub;
      continue;
    }
    if (sub.length < 2) return s;
    const [a, b] = [sub[0], sub[1]];
    const post = sub.slice(2);
    out += b !== '{' ? `{${a}}{${b}}${post}` : `{${a}}${b}${post}`;
  }
  return out;
}

/** Python int(str) accepts surrounding whitespace, underscores between digits and a sign. */
function pyInt(x: string): number | null {
  const t = pyStrip(x);
  if (!/^[+-]?\d+(_\d+)*$/.test(t)) return null;
  return Number(t.replaceAll('_', ''));
}

function fixASlashB(s: string): string {
  const parts = s.split('/');
  if (parts.length !== 2) return s;
  const a = pyInt(parts[0]);
  const b = pyInt(parts[1]);
  if (a === null || b === null) throw new Error('int() failed'); // lm-eval: ValueError → is_equiv falls back to raw ==
  if (s !== `${a}/${b}`) return s;
  return `\\frac{${a}}{${b}}`;
}

function removeRightUnits(s: string): string {
  if (!s.includes('\\text{ ')) return s;
  const splits = s.split('\\text{ ');
  if (splits.length !== 2) throw new Error('several "\\text{ " units'); // lm-eval: AssertionError → raw ==
  return splits[0];
}

function fixSqrt(s: string): string {
  if (!s.includes('\\sqrt')) return s;
  const splits = s.split('\\sqrt');
  let out = splits[0];
  for (const sp of splits.slice(1)) {
    if (sp.length === 0) throw new Error('"\\sqrt" at the end'); // Python: IndexError → raw ==
    out += sp[0] !== '{' ? `\\sqrt{${sp[0]}}${sp.slice(1)}` : `\\sqrt${sp}`;
  }
  return out;
}

/** The MATH paper's strip_string (lm-eval hendrycks_math); throws where the Python raises. */
export function stripString(input: string): string {
  let s = input.replaceAll('\n', '');
  s = s.replaceAll('\\!', '');
  s = s.replaceAll('\\\\', '\\');
  s = s.replaceAll('tfrac', 'frac').replaceAll('dfrac', 'frac');
  s = s.replaceAll('\\left', '').replaceAll('\\right', '');
  s = s.replaceAll('^{\\circ}', '').replaceAll('^\\circ', '');
  s = s.replaceAll('\\$', '');
  s = removeRightUnits(s);
  s = s.replaceAll('\\%', '');
  s = s.replaceAll(' .', ' 0.').replaceAll('{.', '{0.');
  if (s.length === 0) return s;
  if (s[0] === '.') s = `0${s}`;
  const eq = s.split('=');
  if (eq.length === 2 && eq[0].length <= 2) s = eq[1];
  s = fixSqrt(s);
  s = s.replaceAll(' ', '');
  s = fixFracs(s);
  if (s === '0.5') s = '\\frac{1}{2}';
  s = fixASlashB(s);
  return s;
}

/** hendrycks_math is_equiv: strip_string both and compare; if stripping raises, the raw strings. */
export function hendrycksEquivalent(a: string, b: string): boolean {
  try {
    return stripString(a) === stripString(b);
  } catch {
    return a === b;
  }
}

/** hendrycks_math's answer: between the first and the last `$` of the generation, or all of it. */
export function hendrycksAnswer(generation: string): string {
  const first = generation.indexOf('$');
  const last = generation.lastIndexOf('$');
  return first < 0 || first === last ? generation : generation.slice(first + 1, last);
}

// ------------------------------------------------------------------------------ scoring

export interface MathScore {
  reference: string;
  strict: { extracted: string; correct: boolean };
  flexible: { extracted: string; correct: boolean };
}

/** Score one generation against one MATH solution (exact_match fills both filters). */
export function scoreMath(task: MathTask, generation: string, solution: string): MathScore {
  const boxed = boxedReference(solution);
  let reference: string;
  let extracted: string;
  let correct: boolean;
  if (task === 'minerva_math') {
    reference = normalizeFinalAnswer(boxed);
    const raw = minervaUnnormalizedAnswer(generation);
    extracted = raw === MINERVA_INVALID ? raw : normalizeFinalAnswer(raw);
    correct = raw !== MINERVA_INVALID && minervaEquivalent(extracted, reference);
  } else {
    reference = boxed;
    extracted = hendrycksAnswer(generation);
    correct = hendrycksEquivalent(extracted, reference);
  }
  return { reference, strict: { extracted, correct }, flexible: { extracted, correct } };
}
