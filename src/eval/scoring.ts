/**
 * GSM8k answer scoring, ported from lm-evaluation-harness (task `gsm8k` and `gsm8k_cot`, version 3.0).
 *
 * Pipeline per response (see /work/shared/reference/gsm8k.md):
 *  1. a regex filter extracts the answer: `re.findall` over the response, pick one match
 *     (strict: the first, flexible: the last), take the first non-empty group, `.strip()`;
 *     no match → `"[invalid]"`;
 *  2. `exact_match` with `regexes_to_ignore = [",", "\$", "(?s).*#### ", "\.$"]` applied (replace-all,
 *     in that order) to prediction and reference, then both lowercased, then a plain string compare.
 *     No numeric equivalence: `18.00` ≠ `18`.
 * The reference is the full GSM8k `answer` field (the normalisation strips everything up to the last
 * `#### `); a bare number works as well.
 */

export const INVALID = '[invalid]';

/** `gsm8k` strict-match: `#### (\-?[0-9\.\,]+)`, first match. */
export const STRICT_PATTERN = /#### (-?[0-9.,]+)/g;
/** `gsm8k` / `gsm8k_cot` flexible-extract: `(-?[$0-9.,]{2,})|(-?[0-9]+)`, last match. */
export const FLEXIBLE_PATTERN = /(-?[$0-9.,]{2,})|(-?[0-9]+)/g;
/**
 * `gsm8k_cot` strict-match: `The answer is (\-?[0-9\.\,]+).`, first match. The final `.` is an
 * unescaped Python `.` (any character except `\n`), written `[^\n]` here because a JS `.` also
 * refuses `\r`, U+2028 and U+2029. Quirk kept on purpose: `"The answer is 18"` at the very end of
 * the output captures `1`.
 */
export const COT_STRICT_PATTERN = /The answer is (-?[0-9.,]+)[^\n]/g;

export type Variant = 'gsm8k' | 'gsm8k_cot';

/** lm-eval RegexFilter: findall, select one match, first non-empty group, strip; `[invalid]` if none. */
export function regexExtract(response: string, pattern: RegExp, select: 'first' | 'last'): string {
  if (!pattern.global) throw new Error(`regexExtract: pattern ${pattern} needs the g flag (findall semantics)`);
  const matches = [...response.matchAll(pattern)];
  if (matches.length === 0) return INVALID;
  const m = select === 'first' ? matches[0] : matches[matches.length - 1];
  // Python findall: with groups, a tuple of groups ('' for non-participating ones); without, the match.
  let value: string | undefined;
  if (m.length > 1) {
    value = m.slice(1).find((g) => g !== undefined && g !== '');
    if (value === undefined) return INVALID;
  } else {
    value = m[0];
  }
  return pyStrip(value);
}

/** Python `str.strip()` with no argument: strips the characters for which `str.isspace()` is true. */
const PY_SPACE = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680,
  0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a,
  0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);
export function pyStrip(s: string): string {
  let i = 0;
  let j = s.length;
  while (i < j && PY_SPACE.has(s.charCodeAt(i))) i++;
  while (j > i && PY_SPACE.has(s.charCodeAt(j - 1))) j--;
  return s.slice(i, j);
}

export function extractStrict(response: string, variant: Variant = 'gsm8k'): string {
  return regexExtract(response, variant === 'gsm8k' ? STRICT_PATTERN : COT_STRICT_PATTERN, 'first');
}

export function extractFlexible(response: string): string {
  return regexExtract(response, FLEXIBLE_PATTERN, 'last');
}

/**
 * The `regexes_to_ignore` of gsm8k's exact_match, in order, each replace-all like `re.sub`.
 * Python's `\.$` (no MULTILINE) also matches a `.` right before one final `\n`.
 */
const IGNORE: RegExp[] = [/,/g, /\$/g, /[\s\S]*#### /g, /\.(?=\n?$)/g];

/** Normalise a prediction or reference as lm-eval's exact_match does (ignore regexes, then lowercase). */
export function normalizeForExactMatch(s: string): string {
  let out = s;
  for (const re of IGNORE) out = out.replace(re, '');
  return out.toLowerCase();
}

/** lm-eval exact_match for one pair (ignore_case true, ignore_punctuation false). */
export function exactMatch(prediction: string, reference: string): boolean {
  return normalizeForExactMatch(prediction) === normalizeForExactMatch(reference);
}

/**
 * The reference string for a GSM8k `answer` field. `gsm8k`: the full answer (normalisation cuts it);
 * `gsm8k_cot`: `answer.split('####')[-1].strip()`.
 */
export function referenceFor(answer: string, variant: Variant = 'gsm8k'): string {
  if (variant === 'gsm8k') return answer;
  const parts = answer.split('####');
  return pyStrip(parts[parts.length - 1]);
}

export interface FilterScore {
  /** The filtered prediction (before normalisation), e.g. `"$18."` or `"[invalid]"`. */
  extracted: string;
  correct: boolean;
}

export interface ResponseScore {
  strict: FilterScore;
  flexible: FilterScore;
}

/** Score one generation against one GSM8k answer (full answer text or bare number). */
export function scoreResponse(response: string, answer: string, variant: Variant = 'gsm8k'): ResponseScore {
  const ref = referenceFor(answer, variant);
  const strict = extractStrict(response, variant);
  const flexible = extractFlexible(response);
  return {
    strict: { extracted: strict, correct: exactMatch(strict, ref) },
    flexible: { extracted: flexible, correct: exactMatch(flexible, ref) },
  };
}

export interface AccuracySummary {
  n: number;
  strict: { correct: number; accuracy: number };
  flexible: { correct: number; accuracy: number };
}

/** Mean exact_match of both filters over a list of (response, answer) pairs. */
export function summarize(items: Iterable<{ completion: string; answer: string }>, variant: Variant = 'gsm8k'): AccuracySummary {
  let n = 0;
  let s = 0;
  let f = 0;
  for (const it of items) {
    const r = scoreResponse(it.completion, it.answer, variant);
    n++;
    if (r.strict.correct) s++;
    if (r.flexible.correct) f++;
  }
  return {
    n,
    strict: { correct: s, accuracy: n === 0 ? 0 : s / n },
    flexible: { correct: f, accuracy: n === 0 ? 0 : f / n },
  };
}
