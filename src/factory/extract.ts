/**
 * Pull a merge program out of raw model output.
 *
 * Order of attempts:
 *  1. `<think>…</think>` blocks are removed (an output that starts inside a thought, i.e. has a
 *     `</think>` without an opening tag, loses everything before it).
 *  2. Markdown fences (``` or ~~~, any info string): the first fence whose body defines `merge`
 *     wins; an unterminated final fence is accepted and cut after its last complete top-level
 *     declaration; helpers it calls that another JS block defines are prepended.
 *  3. Bare code: the text around the first `merge` definition, from the start of the contiguous
 *     code before it to the end of the last top-level declaration after it.
 *  4. If nothing was found outside the thoughts, the thoughts themselves are searched.
 *
 * The result is normalised for a script context: `export` / `export default` in front of a
 * declaration is dropped, and `export { … }` / `module.exports = …` lines are removed.
 * Extraction does not execute anything; `parses` compiles with `node:vm` (no run) to prefer a
 * variant that is syntactically valid.
 */
import { Script } from 'node:vm';

export type ExtractResult =
  | { code: string; via: 'fence' | 'unterminated-fence' | 'bare' | 'think'; parses: boolean }
  | { code: null; reason: string };

/** A definition of `merge`: function declaration, or const/let/var bound to a function or arrow. */
const MERGE_DEF = /(?:^|[^\w$.])(?:(?:async\s+)?function\s*\*?\s*merge\s*\(|(?:const|let|var)\s+merge\s*=\s*(?:async\s+)?(?:function\b|\(|[A-Za-z_$][\w$]*\s*=>))/;

/** Chat-template and end-of-text tokens some servers leave in the text. */
const SPECIAL_TOKENS = /<\|(?:im_end|im_start|endoftext|end|eot_id|end_of_text|assistant|user|system)\|>|<\/s>|<s>|<end_of_turn>|<start_of_turn>(?:model|user)?/g;
const JS_LANGS = new Set(['', 'js', 'javascript', 'mjs', 'cjs', 'jsx', 'node', 'ts', 'typescript']);

export function definesMerge(src: string): boolean {
  return MERGE_DEF.test(stripCommentsAndStrings(src));
}

export function extractProgram(raw: string): ExtractResult {
  if (typeof raw !== 'string') return { code: null, reason: 'output is not a string' };
  const text = raw.replace(/\r\n?/g, '\n').replace(SPECIAL_TOKENS, '');
  const { outside, thoughts } = splitThink(text);
  const found = fromText(outside);
  if (found) return found;
  for (const t of thoughts) {
    const r = fromText(t);
    if (r) return { ...r, via: 'think' };
  }
  if (!outside.trim() && thoughts.length) return { code: null, reason: 'output contains only a <think> block without a merge function' };
  if (!text.trim()) return { code: null, reason: 'empty output' };
  const fences = findFences(outside);
  if (fences.length) return { code: null, reason: `no merge function in ${fences.length} code block${fences.length > 1 ? 's' : ''}` };
  return { code: null, reason: 'no merge function found (no `function merge(` definition)' };
}

// ------------------------------------------------------------------------------------ think

function splitThink(text: string): { outside: string; thoughts: string[] } {
  const thoughts: string[] = [];
  let s = text;
  // an output that begins inside a thought (the chat template opened it)
  const firstClose = s.search(/<\/think>/i);
  const firstOpen = s.search(/<think>/i);
  if (firstClose >= 0 && (firstOpen < 0 || firstClose < firstOpen)) {
    thoughts.push(s.slice(0, firstClose));
    s = s.slice(firstClose + '</think>'.length);
  }
  let out = '';
  for (;;) {
    const o = s.search(/<think>/i);
    if (o < 0) {
      out += s;
      break;
    }
    out += s.slice(0, o);
    const rest = s.slice(o + '<think>'.length);
    const c = rest.search(/<\/think>/i);
    if (c < 0) {
      thoughts.push(rest); // unterminated thought: it runs to the end
      break;
    }
    thoughts.push(rest.slice(0, c));
    s = rest.slice(c + '</think>'.length);
  }
  return { outside: out, thoughts };
}

// ------------------------------------------------------------------------------------ fences

interface Fence {
  lang: string;
  body: string;
  closed: boolean;
}

/** Markdown fenced blocks (``` or ~~~, 3+ chars, up to 3 spaces of indent), in order. */
export function findFences(text: string): Fence[] {
  const lines = text.split('\n');
  const out: Fence[] = [];
  let i = 0;
  while (i < lines.length) {
    const open = openingFence(lines[i]);
    if (!open) {
      i++;
      continue;
    }
    const { indent, marker, lang } = open;
    const body: string[] = [];
    let closed = false;
    const closing = new RegExp(`^ {0,3}${marker[0]}{${marker.length},}\\s*$`);
    let j = i + 1;
    for (; j < lines.length; j++) {
      if (closing.test(lines[j])) {
        closed = true;
        break;
      }
      // a closing fence glued to the end of a code line ("}```")
      const glued = lines[j].lastIndexOf(marker);
      if (glued > 0 && lines[j].slice(glued + marker.length).trim() === '' && lines[j].slice(0, glued).trim() !== '') {
        body.push(lines[j].slice(0, glued));
        closed = true;
        break;
      }
      body.push(indent && lines[j].startsWith(' '.repeat(indent)) ? lines[j].slice(indent) : lines[j]);
    }
    out.push({ lang, body: body.join('\n'), closed });
    i = j + 1;
  }
  return out;
}

/**
 * An opening fence line: "```js", "  ~~~", "```JavaScript title=x", or one at the end of a prose
 * line ("Here it is: ```js").
 */
function openingFence(line: string): { indent: number; marker: string; lang: string } | null {
  const m = /^( {0,3})(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/.exec(line);
  if (m) return { indent: m[1].length, marker: m[2], lang: m[3].toLowerCase().replace(/^\{?\.?/, '').replace(/\}$/, '') };
  const p = /^(.*?\S.*?\s)(`{3,}|~{3,})([A-Za-z]*)\s*$/.exec(line);
  if (!p || p[1].includes('`')) return null;
  return { indent: 0, marker: p[2], lang: p[3].toLowerCase() };
}

function fromText(text: string): Extract<ExtractResult, { code: string }> | null {
  const fences = findFences(text);
  for (const [k, f] of fences.entries()) {
    if (!definesMerge(f.body)) continue;
    const r = best(normalise(f.body), f.closed ? 'fence' : 'unterminated-fence');
    return withHelpersFromOtherFences(r, fences, k);
  }
  // bare code (prose around it is dropped)
  const at = findMergeDef(text);
  if (at < 0) return null;
  const lineStart = text.lastIndexOf('\n', at - 1) + 1;
  if (!/^\s*(?:export\s+(?:default\s+)?)?(?:async\s+)?$/.test(text.slice(lineStart, at))) {
    // prose on the same line before the definition ("Sure! function merge(...) {")
    return best(normalise(text.slice(at)), 'bare');
  }
  const lines = text.split('\n');
  const line = text.slice(0, at).split('\n').length - 1;
  // walk back over the contiguous code (helpers, comments, blank lines between code) before merge
  let start = line;
  for (let k = line - 1; k >= 0; k--) {
    const l = lines[k];
    if (l.trim() === '') continue;
    if (looksLikeCode(l)) start = k;
    else break;
  }
  // the earliest start that yields a parsing program wins (a prose line that looked like code is dropped)
  let first: Extract<ExtractResult, { code: string }> | null = null;
  for (let k = start; k <= line; k++) {
    if (lines[k].trim() === '') continue;
    const r = best(normalise(lines.slice(k).join('\n')), 'bare');
    if (r.parses) return r;
    first ??= r;
  }
  return first;
}

/**
 * Models sometimes put helpers in a separate block ("First a helper: ```js function norm…```").
 * Functions that the program calls but does not define are taken from the other JS blocks (in
 * their order), when the result still parses.
 */
function withHelpersFromOtherFences(r: Extract<ExtractResult, { code: string }>, fences: Fence[], at: number): Extract<ExtractResult, { code: string }> {
  const defined = (src: string) => new Set([...stripCommentsAndStrings(src).matchAll(/(?:^|[^\w$.])function\s+([A-Za-z_$][\w$]*)\s*\(/g)].map((m) => m[1]));
  const own = defined(r.code);
  const masked = stripCommentsAndStrings(r.code);
  const called = new Set([...masked.matchAll(/(?:^|[^\w$.])([A-Za-z_$][\w$]*)\s*\(/g)].map((m) => m[1]).filter((n) => !own.has(n)));
  if (called.size === 0) return r;
  const extra: string[] = [];
  for (const [k, f] of fences.entries()) {
    if (k === at || !f.closed || !JS_LANGS.has(f.lang) || definesMerge(f.body)) continue;
    const defs = defined(f.body);
    if ([...defs].some((d) => called.has(d))) extra.push(normalise(f.body));
  }
  if (extra.length === 0) return r;
  const code = [...extra, r.code].join('\n\n');
  return parses(code) ? { ...r, code, parses: true } : r;
}

/** Prefer the full text if it parses, else the text cut after its last complete declaration. */
function best(code: string, via: 'fence' | 'unterminated-fence' | 'bare'): Extract<ExtractResult, { code: string }> {
  const trimmed = code.replace(/\s+$/, '');
  if (parses(trimmed)) return { code: trimmed, via, parses: true };
  const cut = cutToDeclarations(trimmed);
  if (cut !== null && definesMerge(cut)) return { code: cut, via, parses: parses(cut) };
  return { code: trimmed, via, parses: false };
}

const CODE_START = /^\s*(?:(?:export\s+(?:default\s+)?)?(?:async\s+)?function\b|(?:export\s+)?(?:const|let|var|class)\s|\/\/|\/\*|\*|'use strict'|"use strict"|[}\])]|return\b|if\s*\(|for\s*\(|while\s*\(|[A-Za-z_$][\w$.[\]]*\s*(?:[-+*/]?=|\+\+|--|\()|})/;

function looksLikeCode(line: string): boolean {
  return CODE_START.test(line) && !/^\s*[A-Z][a-z]+(?: [a-z]+){3,}/.test(line);
}

function findMergeDef(text: string): number {
  const masked = stripCommentsAndStrings(text);
  const m = MERGE_DEF.exec(masked);
  if (!m) return -1;
  return m.index + (/^[^\w$.]/.test(m[0]) ? 1 : 0);
}

/**
 * Cut `code` after the last top-level statement that ends cleanly (a `}` or `;` at brace depth 0
 * outside strings and comments) and that is followed only by prose or nothing.
 * Returns null when no such point exists.
 */
export function cutToDeclarations(code: string): string | null {
  const ends = topLevelEnds(code);
  for (let k = ends.length - 1; k >= 0; k--) {
    const c = code.slice(0, ends[k] + 1);
    if (parses(c) && definesMerge(c)) return c;
  }
  return ends.length ? code.slice(0, ends[ends.length - 1] + 1) : null;
}

/** Offsets of `}` / `;` characters at depth 0, scanning past strings, templates, comments and regex literals. */
function topLevelEnds(src: string): number[] {
  const ends: number[] = [];
  let depth = 0;
  scan(src, (ch, i) => {
    if (ch === '{' || ch === '(' || ch === '[') depth++;
    else if (ch === '}' || ch === ')' || ch === ']') {
      depth = Math.max(0, depth - 1);
      if (ch === '}' && depth === 0) ends.push(i);
    } else if (ch === ';' && depth === 0) ends.push(i);
  });
  return ends;
}

/** Calls `visit` for every code character (not inside a string, template text, comment or regex). */
function scan(src: string, visit: (ch: string, i: number) => void): void {
  let i = 0;
  const n = src.length;
  const templDepth: number[] = []; // brace depth at which each open `${` returns to template text
  let braces = 0;
  let lastSig = '';
  const regexOk = () => lastSig === '' || /[(,=:[!&|?{};+\-*%<>~^]$/.test(lastSig) || /\b(?:return|typeof|case|do|else|in|of|new|delete|void|throw)$/.test(lastSig);
  const readTemplate = (): void => {
    // at i: inside template text (after ` or after the } that closes ${ )
    while (i < n) {
      const c = src[i];
      if (c === '\\') i += 2;
      else if (c === '`') {
        i++;
        return;
      } else if (c === '$' && src[i + 1] === '{') {
        i += 2;
        templDepth.push(braces);
        braces++;
        return;
      } else i++;
    }
  };
  let word = '';
  while (i < n) {
    const c = src[i];
    if (c === '/' && src[i + 1] === '/') {
      while (i < n && src[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && src[i + 1] === '*') {
      const e = src.indexOf('*/', i + 2);
      i = e < 0 ? n : e + 2;
      continue;
    }
    if (c === '"' || c === "'") {
      i++;
      while (i < n && src[i] !== c && src[i] !== '\n') i += src[i] === '\\' ? 2 : 1;
      i++;
      lastSig = 'x';
      continue;
    }
    if (c === '`') {
      i++;
      readTemplate();
      lastSig = 'x';
      continue;
    }
    if (c === '/' && regexOk() && !/[\w$]/.test(word.slice(-1) || '')) {
      // regex literal
      i++;
      let cls = false;
      while (i < n && src[i] !== '\n') {
        const ch = src[i];
        if (ch === '/' && !cls) break;
        if (ch === '[') cls = true;
        else if (ch === ']') cls = false;
        i += ch === '\\' ? 2 : 1;
      }
      i++;
      while (i < n && /[a-z]/.test(src[i])) i++;
      lastSig = 'x';
      continue;
    }
    if (c === '{') braces++;
    if (c === '}') {
      braces--;
      if (templDepth.length && templDepth[templDepth.length - 1] === braces) {
        templDepth.pop();
        i++;
        readTemplate();
        lastSig = 'x';
        continue;
      }
    }
    visit(c, i);
    if (/[\w$]/.test(c)) word += c;
    else word = '';
    if (!/\s/.test(c)) lastSig = /[\w$]/.test(c) ? (lastSig.match(/[\w$]+$/)?.[0] ?? '') + c : c;
    i++;
  }
}

/** The source with comments, strings and regex literals replaced by spaces (offsets preserved). */
export function stripCommentsAndStrings(src: string): string {
  const out = new Array<string>(src.length).fill(' ');
  scan(src, (ch, i) => {
    out[i] = ch;
  });
  for (let i = 0; i < src.length; i++) if (src[i] === '\n') out[i] = '\n';
  return out.join('');
}

/** Drop ES module syntax so the program is a plain script. */
function normalise(code: string): string {
  return code
    .split('\n')
    .filter((l) => !/^\s*export\s*\{[^}]*\}\s*;?\s*$/.test(l) && !/^\s*module\.exports\s*=.*;?\s*$/.test(l) && !/^\s*exports\.\w+\s*=\s*\w+\s*;?\s*$/.test(l))
    .map((l) => l.replace(/^(\s*)export\s+(?:default\s+)?(?=(?:async\s+)?function\b|const\s|let\s|var\s|class\s)/, '$1'))
    .join('\n')
    .replace(/^\s*\n/, '')
    .replace(/\s+$/, '');
}

/** True when `code` compiles as a classic script (never executed). */
export function parses(code: string): boolean {
  try {
    new Script(code, { filename: 'candidate.js' });
    return true;
  } catch {
    return false;
  }
}
