/**
 * A data file that is not what its format promises. `file` and (where it applies) `byteOffset` and
 * `record` locate the problem; the message states what was found and what was expected.
 */
export class DatasetFormatError extends Error {
  readonly file: string;
  readonly byteOffset: number | undefined;
  readonly record: number | undefined;

  constructor(file: string, message: string, where: { byteOffset?: number; record?: number } = {}) {
    const location = [
      where.record === undefined ? undefined : `record ${where.record}`,
      where.byteOffset === undefined ? undefined : `byte offset ${where.byteOffset}`,
    ]
      .filter((part) => part !== undefined)
      .join(', ');
    super(`${file}${location ? ` (${location})` : ''}: ${message}`);
    this.name = 'DatasetFormatError';
    this.file = file;
    this.byteOffset = where.byteOffset;
    this.record = where.record;
  }
}

/** A file the loader needs is not where it looked. The message lists what it looked for. */
export class DatasetNotFoundError extends Error {
  readonly path: string;

  constructor(path: string, message: string) {
    super(message);
    this.name = 'DatasetNotFoundError';
    this.path = path;
  }
}
