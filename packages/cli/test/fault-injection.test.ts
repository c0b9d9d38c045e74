import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/program.js';
import { BIN, REPO_ROOT, runWrn, scratchDir, type WrnResult } from './run-wrn.js';

/** wrn in this process, for the refusals that end before any training (a child process costs seconds of imports). */
async function wrnHere(args: string[]): Promise<WrnResult> {
  let stdout = '';
  let stderr = '';
  const sink = (append: (text: string) => void) => ({ write: (chunk: string | Uint8Array) => (append(chunk.toString()), true) }) as unknown as NodeJS.WritableStream;
  const code = await runCli(args, { stdout: sink((t) => (stdout += t)), stderr: sink((t) => (stderr += t)), env: process.env });
  return { code, signal: null, stdout, stderr };
}

/*
 * Fault injection with real processes and real kills: `wrn train` on wrn-10-1 (3 epochs of 4 steps on 64 images of
 * the embedded sample), killed with SIGKILL at random moments and inside named windows of the checkpoint commit
 * (WRN_TEST_FAULT_POINTS pauses the process there, so the kill lands in a window that is otherwise microseconds
 * wide), then resumed until it finishes. Every run must end as the uninterrupted one did: metrics.jsonl,
 * summary.json, checkpoints/last and checkpoints/best identical but for wall-clock fields, and no file more.
 */

const TRAIN = ['train', '--model', 'wrn-10-1', '--epochs', '3', '--batch-size', '16', '--train-limit', '64', '--test-limit', '32', '--backend', 'wasm', '--seed', '7', '--log-every-steps', '2', '--no-report'];
/** Wall-clock fields: the only ones allowed to differ between an interrupted and an uninterrupted run. */
const TIMING = new Set(['imagesPerSec', 'seconds', 'evalSeconds', 'savedAt']);

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const withoutTiming = (value: unknown): unknown =>
  JSON.parse(JSON.stringify(value), (key, v: unknown) => (TIMING.has(key) ? undefined : v));

function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else out.push(relative(dir, path));
    }
  };
  walk(dir);
  return out.sort();
}

/** What a finished run directory holds, with wall-clock fields removed and binary files as their SHA-256. */
function snapshot(runDir: string): Record<string, unknown> {
  const files = listFiles(runDir);
  const result: Record<string, unknown> = { files };
  for (const file of files) {
    if (file === 'environment.json' || file === 'config.json') continue; // when and where it ran; config checked apart
    const data = readFileSync(join(runDir, file));
    if (file.endsWith('.jsonl')) result[file] = data.toString('utf8').split('\n').filter(Boolean).map((l) => withoutTiming(JSON.parse(l)));
    else if (file.endsWith('manifest.json')) result[file] = Object.keys((JSON.parse(data.toString('utf8')) as { files: object }).files);
    else if (file.endsWith('.json')) result[file] = withoutTiming(JSON.parse(data.toString('utf8')));
    else result[file] = sha(data);
  }
  return result;
}

/** Every checkpoint's files match their manifest (what a whole checkpoint means). */
function expectWholeCheckpoint(dir: string): void {
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { files: Record<string, { sha256: string }> };
  for (const [name, { sha256 }] of Object.entries(manifest.files)) expect(sha(readFileSync(join(dir, name))), `${dir}/${name}`).toBe(sha256);
}

interface Attempt {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  killedAt?: string;
}

/**
 * Runs wrn with `args`; kills it with SIGKILL after `killAfterMs`, or as soon as it prints `wrn-fault-point <name>`
 * for the named fault point, whichever is given.
 */
function attempt(args: string[], options: { killAfterMs?: number; killAtPoint?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Attempt> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let killedAt: string | undefined;
    const kill = (why: string) => {
      if (killedAt || child.exitCode !== null) return;
      killedAt = why;
      child.kill('SIGKILL');
    };
    const timer = options.killAfterMs !== undefined ? setTimeout(() => kill(`${options.killAfterMs} ms`), options.killAfterMs) : undefined;
    child.stdout!.resume();
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (options.killAtPoint && stderr.includes(`wrn-fault-point ${options.killAtPoint}\n`)) kill(options.killAtPoint);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr, ...(killedAt ? { killedAt } : {}) });
    });
  });
}

/** The next command for a run directory that may hold nothing yet (killed before config.json), or a run to resume. */
const nextCommand = (runDir: string) => (existsSync(join(runDir, 'config.json')) ? ['train', '--resume', runDir, '-q'] : [...TRAIN, '--run-dir', runDir, '-q']);

/** A small deterministic generator, so a failing trial can be replayed from the seed printed with it. */
function lcg(seed: number): () => number {
  // Scrambled first: consecutive seeds would otherwise start with nearly the same draws.
  let state = Math.imul(seed ^ 0x9e3779b9, 2654435761) >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

let reference: Record<string, unknown>;
/** Wall time of the uninterrupted run: random kills are drawn over it, so they fall in a run's life on any machine. */
let referenceMs = 10_000;
let referenceDir: string;
let referenceConfig: Record<string, unknown>;
const configWithoutPlace = (runDir: string) => {
  const config = JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8')) as { context: Record<string, unknown> };
  delete config.context.runDir;
  return config;
};

beforeAll(async () => {
  referenceDir = join(scratchDir('fault-ref'), 'run');
  const started = Date.now();
  const straight = await runWrn([...TRAIN, '--run-dir', referenceDir, '-q']);
  referenceMs = Date.now() - started;
  expect(straight.code, straight.stderr).toBe(0);
  reference = snapshot(referenceDir);
  referenceConfig = configWithoutPlace(referenceDir);
  expect(reference.files).toEqual([
    'checkpoints/best/manifest.json', 'checkpoints/best/model.json', 'checkpoints/best/optimizer.bin', 'checkpoints/best/optimizer.json', 'checkpoints/best/state.json', 'checkpoints/best/weights.bin',
    'checkpoints/last/manifest.json', 'checkpoints/last/model.json', 'checkpoints/last/optimizer.bin', 'checkpoints/last/optimizer.json', 'checkpoints/last/state.json', 'checkpoints/last/summary.json', 'checkpoints/last/weights.bin',
    'config.json', 'environment.json', 'metrics.jsonl', 'summary.json',
  ].filter((f) => f !== 'checkpoints/best/summary.json' || (reference.files as string[]).includes(f)));
});

function expectSameAsReference(runDir: string, context: string): void {
  expect(snapshot(runDir), context).toEqual(reference);
  expect(configWithoutPlace(runDir), context).toEqual(referenceConfig);
  expectWholeCheckpoint(join(runDir, 'checkpoints', 'last'));
  expectWholeCheckpoint(join(runDir, 'checkpoints', 'best'));
}

describe('kill -9 at random moments, then resume', () => {
  it('6 seeded trials of 4 kills at uniform random moments of a run\'s life (start-up included), two trials at a time', async () => {
    const trials = Array.from({ length: 6 }, (_, i) => 7001 + i);
    let kills = 0;
    let insideWrites = 0;
    let finishedRuns = 0;
    const runTrial = async (seed: number) => {
      const random = lcg(seed);
      let runDir = join(scratchDir(`fault-${seed}`), 'run');
      const log: string[] = [];
      let trialKills = 0;
      for (let attempts = 0; trialKills < 4; attempts++) {
        expect(attempts, `seed ${seed}: ${log.join('; ')}`).toBeLessThan(16);
        const delay = Math.round(200 + random() * 0.9 * referenceMs);
        const result = await attempt(nextCommand(runDir), { killAfterMs: delay });
        if (result.killedAt) {
          trialKills++;
          kills++;
          // A staging directory on disk: the kill landed inside a checkpoint write.
          const staging = existsSync(join(runDir, 'checkpoints')) && readdirSync(join(runDir, 'checkpoints')).some((n) => n.startsWith('.') || n.endsWith('.prev'));
          if (staging) insideWrites++;
          log.push(`${delay} ms: killed${staging ? ' inside a checkpoint write' : ''}`);
          continue;
        }
        // The run ended before the kill: it must equal the uninterrupted one; the next kills go to a new run.
        expect(result.code, `seed ${seed}: ${log.join('; ')}\n${result.stderr}`).toBe(0);
        expectSameAsReference(runDir, `seed ${seed}: ${log.join('; ')}`);
        finishedRuns++;
        log.push(`${delay} ms: finished`);
        runDir = join(scratchDir(`fault-${seed}-${attempts}`), 'run');
      }
      const last = await attempt(nextCommand(runDir));
      expect(last.code, `seed ${seed}: ${log.join('; ')}\n${last.stderr}`).toBe(0);
      expectSameAsReference(runDir, `seed ${seed}: ${log.join('; ')}`);
      finishedRuns++;
      return `seed ${seed}: ${log.join('; ')}`;
    };
    const lanes = [trials.filter((_, i) => i % 2 === 0), trials.filter((_, i) => i % 2 === 1)];
    const logs = (await Promise.all(lanes.map(async (lane) => {
      const out: string[] = [];
      for (const seed of lane) out.push(await runTrial(seed));
      return out;
    }))).flat();
    // The figures for the README: how many kills landed, where, and how many runs they were spread over.
    console.log(
      `random kills: ${kills} (${insideWrites} inside a checkpoint write) over ${finishedRuns} runs, each resumed to files identical to the uninterrupted run's ` +
        `(reference run ${referenceMs} ms)\n  ${logs.join('\n  ')}`,
    );
    expect(kills).toBeGreaterThanOrEqual(24);
  });
});

describe('kill -9 inside each window of the checkpoint commit', () => {
  it('repairs a stale best, a torn metrics line, last.prev alone and beside last, a staged last, and a missing summary', async () => {
    const runDir = join(scratchDir('fault-windows'), 'run');
    // Hits are counted per process: each resume restarts from the committed epoch.
    const windows: Array<{ point: string; then: RegExp }> = [
      { point: 'best:filled@1', then: /was older than the best epoch \(1\)[^\n]*copied it again/ }, // last = epoch 1, best not yet
      { point: 'run:metrics-appended@1', then: /resuming from .*checkpoints\/last \(epoch 1, step 4\)/ }, // epoch 2's line, no checkpoint
      { point: 'last:moved-previous@1', then: /moved .*last\.prev back to .*last/ }, // only last.prev (epoch 1) on disk
      { point: 'last:swapped@1', then: /removed .*last\.prev \(left by a kill after last was replaced\)/ }, // epoch 2 in, .prev not removed
      { point: 'last:staged@1', then: /removed .*\.last\.tmp-\d+-[0-9a-f]+ \(left by an interrupted write\)/ }, // epoch 3 staged whole
      { point: 'run:before-summary@1', then: /summary\.json was missing \(a kill after the final checkpoint\): restored it from/ },
    ];
    let previous: Attempt | undefined;
    for (const [i, window] of windows.entries()) {
      const result = await attempt(nextCommand(runDir).filter((a) => a !== '-q'), { killAtPoint: window.point.replace(/@\d+$/, ''), env: { WRN_TEST_FAULT_POINTS: `${window.point}=60000` } });
      expect(result.killedAt, `window ${window.point}: ${result.stderr}`).toBe(window.point.replace(/@\d+$/, ''));
      if (previous) expect(result.stderr, `after the kill at ${windows[i - 1]!.point}`).toMatch(windows[i - 1]!.then);
      previous = result;
    }
    const finish = await attempt(['train', '--resume', runDir]);
    expect(finish.code, finish.stderr).toBe(0);
    expect(finish.stderr).toMatch(windows.at(-1)!.then);
    expect(finish.stderr).toContain(`${runDir} has already finished (3 epochs, step 12`);
    expectSameAsReference(runDir, 'windows');
  });

  it('a best one epoch behind the best epoch last records: wrn eval takes last, resume copies it to best', async () => {
    // The state a kill between last's commit and best's copy leaves when a later epoch improves: built from the
    // reference by recording epoch 3 as best in last (with its manifest updated), best still holding epoch 1.
    const runDir = join(scratchDir('fault-stale-best'), 'run');
    cpSync(referenceDir, runDir, { recursive: true });
    const lastDir = join(runDir, 'checkpoints', 'last');
    const statePath = join(lastDir, 'state.json');
    const state = JSON.parse(readFileSync(statePath, 'utf8')) as { epoch: number; best: { epoch: number; testTop1Error: number } };
    state.best = { epoch: state.epoch, testTop1Error: 0.5 };
    writeFileSync(statePath, `${JSON.stringify(state, null, 2)}\n`);
    const manifestPath = join(lastDir, 'manifest.json');
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { files: Record<string, { bytes: number; sha256: string }> };
    const data = readFileSync(statePath);
    manifest.files['state.json'] = { bytes: data.length, sha256: sha(data) };
    writeFileSync(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
    expect(JSON.parse(readFileSync(join(runDir, 'checkpoints', 'best', 'state.json'), 'utf8')).epoch).toBe(1);

    const evaluated = await runWrn(['eval', '--checkpoint', runDir, '--json', '--backend', 'wasm', '--limit', '8']);
    expect(evaluated.code, evaluated.stderr).toBe(0);
    expect(JSON.parse(evaluated.stdout)).toMatchObject({ checkpoint: lastDir, epoch: 3 });
    const resumed = await runWrn(['train', '--resume', runDir, '--epochs', '4']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain(`${join(runDir, 'checkpoints', 'best')} was older than the best epoch (3) that ${lastDir} records: copied it again`);
  });
});

describe('two writers on one run directory', () => {
  it('a second train or resume of a directory in use exits 2 naming the holder; the first finishes as if alone', async () => {
    const runDir = join(scratchDir('fault-two'), 'run');
    const first = spawn(process.execPath, [BIN, ...TRAIN, '--run-dir', runDir, '-q'], {
      cwd: REPO_ROOT,
      // Held long enough for two more `wrn` processes to start and reach the lock on a loaded machine.
      env: { ...process.env, WRN_TEST_FAULT_POINTS: 'last:staged@1=12000' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let firstErr = '';
    const held = new Promise<void>((resolve) =>
      first.stderr.on('data', (chunk: Buffer) => {
        firstErr += chunk.toString();
        if (firstErr.includes('wrn-fault-point last:staged')) resolve();
      }),
    );
    const firstDone = new Promise<number | null>((resolve) => first.on('close', resolve));
    await held;
    const [second, resumed] = await Promise.all([runWrn([...TRAIN, '--run-dir', runDir, '-q']), runWrn(['train', '--resume', runDir, '-q'])]);
    for (const other of [second, resumed]) {
      expect(other.code, other.stderr).toBe(2);
      expect(other.stderr).toContain(`${runDir} is in use by another writer: wrn train --run-dir ${runDir} (pid ${first.pid} on `);
    }
    expect(await firstDone).toBe(0);
    expectSameAsReference(runDir, 'first writer');
  });
});

describe('resume refuses what would break it, before writing anything', () => {
  it('exits 2 naming the setting for model, data, augmentation, normalisation, limits, seed and run dir; the run is untouched', async () => {
    const runDir = join(scratchDir('fault-settings'), 'run');
    cpSync(referenceDir, runDir, { recursive: true });
    const before = snapshot(runDir);
    const configBefore = readFileSync(join(runDir, 'config.json'), 'utf8');
    const cases: Array<[string[], string]> = [
      [['--model', 'wrn-16-1'], `--model: model is "wrn-16-1", but the run in ${runDir} was trained with "wrn-10-1" (${join(runDir, 'config.json')})`],
      [['--augment', 'none'], `--augment: augmentation is "none", but the run in ${runDir} was trained with "reflect"`],
      [['--normalize', 'scale'], `--normalize: normalization is "scale", but the run in ${runDir} was trained with "paper"`],
      [['--train-limit', '48'], `--train-limit: trainLimit is 48, but the run in ${runDir} was trained with 64`],
      [['--test-limit', '10'], `--test-limit: testLimit is 10, but the run in ${runDir} was trained with 32`],
      [['--data-dir', join(REPO_ROOT, '..', 'shared', 'data', 'cifar10-subset')], `--data-dir: dataDir is "${join(REPO_ROOT, '..', 'shared', 'data', 'cifar10-subset')}", but the run in ${runDir} was trained with nothing (unset)`],
      [['--seed', '8'], `--seed: seed is 8, but the run in ${runDir} was trained with 7`],
      [['--run-dir', `${runDir}-copy`], `--run-dir: ${runDir}-copy differs from the run being resumed (--resume ${runDir})`],
    ];
    for (const [flags, message] of cases) {
      const result = await wrnHere(['train', '--resume', runDir, '--epochs', '4', ...flags]);
      expect(result.code, flags.join(' ')).toBe(2);
      expect(result.stderr).toContain(message);
    }
    // A finished run: said so, exit 0, nothing touched (also when fewer epochs are asked for).
    for (const epochs of [[], ['--epochs', '1']]) {
      const done = await wrnHere(['train', '--resume', runDir, ...epochs]);
      expect(done.code, done.stderr).toBe(0);
      expect(done.stderr).toContain(`${runDir} has already finished (3 epochs, step 12`);
    }
    expect(snapshot(runDir)).toEqual(before);
    expect(readFileSync(join(runDir, 'config.json'), 'utf8')).toBe(configBefore);
    expect(existsSync(join(runDir, '.lock'))).toBe(false);
    // Not a run directory, not a config file: exit 2 naming the path.
    const file = join(runDir, 'metrics.jsonl');
    expect(await wrnHere([...TRAIN, '--run-dir', file])).toMatchObject({ code: 2, stderr: `wrn: error: --run-dir ${file}: is a file, not a directory; give a new or existing run directory\n` });
    expect(await wrnHere([...TRAIN, '--config', runDir])).toMatchObject({ code: 2, stderr: `wrn: error: --config ${runDir}: is a directory; expected a .json, .yaml or .yml file\n` });
    // A config file validates through the flags' schema: what --momentum refuses, optimizer.momentum refuses too.
    const config = join(scratchDir('fault-config'), 'run.json');
    writeFileSync(config, JSON.stringify({ optimizer: { momentum: 5, dampening: 2, nesterov: false } }));
    const bad = await wrnHere([...TRAIN, '--config', config, '--dry-run']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`${config}: optimizer.momentum: Too big: expected number to be <=1 (got 5)`);
    expect(bad.stderr).toContain(`${config}: optimizer.dampening: Too big: expected number to be <=1 (got 2)`);
  });

  it('corrupt checkpoints and configs exit 2 naming the file; a damaged last falls back to best with a warning', async () => {
    const runDir = join(scratchDir('fault-corrupt'), 'run');
    cpSync(referenceDir, runDir, { recursive: true });
    // cpSync copies bytes, so last and best no longer share inodes. One bit of last/optimizer.bin flipped:
    const optimizerBin = join(runDir, 'checkpoints', 'last', 'optimizer.bin');
    const bytes = readFileSync(optimizerBin);
    bytes[1000] = bytes[1000]! ^ 1;
    writeFileSync(optimizerBin, bytes);
    const eval1 = await runWrn(['eval', '--checkpoint', join(runDir, 'checkpoints', 'last'), '--backend', 'wasm']);
    expect(eval1.code).toBe(2);
    expect(eval1.stderr).toContain(`${optimizerBin} does not match its SHA-256 in ${join(runDir, 'checkpoints', 'last', 'manifest.json')}: the file is damaged`);
    const resumed = await runWrn(['train', '--resume', runDir, '--epochs', '4', '-q']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain(`warning: ${optimizerBin} does not match its SHA-256`);
    expect(resumed.stderr).toMatch(/resuming from the newest checkpoint that passes its checks instead: .*checkpoints\/best \(epoch \d, step \d+\)/);
    expectWholeCheckpoint(join(runDir, 'checkpoints', 'last'));
    // No good checkpoint at all, and a config.json that is not JSON: exit 2 naming the file.
    writeFileSync(join(runDir, 'checkpoints', 'last', 'state.json'), '{"epoch": -1');
    writeFileSync(join(runDir, 'checkpoints', 'best', 'weights.bin'), '');
    const none = await runWrn(['train', '--resume', runDir, '--epochs', '5', '-q']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain(`${join(runDir, 'checkpoints', 'last', 'state.json')} has 12 bytes`);
    // best may share last's files (hard links) if epoch 4 improved on it: then its state.json is the damaged one.
    expect(none.stderr).toContain('no checkpoint of the run passes its checks:');
    expect(none.stderr).toMatch(/checkpoints\/best\/(state\.json|weights\.bin) has (12|0) bytes/);
    writeFileSync(join(runDir, 'config.json'), '{"model": ');
    const badConfig = await runWrn(['train', '--resume', runDir, '--epochs', '5']);
    expect(badConfig.code).toBe(2);
    expect(badConfig.stderr).toContain(`--resume ${runDir}: ${join(runDir, 'config.json')} is not valid JSON`);
  });
});

describe('disk full', () => {
  const root = process.getuid?.() === 0;
  it.skipIf(!root && !process.env.CI)('ENOSPC on a small tmpfs: exit 1 naming the run directory, the last checkpoint stays whole and resumes', async () => {
    if (!root) throw new Error('the disk-full test mounts a tmpfs and needs root (CI runs as root)');
    const mountPoint = scratchDir('fault-tmpfs');
    // 1.2 MB: room for one wrn-10-1 checkpoint (0.65 MB) and the run's small files, not for a second beside it.
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1200k', 'tmpfs', mountPoint]);
    expect(mounted.status, mounted.stderr.toString()).toBe(0);
    try {
      const runDir = join(mountPoint, 'run');
      const full = await runWrn([...TRAIN, '--run-dir', runDir, '-q']);
      expect(full.code, full.stderr).toBe(1);
      expect(full.stderr).toContain(`no space left on the device of the run directory ${runDir}`);
      expect(full.stderr).toContain(`resume with: wrn train --resume ${runDir}`);
      expectWholeCheckpoint(join(runDir, 'checkpoints', 'last'));
      expect(readdirSync(join(runDir, 'checkpoints')).filter((n) => n.startsWith('.'))).toEqual([]);
      expect(existsSync(join(runDir, '.lock'))).toBe(false);
      // Space freed (a bigger disk): the run resumes from that checkpoint and ends as the uninterrupted one.
      const bigger = join(scratchDir('fault-moved'), 'run');
      cpSync(runDir, bigger, { recursive: true });
      writeFileSync(join(bigger, 'config.json'), readFileSync(join(bigger, 'config.json'), 'utf8').replaceAll(runDir, bigger));
      const resumed = await runWrn(['train', '--resume', bigger, '-q']);
      expect(resumed.code, resumed.stderr).toBe(0);
      expectSameAsReference(bigger, 'after disk full');
    } finally {
      spawnSync('umount', ['-l', mountPoint]);
    }
  });
  if (!root && !process.env.CI) console.log('skipping the disk-full test: mounting a tmpfs needs root (CI runs as root, where it must run)');
});

describe('signals from the first instant', () => {
  it('SIGINT, SIGTERM and SIGHUP at wrn\'s first line exit 130, 143 and 129 with a message', async () => {
    for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
      const runDir = join(scratchDir(`fault-${signal}`), 'run');
      const child = spawn(process.execPath, [BIN, ...TRAIN, '--run-dir', runDir], {
        cwd: REPO_ROOT,
        env: { ...process.env, WRN_TEST_FAULT_POINTS: 'cli:start=0' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      let sent = false;
      // At wrn's first line (after Node's own start-up), while it imports TF.js: the earliest moment wrn can act.
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (!sent && stderr.includes('wrn-fault-point cli:start')) {
          sent = true;
          child.kill(signal);
        }
      });
      const exit = await new Promise<number | null>((resolve) => child.on('close', resolve));
      expect(exit, stderr).toBe(code);
      expect(stderr).toMatch(new RegExp(`${signal}: (stopped \\(exit ${code}\\)|stopping training after the current step)`));
      expect(existsSync(join(runDir, '.lock'))).toBe(false);
    }
  });

  it('SIGTERM mid-epoch saves checkpoints/last and exits 143 with the resume command', async () => {
    const runDir = join(scratchDir('fault-term'), 'run');
    const child = spawn(process.execPath, [BIN, ...TRAIN, '--run-dir', runDir], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      // Once epoch 1's line is out: the signal lands in epoch 2, which stops after its current step.
      if (!sent && chunk.toString().includes('epoch 1/3 |')) {
        sent = true;
        child.kill('SIGTERM');
      }
    });
    const exit = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(exit, stderr).toBe(143);
    expect(stderr).toContain(`resume with: wrn train --resume ${runDir}`);
    const resumed = await runWrn(['train', '--resume', runDir, '-q']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(snapshot(runDir)).toEqual(reference);
  });
});
