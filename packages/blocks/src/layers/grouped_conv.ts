import {
  engine,
  getBackend,
  getKernel,
  concat,
  add,
  conv2d,
  depthwiseConv2d,
  fused,
  matMul,
  pad,
  relu,
  reshape,
  slice,
  stack,
  serialization,
  split,
  sum,
  tidy,
  transpose,
  type Tensor,
  type Tensor4D,
} from '@tensorflow/tfjs-core';
import { initializers, layers, type LayerVariable, type Shape } from '@tensorflow/tfjs-layers';
import { assertPadding, assertPositiveInteger, convOutputSize, singleShape, singleTensor, type ConvPadding, keepDtype, type LayerArgs } from './common.js';
import { subsample } from './zero_pad_shortcut.js';

/**
 * Ways to compute a grouped convolution from the ops TF.js has (it has no `groups` argument):
 * - `split`: split the input and kernel into the groups, one conv2d per group, concatenate (the paper's fig. 3b).
 * - `depthwise`: one depthwiseConv2d with channel multiplier Cout/G on a rearranged kernel, then sum each group's
 *   Cin/G partial products. One op, but its intermediate is Cin/G times larger than the output.
 * - `im2col`: gather the k*k shifted windows (pad + slices), then one batched matMul over the groups
 *   [G, N*Ho*Wo, k*k*Cin/G] x [G, k*k*Cin/G, Cout/G]. Its intermediate is k*k times the input.
 * - `native`: one {@link GROUPED_CONV2D_KERNEL} kernel (and its gradient), where a backend registers one (@wrn/backend
 *   does on wasm with @wrn/native: one GEMM per group on strided views, nothing copied, only x saved for the
 *   gradient); elsewhere it is `split`.
 * `tools/bench/grouped-conv.ts` measures them; {@link fastestGroupedConvMethod} picks per backend and mode.
 */
export type GroupedConvMethod = 'split' | 'depthwise' | 'im2col' | 'native';

export const GROUPED_CONV_METHODS: readonly GroupedConvMethod[] = ['split', 'depthwise', 'im2col', 'native'];

/**
 * The TF.js kernel the `native` method runs: inputs `x` [N,H,W,Cin] and `filter` [kh,kw,Cin/G,Cout], attrs
 * {@link GroupedConv2DKernelAttrs}, output [N,Ho,Wo,Cout]. No backend has it unless a package registers it.
 * Outside gradient computations {@link GroupedConv2D} with a bias or ReLU also passes input `bias` [Cout] and attr
 * `activation`, applied in the conv's epilogue (a folded BatchNorm + ReLU in one pass).
 */
export const GROUPED_CONV2D_KERNEL = 'WrnGroupedConv2D';

/** The attributes of {@link GROUPED_CONV2D_KERNEL}: conv2d's stride and padding, and the groups. */
export interface GroupedConv2DKernelAttrs {
  strides: number;
  pad: ConvPadding;
  groups: number;
  /** 'relu' after the conv (and bias); absent: 'linear'. Only outside gradient computations. */
  activation?: 'linear' | 'relu';
}

/** Whether the active backend has a {@link GROUPED_CONV2D_KERNEL} kernel (else the `native` method is `split`). */
export function hasGroupedConvKernel(): boolean {
  return getKernel(GROUPED_CONV2D_KERNEL, getBackend()) != null;
}

/** Used where no measurement says otherwise: every backend has conv2d and its gradients. */
export const DEFAULT_GROUPED_CONV_METHOD: GroupedConvMethod = 'split';

/** What a {@link GroupedConvMethodResolver} is asked: the mode and the layer's shape. */
export interface GroupedConvContext {
  /** Forward and backward (a training step) rather than forward only. */
  training: boolean;
  groups: number;
  strides: number;
}

/** Chooses the method of the grouped convolutions that run on one backend. */
export type GroupedConvMethodResolver = (context: GroupedConvContext) => GroupedConvMethod;

// Backends whose kernels were replaced after the measurements below (by @wrn/backend: wasm on native convolutions,
// webgpu) register their own choice here, so blocks never needs to know which kernels a backend runs on.
const resolvers = new Map<string, GroupedConvMethodResolver>();

/**
 * Makes the grouped conv layers that run on `backendName` (and don't name a `method`) ask `resolver` instead of the
 * measured table of {@link fastestGroupedConvMethod}. The choice is made per call, so it never reaches a layer's
 * config: a saved model is the same whichever backend trained it. Returns a function that removes the resolver
 * again (if it is still the one registered).
 */
export function registerGroupedConvMethodResolver(backendName: string, resolver: GroupedConvMethodResolver): () => void {
  if (typeof resolver !== 'function') {
    throw new TypeError(`registerGroupedConvMethodResolver('${backendName}'): resolver must be a function, got ${typeof resolver}`);
  }
  resolvers.set(backendName, resolver);
  return () => {
    if (resolvers.get(backendName) === resolver) resolvers.delete(backendName);
  };
}

/**
 * The method for a backend and mode: its registered resolver's ({@link registerGroupedConvMethodResolver}), else the
 * fastest measured (forward only for inference, forward+backward for training), from
 * tools/bench/grouped-conv.ts on ResNeXt shapes (figures in packages/blocks/README.md):
 * - wasm: depthwise has the fastest forward; it has no depthwise gradient kernels and im2col's backward is 20-50x
 *   slower, so training uses split.
 * - cpu: split has the fastest forward. Its conv filter gradient is so slow that im2col's batched matMul trains
 *   2-7x faster with few wide groups at stride 1 (ResNeXt-29's G=8); with 32 narrow groups or stride 2 the
 *   gathering dominates and split wins.
 * - other backends (tensorflow, webgl): split, i.e. their native convs.
 */
export function fastestGroupedConvMethod(
  backendName: string, training: boolean, shape: { groups: number; strides: number } = { groups: 1, strides: 1 },
): GroupedConvMethod {
  const resolver = resolvers.get(backendName);
  if (resolver !== undefined) {
    const method = resolver({ training, groups: shape.groups, strides: shape.strides });
    if (!GROUPED_CONV_METHODS.includes(method)) {
      throw new RangeError(`the grouped conv method resolver of backend '${backendName}' returned '${String(method)}'; expected one of ${GROUPED_CONV_METHODS.join(', ')}`);
    }
    return method;
  }
  if (backendName === 'wasm') return training ? 'split' : 'depthwise';
  if (backendName === 'cpu' && training && shape.groups <= 8 && shape.strides === 1) return 'im2col';
  return DEFAULT_GROUPED_CONV_METHOD;
}

export interface GroupedConv2DOptions {
  strides: number;
  /** 'same', 'valid', or p zeros on every side (Torch's `padding=p`). */
  padding: ConvPadding;
  groups: number;
  method?: GroupedConvMethod;
}

/**
 * Grouped 2-D convolution of an NHWC input `x` [N,H,W,Cin] with `kernel` [kh,kw,Cin/G,Cout]: output channels
 * [g*Cout/G, (g+1)*Cout/G) see only input channels [g*Cin/G, (g+1)*Cin/G).
 */
export function groupedConv2d(x: Tensor4D, kernel: Tensor4D, options: GroupedConv2DOptions): Tensor4D {
  const { strides, padding, groups } = options;
  const method = options.method ?? DEFAULT_GROUPED_CONV_METHOD;
  const [kh, kw, inPerGroup, outChannels] = kernel.shape;
  const inChannels = x.shape[3];
  if (inPerGroup * groups !== inChannels) {
    throw new Error(`groupedConv2d: input has ${inChannels} channels, kernel expects ${groups} groups x ${inPerGroup}`);
  }
  if (outChannels % groups !== 0) {
    throw new Error(`groupedConv2d: ${outChannels} output channels do not divide into ${groups} groups`);
  }
  if (groups === 1) return conv2d(x, kernel, strides, padding) as Tensor4D;
  // The kernel covers float32 tensors that are not empty (the layer's are); anything else takes split.
  if (method === 'native' && x.dtype === 'float32' && kernel.dtype === 'float32' && x.size > 0 && hasGroupedConvKernel()) {
    const attrs: GroupedConv2DKernelAttrs = { strides, pad: padding, groups };
    return engine().runKernel(GROUPED_CONV2D_KERNEL, { x, filter: kernel }, attrs as unknown as Record<string, number | string>) as Tensor4D;
  }
  const outPerGroup = outChannels / groups;
  return tidy(() => {
    if (method === 'split' || method === 'native') {
      const xs = split(x, groups, 3);
      const ks = split(kernel, groups, 3);
      return concat(xs.map((xg, g) => conv2d(xg as Tensor4D, ks[g] as Tensor4D, strides, padding)), 3) as Tensor4D;
    }
    if (method === 'depthwise') {
      // depthwise filter [kh,kw,Cin,b] with filter[..., g*a+i, j] = kernel[..., i, g*b+j]
      const filter = reshape(
        transpose(reshape(kernel, [kh, kw, inPerGroup, groups, outPerGroup]), [0, 1, 3, 2, 4]),
        [kh, kw, inChannels, outPerGroup],
      ) as Tensor4D;
      const partial = depthwiseConv2d(x, filter, strides, padding);
      const [n, h, w] = partial.shape;
      return reshape(sum(reshape(partial, [n, h, w, groups, inPerGroup, outPerGroup]), 4), [n, h, w, outChannels]) as Tensor4D;
    }
    if (method === 'im2col') return im2colGroupedConv(x, kernel, strides, padding, groups);
    throw new Error(`groupedConv2d: unknown method '${String(method)}'; valid: ${GROUPED_CONV_METHODS.join(', ')}`);
  });
}

/** Zeros before and after along one axis: TF's 'same' splits the total with the extra pixel at the end. */
function axisPadding(size: number, kernel: number, stride: number, padding: ConvPadding): [number, number] {
  if (typeof padding === 'number') return [padding, padding];
  if (padding === 'valid') return [0, 0];
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + kernel - size, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

function im2colGroupedConv(x: Tensor4D, kernel: Tensor4D, strides: number, padding: ConvPadding, groups: number): Tensor4D {
  const [n, height, width, inChannels] = x.shape;
  const [kh, kw, inPerGroup, outChannels] = kernel.shape;
  const outPerGroup = outChannels / groups;
  const outH = convOutputSize(height, kh, strides, padding);
  const outW = convOutputSize(width, kw, strides, padding);
  const padded = padding === 'valid' || padding === 0
    ? x
    : pad(x, [[0, 0], axisPadding(height, kh, strides, padding), axisPadding(width, kw, strides, padding), [0, 0]]);
  const windows: Tensor4D[] = [];
  for (let dy = 0; dy < kh; dy++) {
    for (let dx = 0; dx < kw; dx++) {
      const window = slice(padded, [0, dy, dx, 0], [n, (outH - 1) * strides + 1, (outW - 1) * strides + 1, inChannels]) as Tensor4D;
      windows.push(subsample(window, strides));
    }
  }
  const rows = n * outH * outW;
  // [N,Ho,Wo,kh*kw,G,a] -> [G, N*Ho*Wo, kh*kw*a], matching the kernel's (dy, dx, i) row order
  const patches = transpose(reshape(stack(windows, 3), [rows, kh * kw, groups, inPerGroup]), [2, 0, 1, 3]);
  const lhs = reshape(patches, [groups, rows, kh * kw * inPerGroup]);
  const rhs = transpose(reshape(kernel, [kh * kw * inPerGroup, groups, outPerGroup]), [1, 0, 2]);
  const out = matMul(lhs, rhs); // [G, rows, b]
  return reshape(transpose(out, [1, 0, 2]), [n, outH, outW, outChannels]) as Tensor4D;
}

export const CONV_KERNEL_INITIALIZERS = ['heNormalFanOut', 'heNormalFanIn', 'zeros'] as const;
export type ConvKernelInitializer = (typeof CONV_KERNEL_INITIALIZERS)[number];

export interface GroupedConv2DArgs extends LayerArgs {
  /** Output channels (a multiple of `groups`). */
  filters: number;
  /** Square kernel size. */
  kernelSize: number;
  /** Number of groups G (ResNeXt's cardinality C); input channels must be a multiple of it. */
  groups: number;
  /** Stride of both spatial axes. Default 1. */
  strides?: number;
  /** 'same' (default), 'valid', or p zeros on every side (Torch's `padding=p`, what the papers' code uses). */
  padding?: ConvPadding;
  /**
   * 'heNormalFanOut' (default): N(0, 2 / (k*k*filters)), fb.resnet.torch's and the ResNeXt code's;
   * 'heNormalFanIn': N(0, 2 / (k*k*Cin/G)), torch.nn.init.kaiming_normal_'s default (the WRN PyTorch code); 'zeros'.
   */
  kernelInitializer?: ConvKernelInitializer;
  /** Seed of the kernel initializer. */
  seed?: number;
  /** Force one computation; default: {@link fastestGroupedConvMethod} for the active backend and mode. */
  method?: GroupedConvMethod;
  /**
   * A per-channel bias after the conv. Default false (the papers' convs have none; @wrn/blocks' foldBatchNorm gives
   * one to a conv that absorbed the BatchNorm after it).
   */
  useBias?: boolean;
  /** 'relu' applies ReLU after the conv (and bias): with groups 1 in the conv's own epilogue. Default 'linear'. */
  activation?: 'linear' | 'relu';
}

/**
 * A real grouped convolution layer (no bias unless `useBias`): one kernel of shape [k, k, Cin/G, filters], i.e. Cin/G times
 * fewer weights than a dense conv, computed by {@link groupedConv2d}.
 */
export class GroupedConv2D extends layers.Layer {
  static className = 'WrnGroupedConv2D';
  readonly filters: number;
  readonly kernelSize: number;
  readonly groups: number;
  readonly strides: number;
  readonly padding: ConvPadding;
  readonly kernelInitializer: ConvKernelInitializer;
  readonly seed: number | undefined;
  readonly method: GroupedConvMethod | undefined;
  readonly useBias: boolean;
  readonly activation: 'linear' | 'relu';
  private kernel: LayerVariable | null = null;
  private bias: LayerVariable | null = null;

  constructor(args: GroupedConv2DArgs) {
    super(args);
    keepDtype(this, args);
    const where = `GroupedConv2D${args.name ? ` ${args.name}` : ''}`;
    assertPositiveInteger(args.filters, `${where} filters`);
    assertPositiveInteger(args.kernelSize, `${where} kernelSize`);
    assertPositiveInteger(args.groups, `${where} groups`);
    if (args.filters % args.groups !== 0) {
      throw new RangeError(`${where}: filters (${args.filters}) must be a multiple of groups (${args.groups})`);
    }
    this.filters = args.filters;
    this.kernelSize = args.kernelSize;
    this.groups = args.groups;
    this.strides = args.strides ?? 1;
    assertPositiveInteger(this.strides, `${where} strides`);
    const padding = args.padding ?? 'same';
    assertPadding(padding, this.kernelSize, `${where}: padding`);
    this.padding = padding;
    this.kernelInitializer = args.kernelInitializer ?? 'heNormalFanOut';
    if (!CONV_KERNEL_INITIALIZERS.includes(this.kernelInitializer)) {
      throw new RangeError(`${where}: kernelInitializer must be one of ${CONV_KERNEL_INITIALIZERS.join(', ')}, got '${String(this.kernelInitializer)}'`);
    }
    this.seed = args.seed;
    if (args.method !== undefined && !GROUPED_CONV_METHODS.includes(args.method)) {
      throw new RangeError(`${where}: method must be one of ${GROUPED_CONV_METHODS.join(', ')}, got '${String(args.method)}'`);
    }
    this.method = args.method;
    this.useBias = args.useBias ?? false;
    this.activation = args.activation ?? 'linear';
    if (this.activation !== 'linear' && this.activation !== 'relu') {
      throw new RangeError(`${where}: activation must be 'linear' or 'relu', got '${String(this.activation)}'`);
    }
  }

  override build(inputShape: Shape | Shape[]): void {
    const channels = singleShape(inputShape, 'GroupedConv2D')[3];
    if (channels == null || channels % this.groups !== 0) {
      throw new Error(`GroupedConv2D ${this.name}: input channels (${String(channels)}) must be a multiple of groups (${this.groups})`);
    }
    const k = this.kernelSize;
    const fan = this.kernelInitializer === 'heNormalFanIn' ? k * k * (channels / this.groups) : k * k * this.filters;
    const init = this.kernelInitializer === 'zeros'
      ? initializers.zeros()
      : initializers.randomNormal({ mean: 0, stddev: Math.sqrt(2 / fan), seed: this.seed });
    this.kernel = this.addWeight('kernel', [k, k, channels / this.groups, this.filters], 'float32', init, undefined, true);
    if (this.useBias) this.bias = this.addWeight('bias', [this.filters], 'float32', initializers.zeros(), undefined, true);
    this.built = true;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const [batch, height, width] = singleShape(inputShape, 'GroupedConv2D');
    const out = (size: number | null | undefined) =>
      size == null ? null : convOutputSize(size, this.kernelSize, this.strides, this.padding);
    return [batch ?? null, out(height), out(width), this.filters];
  }

  override call(inputs: Tensor | Tensor[], kwargs: Record<string, unknown>): Tensor {
    const x = singleTensor(inputs, 'GroupedConv2D');
    if (this.kernel === null) throw new Error(`GroupedConv2D ${this.name} was called before it was built`);
    const kernel = this.kernel.read() as Tensor4D;
    const bias = this.bias?.read() as Tensor | undefined;
    const withRelu = this.activation === 'relu';
    if (this.groups === 1 && (bias !== undefined || withRelu)) {
      // One FusedConv2D kernel: the bias and ReLU in the conv's epilogue, not two more passes over the output.
      return fused.conv2d({ x: x as Tensor4D, filter: kernel, strides: this.strides, pad: this.padding, bias, activation: withRelu ? 'relu' : 'linear' });
    }
    const method = this.method ?? fastestGroupedConvMethod(getBackend(), kwargs['training'] === true, this);
    const inference = kwargs['training'] !== true && engine().state.gradientDepth === 0;
    if (inference && method === 'native' && x.dtype === 'float32' && x.size > 0 && hasGroupedConvKernel()) {
      // The bias and ReLU in the kernel's epilogue (its registered gradient knows neither: so not under tf.grad).
      const attrs: GroupedConv2DKernelAttrs = { strides: this.strides, pad: this.padding, groups: this.groups, activation: this.activation };
      return engine().runKernel(GROUPED_CONV2D_KERNEL, bias === undefined ? { x, filter: kernel } : { x, filter: kernel, bias }, attrs as unknown as Record<string, number | string>) as Tensor4D;
    }
    const conv = () => groupedConv2d(x as Tensor4D, kernel, { strides: this.strides, padding: this.padding, groups: this.groups, method });
    if (bias === undefined && !withRelu) return conv();
    return tidy(() => {
      const y = conv();
      const biased = bias === undefined ? y : add(y, bias);
      return withRelu ? relu(biased) : biased;
    });
  }

  override getConfig(): serialization.ConfigDict {
    const config: serialization.ConfigDict = {
      ...super.getConfig(),
      filters: this.filters,
      kernelSize: this.kernelSize,
      groups: this.groups,
      strides: this.strides,
      padding: this.padding,
      kernelInitializer: this.kernelInitializer,
    };
    if (this.seed !== undefined) config['seed'] = this.seed;
    if (this.method !== undefined) config['method'] = this.method;
    // Written only where set, so that configs of the papers' bias-free convs stay as they were.
    if (this.useBias) config['useBias'] = true;
    if (this.activation !== 'linear') config['activation'] = this.activation;
    return config;
  }
}
serialization.registerClass(GroupedConv2D);

/**
 * A conv2d (no bias) with Torch's explicit symmetric padding, where TF's 'same' would pad asymmetrically: every
 * strided 3x3 conv (padding 1) and the 7x7/2 ImageNet stem (padding 3). tfjs-layers' Conv2D only knows
 * 'same'/'valid'; this layer hands the number to tf.conv2d, whose kernels on every backend (and @wrn's wasm
 * training kernels and native convolutions) take explicit padding as they take 'same', with no extra copy.
 * {@link GroupedConv2D} with `groups` 1 by default, under its own class name so that layer tables say what it is.
 */
export class PaddedConv2D extends GroupedConv2D {
  static override className = 'WrnPaddedConv2D';

  constructor(args: Omit<GroupedConv2DArgs, 'groups'> & { groups?: number }) {
    super({ ...args, groups: args.groups ?? 1 });
  }
}
serialization.registerClass(PaddedConv2D);
