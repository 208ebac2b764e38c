/**
 * The one error type of src/io: a checkpoint or safetensors file is unusable. The message always
 * names the file (and the tensor when one is involved), so it can be shown to the user as is.
 */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
  /** The file (or folder) at fault, as the caller named it. */
  readonly file: string;
  /** The tensor at fault, when the problem is about one tensor. */
  readonly tensor?: string;
  /** The bare problem, without the file / tensor prefix. */
  readonly problem: string;

  constructor(file: string, problem: string, tensor?: string) {
    super(tensor === undefined ? `${file}: ${problem}` : `${file}: tensor '${tensor}': ${problem}`);
    this.file = file;
    this.problem = problem;
    if (tensor !== undefined) this.tensor = tensor;
  }
}
