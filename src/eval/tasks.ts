/**
 * lm-evaluation-harness task protocols (prompt, few-shot examples, stop strings, scoring) as selfdev
 * runs them through a completion backend. Sources read: EleutherAI/lm-evaluation-harness at 4e7e0d4
 * (`lm_eval/tasks/gsm8k/gsm8k.yaml`, `gsm8k-cot.yaml`, `lm_eval/api/samplers.py`, `task.py`
 * `fewshot_context`, `evaluator.py`), see also /work/shared/reference/gsm8k.md.
 *
 * - `gsm8k` (v3.0): `Question: {q}\nAnswer:`, shots = full train answers, target delimiter " ",
 *   few-shot delimiter "\n\n", 5 shots, stops `Question:`, `</s>`, `<|im_end|>`; strict-match
 *   `#### N` (first), flexible-extract (last number); exact_match with lm-eval's ignore list.
 * - `gsm8k_cot` (v3.0): `Q: {q}\nA:`, the 8 fixed chain-of-thought exemplars of Wei et al. (2022)
 *   in order (sampler `first_n`), stops `Q:`, `</s>`, `<|im_end|>`; strict-match
 *   `The answer is N.` (first), the same flexible-extract; the reference is the bare final answer.
 * - MATH (`minerva_math` 4 fixed Minerva exemplars, `hendrycks_math` zero-shot): see math.ts.
 *
 * **Few-shot sampling as lm-eval does it** (`sampler: 'lm-eval'`, the default): lm-eval's default
 * sampler holds one `random.Random(fewshot_random_seed)` (default 1234) per task and calls
 * `rnd.sample(train_docs, k)` once per evaluated document, in document order. Reproduced exactly
 * here with CPython's generator (pyrandom.ts): the shots of the document at file index i are the
 * (i+1)-th draw of that stream, i.e. what lm-eval gives document i when it evaluates the whole file
 * (or any `--limit N` prefix of it, since the stream is consumed in order). They do not depend on
 * which other documents selfdev evaluates (a dev subset gets the same prompts as the full file).
 * Where this differs from lm-eval: `lm_eval --samples i,j,…` consumes the stream only for the listed
 * documents, so its shots for a subset differ; and lm-eval only removes the evaluated document from
 * its shots when the few-shot split is the test split (never for GSM8k: train vs test), as here.
 * The shot pool must be the train file in its published order (openai/gsm8k `main` train = the
 * grade-school-math `train.jsonl`, same order). `sampler: 'seeded'` keeps selfdev's older
 * mulberry32 per-document draw (prompt.ts selectShots).
 */
import { PyRandom } from './pyrandom.ts';
import { buildPrompt, selectShots, type QA } from './prompt.ts';
import { finalAnswer } from './gsm8k.ts';
import { scoreResponse, type FilterScore } from './scoring.ts';
import { boxedReference, scoreMath, MATH_STOPS, MINERVA_SHOTS, minervaQuery, hendrycksQuery } from './math.ts';

export type TaskName = 'gsm8k' | 'gsm8k_cot' | 'minerva_math' | 'hendrycks_math';
export const TASK_NAMES: readonly TaskName[] = ['gsm8k', 'gsm8k_cot', 'minerva_math', 'hendrycks_math'];
/** Tasks scored on GSM8k files and on MATH files. */
export const GSM8K_TASKS: readonly TaskName[] = ['gsm8k', 'gsm8k_cot'];
export const MATH_TASKS: readonly TaskName[] = ['minerva_math', 'hendrycks_math'];
export type ShotSampler = 'lm-eval' | 'seeded';
export const LM_EVAL_FEWSHOT_SEED = 1234;

/** A problem as the evaluator holds it (GSM8k: question/answer; MATH: problem/solution mapped to them). */
export interface TaskDoc extends QA {
  /** Position in the source file (0-based): selects the doc's few-shot examples. */
  index?: number;
}

export interface ShotSpec {
  /** The pool random samplers draw from (GSM8k train); unused by fixed-exemplar tasks. */
  pool: readonly QA[];
  k: number;
  seed: number;
  /** Default 'lm-eval'. */
  sampler?: ShotSampler;
}

export interface TaskScore {
  reference: string;
  strict: FilterScore;
  flexible: FilterScore;
}

export interface TaskProtocol {
  name: TaskName;
  /** Generation stops (`until`). */
  stops: readonly string[];
  /** lm-eval's `num_fewshot`. */
  defaultShots: number;
  /** Tasks with fixed exemplars (sampler first_n): at most this many shots; random samplers: none. */
  fixedShots?: readonly QA[];
  /** The query of one doc (`doc_to_text`). */
  query(question: string): string;
  /** One shot: query + target delimiter + target. */
  shot(s: QA): string;
  /** Score one (stop-cut) generation against a doc's answer field. */
  score(generation: string, answer: string): TaskScore;
}

/** The 8 chain-of-thought exemplars of Wei et al. (2022), as gsm8k_cot uses them (question, target). */
export const COT_EXEMPLARS: readonly QA[] = [
  ['There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, there will be 21 trees. How many trees did the grove workers plant today?', 'There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have been 21 - 15 = 6. The answer is 6.'],
  ['If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?', 'There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5.'],
  ['Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in total?', 'Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After eating 35, they had 74 - 35 = 39. The answer is 39.'],
  ['Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many lollipops did Jason give to Denny?', 'Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny 20 - 12 = 8. The answer is 8.'],
  ['Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does he have now?', 'Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. 5 + 4 = 9. The answer is 9.'],
  ['There were nine computers in the server room. Five more computers were installed each day, from monday to thursday. How many computers are now in the server room?', 'There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 computers were added. 9 + 20 is 29. The answer is 29.'],
  ['Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many golf balls did he have at the end of wednesday?', 'Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing 2 more, he had 35 - 2 = 33 golf balls. The answer is 33.'],
  ['Olivia has $23. She bought five bagels for $3 each. How much money does she have left?', 'Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 dollars left. 23 - 15 is 8. The answer is 8.'],
].map(([question, answer]) => ({ question, answer }));

const gsmQuery = (q: string) => `Question: ${q}\nAnswer:`;
const cotQuery = (q: string) => `Q: ${q}\nA:`;

export const TASKS: Readonly<Record<TaskName, TaskProtocol>> = {
  gsm8k: {
    name: 'gsm8k',
    stops: ['Question:', '</s>', '<|im_end|>'],
    defaultShots: 5,
    query: gsmQuery,
    shot: (s) => `${gsmQuery(s.question)} ${s.answer}`,
    score: (g, answer) => ({ reference: finalAnswer(answer), ...scoreResponse(g, answer, 'gsm8k') }),
  },
  gsm8k_cot: {
    name: 'gsm8k_cot',
    stops: ['Q:', '</s>', '<|im_end|>'],
    defaultShots: 8,
    fixedShots: COT_EXEMPLARS,
    query: cotQuery,
    shot: (s) => `${cotQuery(s.question)} ${s.answer}`,
    score: (g, answer) => ({ reference: finalAnswer(answer), ...scoreResponse(g, answer, 'gsm8k_cot') }),
  },
  minerva_math: {
    name: 'minerva_math',
    stops: MATH_STOPS,
    defaultShots: 4,
    fixedShots: MINERVA_SHOTS,
    query: minervaQuery,
    shot: (s) => `${minervaQuery(s.question)} ${s.answer}`,
    score: (g, solution) => scoreMath('minerva_math', g, solution),
  },
  hendrycks_math: {
    name: 'hendrycks_math',
    stops: MATH_STOPS,
    defaultShots: 0,
    query: hendrycksQuery,
    // lm-eval's default sampler over the train split, target = the boxed answer (the task's default is zero-shot)
    shot: (s) => `${hendrycksQuery(s.question)} ${boxedReference(s.answer)}`,
    score: (g, solution) => scoreMath('hendrycks_math', g, solution),
  },
};

export function taskProtocol(name: string): TaskProtocol {
  if (!(TASK_NAMES as readonly string[]).includes(name)) throw new Error(`unknown task '${name}': expected ${TASK_NAMES.join(', ')}`);
  return TASKS[name as TaskName];
}

/**
 * lm-eval's default few-shot draws: `Random(seed)`, then `sample(range(poolSize), k)` once per
 * document 0, 1, …, count − 1 (pool indices, in draw order).
 */
export function lmEvalShotIndices(poolSize: number, k: number, seed: number, count: number): number[][] {
  const rnd = new PyRandom(seed);
  const out: number[][] = [];
  for (let d = 0; d < count; d++) out.push(rnd.sampleIndices(poolSize, k));
  return out;
}

/** The few-shot examples of every doc (in `docs` order), as the task and sampler pick them. */
export function shotsFor(task: TaskProtocol, docs: readonly TaskDoc[], spec: ShotSpec | undefined): QA[][] {
  const k = spec?.k ?? 0;
  if (!Number.isInteger(k) || k < 0) throw new Error(`shots must be a non-negative integer, got ${k}`);
  if (k === 0) return docs.map(() => []);
  if (task.fixedShots) {
    if (k > task.fixedShots.length) throw new Error(`${task.name} has ${task.fixedShots.length} fixed few-shot exemplars (lm-eval sampler first_n); ${k} shots asked`);
    const fixed = task.fixedShots.slice(0, k);
    return docs.map(() => fixed);
  }
  const s = spec!;
  if (s.pool.length < k) throw new Error(`the shot pool has ${s.pool.length} examples, ${k} shots asked`);
  if ((s.sampler ?? 'lm-eval') === 'seeded') {
    return docs.map((d, i) => selectShots(s.pool, { k, seed: s.seed, docIndex: d.index ?? i, excludeQuestion: d.question }));
  }
  const pos = docs.map((d, i) => d.index ?? i);
  const draws = lmEvalShotIndices(s.pool.length, k, s.seed, pos.reduce((m, p) => Math.max(m, p + 1), 0));
  return pos.map((p) => draws[p].map((j) => s.pool[j]));
}

/** lm-eval's plain-text context: shots joined by "\n\n", then the query (nothing after it). */
export function taskPrompt(task: TaskProtocol, question: string, shots: readonly QA[]): string {
  if (task.name === 'gsm8k') return buildPrompt(question, shots);
  return [...shots.map((s) => task.shot(s)), task.query(question)].join('\n\n');
}

/** Every doc's prompt. */
export function taskPrompts(task: TaskProtocol, docs: readonly TaskDoc[], spec: ShotSpec | undefined): string[] {
  const shots = shotsFor(task, docs, spec);
  return docs.map((d, i) => taskPrompt(task, d.question, shots[i]));
}
