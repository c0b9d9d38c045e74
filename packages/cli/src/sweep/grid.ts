import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { z } from 'zod';
import { readConfigFile, type ConfigLayer } from '../config-file.js';
import { errorMessage, UsageError } from '../errors.js';
import { resolveTrainConfig, RUN_CONFIG_KEYS } from '../train-config.js';
import { GRID_PRESET_NAMES, gridPreset } from './presets.js';

/**
 * A grid: a base run config (the keys of `wrn train --config`) and axes, each a config key (dots for nested keys,
 * `schedule.lr`) with the list of values it takes. The runs are the axes' cartesian product, first axis outermost,
 * plus any `include`d runs.
 */
export const gridFileSchema = z
  .object({
    /** The sweep's name: its directory under the run root and its key in the queue (default: the file's name). */
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, ".", "_" and "-", at most 64, starting with a letter or digit')
      .optional(),
    /** A paper table to start from (see `wrn sweep presets`); base and axes below override its own. */
    preset: z.enum(GRID_PRESET_NAMES).optional(),
    description: z.string().optional(),
    base: z.record(z.string(), z.unknown()).default({}),
    axes: z.record(z.string(), z.array(z.unknown()).min(1, 'an axis needs at least one value')).default({}),
    /** Runs added to the product, each a set of key values over the base (e.g. one diverging learning rate). */
    include: z.array(z.record(z.string(), z.unknown())).default([]),
  })
  .strict();
export type GridFile = z.infer<typeof gridFileSchema>;

/** One run of a sweep: its id, the axis values that make it, and its whole run config (base plus those values). */
export interface SweepRun {
  id: string;
  /** Axis key -> value (an included run: the keys it sets). */
  axes: Record<string, unknown>;
  /** The run config `wrn train --config` would take (nested objects for dotted keys); runDir is the sweep's to set. */
  values: Record<string, unknown>;
}

export interface ExpandedGrid {
  name: string;
  /** Where the grid came from: a file path or `preset:NAME`. */
  source: string;
  description?: string;
  /** Axis keys in order (included runs' extra keys after them), for the report's columns. */
  axisKeys: string[];
  runs: SweepRun[];
  /** sha256 of the runs' ids and configs: two grids with the same hash are the same sweep. */
  hash: string;
}

const RUN_KEYS = new Set(RUN_CONFIG_KEYS);
/** Keys a grid may not set: the sweep places each run's directory itself. */
const SWEEP_OWNED_KEYS = new Set(['runDir']);

/** JSON with object keys sorted, so equal configs hash equally whatever order their keys were written in. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Sets `path` (dots for nesting) in `target`, merging into an object already there. */
function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    if (!isPlainObject(node[part])) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  const last = parts.at(-1)!;
  node[last] = isPlainObject(value) && isPlainObject(node[last]) && (value.kind === undefined || value.kind === node[last].kind)
    ? { ...node[last], ...value }
    : structuredClone(value);
}

/** A short, file-name-safe rendering of an axis value for a run id: `wrn-16-4`, `0.1`, `constant-0.3`. */
function slugOf(value: unknown): string {
  const text = isPlainObject(value) ? Object.values(value).map((v) => (isPlainObject(v) || Array.isArray(v) ? JSON.stringify(v) : String(v))).join('-') : Array.isArray(value) ? value.join('-') : String(value);
  // '+' stays: 1e+30 must not read as 1e-30.
  return text.replace(/[^A-Za-z0-9.+-]+/g, '-').replace(/^-+|-+$/g, '') || 'x';
}

/**
 * The id of a run: its axis values (readable, for `ls`), then 8 hex digits of the hash of its whole config, so the
 * id is the same on every expansion of the grid and two runs with different configs never share a directory.
 */
export function runIdOf(axes: Record<string, unknown>, values: Record<string, unknown>): string {
  const parts = Object.entries(axes).map(([key, value]) => {
    const slug = slugOf(value);
    // A model name says what it is; other values are prefixed by the last part of their key (seed-1, lr-0.1).
    return key === 'model' ? slug : `${key.split('.').at(-1)}-${slug}`;
  });
  const readable = parts.join('_').slice(0, 96).replace(/[-_.]+$/, '');
  return `${readable ? `${readable}_` : ''}${sha256(canonicalJson(values)).slice(0, 8)}`;
}

function checkKey(file: string, where: string, key: string): void {
  const top = key.split('.')[0]!;
  if (SWEEP_OWNED_KEYS.has(top)) {
    throw new UsageError(`${file}: ${where}.${key}: set by the sweep (each run goes to <run-root>/<sweep>/<run id>); remove it`);
  }
  if (!RUN_KEYS.has(top)) {
    throw new UsageError(`${file}: ${where}.${key}: unknown key (a grid's base and axes take the keys of \`wrn train --config\`: ${[...RUN_KEYS].join(', ')})`);
  }
}

function zodMessage(file: string, error: z.ZodError): string {
  const lines = error.issues.flatMap((issue) => {
    const keys = issue.code === 'unrecognized_keys' ? issue.keys.map((k) => [...issue.path, k]) : [issue.path];
    return keys.map((path) => {
      const key = path.map(String).join('.') || '(top level)';
      const problem = issue.code === 'unrecognized_keys' ? 'unknown key; a grid has name, preset, description, base, axes, include' : issue.message;
      return `${file}: ${key}: ${problem}`;
    });
  });
  return lines.join('\n');
}

/**
 * Expands a grid (already read from `source`) into its runs and validates every run's config with the schema `wrn
 * train --config` uses, so a bad key or value is reported now, naming the file and the grid key, not by a worker later.
 */
export function expandGrid(raw: unknown, source: string, fallbackName: string): ExpandedGrid {
  const parsed = gridFileSchema.safeParse(raw);
  if (!parsed.success) throw new UsageError(zodMessage(source, parsed.error));
  const grid = parsed.data;
  const preset = grid.preset ? gridPreset(grid.preset)! : undefined;
  const base: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(preset?.base ?? {})) setPath(base, key, value);
  for (const [key, value] of Object.entries(grid.base)) {
    checkKey(source, 'base', key);
    setPath(base, key, value);
  }
  // The file's axes replace the preset's axis of the same key and come after the preset's others.
  const axes: [string, unknown[]][] = Object.entries(preset?.axes ?? {}).filter(([key]) => !(key in grid.axes));
  for (const [key, values] of Object.entries(grid.axes)) {
    checkKey(source, 'axes', key);
    axes.push([key, values]);
  }
  grid.include.forEach((run, index) => {
    for (const key of Object.keys(run)) checkKey(source, `include[${index}]`, key);
  });

  const baseLayers: ConfigLayer[] = Object.entries(base).map(([key, value]) => ({
    source: { kind: 'file', path: `${source}: ${preset && !(key in grid.base) ? `preset ${preset.name}: base` : 'base'}` },
    values: { [key]: value },
  }));
  const combos: { axes: Record<string, unknown>; where: string[] }[] = [{ axes: {}, where: [] }];
  for (const [key, values] of axes) {
    const next: typeof combos = [];
    for (const combo of combos) {
      values.forEach((value, index) => next.push({ axes: { ...combo.axes, [key]: value }, where: [...combo.where, `axes.${key}[${index}]`] }));
    }
    combos.splice(0, combos.length, ...next);
  }
  if (axes.length === 0 && grid.include.length > 0) combos.splice(0);
  grid.include.forEach((run, index) => combos.push({ axes: { ...run }, where: [`include[${index}]`] }));

  const runs: SweepRun[] = [];
  const seen = new Map<string, string>();
  for (const combo of combos) {
    const values = structuredClone(base);
    for (const [key, value] of Object.entries(combo.axes)) setPath(values, key, value);
    const id = runIdOf(combo.axes, values);
    const where = combo.where.join(', ') || 'base';
    if (seen.has(id)) throw new UsageError(`${source}: ${where} gives the same run as ${seen.get(id)}; every run of a grid must differ`);
    seen.set(id, where);
    const axisLayers: ConfigLayer[] = Object.entries(combo.axes).map(([key, value], i) => {
      const layer: Record<string, unknown> = {};
      setPath(layer, key, value);
      return { source: { kind: 'file', path: `${source}: ${combo.where[i] ?? where}` }, values: layer };
    });
    validateRun(source, where, [...baseLayers, ...axisLayers]);
    runs.push({ id, axes: combo.axes, values });
  }
  const axisKeys = [...new Set([...axes.map(([key]) => key), ...grid.include.flatMap((run) => Object.keys(run))])];
  return {
    name: grid.name ?? fallbackName,
    source,
    description: grid.description ?? preset?.description,
    axisKeys,
    runs,
    hash: sha256(canonicalJson(runs.map((r) => [r.id, r.values]))),
  };
}

/** The run config of a sweep's run as the config layer `wrn train` resolves (also what a worker trains). */
export function runLayer(sweep: string, run: SweepRun, runDir: string): ConfigLayer {
  return { source: { kind: 'flag', flag: `sweep ${sweep} run ${run.id}` }, values: { ...structuredClone(run.values), runDir } };
}

/**
 * The same resolution `wrn train --config` does (unknown keys, bad values, unknown models all fail here), one layer
 * per grid entry, so an error names the file, the entry and the key ("grid.yaml: axes.model[1]: model: ...").
 */
function validateRun(file: string, where: string, layers: ConfigLayer[]): void {
  try {
    resolveTrainConfig({ flagLayers: layers });
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`${file}: ${where}: ${(error as Error).message}`, { cause: error });
  }
}

/** Reads a grid file (.yaml, .yml, .json) and expands it. */
export function loadGridFile(path: string): ExpandedGrid {
  if (!existsSync(path)) throw new UsageError(`${path}: no such grid file`);
  let raw: unknown;
  try {
    raw = readConfigFile(path);
  } catch (error) {
    // readConfigFile speaks of --config; here the file is the grid argument.
    throw new UsageError(errorMessage(error).replace(/^--config /, ''), { cause: error });
  }
  return expandGrid(raw, path, basename(path, extname(path)));
}

/** A preset used as it is (`wrn sweep --preset NAME`). */
export function loadGridPreset(name: string): ExpandedGrid {
  if (!gridPreset(name)) throw new UsageError(`--preset ${name}: no such grid preset; allowed: ${GRID_PRESET_NAMES.join(', ')}`);
  return expandGrid({ preset: name }, `preset:${name}`, name);
}
