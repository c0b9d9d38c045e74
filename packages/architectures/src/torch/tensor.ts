import { TorchDtypeError, TorchFormatError } from './errors.js';

/** Element types a checkpoint may hold, by their PyTorch names. Only the float ones convert to weights. */
export type TorchDtype =
  | 'float64' | 'float32' | 'float16' | 'bfloat16'
  | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool'
  | 'complex64' | 'complex128';

/** Bytes per element of each dtype. */
export const TORCH_DTYPE_SIZES: Readonly<Record<TorchDtype, number>> = {
  float64: 8, float32: 4, float16: 2, bfloat16: 2,
  int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1,
  complex64: 8, complex128: 16,
};

/** The dtypes {@link TorchTensor.toFloat32} converts: float32 as is, float16 and bfloat16 exactly widened. */
export const CONVERTIBLE_DTYPES: readonly TorchDtype[] = ['float32', 'float16', 'bfloat16'];

/**
 * One tensor of a checkpoint: a strided view of a storage's bytes, as PyTorch keeps it (a state_dict's tensors
 * are usually contiguous, but views of a shared storage, with an offset and strides, are legal in a .pth).
 */
export class TorchTensor {
  readonly dtype: TorchDtype;
  readonly shape: readonly number[];
  /** Element strides of the view into the storage (row-major for a contiguous tensor). */
  readonly strides: readonly number[];
  /** Element offset of the view's first element in the storage. */
  readonly storageOffset: number;
  private readonly storage: Uint8Array;
  private readonly littleEndian: boolean;

  constructor(args: {
    dtype: TorchDtype; shape: readonly number[]; strides?: readonly number[]; storageOffset?: number;
    storage: Uint8Array; littleEndian?: boolean;
    /** For errors: where the storage's bytes start in the file, and what the tensor is called. */
    fileOffset?: number; name?: string;
  }) {
    this.dtype = args.dtype;
    this.shape = [...args.shape];
    this.strides = args.strides === undefined ? contiguousStrides(args.shape) : [...args.strides];
    this.storageOffset = args.storageOffset ?? 0;
    this.storage = args.storage;
    this.littleEndian = args.littleEndian ?? true;
    const where = args.name === undefined ? 'a tensor' : `tensor '${args.name}'`;
    if (this.strides.length !== this.shape.length) {
      throw new TorchFormatError(`${where} has ${this.shape.length} dimensions but ${this.strides.length} strides`, args.fileOffset ?? 0);
    }
    for (const [i, size] of this.shape.entries()) {
      if (!Number.isSafeInteger(size) || size < 0) throw new TorchFormatError(`${where} has size ${String(size)} on axis ${i}`, args.fileOffset ?? 0);
      const stride = this.strides[i] as number;
      if (!Number.isSafeInteger(stride) || stride < 0) throw new TorchFormatError(`${where} has stride ${String(stride)} on axis ${i}`, args.fileOffset ?? 0);
    }
    if (!Number.isSafeInteger(this.storageOffset) || this.storageOffset < 0) {
      throw new TorchFormatError(`${where} has storage offset ${String(this.storageOffset)}`, args.fileOffset ?? 0);
    }
    const itemSize = TORCH_DTYPE_SIZES[this.dtype];
    if (this.size > 0) {
      const last = this.shape.reduce((end, size, i) => end + (size - 1) * (this.strides[i] as number), this.storageOffset);
      if ((last + 1) * itemSize > this.storage.byteLength) {
        throw new TorchFormatError(
          `${where} [${this.shape.join(', ')}] (strides [${this.strides.join(', ')}], offset ${this.storageOffset}) reads element ${last} of a ${this.dtype} storage of ${Math.floor(this.storage.byteLength / itemSize)} elements`,
          args.fileOffset ?? 0,
        );
      }
    }
  }

  /** Number of elements. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** Whether the view is row-major contiguous (its elements are one run of the storage). */
  get contiguous(): boolean {
    const expected = contiguousStrides(this.shape);
    return this.shape.every((size, i) => size <= 1 || this.strides[i] === expected[i]);
  }

  /**
   * The values in row-major order as float32. float16 and bfloat16 widen exactly; any other dtype throws
   * {@link TorchDtypeError} naming `key`.
   */
  toFloat32(key = '(tensor)'): Float32Array {
    if (!CONVERTIBLE_DTYPES.includes(this.dtype)) throw new TorchDtypeError(key, this.dtype);
    const n = this.size;
    const out = new Float32Array(n);
    if (n === 0) return out;
    const view = new DataView(this.storage.buffer, this.storage.byteOffset, this.storage.byteLength);
    const le = this.littleEndian;
    if (this.dtype === 'float32' && this.contiguous && le && HOST_LITTLE_ENDIAN && (this.storage.byteOffset + this.storageOffset * 4) % 4 === 0) {
      out.set(new Float32Array(this.storage.buffer, this.storage.byteOffset + this.storageOffset * 4, n));
      return out;
    }
    const bits = new Uint32Array(out.buffer);
    const halves = this.dtype === 'float16' ? halfTable() : undefined;
    const start = this.storage.byteOffset + this.storageOffset * 2;
    if (this.dtype !== 'float32' && this.contiguous && le && HOST_LITTLE_ENDIAN && start % 2 === 0) {
      const raw = new Uint16Array(this.storage.buffer, start, n);
      if (halves === undefined) for (let i = 0; i < n; i++) bits[i] = (raw[i] as number) << 16;
      else for (let i = 0; i < n; i++) out[i] = halves[raw[i] as number] as number;
      return out;
    }
    const read = this.dtype === 'float32'
      ? (element: number, i: number) => { out[i] = view.getFloat32(element * 4, le); }
      : halves === undefined
        // bfloat16 is the upper half of a float32
        ? (element: number, i: number) => { bits[i] = view.getUint16(element * 2, le) << 16; }
        : (element: number, i: number) => { out[i] = halves[view.getUint16(element * 2, le)] as number; };
    forEachElement(this.shape, this.strides, this.storageOffset, read);
    return out;
  }
}

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Row-major strides of a shape, in elements. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let step = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = step;
    step *= shape[i] as number;
  }
  return strides;
}

/** Calls `visit(storageElement, rowMajorIndex)` for every element of a strided view, in row-major order. */
function forEachElement(shape: readonly number[], strides: readonly number[], offset: number, visit: (element: number, index: number) => void): void {
  const rank = shape.length;
  if (rank === 0) {
    visit(offset, 0);
    return;
  }
  const counter = new Array<number>(rank).fill(0);
  const innerSize = shape[rank - 1] as number;
  const innerStride = strides[rank - 1] as number;
  const total = shape.reduce((a, b) => a * b, 1);
  let base = offset;
  for (let index = 0; index < total; index += innerSize) {
    for (let j = 0; j < innerSize; j++) visit(base + j * innerStride, index + j);
    // advance the outer axes like an odometer
    for (let axis = rank - 2; axis >= 0; axis--) {
      counter[axis]! += 1;
      base += strides[axis] as number;
      if ((counter[axis] as number) < (shape[axis] as number)) break;
      base -= (shape[axis] as number) * (strides[axis] as number);
      counter[axis] = 0;
    }
  }
}

let halfValues: Float32Array | undefined;

/** Every float16 bit pattern's float32 value (256 KiB, built on first use): a lookup per element. */
function halfTable(): Float32Array {
  if (halfValues === undefined) {
    halfValues = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfValues[h] = halfToFloat(h);
  }
  return halfValues;
}

/** IEEE 754 half to float (exact: every half is a float32). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa === 0 ? sign * Infinity : Number.NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}
