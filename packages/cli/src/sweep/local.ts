import { rmSync } from 'node:fs';
import { cliVersion, type CommandContext } from '../context.js';
import { RunFailedError } from '../errors.js';
import { writeLine } from '../io.js';
import { abortOnSignals } from '../signals.js';
import type { ExpandedGrid } from './grid.js';
import { ensureSweepManifest, failurePath, manifestOf, readRunFailure, runDirOf, summarizeRunDir, writeRunFailure } from './layout.js';
import { writeSweepReport } from './records.js';
import { prefixedIO, trainSweepRun, workerId } from './run-one.js';

/**
 * The embedded default: trains the grid's runs here, one at a time, in the grid's order. Run again, it goes on
 * where it stopped: completed runs are skipped, a half-done run resumes from its last checkpoint, a run that failed
 * for a reason of its own stays failed unless `retryFailed`. Ends with the sweep's report.
 */
export async function runSweepHere(grid: ExpandedGrid, runRoot: string, context: CommandContext, options: { retryFailed: boolean; command: string }): Promise<void> {
  const { io } = context;
  const manifest = manifestOf(grid, cliVersion());
  ensureSweepManifest(runRoot, manifest);
  const total = grid.runs.length;
  writeLine(io.stderr, `sweep ${grid.name}: ${total} runs into ${runDirOf(runRoot, grid.name, '')}`);
  const interrupt = abortOnSignals(io, 'the sweep');
  const failed: string[] = [];
  try {
    for (const [index, run] of grid.runs.entries()) {
      const runDir = runDirOf(runRoot, grid.name, run.id);
      const label = `[${index + 1}/${total}] ${run.id}`;
      const before = summarizeRunDir(runDir, run.values);
      if (before.status === 'completed') {
        writeLine(io.stderr, `${label}: completed before, skipped`);
        continue;
      }
      const previousFailure = readRunFailure(runDir);
      if (previousFailure && !options.retryFailed) {
        writeLine(io.stderr, `${label}: failed before (${previousFailure.reason}: ${previousFailure.message.split('\n')[0]}), skipped; --retry-failed tries it again`);
        failed.push(run.id);
        continue;
      }
      if (previousFailure) rmSync(failurePath(runDir), { force: true });
      writeLine(io.stderr, `${label}: ${before.epochsDone > 0 ? `resuming after epoch ${before.epochsDone}` : 'training'}`);
      const outcome = await trainSweepRun({
        sweep: grid.name,
        run,
        runDir,
        context: { ...context, io: prefixedIO(io, `${run.id}: `) },
        signal: interrupt.signal,
      });
      switch (outcome.kind) {
        case 'completed':
          writeLine(io.stderr, `${label}: completed, top-1 error ${((outcome.summary.testTop1Error ?? NaN) * 100).toFixed(2)}%`);
          break;
        case 'interrupted':
          throw new RunFailedError(`${label}: ${outcome.message}\nthe sweep stopped; run \`${options.command}\` again to resume it`);
        case 'failed':
          writeRunFailure(runDir, outcome.failure);
          writeLine(io.stderr, `${label}: failed (${outcome.failure.reason}): ${outcome.failure.message}`);
          failed.push(run.id);
          break;
        case 'error':
          // Here nobody else will try it: record it like the run's own failure, so the next pass says so.
          writeRunFailure(runDir, { reason: 'error', message: outcome.error.message, worker: workerId(), at: new Date().toISOString() });
          writeLine(io.stderr, `${label}: failed: ${outcome.error.message}`);
          failed.push(run.id);
          break;
      }
    }
  } finally {
    interrupt.dispose();
  }
  const report = writeSweepReport(manifest, runRoot, runDirOf(runRoot, grid.name, ''));
  io.stdout.write(report.markdown);
  writeLine(io.stderr, `report: ${report.md} and ${report.html}`);
  if (failed.length > 0) throw new RunFailedError(`${failed.length} of ${total} runs failed: ${failed.join(', ')} (their sweep-failure.json says why)`);
}
