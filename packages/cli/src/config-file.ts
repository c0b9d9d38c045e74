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

// Config layers and their sources are @wrn/training's, the one recipe resolver's; re-exported for the CLI's modules.
export { describeSource, mergeLayers, showValue, sourceOf } from '@wrn/training';
export type { ConfigLayer, ValueSource } from '@wrn/training';
