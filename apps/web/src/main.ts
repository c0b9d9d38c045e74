import * as tf from '@tensorflow/tfjs-core';
import { io } from '@tensorflow/tfjs-core';
import { loadLayersModel, type LayersModel } from '@tensorflow/tfjs-layers';
import { registerCustomLayers } from '@wrn/blocks';
import { selectImages, type ImageDataset } from '@wrn/datasets';
import { pickBackend, type PickedBackend } from './backend';
import { drawChart } from './chart';
import { CLASS_NAMES, loadSample } from './data';
import { deleteRun, readRun, type RunSettings } from './run-store';
import { classify, TrainingSession, type SessionUpdate } from './session';

const params = new URLSearchParams(location.search);
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

let backend: PickedBackend | null = null;
let data: { train: ImageDataset; test: ImageDataset } | null = null;
let session: TrainingSession | null = null;
let loadedModel: { model: LayersModel; from: string } | null = null;
let lastTop5: Array<{ label: string; p: number }> = [];
let lastError: string | null = null;

function showError(error: unknown): void {
  lastError = error instanceof Error ? error.message : String(error);
  $('train-status').textContent = `error: ${lastError}`;
  console.error(error);
}

function readSettings(): RunSettings {
  const number = (id: string, min: number) => {
    const value = Number(($(id) as HTMLInputElement).value);
    if (!Number.isFinite(value) || value < min) throw new Error(`${id}: ${($(id) as HTMLInputElement).value} is not a number >= ${min}`);
    return value;
  };
  return {
    model: params.get('model') ?? ($('model') as HTMLSelectElement).value,
    epochs: Math.round(number('epochs', 1)),
    batchSize: Math.round(number('batch', 1)),
    lr: number('lr', 0),
    seed: Number(params.get('seed') ?? 1),
    augment: params.get('augment') === 'none' ? 'none' : 'reflect',
  };
}

function render(): void {
  const s = session;
  ($('pause') as HTMLButtonElement).disabled = !s || s.done;
  $('pause').textContent = s?.running ? 'Pause' : 'Resume';
  ($('evaluate') as HTMLButtonElement).disabled = !s || s.running;
  ($('reset') as HTMLButtonElement).disabled = !s || s.running;
  ($('train') as HTMLButtonElement).disabled = !data || !!s?.running;
  if (!s) return;
  const position = s.trainer.position;
  const last = s.steps.at(-1);
  const recent = s.steps.slice(-5);
  const rate = recent.length ? recent.reduce((a, p) => a + p.imagesPerSec, 0) / recent.length : 0;
  const testAcc = s.epochs.at(-1)?.testAcc;
  ($('progress') as HTMLProgressElement).max = s.totalSteps;
  ($('progress') as HTMLProgressElement).value = position.globalStep;
  $('train-status').textContent =
    `${s.settings.model}, batch ${s.settings.batchSize} | epoch ${Math.min(position.epoch + 1, s.settings.epochs)}/${s.settings.epochs}, ` +
    `step ${position.globalStep}/${s.totalSteps}` +
    (last ? ` | loss ${last.loss.toFixed(4)} | acc ${(100 * last.acc).toFixed(1)}% | ${rate.toFixed(1)} img/s` : '') +
    (testAcc != null ? ` | test accuracy ${(100 * testAcc).toFixed(1)}%` : '') +
    (s.running ? '' : s.done ? ' | done' : ' | paused') +
    (s.lastSave ? ` | saved at step ${s.lastSave.trainer.position.globalStep}` : '');
  drawChart($('step-chart'), 'per step: loss (blue), accuracy (orange)', [
    { label: 'loss', color: '#36c', points: s.steps.map((p) => [p.step, p.loss]) },
    { label: 'accuracy', color: '#e80', points: s.steps.map((p) => [p.step, p.acc]) },
  ], { yMin: 0 });
  drawChart($('epoch-chart'), 'per epoch: train / test loss and accuracy', [
    { label: 'train loss', color: '#36c', points: s.epochs.map((p) => [p.epoch, p.trainLoss]) },
    { label: 'test loss', color: '#139', points: s.epochs.map((p) => [p.epoch, p.testLoss]) },
    { label: 'train acc', color: '#e80', points: s.epochs.map((p) => [p.epoch, p.trainAcc]) },
    { label: 'test acc', color: '#a40', points: s.epochs.map((p) => [p.epoch, p.testAcc]) },
  ], { yMin: 0 });
}

function onUpdate(update: SessionUpdate): void {
  if (update.kind === 'evaluating') $('train-status').textContent += ' | evaluating on the 500 test images…';
  else render();
}

async function runSession(maxSteps?: number): Promise<void> {
  if (!session) return;
  const run = session.run(onUpdate, maxSteps == null ? {} : { maxSteps });
  render();
  await run.catch(showError);
  render();
}

async function startNew(): Promise<void> {
  if (!data) return;
  session?.pause();
  session?.dispose();
  await deleteRun();
  session = TrainingSession.create(readSettings(), data);
  session.saveEvery = Number(params.get('saveEvery') ?? 10);
  void runSession();
}

function showTop5(probs: Float32Array): void {
  lastTop5 = Array.from(probs, (p, i) => ({ label: CLASS_NAMES[i] ?? String(i), p }))
    .sort((a, b) => b.p - a.p)
    .slice(0, 5);
  $('top5').replaceChildren(
    ...lastTop5.map(({ label, p }) => {
      const li = document.createElement('li');
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.style.width = `${Math.round(200 * p)}px`;
      li.append(`${label} ${(100 * p).toFixed(1)}%`, bar);
      return li;
    }),
  );
}

function classifierModel(): LayersModel {
  const source = (document.querySelector('input[name=source]:checked') as HTMLInputElement).value;
  if (source === 'trained') {
    if (!session) throw new Error('no model trained yet: train one, or load one from a URL or files');
    return session.model;
  }
  if (!loadedModel) throw new Error('no model loaded: give a model.json URL or pick model.json + weights.bin, then Load');
  return loadedModel.model;
}

/** Decodes an image file, scales it to 32x32 as CIFAR images are, shows it and classifies it. */
async function classifyFile(file: Blob): Promise<void> {
  const bitmap = await createImageBitmap(file);
  const canvas = $('preview') as HTMLCanvasElement;
  const g = canvas.getContext('2d', { willReadFrequently: true })!;
  g.imageSmoothingQuality = 'high';
  g.drawImage(bitmap, 0, 0, 32, 32);
  const rgba = g.getImageData(0, 0, 32, 32).data;
  const rgb = new Uint8Array(32 * 32 * 3);
  for (let p = 0; p < 32 * 32; p++) rgb.set(rgba.subarray(4 * p, 4 * p + 3), 3 * p);
  showTop5(await classify(classifierModel(), rgb, 1));
}

async function loadModel(): Promise<void> {
  const source = (document.querySelector('input[name=source]:checked') as HTMLInputElement).value;
  registerCustomLayers();
  let model: LayersModel;
  let from: string;
  if (source === 'url') {
    from = ($('model-url') as HTMLInputElement).value;
    model = await loadLayersModel(from);
  } else if (source === 'files') {
    const files = Array.from(($('model-files') as HTMLInputElement).files ?? []);
    const json = files.find((f) => f.name.endsWith('.json'));
    if (!json) throw new Error(`pick model.json and its weights file(s); picked: ${files.map((f) => f.name).join(', ') || 'nothing'}`);
    from = files.map((f) => f.name).join(' + ');
    model = await loadLayersModel(io.browserFiles([json, ...files.filter((f) => f !== json)]));
  } else {
    $('model-status').textContent = 'using the model trained here';
    return;
  }
  loadedModel?.model.dispose();
  loadedModel = { model, from };
  $('model-status').textContent = `loaded ${from}: output ${JSON.stringify(model.outputs[0]?.shape)}`;
}

function wire(): void {
  $('train').addEventListener('click', () => void startNew().catch(showError));
  $('pause').addEventListener('click', () => {
    if (!session) return;
    if (session.running) session.pause();
    else void runSession();
  });
  $('evaluate').addEventListener('click', async () => {
    if (!session) return;
    const { acc } = await session.evaluate();
    $('train-status').textContent += ` | test accuracy now ${(100 * acc).toFixed(1)}%`;
  });
  $('reset').addEventListener('click', async () => {
    session?.dispose();
    session = null;
    await deleteRun();
    $('train-status').textContent = 'no run yet';
    render();
  });
  $('load-model').addEventListener('click', () => void loadModel().catch((e) => ($('model-status').textContent = `error: ${e.message}`)));
  const pick = (file: File | undefined) => file && void classifyFile(file).catch((e) => ($('model-status').textContent = `error: ${e.message}`));
  $('image-file').addEventListener('change', (e) => pick((e.target as HTMLInputElement).files?.[0]));
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    pick(e.dataTransfer?.files[0]);
  });
}

/** What the browser tests read and drive (and a console user may too). */
const app = {
  ready: null as Promise<void> | null,
  status: () => ({
    backend: backend?.name ?? null,
    backendDescription: backend?.description ?? null,
    crossOriginIsolated,
    position: session?.trainer.position ?? null,
    running: session?.running ?? false,
    losses: session?.steps.map((s) => s.loss) ?? [],
    imagesPerSec: session?.steps.map((s) => s.imagesPerSec) ?? [],
    savedStep: session?.lastSave?.trainer.position.globalStep ?? null,
    settings: session?.settings ?? null,
    top5: lastTop5,
    error: lastError,
    numTensors: tf.memory().numTensors,
  }),
  /** Trains `steps` more steps, then pauses (and saves). */
  train: async (steps: number) => {
    if (!session) {
      if (!data) throw new Error('the sample is not loaded');
      await deleteRun();
      session = TrainingSession.create(readSettings(), data);
      session.saveEvery = Number(params.get('saveEvery') ?? 10);
    }
    await runSession(steps);
    return app.status();
  },
  /** Class probabilities of the trained model for test images of the sample (by index). */
  predictTest: async (indices: number[]) => {
    if (!session || !data) throw new Error('no model trained yet');
    const pixels = new Uint8Array(indices.length * 3072);
    indices.forEach((i, k) => pixels.set(data!.test.images.subarray(i * 3072, (i + 1) * 3072), k * 3072));
    return Array.from(await classify(session.model, pixels, indices.length));
  },
  testLabels: (indices: number[]) => indices.map((i) => data!.test.labels[i]),
  /**
   * Mean cross-entropy of the model in training mode (BatchNorm on batch statistics) on the first `count` training
   * images, unaugmented: only the weights training changes move it, unlike a per-step loss (a new batch each step)
   * or an inference-mode loss (which BatchNorm's moving statistics move by themselves). Leaves the model as it was.
   */
  fixedBatchLoss: async (count = 64) => {
    if (!session || !data) throw new Error('no model trained yet');
    return session.fixedBatchLoss(data.train.images.subarray(0, count * 3072), Array.from(data.train.labels.subarray(0, count)));
  },
};
(window as unknown as { wrnApp: typeof app }).wrnApp = app;

app.ready = (async () => {
  wire();
  backend = await pickBackend(params.get('backend'));
  $('backend').textContent = `backend: ${backend.description}${crossOriginIsolated ? ', cross-origin isolated' : ''}`;
  data = await loadSample();
  // ?trainLimit=N / ?testLimit=N keep the first N images of a split (as the CLI's --train-limit): tests train on
  // a handful of images, where a few steps must lower the loss on those very images.
  for (const split of ['train', 'test'] as const) {
    const limit = params.get(`${split}Limit`);
    if (limit != null) data[split] = selectImages(data[split], Array.from({ length: Math.min(Number(limit), data[split].count) }, (_, i) => i));
  }
  $('data-status').textContent = `${data.train.count} training and ${data.test.count} test images, parsed in the page from the official CIFAR-10 binary files`;
  const saved = await readRun().catch(() => null);
  if (saved) {
    session = await TrainingSession.restore(saved, data);
    session.saveEvery = Number(params.get('saveEvery') ?? 10);
  }
  render();
})().catch(showError);
