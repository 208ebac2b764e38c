/** fast-check arbitraries shared by the fuzz properties: values a config file can hold. */
import fc from 'fast-check';

/** Marks a field to delete. */
export const DELETE = Symbol('delete');

/** Numbers at the edges: sizes, float32 / integer limits, fractions, negatives. */
export const edgeNumber = fc.constantFrom(
  0, 1, 2, 3, 4, 24, 96, 256, 258, 259, 260, 1e9, 1e12, 2 ** 31, 2 ** 32, 2 ** 53, -1, -0.1, 0.5, 0.999, 1.5, 1e-5, 1e-300, 5e-324,
  3e38, 3.5e38, 1e39, 1e300, Number.MAX_SAFE_INTEGER,
);

/** Any JSON value a config field might wrongly hold. */
export const jsonValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: edgeNumber },
  { weight: 2, arbitrary: fc.integer({ min: -10, max: 600 }) },
  { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
  { weight: 2, arbitrary: fc.constantFrom(null, true, false, '', 'llama', 'gpt2', 'silu', '3', 'LlamaForCausalLM', 'default', 'yarn') },
  { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
  { weight: 1, arbitrary: fc.array(fc.oneof(fc.integer({ min: -2, max: 300 }), fc.constantFrom('LlamaForCausalLM', 'MistralForCausalLM')), { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.constantFrom('rope_type', 'rope_theta', 'factor', 'type'), fc.oneof(fc.constantFrom('default', 'yarn', 'linear'), edgeNumber), { maxKeys: 2 }) },
);

/** A field edit: a value, or DELETE. */
export const fieldValue: fc.Arbitrary<unknown> = fc.oneof({ weight: 1, arbitrary: fc.constant(DELETE) }, { weight: 6, arbitrary: jsonValue });

/** Text that is not a valid config: truncated JSON, other JSON types, random characters. */
export const garbageText = fc.oneof(
  fc.constantFrom('', '{', '[]', 'null', '"x"', '42', '{"vocab_size": 259', '\u0000\u0001\u0002', '{"a":1}{"b":2}', '\ufeff{}'),
  fc.string({ maxLength: 40 }),
);

/** Applies [field, value] edits to a JSON object (DELETE removes the field). */
export function applyEdits(obj: Record<string, unknown>, edits: ReadonlyArray<readonly [string, unknown]>): Record<string, unknown> {
  const out = { ...obj };
  for (const [k, v] of edits) {
    if (v === DELETE) delete out[k];
    else out[k] = v;
  }
  return out;
}

/** A short printable description of a case for failure messages. */
export function describeCase(x: unknown): string {
  return JSON.stringify(x, (_k, v) => (v === DELETE ? '<delete>' : typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));
}
