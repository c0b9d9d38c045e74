import { io } from '@tensorflow/tfjs-core';
import { writeFileAtomic } from './fs-atomic.js';
import { registerCustomLayers } from './layers/index.js';

export const MODEL_JSON_FILE = 'model.json';
export const WEIGHTS_FILE = 'weights.bin';

/** model.json as written by {@link fileSystemIO}: the TF.js format plus a checksum of weights.bin. */
interface StoredModelJSON extends io.ModelJSON {
  weightsSha256?: string;
}

// Node built-ins are imported lazily so that importing @wrn/blocks in a browser bundle does not pull them in.
const nodeFs = () => import('node:fs/promises');

function join(dir: string, file: string): string {
  return dir.endsWith('/') || dir.endsWith('\\') ? `${dir}${file}` : `${dir}/${file}`;
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const { createHash } = await import('node:crypto');
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * A TF.js save+load handler for a directory on the local file system: `model.json` (topology, weight manifest,
 * training config, user metadata) and `weights.bin` (all weights, one file). Works with any backend, unlike
 * `file://`, which needs tfjs-node.
 *
 *   await model.save(fileSystemIO('runs/x/checkpoints/last'));
 *   const loaded = await loadLayersModel(fileSystemIO('runs/x/checkpoints/last'));
 *
 * Each file is written atomically (temp file + rename), weights.bin before model.json; model.json records the
 * SHA-256 of weights.bin, so a save interrupted between the two renames is detected on load instead of loading
 * mismatched weights. The directory is created if missing; other files in it are left alone.
 */
export function fileSystemIO(dir: string): io.IOHandler {
  if (typeof dir !== 'string' || dir.length === 0) {
    throw new TypeError(`fileSystemIO: expected a directory path, got ${JSON.stringify(dir)}`);
  }
  const modelPath = join(dir, MODEL_JSON_FILE);
  const weightsPath = join(dir, WEIGHTS_FILE);

  return {
    async save(artifacts: io.ModelArtifacts): Promise<io.SaveResult> {
      if (artifacts.modelTopology instanceof ArrayBuffer) {
        throw new Error('fileSystemIO: binary model topologies (graph models) are not supported, only layers models');
      }
      const weightData = artifacts.weightData == null ? new ArrayBuffer(0) : io.CompositeArrayBuffer.join(artifacts.weightData);
      const weightBytes = new Uint8Array(weightData);
      const modelJSON: StoredModelJSON = {
        modelTopology: artifacts.modelTopology ?? {},
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy ?? 'TensorFlow.js',
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: [WEIGHTS_FILE], weights: artifacts.weightSpecs ?? [] }],
        weightsSha256: await sha256(weightBytes),
      };
      if (artifacts.trainingConfig != null) modelJSON.trainingConfig = artifacts.trainingConfig;
      if (artifacts.signature != null) modelJSON.signature = artifacts.signature;
      if (artifacts.userDefinedMetadata != null) modelJSON.userDefinedMetadata = artifacts.userDefinedMetadata;
      if (artifacts.modelInitializer != null) modelJSON.modelInitializer = artifacts.modelInitializer;
      if (artifacts.initializerSignature != null) modelJSON.initializerSignature = artifacts.initializerSignature;

      await (await nodeFs()).mkdir(dir, { recursive: true });
      await writeFileAtomic(weightsPath, weightBytes);
      await writeFileAtomic(modelPath, JSON.stringify(modelJSON));
      return { modelArtifactsInfo: io.getModelArtifactsInfoForJSON(artifacts) };
    },

    async load(): Promise<io.ModelArtifacts> {
      registerCustomLayers();
      const { readFile } = await nodeFs();
      let text: string;
      try {
        text = await readFile(modelPath, 'utf8');
      } catch (error) {
        throw new Error(`fileSystemIO: cannot read ${modelPath}: ${(error as Error).message}`);
      }
      let modelJSON: StoredModelJSON;
      try {
        modelJSON = JSON.parse(text) as StoredModelJSON;
      } catch (error) {
        throw new Error(`fileSystemIO: ${modelPath} is not valid JSON: ${(error as Error).message}`);
      }
      if (modelJSON.modelTopology == null || !Array.isArray(modelJSON.weightsManifest)) {
        throw new Error(`fileSystemIO: ${modelPath} lacks modelTopology or weightsManifest; is it a TF.js layers model?`);
      }
      return io.getModelArtifactsForJSON(modelJSON, async (manifest) => {
        const chunks: Uint8Array[] = [];
        for (const group of manifest) {
          for (const path of group.paths) chunks.push(new Uint8Array(await readFile(join(dir, path))));
        }
        const bytes = new Uint8Array(chunks.reduce((total, chunk) => total + chunk.byteLength, 0));
        let offset = 0;
        for (const chunk of chunks) {
          bytes.set(chunk, offset);
          offset += chunk.byteLength;
        }
        if (modelJSON.weightsSha256 !== undefined && (await sha256(bytes)) !== modelJSON.weightsSha256) {
          throw new Error(`fileSystemIO: ${weightsPath} does not match ${modelPath} (checksum differs; was a save interrupted?)`);
        }
        const specs = manifest.flatMap((group) => group.weights);
        return [specs, bytes.buffer];
      });
    },
  };
}
