import { z } from 'zod';
import { BLOCK_ORDERS, CONV_INITS, SHORTCUT_TYPES, type BlockOrder, type ConvInit, type ShortcutType } from '@wrn/blocks';

export const FAMILIES = ['resnet', 'preact-resnet', 'wrn', 'resnext'] as const;
/** Architecture family: ResNet (He 2015), pre-activation ResNet (He 2016), WRN, ResNeXt. */
export type Family = (typeof FAMILIES)[number];

export const DATASETS = ['cifar', 'imagenet'] as const;
/** The dataset an architecture was designed for: its stem, stage widths, default input shape and classes. */
export type DatasetKind = (typeof DATASETS)[number];

/**
 * Where a bottleneck block strides: 'v1.5' on the 3x3 (torchvision, timm; the default of the ImageNet ResNets,
 * WRN-50-2 and ResNeXt), 'v1' on the first 1x1 (the ResNet paper, whose ResNet-50 has 3.8 G multiply-adds instead
 * of 4.1 G; and the default of the pre-activation ResNet-164/1001, as resnet-pre-act.lua strides).
 */
export const STRIDE_LAYOUTS = ['v1.5', 'v1'] as const;
export type StrideLayout = (typeof STRIDE_LAYOUTS)[number];

const positiveInt = z.number().int().positive();
const rate = z.number().min(0).lt(1);

export const StageConfigSchema = z.strictObject({
  /** Residual blocks in the stage. */
  blocks: positiveInt,
  /** Output channels of every block of the stage. */
  outChannels: positiveInt,
  /** Inner width of bottleneck blocks (ResNeXt: cardinality x group width); unused by basic and WRN blocks. */
  midChannels: positiveInt.optional(),
  /** Groups of the bottleneck's 3x3 (ResNeXt cardinality C); 1 elsewhere. */
  groups: positiveInt,
  /** Stride of the stage's first block. */
  strides: positiveInt,
});
export type StageConfig = z.infer<typeof StageConfigSchema>;

export const BlockConfigSchema = z.discriminatedUnion('kind', [
  /** Two 3x3 convs. */
  z.strictObject({ kind: z.literal('basic') }),
  /** 1x1 reduce, 3x3 (grouped when the stage has groups > 1), 1x1 expand. */
  z.strictObject({ kind: z.literal('bottleneck') }),
  /** WRN B(M): one conv per kernel size, all stage-wide; kernels.length is the deepening factor l. */
  z.strictObject({ kind: z.literal('wrn'), kernels: z.array(positiveInt).min(1) }),
]);
export type BlockConfig = z.infer<typeof BlockConfigSchema>;

/** Everything that determines a model: the registry resolves a name plus options into one of these. */
export const ModelConfigSchema = z
  .strictObject({
    /** Canonical name in paper notation, e.g. 'wrn-28-10'. */
    name: z.string().min(1),
    family: z.enum(FAMILIES),
    dataset: z.enum(DATASETS),
    /** 'cifar': one 3x3 conv. 'imagenet': 7x7/2 conv, BN, ReLU, 3x3/2 max pool. */
    stem: z.enum(['cifar', 'imagenet']),
    stemChannels: positiveInt,
    block: BlockConfigSchema,
    order: z.enum(BLOCK_ORDERS as [BlockOrder, ...BlockOrder[]]),
    shortcut: z.enum(SHORTCUT_TYPES as [ShortcutType, ...ShortcutType[]]),
    strideLayout: z.enum(STRIDE_LAYOUTS),
    /**
     * He-normal initialisation of the convs over their fan-out ('fan-out': fb.resnet.torch, resnet-pre-act.lua,
     * the ResNeXt code, torchvision) or fan-in ('fan-in': the WRN PyTorch code). Absent in configs written before
     * it existed: 'fan-out'.
     */
    convInit: z.enum(CONV_INITS as [ConvInit, ...ConvInit[]]).default('fan-out'),
    stages: z.array(StageConfigSchema).min(1),
    numClasses: positiveInt,
    /** [H, W, C] of one input image (NHWC without the batch axis). */
    inputShape: z.tuple([positiveInt, positiveInt, positiveInt]),
    /** Dropout rate between the convs of each block, one per stage (0 = no dropout layers). */
    dropRate: z.array(rate),
    /** Drop-path rate of the last block; block i of n gets dropPathRate * i / (n - 1). */
    dropPathRate: rate,
    /** Zero-initialise the last BN gamma of every residual branch (original order only). */
    zeroInitLastGamma: z.boolean(),
    /** Initialisation seed; absent = unseeded. */
    seed: z.number().int().optional(),
  })
  .superRefine((config, ctx) => {
    if (config.dropRate.length !== config.stages.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['dropRate'],
        message: `dropRate has ${config.dropRate.length} entries but the model has ${config.stages.length} stages; give one per stage`,
      });
    }
    if (config.zeroInitLastGamma && config.order === 'preact') {
      ctx.addIssue({
        code: 'custom',
        path: ['zeroInitLastGamma'],
        message: "zeroInitLastGamma needs order 'original': pre-activation branches end in a conv, not a BN",
      });
    }
    // The builder trusts a config that passed this schema: every value the blocks and the graph use is checked here.
    config.stages.forEach((stage, i) => {
      if (config.block.kind === 'bottleneck' && stage.midChannels === undefined) {
        ctx.addIssue({ code: 'custom', path: ['stages', i, 'midChannels'], message: 'bottleneck stages need midChannels' });
      }
      if (config.block.kind !== 'bottleneck' && stage.groups !== 1) {
        ctx.addIssue({ code: 'custom', path: ['stages', i, 'groups'], message: `groups > 1 needs bottleneck blocks, got ${config.block.kind}` });
      }
      if (stage.midChannels !== undefined && stage.midChannels % stage.groups !== 0) {
        ctx.addIssue({
          code: 'custom', path: ['stages', i, 'midChannels'],
          message: `midChannels ${stage.midChannels} must be a multiple of groups ${stage.groups} (the grouped 3x3 splits its channels into the groups)`,
        });
      }
      const inChannels = i === 0 ? config.stemChannels : (config.stages[i - 1] as StageConfig).outChannels;
      if (config.shortcut === 'A' && stage.outChannels < inChannels) {
        ctx.addIssue({
          code: 'custom', path: ['stages', i, 'outChannels'],
          message: `option A (zero-padding) shortcuts cannot reduce ${inChannels} channels to ${stage.outChannels}; use shortcut 'B'`,
        });
      }
    });
  });
export type ModelConfig = z.infer<typeof ModelConfigSchema>;

/** Options of {@link buildModel} / {@link resolveModelConfig}; each overrides the named model's default. */
export const BuildModelOptionsSchema = z.strictObject({
  /** Classes of the final dense layer (default 10 for CIFAR models, 1000 for ImageNet models). */
  numClasses: positiveInt.optional(),
  /** [H, W, C] of one input (default [32, 32, 3] or [224, 224, 3]); any size works ('same' padding rounds up). */
  inputShape: z.tuple([positiveInt, positiveInt, positiveInt]).optional(),
  /** Dropout between the convs of each block: one rate for all stages, or one per stage. Default 0. */
  dropRate: z.union([rate, z.array(rate)]).optional(),
  /** Stochastic depth: drop-path rate of the last block, linearly decaying to 0 at the first. Default 0. */
  dropPathRate: rate.optional(),
  /** Block order ('original' or 'preact'); default the family's. */
  blockOrder: z.enum(BLOCK_ORDERS as [BlockOrder, ...BlockOrder[]]).optional(),
  /** Shortcut where shapes change ('A' zero-pad or 'B' projection); default the family's. */
  shortcut: z.enum(SHORTCUT_TYPES as [ShortcutType, ...ShortcutType[]]).optional(),
  /** Bottleneck stride placement; default 'v1' for pre-activation ResNets (resnet-pre-act.lua), else 'v1.5'. */
  strideLayout: z.enum(STRIDE_LAYOUTS).optional(),
  /** He-normal over the conv fan-out or fan-in; default the family's code: 'fan-in' for CIFAR WRNs, else 'fan-out'. */
  convInit: z.enum(CONV_INITS as [ConvInit, ...ConvInit[]]).optional(),
  /** Zero-initialise the last BN gamma of each residual branch (original order only). Default false. */
  zeroInitLastGamma: z.boolean().optional(),
  /** Initialisation seed (an integer). Default: unseeded. */
  seed: z.number().int().optional(),
});
export type BuildModelOptions = z.input<typeof BuildModelOptionsSchema>;

/** Formats zod issues as one line per problem: `path: message`. */
export function formatIssues(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(root)'}: ${issue.message}`).join('; ');
}
