/** One CLI command. `run` gets the arguments after the command name and returns an exit code. */
export interface Command {
  name: string;
  /** One line for `selfdev --help`. */
  summary: string;
  /** Full usage text for `selfdev <name> --help`. */
  usage: string;
  run(args: string[]): Promise<number>;
}

/** An error whose message is meant for the user as is (no stack trace). */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Runs an argument parser (typically `node:util` parseArgs), turning its errors into UsageErrors. */
export function parseCli<T>(parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0]);
  }
}

/**
 * An integer option: `def` when it is absent, else its value, which must be an integer ≥ `min`
 * (a UsageError naming the option otherwise).
 */
export function intOption(v: string | undefined, name: string, def: number, min?: number): number;
export function intOption(v: string | undefined, name: string, def: number | undefined, min?: number): number | undefined;
export function intOption(v: string | undefined, name: string, def: number | undefined, min = 0): number | undefined {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be ${min === 0 ? 'a non-negative integer' : `an integer >= ${min}`}, got '${v}'`);
  return n;
}
