// Helpers of the run database: program identity (normalised code → hash), canonical JSON and eval
// keys, atomic file writes, and the small value checks every table uses.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Normalises program text for identity: CRLF/CR → LF, trailing whitespace of each line removed,
 * leading and trailing blank lines removed. Comments and inner whitespace are kept (they can matter
 * inside strings).
 */
export function normalizeCode(code: string): string {
  return code
    .replace(/\r\n?/g, '\n')
    .split('\n')
    .map((l) => l.replace(/[ \t\f\v]+$/, ''))
    .join('\n')
    .replace(/^\n+/, '')
    .replace(/\n+$/, '');
}

export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** Identity of a program: sha256 of its normalised code. */
export function programHash(code: string): string {
  return sha256(normalizeCode(code));
}

/** JSON with object keys sorted recursively (stable hashing of configurations). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v as object).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = sortKeys(x);
    }
    return out;
  }
  return v;
}

/** Hash of an evaluation configuration (the second half of an evaluation's key). */
export function evalKeyOf(config: unknown): string {
  return sha256(canonicalJson(config));
}

/** Writes a file atomically (temp file in the same directory, then rename). */
export function writeFileAtomic(path: string, data: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

export function readSelfdevVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export const now = (): string => new Date().toISOString();
export const nn = <T>(v: T | undefined): T | null => (v === undefined ? null : v);

export function checkScore(field: string, v: number | null | undefined): void {
  if (v === undefined || v === null) return;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`store: ${field} must be a finite number, got ${String(v)}`);
}

export function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
