import { tensor, type Tensor } from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { TorchKeyMismatchError, TorchShapeMismatchError, TorchWeightsError } from './errors.js';
import { readTorchStateDict, type StateDictTensor, type TorchStateDict } from './state-dict.js';

/**
 * Whose parameter names a state_dict uses:
 * - `torchvision`: torchvision.models resnet18..152, resnext50_32x4d, resnext101_32x8d, wide_resnet50_2/101_2
 *   (`conv1`, `bn1`, `layer1.0.conv1.weight`, `layer2.0.downsample.0.weight`, `fc.weight`).
 * - `timm`: timm's resnet/resnext/wide_resnet, which use torchvision's names.
 * - `wrn-official`: the WRN authors' PyTorch code (szagoruyko/wide-residual-networks, pytorch/resnet.py), a flat
 *   dict: `conv0`, `group0.block0.bn0.weight`, `group0.block0.conv0`, `group1.block0.convdim`, `bn.*`, `fc.*`.
 * - `akamaster`: akamaster/pytorch_resnet_cifar10's CIFAR ResNets (`conv1`, `layer1.0.conv1.weight`, `linear.*`;
 *   option A shortcuts have no weights, option B ones are `shortcut.0` / `shortcut.1`).
 */
export const TORCH_SOURCES = ['torchvision', 'timm', 'wrn-official', 'akamaster'] as const;
export type TorchSource = (typeof TORCH_SOURCES)[number];

export interface ImportTorchWeightsOptions {
  /** Whose names the state_dict uses; 'auto' (the default) tells them by the keys. */
  source?: TorchSource | 'auto';
  /** The file's name, for error messages. */
  file?: string;
  /** Dotted key path of the state_dict inside a .pth that holds several (see {@link readTorchStateDict}). */
  key?: string;
}

/** What {@link importTorchWeights} did. */
export interface ImportTorchWeightsReport {
  source: TorchSource;
  format: TorchStateDict['format'];
  foundAt: string;
  strippedPrefix: string;
  /** State_dict tensors copied into the model. */
  tensorsLoaded: number;
  /** Parameters copied (elements). */
  valuesLoaded: number;
  /** Keys deliberately not used (BatchNorm's num_batches_tracked counters). */
  ignored: string[];
  /** dtype -> tensors of it that were converted. */
  dtypes: Record<string, number>;
}

interface LayerNames {
  /** The key prefix of a layer (e.g. 'layer1.0.conv1'), or undefined when the source has no such layer. */
  prefix(layer: string): string | undefined;
  /** Whether a conv's kernel is stored under `${prefix}.weight` (all but the WRN code, which stores it at `${prefix}`). */
  convSuffix: string;
}

const BLOCK_LAYER = /^stage(\d+)_block(\d+)_(conv|bn)(\d+)$/;
const SHORTCUT_LAYER = /^stage(\d+)_block(\d+)_shortcut_(conv|bn)$/;

function resnetNames(shortcut: [string, string], head: string): LayerNames {
  return {
    convSuffix: '.weight',
    prefix(layer) {
      if (layer === 'stem_conv') return 'conv1';
      if (layer === 'stem_bn') return 'bn1';
      if (layer === 'logits') return head;
      let m = BLOCK_LAYER.exec(layer);
      if (m) return `layer${m[1]}.${Number(m[2]) - 1}.${m[3]}${m[4]}`;
      m = SHORTCUT_LAYER.exec(layer);
      if (m) return `layer${m[1]}.${Number(m[2]) - 1}.${m[3] === 'conv' ? shortcut[0] : shortcut[1]}`;
      return undefined;
    },
  };
}

const WRN_OFFICIAL_NAMES: LayerNames = {
  convSuffix: '',
  prefix(layer) {
    if (layer === 'stem_conv') return 'conv0';
    if (layer === 'head_bn') return 'bn';
    if (layer === 'logits') return 'fc';
    let m = BLOCK_LAYER.exec(layer);
    if (m) return `group${Number(m[1]) - 1}.block${Number(m[2]) - 1}.${m[3]}${Number(m[4]) - 1}`;
    m = SHORTCUT_LAYER.exec(layer);
    if (m && m[3] === 'conv') return `group${Number(m[1]) - 1}.block${Number(m[2]) - 1}.convdim`;
    return undefined;
  },
};

const NAMES: Readonly<Record<TorchSource, LayerNames>> = {
  torchvision: resnetNames(['downsample.0', 'downsample.1'], 'fc'),
  timm: resnetNames(['downsample.0', 'downsample.1'], 'fc'),
  'wrn-official': WRN_OFFICIAL_NAMES,
  akamaster: resnetNames(['shortcut.0', 'shortcut.1'], 'linear'),
};

/** Tells the source of a state_dict by its keys; throws naming a few keys when none fits. */
export function detectTorchSource(keys: Iterable<string>, file?: string): TorchSource {
  const names = [...keys];
  const has = (key: string) => names.includes(key);
  if (has('conv0') || names.some((name) => name.startsWith('group0.block0.'))) return 'wrn-official';
  if (has('linear.weight') && has('conv1.weight')) return 'akamaster';
  if (has('fc.weight') && has('conv1.weight')) return 'torchvision';
  throw new TorchWeightsError(
    `cannot tell whose names the state_dict uses (keys: ${names.slice(0, 8).join(', ')}${names.length > 8 ? ', ...' : ''}); give the source: ${TORCH_SOURCES.join(', ')}`,
    file,
  );
}

type Role = 'kernel' | 'bias' | 'gamma' | 'beta' | 'moving_mean' | 'moving_variance';

/**
 * akamaster's option A shortcut pads a stage's new channels on both sides (planes//4 before and after the
 * input's, resnet.py's LambdaLayer); @wrn's ZeroPadShortcut appends them (as fb.resnet.torch). The two networks
 * are the same function up to a relabelling of each stage's channels: @wrn's channel j of a C-channel feature
 * map is akamaster's channel akamasterChannel(C, j), recursively down to the first stage's `base` channels.
 */
export function akamasterChannel(channels: number, j: number, base: number): number {
  if (channels <= base) return j;
  const half = channels / 2;
  const quarter = channels / 4;
  if (j < half) return quarter + akamasterChannel(half, j, base);
  return j < half + quarter ? j - half : j;
}

const BN_KEYS: Readonly<Record<string, string>> = {
  gamma: 'weight', beta: 'bias', moving_mean: 'running_mean', moving_variance: 'running_var',
};

interface PlannedWeight {
  layer: string;
  key: string;
  /** Our shape (HWIO for conv kernels, [in, out] for dense). */
  shape: number[];
  /** PyTorch's shape of the same tensor (OIHW, [out, in]). */
  torchShape: number[];
  transpose: 'conv' | 'dense' | 'none';
}

function planWeights(model: LayersModel, names: LayerNames, source: TorchSource, file: string | undefined): { layers: { layer: LayersModel['layers'][number]; weights: PlannedWeight[] }[] } {
  const layers: { layer: LayersModel['layers'][number]; weights: PlannedWeight[] }[] = [];
  for (const layer of model.layers) {
    if (layer.weights.length === 0) continue;
    const prefix = names.prefix(layer.name);
    if (prefix === undefined) {
      throw new TorchWeightsError(`layer '${layer.name}' of ${model.name} has no counterpart in ${source}'s names; is ${model.name} a model ${source} defines?`, file);
    }
    const weights = layer.weights.map((weight): PlannedWeight => {
      const role = weight.originalName.slice(weight.originalName.lastIndexOf('/') + 1) as Role;
      const shape = [...weight.shape] as number[];
      if (role === 'kernel' && shape.length === 4) {
        const [h, w, i, o] = shape as [number, number, number, number];
        return { layer: layer.name, key: `${prefix}${names.convSuffix}`, shape, torchShape: [o, i, h, w], transpose: 'conv' };
      }
      if (role === 'kernel' && shape.length === 2) {
        return { layer: layer.name, key: `${prefix}.weight`, shape, torchShape: [shape[1] as number, shape[0] as number], transpose: 'dense' };
      }
      if (role === 'bias') return { layer: layer.name, key: `${prefix}.bias`, shape, torchShape: shape, transpose: 'none' };
      const bn = BN_KEYS[role];
      if (bn !== undefined) return { layer: layer.name, key: `${prefix}.${bn}`, shape, torchShape: shape, transpose: 'none' };
      throw new TorchWeightsError(`weight '${weight.originalName}' of layer '${layer.name}' has no PyTorch counterpart`, file);
    });
    layers.push({ layer, weights });
  }
  return { layers };
}

/** Maps one of our channel indices to the source's, in a feature map of `channels` channels. */
type Relabel = (channels: number, j: number) => number;
const SAME: Relabel = (_channels, j) => j;

/** OIHW -> HWIO (torch conv weight to a TF.js kernel; grouped convs too: [O, I/G, H, W] -> [H, W, I/G, O]). */
function oihwToHwio(values: Float32Array, shape: readonly number[], relabel: Relabel): Float32Array {
  const [o, i, h, w] = shape as [number, number, number, number];
  const out = new Float32Array(values.length);
  for (let oo = 0; oo < o; oo++) {
    const from = relabel(o, oo);
    for (let ii = 0; ii < i; ii++) {
      const fromIn = relabel(i, ii);
      for (let hh = 0; hh < h; hh++) {
        for (let ww = 0; ww < w; ww++) out[((hh * w + ww) * i + ii) * o + oo] = values[((from * i + fromIn) * h + hh) * w + ww] as number;
      }
    }
  }
  return out;
}

/** Linear [out, in] -> [in, out]; the input features are channels (relabelled), the outputs classes. */
function transpose2d(values: Float32Array, rows: number, columns: number, relabel: Relabel): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < columns; c++) out[c * rows + r] = values[r * columns + relabel(columns, c)] as number;
  return out;
}

/**
 * Copies the weights of a PyTorch state_dict (`.safetensors` or torch.save `.pth` bytes, or one already read
 * with {@link readTorchStateDict}) into a model built by this package (`buildModel('resnet50')`, ...): conv
 * weights OIHW -> HWIO (grouped convs included), linear weights [out, in] -> [in, out], BatchNorm weight, bias,
 * running_mean and running_var; `num_batches_tracked` is ignored; float16 and bfloat16 widen to float32.
 * Everything is checked before anything is written, so on an error the model keeps its weights: the error is a
 * {@link TorchKeyMismatchError} (missing and unexpected keys listed), {@link TorchShapeMismatchError} (name,
 * expected, got), TorchDtypeError, TorchFormatError (corrupt bytes, with the byte offset) or NotAStateDictError.
 */
export async function importTorchWeights(
  model: LayersModel, checkpoint: Uint8Array | TorchStateDict, options: ImportTorchWeightsOptions = {},
): Promise<ImportTorchWeightsReport> {
  const { file } = options;
  const dict = checkpoint instanceof Uint8Array
    ? await readTorchStateDict(checkpoint, { ...(file === undefined ? {} : { file }), ...(options.key === undefined ? {} : { key: options.key }) })
    : checkpoint;
  const requested = options.source ?? 'auto';
  if (requested !== 'auto' && !TORCH_SOURCES.includes(requested)) {
    throw new TorchWeightsError(`source must be one of auto, ${TORCH_SOURCES.join(', ')}; got '${String(requested)}'`, file);
  }
  const source = requested === 'auto' ? detectTorchSource(dict.tensors.keys(), file) : requested;
  const { layers } = planWeights(model, NAMES[source], source, file);

  const planned = layers.flatMap(({ weights }) => weights);
  const expected = new Set(planned.map((weight) => weight.key));
  const ignored = [...dict.tensors.keys()].filter((key) => !expected.has(key) && key.endsWith('.num_batches_tracked'));
  const missing = planned.filter((weight) => !dict.tensors.has(weight.key)).map((weight) => weight.key);
  const unexpected = [...dict.tensors.keys()].filter((key) => !expected.has(key) && !key.endsWith('.num_batches_tracked'));
  if (missing.length > 0 || unexpected.length > 0) throw new TorchKeyMismatchError(source, model.name, missing, unexpected, file);

  for (const weight of planned) {
    const found = dict.tensors.get(weight.key) as StateDictTensor;
    if (found.shape.length !== weight.torchShape.length || found.shape.some((d, i) => d !== weight.torchShape[i])) {
      throw new TorchShapeMismatchError(weight.key, weight.layer, weight.torchShape, found.shape, file);
    }
  }
  // akamaster's option A relabels channels (see akamasterChannel); with projection shortcuts nothing moves.
  const stem = model.layers.find((layer) => layer.name === 'stem_conv')?.weights[0]?.shape;
  const relabel: Relabel = source === 'akamaster' && model.layers.some((layer) => layer.name.endsWith('_shortcut_pad'))
    ? (channels, j) => akamasterChannel(channels, j, (stem?.[3] as number | undefined) ?? channels)
    : SAME;
  const dtypes: Record<string, number> = {};
  const converted = layers.map(({ layer, weights }) => ({
    layer,
    values: weights.map((weight) => {
      const found = dict.tensors.get(weight.key) as StateDictTensor;
      const values = found.toFloat32(weight.key);
      dtypes[found.dtype] = (dtypes[found.dtype] ?? 0) + 1;
      const ours = weight.transpose === 'conv' ? oihwToHwio(values, weight.torchShape, relabel)
        : weight.transpose === 'dense' ? transpose2d(values, weight.torchShape[0] as number, weight.torchShape[1] as number, relabel)
          : weight.layer === 'logits' || relabel === SAME ? values
            : Float32Array.from(values, (_, j) => values[relabel(values.length, j)] as number);
      return { ours, shape: weight.shape };
    }),
  }));
  let valuesLoaded = 0;
  for (const { layer, values } of converted) {
    const tensors: Tensor[] = values.map(({ ours, shape }) => tensor(ours, shape, 'float32'));
    try {
      layer.setWeights(tensors);
    } finally {
      for (const t of tensors) t.dispose();
    }
    valuesLoaded += values.reduce((total, { ours }) => total + ours.length, 0);
  }
  return {
    source, format: dict.format, foundAt: dict.foundAt, strippedPrefix: dict.strippedPrefix,
    tensorsLoaded: planned.length, valuesLoaded, ignored, dtypes,
  };
}
