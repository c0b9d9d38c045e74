import { Queue, type ConnectionOptions, type Job, type JobType } from 'bullmq';
import { z } from 'zod';
import { errorMessage, RunFailedError, UsageError } from '../errors.js';
import { runSummarySchema, sweepManifestSchema, type RunSummary, type SweepManifest } from './layout.js';

/** The one BullMQ queue every sweep's runs go into; `wrn worker` serves it, whatever sweep a run belongs to. */
export const QUEUE_NAME = 'wrn-sweep';
/** Redis hash of the sweeps submitted to the queue: name -> SweepManifest JSON (the queue holds only the runs). */
const MANIFESTS_KEY = 'wrn:sweeps';

export interface QueueAddress {
  url: string;
  host: string;
  port: number;
  db: number;
  password?: string;
  username?: string;
}

/** Parses `redis://[user:password@]HOST:PORT[/DB]`; anything else is the user's to fix (exit 2). */
export function parseQueueUrl(url: string, flag = '--queue'): QueueAddress {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`${flag} ${url}: expected redis://HOST:PORT (e.g. redis://10.0.0.5:6379)`);
  }
  if (parsed.protocol !== 'redis:') throw new UsageError(`${flag} ${url}: expected a redis:// URL, got the scheme "${parsed.protocol.replace(/:$/, '')}"`);
  if (!parsed.hostname) throw new UsageError(`${flag} ${url}: no host (expected redis://HOST:PORT)`);
  const port = parsed.port ? Number(parsed.port) : 6379;
  const dbText = parsed.pathname.replace(/^\//, '');
  if (dbText !== '' && !/^\d+$/.test(dbText)) throw new UsageError(`${flag} ${url}: the path must be a database number (redis://HOST:PORT/0), got "/${dbText}"`);
  return {
    url,
    host: parsed.hostname.replace(/^\[|\]$/g, ''),
    port,
    db: dbText === '' ? 0 : Number(dbText),
    password: parsed.password ? decodeURIComponent(parsed.password) : undefined,
    username: parsed.username ? decodeURIComponent(parsed.username) : undefined,
  };
}

/**
 * ioredis options for BullMQ. `retryStrategy` keeps reconnecting every second or so for as long as it takes (a
 * Redis restart must not end a worker); `failFast` gives up after the first failed attempt, for commands that
 * only ask the queue something and should say at once that it cannot be reached.
 */
export function connectionOptions(address: QueueAddress, mode: { failFast: boolean }): ConnectionOptions {
  return {
    host: address.host,
    port: address.port,
    db: address.db,
    password: address.password,
    username: address.username,
    // BullMQ's blocking commands must not be cut short by ioredis' per-request retry limit.
    maxRetriesPerRequest: mode.failFast ? 1 : null,
    connectTimeout: 5_000,
    retryStrategy: mode.failFast ? () => null : (times: number) => Math.min(250 * times, 2_000),
  };
}

/**
 * Opens the queue and checks that Redis answers; an unreachable queue fails here, naming the URL (exit 1). With
 * `reconnect` (a worker's), the queue returned rides out a Redis restart; the check is made on a fail-fast one.
 */
export async function openQueue(address: QueueAddress, options: { reconnect?: boolean } = {}): Promise<Queue> {
  if (options.reconnect) {
    await (await openQueue(address)).close();
    const queue = new Queue(QUEUE_NAME, { connection: connectionOptions(address, { failFast: false }) });
    queue.on('error', () => undefined);
    return queue;
  }
  const queue = new Queue(QUEUE_NAME, { connection: connectionOptions(address, { failFast: true }) });
  // Errors also surface as rejections of the calls below; without a listener they would crash the process.
  queue.on('error', () => undefined);
  try {
    const client = await queue.client;
    // Any round trip proves Redis answers (BullMQ's client interface has no PING).
    await client.hexists(MANIFESTS_KEY, '');
  } catch (error) {
    await queue.close().catch(() => undefined);
    throw new RunFailedError(`--queue ${address.url}: cannot reach Redis at ${address.host}:${address.port}: ${errorMessage(error)}`, { cause: error });
  }
  return queue;
}

/** What a job carries: everything a worker needs to train the run, and the version of the grid's expansion. */
export const runJobSchema = z
  .object({
    format: z.literal('wrn-sweep-job/1'),
    sweep: z.string(),
    runId: z.string(),
    version: z.string(),
    values: z.record(z.string(), z.unknown()),
  })
  .strict();
export type RunJobData = z.infer<typeof runJobSchema>;

/** What a worker reports while it trains (job.progress), for `wrn sweep status`. */
export const runProgressSchema = z
  .object({
    worker: z.string(),
    epoch: z.number(),
    totalEpochs: z.number(),
    iteration: z.number(),
    itersPerEpoch: z.number(),
    imagesPerSec: z.number(),
    batchSize: z.number(),
    updatedAt: z.string(),
  })
  .strict();
export type RunProgress = z.infer<typeof runProgressSchema>;

/** BullMQ job id of a run: one job per run, so submitting a sweep twice adds nothing (BullMQ ignores a known id). */
export const jobIdOf = (sweep: string, runId: string) => `${sweep}/${runId}`;

export interface JobOptionsInput {
  /** Tries of a run that fails with an error not its own (I/O, out of memory); its own failures are never retried. */
  attempts: number;
}

export async function readQueueManifests(queue: Queue): Promise<Map<string, SweepManifest>> {
  const client = await queue.client;
  const raw = await client.hgetall(MANIFESTS_KEY);
  const manifests = new Map<string, SweepManifest>();
  for (const [name, text] of Object.entries(raw)) manifests.set(name, sweepManifestSchema.parse(JSON.parse(text)));
  return manifests;
}

export async function readQueueManifest(queue: Queue, name: string): Promise<SweepManifest | undefined> {
  const client = await queue.client;
  const text = await client.hget(MANIFESTS_KEY, name);
  return text ? sweepManifestSchema.parse(JSON.parse(text)) : undefined;
}

export interface SubmitResult {
  added: number;
  alreadyQueued: number;
  retried: number;
}

/** Puts a sweep's runs into the queue: its manifest first, then one job per run (idempotent by job id). */
export async function submitSweep(queue: Queue, manifest: SweepManifest, options: JobOptionsInput & { retryFailed: boolean }): Promise<SubmitResult> {
  const client = await queue.client;
  const stored = await readQueueManifest(queue, manifest.name);
  if (!stored) await client.hset(MANIFESTS_KEY, { [manifest.name]: JSON.stringify(manifest) });
  if (stored && stored.hash !== manifest.hash) {
    throw new UsageError(
      `sweep "${manifest.name}" is already in the queue from another grid (${stored.source}, ${stored.runs.length} runs, submitted ${stored.createdAt}); ` +
        'give this grid another name (its `name:` key)',
    );
  }
  if (stored && stored.version !== manifest.version) {
    throw new UsageError(`sweep "${manifest.name}" was submitted by @wrn/cli ${stored.version}; this is ${manifest.version}: give the grid another name`);
  }
  const result: SubmitResult = { added: 0, alreadyQueued: 0, retried: 0 };
  for (const run of manifest.runs) {
    const jobId = jobIdOf(manifest.name, run.id);
    const existing = await queue.getJob(jobId);
    if (existing) {
      if (options.retryFailed && (await existing.getState()) === 'failed') {
        await existing.retry('failed');
        result.retried++;
      } else {
        result.alreadyQueued++;
      }
      continue;
    }
    const data: RunJobData = { format: 'wrn-sweep-job/1', sweep: manifest.name, runId: run.id, version: manifest.version, values: run.values };
    await queue.add(manifest.name, data, {
      jobId,
      attempts: options.attempts,
      backoff: { type: 'exponential', delay: 5_000 },
      // Completed and failed runs stay in the queue: they are the sweep's record for `status` and `report`.
      removeOnComplete: false,
      removeOnFail: false,
    });
    result.added++;
  }
  return result;
}

export type RunState = 'waiting' | 'active' | 'completed' | 'failed' | 'delayed' | 'unknown';

export interface QueuedRun {
  sweep: string;
  runId: string;
  state: RunState;
  attemptsMade: number;
  progress: RunProgress | undefined;
  /** The worker's summary of the finished run (job return value). */
  summary: RunSummary | undefined;
  failedReason: string | undefined;
}

const STATES: JobType[] = ['waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized', 'paused'];

/** Every run of the queue (of one sweep when named), with its state, the worker's progress and its summary. */
export async function listQueuedRuns(queue: Queue, sweep?: string): Promise<QueuedRun[]> {
  const runs: QueuedRun[] = [];
  const seen = new Set<string>();
  for (const type of STATES) {
    const jobs: Job[] = await queue.getJobs([type], 0, -1);
    for (const job of jobs) {
      // A job that moves on while the states are read would show up twice.
      if (seen.has(job.id ?? '')) continue;
      seen.add(job.id ?? '');
      const data = runJobSchema.safeParse(job.data);
      if (!data.success || (sweep !== undefined && data.data.sweep !== sweep)) continue;
      const progress = runProgressSchema.safeParse(job.progress);
      const summary = runSummarySchema.safeParse(job.returnvalue);
      runs.push({
        sweep: data.data.sweep,
        runId: data.data.runId,
        state: type === 'prioritized' || type === 'paused' ? 'waiting' : (type as RunState),
        attemptsMade: job.attemptsMade,
        progress: progress.success ? progress.data : undefined,
        summary: summary.success ? summary.data : undefined,
        failedReason: job.failedReason || undefined,
      });
    }
  }
  return runs;
}
