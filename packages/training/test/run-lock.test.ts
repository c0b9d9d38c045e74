import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { promises as fs, existsSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireRunLock, processStartTime, readRunLock, RUN_LOCK_FILE, RunLockedError, RunLockFileError, type RunLockHolder } from '../src/run-lock';

let root: string;
let count = 0;
const freshDir = () => path.join(root, `run-${count++}`);
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(tmpdir(), 'wrn-lock-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const record = (overrides: Partial<RunLockHolder>): RunLockHolder => ({
  format: 'wrn-run-lock/1',
  pid: 1,
  host: hostname(),
  startedAt: '2026-12-01T00:00:00.000Z',
  heartbeatAt: new Date().toISOString(),
  heartbeatMs: 10_000,
  staleMs: 30_000,
  processStart: null,
  command: 'wrn train --run-dir elsewhere',
  token: 'aaaaaaaaaaaaaaaa',
  ...overrides,
});

async function writeLock(dir: string, holder: RunLockHolder): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, RUN_LOCK_FILE), JSON.stringify(holder));
}

describe('acquireRunLock', () => {
  it('writes pid, host and start time, and release removes the file', async () => {
    const dir = freshDir();
    const lock = await acquireRunLock(dir, { command: 'test writer', heartbeatMs: 0 });
    const onDisk = await readRunLock(dir);
    expect(onDisk).toMatchObject({ pid: process.pid, host: hostname(), command: 'test writer', token: lock.holder.token });
    expect(Date.parse(onDisk!.startedAt)).toBeGreaterThan(Date.now() - 60_000);
    await lock.release();
    expect(existsSync(path.join(dir, RUN_LOCK_FILE))).toBe(false);
    await lock.release(); // idempotent
  });

  it('lets exactly one of two simultaneous writers in; the other is told who holds the directory', async () => {
    const dir = freshDir();
    const results = await Promise.allSettled([acquireRunLock(dir, { command: 'first', heartbeatMs: 0 }), acquireRunLock(dir, { command: 'second', heartbeatMs: 0 })]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]!.reason).toBeInstanceOf(RunLockedError);
    const holder = (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireRunLock>>>).value.holder;
    expect((lost[0]!.reason as Error).message).toContain(`${dir} is in use by another writer: ${holder.command} (pid ${process.pid} on ${hostname()}, since ${holder.startedAt}`);
    await (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireRunLock>>>).value.release();
  });

  it('refuses a lock held by a live process on this host', async () => {
    const dir = freshDir();
    const sleeper = spawn('sleep', ['30']);
    try {
      await new Promise((resolve) => sleeper.on('spawn', resolve));
      await writeLock(dir, record({ pid: sleeper.pid!, processStart: processStartTime(sleeper.pid!) }));
      await expect(acquireRunLock(dir, { heartbeatMs: 0 })).rejects.toThrowError(`(pid ${sleeper.pid} on ${hostname()}, since 2026-12-01T00:00:00.000Z`);
    } finally {
      sleeper.kill('SIGKILL');
    }
  });

  it('takes over the lock of a dead process (a kill -9), and of a recycled pid', async () => {
    const dir = freshDir();
    const dead = Number(execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).toString());
    await writeLock(dir, record({ pid: dead }));
    const lock = await acquireRunLock(dir, { heartbeatMs: 0 });
    expect((await readRunLock(dir))!.token).toBe(lock.holder.token);
    await lock.release();
    // Our own pid, but another start time: the pid was reused by another process, the holder is gone.
    await writeLock(dir, record({ pid: process.pid, processStart: '1' }));
    const again = await acquireRunLock(dir, { heartbeatMs: 0 });
    await again.release();
    expect(await fs.readdir(dir)).toEqual([]);
  });

  it('on another host, waits for the lease to expire: a fresh heartbeat is respected, a stale one broken', async () => {
    const dir = freshDir();
    await writeLock(dir, record({ host: 'other-host', pid: 4242, staleMs: 5_000, heartbeatAt: new Date().toISOString() }));
    await expect(acquireRunLock(dir, { heartbeatMs: 0 })).rejects.toThrowError('(pid 4242 on other-host');
    const sixSecondsAgo = new Date(Date.now() - 6_000);
    await writeLock(dir, record({ host: 'other-host', pid: 4242, staleMs: 5_000, heartbeatAt: sixSecondsAgo.toISOString() }));
    await fs.utimes(path.join(dir, RUN_LOCK_FILE), sixSecondsAgo, sixSecondsAgo); // the lease is the file's mtime too
    const lock = await acquireRunLock(dir, { heartbeatMs: 0 });
    await lock.release();
  });

  it('renews its lease by heartbeat and reports a lease lost to another writer', async () => {
    const dir = freshDir();
    const lost: string[] = [];
    const lock = await acquireRunLock(dir, { heartbeatMs: 40, onLost: (reason) => lost.push(reason) });
    const first = (await readRunLock(dir))!.heartbeatAt;
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(Date.parse((await readRunLock(dir))!.heartbeatAt)).toBeGreaterThan(Date.parse(first));
    await writeLock(dir, record({ host: 'other-host', command: 'the new owner', pid: 77 }));
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(lock.lost).toBe(true);
    expect(lost).toEqual([`${path.join(dir, RUN_LOCK_FILE)} now belongs to the new owner (pid 77 on other-host)`]);
    await lock.release();
    expect((await readRunLock(dir))!.command).toBe('the new owner'); // never deletes what is not its own
  });

  it('refuses a lock file that is not a lock record, naming the file', async () => {
    const dir = freshDir();
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, RUN_LOCK_FILE), 'hello');
    const error = (await acquireRunLock(dir, { heartbeatMs: 0 }).catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(RunLockFileError);
    expect(error.message).toMatch(new RegExp(`^${path.join(dir, RUN_LOCK_FILE).replace(/[.]/g, '\\.')}: not a run lock \\(.*\\); if no process uses the run directory, delete the file$`));
  });

  it('is released when the process exits through process.exit (as after a signal)', async () => {
    const dir = freshDir();
    const source = fileURLToPath(new URL('../src/run-lock.ts', import.meta.url));
    const script = `import { acquireRunLock } from ${JSON.stringify(source)}; await acquireRunLock(${JSON.stringify(dir)}); console.log('held'); process.exit(130);`;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(child.stdout.trim()).toBe('held');
    expect(child.status).toBe(130);
    expect(existsSync(path.join(dir, RUN_LOCK_FILE))).toBe(false);
  });
});
