/**
 * The GSM8k calculator (Cobbe et al. 2021 convention). Solutions write a step as
 * `a op b = <<a op b=c>>c`; while decoding, once the generated text ends with `<<EXPR=`, the decoder
 * computes EXPR and forces `c>>`. The model then copies `c` itself.
 *
 * EXPR is parsed by a small tokenizer and recursive-descent parser (never `eval`): decimal numbers
 * (`12`, `0.5`, `.5`, `5.`; no thousands separators), binary `+ - * /` and Python's floor division `//`
 * (two GSM8k train annotations use it), unary `+`/`-`, parentheses,
 * spaces. Anything else (a comma, `%`, `^`, letters, an unbalanced parenthesis, division by zero,
 * a non-finite result) yields no forced completion.
 *
 * Results are formatted like GSM8k's annotations: integers without a fractional part, otherwise
 * rounded to 6 decimals with trailing zeros stripped (`1/8` → `0.125`, `2/3` → `0.666667`); `-0` → `0`.
 * Arithmetic is IEEE double like Python's, so `0.1+0.2` is `0.3` after rounding. A tie at the 7th
 * decimal rounds away from zero (JS `toFixed`), where Python's format would round half to even.
 */

type Token = { kind: 'num'; value: number } | { kind: 'op'; value: '+' | '-' | '*' | '/' | '//' | '(' | ')' };

/** Thrown for any expression the calculator refuses; `calculatorCompletion` turns it into null. */
export class CalculatorError extends Error {
  override name = 'CalculatorError';
}

function tokenize(s: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < s.length) {
    const ch = s[i];
    if (ch === ' ' || ch === '\t') {
      i++;
      continue;
    }
    if (ch === '/' && s[i + 1] === '/') {
      out.push({ kind: 'op', value: '//' });
      i += 2;
      continue;
    }
    if (ch === '+' || ch === '-' || ch === '*' || ch === '/' || ch === '(' || ch === ')') {
      out.push({ kind: 'op', value: ch });
      i++;
      continue;
    }
    if ((ch >= '0' && ch <= '9') || ch === '.') {
      let j = i;
      let digits = 0;
      while (j < s.length && s[j] >= '0' && s[j] <= '9') {
        j++;
        digits++;
      }
      if (j < s.length && s[j] === '.') {
        j++;
        while (j < s.length && s[j] >= '0' && s[j] <= '9') {
          j++;
          digits++;
        }
      }
      if (digits === 0) throw new CalculatorError(`lone '.' at position ${i}`);
      if (j < s.length && (s[j] === '.' || s[j] === ',')) throw new CalculatorError(`malformed number at position ${i}`);
      out.push({ kind: 'num', value: Number(s.slice(i, j)) });
      i = j;
      continue;
    }
    throw new CalculatorError(`unexpected character ${JSON.stringify(ch)} at position ${i}`);
  }
  return out;
}

class Parser {
  private pos = 0;
  private depth = 0;
  constructor(private readonly toks: Token[]) {}

  parse(): number {
    if (this.toks.length === 0) throw new CalculatorError('empty expression');
    const v = this.expr();
    if (this.pos !== this.toks.length) throw new CalculatorError(`unexpected token at ${this.pos}`);
    return v;
  }

  private peekOp(): string | null {
    const t = this.toks[this.pos];
    return t !== undefined && t.kind === 'op' ? t.value : null;
  }

  // expr := term (('+'|'-') term)*
  private expr(): number {
    let v = this.term();
    for (let op = this.peekOp(); op === '+' || op === '-'; op = this.peekOp()) {
      this.pos++;
      const r = this.term();
      v = op === '+' ? v + r : v - r;
    }
    return v;
  }

  // term := unary (('*'|'/'|'//') unary)*
  private term(): number {
    let v = this.unary();
    for (let op = this.peekOp(); op === '*' || op === '/' || op === '//'; op = this.peekOp()) {
      this.pos++;
      const r = this.unary();
      if (op === '*') v *= r;
      else {
        if (r === 0) throw new CalculatorError('division by zero');
        v = op === '/' ? v / r : Math.floor(v / r);
      }
    }
    return v;
  }

  // unary := ('+'|'-') unary | primary
  private unary(): number {
    const op = this.peekOp();
    if (op === '-' || op === '+') {
      this.pos++;
      if (++this.depth > 64) throw new CalculatorError('expression nested too deeply');
      const v = this.unary();
      this.depth--;
      return op === '-' ? -v : v;
    }
    return this.primary();
  }

  // primary := number | '(' expr ')'
  private primary(): number {
    const t = this.toks[this.pos];
    if (t === undefined) throw new CalculatorError('unexpected end of expression');
    if (t.kind === 'num') {
      this.pos++;
      return t.value;
    }
    if (t.value === '(') {
      this.pos++;
      if (++this.depth > 64) throw new CalculatorError('expression nested too deeply');
      const v = this.expr();
      this.depth--;
      if (this.peekOp() !== ')') throw new CalculatorError('missing )');
      this.pos++;
      return v;
    }
    throw new CalculatorError(`unexpected '${t.value}'`);
  }
}

/** Evaluate an arithmetic expression; throws CalculatorError on anything it refuses. */
export function evaluateExpression(s: string): number {
  if (s.length > 200) throw new CalculatorError('expression too long');
  const v = new Parser(tokenize(s)).parse();
  if (!Number.isFinite(v)) throw new CalculatorError('non-finite result');
  return v;
}

/** GSM8k-style number text: integer → no decimals; else ≤ 6 decimals, trailing zeros stripped. */
export function formatResult(v: number): string {
  if (!Number.isFinite(v)) throw new CalculatorError('non-finite result');
  if (Math.abs(v) >= 1e21) throw new CalculatorError('result too large to print plainly');
  let s = Number.isInteger(v) ? v.toFixed(0) : v.toFixed(6);
  if (s.includes('.')) s = s.replace(/0+$/, '').replace(/\.$/, '');
  return s === '-0' ? '0' : s;
}

/** Characters an annotation expression may contain (anything else is not a calculator call). */
const EXPR_CHARS = /^[0-9.+\-*/() \t]+$/;

/**
 * If `textSoFar` ends with an open calculator call `<<EXPR=`, the text to force (`"9>>"`); else null.
 * Null also when EXPR does not parse or cannot be computed (the model continues unaided).
 */
export function calculatorCompletion(textSoFar: string): string | null {
  if (!textSoFar.endsWith('=')) return null;
  const open = textSoFar.lastIndexOf('<<');
  if (open < 0) return null;
  const expr = textSoFar.slice(open + 2, -1);
  if (!EXPR_CHARS.test(expr)) return null;
  try {
    return `${formatResult(evaluateExpression(expr))}>>`;
  } catch (e) {
    if (e instanceof CalculatorError) return null;
    throw e;
  }
}

/**
 * Character spans [start, end) of calculator outputs (`c>>` after `<<EXPR=`) inside a solution, e.g.
 * to mask them from an SFT loss because the decoder forces them.
 */
export function calculatorSpans(text: string): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  const re = /<<([^<>=]*)=([^<>]*)>>/g;
  for (const m of text.matchAll(re)) {
    const start = (m.index ?? 0) + 2 + m[1].length + 1;
    spans.push([start, (m.index ?? 0) + m[0].length]);
  }
  return spans;
}
