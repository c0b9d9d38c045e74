import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import YAML from 'yaml';
import { UsageError } from './errors.js';

/** Reads a run config file (`.json`, `.yaml` or `.yml`) into a plain object; any problem is the user's to fix. */
export function readConfigFile(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new UsageError(`--config ${path}: no such file`);
  if (statSync(path).isDirectory()) throw new UsageError(`--config ${path}: is a directory; expected a .json, .yaml or .yml file`);
  const text = readFileSync(path, 'utf8');
  const extension = extname(path).toLowerCase();
  let value: unknown;
  try {
    if (extension === '.json') value = JSON.parse(text);
    else if (extension === '.yaml' || extension === '.yml') value = YAML.parse(text);
    else throw new UsageError(`--config ${path}: expected a .json, .yaml or .yml file, got "${extension || 'no extension'}"`);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`--config ${path}: not valid ${extension === '.json' ? 'JSON' : 'YAML'}: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UsageError(`--config ${path}: expected a mapping of keys to values at the top level, got ${Array.isArray(value) ? 'a list' : JSON.stringify(value)}`);
  }
  return value as Record<string, unknown>;
}

/** Where a value of the resolved config came from, so an error can point at the flag, the file key or the recipe. */
export type ValueSource =
  | { kind: 'flag'; flag: string }
  | { kind: 'file'; path: string }
  | { kind: 'recipe'; name: string }
  | { kind: 'default' };

export interface ConfigLayer {
  source: ValueSource;
  values: Record<string, unknown>;
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Merges layers, later over earlier: nested objects merge key by key, anything else is replaced. An object with a
 * different `kind` (a schedule or dropout policy of another type) replaces the earlier one whole, since the keys of
 * one kind are invalid in another. Returns the merged object and, for every key path, the layer that set it.
 */
export function mergeLayers(layers: readonly ConfigLayer[]): { values: Record<string, unknown>; sources: Map<string, ValueSource> } {
  const sources = new Map<string, ValueSource>();
  const mark = (prefix: string, value: unknown, source: ValueSource) => {
    sources.set(prefix, source);
    if (isPlainObject(value)) for (const [k, v] of Object.entries(value)) mark(`${prefix}.${k}`, v, source);
  };
  const mergeInto = (target: Record<string, unknown>, values: Record<string, unknown>, prefix: string, source: ValueSource) => {
    for (const [key, value] of Object.entries(values)) {
      if (value === undefined) continue;
      const path = prefix ? `${prefix}.${key}` : key;
      const existing = target[key];
      if (isPlainObject(value) && isPlainObject(existing) && (value.kind === undefined || value.kind === existing.kind)) {
        const copy = { ...existing };
        mergeInto(copy, value, path, source);
        target[key] = copy;
        sources.set(path, source);
      } else {
        for (const stale of [...sources.keys()]) if (stale.startsWith(`${path}.`)) sources.delete(stale);
        target[key] = isPlainObject(value) ? structuredClone(value) : value;
        mark(path, value, source);
      }
    }
  };
  const values: Record<string, unknown> = {};
  for (const layer of layers) mergeInto(values, layer.values, '', layer.source);
  return { values, sources };
}

/** The source of `path` or of its nearest ancestor that has one. */
export function sourceOf(sources: Map<string, ValueSource>, path: string): ValueSource | undefined {
  for (let p = path; p; p = p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '') {
    const source = sources.get(p);
    if (source) return source;
  }
  return undefined;
}

/** "--epochs" for a flag, "run.yaml: schedule.lr" for a file key, "recipe wrn-cifar: epochs" for a recipe value. */
export function describeSource(source: ValueSource | undefined, path: string): string {
  switch (source?.kind) {
    case 'flag':
      return source.flag;
    case 'file':
      return `${source.path}: ${path}`;
    case 'recipe':
      return `recipe ${source.name}: ${path}`;
    default:
      return path;
  }
}
