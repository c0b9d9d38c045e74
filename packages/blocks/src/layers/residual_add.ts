import { add, customGrad, engine, getBackend, getKernel, relu, serialization, tidy, util, type GradSaveFunc, type Tensor } from '@tensorflow/tfjs-core';
import { layers, type Shape } from '@tensorflow/tfjs-layers';
import { keepDtype, type LayerArgs } from './common.js';

/**
 * a + b of two same-shape tensors whose gradient, dy for each, keeps neither input. tfjs-core's Add gradient saves
 * both inputs (it reads their shapes to undo broadcasting), so every residual addition held its branch's output
 * (a BatchNorm's, which nothing else saves) until the backward pass reached it: 448 of the 1,685 MB a ResNeXt-29
 * 4x16d step at batch 64 saved (tools/bench/step-memory.ts). Same shapes, so there is no broadcasting to undo.
 */
const sameShapeAdd = customGrad((...inputs: (Tensor | GradSaveFunc)[]) => ({
  value: add(inputs[0] as Tensor, inputs[1] as Tensor),
  // Two tensors (sharing dy's data), not dy twice: the backward pass disposes each input's gradient on its own.
  gradFunc: (dy: Tensor) => [dy.clone(), dy.clone()],
}));

/**
 * A kernel a backend may register to run a residual addition and the ReLU after it in one pass: inputs a and b
 * (float32, one shape); output max(0, a + b). It has no gradient: {@link ResidualAdd} with `activation: 'relu'` calls
 * it in inference only, outside any gradient computation, else tf.add + tf.relu (@wrn/backend registers it for wasm
 * on @wrn/native).
 */
export const ADD_RELU_INFERENCE_KERNEL = 'WrnAddReluInference';

/** What {@link ResidualAdd} applies to its sum: nothing ('linear') or ReLU. */
export type ResidualAddActivation = 'linear' | 'relu';

export interface ResidualAddArgs extends LayerArgs {
  /**
   * 'relu': the layer is the addition then ReLU (an original-order residual block's last two layers in one, so that
   * inference makes one pass over the activation instead of two where the backend has {@link ADD_RELU_INFERENCE_KERNEL}).
   * Default 'linear' (the addition alone; configs saved before the option load as that).
   */
  activation?: ResidualAddActivation;
}

/**
 * The residual addition of @wrn/blocks' graphs: tf.layers.add of two same-shape inputs, whose training-mode
 * gradient saves no activations (see sameShapeAdd). Outside training, and for inputs of different shapes, it is
 * tf.add itself. With `activation: 'relu'` tf.relu follows (its gradient, as registered, from its output), or in
 * inference the one-pass {@link ADD_RELU_INFERENCE_KERNEL} where the backend has it.
 */
export class ResidualAdd extends layers.Layer {
  static className = 'WrnResidualAdd';

  readonly activation: ResidualAddActivation;

  constructor(args: ResidualAddArgs = {}) {
    super(args);
    keepDtype(this, args);
    this.activation = args.activation ?? 'linear';
    if (this.activation !== 'linear' && this.activation !== 'relu') {
      throw new RangeError(`ResidualAdd ${String(args.name ?? '')}: activation must be 'linear' or 'relu', got '${String(this.activation)}'`);
    }
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const shapes = inputShape as Shape[];
    if (!Array.isArray(shapes[0]) || shapes.length !== 2) throw new Error(`ResidualAdd ${this.name}: expects two inputs, got ${JSON.stringify(inputShape)}`);
    const [a, b] = shapes as [Shape, Shape];
    if (a.join() !== b.join()) throw new Error(`ResidualAdd ${this.name}: cannot add shapes [${a.join(', ')}] and [${b.join(', ')}]`);
    return a;
  }

  override call(inputs: Tensor | Tensor[], kwargs: Record<string, unknown> = {}): Tensor {
    if (!Array.isArray(inputs) || inputs.length !== 2) throw new Error(`ResidualAdd ${this.name}: expects two input tensors, got ${Array.isArray(inputs) ? inputs.length : 1}`);
    const [a, b] = inputs as [Tensor, Tensor];
    const sameShape = util.arraysEqual(a.shape, b.shape);
    if (this.activation === 'linear') return kwargs['training'] === true && sameShape ? sameShapeAdd(a, b) : add(a, b);
    if (kwargs['training'] === true) return tidy(() => relu(sameShape ? sameShapeAdd(a, b) : add(a, b)));
    // The fused kernel has no gradient: under tf.grad & co (gradientDepth > 0) the two ops run instead.
    if (sameShape && a.dtype === 'float32' && b.dtype === 'float32' && engine().state.gradientDepth === 0 && getKernel(ADD_RELU_INFERENCE_KERNEL, getBackend()) != null) {
      return engine().runKernel(ADD_RELU_INFERENCE_KERNEL, { a, b }) as Tensor;
    }
    return tidy(() => relu(add(a, b)));
  }

  override getConfig(): serialization.ConfigDict {
    return { ...super.getConfig(), activation: this.activation };
  }
}
serialization.registerClass(ResidualAdd);
