import * as tf from '@tensorflow/tfjs-core';

/**
 * A kernel a backend may register to take one parameter's whole SGD step at once (@wrn/backend registers it for
 * wasm on @wrn/native, into fresh tensors: see @wrn/backend's native-sgd.ts for why never in place): inputs param, grad and (with momentum, after its
 * first step) buffer; attrs lr, momentum, dampening, weightDecay (0 where the parameter has none), nesterov, first
 * (the buffer starts now: buf = d); outputs the new param and, with momentum, the new buffer.
 */
export const SGD_UPDATE_KERNEL = 'WrnSgdUpdate';

/** SGD hyper-parameters with the meaning they have in Torch (`torch.optim.SGD`, also Lua `optim.sgd`). */
export interface SgdOptions {
  /** Momentum factor; 0 disables the momentum buffer. */
  momentum: number;
  /** Nesterov momentum (requires momentum > 0 and dampening 0, as in Torch). */
  nesterov: boolean;
  /** Dampening for momentum: the buffer update is buf = momentum * buf + (1 - dampening) * g. */
  dampening: number;
  /** Weight decay: wd * w is added to the gradient before momentum (not an L2 term in the loss). */
  weightDecay: number;
}

/** One parameter the optimiser updates. */
export interface SgdParam {
  variable: tf.Variable;
  /** Stable name (the weight's original name) used in errors and in the saved state. */
  name: string;
  /** Whether weight decay applies to this parameter (Torch applies it to every parameter, BN included). */
  weightDecay: boolean;
}

/** The JSON half of a saved optimiser state; the buffers' float32 values follow in `data`, in `buffers` order. */
export interface SgdStateMeta {
  format: 'wrn-sgd/1';
  options: SgdOptions;
  /** Optimiser steps taken. */
  steps: number;
  /** One entry per parameter, in parameter order; `shape` null where Torch has no momentum buffer yet. */
  buffers: Array<{ name: string; shape: number[] | null }>;
}

export interface SerializedSgdState {
  meta: SgdStateMeta;
  data: Uint8Array;
}

function checkOptions(options: SgdOptions): void {
  const { momentum, nesterov, dampening, weightDecay } = options;
  for (const [key, value] of Object.entries({ momentum, dampening, weightDecay })) {
    if (!Number.isFinite(value) || value < 0) throw new Error(`SGD: ${key} must be a finite number >= 0, got ${value}`);
  }
  if (nesterov && (momentum <= 0 || dampening !== 0)) {
    throw new Error(
      `SGD: Nesterov momentum requires momentum > 0 and dampening 0, got momentum ${momentum}, dampening ${dampening}`,
    );
  }
}

/**
 * Stochastic gradient descent exactly as Torch computes it, per parameter p with gradient g:
 *   d = g + wd * p;  buf = d on the first step, else momentum * buf + (1 - dampening) * d;
 *   d = nesterov ? d + momentum * buf : buf;  p = p - lr * d.
 * Its state (the momentum buffers and the step count) saves to bytes and loads back exactly, so a resumed run
 * continues with the same buffers.
 */
export class SgdOptimizer {
  readonly options: Readonly<SgdOptions>;
  readonly params: readonly SgdParam[];
  private readonly buffers: Array<tf.Variable | null>;
  private steps = 0;
  // Scalars built once; the learning-rate scalar is rebuilt only when the rate changes.
  private readonly momentumScalar: tf.Scalar;
  private readonly weightDecayScalar: tf.Scalar;
  private readonly keepScalar: tf.Scalar;
  private lrScalar: tf.Scalar | null = null;
  private lrValue = Number.NaN;
  private disposed = false;

  constructor(params: readonly SgdParam[], options: SgdOptions) {
    checkOptions(options);
    this.options = Object.freeze({ ...options });
    this.params = params;
    this.buffers = params.map(() => null);
    this.momentumScalar = tf.keep(tf.scalar(options.momentum));
    this.weightDecayScalar = tf.keep(tf.scalar(options.weightDecay));
    this.keepScalar = tf.keep(tf.scalar(1 - options.dampening));
  }

  /** Optimiser steps taken so far. */
  get stepCount(): number {
    return this.steps;
  }

  /** The momentum buffers (null where none exists yet), in parameter order. Owned by the optimiser. */
  get momentumBuffers(): ReadonlyArray<tf.Variable | null> {
    return this.buffers;
  }

  /**
   * Applies one update. `grads[i]` is the gradient of `params[i]` (null = no gradient: the parameter and its
   * buffer are left alone, as Torch skips parameters whose .grad is None). The caller keeps ownership of grads.
   */
  step(grads: ReadonlyArray<tf.Tensor | null | undefined>, lr: number): void {
    if (this.disposed) throw new Error('SGD: step() on a disposed optimiser');
    if (grads.length !== this.params.length) {
      throw new Error(`SGD: step() got ${grads.length} gradients for ${this.params.length} parameters`);
    }
    if (!Number.isFinite(lr) || lr < 0) throw new Error(`SGD: learning rate must be a finite number >= 0, got ${lr}`);
    if (lr !== this.lrValue) {
      this.lrScalar?.dispose();
      this.lrScalar = tf.keep(tf.scalar(lr));
      this.lrValue = lr;
    }
    const lrScalar = this.lrScalar!;
    const { momentum, nesterov, dampening, weightDecay } = this.options;
    const fused = tf.getKernel(SGD_UPDATE_KERNEL, tf.getBackend()) != null;
    tf.tidy(() => {
      for (let i = 0; i < this.params.length; i++) {
        const g = grads[i];
        if (g == null) continue;
        const param = this.params[i]!;
        const p = param.variable;
        if (fused && p.dtype === 'float32' && g.dtype === 'float32' && tf.util.arraysEqual(p.shape, g.shape)) {
          this.fusedStep(i, g, lr);
          continue;
        }
        let d: tf.Tensor = weightDecay !== 0 && param.weightDecay ? tf.add(g, tf.mul(p, this.weightDecayScalar)) : g;
        if (momentum !== 0) {
          let buf = this.buffers[i];
          if (buf == null) {
            buf = tf.variable(tf.clone(d), false);
            this.buffers[i] = buf;
          } else {
            const scaled = dampening === 0 ? d : tf.mul(d, this.keepScalar);
            buf.assign(tf.add(tf.mul(buf, this.momentumScalar), scaled));
          }
          d = nesterov ? tf.add(d, tf.mul(buf, this.momentumScalar)) : buf;
        }
        p.assign(tf.sub(p, tf.mul(d, lrScalar)));
      }
    });
    this.steps++;
  }

  // One parameter's step as the backend's SGD_UPDATE_KERNEL: the same arithmetic in the same order, one kernel.
  private fusedStep(i: number, g: tf.Tensor, lr: number): void {
    const { momentum, nesterov, dampening, weightDecay } = this.options;
    const param = this.params[i]!;
    const buf = this.buffers[i] ?? null;
    const first = momentum !== 0 && buf == null;
    const inputs: Record<string, tf.Tensor> = { param: param.variable, grad: g };
    if (buf != null && momentum !== 0) inputs['buffer'] = buf;
    const attrs = { lr, momentum, dampening, weightDecay: param.weightDecay ? weightDecay : 0, nesterov, first };
    const [newParam, newBuffer] = tf.engine().runKernel(SGD_UPDATE_KERNEL, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
    param.variable.assign(newParam!);
    if (momentum === 0) return;
    if (buf == null) this.buffers[i] = tf.variable(newBuffer!, false);
    else buf.assign(newBuffer!);
  }

  /**
   * Drops every momentum buffer: the next step starts them afresh (buf = d), exactly as a new torch.optim.SGD or
   * a fresh Lua optimState would. The WRN recipes do this where the learning rate drops.
   */
  resetMomentum(): void {
    if (this.disposed) throw new Error('SGD: resetMomentum() on a disposed optimiser');
    for (const b of this.buffers) b?.dispose();
    this.buffers.fill(null);
  }

  /** The state as JSON metadata plus the buffers' bytes (float32, little-endian, parameter order). */
  async saveState(): Promise<SerializedSgdState> {
    const buffers: SgdStateMeta['buffers'] = [];
    const chunks: Float32Array[] = [];
    for (let i = 0; i < this.params.length; i++) {
      const buf = this.buffers[i];
      buffers.push({ name: this.params[i]!.name, shape: buf ? buf.shape.slice() : null });
      if (buf) chunks.push((await buf.data()) as Float32Array);
    }
    const total = chunks.reduce((n, c) => n + c.length, 0);
    const all = new Float32Array(total);
    let offset = 0;
    for (const c of chunks) {
      all.set(c, offset);
      offset += c.length;
    }
    return {
      meta: { format: 'wrn-sgd/1', options: { ...this.options }, steps: this.steps, buffers },
      data: new Uint8Array(all.buffer, all.byteOffset, all.byteLength),
    };
  }

  /** Restores a state saved by `saveState` for the same parameters (checked by count, names' order and shapes). */
  loadState(state: SerializedSgdState, where = 'optimizer state'): void {
    const { meta, data } = state;
    if (meta.format !== 'wrn-sgd/1') throw new Error(`${where}: unknown format ${JSON.stringify(meta.format)}, expected "wrn-sgd/1"`);
    if (meta.buffers.length !== this.params.length) {
      throw new Error(`${where}: has ${meta.buffers.length} buffers, the model has ${this.params.length} trainable parameters`);
    }
    for (const key of ['momentum', 'nesterov', 'dampening', 'weightDecay'] as const) {
      if (meta.options[key] !== this.options[key]) {
        throw new Error(`${where}: was saved with ${key} ${meta.options[key]}, this optimiser has ${this.options[key]}`);
      }
    }
    const floats = new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    let offset = 0;
    const next: Array<tf.Variable | null> = [];
    try {
      for (let i = 0; i < meta.buffers.length; i++) {
        const entry = meta.buffers[i]!;
        if (entry.shape == null) {
          next.push(null);
          continue;
        }
        const expected = this.params[i]!.variable.shape;
        if (entry.shape.length !== expected.length || entry.shape.some((s, k) => s !== expected[k])) {
          throw new Error(
            `${where}: buffer ${i} (${entry.name}) has shape [${entry.shape}], parameter ${this.params[i]!.name} has [${expected}]`,
          );
        }
        const size = entry.shape.reduce((a, b) => a * b, 1);
        if (offset + size > floats.length) throw new Error(`${where}: data holds ${floats.length} floats, buffers need more`);
        const values = floats.subarray(offset, offset + size);
        const shape = entry.shape;
        next.push(tf.tidy(() => tf.variable(tf.tensor(values, shape, 'float32'), false)));
        offset += size;
      }
      if (offset !== floats.length) throw new Error(`${where}: data holds ${floats.length} floats, buffers use ${offset}`);
    } catch (err) {
      for (const v of next) v?.dispose();
      throw err;
    }
    for (let i = 0; i < next.length; i++) {
      this.buffers[i]?.dispose();
      this.buffers[i] = next[i]!;
    }
    this.steps = meta.steps;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const b of this.buffers) b?.dispose();
    this.buffers.fill(null);
    this.momentumScalar.dispose();
    this.weightDecayScalar.dispose();
    this.keepScalar.dispose();
    this.lrScalar?.dispose();
  }
}
