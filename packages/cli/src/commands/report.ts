import type { Command } from 'commander';
import type { CommandContext } from '../context.js';
import { examples } from '../flags.js';
import { writeLine } from '../io.js';
import { writeReport } from '../report/report.js';

export function registerReport(program: Command, context: CommandContext): void {
  program
    .command('report')
    .description('write report.html (curves, confusion matrix, config, environment) and curves.png into a run directory')
    .argument('<run-dir>', 'a run directory written by `wrn train`')
    .option('--json', 'print the written paths as one JSON object')
    .addHelpText(
      'after',
      examples([
        'wrn report runs/wrn-16-2-cifar10-20261123-081500',
        'xdg-open runs/wrn-16-2-cifar10-20261123-081500/report.html   # opens offline: chart.js is inlined',
      ]),
    )
    .action((runDir: string, options: { json?: boolean }) => {
      const files = writeReport(runDir);
      if (options.json) writeLine(context.io.stdout, JSON.stringify(files));
      else writeLine(context.io.stdout, `wrote ${files.html} and ${files.png} (${files.epochs} epochs)`);
    });
}
