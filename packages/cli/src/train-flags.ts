import type { Command } from 'commander';
import { dropoutPolicySchema, PRESET_NAMES, scheduleSchema, sgdConfigSchema } from '@wrn/training';
import { BACKEND_CHOICES } from '@wrn/backend/node';
import type { ConfigLayer } from './config-file.js';
import { choiceFlag, integerFlag, numberFlag } from './flags.js';
import { AUGMENTATIONS, DATASET_NAMES, NORMALIZATIONS, RUN_CONFIG_KEYS } from './train-config.js';

/**
 * A flag of `wrn train` that sets a run-config key, declared once: commander's spelling, the key it sets (nested
 * keys with dots), its help, and the parser that turns the text into the config value (failing at parse time
 * with commander's message naming the flag, and what is allowed). The help's "one of" list comes from the choices.
 */
export interface TrainFlag {
  /** `-e, --epochs <n>`, or `--no-nesterov` for a boolean that is on by default. */
  flags: string;
  key: string;
  help: string;
  /** Text to config value; absent: the text itself (a `--no-x` flag: false). */
  parse?: (value: string) => unknown;
  choices?: readonly string[];
  /** The default, for the help. */
  defaultText?: string;
}

/** A flag whose value is one of `choices`: parsed, listed in the help and in the "Allowed: ..." message. */
function choice(flags: string, key: string, help: string, choices: readonly string[], defaultText?: string): TrainFlag {
  return { flags, key, help, choices, parse: choiceFlag(choices), ...(defaultText ? { defaultText } : {}) };
}

const RECIPE_DEFAULT = "the recipe's";

export const TRAIN_FLAGS: readonly TrainFlag[] = [
  choice('-r, --recipe <name>', 'recipe', 'paper recipe filling in what is unset', PRESET_NAMES, "the model family's"),
  { flags: '-m, --model <name>', key: 'model', help: 'model in paper notation (see `wrn models`)', defaultText: '"wrn-16-2"' },
  choice('--dataset <name>', 'dataset', 'dataset', DATASET_NAMES, '"cifar10"'),
  { flags: '-d, --data-dir <dir>', key: 'dataDir', help: 'folder with the official files', defaultText: 'the embedded 2,000/500-image CIFAR-10 sample' },
  { flags: '-e, --epochs <n>', key: 'epochs', help: 'epochs to train', parse: integerFlag(1), defaultText: RECIPE_DEFAULT },
  { flags: '--max-steps <n>', key: 'maxSteps', help: 'stop after this many optimiser steps', parse: integerFlag(1) },
  { flags: '-b, --batch-size <n>', key: 'batchSize', help: 'images per training step', parse: integerFlag(1), defaultText: "the recipe's, 128" },
  { flags: '--lr <rate>', key: 'schedule.lr', help: "base learning rate of the recipe's schedule", parse: numberFlag(0, Infinity, { exclusiveMin: true }) },
  { flags: '--momentum <m>', key: 'optimizer.momentum', help: 'SGD momentum', parse: numberFlag(0, 1) },
  { flags: '--weight-decay <wd>', key: 'optimizer.weightDecay', help: 'L2 weight decay (Torch semantics)', parse: numberFlag(0) },
  { flags: '--no-nesterov', key: 'optimizer.nesterov', help: 'plain momentum instead of Nesterov' },
  {
    flags: '--drop-rate <p>',
    key: 'dropout',
    help: 'dropout between the convs of every block, 0 for none',
    parse: (value) => {
      const rate = numberFlag(0, 0.99)(value);
      return rate === 0 ? { kind: 'none' } : { kind: 'constant', rate };
    },
  },
  { flags: '--seed <n>', key: 'seed', help: 'seed of weights, data order, augmentation and dropout', parse: integerFlag(0), defaultText: '0' },
  choice('--backend <name>', 'backend', 'backend', BACKEND_CHOICES, '"auto"'),
  { flags: '-o, --run-dir <dir>', key: 'runDir', help: 'run directory', defaultText: 'runs/<model>-<dataset>-<time>' },
  choice('--augment <kind>', 'augmentation', 'augmentation', AUGMENTATIONS, RECIPE_DEFAULT),
  choice('--normalize <kind>', 'normalization', 'normalisation', NORMALIZATIONS, RECIPE_DEFAULT),
  { flags: '--train-limit <n>', key: 'trainLimit', help: 'train on the first N training images only', parse: integerFlag(1) },
  { flags: '--test-limit <n>', key: 'testLimit', help: 'evaluate on the first N test images only', parse: integerFlag(1) },
  { flags: '--validation-size <n>', key: 'validationSize', help: 'hold out N training images and evaluate on them instead of the test split', parse: integerFlag(1) },
  { flags: '--checkpoint-every <k>', key: 'checkpointEvery', help: 'also keep checkpoints/epoch-K every K epochs', parse: integerFlag(0) },
  { flags: '--log-every-steps <n>', key: 'logEverySteps', help: 'write a step line to metrics.jsonl every N steps', parse: integerFlag(0) },
  { flags: '--no-report', key: 'report', help: 'do not write report.html / curves.png at the end' },
];

/** `--epochs` of `-e, --epochs <n>`. */
export const longFlag = (flag: TrainFlag): string => /--[a-z-]+/.exec(flag.flags)![0];

/** commander's option name: `epochs` of `--epochs`, `nesterov` of `--no-nesterov`, `dataDir` of `--data-dir`. */
const optionName = (flag: TrainFlag): string =>
  longFlag(flag)
    .replace(/^--(no-)?/, '')
    .replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** The help of a flag: its text, what it may be and its default. */
function helpOf(flag: TrainFlag): string {
  const choices = flag.choices ? `: ${flag.choices.join(' | ')}` : '';
  return `${flag.help}${choices}${flag.defaultText ? ` (default: ${flag.defaultText})` : ''}`;
}

export function addTrainFlags(command: Command): void {
  for (const flag of TRAIN_FLAGS) {
    if (flag.parse) command.option(flag.flags, helpOf(flag), flag.parse);
    else command.option(flag.flags, helpOf(flag));
  }
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) node = (node[part] ??= {}) as Record<string, unknown>;
  node[parts.at(-1)!] = value;
  return target;
}

/** One config layer per flag given on the command line, so an invalid value is reported as that flag's. */
export function trainFlagLayers(command: Command): ConfigLayer[] {
  const options = command.opts();
  return TRAIN_FLAGS.filter((flag) => command.getOptionValueSource(optionName(flag)) === 'cli').map((flag) => ({
    source: { kind: 'flag', flag: longFlag(flag) },
    values: setPath({}, flag.key, options[optionName(flag)]),
  }));
}

/** The flags that set `key` or a key below it (`optimizer`: --momentum/--weight-decay/--no-nesterov). */
export function flagsOfKey(key: string): string | undefined {
  const flags = TRAIN_FLAGS.filter((flag) => flag.key === key || flag.key.startsWith(`${key}.`)).map(longFlag);
  return flags.length > 0 ? flags.join('/') : undefined;
}

const keysOf = (schema: { shape: Record<string, unknown> }) => Object.keys(schema.shape).join(', ');
const kindsOf = (schema: { options: ReadonlyArray<{ shape: { kind: unknown } }> }) =>
  schema.options.map((o) => (o.shape.kind as { value: string }).value).join(' | ');

/** Words of `text` in lines of at most `width` characters. */
function wrap(text: string, width = 115): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, line].join('\n');
}

/** The keys a run config file may hold, from the schemas themselves (for `wrn train --help`). */
export function configKeysHelp(): string {
  const nested = new Set(['optimizer', 'schedule', 'dropout']);
  const top = RUN_CONFIG_KEYS.filter((key) => !nested.has(key)).join(', ');
  return wrap(
    `A config file uses the flags' keys: ${top}, and the nested optimizer { ${keysOf(sgdConfigSchema)} }, ` +
      `schedule { kind: ${kindsOf(scheduleSchema)}, lr, unit, milestones, gamma, ... } and dropout { kind: ${kindsOf(dropoutPolicySchema)}, ... }.`,
  );
}
