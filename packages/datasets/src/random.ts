import seedrandom from 'seedrandom';

/** A uniform generator on [0, 1). */
export type Random = () => number;

/**
 * A generator that is a pure function of its key parts (e.g. seed, epoch, purpose, batch index). Keying each
 * stream by what it is for, rather than drawing everything from one stream in order, keeps an epoch's batches
 * identical however far ahead the pipeline prefetches and wherever a resumed run starts.
 */
export function keyedRandom(...key: ReadonlyArray<string | number>): Random {
  const generator = seedrandom(key.join('/'));
  return () => generator.double();
}

/** A uniformly random permutation of 0 .. n-1 (Fisher-Yates). */
export function permutation(n: number, random: Random): Int32Array {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const swap = order[i]!;
    order[i] = order[j]!;
    order[j] = swap;
  }
  return order;
}
