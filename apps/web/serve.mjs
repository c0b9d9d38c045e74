#!/usr/bin/env node
// Serves the built app (apps/web/dist) on 127.0.0.1 with the cross-origin isolation headers (COOP/COEP) that give
// the page SharedArrayBuffer, so tfjs-backend-wasm runs its threaded build. `npm run web` builds, then runs this.
//   node apps/web/serve.mjs [--port 8080] [--host 127.0.0.1] [--models DIR]   (DIR served under /models/)
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.bin': 'application/octet-stream',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.svg': 'image/svg+xml',
};

export const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

function fileFor(roots, urlPath) {
  for (const [prefix, root] of roots) {
    if (!urlPath.startsWith(prefix)) continue;
    const relative = normalize(decodeURIComponent(urlPath.slice(prefix.length))).replace(/^([/\\])+/, '');
    const file = resolve(root, relative);
    if (file !== root && !file.startsWith(root + sep)) return null; // outside the root: refuse
    const target = existsSync(file) && statSync(file).isDirectory() ? join(file, 'index.html') : file;
    if (existsSync(target)) return target;
  }
  return null;
}

/** Starts the server; resolves with its URL. `port` 0 picks a free one. */
export function startServer({ root = fileURLToPath(new URL('./dist', import.meta.url)), port = 8080, host = '127.0.0.1', models = null } = {}) {
  const absoluteRoot = resolve(root);
  if (!existsSync(join(absoluteRoot, 'index.html'))) {
    throw new Error(`${join(absoluteRoot, 'index.html')} does not exist: build the app first (npx nx run @wrn/web:build)`);
  }
  const roots = [...(models ? [['/models/', resolve(models)]] : []), ['/', absoluteRoot]];
  const server = createServer((req, res) => {
    const urlPath = new URL(req.url ?? '/', 'http://localhost').pathname;
    const file = fileFor(roots, urlPath);
    if (!file || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(file ? 405 : 404, { 'Content-Type': 'text/plain', ...ISOLATION_HEADERS });
      res.end(file ? 'method not allowed' : `not found: ${urlPath}`);
      return;
    }
    res.writeHead(200, {
      'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
      'Content-Length': statSync(file).size,
      'Cache-Control': 'no-cache',
      ...ISOLATION_HEADERS,
    });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).pipe(res);
  });
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const address = server.address();
      resolvePromise({ url: `http://${host}:${address.port}/`, close: () => new Promise((r) => server.close(r)) });
    });
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const flag = (name, fallback) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : fallback;
  };
  const port = Number(flag('port', process.env.PORT ?? 8080));
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`--port ${flag('port')}: expected an integer from 0 to 65535`);
    process.exit(2);
  }
  try {
    const { url } = await startServer({ port, host: flag('host', '127.0.0.1'), models: flag('models', null) });
    console.log(`@wrn web app: ${url} (cross-origin isolated: wasm runs threaded). Ctrl-C stops it.`);
  } catch (error) {
    console.error(error.message);
    process.exit(error.code === 'EADDRINUSE' ? 1 : 2);
  }
}
