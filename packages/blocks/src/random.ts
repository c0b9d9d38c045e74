/**
 * The random stream that dropout and drop-path masks are drawn from.
 *
 * Every mask is drawn with its own seed `"<seed>:<counter>"`, and the counter advances by one per mask. A training
 * step therefore consumes a fixed number of counter values (one per stochastic layer that fires), so the state
 * `{ seed, counter }` saved in a checkpoint at a step boundary resumes the exact same masks. Nothing here reads
 * `Math.random`.
 */
export interface LayerRandomState {
  /** Base seed of the stream (an integer). */
  seed: number;
  /** Number of masks drawn so far from this seed (a non-negative integer). */
  counter: number;
}

const DEFAULT_SEED = 0x5eed;

let current: LayerRandomState = { seed: DEFAULT_SEED, counter: 0 };

function assertState(state: LayerRandomState, where: string): void {
  if (state === null || typeof state !== 'object') {
    throw new TypeError(`${where}: expected { seed, counter }, got ${String(state)}`);
  }
  if (!Number.isSafeInteger(state.seed)) {
    throw new RangeError(`${where}: seed must be a safe integer, got ${String(state.seed)}`);
  }
  if (!Number.isSafeInteger(state.counter) || state.counter < 0) {
    throw new RangeError(`${where}: counter must be a non-negative safe integer, got ${String(state.counter)}`);
  }
}

/** A copy of the current state of the dropout/drop-path random stream (store it in checkpoints). */
export function getLayerRandomState(): LayerRandomState {
  return { seed: current.seed, counter: current.counter };
}

/** Restores a state returned by {@link getLayerRandomState} (on resume). */
export function setLayerRandomState(state: LayerRandomState): void {
  assertState(state, 'setLayerRandomState');
  current = { seed: state.seed, counter: state.counter };
}

/** Starts a fresh stream: `{ seed, counter: 0 }`. */
export function seedLayerRandom(seed: number): void {
  setLayerRandomState({ seed, counter: 0 });
}

/** The seed for the next mask; advances the counter. Used by the stochastic layers of this package. */
export function nextLayerSeed(): string {
  const seed = `${current.seed}:${current.counter}`;
  current = { seed: current.seed, counter: current.counter + 1 };
  return seed;
}
