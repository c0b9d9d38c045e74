import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import {
  buildModel, countParams, detectTorchSource, importTorchWeights, readTorchStateDict, resolveModelConfig, TORCH_SOURCES,
  TorchWeightsError, type BuildModelOptions, type TorchSource, type TorchStateDict,
} from '@wrn/architectures';
import { fileSystemIO, WEIGHTS_FILE } from '@wrn/blocks/node';
import { PAPER_NORMALIZATION, type Normalization } from '@wrn/datasets';
import { getDataset } from '@wrn/datasets/node';
import { BACKEND_CHOICES } from '@wrn/backend/node';
import type { CommandContext } from '../context.js';
import { asUsageError, errorMessage, RunFailedError, UsageError } from '../errors.js';
import { choiceFlag, examples, integerFlag } from '../flags.js';
import { formatCount, writeLine } from '../io.js';
import { DATASET_NAMES, type DatasetName } from '../train-config.js';
import { chooseBackend } from '../backend.js';

const SOURCE_CHOICES = ['auto', ...TORCH_SOURCES] as const;

/**
 * The input normalisation each source's own training code used, in 0..255 units: torchvision's (and timm's
 * default) ImageNet statistics, which akamaster's CIFAR trainer also uses; the WRN code's CIFAR constants.
 */
const IMAGENET_NORMALIZATION: Normalization = { kind: 'meanStd', mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375] };
const SOURCE_NORMALIZATION: Readonly<Record<TorchSource, Normalization>> = {
  torchvision: IMAGENET_NORMALIZATION,
  timm: IMAGENET_NORMALIZATION,
  akamaster: IMAGENET_NORMALIZATION,
  'wrn-official': PAPER_NORMALIZATION.cifar10,
};

/** The key of each source's final linear weight, whose first axis is the number of classes. */
const HEAD_WEIGHT: Readonly<Record<TorchSource, string>> = {
  torchvision: 'fc.weight', timm: 'fc.weight', 'wrn-official': 'fc.weight', akamaster: 'linear.weight',
};

interface ConvertFlags {
  model: string;
  out: string;
  numClasses?: number;
  source: (typeof SOURCE_CHOICES)[number];
  input?: string;
  key?: string;
  dataset?: DatasetName;
  backend: string;
}

export function registerConvert(program: Command, context: CommandContext): void {
  program
    .command('convert')
    .description('convert PyTorch weights (.pth from torch.save, or .safetensors) into a TF.js model directory')
    .argument('<file>', 'a state_dict saved by torch.save (.pth/.pt, zip format) or a .safetensors file')
    .requiredOption('--model <name>', 'the @wrn model the weights are for, e.g. resnet50, resnext50-32x4d, wrn-50-2, wrn-28-10, resnet20')
    .requiredOption('--out <dir>', 'directory to write model.json and weights.bin into (created if missing)')
    .option('--num-classes <n>', "classes of the final layer (default: read from the state_dict's fc/linear weight)", integerFlag(1))
    .option('--source <name>', `whose parameter names the file uses: ${SOURCE_CHOICES.join(' | ')}`, choiceFlag(SOURCE_CHOICES), 'auto')
    .option('--input <HxW>', "input height x width of the converted model (default: the model's dataset size, 32x32 or 224x224)")
    .option('--key <path>', "dotted key of the state_dict inside a checkpoint that holds several (e.g. 'model_ema')")
    .option('--dataset <name>', `the dataset whose class names \`wrn predict\` shows and \`wrn eval\` uses: ${DATASET_NAMES.join(' | ')} (default: cifar10 or cifar100 by the classes of a CIFAR model)`, choiceFlag(DATASET_NAMES))
    .option('--backend <name>', BACKEND_CHOICES.join(' | '), choiceFlag(BACKEND_CHOICES), 'auto')
    .addHelpText(
      'after',
      `${examples([
        'wrn convert resnet50.pth --model resnet50 --out models/resnet50             # torchvision weights',
        'wrn convert model.pt7 --model wrn-28-10 --out models/wrn-28-10 --source wrn-official',
        'wrn convert resnet20.th --model resnet20 --out models/resnet20              # akamaster/pytorch_resnet_cifar10',
        'wrn predict --checkpoint models/resnet50 cat.jpg',
      ])}
The directory is a standard TF.js layers model: tf.loadLayersModel (with registerCustomLayers() from @wrn/blocks),
\`wrn predict --checkpoint DIR\` and \`wrn eval --checkpoint DIR\` load it. It records the input normalisation the
source's training code used (ImageNet mean/std for torchvision, timm and akamaster; the WRN code's CIFAR constants).
`,
    )
    .action(async (file: string, flags: ConvertFlags) => {
      let bytes: Uint8Array;
      try {
        const buffer = readFileSync(file);
        bytes = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
      } catch (error) {
        throw new UsageError(`${file}: cannot read (${(error as NodeJS.ErrnoException).code ?? errorMessage(error)})`);
      }
      const dict = await torchInput(() => readTorchStateDict(bytes, { file, ...(flags.key === undefined ? {} : { key: flags.key }) }));
      const source: TorchSource = flags.source === 'auto' ? await torchInput(() => detectTorchSource(dict.tensors.keys(), file)) : flags.source;
      const numClasses = flags.numClasses ?? headClasses(dict, source, file);
      const options: BuildModelOptions = { numClasses };
      if (flags.input !== undefined) {
        const match = /^(\d+)x(\d+)$/.exec(flags.input);
        if (!match || Number(match[1]) < 1 || Number(match[2]) < 1) throw new UsageError(`--input ${JSON.stringify(flags.input)}: expected HEIGHTxWIDTH such as 64x64`);
        options.inputShape = [Number(match[1]), Number(match[2]), 3];
      }
      const config = await asUsageError(`--model ${flags.model}`, () => resolveModelConfig(flags.model, options));
      const dataset = flags.dataset ?? (config.dataset === 'cifar' ? (numClasses === 100 ? 'cifar100' : 'cifar10') : undefined);
      const classNames = dataset !== undefined && getDataset(dataset).numClasses === numClasses ? [...getDataset(dataset).classNames] : [];
      await chooseBackend(flags.backend);
      const model = buildModel(flags.model, options);
      try {
        const report = await torchInput(() => importTorchWeights(model, dict, { source, file }));
        const normalization = SOURCE_NORMALIZATION[source];
        // What `wrn predict` and `wrn eval` read from a run's config.json, carried in model.json itself (it
        // travels with the model, into a browser too): the dataset, the normalisation and the class names.
        model.setUserDefinedMetadata({
          ...(model.getUserDefinedMetadata() ?? {}),
          wrnRunConfig: {
            model: config.name,
            convertedFrom: { file, format: report.format, source, foundAt: report.foundAt, dtypes: report.dtypes },
            context: { ...(dataset === undefined ? {} : { dataset }), resolved: { normalization, classNames } },
          },
        });
        try {
          await model.save(fileSystemIO(flags.out));
        } catch (error) {
          throw new RunFailedError(`--out ${flags.out}: cannot write the model: ${errorMessage(error)}`, { cause: error });
        }
        const out = context.io.stdout;
        const dtypes = Object.entries(report.dtypes).map(([dtype, count]) => `${count} ${dtype}`).join(', ');
        writeLine(out, `${file}: ${report.format} state_dict${report.foundAt ? ` (under '${report.foundAt}')` : ''} with ${source} names: ${report.tensorsLoaded} tensors (${dtypes}), ${formatCount(report.valuesLoaded)} values${report.ignored.length > 0 ? `; ignored ${report.ignored.length} num_batches_tracked` : ''}`);
        writeLine(out, `${config.name}: ${formatCount(countParams(model))} parameters, ${numClasses} classes, input ${config.inputShape.join('x')}`);
        writeLine(out, `wrote ${join(flags.out, 'model.json')} and ${join(flags.out, WEIGHTS_FILE)} (${formatCount(statSync(join(flags.out, WEIGHTS_FILE)).size)} bytes)`);
        writeLine(out, `input normalisation recorded for predict/eval: ${describeNormalization(normalization)}${dataset === undefined ? '' : `; dataset ${dataset}`}`);
      } finally {
        model.dispose();
      }
    });
}

function describeNormalization(normalization: Normalization): string {
  if (normalization.kind !== 'meanStd') return normalization.kind;
  return `mean (${normalization.mean.join(', ')}) std (${normalization.std.join(', ')}) in 0..255 units`;
}

function headClasses(dict: TorchStateDict, source: TorchSource, file: string): number {
  const head = dict.tensors.get(HEAD_WEIGHT[source]);
  const classes = head?.shape[0];
  if (head === undefined || head.shape.length !== 2 || classes === undefined || classes < 1) {
    throw new UsageError(`${file}: no ${HEAD_WEIGHT[source]} [classes, features] tensor to read the number of classes from; give --num-classes`);
  }
  return classes;
}

/** A bad checkpoint is bad input: its TorchWeightsError (format, keys, shapes, dtypes) exits 2 with its message. */
async function torchInput<T>(step: () => T | Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    if (error instanceof TorchWeightsError) throw new UsageError(error.message, { cause: error });
    throw error;
  }
}
