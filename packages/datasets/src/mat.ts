// fflate, not node:zlib, so that the parser runs in browsers too (a page parses an SVHN .mat it fetched).
import { unzlibSync } from 'fflate';

import { DatasetFormatError } from './errors.js';

/*
 * A reader for the subset of MATLAB's Level 5 MAT-file format that numeric datasets use: numeric matrices of any
 * rank, plain or zlib-compressed (miCOMPRESSED), little or big endian. Other variables (cells, structs, chars,
 * sparse) are listed but not decoded. We read the format ourselves because the one npm reader (mat-for-js)
 * turns every matrix into nested plain JavaScript arrays: several GB for SVHN's 225 MB of uint8 pixels.
 * Reference: MathWorks, "MAT-File Format", Level 5 chapter.
 */

export const MI = {
  INT8: 1,
  UINT8: 2,
  INT16: 3,
  UINT16: 4,
  INT32: 5,
  UINT32: 6,
  SINGLE: 7,
  DOUBLE: 9,
  INT64: 12,
  UINT64: 13,
  MATRIX: 14,
  COMPRESSED: 15,
  UTF8: 16,
  UTF16: 17,
  UTF32: 18,
} as const;

export const MX = {
  CELL: 1,
  STRUCT: 2,
  OBJECT: 3,
  CHAR: 4,
  SPARSE: 5,
  DOUBLE: 6,
  SINGLE: 7,
  INT8: 8,
  UINT8: 9,
  INT16: 10,
  UINT16: 11,
  INT32: 12,
  UINT32: 13,
  INT64: 14,
  UINT64: 15,
} as const;

const MI_NAMES: Record<number, string> = Object.fromEntries(Object.entries(MI).map(([k, v]) => [v, `mi${k}`]));
const MX_NAMES: Record<number, string> = Object.fromEntries(Object.entries(MX).map(([k, v]) => [v, `mx${k}_CLASS`]));

const MI_SIZES: Record<number, number> = {
  [MI.INT8]: 1,
  [MI.UINT8]: 1,
  [MI.INT16]: 2,
  [MI.UINT16]: 2,
  [MI.INT32]: 4,
  [MI.UINT32]: 4,
  [MI.SINGLE]: 4,
  [MI.DOUBLE]: 8,
};

export type MatNumericData = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array;

/** One variable of a MAT-file. `data` (real part, column-major) is present for numeric classes only. */
export interface MatVariable {
  name: string;
  /** MATLAB class number (see `MX`), e.g. 9 for uint8, 6 for double. */
  classId: number;
  /** Class name as MATLAB's documentation spells it, e.g. 'mxUINT8_CLASS'. */
  className: string;
  dims: number[];
  data?: MatNumericData;
}

const NUMERIC_CLASSES: Record<number, { make: (n: number) => MatNumericData }> = {
  [MX.DOUBLE]: { make: (n) => new Float64Array(n) },
  [MX.SINGLE]: { make: (n) => new Float32Array(n) },
  [MX.INT8]: { make: (n) => new Int8Array(n) },
  [MX.UINT8]: { make: (n) => new Uint8Array(n) },
  [MX.INT16]: { make: (n) => new Int16Array(n) },
  [MX.UINT16]: { make: (n) => new Uint16Array(n) },
  [MX.INT32]: { make: (n) => new Int32Array(n) },
  [MX.UINT32]: { make: (n) => new Uint32Array(n) },
};

const miName = (type: number) => MI_NAMES[type] ?? `unknown type ${type}`;
const mxName = (classId: number) => MX_NAMES[classId] ?? `unknown class ${classId}`;

interface Tag {
  type: number;
  nbytes: number;
  /** Offset of the element's data, relative to the start of the view. */
  dataOffset: number;
  /** Offset just past the element including padding to 8 bytes. */
  end: number;
}

/** Reads the elements of one buffer: the file, or one decompressed element of it. */
class ElementReader {
  readonly view: DataView;

  constructor(
    readonly bytes: Uint8Array,
    readonly file: string,
    readonly littleEndian: boolean,
    /** Where offsets point in messages: the file, or an element decompressed from the file. */
    readonly where: (offset: number) => { byteOffset: number; inCompressed?: number },
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  fail(offset: number, message: string): never {
    const at = this.where(offset);
    const suffix = at.inCompressed === undefined ? '' : ` (offset ${offset} inside the compressed element at byte ${at.inCompressed})`;
    throw new DatasetFormatError(this.file, message + suffix, { byteOffset: at.byteOffset });
  }

  tag(offset: number, limit: number): Tag {
    if (offset + 8 > limit) this.fail(offset, `element tag needs 8 bytes, only ${limit - offset} left`);
    const first = this.view.getUint32(offset, this.littleEndian);
    const small = first >>> 16;
    if (small !== 0) {
      // Small data element: type and size share one word and up to 4 data bytes follow in the same 8.
      if (small > 4) this.fail(offset, `small data element claims ${small} bytes, at most 4 fit`);
      return { type: first & 0xffff, nbytes: small, dataOffset: offset + 4, end: offset + 8 };
    }
    const nbytes = this.view.getUint32(offset + 4, this.littleEndian);
    const dataOffset = offset + 8;
    if (dataOffset + nbytes > limit) {
      this.fail(
        offset,
        `truncated ${miName(first)} element: it declares ${nbytes} bytes but only ${limit - dataOffset} remain`,
      );
    }
    // Compressed elements are not padded; everything else is padded to a multiple of 8 bytes.
    const padded = first === MI.COMPRESSED ? nbytes : Math.ceil(nbytes / 8) * 8;
    return { type: first, nbytes, dataOffset, end: Math.min(dataOffset + padded, limit) };
  }

  expectTag(offset: number, limit: number, what: string, types: readonly number[]): Tag {
    const tag = this.tag(offset, limit);
    if (!types.includes(tag.type)) {
      this.fail(offset, `${what}: element type ${miName(tag.type)}, expected ${types.map(miName).join(' or ')}`);
    }
    return tag;
  }

  /** Numbers of an element of numeric type `type`, converted into `out` (the array's class). */
  numbers(tag: Tag, out: MatNumericData | Float64Array, context: string): void {
    const size = MI_SIZES[tag.type];
    if (size === undefined) this.fail(tag.dataOffset - 8, `${context}: ${miName(tag.type)} is not a numeric element type`);
    const count = tag.nbytes / size;
    if (!Number.isInteger(count) || count !== out.length) {
      this.fail(
        tag.dataOffset - 8,
        `${context}: ${tag.nbytes} bytes of ${miName(tag.type)} hold ${count} values, expected ${out.length}`,
      );
    }
    const v = this.view;
    const le = this.littleEndian;
    const at = tag.dataOffset;
    if (tag.type === MI.UINT8) {
      // The common case (images): a plain copy, no per-value DataView calls.
      out.set(this.bytes.subarray(at, at + count));
      return;
    }
    const read: (offset: number) => number = {
      [MI.INT8]: (o: number) => v.getInt8(o),
      [MI.INT16]: (o: number) => v.getInt16(o, le),
      [MI.UINT16]: (o: number) => v.getUint16(o, le),
      [MI.INT32]: (o: number) => v.getInt32(o, le),
      [MI.UINT32]: (o: number) => v.getUint32(o, le),
      [MI.SINGLE]: (o: number) => v.getFloat32(o, le),
      [MI.DOUBLE]: (o: number) => v.getFloat64(o, le),
    }[tag.type]!;
    for (let i = 0; i < count; i++) out[i] = read(at + i * size);
  }

  /** Parses a miMATRIX element's contents (between `start` and `end`). */
  matrix(start: number, end: number, decode: (name: string) => boolean): MatVariable {
    const flagsTag = this.expectTag(start, end, 'array flags', [MI.UINT32]);
    if (flagsTag.nbytes !== 8) this.fail(start, `array flags: ${flagsTag.nbytes} bytes, expected 8`);
    const flags = this.view.getUint32(flagsTag.dataOffset, this.littleEndian);
    const classId = flags & 0xff;
    const complex = (flags & 0x800) !== 0;

    const dimsTag = this.expectTag(flagsTag.end, end, 'dimensions', [MI.INT32]);
    if (dimsTag.nbytes % 4 !== 0 || dimsTag.nbytes < 8) {
      this.fail(flagsTag.end, `dimensions: ${dimsTag.nbytes} bytes, expected at least two int32 values`);
    }
    const dims = Array.from({ length: dimsTag.nbytes / 4 }, (_, i) =>
      this.view.getInt32(dimsTag.dataOffset + 4 * i, this.littleEndian),
    );
    if (dims.some((d) => d < 0)) this.fail(flagsTag.end, `dimensions [${dims.join(', ')}] include a negative size`);

    const nameTag = this.expectTag(dimsTag.end, end, 'array name', [MI.INT8, MI.UTF8]);
    const name = new TextDecoder().decode(this.bytes.subarray(nameTag.dataOffset, nameTag.dataOffset + nameTag.nbytes));

    const variable: MatVariable = { name, classId, className: mxName(classId), dims };
    const numeric = NUMERIC_CLASSES[classId];
    if (numeric === undefined || !decode(name)) return variable;
    if (complex) this.fail(start, `variable '${name}' is complex; only real matrices are supported`);
    const count = dims.reduce((a, b) => a * b, 1);
    const realTag = this.tag(nameTag.end, end);
    if (classId === MX.UINT8 && realTag.type === MI.UINT8 && realTag.nbytes === count) {
      // Stored as it is held: view the bytes instead of copying hundreds of MB of pixels.
      variable.data = this.bytes.subarray(realTag.dataOffset, realTag.dataOffset + count);
      return variable;
    }
    const data = numeric.make(count);
    this.numbers(realTag, data, `variable '${name}' (${mxName(classId)}, [${dims.join(', ')}]) real part`);
    variable.data = data;
    return variable;
  }
}

export interface ReadMatOptions {
  /** Decode the data of these variables only (others are listed without data). Default: all numeric ones. */
  variables?: readonly string[];
}

/**
 * Parses a Level 5 MAT-file held in `bytes`. `file` names it in errors, which give the byte offset of the bad
 * element and what was expected there.
 */
export function readMat(bytes: Uint8Array, file: string, options: ReadMatOptions = {}): Map<string, MatVariable> {
  if (bytes.length < 128) {
    throw new DatasetFormatError(file, `${bytes.length} bytes is too short for the 128-byte MAT-file header`, {
      byteOffset: bytes.length,
    });
  }
  const endian = String.fromCharCode(bytes[126]!, bytes[127]!);
  if (endian !== 'IM' && endian !== 'MI') {
    const text = new TextDecoder().decode(bytes.subarray(0, 10));
    const hint = text.startsWith('\x89HDF') || bytes[0] === 0x89 ? ' (an HDF5-based v7.3 file? save it with -v7)' : '';
    throw new DatasetFormatError(
      file,
      `not a Level 5 MAT-file: endian indicator is ${JSON.stringify(endian)}, expected "IM" or "MI"${hint}`,
      { byteOffset: 126 },
    );
  }
  const littleEndian = endian === 'IM';
  const header = new DataView(bytes.buffer, bytes.byteOffset, 128);
  const version = header.getUint16(124, littleEndian);
  if (version !== 0x0100) {
    throw new DatasetFormatError(file, `MAT-file version 0x${version.toString(16)}, expected 0x0100 (Level 5)`, {
      byteOffset: 124,
    });
  }
  const wanted = options.variables;
  const decode = (name: string) => wanted === undefined || wanted.includes(name);
  const top = new ElementReader(bytes, file, littleEndian, (offset) => ({ byteOffset: offset }));
  const variables = new Map<string, MatVariable>();
  let offset = 128;
  while (offset < bytes.length) {
    // Some writers pad the file's tail with zeros; a zero tag there ends the data.
    if (bytes.length - offset < 8 && bytes.subarray(offset).every((b) => b === 0)) break;
    const tag = top.expectTag(offset, bytes.length, 'top-level element', [MI.MATRIX, MI.COMPRESSED]);
    let variable: MatVariable;
    if (tag.type === MI.COMPRESSED) {
      let inflated: Uint8Array;
      try {
        inflated = unzlibSync(bytes.subarray(tag.dataOffset, tag.dataOffset + tag.nbytes));
      } catch (error) {
        throw new DatasetFormatError(file, `miCOMPRESSED element does not inflate: ${(error as Error).message}`, {
          byteOffset: offset,
        });
      }
      const elementOffset = offset;
      const inner = new ElementReader(inflated, file, littleEndian, () => ({
        byteOffset: elementOffset,
        inCompressed: elementOffset,
      }));
      const innerTag = inner.expectTag(0, inflated.length, 'compressed element contents', [MI.MATRIX]);
      variable = inner.matrix(innerTag.dataOffset, innerTag.dataOffset + innerTag.nbytes, decode);
    } else {
      variable = top.matrix(tag.dataOffset, tag.dataOffset + tag.nbytes, decode);
    }
    variables.set(variable.name, variable);
    offset = tag.end;
  }
  return variables;
}
