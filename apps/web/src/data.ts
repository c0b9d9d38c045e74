// The embedded CIFAR-10 sample (packages/cli/data/cifar10-sample, official binary format), fetched as bytes and
// parsed in the page by @wrn/datasets' browser-safe parser.
import { CIFAR10_CLASS_NAMES, cifar10FromBytes, type ImageDataset } from '@wrn/datasets';

// vite.config.ts makes packages/cli/data the public folder: the files are served (and built) as they are.
const trainUrl = `${import.meta.env.BASE_URL}cifar10-sample/data_batch_1.bin`;
const testUrl = `${import.meta.env.BASE_URL}cifar10-sample/test_batch.bin`;

export const CLASS_NAMES = CIFAR10_CLASS_NAMES;

async function fetchBytes(url: string): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`fetching ${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

export async function loadSample(): Promise<{ train: ImageDataset; test: ImageDataset }> {
  const [trainBytes, testBytes] = await Promise.all([fetchBytes(trainUrl), fetchBytes(testUrl)]);
  return {
    train: cifar10FromBytes([{ file: 'data_batch_1.bin', bytes: trainBytes }], 'train'),
    test: cifar10FromBytes([{ file: 'test_batch.bin', bytes: testBytes }], 'test'),
  };
}
