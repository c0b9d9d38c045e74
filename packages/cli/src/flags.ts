import { InvalidArgumentError } from 'commander';

/**
 * Argument parsers for commander options: a bad value fails at parse time with commander's message, which names the
 * flag and the value (`option '--epochs <n>' argument 'abc' is invalid.`), followed by what is allowed.
 */
export function integerFlag(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^[-+]?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
      throw new InvalidArgumentError(`Expected an integer ${range}.`);
    }
    return n;
  };
}

export function numberFlag(min: number, max = Number.POSITIVE_INFINITY, { exclusiveMin = false } = {}) {
  return (value: string): number => {
    const n = Number(value);
    const tooSmall = exclusiveMin ? n <= min : n < min;
    if (value.trim() === '' || !Number.isFinite(n) || tooSmall || n > max) {
      const lower = exclusiveMin ? `> ${min}` : `>= ${min}`;
      const upper = Number.isFinite(max) ? ` and <= ${max}` : '';
      throw new InvalidArgumentError(`Expected a number ${lower}${upper}.`);
    }
    return n;
  };
}

export function choiceFlag<T extends string>(choices: readonly T[]) {
  return (value: string): T => {
    if (!(choices as readonly string[]).includes(value)) {
      throw new InvalidArgumentError(`Allowed: ${choices.join(', ')}.`);
    }
    return value as T;
  };
}

export function examples(lines: readonly string[]): string {
  return `\nExamples:\n${lines.map((line) => `  $ ${line}`).join('\n')}\n`;
}
