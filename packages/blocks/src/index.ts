export { getLayerRandomState, setLayerRandomState, seedLayerRandom, nextLayerSeed } from './random.js';
export type { LayerRandomState } from './random.js';
export {
  GroupedConv2D,
  PaddedConv2D,
  CONV_KERNEL_INITIALIZERS,
  groupedConv2d,
  GROUPED_CONV_METHODS,
  GROUPED_CONV2D_KERNEL,
  hasGroupedConvKernel,
  DEFAULT_GROUPED_CONV_METHOD,
  fastestGroupedConvMethod,
  registerGroupedConvMethodResolver,
} from './layers/grouped_conv.js';
export type { GroupedConv2DArgs, GroupedConv2DKernelAttrs, GroupedConv2DOptions, GroupedConvMethod, GroupedConvContext, GroupedConvMethodResolver, ConvKernelInitializer } from './layers/grouped_conv.js';
export { PaddedMaxPooling2D } from './layers/pooling.js';
export type { PaddedMaxPooling2DArgs } from './layers/pooling.js';
export { BATCH_NORM_RELU_INFERENCE_KERNEL, BATCH_NORM_TRAINING_KERNEL, TorchBatchNormalization } from './layers/batch_norm.js';
export type { BatchNormActivation, BatchNormTrainingAttrs, TorchBatchNormalizationArgs } from './layers/batch_norm.js';
export { convOutputSize } from './layers/common.js';
export type { ConvPadding } from './layers/common.js';
export { ZeroPadShortcut, subsample, ZERO_PAD_SHORTCUT_KERNEL } from './layers/zero_pad_shortcut.js';
export type { ZeroPadShortcutArgs, ZeroPadShortcutAttrs } from './layers/zero_pad_shortcut.js';
export { SeededDropout, DropPath } from './layers/dropout.js';
export { ADD_RELU_INFERENCE_KERNEL, ResidualAdd } from './layers/residual_add.js';
export type { ResidualAddActivation, ResidualAddArgs } from './layers/residual_add.js';
export { foldBatchNorm } from './fold.js';
export type { FoldReport } from './fold.js';
export type { StochasticLayerArgs } from './layers/dropout.js';
export { registerCustomLayers, CUSTOM_LAYER_CLASSES } from './layers/index.js';
export {
  NetworkGraph,
  buildLayersModel,
  planParams,
  planMultiplyAdds,
  planLayerTable,
  nodeParams,
  nodeMultiplyAdds,
  nodeTypeName,
  BATCH_NORM_MOMENTUM,
  BATCH_NORM_EPSILON,
  CONV_INITS,
  torchPadding,
} from './graph.js';
export type {
  NetworkNode,
  InputNode,
  ConvNode,
  BatchNormNode,
  ReluNode,
  AddNode,
  DropoutNode,
  DropPathNode,
  ZeroPadShortcutNode,
  MaxPoolNode,
  GlobalAvgPoolNode,
  DenseNode,
  Tap,
  ExampleShape,
  LayerRow,
  ConvInit,
  BuildLayersModelOptions,
} from './graph.js';
export {
  residualBlock,
  basicBlockSpec,
  bottleneckBlockSpec,
  wrnBlockSpec,
  BLOCK_ORDERS,
  SHORTCUT_TYPES,
} from './blocks.js';
export type { ResidualBlockSpec, BlockOrder, ShortcutType } from './blocks.js';
