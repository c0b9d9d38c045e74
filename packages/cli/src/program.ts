import { Command, CommanderError } from 'commander';
import { nativeConvFromEnv, wasmThreadsFromEnv } from '@wrn/backend';
import { registerDoctor } from './commands/doctor.js';
import { registerModels } from './commands/models.js';
import { registerTrain } from './commands/train.js';
import { registerEval } from './commands/eval.js';
import { registerPredict } from './commands/predict.js';
import { registerDatasets } from './commands/datasets.js';
import { registerBench } from './commands/bench.js';
import { registerReport } from './commands/report.js';
import { registerConvert } from './commands/convert.js';
import { registerSweep, registerWorker } from './sweep/commands.js';
import { cliVersion, type CommandContext } from './context.js';
import { EXIT_OK, EXIT_USAGE, exitCodeOf, UsageError } from './errors.js';
import { examples } from './flags.js';
import { processIO, writeLine, type CliIO } from './io.js';

const COMMANDS: ((program: Command, context: CommandContext) => void)[] = [
  registerTrain, registerEval, registerPredict, registerModels, registerDatasets, registerBench, registerReport, registerDoctor,
  registerConvert, registerSweep, registerWorker,
];

/** Builds the `wrn` program; every command writes through `io`, so tests and the bin share one code path. */
export function createProgram(io: CliIO = processIO()): Command {
  const program = new Command('wrn');
  const context: CommandContext = { io, verbose: () => Boolean(program.opts().verbose) };
  program
    .description('Residual networks (ResNet, pre-activation ResNet, WRN, ResNeXt) on TensorFlow.js: train, evaluate, inspect')
    .version(cliVersion(), '-V, --version', 'print the version of @wrn/cli')
    .option('--verbose', 'print stack traces and more detail on errors')
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .showSuggestionAfterError()
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .addHelpText(
      'after',
      `${examples([
        'wrn train --model wrn-16-2 --epochs 3              # on the embedded CIFAR-10 sample',
        'wrn train --recipe wrn-cifar --model wrn-28-10 --data-dir ~/data/cifar-10-batches-bin',
        'wrn info wrn-28-10 --json',
        'wrn report runs/<run>',
        'wrn doctor',
      ])}
Exit codes: 0 success, 1 the run failed, 2 bad usage or input.
`,
    );
  for (const register of COMMANDS) register(program, context);
  // A bad WRN_WASM_THREADS or WRN_NATIVE_CONV is bad input (exit 2), named before any command starts work, not a failed run later.
  program.hook('preAction', () => {
    try {
      wasmThreadsFromEnv(process.env);
      nativeConvFromEnv(process.env);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  });
  return program;
}

/** Runs `wrn` with `argv` (the arguments after the program name) and returns the exit code. */
export async function runCli(argv: readonly string[], io: CliIO = processIO()): Promise<number> {
  const program = createProgram(io);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return EXIT_OK;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander has printed its message (help, version, or the usage error naming the flag).
      return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    const verbose = argv.includes('--verbose');
    const code = exitCodeOf(error);
    const label = error instanceof UsageError ? 'error' : 'failed';
    const message = error instanceof Error ? error.message : String(error);
    writeLine(io.stderr, `wrn: ${label}: ${message}`);
    if (verbose && error instanceof Error && error.stack) writeLine(io.stderr, error.stack);
    else if (!(error instanceof UsageError)) writeLine(io.stderr, '(run again with --verbose for the stack trace)');
    return code;
  }
}
