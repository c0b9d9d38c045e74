/**
 * The one A/B harness of the *-ab.ts benches: every variant runs in the same process, interleaved rep by rep
 * (A, B, C, A, B, C, ...) after a warm-up round, and each reports its median. On a shared, loaded machine the
 * load drifts over seconds; interleaving makes the variants see the same drift, and the median drops the reps a
 * neighbour's burst hit. A comparison made any other way (A's reps, then B's) measures the machine, not the code.
 *
 *   import { arg, interleave, medians } from './ab.js';
 *   const ms = medians(interleave([{ name: 'off', use: () => off() }, { name: 'on', use: () => on() }], step, { reps: 5 }));
 */

/** The value after `--name` on the command line, or `fallback`. */
export function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : fallback;
}

/** The value after `--name` as a positive integer; a bad value throws, naming the flag and what it got. */
export function intArg(name: string, fallback: number): number {
  const raw = arg(name, String(fallback));
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return n;
}

/** The median; of an even count, the mean of the middle two. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** One variant of an A/B: `use` switches the process to it (registers a kernel, sets an env variable, ...). */
export interface Variant<K extends string> {
  name: K;
  use?: () => void;
}

export interface InterleaveOptions {
  /** Timed rounds; each runs every variant once. */
  reps: number;
  /** Untimed rounds first (first-call set-up, heap growth, packed weights); 1 unless told. */
  warmup?: number;
}

/** Milliseconds `fn` takes, once. */
export function timeMs(fn: () => void): number {
  const start = performance.now();
  fn();
  return performance.now() - start;
}

/**
 * Runs `fn` under each variant, round by round, and returns every timed rep's milliseconds per variant. `fn` gets
 * the variant's name for benches whose work differs by variant (rather than by registered kernels).
 */
export function interleave<const K extends string>(variants: readonly Variant<K>[], fn: (name: K) => void, options: InterleaveOptions): Record<K, number[]> {
  const times = Object.fromEntries(variants.map((v) => [v.name, [] as number[]])) as Record<K, number[]>;
  const warmup = options.warmup ?? 1;
  for (let round = -warmup; round < options.reps; round++) {
    for (const v of variants) {
      v.use?.();
      const ms = timeMs(() => fn(v.name));
      if (round >= 0) times[v.name].push(ms);
    }
  }
  return times;
}

/** The median of each variant's reps. */
export function medians<K extends string>(times: Record<K, number[]>): Record<K, number> {
  return Object.fromEntries(Object.entries<number[]>(times).map(([k, v]) => [k, median(v)])) as Record<K, number>;
}
