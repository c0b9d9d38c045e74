import type { NetworkGraph, Tap } from './graph.js';

/** 'original': conv-BN-ReLU, ReLU after the addition (ResNet). 'preact': BN-ReLU-conv, nothing after it (He 2016, WRN). */
export type BlockOrder = 'original' | 'preact';
export const BLOCK_ORDERS: readonly BlockOrder[] = ['original', 'preact'];

/**
 * Shortcut where a block changes shape: 'A' = identity with stride-s subsampling and zero-padded extra channels
 * (no parameters); 'B' = 1x1 conv projection (+BN in the original order). Identity where the shape is kept.
 */
export type ShortcutType = 'A' | 'B';
export const SHORTCUT_TYPES: readonly ShortcutType[] = ['A', 'B'];

/** One conv of a residual branch. */
export interface BranchConv {
  kernelSize: number;
  /** Output channels; the last conv's are the block's output width. */
  filters: number;
  /** Spatial stride (default 1); the block subsamples by the product of its convs' strides. */
  strides?: number;
  /** Groups (default 1); ResNeXt puts its cardinality on the bottleneck's 3x3. */
  groups?: number;
}

/**
 * A residual block as data: the convs of its branch and how they are wired. Trusted as given: @wrn/architectures
 * validates a model's config once, by its schema, and builds its blocks from it.
 */
export interface ResidualBlockSpec {
  /** The branch's convs in order: [3x3, 3x3] basic, [1x1, 3x3, 1x1] bottleneck, WRN B(M) one per kernel size. */
  convs: readonly BranchConv[];
  order: BlockOrder;
  /** Shortcut type used when the block changes shape. */
  shortcut: ShortcutType;
  /** Dropout between the convs, after the ReLU (WRN). Default 0 (no dropout layer). */
  dropRate?: number;
  /** Drop-path (stochastic depth) rate of the whole branch. Default 0 (no layer). */
  dropPathRate?: number;
  /**
   * Initialise the last BN gamma of the branch to 0, so the block starts as the identity. Only the original order
   * has a BN at the end of its branch (a pre-activation branch ends in a conv: there the flag has nothing to zero).
   */
  zeroInitLastGamma?: boolean;
}

/** Two 3x3 convs (ResNet basic block, WRN B(3,3)). */
export function basicBlockSpec(args: { outChannels: number; strides: number; order: BlockOrder; shortcut: ShortcutType }): ResidualBlockSpec {
  return wrnBlockSpec({ ...args, kernels: [3, 3] });
}

/**
 * 1x1 reduce to `midChannels`, 3x3 (grouped with `groups` > 1: ResNeXt), 1x1 expand to `outChannels`.
 * `strideOn`: '3x3' is the v1.5 layout (torchvision, timm; the default of this package); '1x1' the ResNet paper's v1.
 */
export function bottleneckBlockSpec(args: {
  midChannels: number; outChannels: number; groups?: number; strides: number; strideOn?: '3x3' | '1x1';
  order: BlockOrder; shortcut: ShortcutType;
}): ResidualBlockSpec {
  const onReduce = args.strideOn === '1x1';
  return {
    convs: [
      { kernelSize: 1, filters: args.midChannels, strides: onReduce ? args.strides : 1 },
      { kernelSize: 3, filters: args.midChannels, strides: onReduce ? 1 : args.strides, groups: args.groups ?? 1 },
      { kernelSize: 1, filters: args.outChannels },
    ],
    order: args.order,
    shortcut: args.shortcut,
  };
}

/**
 * WRN block type B(M): one conv per entry of `kernels`, all `outChannels` wide (deepening factor l =
 * kernels.length). The stride goes on the first conv wider than 1x1 (the first conv if all are 1x1), so a
 * B(1,3,1) block does not subsample with a 1x1.
 */
export function wrnBlockSpec(args: { kernels: readonly number[]; outChannels: number; strides: number; order: BlockOrder; shortcut: ShortcutType }): ResidualBlockSpec {
  const strideAt = Math.max(args.kernels.findIndex((k) => k > 1), 0);
  return {
    convs: args.kernels.map((kernelSize, i) => ({ kernelSize, filters: args.outChannels, strides: i === strideAt ? args.strides : 1 })),
    order: args.order,
    shortcut: args.shortcut,
  };
}

/**
 * Adds one residual block to `graph` after `x` and returns its output. Layer names are `${prefix}_conv1`,
 * `${prefix}_bn1`, ..., `${prefix}_shortcut_conv`, `${prefix}_add`, so saved weights stay loadable.
 */
export function residualBlock(graph: NetworkGraph, x: Tap, spec: ResidualBlockSpec, prefix: string): Tap {
  const { convs, order, dropRate = 0, dropPathRate = 0 } = spec;
  const at = (layer: string) => `${prefix}_${layer}`;
  const last = convs.length - 1;
  const strides = convs.reduce((product, c) => product * (c.strides ?? 1), 1);
  const outChannels = (convs[last] as BranchConv).filters;
  const zeroGamma = (i: number) => order === 'original' && i === last && spec.zeroInitLastGamma === true;
  const bn = (t: Tap, i: number) => graph.batchNorm(t, at(`bn${i + 1}`), { zeroGamma: zeroGamma(i) });
  const relu = (t: Tap, i: number) => graph.relu(t, at(`relu${i + 1}`));
  const conv = (t: Tap, i: number) =>
    graph.conv(i > 0 && dropRate > 0 ? graph.dropout(t, dropRate, at(`dropout${i}`)) : t, convs[i] as BranchConv, at(`conv${i + 1}`));

  // preact: BN-ReLU-conv, the projection reading the pre-activated input (the WRN and pre-act ResNet code);
  // original: conv-BN with a ReLU between the convs, and a ReLU after the addition.
  const pre = order === 'preact' ? relu(bn(x, 0), 0) : x;
  let branch = convs.reduce((t, _, i) => (order === 'preact' ? conv(i > 0 ? relu(bn(t, i), i) : t, i)
    : i < last ? relu(bn(conv(t, i), i), i) : bn(conv(t, i), i)), pre);
  const shortcut = strides === 1 && x.shape[2] === outChannels ? x : spec.shortcut === 'A'
    ? graph.zeroPadShortcut(x, strides, outChannels, at('shortcut_pad'))
    : projection(graph, pre, { filters: outChannels, kernelSize: 1, strides }, prefix, order === 'original');
  if (dropPathRate > 0) branch = graph.dropPath(branch, dropPathRate, at('droppath'));
  const sum = graph.add(branch, shortcut, at('add'));
  return order === 'original' ? graph.relu(sum, at('out')) : sum;
}

/** The 1x1 projection shortcut (option B), with a BN after it in the original order. */
function projection(graph: NetworkGraph, x: Tap, conv: BranchConv, prefix: string, withBatchNorm: boolean): Tap {
  const projected = graph.conv(x, conv, `${prefix}_shortcut_conv`);
  return withBatchNorm ? graph.batchNorm(projected, `${prefix}_shortcut_bn`) : projected;
}
