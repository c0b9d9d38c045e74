import { deflateSync } from 'node:zlib';

/*
 * Writes Level 5 MAT-files the way MATLAB does (header, miMATRIX elements with array flags, dimensions, a name in
 * the small-element form when it fits, the real part padded to 8 bytes; optionally each variable deflated into a
 * miCOMPRESSED element), so the reader is tested on the real format rather than on its own output.
 */

export interface MatFixtureVariable {
  name: string;
  /** MATLAB class number: 6 double, 9 uint8, ... */
  classId: number;
  dims: number[];
  values: ArrayLike<number>;
  /** Element type the values are stored as: 2 miUINT8, 9 miDOUBLE, ... (MATLAB stores integral doubles as miUINT8). */
  storeAs: number;
}

const SIZES: Record<number, number> = { 1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8 };

class Writer {
  private chunks: Uint8Array[] = [];
  constructor(private readonly littleEndian: boolean) {}

  bytes(data: Uint8Array): void {
    this.chunks.push(data);
  }

  u32(...values: number[]): void {
    const out = new Uint8Array(4 * values.length);
    const view = new DataView(out.buffer);
    values.forEach((v, i) => view.setUint32(4 * i, v, this.littleEndian));
    this.bytes(out);
  }

  element(type: number, data: Uint8Array, { allowSmall = false, pad = true } = {}): void {
    if (allowSmall && data.length <= 4) {
      this.u32((data.length << 16) | type);
      const word = new Uint8Array(4);
      word.set(data);
      this.bytes(word);
      return;
    }
    this.u32(type, data.length);
    this.bytes(data);
    const padding = pad ? (8 - (data.length % 8)) % 8 : 0;
    if (padding) this.bytes(new Uint8Array(padding));
  }

  numbers(type: number, values: ArrayLike<number>): Uint8Array {
    const size = SIZES[type]!;
    const out = new Uint8Array(size * values.length);
    const view = new DataView(out.buffer);
    const le = this.littleEndian;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      const o = i * size;
      if (type === 1) view.setInt8(o, v);
      else if (type === 2) view.setUint8(o, v);
      else if (type === 3) view.setInt16(o, v, le);
      else if (type === 4) view.setUint16(o, v, le);
      else if (type === 5) view.setInt32(o, v, le);
      else if (type === 6) view.setUint32(o, v, le);
      else if (type === 7) view.setFloat32(o, v, le);
      else view.setFloat64(o, v, le);
    }
    return out;
  }

  concat(): Uint8Array {
    const out = new Uint8Array(this.chunks.reduce((n, c) => n + c.length, 0));
    let offset = 0;
    for (const chunk of this.chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }
}

function matrixElement(variable: MatFixtureVariable, littleEndian: boolean): Uint8Array {
  const body = new Writer(littleEndian);
  const flags = new Writer(littleEndian);
  flags.u32(variable.classId, 0);
  body.element(6, flags.concat());
  body.element(5, body.numbers(5, variable.dims));
  body.element(1, new TextEncoder().encode(variable.name), { allowSmall: true });
  body.element(variable.storeAs, body.numbers(variable.storeAs, variable.values), { allowSmall: true });
  const element = new Writer(littleEndian);
  element.element(14, body.concat());
  return element.concat();
}

export function writeMatFixture(
  variables: MatFixtureVariable[],
  { compress, littleEndian = true }: { compress: boolean; littleEndian?: boolean },
): Uint8Array {
  const file = new Writer(littleEndian);
  const header = new Uint8Array(128).fill(32);
  header.set(new TextEncoder().encode('MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Mon Nov 23 08:00:00 2026'));
  const view = new DataView(header.buffer);
  view.setUint32(116, 0, true);
  view.setUint32(120, 0, true);
  view.setUint16(124, 0x0100, littleEndian);
  header.set(new TextEncoder().encode(littleEndian ? 'IM' : 'MI'), 126);
  file.bytes(header);
  for (const variable of variables) {
    const matrix = matrixElement(variable, littleEndian);
    if (compress) file.element(15, deflateSync(matrix), { pad: false });
    else file.bytes(matrix);
  }
  return file.concat();
}

/**
 * An SVHN-style file: X uint8 [32,32,3,N] column-major and y [N,1] (digit 0 stored as 10). `pixel(n, r, c, k)`
 * gives each value. `labelsAs` picks how y's doubles are stored (MATLAB writes integral doubles as miUINT8).
 */
export function svhnFixture(
  digits: number[],
  pixel: (n: number, r: number, c: number, k: number) => number,
  { compress, labelsAs = 2, littleEndian = true }: { compress: boolean; labelsAs?: number; littleEndian?: boolean },
): Uint8Array {
  const count = digits.length;
  const x = new Uint8Array(count * 3072);
  for (let n = 0; n < count; n++)
    for (let k = 0; k < 3; k++)
      for (let c = 0; c < 32; c++) for (let r = 0; r < 32; r++) x[r + 32 * c + 1024 * k + 3072 * n] = pixel(n, r, c, k) & 255;
  return writeMatFixture(
    [
      { name: 'X', classId: 9, dims: [32, 32, 3, count], values: x, storeAs: 2 },
      { name: 'y', classId: 6, dims: [count, 1], values: digits.map((d) => (d === 0 ? 10 : d)), storeAs: labelsAs },
    ],
    { compress, littleEndian },
  );
}
