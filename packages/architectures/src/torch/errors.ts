/**
 * Why a PyTorch checkpoint could not be read or imported. Every subclass names the file (when the caller gave one)
 * and what was found against what was expected; callers (the CLI) treat all of them as bad input (exit 2).
 */
export class TorchWeightsError extends Error {
  /** The file name given to the reader, if any. */
  readonly file: string | undefined;

  constructor(message: string, file?: string) {
    super(file === undefined ? message : `${file}: ${message}`);
    this.name = 'TorchWeightsError';
    this.file = file;
  }
}

/** The bytes are not a well-formed .safetensors file or torch.save zip archive; `byteOffset` is where it went wrong. */
export class TorchFormatError extends TorchWeightsError {
  readonly byteOffset: number;

  constructor(message: string, byteOffset: number, file?: string) {
    super(`${message} (at byte offset ${byteOffset})`, file);
    this.name = 'TorchFormatError';
    this.byteOffset = byteOffset;
  }
}

/** The file is readable but holds no state_dict (a dict of tensor names to tensors) where one was looked for. */
export class NotAStateDictError extends TorchWeightsError {
  constructor(message: string, file?: string) {
    super(message, file);
    this.name = 'NotAStateDictError';
  }
}

/** A tensor of a dtype the importer does not convert (float32, float16 and bfloat16 are converted). */
export class TorchDtypeError extends TorchWeightsError {
  readonly key: string;
  readonly dtype: string;

  constructor(key: string, dtype: string, file?: string) {
    super(`tensor '${key}' has dtype ${dtype}; supported: float32, float16, bfloat16 (converted to float32)`, file);
    this.name = 'TorchDtypeError';
    this.key = key;
    this.dtype = dtype;
  }
}

function listed(keys: readonly string[], limit = 40): string {
  const shown = keys.slice(0, limit).join(', ');
  return keys.length > limit ? `${shown}, ... (${keys.length - limit} more)` : shown;
}

/** The state_dict's keys are not the model's: `missing` are expected and absent, `unexpected` present and unused. */
export class TorchKeyMismatchError extends TorchWeightsError {
  readonly missing: readonly string[];
  readonly unexpected: readonly string[];

  constructor(source: string, model: string, missing: readonly string[], unexpected: readonly string[], file?: string) {
    const parts = [
      missing.length > 0 ? `missing keys (${missing.length}): ${listed(missing)}` : '',
      unexpected.length > 0 ? `unexpected keys (${unexpected.length}): ${listed(unexpected)}` : '',
    ].filter((part) => part !== '');
    super(`the state_dict does not fit ${model} with ${source} names: ${parts.join('; ')}`, file);
    this.name = 'TorchKeyMismatchError';
    this.missing = [...missing];
    this.unexpected = [...unexpected];
  }
}

/** A tensor whose shape is not the one the model's layer needs (both in PyTorch's layout, e.g. OIHW for convs). */
export class TorchShapeMismatchError extends TorchWeightsError {
  readonly key: string;
  readonly expected: readonly number[];
  readonly got: readonly number[];

  constructor(key: string, layer: string, expected: readonly number[], got: readonly number[], file?: string) {
    super(`tensor '${key}' (for layer ${layer}) has shape [${got.join(', ')}], expected [${expected.join(', ')}]`, file);
    this.name = 'TorchShapeMismatchError';
    this.key = key;
    this.expected = [...expected];
    this.got = [...got];
  }
}
