import * as tf from '@tensorflow/tfjs-core';

/** A node of tfjs-core's gradient tape (engine.state.activeTape), as recorded by the engine. */
interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
  saved?: tf.Tensor[];
}

/** The parts of tfjs-core's Engine (not public API) that a gradient computation uses. */
interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  startTape(): void;
  endTape(): void;
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  tidy<T extends tf.TensorContainer>(nameOrFn: string | (() => T), fn?: () => T): T;
}

function engineInternals(): EngineInternals | undefined {
  const engine = tf.engine() as unknown as Partial<EngineInternals>;
  const usable =
    typeof engine.startTape === 'function' &&
    typeof engine.endTape === 'function' &&
    typeof engine.scopedRun === 'function' &&
    engine.state != null &&
    typeof engine.state.gradientDepth === 'number';
  return usable ? (engine as EngineInternals) : undefined;
}

/** The tape nodes on a path from one of `xs` to `y`, inputs not depending on `xs` pruned (tfjs-core's tape.ts). */
function nodesFromXsToY(tape: TapeNode[], xs: tf.Tensor[], y: tf.Tensor): TapeNode[] {
  const fromX = new Set<number>(xs.map((x) => x.id));
  const nodesFromX = new Set<number>();
  for (const node of tape) {
    if (Object.values(node.inputs).some((input) => fromX.has(input.id))) {
      node.outputs.forEach((output) => fromX.add(output.id));
      nodesFromX.add(node.id);
    }
  }
  const leadToY = new Set<number>([y.id]);
  const nodesToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i]!;
    if (node.outputs.some((output) => leadToY.has(output.id))) {
      for (const input of Object.values(node.inputs)) leadToY.add(input.id);
      nodesToY.add(node.id);
    }
  }
  return tape
    .filter((node) => nodesFromX.has(node.id) && nodesToY.has(node.id))
    .map((node) => ({ ...node, inputs: Object.fromEntries(Object.entries(node.inputs).filter(([, input]) => fromX.has(input.id))) }));
}

/**
 * `tf.variableGrads` with the same gradient functions, in the same order (so the same numbers), that frees
 * each intermediate gradient as soon as the node it flows into has been differentiated, and each node's saved
 * activations as soon as its own gradient has been computed. tfjs-core keeps
 * every one of them until the whole backward pass ends, which doubles a training step's peak memory
 * (measured on wasm: peak live tensors 2.2x those alive after the forward pass). Uses tfjs-core's engine
 * internals (its tape); where they are not there, or inside another gradient computation, it is
 * tf.variableGrads.
 */
export function variableGrads(f: () => tf.Scalar, varList: tf.Variable[]): { value: tf.Scalar; grads: tf.NamedTensorMap } {
  const engine = engineInternals();
  if (engine == null || engine.state.gradientDepth !== 0) return tf.variableGrads(f, varList);
  const xs = varList.filter((v) => v.trainable);
  if (xs.length === 0) throw new Error(`variableGrads: none of the ${varList.length} variables is trainable`);

  const y = engine.scopedRun(
    () => engine.startTape(),
    () => engine.endTape(),
    () => engine.tidy('forward', f),
  );
  if (!(y instanceof tf.Tensor) || y.rank !== 0) {
    throw new Error(`variableGrads: the loss function must return a scalar tensor, got ${y instanceof tf.Tensor ? `rank ${y.rank}` : typeof y}`);
  }
  const tape = engine.state.activeTape ?? [];
  const nodes = nodesFromXsToY(tape, xs, y);

  const { value, grads } = engine.tidy('backward', () => {
    const gradientOf = new Map<number, tf.Tensor>([[y.id, tf.onesLike(y)]]);
    // How many entries of gradientOf hold each tensor (a gradient function may pass dy through as dx).
    const holders = new Map<tf.Tensor, number>([[gradientOf.get(y.id)!, 1]]);
    const store = (id: number, g: tf.Tensor) => {
      gradientOf.set(id, g);
      holders.set(g, (holders.get(g) ?? 0) + 1);
    };
    const release = (id: number) => {
      const g = gradientOf.get(id);
      if (g == null) return;
      gradientOf.delete(id);
      const left = holders.get(g)! - 1;
      if (left > 0) holders.set(g, left);
      else {
        holders.delete(g);
        g.dispose();
      }
    };
    const keepIds = new Set(xs.map((x) => x.id));
    for (let i = nodes.length - 1; i >= 0; i--) {
      const node = nodes[i]!;
      const gradient = node.gradient;
      if (gradient == null) throw new Error(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
      const dys = node.outputs.map((o) => gradientOf.get(o.id) ?? null);
      // The gradient function's own temporaries (some compute them before returning their thunks) are
      // freed here too, not at the end of the backward pass.
      const dxs = engine.tidy(() => {
        const thunks = gradient(dys);
        const out: Record<string, tf.Tensor> = {};
        for (const name of Object.keys(node.inputs)) {
          const thunk = thunks[name];
          if (thunk == null) throw new Error(`Cannot backprop through input ${name}. Available gradients found: ${Object.keys(thunks)}.`);
          out[name] = thunk();
        }
        return out;
      });
      for (const [name, dx] of Object.entries(dxs)) {
        const x = node.inputs[name]!;
        if (dx.dtype !== 'float32') {
          throw new Error(`Error in gradient for op ${node.kernelName}. The gradient of input ${name} must have 'float32' dtype, but has '${dx.dtype}'`);
        }
        if (!tf.util.arraysEqual(dx.shape, x.shape)) {
          throw new Error(
            `Error in gradient for op ${node.kernelName}. The gradient of input '${name}' has shape '${dx.shape}', which does not match the shape of the input '${x.shape}'`,
          );
        }
        const current = gradientOf.get(x.id);
        if (current == null) {
          store(x.id, dx);
        } else {
          const sum = tf.add(current, dx);
          release(x.id);
          if (!holders.has(dx) && !node.outputs.some((o) => gradientOf.get(o.id) === dx)) dx.dispose();
          store(x.id, sum);
        }
      }
      for (const output of node.outputs) if (!keepIds.has(output.id)) release(output.id);
      // The activations this node saved for its gradient are needed by no other node (each node saves clones of
      // its own): free them now, not when the whole backward pass ends (tfjs-core keeps every one until then,
      // so a step's peak was all activations plus the gradients). A gradient that returned a saved tensor
      // itself keeps it.
      const returned = new Set<tf.Tensor>(Object.values(dxs));
      for (const tensor of node.saved ?? []) if (!returned.has(tensor)) tensor.dispose();
    }
    const named: tf.NamedTensorMap = {};
    for (const x of xs) {
      const g = gradientOf.get(x.id);
      if (g != null) named[x.name] = g;
    }
    return { value: y as tf.Scalar, grads: named };
  });

  // As tfjs-core does once the outermost gradient computation ends: the tape's saved tensors go.
  if (engine.state.gradientDepth === 0 && engine.state.activeTape != null) {
    for (const node of engine.state.activeTape) for (const tensor of node.saved ?? []) tensor.dispose();
    engine.state.activeTape = null;
  }
  if (Object.keys(grads).length === 0) {
    throw new Error(
      'Cannot find a connection between any variable and the result of the loss function y=f(x). Please make sure the operations that use variables are inside the function f passed to minimize().',
    );
  }
  for (const v of varList) if (!v.trainable) grads[v.name] = null as unknown as tf.Tensor;
  return { value, grads };
}
