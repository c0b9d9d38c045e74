import { defineConfig } from 'vite';

// Cross-origin isolation (COOP + COEP) gives the page SharedArrayBuffer, which tfjs-backend-wasm's threaded build
// needs; serve.mjs sends the same headers for the built files.
const isolation = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };

export default defineConfig({
  base: './',
  // The CLI's embedded CIFAR-10 sample, served and copied into dist/ unchanged (dist/cifar10-sample/*.bin).
  publicDir: '../../packages/cli/data',
  server: { headers: isolation, fs: { allow: ['../..'] } },
  preview: { headers: isolation },
  // Whitespace and syntax only: tfjs-backend-wasm starts its pthread workers from its factory function's source
  // text (Function.prototype.toString), which breaks when a minifier renames what that function refers to.
  build: { target: 'es2022', chunkSizeWarningLimit: 4096, minify: 'esbuild' },
  esbuild: { minifyIdentifiers: false, minifySyntax: true, minifyWhitespace: true },
});
