import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { evaluate, outputKindOf } from '@wrn/training';
import { BACKEND_CHOICES } from '@wrn/backend/node';
import { CHECKPOINT_STATE_FILE, readCheckpointState } from '@wrn/training/node';
import { loadCheckpointModel, recordedClassNames, recordedNormalization, runContext } from '../checkpoint-model.js';
import type { CommandContext } from '../context.js';
import { batchSource, evalPipeline, firstImages, loadSplit, resolveDataDir, resolveNormalization } from '../data.js';
import { asUsageError, UsageError } from '../errors.js';
import { choiceFlag, examples, integerFlag } from '../flags.js';
import { formatTable, writeLine } from '../io.js';
import { DATASET_NAMES, NORMALIZATIONS, type DatasetName, type RunOptions } from '../train-config.js';
import { chooseBackend } from '../backend.js';

interface EvalFlags {
  checkpoint: string;
  dataset?: DatasetName;
  dataDir?: string;
  split: string;
  limit?: number;
  batchSize: number;
  normalize?: (typeof NORMALIZATIONS)[number];
  backend: string;
  json?: boolean;
}

const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(2)}%` : '-');

export function registerEval(program: Command, context: CommandContext): void {
  program
    .command('eval')
    .description('evaluate a checkpoint: loss, top-1/top-5 error, per-class accuracy')
    .requiredOption('--checkpoint <path>', 'a checkpoint directory, or a run directory (uses checkpoints/best)')
    .option('--dataset <name>', `${DATASET_NAMES.join(' | ')} (default: the run's)`, choiceFlag(DATASET_NAMES))
    .option('-d, --data-dir <dir>', "the dataset's folder (default: the run's)")
    .option('--split <name>', 'split to evaluate: test, train (svhn: extra)', 'test')
    .option('--limit <n>', 'evaluate the first N images only', integerFlag(1))
    .option('-b, --batch-size <n>', 'images per evaluation batch', integerFlag(1), 200)
    .option('--normalize <kind>', `${NORMALIZATIONS.join(' | ')} (default: what the run trained with)`, choiceFlag(NORMALIZATIONS))
    .option('--backend <name>', BACKEND_CHOICES.join(' | '), choiceFlag(BACKEND_CHOICES), 'auto')
    .option('--json', 'print one JSON object')
    .addHelpText(
      'after',
      examples([
        'wrn eval --checkpoint runs/wrn-16-2-cifar10-20261123-081500',
        'wrn eval --checkpoint runs/wrn-16-2-cifar10-20261123-081500/checkpoints/last --data-dir ../shared/data/cifar10-subset --json',
      ]),
    )
    .action(async (flags: EvalFlags) => {
      await chooseBackend(flags.backend);
      const { model, dir, runConfig } = await loadCheckpointModel(flags.checkpoint, { foldBatchNorm: true });
      try {
        const run = runContext(runConfig);
        const dataset = (flags.dataset ?? run.dataset ?? 'cifar10') as DatasetName;
        const sameData = dataset === (run.dataset ?? dataset) && !flags.dataDir;
        const { dir: dataDir } = resolveDataDir(dataset, flags.dataDir ?? (run.dataDir as string | undefined));
        const images = firstImages(await loadSplit(dataset, dataDir, flags.split), flags.limit);
        let normalization = flags.normalize === undefined && sameData ? recordedNormalization(runConfig) : undefined;
        if (!normalization) {
          const kind = (flags.normalize ?? run.normalization ?? 'paper') as RunOptions['normalization'];
          // "dataset" statistics are those of the training split, as in training.
          const train = kind === 'dataset' ? await loadSplit(dataset, dataDir, 'train') : images;
          normalization = resolveNormalization({ normalization: kind, dataset }, train);
        }
        const outputs = model.outputs[0]?.shape;
        const numClasses = outputs?.[outputs.length - 1] ?? images.numClasses;
        if (numClasses !== images.numClasses) {
          throw new UsageError(`--checkpoint ${flags.checkpoint} predicts ${numClasses} classes, but ${dataset} has ${images.numClasses}`);
        }
        const pipeline = evalPipeline(images, normalization, flags.batchSize);
        const result = await evaluate(model, batchSource(pipeline, images), { numClasses, outputKind: outputKindOf(model) });
        const classNames = recordedClassNames(runConfig) ?? [...images.classNames];
        // A checkpoint of a run holds state.json, read through its schema and format check; a converted model has none.
        const state: { epoch?: number } = existsSync(join(dir, CHECKPOINT_STATE_FILE))
          ? await asUsageError(`--checkpoint ${flags.checkpoint}`, () => readCheckpointState(dir))
          : {};
        const counts = result.confusionMatrix.map((row) => row.reduce((a, b) => a + b, 0));
        if (flags.json) {
          writeLine(
            context.io.stdout,
            JSON.stringify({
              checkpoint: dir,
              epoch: state.epoch ?? null,
              model: runConfig?.model ?? null,
              dataset,
              dataDir,
              split: images.split,
              examples: result.examples,
              loss: result.loss,
              top1Error: result.top1Error,
              top5Error: result.top5Error,
              accuracy: 1 - result.top1Error,
              classNames,
              perClassAccuracy: result.perClassAccuracy.map((a) => (Number.isFinite(a) ? a : null)),
              confusionMatrix: result.confusionMatrix,
            }),
          );
          return;
        }
        const out = context.io.stdout;
        writeLine(out, `${dir}${state.epoch !== undefined ? ` (epoch ${state.epoch})` : ''}: ${String(runConfig?.model ?? 'model')} on ${dataset} ${images.split}, ${result.examples} images`);
        writeLine(out, `loss ${result.loss.toFixed(4)} | top-1 error ${pct(result.top1Error)} | top-5 error ${pct(result.top5Error)} | accuracy ${pct(1 - result.top1Error)}`);
        writeLine(out, '');
        writeLine(
          out,
          formatTable(
            ['class', 'accuracy', 'images'],
            classNames.map((name, i) => [name, pct(result.perClassAccuracy[i] ?? Number.NaN), String(counts[i] ?? 0)]),
          ),
        );
      } finally {
        model.dispose();
      }
    });
}
