import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Queue } from 'bullmq';
import { writeFileAtomic } from '../fs.js';
import { UsageError } from '../errors.js';
import { paramsOf, readSweepManifest, runDirOf, summarizeRunDir, type RunSummary, type SweepManifest } from './layout.js';
import { listQueuedRuns, readQueueManifests } from './queue.js';
import { renderReportHtml, renderReportMarkdown, type SweepRunRecord } from './report.js';

/** The runs of a sweep as its run directories say. */
export function recordsFromRunRoot(manifest: SweepManifest, runRoot: string): SweepRunRecord[] {
  return manifest.runs.map((run) => {
    const summary = summarizeRunDir(runDirOf(runRoot, manifest.name, run.id), run.values);
    return { id: run.id, axes: run.axes, state: summary.status, summary };
  });
}

/** The runs of a sweep as the queue says: state, worker and epoch of active runs, the workers' summaries of finished ones. */
export async function recordsFromQueue(queue: Queue, manifest: SweepManifest): Promise<SweepRunRecord[]> {
  const queued = new Map((await listQueuedRuns(queue, manifest.name)).map((q) => [q.runId, q]));
  return manifest.runs.map((run) => {
    const q = queued.get(run.id);
    const progress = q?.progress;
    const epochsDone = progress ? Math.max(0, progress.epoch - 1) : 0;
    const summary: RunSummary = q?.summary ?? {
      status: q?.state === 'failed' ? 'failed' : epochsDone > 0 ? 'partial' : 'pending',
      epochsDone,
      totalEpochs: progress?.totalEpochs ?? (typeof run.values.epochs === 'number' ? run.values.epochs : null),
      testTop1Error: null,
      epochErrors: [],
      secondsPerEpoch: null,
      params: paramsOf(run.values),
      failure: null,
    };
    let etaSeconds: number | undefined;
    if (q?.state === 'active' && progress && progress.imagesPerSec > 0) {
      const stepsLeft = (progress.totalEpochs - progress.epoch) * progress.itersPerEpoch + (progress.itersPerEpoch - progress.iteration);
      etaSeconds = (stepsLeft * progress.batchSize) / progress.imagesPerSec;
    }
    return {
      id: run.id,
      axes: run.axes,
      state: q?.state ?? 'missing',
      summary,
      // The last worker of a run put back in the queue is no longer its worker.
      worker: q?.state === 'active' || q?.state === 'completed' ? progress?.worker : undefined,
      epoch: q?.state === 'active' ? progress?.epoch : undefined,
      etaSeconds,
      attemptsMade: q?.attemptsMade,
      failedReason: q?.failedReason,
    };
  });
}

/** Sweeps that have a sweep.json under the run root. */
export function sweepsInRunRoot(runRoot: string): string[] {
  if (!existsSync(runRoot)) return [];
  return readdirSync(runRoot, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(runRoot, entry.name, 'sweep.json')))
    .map((entry) => entry.name)
    .sort();
}

/** The manifests asked for: the named sweep, or every sweep there (status) / the only one (report). */
export async function chooseManifests(input: { queue?: Queue; runRoot: string; sweep?: string; where: string }): Promise<SweepManifest[]> {
  let manifests: SweepManifest[];
  if (input.queue) {
    manifests = [...(await readQueueManifests(input.queue)).values()];
  } else {
    manifests = sweepsInRunRoot(input.runRoot).map((name) => readSweepManifest(input.runRoot, name)!);
  }
  if (input.sweep === undefined) {
    if (manifests.length === 0) throw new UsageError(`${input.where}: no sweep there yet (submit one with \`wrn sweep GRID.yaml\`)`);
    return manifests.sort((a, b) => a.name.localeCompare(b.name));
  }
  const found = manifests.find((m) => m.name === input.sweep);
  if (!found) {
    throw new UsageError(`--sweep ${input.sweep}: no such sweep in ${input.where}${manifests.length ? `; there: ${manifests.map((m) => m.name).join(', ')}` : ''}`);
  }
  return [found];
}

export interface SweepReportFiles {
  markdown: string;
  md: string;
  html: string;
}

/** Writes report.md and report.html of a sweep into `outDir` (atomically), from the run root's run directories. */
export function writeSweepReport(manifest: SweepManifest, runRoot: string, outDir: string): SweepReportFiles {
  return writeSweepReportFrom(manifest, recordsFromRunRoot(manifest, runRoot), outDir);
}

export function writeSweepReportFrom(manifest: SweepManifest, records: SweepRunRecord[], outDir: string): SweepReportFiles {
  mkdirSync(outDir, { recursive: true });
  const markdown = renderReportMarkdown(manifest, records);
  const md = join(outDir, 'report.md');
  const html = join(outDir, 'report.html');
  writeFileAtomic(md, markdown);
  writeFileAtomic(html, renderReportHtml(manifest, records));
  return { markdown, md, html };
}
