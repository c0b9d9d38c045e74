import { randomBytes } from 'node:crypto';
import { readFileSync, unlinkSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { TrainingError } from './errors';

/*
 * One writer per run directory. The lock is a file, `<runDir>/.lock`, holding who owns the directory (pid, host,
 * the process's start time, a random token) and when the owner last proved it was alive (`heartbeatAt`).
 *
 * - Taking it is atomic on local and network file systems alike: the holder's record is written to a temp file and
 *   hard-linked to `.lock` (link(2) fails with EEXIST if the name exists; NFS implements it atomically, unlike
 *   O_EXCL on old clients).
 * - A lock whose holder died without releasing it (kill -9, a crashed machine) is stale. On the holder's own host
 *   that is decided at once by pid liveness (and, on Linux, the pid's start time, so a recycled pid does not count
 *   as alive); from another host, by a heartbeat older than `staleMs`: every `heartbeatMs` the holder checks that
 *   `.lock` still holds its token and sets the file's mtime to now, so a lease on a shared file system expires when
 *   its holder stops renewing it. (Touching rather than rewriting: a rewrite could clobber a record written by a
 *   process that broke the lease in between.)
 * - Breaking a stale lock renames it away first and checks that what was moved is the record judged stale, so two
 *   processes breaking the same stale lock cannot both win.
 * - Released on exit (also on process.exit() from a signal handler); a lock lost to a breaker (a heartbeat stalled
 *   past staleMs) is reported through onLost and never deleted by its former holder.
 */

export const RUN_LOCK_FILE = '.lock';
export const RUN_LOCK_FORMAT = 'wrn-run-lock/1';
/** How often the holder renews its lease by default. */
export const DEFAULT_HEARTBEAT_MS = 10_000;

export const runLockHolderSchema = z
  .object({
    format: z.literal(RUN_LOCK_FORMAT),
    pid: z.number().int().positive(),
    host: z.string().min(1),
    /** When the lock was taken (ISO 8601). */
    startedAt: z.string(),
    /** When the holder last renewed the lease (ISO 8601): the later of the recorded time and the file's mtime. */
    heartbeatAt: z.string(),
    /** The holder's renewal period; a lease is stale after `staleMs` (3 periods by default) without renewal. */
    heartbeatMs: z.number().int().positive(),
    staleMs: z.number().int().positive(),
    /** Linux: the holder process's start time in clock ticks since boot (/proc/<pid>/stat), to tell a recycled pid. */
    processStart: z.string().nullable(),
    /** What holds it, for messages (e.g. "wrn train --resume runs/x"). */
    command: z.string(),
    token: z.string().min(8),
  })
  .strict();
export type RunLockHolder = z.infer<typeof runLockHolderSchema>;

export interface RunLockOptions {
  /** Lease renewal period (default 10 s); 0 disables the heartbeat (a lock only ever used on one host). */
  heartbeatMs?: number;
  /** Age of the last renewal after which another host may break the lock (default 3 heartbeats, at least 30 s). */
  staleMs?: number;
  /** Recorded in the lock file so that a refused writer can say who holds the directory. */
  command?: string;
  /** Called once if the lease is lost (another process broke it after a stalled heartbeat). */
  onLost?: (reason: string) => void;
}

export interface RunLock {
  readonly runDir: string;
  readonly file: string;
  readonly holder: RunLockHolder;
  /** True once another process has taken the directory over (the heartbeat found a foreign record). */
  readonly lost: boolean;
  /** Stops the heartbeat and removes the lock file if it is still ours. Idempotent. */
  release(): Promise<void>;
}

/** A run directory held by a live process: the error names the holder, so a user can decide what to do. */
export class RunLockedError extends TrainingError {
  override readonly name = 'RunLockedError';
  readonly kind = 'bad-input';
  constructor(
    readonly runDir: string,
    readonly holder: RunLockHolder,
  ) {
    super(
      `${runDir} is in use by another writer: ${holder.command} (pid ${holder.pid} on ${holder.host}, since ${holder.startedAt}, ` +
        `lease renewed ${holder.heartbeatAt}); wait for it to finish or stop it, or choose another run directory ` +
        `(the lock is ${path.join(runDir, RUN_LOCK_FILE)})`,
    );
  }
}

/** The lock file is not a lock record (hand-edited, another tool's): refuse rather than guess. */
export class RunLockFileError extends TrainingError {
  override readonly name = 'RunLockFileError';
  readonly kind = 'bad-input';
}

/** Linux: field 22 of /proc/<pid>/stat (start time in ticks since boot), null elsewhere or when unreadable. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is parenthesised and may hold spaces: count fields after its closing paren.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Why a lock record no longer protects anything, or null if its holder may still be writing. */
export function staleReason(holder: RunLockHolder, now = Date.now()): string | null {
  if (holder.host === hostname()) {
    if (!pidAlive(holder.pid)) return `pid ${holder.pid} is not running on ${holder.host}`;
    const start = processStartTime(holder.pid);
    if (holder.processStart != null && start != null && start !== holder.processStart) {
      return `pid ${holder.pid} on ${holder.host} is another process now (start time ${start}, the holder's was ${holder.processStart})`;
    }
    return null;
  }
  const age = now - Date.parse(holder.heartbeatAt);
  if (Number.isFinite(age) && age > holder.staleMs) return `its lease was last renewed ${Math.round(age / 1000)} s ago (stale after ${Math.round(holder.staleMs / 1000)} s)`;
  return null;
}

/** Reads `<runDir>/.lock`: null when there is none; throws RunLockFileError naming the file when it is not a lock. */
export async function readRunLock(runDir: string): Promise<RunLockHolder | null> {
  return readLockFile(path.join(runDir, RUN_LOCK_FILE));
}

async function readLockFile(file: string): Promise<RunLockHolder | null> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new RunLockFileError(`${file}: not a run lock (${(error as Error).message}); if no process uses the run directory, delete the file`);
  }
  const result = runLockHolderSchema.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new RunLockFileError(`${file}: not a ${RUN_LOCK_FORMAT} record (${issue.path.join('.') || 'top level'}: ${issue.message}); if no process uses the run directory, delete the file`);
  }
  const renewed = await fs.stat(file).then((s) => s.mtimeMs).catch(() => 0);
  if (renewed > Date.parse(result.data.heartbeatAt)) result.data.heartbeatAt = new Date(renewed).toISOString();
  return result.data;
}

const tempName = (file: string) => path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);

async function writeTemp(file: string, holder: RunLockHolder): Promise<string> {
  const temp = tempName(file);
  await fs.writeFile(temp, `${JSON.stringify(holder)}\n`);
  return temp;
}

const live = new Set<{ releaseSync(): void }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // process.exit() from a signal handler skips finally blocks but still runs 'exit' listeners (synchronously).
  process.on('exit', () => {
    for (const lock of [...live]) lock.releaseSync();
  });
}

/**
 * Takes the exclusive lock of `runDir` (created if missing) for this process, or throws RunLockedError naming the
 * live holder. A stale lock (dead holder, expired lease) is broken and taken over.
 *
 * ```ts
 * const lock = await acquireRunLock('runs/a', { heartbeatMs: 10_000, command: 'sweep worker 3' });
 * try { ... write the run directory ... } finally { await lock.release(); }
 * ```
 */
export async function acquireRunLock(runDir: string, options: RunLockOptions = {}): Promise<RunLock> {
  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const staleMs = options.staleMs ?? Math.max(3 * (heartbeatMs || DEFAULT_HEARTBEAT_MS), 30_000);
  await fs.mkdir(runDir, { recursive: true });
  const file = path.join(runDir, RUN_LOCK_FILE);
  const now = new Date().toISOString();
  const holder: RunLockHolder = {
    format: RUN_LOCK_FORMAT,
    pid: process.pid,
    host: hostname(),
    startedAt: now,
    heartbeatAt: now,
    heartbeatMs: heartbeatMs || DEFAULT_HEARTBEAT_MS,
    staleMs,
    processStart: processStartTime(process.pid),
    command: options.command ?? process.argv.slice(1).join(' '),
    token: randomBytes(12).toString('hex'),
  };

  for (let attempt = 0; ; attempt++) {
    const temp = await writeTemp(file, holder);
    try {
      await fs.link(temp, file);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    } finally {
      await fs.rm(temp, { force: true });
    }
    if (attempt >= 5) throw new Error(`${file}: could not take the lock after ${attempt + 1} attempts (other processes keep taking and breaking it)`);
    const current = await readLockFile(file);
    if (current == null) continue; // released between our link and our read
    const reason = staleReason(current);
    if (reason == null) throw new RunLockedError(runDir, current);
    await breakStaleLock(file, current);
  }

  let lost = false;
  let released = false;
  let timer: NodeJS.Timeout | undefined;
  const markLost = (reason: string) => {
    if (lost) return;
    lost = true;
    if (timer) clearInterval(timer);
    live.delete(handle);
    options.onLost?.(reason);
  };
  const renew = async () => {
    if (released || lost) return;
    try {
      const current = await readLockFile(file);
      if (current?.token !== holder.token) {
        markLost(current ? `${file} now belongs to ${current.command} (pid ${current.pid} on ${current.host})` : `${file} was deleted`);
        return;
      }
      const now = new Date();
      await fs.utimes(file, now, now);
      holder.heartbeatAt = now.toISOString();
    } catch {
      // A transient error (a full disk, an NFS hiccup): the next beat tries again; the lease has 3 periods of slack.
    }
  };
  const handle = {
    releaseSync() {
      if (released) return;
      released = true;
      if (timer) clearInterval(timer);
      live.delete(handle);
      if (lost) return;
      try {
        const current = JSON.parse(readFileSync(file, 'utf8')) as { token?: string };
        if (current.token === holder.token) unlinkSync(file);
      } catch {
        // Already gone, or unreadable: nothing of ours to remove.
      }
    },
  };
  installExitHook();
  live.add(handle);
  if (heartbeatMs > 0) {
    timer = setInterval(() => void renew(), heartbeatMs);
    timer.unref();
  }
  return {
    runDir,
    file,
    holder,
    get lost() {
      return lost;
    },
    async release() {
      handle.releaseSync();
    },
  };
}

/** Moves a stale lock aside and deletes it, unless what was moved is not the record judged stale (then restores it). */
async function breakStaleLock(file: string, stale: RunLockHolder): Promise<void> {
  const aside = path.join(path.dirname(file), `.${path.basename(file)}.stale-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await fs.rename(file, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return; // someone else broke it first
    throw error;
  }
  let moved: RunLockHolder | null = null;
  try {
    moved = await readLockFile(aside);
  } catch {
    moved = null;
  }
  if (moved != null && moved.token !== stale.token) {
    // A live lock taken after our read: put it back (link fails if yet another process holds the name now).
    await fs.link(aside, file).catch(() => undefined);
  }
  await fs.rm(aside, { force: true });
}
