import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runWrn, scratchDir } from './run-wrn.js';

const SAMPLE = join(__dirname, '..', 'data', 'cifar10-sample');

describe('wrn datasets download', () => {
  let server: Server;
  let mirror: string;
  const requested: string[] = [];

  beforeAll(async () => {
    // A mirror on loopback that serves the wrong bytes for every file: the MD5 check must catch it.
    server = createServer((request, response) => {
      requested.push(request.url ?? '');
      response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '1024' });
      response.end(Buffer.alloc(1024, 7));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    mirror = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('fetches from --mirror, rejects a file whose MD5 is wrong, exits 1 and leaves no file under the final name', async () => {
    const dir = scratchDir('download');
    const result = await runWrn(['datasets', 'download', 'svhn', '--splits', 'test', '--dir', dir, '--mirror', mirror]);
    expect(requested).toContain('/test_32x32.mat');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`test_32x32.mat from ${mirror}test_32x32.mat has MD5`);
    expect(result.stderr).toContain('expected eb5a983be6a315427106f1b164d9cef3');
    expect(existsSync(join(dir, 'test_32x32.mat'))).toBe(false);
    expect(readdirSync(dir).filter((name) => name.startsWith('test_32x32.mat'))).toEqual([]);
  });

  it('fetches nothing for a split whose files are already in place', async () => {
    const dir = scratchDir('present');
    mkdirSync(join(dir, 'cifar-10-batches-bin'));
    copyFileSync(join(SAMPLE, 'test_batch.bin'), join(dir, 'cifar-10-batches-bin', 'test_batch.bin'));
    const before = requested.length;
    const result = await runWrn(['datasets', 'download', 'cifar10', '--splits', 'test', '--dir', dir, '--mirror', mirror, '--json']);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ dir, files: [], alreadyPresent: ['test'] });
    expect(requested.length).toBe(before);
  });
});
