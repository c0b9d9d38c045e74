/*
 * The eigensolver's inner loops as a small WebAssembly module using 128-bit SIMD (two float64 lanes), built from
 * the bytes below at first use (no toolchain step), with the same loops in JS as the fallback. Plain JS spends most of the 3072-dimensional ZCA fit
 * on these loops' bounds checks and one-lane arithmetic. Each kernel handles whole pairs of elements only; the
 * caller does an odd last element in JS, which keeps the WebAssembly free of scalar tails.
 *
 * All pointers are byte offsets into the module's memory, which the caller sizes and then views as Float64Arrays.
 * Arithmetic is IEEE float64 exactly as in JS (same operations per element; sums are split into lanes).
 */

export interface EigenKernels {
  memory: WebAssembly.Memory;
  /** For `pairs` pairs from a and b: (a, b) <- (c a - s b, s a + c b). */
  rotate(a: number, b: number, c: number, s: number, pairs: number): void;
  /**
   * Four neighbouring QL rotations in one pass over five vectors v0..v4: first (v3, v4) by (c1, s1), then
   * (v2, v3) by (c2, s2), (v1, v2) by (c3, s3) and (v0, v1) by (c4, s4).
   */
  rotate4(
    v0: number,
    v1: number,
    v2: number,
    v3: number,
    v4: number,
    c1: number,
    s1: number,
    c2: number,
    s2: number,
    c3: number,
    s3: number,
    c4: number,
    s4: number,
    pairs: number,
  ): void;
  /** Sum of a[k] b[k]. */
  dot(a: number, b: number, pairs: number): number;
  /** y[k] -= alpha x[k]. */
  axpy(y: number, x: number, alpha: number, pairs: number): void;
  /** y[k] -= f e[k] + g d[k] (the tridiagonalisation's rank-2 update of one column). */
  rank2(y: number, e: number, d: number, f: number, g: number, pairs: number): void;
  /** e[k] += f a[k] while returning the sum of a[k] d[k] (one column of the symmetric matrix-vector product). */
  symv(a: number, d: number, e: number, f: number, pairs: number): number;
}

const I32 = 0x7f;
const F64 = 0x7c;
const V128 = 0x7b;

const op = {
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  end: [0x0b],
  brIf: (depth: number) => [0x0d, depth],
  get: (index: number) => [0x20, index],
  set: (index: number) => [0x21, index],
  i32Const: (value: number) => [0x41, ...sleb(value)],
  i32Add: [0x6a],
  i32Shl: [0x74],
  i32Eqz: [0x45],
  i32LtU: [0x49],
  f64Add: [0xa0],
  load: [0xfd, 0x00, 3, 0],
  store: [0xfd, 0x0b, 3, 0],
  splat: [0xfd, 0x14],
  lane: (index: number) => [0xfd, 0x21, index],
  add: [0xfd, 0xf0, 0x01],
  sub: [0xfd, 0xf1, 0x01],
  mul: [0xfd, 0xf2, 0x01],
  zero: [0xfd, 0x0c, ...new Array<number>(16).fill(0)],
};

function uleb(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

function sleb(value: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    if ((value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const bytes = (text: string) => vec([...text].map((ch) => [ch.charCodeAt(0)]));
const section = (id: number, content: number[]) => [id, ...uleb(content.length), ...content];

interface KernelSource {
  name: string;
  params: number[];
  results: number[];
  /** Extra locals, numbered after the params. */
  locals: number[];
  body: number[];
}

/**
 * A loop over `pairs` (param index `pairsParam`) advancing every pointer param in `pointers` by 16 bytes per step;
 * `step` is the per-pair code. `end` is an i32 local that holds the first pointer's end address.
 */
function pairLoop(pointers: number[], pairsParam: number, end: number, step: number[]): number[] {
  const first = pointers[0]!;
  return [
    ...op.block,
    ...op.get(pairsParam),
    ...op.i32Eqz,
    ...op.brIf(0),
    ...op.get(first),
    ...op.get(pairsParam),
    ...op.i32Const(4),
    ...op.i32Shl,
    ...op.i32Add,
    ...op.set(end),
    ...op.loop,
    ...step,
    ...pointers.flatMap((p) => [...op.get(p), ...op.i32Const(16), ...op.i32Add, ...op.set(p)]),
    ...op.get(first),
    ...op.get(end),
    ...op.i32LtU,
    ...op.brIf(0),
    ...op.end,
    ...op.end,
  ];
}

const load = (pointer: number) => [...op.get(pointer), ...op.load];
const splat = (param: number, into: number) => [...op.get(param), ...op.splat, ...op.set(into)];
/** Horizontal sum of v128 local `v` as f64. */
const laneSum = (v: number) => [...op.get(v), ...op.lane(0), ...op.get(v), ...op.lane(1), ...op.f64Add];

function kernels(): KernelSource[] {
  // rotate(a, b, c, s, pairs); locals: end, cc, ss, va, vb
  const rotate: KernelSource = {
    name: 'rotate',
    params: [I32, I32, F64, F64, I32],
    results: [],
    locals: [I32, V128, V128, V128, V128],
    body: [
      ...splat(2, 6),
      ...splat(3, 7),
      ...pairLoop([0, 1], 4, 5, [
        ...load(0),
        ...op.set(8),
        ...load(1),
        ...op.set(9),
        ...op.get(1),
        ...op.get(7),
        ...op.get(8),
        ...op.mul,
        ...op.get(6),
        ...op.get(9),
        ...op.mul,
        ...op.add,
        ...op.store,
        ...op.get(0),
        ...op.get(6),
        ...op.get(8),
        ...op.mul,
        ...op.get(7),
        ...op.get(9),
        ...op.mul,
        ...op.sub,
        ...op.store,
      ]),
    ],
  };

  // rotate4(v0..v4 = 0..4, c1 s1 c2 s2 c3 s3 c4 s4 = 5..12, pairs = 13); locals: end 14, splats 15..22, x 23, y 24
  const splats = [15, 16, 17, 18, 19, 20, 21, 22];
  /** (lower, upper) <- (c lower - s upper, s lower + c upper), with `upper` already in local `y`: stores the new
   * upper to `upperPointer` and leaves the new lower in local `y`. */
  const rotateInto = (lowerPointer: number, upperPointer: number, cs: number, ss: number) => [
    ...load(lowerPointer),
    ...op.set(23),
    ...op.get(upperPointer),
    ...op.get(ss),
    ...op.get(23),
    ...op.mul,
    ...op.get(cs),
    ...op.get(24),
    ...op.mul,
    ...op.add,
    ...op.store,
    ...op.get(cs),
    ...op.get(23),
    ...op.mul,
    ...op.get(ss),
    ...op.get(24),
    ...op.mul,
    ...op.sub,
    ...op.set(24),
  ];
  const rotate4: KernelSource = {
    name: 'rotate4',
    params: [I32, I32, I32, I32, I32, F64, F64, F64, F64, F64, F64, F64, F64, I32],
    results: [],
    locals: [I32, ...splats.map(() => V128), V128, V128],
    body: [
      ...splats.flatMap((local, i) => splat(5 + i, local)),
      ...pairLoop([0, 1, 2, 3, 4], 13, 14, [
        ...load(4),
        ...op.set(24),
        ...rotateInto(3, 4, 15, 16),
        ...rotateInto(2, 3, 17, 18),
        ...rotateInto(1, 2, 19, 20),
        ...rotateInto(0, 1, 21, 22),
        ...op.get(0),
        ...op.get(24),
        ...op.store,
      ]),
    ],
  };

  // dot(a, b, pairs) -> f64; locals: end 3, sum 4
  const dot: KernelSource = {
    name: 'dot',
    params: [I32, I32, I32],
    results: [F64],
    locals: [I32, V128],
    body: [
      ...op.zero,
      ...op.set(4),
      ...pairLoop([0, 1], 2, 3, [...op.get(4), ...load(0), ...load(1), ...op.mul, ...op.add, ...op.set(4)]),
      ...laneSum(4),
    ],
  };

  // axpy(y, x, alpha, pairs); locals: end 4, alpha splat 5
  const axpy: KernelSource = {
    name: 'axpy',
    params: [I32, I32, F64, I32],
    results: [],
    locals: [I32, V128],
    body: [
      ...splat(2, 5),
      ...pairLoop([0, 1], 3, 4, [...op.get(0), ...load(0), ...op.get(5), ...load(1), ...op.mul, ...op.sub, ...op.store]),
    ],
  };

  // rank2(y, e, d, f, g, pairs); locals: end 6, f splat 7, g splat 8
  const rank2: KernelSource = {
    name: 'rank2',
    params: [I32, I32, I32, F64, F64, I32],
    results: [],
    locals: [I32, V128, V128],
    body: [
      ...splat(3, 7),
      ...splat(4, 8),
      ...pairLoop([0, 1, 2], 5, 6, [
        ...op.get(0),
        ...load(0),
        ...op.get(7),
        ...load(1),
        ...op.mul,
        ...op.get(8),
        ...load(2),
        ...op.mul,
        ...op.add,
        ...op.sub,
        ...op.store,
      ]),
    ],
  };

  // symv(a, d, e, f, pairs) -> f64; locals: end 5, f splat 6, sum 7, va 8
  const symv: KernelSource = {
    name: 'symv',
    params: [I32, I32, I32, F64, I32],
    results: [F64],
    locals: [I32, V128, V128, V128],
    body: [
      ...splat(3, 6),
      ...op.zero,
      ...op.set(7),
      ...pairLoop([0, 1, 2], 4, 5, [
        ...load(0),
        ...op.set(8),
        ...op.get(7),
        ...op.get(8),
        ...load(1),
        ...op.mul,
        ...op.add,
        ...op.set(7),
        ...op.get(2),
        ...load(2),
        ...op.get(6),
        ...op.get(8),
        ...op.mul,
        ...op.add,
        ...op.store,
      ]),
      ...laneSum(7),
    ],
  };

  return [rotate, rotate4, dot, axpy, rank2, symv];
}

function moduleBytes(): Uint8Array<ArrayBuffer> {
  const sources = kernels();
  const types = section(1, vec(sources.map((k) => [0x60, ...vec(k.params.map((t) => [t])), ...vec(k.results.map((t) => [t]))])));
  const imports = section(2, vec([[...bytes('env'), ...bytes('memory'), 0x02, 0x00, 0x01]]));
  const functions = section(3, vec(sources.map((_, i) => uleb(i))));
  const exports = section(7, vec(sources.map((k, i) => [...bytes(k.name), 0x00, ...uleb(i)])));
  const code = section(
    10,
    vec(
      sources.map((k) => {
        const body = [...vec(k.locals.map((t) => [1, t])), ...k.body, ...op.end];
        return [...uleb(body.length), ...body];
      }),
    ),
  );
  return Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...types, ...imports, ...functions, ...exports, ...code]);
}

let compiled: WebAssembly.Module | null | undefined;

function memoryFor(byteLength: number): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: Math.max(1, Math.ceil(byteLength / 65536)) });
}

/**
 * Kernels over a fresh memory of at least `byteLength` bytes: the WebAssembly SIMD ones, or where this runtime
 * cannot compile them (no SIMD), or when `prefer` is 'js', the same loops in JS.
 */
export function createEigenKernels(byteLength: number, prefer: 'wasm' | 'js' = 'wasm'): EigenKernels & { kind: 'wasm' | 'js' } {
  if (prefer === 'wasm' && compiled === undefined) {
    const wasm = moduleBytes();
    compiled = WebAssembly.validate(wasm) ? new WebAssembly.Module(wasm) : null;
  }
  const memory = memoryFor(byteLength);
  if (prefer === 'js' || !compiled) return { kind: 'js', ...jsKernels(memory) };
  const instance = new WebAssembly.Instance(compiled, { env: { memory } });
  return { kind: 'wasm', memory, ...(instance.exports as unknown as Omit<EigenKernels, 'memory'>) };
}

/** The kernels' loops in plain JS, element for element the same arithmetic. */
function jsKernels(memory: WebAssembly.Memory): EigenKernels {
  const m = new Float64Array(memory.buffer);
  return {
    memory,
    rotate(a, b, c, s, pairs) {
      a >>= 3;
      b >>= 3;
      for (let k = 0; k < 2 * pairs; k++) {
        const ak = m[a + k]!;
        const bk = m[b + k]!;
        m[b + k] = s * ak + c * bk;
        m[a + k] = c * ak - s * bk;
      }
    },
    rotate4(v0, v1, v2, v3, v4, c1, s1, c2, s2, c3, s3, c4, s4, pairs) {
      const p = [v0 >> 3, v1 >> 3, v2 >> 3, v3 >> 3, v4 >> 3] as const;
      const cs = [c4, c3, c2, c1];
      const ss = [s4, s3, s2, s1];
      for (let k = 0; k < 2 * pairs; k++) {
        let upper = m[p[4] + k]!;
        for (let r = 3; r >= 0; r--) {
          const lower = m[p[r]! + k]!;
          m[p[r + 1]! + k] = ss[r]! * lower + cs[r]! * upper;
          upper = cs[r]! * lower - ss[r]! * upper;
        }
        m[p[0] + k] = upper;
      }
    },
    dot(a, b, pairs) {
      a >>= 3;
      b >>= 3;
      let even = 0;
      let odd = 0;
      for (let k = 0; k < 2 * pairs; k += 2) {
        even += m[a + k]! * m[b + k]!;
        odd += m[a + k + 1]! * m[b + k + 1]!;
      }
      return even + odd;
    },
    axpy(y, x, alpha, pairs) {
      y >>= 3;
      x >>= 3;
      for (let k = 0; k < 2 * pairs; k++) m[y + k]! -= alpha * m[x + k]!;
    },
    rank2(y, e, d, f, g, pairs) {
      y >>= 3;
      e >>= 3;
      d >>= 3;
      for (let k = 0; k < 2 * pairs; k++) m[y + k]! -= f * m[e + k]! + g * m[d + k]!;
    },
    symv(a, d, e, f, pairs) {
      a >>= 3;
      d >>= 3;
      e >>= 3;
      let even = 0;
      let odd = 0;
      for (let k = 0; k < 2 * pairs; k += 2) {
        const a0 = m[a + k]!;
        const a1 = m[a + k + 1]!;
        even += a0 * m[d + k]!;
        odd += a1 * m[d + k + 1]!;
        m[e + k]! += f * a0;
        m[e + k + 1]! += f * a1;
      }
      return even + odd;
    },
  };
}
