import { add, customGrad, serialization, util, type GradSaveFunc, type Tensor } from '@tensorflow/tfjs-core';
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
 * The residual addition of @wrn/blocks' graphs: tf.layers.add of two same-shape inputs, whose training-mode
 * gradient saves no activations (see sameShapeAdd). Outside training, and for inputs of different shapes, it is
 * tf.add itself.
 */
export class ResidualAdd extends layers.Layer {
  static className = 'WrnResidualAdd';

  constructor(args: LayerArgs = {}) {
    super(args);
    keepDtype(this, args);
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
    if (kwargs['training'] === true && util.arraysEqual(a.shape, b.shape)) return sameShapeAdd(a, b);
    return add(a, b);
  }
}
serialization.registerClass(ResidualAdd);
