import { Worker, UnrecoverableError, WaitingError, type Job } from 'bullmq';
import { readCheckpointState, resolveCheckpointDir, runCheckpointDir, type TrainEvent } from '@wrn/training/node';
import { cliVersion, type CommandContext } from '../context.js';
import { errorMessage, RunFailedError, UsageError } from '../errors.js';
import { handleSignals, SIGNAL_EXIT_CODES, type HandledSignal } from '../signals.js';
import { writeLine } from '../io.js';
import { ensureSweepManifest, runDirOf, writeRunFailure, type RunSummary, type SweepManifest } from './layout.js';
import { connectionOptions, openQueue, QUEUE_NAME, readQueueManifest, runJobSchema, type QueueAddress, type RunProgress } from './queue.js';
import { prefixedIO, trainSweepRun, workerId } from './run-one.js';

/** Where the run's last checkpoint stands, if it has one. */
async function checkpointPosition(runDir: string): Promise<{ epoch: number; globalStep: number } | undefined> {
  const dir = await resolveCheckpointDir(runCheckpointDir(runDir, 'last'));
  if (!dir) return undefined;
  // A damaged state.json is train()'s to report (it falls back to an older checkpoint); here it is just unknown.
  return readCheckpointState(dir).catch(() => undefined);
}

export interface WorkerOptions {
  runRoot: string;
  /**
   * BullMQ's job lock: the worker renews it every lockSeconds/2 while it trains. A worker that dies stops renewing;
   * once the lock has expired, the next stalled-job check of any live worker puts the run back in the queue.
   */
  lockSeconds: number;
  /** How often this worker looks for runs whose worker died (BullMQ's stalled-job check). */
  stalledSeconds: number;
  /** Times a run may lose its worker before it is failed (a run that kills every machine it lands on must stop). */
  maxStalls: number;
  /** Exit 0 once the queue has no run waiting, delayed or being trained (batch jobs, tests). */
  untilEmpty: boolean;
}

/**
 * `wrn worker`: takes runs from the queue one at a time and trains each in this process into the shared run root, so
 * killing the worker kills its training too and never leaves an orphan behind. A run already half done (its
 * worker died, or handed it back) resumes from its last checkpoint. The run directory's exclusivity is BullMQ's job
 * lock for now; the training code path (`runTrain`) is the one place where a run-directory lock plugs in, for
 * `wrn train` and the worker alike.
 */
export async function runWorker(address: QueueAddress, context: CommandContext, options: WorkerOptions): Promise<void> {
  const { io } = context;
  const me = workerId();
  const version = cliVersion();
  // Fail fast when Redis cannot be reached at all; once running, the worker rides out Redis restarts.
  const queue = await openQueue(address, { reconnect: true });
  const manifests = new Map<string, SweepManifest>();
  let current: { job: Job; controller: AbortController; lostLock: boolean } | undefined;
  let stopping: HandledSignal | undefined;
  let refusal: UsageError | undefined;

  const worker = new Worker(
    QUEUE_NAME,
    async (job: Job, token?: string): Promise<RunSummary> => {
      const parsed = runJobSchema.safeParse(job.data);
      if (!parsed.success) throw new UnrecoverableError(`job ${job.id} is not a wrn sweep run: ${parsed.error.issues[0]?.message}`);
      const data = parsed.data;
      if (stopping) {
        // A signal came while BullMQ was already fetching this job: a stopping worker starts no new run.
        await job.moveToWait(token);
        throw new WaitingError();
      }
      if (data.version !== version) {
        // Another version may train differently: hand the run back for a worker of its own version, and stop.
        refusal = new UsageError(
          `run ${data.runId} of sweep ${data.sweep} was submitted by @wrn/cli ${data.version}; this worker is @wrn/cli ${version}: ` +
            `run a worker of version ${data.version} (the run went back to the queue)`,
        );
        void worker.close();
        await job.moveToWait(token);
        throw new WaitingError();
      }
      let manifest = manifests.get(data.sweep);
      if (!manifest) {
        manifest = await readQueueManifest(queue, data.sweep);
        if (!manifest) throw new UnrecoverableError(`sweep ${data.sweep} has no manifest in the queue (it was removed?)`);
        ensureSweepManifest(options.runRoot, manifest);
        manifests.set(data.sweep, manifest);
      }
      const run = manifest.runs.find((r) => r.id === data.runId) ?? { id: data.runId, axes: {}, values: data.values };
      const runDir = runDirOf(options.runRoot, data.sweep, data.runId);
      const controller = new AbortController();
      current = { job, controller, lostLock: false };
      const attempt = job.attemptsMade + 1;
      const checkpoint = await checkpointPosition(runDir);
      writeLine(
        io.stderr,
        `${me}: taking run ${data.runId} of sweep ${data.sweep} (attempt ${attempt}${job.stalledCounter > 0 ? `, its worker died ${job.stalledCounter}x` : ''}) into ${runDir}` +
          (checkpoint ? `, resuming from its checkpoint at epoch ${checkpoint.epoch}, step ${checkpoint.globalStep}` : ''),
      );

      let lastReport = 0;
      let last: RunProgress | undefined;
      const report = (event: TrainEvent) => {
        if (event.type !== 'step' && event.type !== 'epoch') return;
        const now = Date.now();
        if (event.type === 'step' && now - lastReport < 2_000) return;
        lastReport = now;
        const updatedAt = new Date().toISOString();
        if (event.type === 'step') {
          last = { worker: me, epoch: event.epoch, totalEpochs: event.totalEpochs, iteration: event.iteration, itersPerEpoch: event.itersPerEpoch, imagesPerSec: event.imagesPerSec, batchSize: event.batchSize, updatedAt };
        } else if (last) {
          // An epoch ended: the next one starts at iteration 0, at the epoch's mean rate.
          last = { ...last, epoch: event.metrics.epoch + 1, iteration: 0, imagesPerSec: event.metrics.imagesPerSec, updatedAt };
        } else {
          return;
        }
        // Progress is for `status` only; Redis being away for a moment must not stop the training.
        job.updateProgress(last).catch(() => undefined);
      };
      try {
        const outcome = await trainSweepRun({
          sweep: data.sweep,
          run,
          runDir,
          context: { ...context, io: prefixedIO(io, `${data.runId}: `) },
          signal: controller.signal,
          onProgress: report,
        });
        switch (outcome.kind) {
          case 'completed':
            writeLine(io.stderr, `${me}: run ${data.runId} completed${outcome.trained ? '' : ' (it was already)'}: top-1 error ${((outcome.summary.testTop1Error ?? NaN) * 100).toFixed(2)}%`);
            return outcome.summary;
          case 'interrupted':
            if (current.lostLock) throw new Error(`run ${data.runId}: this worker lost its lock on the run (Redis unreachable, or the process stalled); another worker may have it`);
            await job.moveToWait(token);
            writeLine(io.stderr, `${me}: handed run ${data.runId} back to the queue: ${outcome.message}`);
            throw new WaitingError();
          case 'failed':
            writeRunFailure(runDir, outcome.failure);
            writeLine(io.stderr, `${me}: run ${data.runId} failed (${outcome.failure.reason}), not retried: ${outcome.failure.message}`);
            throw new UnrecoverableError(`${outcome.failure.reason}: ${outcome.failure.message}`);
          case 'error':
            if (attempt >= (job.opts.attempts ?? 1)) {
              writeRunFailure(runDir, { reason: 'error', message: outcome.error.message, worker: me, at: new Date().toISOString() });
            }
            writeLine(io.stderr, `${me}: run ${data.runId} failed on attempt ${attempt} of ${job.opts.attempts ?? 1}: ${outcome.error.message}`);
            throw outcome.error;
        }
      } finally {
        current = undefined;
      }
    },
    {
      connection: connectionOptions(address, { failFast: false }),
      concurrency: 1,
      name: me,
      lockDuration: options.lockSeconds * 1000,
      stalledInterval: options.stalledSeconds * 1000,
      maxStalledCount: options.maxStalls,
      autorun: false,
    },
  );

  // Redis going away is reported once per distinct message, not on every reconnection attempt.
  let lastError = '';
  const onError = (error: Error) => {
    const message = errorMessage(error);
    if (message !== lastError) writeLine(io.stderr, `${me}: queue: ${message}`);
    lastError = message;
  };
  worker.on('error', onError);
  queue.on('error', onError);
  worker.on('lockRenewalFailed', (jobIds: string[]) => {
    if (current && jobIds.includes(String(current.job.id))) {
      writeLine(io.stderr, `${me}: lost the lock on run ${String(current.job.id)}; stopping it after this step`);
      current.lostLock = true;
      current.controller.abort(new Error('lost the queue lock'));
    }
  });
  worker.on('ready', () => {
    if (lastError) writeLine(io.stderr, `${me}: queue: connected again`);
    lastError = '';
  });

  const onSignal = (signal: HandledSignal) => {
    if (stopping) {
      writeLine(io.stderr, `\n${signal} again: exiting now; the run goes back to the queue when its lock expires`);
      process.exit(SIGNAL_EXIT_CODES[signal]);
    }
    stopping = signal;
    writeLine(io.stderr, `\n${signal}: ${current ? 'finishing the step, saving a checkpoint and handing the run back' : 'stopping'} (send again to exit now)`);
    current?.controller.abort(new Error(`interrupted by ${signal}`));
    void worker.close();
  };
  const releaseSignals = handleSignals(io, onSignal);

  let idleCheck: NodeJS.Timeout | undefined;
  if (options.untilEmpty) {
    idleCheck = setInterval(() => {
      if (current) return;
      queue
        .getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'paused')
        .then((counts) => {
          if (!current && Object.values(counts).every((n) => n === 0)) void worker.close();
        })
        .catch(() => undefined);
    }, 1_000);
  }

  writeLine(io.stderr, `${me}: @wrn/cli ${version} serving ${address.url} (queue ${QUEUE_NAME}) into ${options.runRoot}`);
  try {
    await worker.run();
  } finally {
    if (idleCheck) clearInterval(idleCheck);
    releaseSignals();
    await worker.close().catch(() => undefined);
    await queue.close().catch(() => undefined);
  }
  if (refusal) throw refusal;
  if (stopping) {
    // Stopped on request, its run handed back: the conventional exit code of the signal, as `wrn train` gives.
    throw new RunFailedError(`${me}: stopped by ${stopping}; its run went back to the queue`, { exitCode: SIGNAL_EXIT_CODES[stopping] });
  }
  writeLine(io.stderr, `${me}: the queue is empty; exiting`);
}
