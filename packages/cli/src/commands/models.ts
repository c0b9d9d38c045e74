import type { Command } from 'commander';
import { listModels, summarizeModel, formatLayerTable, type BuildModelOptions } from '@wrn/architectures';
import type { CommandContext } from '../context.js';
import { asUsageError, UsageError } from '../errors.js';
import { checkModelDepth } from '../model-size.js';
import { examples, integerFlag, numberFlag } from '../flags.js';
import { formatCount, formatSI, formatTable, writeLine } from '../io.js';

export function registerModels(program: Command, context: CommandContext): void {
  program
    .command('models')
    .description('list the model zoo: name, family, dataset, classes and parameters')
    .option('--json', 'print one JSON array of { name, family, dataset, numClasses, inputShape, params }')
    .addHelpText('after', examples(['wrn models', 'wrn models --json | jq -r \'.[] | select(.family == "wrn") | .name\'']))
    .action((options: { json?: boolean }) => {
      const models = listModels();
      if (options.json) {
        writeLine(context.io.stdout, JSON.stringify(models));
        return;
      }
      const rows = models.map((m) => [m.name, m.family, m.dataset, String(m.numClasses), `${m.inputShape.join('x')}`, formatCount(m.params), formatSI(m.params)]);
      writeLine(context.io.stdout, formatTable(['name', 'family', 'dataset', 'classes', 'input', 'params', ''], rows));
      writeLine(
        context.io.stdout,
        '\nAny wrn-<depth>-<k> (depth = 6N+4) and block type suffix such as wrn-40-2-b3_1_3 also works: see `wrn info --help`.',
      );
    });

  program
    .command('info')
    .description('layer table, parameter count and multiply-adds of a model, without training it')
    .argument('<model>', 'model name in paper notation, e.g. wrn-28-10, resnet20, resnext29-8x64d')
    .option('--classes <n>', 'number of classes of the final layer', integerFlag(2))
    .option('--input <HxW>', 'input height x width, e.g. 64x64 (default: the model\'s dataset size)')
    .option('--drop-rate <p>', 'dropout rate between the convs (shown in the layer table)', numberFlag(0, 1))
    .option('--json', 'print exactly one JSON object: { name, params, flops, multiplyAdds, family, dataset, ..., layers }')
    .addHelpText(
      'after',
      examples(['wrn info wrn-28-10', 'wrn info wrn-28-10 --classes 100 --json', 'wrn info resnet50 --input 224x224', 'wrn info wrn-40-2-b3_1_3']),
    )
    .addHelpText('after', '\n"flops" in --json is multiply-adds of one forward pass of one image (the papers\' convention).\n')
    .action(async (name: string, options: { classes?: number; input?: string; dropRate?: number; json?: boolean }) => {
      const buildOptions: BuildModelOptions = {};
      if (options.classes !== undefined) buildOptions.numClasses = options.classes;
      if (options.dropRate !== undefined) buildOptions.dropRate = options.dropRate;
      if (options.input !== undefined) {
        const match = /^(\d+)x(\d+)$/.exec(options.input);
        if (!match) throw new UsageError(`--input ${JSON.stringify(options.input)}: expected HEIGHTxWIDTH such as 64x64`);
        buildOptions.inputShape = [Number(match[1]), Number(match[2]), 3];
      }
      checkModelDepth(name, `model ${JSON.stringify(name)}`);
      const summary = await asUsageError(`model ${JSON.stringify(name)}`, () => summarizeModel(name, buildOptions));
      if (options.json) {
        const { layers, config, ...totals } = summary;
        writeLine(context.io.stdout, JSON.stringify({ ...totals, flops: summary.multiplyAdds, config, layers }));
        return;
      }
      const out = context.io.stdout;
      writeLine(out, `${summary.name}: ${summary.family}, ${summary.dataset}, ${summary.numClasses} classes, input ${summary.inputShape.join('x')}`);
      writeLine(out, '');
      writeLine(out, formatLayerTable(summary.layers));
      writeLine(out, '');
      writeLine(out, `parameters:    ${formatCount(summary.params)} (${formatSI(summary.params)})`);
      writeLine(out, `multiply-adds: ${formatCount(summary.multiplyAdds)} (${formatSI(summary.multiplyAdds)}) per image`);
    });
}
