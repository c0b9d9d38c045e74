import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findRedisServer, startRedis, type RedisServer } from './redis-server.js';
import { BIN, REPO_ROOT, runWrn, scratchDir, type WrnResult } from './run-wrn.js';

const REDIS = findRedisServer();
// Locally a missing redis-server skips these tests with one line; CI must have it (.ci/run installs it), so there it fails.
if (!REDIS && !process.env.CI) console.warn('sweep-queue.test.ts skipped: redis-server is not installed (apt-get install redis-server)');

interface Started {
  child: ChildProcess;
  stderr: () => string;
  done: Promise<WrnResult>;
}

const started: ChildProcess[] = [];

/** Starts the built `wrn` and keeps it running (workers, the embedded sweep): the test kills or waits for it. */
function startWrn(args: readonly string[]): Started {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<WrnResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, stderr: () => stderr, done };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** metrics.jsonl without the fields that measure time, which no two runs share. */
function metricsWithoutTiming(runDir: string): Record<string, unknown>[] {
  return readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => {
      const { imagesPerSec: _a, seconds: _b, evalSeconds: _c, ...rest } = JSON.parse(line) as Record<string, unknown>;
      return rest;
    });
}

/** The run a worker trains now: the last "taking run" line of its log with no end after it. */
function currentRun(log: string): string | undefined {
  const lines = log.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!;
    const ended = /: (?:run (\S+) (?:completed|failed)|handed run (\S+) back)/.exec(line);
    if (ended) return undefined;
    const taking = /: taking run (\S+) of sweep/.exec(line);
    if (taking) return taking[1];
  }
  return undefined;
}

function checkpointEpoch(runDir: string): number | undefined {
  const state = join(runDir, 'checkpoints', 'last', 'state.json');
  if (!existsSync(state)) return undefined;
  try {
    return (JSON.parse(readFileSync(state, 'utf8')) as { epoch: number }).epoch;
  } catch {
    return undefined;
  }
}

const GRID = `name: tiny
base: { dataset: cifar10, model: wrn-10-1, epochs: 2, trainLimit: 128, testLimit: 64, batchSize: 32, report: false }
axes: { seed: [1, 2, 3] }
# a run that fails on its own: a learning rate that makes the loss NaN within a few steps
include: [ { seed: 1, schedule.lr: 1.0e+30 } ]
`;

// Workers renew their job lock every lockSeconds/2; on this loaded 2-core machine a training step can hold the
// event loop for seconds, so the lock is kept well above that and the stalled check frequent, for a quick takeover.
const WORKER_FLAGS = ['--until-empty', '--lock-seconds', '20', '--stalled-seconds', '2'];

describe.skipIf(!REDIS && !process.env.CI)('sweeps on a real Redis (BullMQ)', () => {
  let redis: RedisServer;
  let dir: string;

  beforeAll(async () => {
    if (!REDIS) throw new Error('redis-server is not installed; CI needs it (.ci/run installs Debian\'s redis-server)');
    dir = scratchDir('sweep-queue');
    redis = await startRedis(REDIS, dir);
  });
  afterAll(async () => {
    // A failed assertion must not leave workers behind.
    for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await redis?.stop();
  });

  it('3 workers train a sweep; a kill -9, a Ctrl-C and a Redis restart lose nothing and change no metric', async () => {
    const grid = join(dir, 'tiny.yaml');
    writeFileSync(grid, GRID);
    const shared = join(dir, 'shared');
    const local = join(dir, 'local');

    const submitted = await runWrn(['sweep', grid, '--queue', redis.url]);
    expect(submitted.stderr).toBe('');
    expect(submitted.stdout).toContain(`sweep tiny: 4 runs; 4 added to ${redis.url}, 0 there already`);
    expect((await runWrn(['sweep', grid, '--queue', redis.url])).stdout).toContain('0 added');

    // The uninterrupted reference: the same grid run here, one run at a time, with no queue.
    const embedded = startWrn(['sweep', grid, '--run-root', local]);
    const workers = [0, 1, 2].map(() => startWrn(['worker', '--queue', redis.url, '--run-root', shared, ...WORKER_FLAGS]));
    const logOf = (i: number) => workers[i]!.stderr();

    // kill -9 the worker of the first run that has an epoch checkpoint but is not done.
    const killed = await until(
      'a run with an epoch-1 checkpoint',
      () => {
        for (let i = 0; i < workers.length; i++) {
          const run = currentRun(logOf(i));
          if (run && checkpointEpoch(join(shared, 'tiny', run)) === 1 && !existsSync(join(shared, 'tiny', run, 'summary.json'))) return { worker: i, run };
        }
        return undefined;
      },
      180_000,
    );
    workers[killed.worker]!.child.kill('SIGKILL');

    // Ctrl-C another worker while it trains: it finishes the step, checkpoints and hands its run back.
    const interrupted = await until(
      'another worker training a run',
      () => {
        for (let i = 0; i < workers.length; i++) {
          if (i === killed.worker) continue;
          const run = currentRun(logOf(i));
          // Not the run that diverges on its own: it may fail before the signal lands, and then nothing is handed back.
          if (run && !run.includes('lr-1e+30') && existsSync(join(shared, 'tiny', run, 'config.json'))) return { worker: i, run };
        }
        return undefined;
      },
      120_000,
    );
    workers[interrupted.worker]!.child.kill('SIGINT');
    const handedBack = await workers[interrupted.worker]!.done;
    expect(handedBack.code, handedBack.stderr).toBe(130);
    const run = interrupted.run.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    expect(handedBack.stderr).toMatch(new RegExp(`handed run ${run} back to the queue|run ${run} completed`));
    // A stopping worker starts no other run.
    expect(handedBack.stderr.split(`SIGINT:`)[1]).not.toMatch(/taking run/);

    // Redis dies (SIGKILL) and comes back on its append-only file while the last worker trains.
    await redis.restart();

    const results = await Promise.all(workers.map((w) => w.done));
    expect(results[killed.worker]!.signal).toBe('SIGKILL');
    const survivor = results.find((_, i) => i !== killed.worker && i !== interrupted.worker)!;
    expect(survivor.code, survivor.stderr).toBe(0);
    // The killed worker's run was taken over and resumed from its checkpoint, not started again.
    const takeover = results.map((r) => r.stderr).join('\n');
    expect(takeover).toMatch(new RegExp(`taking run ${killed.run} of sweep tiny \\(attempt \\d+, its worker died \\dx\\) into \\S+, resuming from its checkpoint at epoch 1, step 4`));

    const reference = await embedded.done;
    expect(reference.code, reference.stderr).toBe(1); // one run of the grid diverges
    expect(reference.stderr).toContain('1 of 4 runs failed: seed-1_lr-1e+30_');

    const status = await runWrn(['sweep', 'status', '--queue', redis.url, '--json']);
    expect(status.code, status.stderr).toBe(0);
    const sweep = (JSON.parse(status.stdout) as { sweeps: { sweep: string; counts: Record<string, number>; runs: Record<string, unknown>[] }[] }).sweeps[0]!;
    const workerLogs = results.map((r, i) => `--- worker ${i}\n${r.stderr}`).join('\n');
    expect(sweep.counts, workerLogs).toEqual({ completed: 3, failed: 1 });
    const manifest = JSON.parse(readFileSync(join(shared, 'tiny', 'sweep.json'), 'utf8')) as { runs: { id: string }[] };
    expect(sweep.runs.map((r) => r.id)).toEqual(manifest.runs.map((r) => r.id));
    for (const run of sweep.runs) {
      const runDir = join(shared, 'tiny', String(run.id));
      if (run.state === 'failed') {
        // Failed on its own: not retried, and the run directory says why.
        expect(run.attemptsMade).toBe(1);
        expect(String(run.failure)).toMatch(/^diverged: training diverged: loss is NaN at step \d/);
        expect(JSON.parse(readFileSync(join(runDir, 'sweep-failure.json'), 'utf8'))).toMatchObject({ reason: 'diverged' });
        continue;
      }
      // Status agrees with the run directory, and every run, interrupted or not, has the metrics of the reference.
      const metrics = metricsWithoutTiming(runDir);
      expect(metrics.map((m) => m.epoch)).toEqual([1, 2]);
      expect(run.epochsDone).toBe(2);
      expect(run.testTop1Error).toBe(metrics.at(-1)!.testTop1Error);
      expect(metrics, `metrics of ${String(run.id)}`).toEqual(metricsWithoutTiming(join(local, 'tiny', String(run.id))));
    }

    // The report from the queue and from the run root are the same table, and its numbers are the run dirs'.
    const fromQueue = await runWrn(['sweep', 'report', '--queue', redis.url, '--out', join(dir, 'report-queue')]);
    const fromRunRoot = await runWrn(['sweep', 'report', '--run-root', shared]);
    expect(fromQueue.code, fromQueue.stderr).toBe(0);
    expect(fromRunRoot.code, fromRunRoot.stderr).toBe(0);
    expect(fromQueue.stdout).toBe(fromRunRoot.stdout);
    expect(readFileSync(join(shared, 'tiny', 'report.md'), 'utf8')).toBe(fromRunRoot.stdout);
    const errors = sweep.runs.filter((r) => r.state === 'completed').map((r) => 100 * Number(r.testTop1Error));
    const mean = errors.reduce((a, b) => a + b, 0) / errors.length;
    const std = Math.sqrt(errors.reduce((s, e) => s + (e - mean) ** 2, 0) / (errors.length - 1));
    expect(fromRunRoot.stdout).toContain(`| - | ${mean.toFixed(2)} ± ${std.toFixed(2)} | 3/3 | 77.85 k |`);
    expect(fromRunRoot.stdout).toContain('| 1e+30 | - | 0/1 (1 failed) | 77.85 k |');
    // The embedded sweep's table has the same errors (its times differ).
    expect(reference.stdout).toContain(`| - | ${mean.toFixed(2)} ± ${std.toFixed(2)} | 3/3 | 77.85 k |`);
    const html = readFileSync(join(shared, 'tiny', 'report.html'), 'utf8');
    expect(html).toContain('<table id="sweep-table"');
    expect(html).toContain(`${mean.toFixed(2)} ± ${std.toFixed(2)}`);

    // One more Redis kill and restart: the queue's record of the sweep is all still there.
    await redis.restart();
    const again = await runWrn(['sweep', 'status', '--queue', redis.url, '--json']);
    expect(again.stdout).toBe(status.stdout);

    // Run again, the embedded sweep trains nothing: completed runs are skipped, the failed one stays failed.
    const rerun = await runWrn(['sweep', grid, '--run-root', local]);
    expect(rerun.code).toBe(1);
    expect(rerun.stderr.match(/completed before, skipped/g)).toHaveLength(3);
    expect(rerun.stderr).toMatch(/failed before \(diverged: training diverged/);
  });

  it('a worker of another version hands the run back and exits 2; a run with a bad config fails once', async () => {
    const address = { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: 1 };
    const runRoot = join(dir, 'versions');
    // Another version's sweep, in database 1, put there as that version's `wrn sweep` would.
    const other = new Queue('wrn-sweep', { connection: { ...address, db: 1 } });
    const values = { model: 'wrn-10-1', epochs: 1, trainLimit: 32, testLimit: 32, batchSize: 32 };
    const manifest = (version: string, model: string) => ({
      format: 'wrn-sweep/1', name: 'old', version, source: 'old.yaml', hash: model, axisKeys: ['model'],
      runs: [{ id: `${model}_0`, axes: { model }, values: { ...values, model } }], createdAt: new Date(0).toISOString(),
    });
    const client = await other.client;
    await client.hset('wrn:sweeps', { old: JSON.stringify(manifest('9.9.9', 'wrn-10-1')) });
    await other.add('old', { format: 'wrn-sweep-job/1', sweep: 'old', runId: 'wrn-10-1_0', version: '9.9.9', values }, { jobId: 'old/wrn-10-1_0', attempts: 3 });
    const refused = await runWrn(['worker', '--queue', `${redis.url}/1`, '--run-root', runRoot, ...WORKER_FLAGS]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('wrn: error: run wrn-10-1_0 of sweep old was submitted by @wrn/cli 9.9.9; this worker is @wrn/cli 0.0.0');
    expect(await (await other.getJob('old/wrn-10-1_0'))!.getState()).toBe('waiting');
    await other.close();

    // A run whose config is wrong (an invalid model, as a hand-written job might have): failed at once, never retried.
    const bad = new Queue('wrn-sweep', { connection: { ...address, db: 2 } });
    await (await bad.client).hset('wrn:sweeps', { old: JSON.stringify(manifest('0.0.0', 'wrn-11-1')) });
    await bad.add('old', { format: 'wrn-sweep-job/1', sweep: 'old', runId: 'wrn-11-1_0', version: '0.0.0', values: { ...values, model: 'wrn-11-1' } }, { jobId: 'old/wrn-11-1_0', attempts: 3 });
    const failed = await runWrn(['worker', '--queue', `${redis.url}/2`, '--run-root', runRoot, ...WORKER_FLAGS]);
    expect(failed.code, failed.stderr).toBe(0);
    const job = (await bad.getJob('old/wrn-11-1_0'))!;
    expect(await job.getState()).toBe('failed');
    expect(job.attemptsMade).toBe(1);
    expect(job.failedReason).toMatch(/^invalid: sweep old run wrn-11-1_0: Invalid model name 'wrn-11-1'/);
    await bad.close();
  });
});
