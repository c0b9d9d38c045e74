import { assertPositiveInteger, assertRate } from './layers/common.js';
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

/** A residual block as data: the convs of its branch and how they are wired. */
export interface ResidualBlockSpec {
  /** Kernel size of each conv of the branch, in order: [3,3] basic, [1,3,1] bottleneck, WRN B(M) e.g. [3,1,3]. */
  kernels: readonly number[];
  /** Output channels of each conv; the last is the block's output width. */
  widths: readonly number[];
  /** Groups of each conv (default: 1 for all); ResNeXt puts its cardinality on the 3x3. */
  groups?: readonly number[];
  /** Spatial stride of the block (1 keeps the size). */
  strides: number;
  /** Index of the conv that carries the stride. */
  strideIndex: number;
  order: BlockOrder;
  /** Shortcut type used when the block changes shape. */
  shortcut: ShortcutType;
  /** Dropout between the convs, after the ReLU (WRN). Default 0 (no dropout layer). */
  dropRate?: number;
  /** Drop-path (stochastic depth) rate of the whole branch. Default 0 (no layer). */
  dropPathRate?: number;
  /**
   * Initialise the last BN gamma of the branch to 0, so the block starts as the identity. Only the original order
   * has a BN at the end of its branch; pre-activation branches end in a conv, so this is an error there.
   */
  zeroInitLastGamma?: boolean;
}

/** Two 3x3 convs (ResNet basic block, WRN B(3,3)). */
export function basicBlockSpec(args: { outChannels: number; strides: number; order: BlockOrder; shortcut: ShortcutType }): ResidualBlockSpec {
  return { kernels: [3, 3], widths: [args.outChannels, args.outChannels], strides: args.strides, strideIndex: 0, order: args.order, shortcut: args.shortcut };
}

/**
 * 1x1 reduce to `midChannels`, 3x3 (grouped with `groups` > 1: ResNeXt), 1x1 expand to `outChannels`.
 * `strideOn`: '3x3' is the v1.5 layout (torchvision, timm; the default of this package); '1x1' the ResNet paper's v1.
 */
export function bottleneckBlockSpec(args: {
  midChannels: number; outChannels: number; groups?: number; strides: number; strideOn?: '3x3' | '1x1';
  order: BlockOrder; shortcut: ShortcutType;
}): ResidualBlockSpec {
  const groups = args.groups ?? 1;
  return {
    kernels: [1, 3, 1],
    widths: [args.midChannels, args.midChannels, args.outChannels],
    groups: [1, groups, 1],
    strides: args.strides,
    strideIndex: (args.strideOn ?? '3x3') === '3x3' ? 1 : 0,
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
  const firstSpatial = args.kernels.findIndex((k) => k > 1);
  return {
    kernels: [...args.kernels],
    widths: args.kernels.map(() => args.outChannels),
    strides: args.strides,
    strideIndex: firstSpatial < 0 ? 0 : firstSpatial,
    order: args.order,
    shortcut: args.shortcut,
  };
}

function validateSpec(spec: ResidualBlockSpec, where: string): void {
  if (spec.kernels.length < 1) throw new RangeError(`${where}: a block needs at least one conv (kernels is empty)`);
  if (spec.widths.length !== spec.kernels.length) {
    throw new RangeError(`${where}: widths has ${spec.widths.length} entries, kernels ${spec.kernels.length}; they must match`);
  }
  if (spec.groups !== undefined && spec.groups.length !== spec.kernels.length) {
    throw new RangeError(`${where}: groups has ${spec.groups.length} entries, kernels ${spec.kernels.length}; they must match`);
  }
  spec.kernels.forEach((k, i) => assertPositiveInteger(k, `${where} kernels[${i}]`));
  spec.widths.forEach((w, i) => assertPositiveInteger(w, `${where} widths[${i}]`));
  assertPositiveInteger(spec.strides, `${where} strides`);
  if (!Number.isInteger(spec.strideIndex) || spec.strideIndex < 0 || spec.strideIndex >= spec.kernels.length) {
    throw new RangeError(`${where}: strideIndex must be in [0, ${spec.kernels.length - 1}], got ${spec.strideIndex}`);
  }
  if (!BLOCK_ORDERS.includes(spec.order)) throw new RangeError(`${where}: order must be one of ${BLOCK_ORDERS.join(', ')}, got '${String(spec.order)}'`);
  if (!SHORTCUT_TYPES.includes(spec.shortcut)) throw new RangeError(`${where}: shortcut must be one of ${SHORTCUT_TYPES.join(', ')}, got '${String(spec.shortcut)}'`);
  assertRate(spec.dropRate ?? 0, `${where} dropRate`);
  assertRate(spec.dropPathRate ?? 0, `${where} dropPathRate`);
  if (spec.zeroInitLastGamma === true && spec.order === 'preact') {
    throw new RangeError(`${where}: zeroInitLastGamma needs order 'original'; a pre-activation branch ends in a conv, not a BN`);
  }
}

/**
 * Adds one residual block to `graph` after `x` and returns its output. Layer names are `${prefix}_conv1`,
 * `${prefix}_bn1`, ..., `${prefix}_shortcut_conv`, `${prefix}_add`, so saved weights stay loadable.
 */
export function residualBlock(graph: NetworkGraph, x: Tap, spec: ResidualBlockSpec, prefix: string): Tap {
  validateSpec(spec, `block ${prefix}`);
  const inChannels = x.shape[2] as number;
  const last = spec.kernels.length - 1;
  const outChannels = spec.widths[last] as number;
  const changesShape = spec.strides !== 1 || inChannels !== outChannels;
  const dropRate = spec.dropRate ?? 0;
  const conv = (from: Tap, i: number): Tap =>
    graph.conv(from, {
      filters: spec.widths[i] as number,
      kernelSize: spec.kernels[i] as number,
      strides: i === spec.strideIndex ? spec.strides : 1,
      groups: spec.groups?.[i] ?? 1,
    }, `${prefix}_conv${i + 1}`);
  const dropoutBefore = (from: Tap, i: number): Tap =>
    i > 0 && dropRate > 0 ? graph.dropout(from, dropRate, `${prefix}_dropout${i}`) : from;

  let branch: Tap;
  let shortcut: Tap;
  if (spec.order === 'preact') {
    const pre = graph.relu(graph.batchNorm(x, `${prefix}_bn1`), `${prefix}_relu1`);
    branch = conv(pre, 0);
    for (let i = 1; i <= last; i++) {
      const activated = graph.relu(graph.batchNorm(branch, `${prefix}_bn${i + 1}`), `${prefix}_relu${i + 1}`);
      branch = conv(dropoutBefore(activated, i), i);
    }
    // The projection reads the pre-activated input, as in the WRN and pre-activation ResNet code.
    shortcut = !changesShape ? x
      : spec.shortcut === 'B' ? graph.conv(pre, { filters: outChannels, kernelSize: 1, strides: spec.strides }, `${prefix}_shortcut_conv`)
        : graph.zeroPadShortcut(x, spec.strides, outChannels, `${prefix}_shortcut_pad`);
  } else {
    branch = x;
    for (let i = 0; i <= last; i++) {
      branch = graph.batchNorm(conv(dropoutBefore(branch, i), i), `${prefix}_bn${i + 1}`, {
        zeroGamma: i === last && spec.zeroInitLastGamma === true,
      });
      if (i < last) branch = graph.relu(branch, `${prefix}_relu${i + 1}`);
    }
    shortcut = !changesShape ? x
      : spec.shortcut === 'B'
        ? graph.batchNorm(graph.conv(x, { filters: outChannels, kernelSize: 1, strides: spec.strides }, `${prefix}_shortcut_conv`), `${prefix}_shortcut_bn`)
        : graph.zeroPadShortcut(x, spec.strides, outChannels, `${prefix}_shortcut_pad`);
  }
  if ((spec.dropPathRate ?? 0) > 0) branch = graph.dropPath(branch, spec.dropPathRate as number, `${prefix}_droppath`);
  const sum = graph.add(branch, shortcut, `${prefix}_add`);
  return spec.order === 'original' ? graph.relu(sum, `${prefix}_out`) : sum;
}
