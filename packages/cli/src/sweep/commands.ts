import type { Command } from 'commander';
import type { Queue } from 'bullmq';
import { cliVersion, type CommandContext } from '../context.js';
import { UsageError } from '../errors.js';
import { examples, integerFlag } from '../flags.js';
import { formatDuration, formatTable, writeLine } from '../io.js';
import { loadGridFile, loadGridPreset, type ExpandedGrid } from './grid.js';
import { manifestOf, sweepDir } from './layout.js';
import { runSweepHere } from './local.js';
import { GRID_PRESETS } from './presets.js';
import { openQueue, parseQueueUrl, submitSweep } from './queue.js';
import { chooseManifests, recordsFromQueue, recordsFromRunRoot, writeSweepReportFrom } from './records.js';
import type { SweepRunRecord } from './report.js';
import { runWorker } from './worker.js';

const DEFAULT_RUN_ROOT = 'runs';

function loadGrid(grid: string | undefined, preset: string | undefined): ExpandedGrid {
  if (grid && preset) throw new UsageError('give a grid file or --preset, not both (a grid file can start from a preset: `preset: NAME`)');
  if (preset) return loadGridPreset(preset);
  if (!grid) throw new UsageError('wrn sweep: give a grid file (GRID.yaml) or --preset NAME; `wrn sweep presets` lists the presets');
  return loadGridFile(grid);
}

async function withQueue<T>(url: string, use: (queue: Queue) => Promise<T>): Promise<T> {
  const queue = await openQueue(parseQueueUrl(url));
  try {
    return await use(queue);
  } finally {
    await queue.close().catch(() => undefined);
  }
}

const pct = (fraction: number | null) => (fraction === null ? '-' : `${(100 * fraction).toFixed(2)}%`);

function statusJson(name: string, records: SweepRunRecord[]) {
  const counts: Record<string, number> = {};
  for (const r of records) counts[r.state] = (counts[r.state] ?? 0) + 1;
  return {
    sweep: name,
    counts,
    runs: records.map((r) => ({
      id: r.id,
      state: r.state,
      worker: r.worker ?? null,
      epochsDone: r.summary.epochsDone,
      epoch: r.epoch ?? null,
      totalEpochs: r.summary.totalEpochs,
      etaSeconds: r.etaSeconds ?? null,
      testTop1Error: r.summary.testTop1Error,
      attemptsMade: r.attemptsMade ?? null,
      failure: r.summary.failure?.message ?? r.failedReason ?? null,
    })),
  };
}

function statusTable(records: SweepRunRecord[]): string {
  return formatTable(
    ['run', 'state', 'worker', 'epoch', 'top-1 err', 'ETA'],
    records.map((r) => [
      r.id,
      r.state,
      r.worker ?? '-',
      `${r.epoch ?? r.summary.epochsDone}/${r.summary.totalEpochs ?? '?'}`,
      pct(r.summary.testTop1Error),
      r.etaSeconds === undefined ? '-' : formatDuration(r.etaSeconds),
    ]),
  );
}

export function registerSweep(program: Command, context: CommandContext): void {
  const { io } = context;
  const sweep = program
    .command('sweep')
    .description('run a grid of training runs (a paper\'s table): here one at a time, or through a queue (BullMQ on Redis) to `wrn worker`s')
    .argument('[grid]', 'grid file (.yaml, .json): base (the keys of `wrn train --config`) and axes (key: [values])')
    .option('--preset <name>', `a paper's table as it is: ${GRID_PRESETS.map((p) => p.name).join(', ')}`)
    .option('--queue <url>', 'put the runs into this queue (redis://HOST:PORT[/DB]) instead of training them here')
    .option('--run-root <dir>', 'where the sweep\'s run directories go, <run-root>/<sweep>/<run id> (here only)', DEFAULT_RUN_ROOT)
    .option('--attempts <n>', 'queue: tries of a run failing with an error not its own (I/O, memory); bad config and divergence are never retried', integerFlag(1), 3)
    .option('--retry-failed', 'try the runs that failed before once more')
    .option('--dry-run', 'print the runs (id and config) and exit')
    .addHelpText(
      'after',
      `${examples([
        'wrn sweep grid.yaml                                   # here, one run at a time; run again to resume',
        'wrn sweep --preset wrn-widening --queue redis://10.0.0.5:6379',
        'wrn worker --queue redis://10.0.0.5:6379 --run-root /mnt/shared/runs   # on each machine',
        'wrn sweep status --queue redis://10.0.0.5:6379',
        'wrn sweep report --run-root /mnt/shared/runs',
      ])}
A grid:
  name: tiny                       # default: the file's name
  base: { dataset: cifar10, epochs: 1, trainLimit: 256, testLimit: 128, batchSize: 64 }
  axes: { model: [wrn-10-1, wrn-16-1], seed: [1, 2] }
  include: [ { model: wrn-16-2, seed: 1 } ]   # optional runs beyond the axes' product
A grid may start from a preset (preset: wrn-dropout) and override its base and axes (axes: { seed: [1] }).
Run ids are the axis values and a hash of the run's config: the same grid gives the same ids everywhere.
`,
    )
    .action(async (grid: string | undefined, flags: { preset?: string; queue?: string; runRoot: string; attempts: number; retryFailed?: boolean; dryRun?: boolean }) => {
      const expanded = loadGrid(grid, flags.preset);
      if (flags.dryRun) {
        for (const run of expanded.runs) writeLine(io.stdout, JSON.stringify({ id: run.id, axes: run.axes, config: run.values }));
        return;
      }
      if (flags.queue) {
        const address = parseQueueUrl(flags.queue);
        const manifest = manifestOf(expanded, cliVersion());
        const result = await withQueue(address.url, (queue) => submitSweep(queue, manifest, { attempts: flags.attempts, retryFailed: Boolean(flags.retryFailed) }));
        writeLine(
          io.stdout,
          `sweep ${expanded.name}: ${expanded.runs.length} runs; ${result.added} added to ${address.url}, ${result.alreadyQueued} there already` +
            `${result.retried ? `, ${result.retried} failed ones retried` : ''}`,
        );
        writeLine(io.stdout, `train them with: wrn worker --queue ${address.url} --run-root <shared dir>   (on every machine)`);
        return;
      }
      const command = `wrn sweep ${grid ?? `--preset ${flags.preset}`}${flags.runRoot !== DEFAULT_RUN_ROOT ? ` --run-root ${flags.runRoot}` : ''}`;
      await runSweepHere(expanded, flags.runRoot, context, { retryFailed: Boolean(flags.retryFailed), command });
    });

  /**
   * `wrn sweep status --queue URL`: commander gives an option the parent also declares (--queue, --run-root) to the
   * parent wherever it stands, so a subcommand takes the parent's value when the user set it there.
   */
  const shared = (sub: Command, name: 'queue' | 'runRoot'): string | undefined =>
    sub.getOptionValueSource(name) === 'cli' || sweep.getOptionValueSource(name) !== 'cli' ? (sub.opts()[name] as string | undefined) : (sweep.opts()[name] as string);

  const status = sweep
    .command('status')
    .description('each run\'s state, worker, epoch and ETA, from the queue or from the run root')
    .option('--queue <url>', 'the queue (redis://HOST:PORT[/DB])')
    .option('--run-root <dir>', 'the run root, when there is no queue', DEFAULT_RUN_ROOT)
    .option('--sweep <name>', 'only this sweep (default: all)')
    .option('--json', 'one JSON object: { sweeps: [{ sweep, counts, runs }] }')
    .addHelpText(
      'after',
      examples(['wrn sweep status --queue redis://10.0.0.5:6379', 'wrn sweep status --queue redis://10.0.0.5:6379 --sweep tiny --json', 'wrn sweep status --run-root runs   # a sweep run here']),
    )
    .action(async (own: { sweep?: string; json?: boolean }) => {
      const flags = { ...own, queue: shared(status, 'queue'), runRoot: shared(status, 'runRoot')! };
      const collect = async (queue?: Queue) => {
        const where = flags.queue ?? flags.runRoot;
        const manifests = await chooseManifests({ queue, runRoot: flags.runRoot, sweep: flags.sweep, where });
        const out = [];
        for (const manifest of manifests) out.push({ manifest, records: queue ? await recordsFromQueue(queue, manifest) : recordsFromRunRoot(manifest, flags.runRoot) });
        return out;
      };
      const sweeps = flags.queue ? await withQueue(flags.queue, collect) : await collect();
      if (flags.json) {
        writeLine(io.stdout, JSON.stringify({ sweeps: sweeps.map((s) => statusJson(s.manifest.name, s.records)) }));
        return;
      }
      for (const { manifest, records } of sweeps) {
        const counts = statusJson(manifest.name, records).counts;
        writeLine(io.stdout, `sweep ${manifest.name}: ${records.length} runs: ${Object.entries(counts).map(([state, n]) => `${n} ${state}`).join(', ')}`);
        writeLine(io.stdout, statusTable(records));
        writeLine(io.stdout);
      }
    });

  const report = sweep
    .command('report')
    .description('the paper-style table (mean ± std over seeds of top-1 error, params, time per epoch) as report.md and report.html')
    .option('--queue <url>', 'read the runs from the queue (redis://HOST:PORT[/DB])')
    .option('--run-root <dir>', 'read the runs from their run directories', DEFAULT_RUN_ROOT)
    .option('--sweep <name>', 'the sweep (default: the only one there)')
    .option('--out <dir>', 'where report.md and report.html go (default: <run-root>/<sweep>)')
    .addHelpText('after', examples(['wrn sweep report --run-root /mnt/shared/runs --sweep tiny', 'wrn sweep report --queue redis://10.0.0.5:6379 --out reports/tiny']))
    .action(async (own: { sweep?: string; out?: string }) => {
      const flags = { ...own, queue: shared(report, 'queue'), runRoot: shared(report, 'runRoot')! };
      const make = async (queue?: Queue) => {
        const where = flags.queue ?? flags.runRoot;
        const manifests = await chooseManifests({ queue, runRoot: flags.runRoot, sweep: flags.sweep, where });
        if (manifests.length > 1) throw new UsageError(`${where} holds ${manifests.length} sweeps (${manifests.map((m) => m.name).join(', ')}): name one with --sweep`);
        const manifest = manifests[0]!;
        const records = queue ? await recordsFromQueue(queue, manifest) : recordsFromRunRoot(manifest, flags.runRoot);
        return writeSweepReportFrom(manifest, records, flags.out ?? sweepDir(flags.runRoot, manifest.name));
      };
      const files = flags.queue ? await withQueue(flags.queue, make) : await make();
      io.stdout.write(files.markdown);
      writeLine(io.stderr, `wrote ${files.md} and ${files.html}`);
    });

  sweep
    .command('presets')
    .description('the papers\' tables available as grids (`preset:` in a grid file, or --preset)')
    .addHelpText('after', examples(['wrn sweep presets', 'wrn sweep --preset wrn-dropout --dry-run']))
    .action(() => {
      for (const preset of GRID_PRESETS) {
        const runs = Object.values(preset.axes).reduce((n, values) => n * values.length, 1);
        writeLine(io.stdout, `${preset.name} (${runs} runs): ${preset.description}`);
        writeLine(io.stdout, `  axes: ${JSON.stringify(preset.axes)}`);
      }
    });
}

export function registerWorker(program: Command, context: CommandContext): void {
  program
    .command('worker')
    .description('take runs from a sweep queue and train them, one at a time, into a run root all workers share')
    .requiredOption('--queue <url>', 'the queue (redis://HOST:PORT[/DB])')
    .requiredOption('--run-root <dir>', 'the shared run root (a mounted directory): runs go to <run-root>/<sweep>/<run id>')
    .option('--lock-seconds <s>', 'job lock: a dead worker\'s run is taken over this long after its last renewal', integerFlag(2), 120)
    .option('--stalled-seconds <s>', 'how often to look for runs whose worker died', integerFlag(1), 30)
    .option('--max-stalls <n>', 'a run whose worker dies more often than this is failed', integerFlag(0), 3)
    .option('--until-empty', 'exit once no run is waiting or being trained')
    .addHelpText(
      'after',
      `${examples([
        'wrn worker --queue redis://10.0.0.5:6379 --run-root /mnt/shared/runs',
        'wrn worker --queue redis://10.0.0.5:6379 --run-root /mnt/shared/runs --until-empty   # a batch job',
      ])}
A run whose worker dies (kill -9, power) goes back to the queue once its lock expires and resumes from its last
checkpoint on another worker. Ctrl-C finishes the step, saves a checkpoint and hands the run back.
A run failing for a reason of its own (bad config: exit 2 of \`wrn train\`; divergence) is failed, not retried.
A worker of another @wrn/cli version than the sweep's refuses its runs and exits 2.
`,
    )
    .action(async (flags: { queue: string; runRoot: string; lockSeconds: number; stalledSeconds: number; maxStalls: number; untilEmpty?: boolean }) => {
      await runWorker(parseQueueUrl(flags.queue), context, {
        runRoot: flags.runRoot,
        lockSeconds: flags.lockSeconds,
        stalledSeconds: flags.stalledSeconds,
        maxStalls: flags.maxStalls,
        untilEmpty: Boolean(flags.untilEmpty),
      });
    });
}
