import type * as tf from '@tensorflow/tfjs-core';
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs-layers';

/**
 * `model.apply(xs, { training: true })`, the same layers called in the same order (tfjs-layers' topological sort,
 * ported as it is, so seeded dropout draws the same masks), except that each layer's output is freed as soon as
 * the last layer that reads it has run. tfjs-layers frees them only outside training (its executor keeps every
 * intermediate until the enclosing tidy ends), so a training forward pass held every layer's output at once:
 * 2,229 MB at its peak for ResNeXt-29 4x16d at batch 64, where 1,225 MB stayed alive after it
 * (tools/bench/step-memory.ts), and batch 128 ran out of the 4 GB wasm heap in the forward pass. What the
 * backward pass needs the gradient tape keeps on its own (each node saves clones of what it reads), so freeing
 * a layer's output takes nothing from it.
 *
 * A model with several inputs or outputs, a layer with several outputs or one called more than once in the
 * graph is left to model.apply.
 */
export function applyForTraining(model: LayersModel, xs: tf.Tensor): tf.Tensor {
  const plan = planOf(model);
  if (plan == null) return model.apply(xs, { training: true }) as tf.Tensor;
  const values = new Map<number, tf.Tensor>([[plan.input.id, xs]]);
  const readsLeft = new Map(plan.reads);
  let output: tf.Tensor | undefined;
  for (const symbolic of plan.sorted) {
    const inputs = symbolic.inputs.map((input) => values.get(input.id)!);
    const [result] = [symbolic.sourceLayer.apply(inputs, { training: true })].flat() as tf.Tensor[];
    values.set(symbolic.id, result!);
    if (symbolic.id === plan.output.id) output = result;
    for (const input of symbolic.inputs) {
      const left = readsLeft.get(input.id)! - 1;
      readsLeft.set(input.id, left);
      const value = values.get(input.id)!;
      if (left === 0 && input.id !== plan.input.id && !value.isDisposed) {
        value.dispose();
        values.delete(input.id);
      }
    }
  }
  return output!;
}

interface Plan {
  input: SymbolicTensor;
  output: SymbolicTensor;
  /** Every non-input symbolic tensor from the input to the output, in tfjs-layers' execution order. */
  sorted: SymbolicTensor[];
  /** How many times layers read each symbolic tensor (by id). */
  reads: Map<number, number>;
}

const plans = new WeakMap<LayersModel, Plan | null>();

function planOf(model: LayersModel): Plan | null {
  if (!plans.has(model)) plans.set(model, makePlan(model));
  return plans.get(model)!;
}

function makePlan(model: LayersModel): Plan | null {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) return null;
  const [input, output] = [model.inputs[0]!, model.outputs[0]!];
  const sorted = topologicalSort(output, input).filter((s) => s.id !== input.id);
  const reads = new Map<number, number>();
  for (const symbolic of sorted) {
    const layer = symbolic.sourceLayer;
    if (layer.inboundNodes.length !== 1 || [layer.output].flat().length !== 1) return null;
    for (const x of symbolic.inputs) reads.set(x.id, (reads.get(x.id) ?? 0) + 1);
  }
  return { input, output, sorted, reads };
}

/** tfjs-layers' getTopologicalSortAndRecipientCountsForOneFetch (engine/executor.ts), its order exactly. */
function topologicalSort(fetch: SymbolicTensor, fed: SymbolicTensor): SymbolicTensor[] {
  const visited = new Set<string>([fed.name]);
  const sorted: SymbolicTensor[] = [fed];
  const stack: SymbolicTensor[] = [fetch];
  const marks: number[] = [];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (visited.has(top.name)) {
      stack.pop();
      continue;
    }
    const topIsMarked = marks[marks.length - 1] === stack.length - 1;
    if (top.inputs.length === 0 || topIsMarked) {
      stack.pop();
      sorted.push(top);
      visited.add(top.name);
      if (topIsMarked) marks.pop();
    } else {
      marks.push(stack.length - 1);
      for (const input of top.inputs) if (!visited.has(input.name)) stack.push(input);
    }
  }
  return sorted;
}
