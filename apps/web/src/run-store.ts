// A training run kept in IndexedDB so it survives a reload: the model's weights (TF.js's own indexeddb:// store, in
// one of two slots) and a record with the run's settings, the Trainer's state (optimizer buffers and position) and
// the curves. The record is written last and names the slot, so a reload in the middle of a save finds the previous
// complete pair, never new weights with an old optimizer state.
import { io } from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { TrainerState } from '@wrn/training';

const DB_NAME = 'wrn-web';
const STORE = 'runs';
const KEY = 'current';
const SLOTS = ['a', 'b'] as const;

export interface RunSettings {
  model: string;
  batchSize: number;
  epochs: number;
  lr: number;
  seed: number;
  augment: 'reflect' | 'none';
}

export interface StepPoint {
  step: number;
  loss: number;
  acc: number;
  imagesPerSec: number;
}

export interface EpochPoint {
  epoch: number;
  trainLoss: number;
  trainAcc: number;
  testLoss: number;
  testAcc: number;
}

export interface RunRecord {
  format: 'wrn-web-run/1';
  settings: RunSettings;
  trainer: TrainerState;
  steps: StepPoint[];
  epochs: EpochPoint[];
  /** Running sums of the epoch in progress, so its train loss/accuracy continue after a reload. */
  partialEpoch: { lossSum: number; correct: number; seen: number };
  slot: (typeof SLOTS)[number];
  savedAt: string;
}

function openDb(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function withStore<T>(mode: IDBTransactionMode, use: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  const db = await openDb();
  try {
    return await new Promise<T>((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = use(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

export const modelUrl = (slot: string) => `indexeddb://wrn-web-run-${slot}`;

export async function readRun(): Promise<RunRecord | null> {
  const record = (await withStore('readonly', (s) => s.get(KEY))) as RunRecord | undefined;
  if (!record) return null;
  if (record.format !== 'wrn-web-run/1') throw new Error(`IndexedDB ${DB_NAME}/${STORE}/${KEY}: format ${JSON.stringify(record.format)}, expected "wrn-web-run/1"`);
  return record;
}

/** Saves the weights into the slot the current record does not use, then the record pointing at it. */
export async function saveRun(model: LayersModel, record: Omit<RunRecord, 'slot' | 'savedAt' | 'format'>): Promise<RunRecord> {
  const previous = await readRun().catch(() => null);
  const slot = previous?.slot === 'a' ? 'b' : 'a';
  await model.save(modelUrl(slot));
  const full: RunRecord = { format: 'wrn-web-run/1', ...record, slot, savedAt: new Date().toISOString() };
  await withStore('readwrite', (s) => s.put(full, KEY));
  return full;
}

export async function deleteRun(): Promise<void> {
  await withStore('readwrite', (s) => s.delete(KEY));
  for (const slot of SLOTS) await io.removeModel(modelUrl(slot)).catch(() => undefined);
}
