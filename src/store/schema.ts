// The run database schema, as an ordered list of migrations. One run directory holds exactly one run
// (`runs` has a single row, id = 1); arms (dpo / random / evolution) and repeats live inside it.
//
// Identity rules
// - A program is identified by sha256(normalizeCode(code)) (`programs.hash`). The same program sampled
//   twice (in one iteration, across iterations or across arms) is one `programs` row and several
//   `samples` rows.
// - An evaluation is keyed by (program hash, evaluation-config hash), so a duplicate program is
//   evaluated once per evaluation configuration. `eval_configs` keeps the config each key stands for.
// - The fixed factory prompt is stored once in `prompts` and referenced by preference pairs.
//
// Never edit a migration that has shipped: append a new one. `schema_version` holds one row per
// applied migration.

export interface Migration {
  version: number;
  description: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'initial schema',
    sql: `
-- The run (single row). config_json: the loop's full configuration; eval_key: default evaluation config.
CREATE TABLE runs (
  id              INTEGER PRIMARY KEY CHECK (id = 1),
  name            TEXT    NOT NULL,
  config_json     TEXT    NOT NULL,
  seed            INTEGER NOT NULL,
  eval_key        TEXT    NOT NULL REFERENCES eval_configs(eval_key),
  status          TEXT    NOT NULL CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
  selfdev_version TEXT    NOT NULL,
  created_at      TEXT    NOT NULL,
  updated_at      TEXT    NOT NULL,
  finished_at     TEXT
);

-- Evaluation configurations (dev/test split definition, subset size, benchmark, expert set...).
CREATE TABLE eval_configs (
  eval_key    TEXT PRIMARY KEY,            -- sha256 of the canonical JSON of config_json
  config_json TEXT NOT NULL,
  created_at  TEXT NOT NULL
);

-- Factory prompts (the fixed prompt of the paper), referenced by preference pairs.
CREATE TABLE prompts (
  prompt_hash TEXT PRIMARY KEY,            -- sha256 of the text
  text        TEXT NOT NULL
);

-- One iteration of one arm of one repeat.
CREATE TABLE iterations (
  id                 INTEGER PRIMARY KEY,
  arm                TEXT    NOT NULL,     -- 'dpo' (the method), 'random', 'evolution', ...
  repeat_index       INTEGER NOT NULL DEFAULT 0 CHECK (repeat_index >= 0),
  t                  INTEGER NOT NULL CHECK (t >= 1),
  temperature        REAL,
  status             TEXT    NOT NULL CHECK (status IN ('sampling', 'evaluating', 'training', 'done', 'failed')),
  n_target           INTEGER,              -- programs requested (N)
  factory_checkpoint TEXT,                 -- path of the factory checkpoint saved after this iteration
  timings_json       TEXT    NOT NULL DEFAULT '{}',  -- phase -> milliseconds
  started_at         TEXT    NOT NULL,
  finished_at        TEXT,
  UNIQUE (arm, repeat_index, t)
);

-- Distinct programs.
CREATE TABLE programs (
  hash          TEXT PRIMARY KEY,          -- sha256 hex of the normalised code
  code          TEXT NOT NULL,             -- code as first seen
  first_seen_at TEXT NOT NULL
);

-- Every sampling event (a program produced in an iteration). id gives the global creation order.
CREATE TABLE samples (
  id           INTEGER PRIMARY KEY,
  iteration_id INTEGER NOT NULL REFERENCES iterations(id),
  seq          INTEGER NOT NULL,           -- order within the iteration, from 0
  program_hash TEXT    NOT NULL REFERENCES programs(hash),
  parent_hash  TEXT    REFERENCES programs(hash),
  origin       TEXT    NOT NULL CHECK (origin IN ('factory', 'seed', 'mutation', 'carry')),
  temperature  REAL,
  created_at   TEXT    NOT NULL,
  UNIQUE (iteration_id, seq)
);
CREATE INDEX samples_by_program ON samples(program_hash);

-- Results of the validation cascade and scoring. verdict = 'ok' or a failure category.
-- Scores are accuracies in [0, 1]; NULL = not measured (yet).
CREATE TABLE evaluations (
  program_hash TEXT NOT NULL REFERENCES programs(hash),
  eval_key     TEXT NOT NULL REFERENCES eval_configs(eval_key),
  verdict      TEXT NOT NULL,
  message      TEXT,
  dev_subset   REAL,                       -- cheap stage: accuracy on the dev subset
  dev_strict   REAL,
  dev_flex     REAL,
  test_strict  REAL,
  test_flex    REAL,
  family_json  TEXT,                       -- per-family (problem type) scores, JSON object
  sandbox_ms   REAL,
  merge_ms     REAL,
  eval_ms      REAL,
  created_at   TEXT NOT NULL,
  updated_at   TEXT NOT NULL,
  PRIMARY KEY (program_hash, eval_key)
);
CREATE INDEX evaluations_by_dev ON evaluations(eval_key, dev_strict);

-- DPO preference pairs built for an iteration (training data of the factory after iteration t).
CREATE TABLE pairs (
  id             INTEGER PRIMARY KEY,
  iteration_id   INTEGER NOT NULL REFERENCES iterations(id),
  prompt_hash    TEXT    NOT NULL REFERENCES prompts(prompt_hash),
  chosen_hash    TEXT    NOT NULL REFERENCES programs(hash),
  rejected_hash  TEXT    NOT NULL REFERENCES programs(hash),
  chosen_score   REAL    NOT NULL,
  rejected_score REAL    NOT NULL,
  source         TEXT    NOT NULL CHECK (source IN ('current', 'carried')),
  UNIQUE (iteration_id, chosen_hash, rejected_hash)
);

-- DPO training log, one row per optimiser step.
CREATE TABLE dpo_steps (
  iteration_id     INTEGER NOT NULL REFERENCES iterations(id),
  step             INTEGER NOT NULL CHECK (step >= 0),
  loss             REAL    NOT NULL,
  rewards_chosen   REAL,
  rewards_rejected REAL,
  margin           REAL,
  accuracy         REAL,
  logps_chosen     REAL,
  logps_rejected   REAL,
  lr               REAL,
  PRIMARY KEY (iteration_id, step)
);

-- Classical merge baselines (Task Arithmetic grid points, TIES, DARE, seed...). selected = 1 marks
-- the configuration chosen on dev (the one whose test score is reported).
CREATE TABLE baselines (
  id           INTEGER PRIMARY KEY,
  name         TEXT    NOT NULL,           -- display name, e.g. 'Task Arithmetic'
  method       TEXT    NOT NULL,           -- registry name, e.g. 'task_arithmetic'
  params_json  TEXT    NOT NULL,
  expert_set   TEXT    NOT NULL CHECK (expert_set IN ('in-domain', 'ood')),
  repeat_index INTEGER NOT NULL DEFAULT 0,
  selected     INTEGER NOT NULL DEFAULT 0 CHECK (selected IN (0, 1)),
  dev_strict   REAL,
  dev_flex     REAL,
  test_strict  REAL,
  test_flex    REAL,
  UNIQUE (name, expert_set, repeat_index, params_json)
);

-- Discovered programs applied unchanged to out-of-domain experts.
CREATE TABLE transfer (
  id           INTEGER PRIMARY KEY,
  program_hash TEXT    NOT NULL REFERENCES programs(hash),
  source_rank  INTEGER NOT NULL,           -- rank on the in-domain leaderboard
  expert_set   TEXT    NOT NULL,           -- label of the out-of-domain expert set
  repeat_index INTEGER NOT NULL DEFAULT 0,
  dev_strict   REAL,
  dev_flex     REAL,
  test_strict  REAL,
  test_flex    REAL,
  UNIQUE (program_hash, expert_set, repeat_index)
);

-- Final result of each repeat of each arm (the program selected on dev, scored on test).
CREATE TABLE repeats (
  arm               TEXT    NOT NULL,
  repeat_index      INTEGER NOT NULL CHECK (repeat_index >= 0),
  seed              INTEGER NOT NULL,
  best_program_hash TEXT    REFERENCES programs(hash),
  best_dev_strict   REAL,
  test_strict       REAL,
  test_flex         REAL,
  PRIMARY KEY (arm, repeat_index)
);
`,
  },
  {
    version: 2,
    description: 'iterations: factory sampled from; recursive mode merged checkpoint and its program',
    sql: `
-- The factory this iteration sampled from: a folder relative to the run folder (factory/iter-T,
-- factory/merged-iter-T), the configured builtin folder (absolute), or corpus / evolution /
-- openai:URL#MODEL / llamacpp:PATH. NULL for iterations sampled before this column existed.
ALTER TABLE iterations ADD COLUMN sampled_from TEXT;
-- Recursive mode: the folder (relative to the run folder) holding the merge of this iteration's best
-- program by full dev (ties by hash), and that program.
ALTER TABLE iterations ADD COLUMN merged_checkpoint TEXT;
ALTER TABLE iterations ADD COLUMN merged_program TEXT REFERENCES programs(hash);
`,
  },
  {
    version: 3,
    description: 'evaluations: scores on the selection split (the best program is chosen on it)',
    sql: `
-- The selection split: the top programs by full dev are re-scored on it and the best of them there is
-- the run's best program (dev screens, select chooses, test only reports). NULL = not scored on it.
ALTER TABLE evaluations ADD COLUMN select_strict REAL;
ALTER TABLE evaluations ADD COLUMN select_flex REAL;
`,
  },
  {
    version: 4,
    description: 'evaluations: the worker that scored the program (distributed evaluation)',
    sql: `
-- Distributed evaluation (src/distributed): HOST:PID of the \`selfdev worker\` whose result was
-- recorded first for this program; NULL for local evaluation and rows from before this column.
ALTER TABLE evaluations ADD COLUMN scored_by TEXT;
`,
  },
  {
    version: 5,
    description: 'runs: the scoring protocol (lm-eval task, shots, sampler and seed, shot pool hash, budget, calculator, ranking metric)',
    sql: `
-- JSON (src/eval/protocol.ts EvalProtocol): how every score of the run was produced, e.g.
-- {"task":"gsm8k","shots":5,"sampler":"lm-eval","shotSeed":1234,"train":"…","trainSha256":"…",
--  "maxTokens":256,"calculator":false,"stop":[…],"rankBy":"strict","backend":"server"}.
-- NULL for runs created before this column existed.
ALTER TABLE runs ADD COLUMN eval_protocol_json TEXT;
`,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;
