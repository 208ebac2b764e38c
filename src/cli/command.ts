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
