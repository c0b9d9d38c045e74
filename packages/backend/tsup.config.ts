import { packageBuild } from '../../tsup.shared';

// Two entries: the browser-safe main one and ./node (backend selection, Dawn, the threaded wasm set-up, the native
// loader). `splitting` makes both formats share one copy of the modules they have in common (module state such as
// registered kernels stays single). shims: the CommonJS build gets import.meta.url (webgpu-dawn resolves Dawn's
// package from its own location).
export default packageBuild({ entry: ['src/index.ts', 'src/node.ts'], splitting: true, shims: true });
