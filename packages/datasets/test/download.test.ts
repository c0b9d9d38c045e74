import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

import * as tar from 'tar';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { DATASETS, DownloadError, datasetDir, defaultCacheRoot, downloadDataset, loadCifar10, loadSvhn } from '../src/node.js';
import type { DatasetSpec, DownloadProgress } from '../src/index.js';
import { svhnFixture } from './mat-writer.js';
import { cifarRecord, concatBytes, tempDir } from './helpers.js';

const scratch = tempDir('download');
let server: Server;
let base = '';
/** Served files by URL path. */
const served = new Map<string, Buffer>();
let mode: 'normal' | 'cut-once' | 'ignore-range' | 'stall-headers' | 'stall-body' = 'normal';
let requests: Array<{ path: string; range: string | undefined }> = [];
let archive: Buffer;
let archiveMd5 = '';

const md5 = (bytes: Uint8Array) => createHash('md5').update(bytes).digest('hex');

beforeAll(async () => {
  // A small archive in the official layout: cifar-10-batches-bin/ with five training batches and a test batch.
  const source = join(scratch.path, 'source');
  mkdirSync(join(source, 'cifar-10-batches-bin'), { recursive: true });
  const noise = randomBytes(3072 * 12);
  const batch = (first: number, labels: number[]) =>
    concatBytes(labels.map((label, i) => cifarRecord([label], (r, c, k) => noise[(first + i) * 3072 + k * 1024 + r * 32 + c]!)));
  for (let b = 1; b <= 5; b++) writeFileSync(join(source, 'cifar-10-batches-bin', `data_batch_${b}.bin`), batch(2 * b, [b, 9 - b]));
  writeFileSync(join(source, 'cifar-10-batches-bin', 'test_batch.bin'), batch(0, [3, 4]));
  writeFileSync(join(source, 'cifar-10-batches-bin', 'batches.meta.txt'), DATASETS.cifar10.classNames.join('\n') + '\n');
  const archivePath = join(scratch.path, 'cifar-10-binary.tar.gz');
  await tar.c({ gzip: true, file: archivePath, cwd: source }, ['cifar-10-batches-bin']);
  archive = readFileSync(archivePath);
  archiveMd5 = md5(archive);
  served.set('/cifar-10-binary.tar.gz', archive);

  server = createServer((req, res) => {
    const body = served.get(req.url ?? '');
    requests.push({ path: req.url ?? '', range: req.headers.range });
    // A server that accepts the connection and then goes quiet: before its headers, or half-way through the body.
    if (mode === 'stall-headers') return;
    if (mode === 'stall-body' && body !== undefined) {
      res.writeHead(200, { 'Content-Length': body.length });
      res.write(body.subarray(0, Math.floor(body.length / 3)));
      return;
    }
    if (body === undefined) {
      res.writeHead(404, 'Not Found').end();
      return;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && mode !== 'ignore-range') {
      const start = Number(range[1]);
      if (start >= body.length) {
        res.writeHead(416, { 'Content-Range': `bytes */${body.length}` }).end();
        return;
      }
      res.writeHead(206, { 'Content-Length': body.length - start, 'Content-Range': `bytes ${start}-${body.length - 1}/${body.length}` });
      res.end(body.subarray(start));
      return;
    }
    res.writeHead(200, { 'Content-Length': body.length });
    if (mode === 'cut-once') {
      mode = 'normal';
      // Send part of the body, let it arrive, then drop the connection as a flaky network would.
      res.write(body.subarray(0, Math.floor(body.length / 2)), () => setTimeout(() => res.socket?.destroy(), 500));
      return;
    }
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  scratch.remove();
});

beforeEach(() => {
  mode = 'normal';
  requests = [];
});

function localCifar10(overrides: { md5?: string; url?: string } = {}): DatasetSpec {
  const file = DATASETS.cifar10.files[0]!;
  return {
    ...DATASETS.cifar10,
    files: [{ ...file, url: overrides.url ?? `${base}/cifar-10-binary.tar.gz`, md5: overrides.md5 ?? archiveMd5, bytes: undefined }],
  };
}

let dirCount = 0;
const freshDir = () => join(scratch.path, `dl-${dirCount++}`);

function expectNoLeftovers(dir: string): void {
  expect(readdirSync(dir).filter((name) => name.endsWith('.part') || name.startsWith('.extract-'))).toEqual([]);
}

describe('downloadDataset over loopback', () => {
  it('fetches, verifies, unpacks, reports progress, and the loader reads the result', async () => {
    const dir = freshDir();
    const events: DownloadProgress[] = [];
    const result = await downloadDataset(localCifar10(), { dir, onProgress: (p) => events.push({ ...p }) });
    expect(result).toEqual({ dir, files: [join(dir, 'cifar-10-binary.tar.gz')], alreadyPresent: [] });
    const phases = [...new Set(events.map((e) => e.phase))];
    expect(phases).toEqual(['download', 'verify', 'extract', 'done']);
    const downloads = events.filter((e) => e.phase === 'download');
    expect(downloads.at(-1)!.receivedBytes).toBe(archive.length);
    expect(downloads.every((e) => e.totalBytes === archive.length)).toBe(true);
    expect(downloads.map((e) => e.receivedBytes)).toEqual([...downloads.map((e) => e.receivedBytes)].sort((a, b) => a - b));
    const train = loadCifar10(dir);
    expect(train.count).toBe(10);
    expect(Array.from(train.labels)).toEqual([1, 8, 2, 7, 3, 6, 4, 5, 5, 4]);
    expect(loadCifar10(dir, { split: 'test' }).count).toBe(2);
    expectNoLeftovers(dir);

    // A second run finds the splits in place and touches no network.
    requests = [];
    const again = await downloadDataset(localCifar10(), { dir });
    expect(again.alreadyPresent).toEqual(['train', 'test']);
    expect(again.files).toEqual([]);
    expect(requests).toEqual([]);
  });

  it('keeps a dropped transfer as .part under another name and resumes it with Range on the next run', async () => {
    const dir = freshDir();
    mode = 'cut-once';
    const failure = await downloadDataset(localCifar10(), { dir, retries: 0 }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(DownloadError);
    expect((failure as DownloadError).resumable).toBe(true);
    const half = Math.floor(archive.length / 2);
    const message = (failure as Error).message;
    expect(message).toMatch(
      new RegExp(`^Download of cifar-10-binary\\.tar\\.gz from ${base}/cifar-10-binary\\.tar\\.gz stopped at \\d+ of ${archive.length} bytes .*The partial file .*cifar-10-binary\\.tar\\.gz\\.part is kept: run the command again to resume\\.$`),
    );
    // Bytes still queued in the client when the socket dies are lost, so the kept part may be a little short.
    const kept = Number(/stopped at (\d+) of/.exec(message)![1]);
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(half);
    expect(existsSync(join(dir, 'cifar-10-binary.tar.gz'))).toBe(false);
    expect(statSync(join(dir, 'cifar-10-binary.tar.gz.part')).size).toBe(kept);

    const events: DownloadProgress[] = [];
    await downloadDataset(localCifar10(), { dir, onProgress: (p) => events.push({ ...p }) });
    expect(requests.map((r) => r.range)).toEqual([undefined, `bytes=${kept}-`]);
    expect(events.find((e) => e.phase === 'download')).toMatchObject({ resumed: true, receivedBytes: kept });
    expect(md5(readFileSync(join(dir, 'cifar-10-binary.tar.gz')))).toBe(archiveMd5);
    expect(loadCifar10(dir).count).toBe(10);
    expectNoLeftovers(dir);
  });

  it('resumes within one run when retries are allowed', async () => {
    const dir = freshDir();
    mode = 'cut-once';
    await downloadDataset(localCifar10(), { dir });
    expect(requests).toHaveLength(2);
    expect(requests[1]!.range).toMatch(/^bytes=[1-9]\d*-$/);
    expect(loadCifar10(dir, { split: 'test' }).count).toBe(2);
  });

  it('restarts cleanly when the server ignores Range', async () => {
    const dir = freshDir();
    mkdirSync(dir);
    writeFileSync(join(dir, 'cifar-10-binary.tar.gz.part'), randomBytes(1000));
    mode = 'ignore-range';
    await downloadDataset(localCifar10(), { dir });
    expect(requests.map((r) => r.range)).toEqual(['bytes=1000-']);
    expect(md5(readFileSync(join(dir, 'cifar-10-binary.tar.gz')))).toBe(archiveMd5);
    expectNoLeftovers(dir);
  });

  it('starts over once when a resumed file fails its MD5 (a corrupt kept part)', async () => {
    const dir = freshDir();
    mkdirSync(dir);
    writeFileSync(join(dir, 'cifar-10-binary.tar.gz.part'), randomBytes(500));
    await downloadDataset(localCifar10(), { dir });
    expect(requests.map((r) => r.range)).toEqual(['bytes=500-', undefined]);
    expect(md5(readFileSync(join(dir, 'cifar-10-binary.tar.gz')))).toBe(archiveMd5);
  });

  it('deletes a file that fails its MD5 and never gives it the final name', async () => {
    const dir = freshDir();
    const wrong = '0'.repeat(32);
    await expect(downloadDataset(localCifar10({ md5: wrong }), { dir })).rejects.toThrowError(
      `cifar-10-binary.tar.gz from ${base}/cifar-10-binary.tar.gz has MD5 ${archiveMd5}, expected ${wrong}; the file was deleted. Run the command again to restart the download.`,
    );
    expect(readdirSync(dir)).toEqual([]);
  });

  it('reports an HTTP error with the status', async () => {
    const dir = freshDir();
    await expect(downloadDataset(localCifar10({ url: `${base}/missing.tar.gz` }), { dir })).rejects.toThrowError(
      `Cannot download cifar-10-binary.tar.gz from ${base}/missing.tar.gz: HTTP 404 Not Found.`,
    );
  });

  it('without a network says how to place the files by hand, and then installs them without one', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/cifar-10-binary.tar.gz`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const dir = freshDir();
    const offline = localCifar10({ url: deadUrl });
    const error = (await downloadDataset(offline, { dir }).catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(DownloadError);
    expect(error.message).toContain(`Cannot download cifar-10-binary.tar.gz from ${deadUrl}: fetch failed`);
    expect(error.message).toContain('ECONNREFUSED');
    expect(error.message).toContain(
      `To install it by hand: on a machine with network access download ${deadUrl} (MD5 ${archiveMd5}), copy it to ` +
        `${join(dir, 'cifar-10-binary.tar.gz')} and run this command again: it verifies the MD5 and unpacks it without ` +
        `the network. Or unpack it yourself so that ${join(dir, 'cifar-10-batches-bin', 'data_batch_1.bin')} exists.`,
    );
    // A wrong file in place is reported, kept, and replaced only by a verified download.
    writeFileSync(join(dir, 'cifar-10-binary.tar.gz'), 'truncated');
    await expect(downloadDataset(offline, { dir })).rejects.toThrowError(
      `${join(dir, 'cifar-10-binary.tar.gz')} is present but has MD5 ${md5(Buffer.from('truncated'))}, expected ${archiveMd5}, so it is downloaded again. Cannot download`,
    );
    expect(readFileSync(join(dir, 'cifar-10-binary.tar.gz'), 'utf8')).toBe('truncated');
    // Following the advice works with the network still down.
    copyFileSync(join(scratch.path, 'cifar-10-binary.tar.gz'), join(dir, 'cifar-10-binary.tar.gz'));
    const result = await downloadDataset(offline, { dir });
    expect(result.files).toEqual([join(dir, 'cifar-10-binary.tar.gz')]);
    expect(loadCifar10(dir).count).toBe(10);
  });

  it('fetches plain files (SVHN) and only the splits asked for', async () => {
    const trainMat = Buffer.from(svhnFixture([1, 0, 7], (n, r, c, k) => n + r + c + k, { compress: true }));
    const testMat = Buffer.from(svhnFixture([4], () => 9, { compress: false }));
    served.set('/train_32x32.mat', trainMat);
    served.set('/test_32x32.mat', testMat);
    const spec: DatasetSpec = {
      ...DATASETS.svhn,
      files: DATASETS.svhn.files.map((f) => ({
        ...f,
        url: `${base}/${f.fileName}`,
        md5: f.fileName === 'train_32x32.mat' ? md5(trainMat) : f.fileName === 'test_32x32.mat' ? md5(testMat) : f.md5,
      })),
    };
    const dir = freshDir();
    const result = await downloadDataset(spec, { dir, splits: ['train'] });
    expect(result.files).toEqual([join(dir, 'train_32x32.mat')]);
    expect(requests.map((r) => r.path)).toEqual(['/train_32x32.mat']);
    expect(Array.from(loadSvhn(dir).labels)).toEqual([1, 0, 7]);
    await downloadDataset(spec, { dir });
    expect(loadSvhn(dir, { split: 'test' }).count).toBe(1);
    await expect(downloadDataset(spec, { dir, splits: ['valid'] })).rejects.toThrowError(
      "svhn: split 'valid' is not one of 'train', 'test', 'extra'",
    );
  });
});

describe('downloads that stall, are cut, or find files already in place', () => {
  it('gives up on a server that sends no headers after the stall timeout, keeping nothing under the final name', async () => {
    const dir = freshDir();
    mode = 'stall-headers';
    const started = Date.now();
    const error = (await downloadDataset(localCifar10(), { dir, stallTimeoutMs: 400, retries: 1 }).catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(DownloadError);
    expect(error.message).toBe(
      `Download of cifar-10-binary.tar.gz from ${base}/cifar-10-binary.tar.gz stopped at 0 bytes (no bytes from the server for 0.4 s (stall timeout)). ` +
        `The partial file ${join(dir, 'cifar-10-binary.tar.gz.part')} is kept: run the command again to resume.`,
    );
    expect(requests).toHaveLength(2); // the first try and one retry, 0.4 s each
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(existsSync(join(dir, 'cifar-10-binary.tar.gz'))).toBe(false);
  });

  it('gives up on a body that stops arriving, keeps the part, and the next run resumes it with Range', async () => {
    const dir = freshDir();
    mode = 'stall-body';
    const progress: DownloadProgress[] = [];
    const error = (await downloadDataset(localCifar10(), { dir, stallTimeoutMs: 400, retries: 0, onProgress: (p) => progress.push(p) }).catch((e: unknown) => e)) as Error;
    const third = Math.floor(archive.length / 3);
    expect(error.message).toContain(`stopped at ${third} of ${archive.length} bytes (no bytes from the server for 0.4 s (stall timeout))`);
    expect(progress.some((p) => p.phase === 'download' && p.receivedBytes === third)).toBe(true);
    expect(statSync(join(dir, 'cifar-10-binary.tar.gz.part')).size).toBe(third);
    mode = 'normal';
    requests = [];
    await downloadDataset(localCifar10(), { dir, stallTimeoutMs: 400 });
    expect(requests.map((r) => r.range)).toEqual([`bytes=${third}-`]);
    expect(md5(readFileSync(join(dir, 'cifar-10-binary.tar.gz')))).toBe(archiveMd5);
  });

  it('reports the MD5 failure of a resumed part when the fresh restart is then cut', async () => {
    const dir = freshDir();
    mkdirSync(dir);
    writeFileSync(join(dir, 'cifar-10-binary.tar.gz.part'), randomBytes(500));
    mode = 'cut-once';
    const error = (await downloadDataset(localCifar10(), { dir, retries: 0 }).catch((e: unknown) => e)) as Error;
    expect(error.message).toMatch(
      new RegExp(`^cifar-10-binary\\.tar\\.gz \\(resumed from a kept partial file\\) had MD5 [0-9a-f]{32}, expected ${archiveMd5}, so it was downloaded again from the start\\. Download of cifar-10-binary\\.tar\\.gz .* stopped at`),
    );
  });

  it('checks the MD5 of an SVHN file already in place: a good one is kept without a request, a damaged one is fetched again', async () => {
    const testMat = Buffer.from(svhnFixture([4, 2], () => 9, { compress: false }));
    served.set('/test_32x32.mat', testMat);
    const spec: DatasetSpec = {
      ...DATASETS.svhn,
      files: DATASETS.svhn.files.map((f) => ({ ...f, url: `${base}/${f.fileName}`, md5: f.fileName === 'test_32x32.mat' ? md5(testMat) : f.md5 })),
    };
    const dir = freshDir();
    mkdirSync(dir);
    writeFileSync(join(dir, 'test_32x32.mat'), testMat);
    expect(await downloadDataset(spec, { dir, splits: ['test'] })).toEqual({ dir, files: [join(dir, 'test_32x32.mat')], alreadyPresent: ['test'] });
    expect(requests).toEqual([]);
    writeFileSync(join(dir, 'test_32x32.mat'), randomBytes(1000)); // 1,000 random bytes under the right name
    const result = await downloadDataset(spec, { dir, splits: ['test'] });
    expect(result.alreadyPresent).toEqual([]);
    expect(requests.map((r) => r.path)).toEqual(['/test_32x32.mat']);
    expect(readFileSync(join(dir, 'test_32x32.mat'))).toEqual(testMat);
  });

  it('removes the scratch folders of an unpack that a kill interrupted', async () => {
    const dir = freshDir();
    mkdirSync(join(dir, '.extract-999999-0123456789ab', 'cifar-10-batches-bin'), { recursive: true });
    mkdirSync(join(dir, '.extract-a1b2c3d4e5f6'), { recursive: true }); // the older name, without a pid
    writeFileSync(join(dir, '.extract-999999-0123456789ab', 'cifar-10-batches-bin', 'data_batch_1.bin'), randomBytes(3073));
    await downloadDataset(localCifar10(), { dir });
    expectNoLeftovers(dir);
    expect(loadCifar10(dir).count).toBe(10);
  });
});

describe('cache directory', () => {
  it('is the flag, else $WRN_DATA_DIR/<name>, else the XDG or home cache', () => {
    expect(datasetDir('cifar10', '/data/c10', { WRN_DATA_DIR: '/env' })).toBe('/data/c10');
    expect(datasetDir('cifar10', undefined, { WRN_DATA_DIR: '/env' })).toBe('/env/cifar10');
    expect(defaultCacheRoot({ XDG_CACHE_HOME: '/xdg' })).toBe('/xdg/wrn/datasets');
    expect(defaultCacheRoot({})).toMatch(/\.cache\/wrn\/datasets$/);
  });

  it('the registry carries the official URLs and MD5s', () => {
    expect(DATASETS.cifar10.files.map((f) => [f.url, f.md5])).toEqual([
      ['https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz', 'c32a1d4ab5d03f1284b67883e8d87530'],
    ]);
    expect(DATASETS.cifar100.files.map((f) => [f.url, f.md5])).toEqual([
      ['https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz', '03b5dce01913d631647c71ecec9e9cb8'],
    ]);
    expect(DATASETS.svhn.files.map((f) => [f.url, f.md5])).toEqual([
      ['http://ufldl.stanford.edu/housenumbers/train_32x32.mat', 'e26dedcc434d2e4c54c9b2d4a06d8373'],
      ['http://ufldl.stanford.edu/housenumbers/test_32x32.mat', 'eb5a983be6a315427106f1b164d9cef3'],
      ['http://ufldl.stanford.edu/housenumbers/extra_32x32.mat', 'a93ce644f1a588dc4d68dda5feec44a7'],
    ]);
  });
});
