/**
 * Which tensors a merge touches: `all`, `re:REGEX` (on the tensor name), or a comma list of tensor
 * kinds (`mlp`, `attention`, …; src/sandbox/types.ts `tensorKind`). One parser for the loop's
 * `tensorFilter`, the baselines' `--tensors` and run-config checks.
 */
import { tensorKind, type TensorKind } from '../sandbox/types.ts';

/** A tensor filter as written in a config: kinds ('mlp', 'attention', …), 'all', or a regular expression `re:…`. */
export type TensorFilter = string;

const KINDS: TensorKind[] = ['attention', 'mlp', 'embedding', 'norm', 'other'];

export type ParsedTensorFilter = { kind: 'all' } | { kind: 're'; re: RegExp } | { kind: 'kinds'; kinds: TensorKind[] };

/** The loop's tensor filter: `all`, `re:REGEX`, or a comma list of kinds. Throws naming `where`. */
export function parseTensorFilter(filter: unknown, where = 'tensorFilter'): ParsedTensorFilter {
  if (typeof filter !== 'string' || filter.trim() === '') throw new Error(`${where} must be all, re:REGEX or a comma list of ${KINDS.join(', ')}, got ${JSON.stringify(filter)}`);
  if (filter === 'all') return { kind: 'all' };
  if (filter.startsWith('re:')) {
    try {
      return { kind: 're', re: new RegExp(filter.slice(3)) };
    } catch (e) {
      throw new Error(`${where} ${JSON.stringify(filter)}: not a valid regular expression (${(e as Error).message})`);
    }
  }
  const kinds = filter.split(',').map((s) => s.trim()) as TensorKind[];
  for (const k of kinds) if (!KINDS.includes(k)) throw new Error(`${where} ${JSON.stringify(filter)}: unknown kind '${k}' (use all, re:REGEX, or a comma list of ${KINDS.join(', ')})`);
  return { kind: 'kinds', kinds };
}

/** The filter as a predicate on tensor names (throws on a bad filter, as parseTensorFilter). */
export function tensorSelector(filter: TensorFilter): (name: string) => boolean {
  const f = parseTensorFilter(filter, 'tensor filter');
  if (f.kind === 'all') return () => true;
  if (f.kind === 're') return (n) => f.re.test(n);
  return (n) => f.kinds.includes(tensorKind(n));
}
