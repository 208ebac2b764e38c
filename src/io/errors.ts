/**
 * The one error type of src/io: a checkpoint or safetensors file is unusable. The message always
 * names the file (and the tensor when one is involved), so it can be shown to the user as is.
 */
/** `s` with control characters (newlines included) escaped as in JSON, so a message stays one line. */
export function oneLine(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => JSON.stringify(c).slice(1, -1).replace(/^[\u2028\u2029]$/, (x) => `\\u${x.charCodeAt(0).toString(16)}`));
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
  /** The file (or folder) at fault, as the caller named it. */
  readonly file: string;
  /** The tensor at fault, when the problem is about one tensor. */
  readonly tensor?: string;
  /** The bare problem, without the file / tensor prefix. */
  readonly problem: string;

  constructor(file: string, problem: string, tensor?: string) {
    // one line, whatever a file put into a name or a parser put into its message
    problem = oneLine(problem);
    super(tensor === undefined ? `${oneLine(file)}: ${problem}` : `${oneLine(file)}: tensor '${oneLine(tensor)}': ${problem}`);
    this.file = file;
    this.problem = problem;
    if (tensor !== undefined) this.tensor = tensor;
  }
}
