import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import {
  type DatasetSpec,
  type DownloadProgress,
} from '@wrn/datasets';
import { DATA_DIR_ENV, DATASETS, DownloadError, datasetStats, defaultCacheRoot, downloadDataset, getDataset } from '@wrn/datasets/node';
import type { CommandContext } from '../context.js';
import { resolveDataDir } from '../data.js';
import { asUsageError, RunFailedError } from '../errors.js';
import { choiceFlag, examples, numberFlag } from '../flags.js';
import { formatTable, writeLine } from '../io.js';
import { abortOnSignals, SIGNAL_EXIT_CODES } from '../signals.js';
import { DATASET_NAMES, type DatasetName } from '../train-config.js';

/** The registry's spec with every file fetched from `mirror` (a base URL) instead of its official host. */
function fromMirror(spec: DatasetSpec, mirror: string | undefined): DatasetSpec {
  if (!mirror) return spec;
  const base = mirror.endsWith('/') ? mirror : `${mirror}/`;
  return { ...spec, files: spec.files.map((file) => ({ ...file, url: `${base}${file.fileName}` })) };
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

export function registerDatasets(program: Command, context: CommandContext): void {
  const datasets = program
    .command('datasets')
    .description('list, download and summarise the datasets (CIFAR-10, CIFAR-100, SVHN)')
    .addHelpText(
      'after',
      examples([
        'wrn datasets list',
        'wrn datasets download cifar10                 # into ~/.cache/wrn/datasets/cifar10 (or $WRN_DATA_DIR/cifar10)',
        'wrn datasets download svhn --splits train,test,extra --dir /data/svhn',
        'wrn datasets stats cifar10 --data-dir ../shared/data/cifar10-subset --json',
      ]),
    );

  datasets
    .command('list')
    .description('the datasets, their files and where they are cached')
    .option('--json', 'print one JSON array')
    .addHelpText('after', examples(['wrn datasets list', 'wrn datasets list --json']))
    .action((flags: { json?: boolean }) => {
      const specs = Object.values(DATASETS);
      if (flags.json) {
        writeLine(
          context.io.stdout,
          JSON.stringify(specs.map((s) => ({ name: s.name, title: s.title, numClasses: s.numClasses, splits: s.splits, files: s.files.map((f) => f.url) }))),
        );
        return;
      }
      const rows = specs.map((s) => [s.name, s.title, String(s.numClasses), s.splits.join(', '), s.files.every((f) => f.bytes) ? mib(s.files.reduce((a, f) => a + (f.bytes ?? 0), 0)) : '?']);
      writeLine(context.io.stdout, formatTable(['name', 'title', 'classes', 'splits', 'download'], rows));
      writeLine(context.io.stdout, `\ncache: ${defaultCacheRoot(context.io.env)} (set ${DATA_DIR_ENV} to move it)`);
    });

  datasets
    .command('download')
    .description('download the official archives, verify their MD5, unpack; resumes an interrupted download')
    .argument('<name>', DATASET_NAMES.join(' | '), choiceFlag(DATASET_NAMES))
    .option('--dir <dir>', `where to put it (default: $${DATA_DIR_ENV}/<name> or ~/.cache/wrn/datasets/<name>)`)
    .option('--splits <list>', 'comma-separated splits (default: train,test; SVHN extra only when asked)')
    .option('--mirror <base-url>', 'fetch the files from this base URL (a local mirror) instead of the official hosts')
    .option('--stall-timeout <seconds>', 'give up on a transfer after this long without a byte (then retry or keep the part)', numberFlag(0, Infinity, { exclusiveMin: true }), 30)
    .option('-q, --quiet', 'print only the result')
    .option('--json', 'print the result as one JSON object')
    .addHelpText(
      'after',
      examples([
        'wrn datasets download cifar10',
        'wrn datasets download cifar100 --dir /data/cifar100',
        'wrn datasets download svhn --splits train,test,extra',
        'WRN_DATA_DIR=/data wrn datasets download cifar10 --mirror http://mirror.lan/datasets/',
      ]),
    )
    .addHelpText('after', '\nWithout network it fails with the URL and MD5 to fetch by hand and where to put the file.\n')
    .action(async (name: DatasetName, flags: { dir?: string; splits?: string; mirror?: string; stallTimeout: number; quiet?: boolean; json?: boolean }) => {
      const spec = fromMirror(getDataset(name), flags.mirror ?? context.io.env.WRN_DATASET_MIRROR);
      const splits = flags.splits?.split(',').map((s) => s.trim()).filter(Boolean);
      for (const split of splits ?? []) {
        if (!spec.splits.includes(split)) {
          await asUsageError('--splits', () => {
            throw new Error(`${JSON.stringify(split)} is not a split of ${name}; allowed: ${spec.splits.join(', ')}`);
          });
        }
      }
      const tty = Boolean(context.io.stderr.isTTY) && !flags.quiet && !flags.json;
      const plain = !tty && !flags.quiet && !flags.json;
      let bar: cliProgress.SingleBar | undefined;
      let lastPlain = 0;
      const onProgress = (p: DownloadProgress) => {
        if (p.phase === 'download') {
          if (tty) {
            if (!bar) {
              bar = new cliProgress.SingleBar(
                { stream: context.io.stderr, format: `${p.fileName} [{bar}] {percentage}% | {got} of {size} | ETA {eta_formatted}`, barsize: 30, hideCursor: true },
                cliProgress.Presets.shades_classic,
              );
              bar.start(p.totalBytes ?? 1, 0, { got: mib(0), size: p.totalBytes ? mib(p.totalBytes) : '?' });
            }
            bar.update(p.receivedBytes, { got: mib(p.receivedBytes) });
          } else if (plain && Date.now() - lastPlain > 5000) {
            lastPlain = Date.now();
            writeLine(context.io.stderr, `${p.fileName}: ${mib(p.receivedBytes)}${p.totalBytes ? ` of ${mib(p.totalBytes)}` : ''}${p.resumed ? ' (resumed)' : ''}`);
          }
        } else {
          bar?.stop();
          bar = undefined;
          if (tty || plain) writeLine(context.io.stderr, `${p.fileName}: ${p.phase}`);
        }
      };
      const interrupt = abortOnSignals(context.io, 'the download');
      let result;
      try {
        result = await downloadDataset(spec, { dir: flags.dir, ...(splits ? { splits } : {}), onProgress, signal: interrupt.signal, stallTimeoutMs: flags.stallTimeout * 1000 });
      } catch (error) {
        bar?.stop();
        const signal = interrupt.received();
        if (signal) throw new RunFailedError(`download interrupted by ${signal}; the partial file is kept: run the command again to resume`, { cause: error, exitCode: SIGNAL_EXIT_CODES[signal] });
        if (error instanceof DownloadError) throw new RunFailedError(error.message, { cause: error });
        throw error;
      } finally {
        interrupt.dispose();
      }
      if (flags.json) writeLine(context.io.stdout, JSON.stringify(result));
      else {
        const fetched = result.files.length > 0 ? `fetched ${result.files.join(', ')}` : 'nothing to fetch';
        const present = result.alreadyPresent.length > 0 ? `; already present: ${result.alreadyPresent.join(', ')}` : '';
        writeLine(context.io.stdout, `${name} in ${result.dir}: ${fetched}${present}`);
        writeLine(context.io.stdout, `train with: wrn train --dataset ${name} --data-dir ${result.dir}`);
      }
    });

  datasets
    .command('stats')
    .description('split sizes, per-class counts, per-channel mean and std (0..255) of a dataset folder')
    .argument('<name>', DATASET_NAMES.join(' | '), choiceFlag(DATASET_NAMES))
    .option('-d, --data-dir <dir>', 'the dataset folder (default: cifar10: the embedded sample; others: the download cache)')
    .option('--json', 'print one JSON object')
    .addHelpText(
      'after',
      examples(['wrn datasets stats cifar10', 'wrn datasets stats cifar10 --data-dir ../shared/data/cifar10-subset --json']),
    )
    .action(async (name: DatasetName, flags: { dataDir?: string; json?: boolean }) => {
      const { dir } = resolveDataDir(name, flags.dataDir, context.io.env);
      const stats = await asUsageError(`--data-dir ${dir}`, () => datasetStats(name, dir));
      if (flags.json) {
        writeLine(context.io.stdout, JSON.stringify(stats));
        return;
      }
      const out = context.io.stdout;
      writeLine(out, `${name} in ${stats.dir}: ${stats.numClasses} classes${stats.missingSplits.length ? `; missing splits: ${stats.missingSplits.join(', ')}` : ''}`);
      for (const [split, s] of Object.entries(stats.splits)) {
        writeLine(out, '');
        writeLine(out, `${split}: ${s.size.toLocaleString('en-US')} images, mean (${s.mean.map((m) => m.toFixed(3)).join(', ')}), std (${s.std.map((v) => v.toFixed(3)).join(', ')})`);
        for (const note of s.notes) writeLine(out, `  note: ${note}`);
        const shown = stats.classNames.length <= 20;
        if (shown) writeLine(out, formatTable(['label', 'class', 'images'], s.classCounts.map((c, i) => [String(i), stats.classNames[i] ?? String(i), String(c)])));
        else writeLine(out, `  per class: min ${Math.min(...s.classCounts)}, max ${Math.max(...s.classCounts)} (--json for all ${s.classCounts.length})`);
      }
    });
}
