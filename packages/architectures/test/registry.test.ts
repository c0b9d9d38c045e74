import { describe, expect, it } from 'vitest';
import {
  REGISTERED_NAMES,
  countParams,
  formatLayerTable,
  listModels,
  parseModelName,
  planModel,
  resolveModelConfig,
  summarizeModel,
  validateModelConfig,
  type LayerRow,
} from '../src/index.js';

describe('model names', () => {
  it('says what is valid for an invalid depth', () => {
    expect(() => resolveModelConfig('wrn-27-10')).toThrow("Invalid model name 'wrn-27-10': WRN depth must be 6N+4 (10, 16, 22, 28, 34, 40, ...)");
    expect(() => resolveModelConfig('wrn-42-2-b3_1_3_1')).toThrow('WRN depth must be 12N+4 for 4 conv(s) per block (16, 28, ...) with N >= 1 blocks per group, got 42');
    expect(() => resolveModelConfig('resnet19')).toThrow('CIFAR ResNet depth must be 6n+2 with n >= 1 (8, 14, 20, 26, 32, ...), got 19; ImageNet depths are 18, 34, 50, 101, 152');
    expect(() => resolveModelConfig('preact-resnet170')).toThrow('must be 9n+2 (164, 173, ..., 1001), got 170');
    expect(() => resolveModelConfig('resnext30-8x64d')).toThrow('CIFAR ResNeXt depth must be 9n+2');
    expect(() => resolveModelConfig('wrn-50-2-b3_3')).toThrow('wrn-50-<k> is the ImageNet bottleneck WRN');
    expect(() => resolveModelConfig('wrn-28-0')).toThrow('widening factor k must be a positive integer, got 0');
  });

  it('lists the name patterns for an unknown name', () => {
    let message = '';
    try {
      resolveModelConfig('vgg16');
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain("Invalid model name 'vgg16': it matches none of the name patterns");
    expect(message).toContain('wrn-<d>-<k>[-b<k1>_<k2>...]');
    expect(message).toContain('resnext<d>-<C>x<w>d');
  });

  it('parses the WRN block type and the deepening factor into the depth rule d = 3*l*N + 4', () => {
    const b313 = parseModelName('wrn-40-2-b3_1_3');
    expect(b313.block).toEqual({ kind: 'wrn', kernels: [3, 1, 3] });
    expect(b313.stages.map((s) => s.blocks)).toEqual([4, 4, 4]);
    expect(b313.stages.map((s) => s.outChannels)).toEqual([32, 64, 128]);
    expect(parseModelName('wrn-40-2-b3').stages[0]?.blocks).toBe(12);
    expect(parseModelName('wrn-40-2-b3_3_3_3').stages[0]?.blocks).toBe(3);
    expect(parseModelName('WRN-28-10').name).toBe('wrn-28-10');
  });

  it('separates CIFAR and ImageNet families by name', () => {
    expect(parseModelName('resnet56')).toMatchObject({ family: 'resnet', dataset: 'cifar', shortcut: 'A', order: 'original' });
    expect(parseModelName('resnet50')).toMatchObject({ family: 'resnet', dataset: 'imagenet', block: { kind: 'bottleneck' } });
    expect(parseModelName('preact-resnet110')).toMatchObject({ family: 'preact-resnet', block: { kind: 'basic' }, order: 'preact' });
    expect(parseModelName('preact-resnet164')).toMatchObject({ block: { kind: 'bottleneck' } });
    expect(parseModelName('preact-resnet1001').stages[0]?.blocks).toBe(111);
    expect(parseModelName('wrn-50-2')).toMatchObject({ family: 'wrn', dataset: 'imagenet' });
    expect(parseModelName('resnext29-8x64d').stages.map((s) => [s.midChannels, s.groups])).toEqual([[512, 8], [1024, 8], [2048, 8]]);
  });
});

describe('options', () => {
  it('applies numClasses, inputShape, per-stage dropout, order and shortcut overrides', () => {
    const config = resolveModelConfig('wrn-16-4', { numClasses: 100, inputShape: [24, 20, 1], dropRate: [0, 0.3, 0.4], seed: 3 });
    expect(config).toMatchObject({ numClasses: 100, inputShape: [24, 20, 1], dropRate: [0, 0.3, 0.4], seed: 3, strideLayout: 'v1.5' });
    const graph = planModel(config);
    expect(graph.node('logits').outputShape).toEqual([100]);
    expect(graph.node('stage3_block2_add').outputShape).toEqual([6, 5, 256]);
    expect(graph.nodes.filter((n) => n.kind === 'dropout').map((n) => (n as { rate: number }).rate)).toEqual([0.3, 0.3, 0.4, 0.4]);
    // resnet20 with projections instead of option A: two 1x1 convs + BN (16->32, 32->64)
    expect(countParams('resnet20', { shortcut: 'B' })).toBe(269_722 + 16 * 32 + 64 + 32 * 64 + 128);
    expect(resolveModelConfig('resnet20', { blockOrder: 'preact' }).order).toBe('preact');
  });

  it('decays drop-path linearly from 0 at the first block to the rate at the last', () => {
    const graph = planModel(resolveModelConfig('resnet20', { dropPathRate: 0.2 }));
    const rates = graph.nodes.filter((n) => n.kind === 'dropPath').map((n) => (n as { rate: number }).rate);
    expect(rates).toHaveLength(8); // the first of 9 blocks gets rate 0: no layer
    expect(rates[0]).toBeCloseTo(0.2 / 8, 10);
    expect(rates[7]).toBeCloseTo(0.2, 10);
  });

  it('rejects invalid options naming the option', () => {
    expect(() => resolveModelConfig('wrn-16-4', { dropRate: [0.3, 0.3] })).toThrow("dropRate has 2 entries but the model has 3 stages");
    expect(() => resolveModelConfig('wrn-16-4', { numClasses: 0 })).toThrow(/Invalid options for model 'wrn-16-4': numClasses: /);
    expect(() => resolveModelConfig('wrn-16-4', { dropRate: 1 })).toThrow(/dropRate/);
    expect(() => resolveModelConfig('wrn-16-4', { numclasses: 10 } as never)).toThrow(/numclasses/);
    expect(() => resolveModelConfig('wrn-16-4', { zeroInitLastGamma: true })).toThrow("zeroInitLastGamma: zeroInitLastGamma needs order 'original'");
    expect(() => resolveModelConfig('resnet20', { blockOrder: 'sideways' as never })).toThrow(/blockOrder/);
  });
});

describe('a config is validated once, by its schema', () => {
  it('names the key for every value the blocks and the graph then trust', () => {
    const resnext = resolveModelConfig('resnext29-8x64d');
    expect(() => validateModelConfig({ ...resnext, stages: resnext.stages.map((stage) => ({ ...stage, midChannels: 12 })) }))
      .toThrow("Invalid model config 'resnext29-8x64d': stages.0.midChannels: midChannels 12 must be a multiple of groups 8");
    const resnet = resolveModelConfig('resnet20');
    expect(() => validateModelConfig({ ...resnet, stemChannels: 32 }))
      .toThrow("stages.0.outChannels: option A (zero-padding) shortcuts cannot reduce 32 channels to 16; use shortcut 'B'");
    expect(() => validateModelConfig({ ...resnet, stages: resnet.stages.map((stage) => ({ ...stage, strides: 0 })) }))
      .toThrow(/Invalid model config 'resnet20': stages\.0\.strides: /);
    expect(() => validateModelConfig({ ...resnet, block: { kind: 'wrn', kernels: [3, 0] } })).toThrow(/block\.kernels\.1: /);
    expect(() => validateModelConfig({ ...resnet, seed: 1.5 })).toThrow(/seed: /);
    expect(() => resolveModelConfig('resnet20', { shortcut: 'C' as never })).toThrow(/Invalid options for model 'resnet20': shortcut: /);
    // what passes is built as given: the schema's checks are the only ones on these values
    expect(countParams(validateModelConfig({ ...resnet, shortcut: 'B', stemChannels: 32 }))).toBeGreaterThan(269_722);
  });
});

describe('registry listing and summaries', () => {
  it('lists every registered name with family, dataset and parameters', () => {
    const models = listModels();
    expect(models.map((m) => m.name)).toEqual(REGISTERED_NAMES);
    for (const name of ['resnet20', 'resnet1202', 'preact-resnet164', 'wrn-28-10', 'wrn-40-2-b3_1_3', 'wrn-50-2', 'resnext29-16x64d', 'resnext101-32x8d', 'resnet152']) {
      expect(REGISTERED_NAMES).toContain(name);
    }
    expect(models.find((m) => m.name === 'resnet50')).toEqual({
      name: 'resnet50', family: 'resnet', dataset: 'imagenet', numClasses: 1000, inputShape: [224, 224, 3], params: 25_557_032,
    });
    expect(models.find((m) => m.name === 'resnet56')).toMatchObject({ family: 'resnet', dataset: 'cifar', params: 853_018 });
    // He et al. 2016 give 1.7M, 1.7M and 10.2M; projection shortcuts without BN give 10.33M for 1001 layers, as
    // the common reimplementations (e.g. bearpaw/pytorch-classification) report.
    expect(models.filter((m) => m.family === 'preact-resnet').map((m) => m.params)).toEqual([1_727_962 + 16 * 32 + 32 * 64, 1_703_258, 10_327_706]);
  });

  it('summarizes a model without building it: totals and layer rows equal the papers\' figures', () => {
    const sum = (rows: readonly LayerRow[], key: 'params' | 'multiplyAdds') => rows.reduce((total, row) => total + row[key], 0);
    // ../shared/papers.md: ResNeXt-29 8x64d 34,426,698 parameters; ResNeXt-50 32x4d 25,028,904 and 4.230 G
    // multiply-adds at 224x224.
    const summary = summarizeModel('resnext29-8x64d');
    expect(summary.params).toBe(34_426_698);
    expect(sum(summary.layers, 'params')).toBe(34_426_698);
    const imagenet = summarizeModel('resnext50-32x4d');
    expect([imagenet.params, sum(imagenet.layers, 'params')]).toEqual([25_028_904, 25_028_904]);
    expect(imagenet.multiplyAdds / 1e9).toBeCloseTo(4.23, 3);
    expect(sum(imagenet.layers, 'multiplyAdds') / 1e9).toBeCloseTo(4.23, 3);
    // The paper's grouped 3x3 of the first stage (C = 8 groups of d = 64 channels, 32x32 maps), by hand.
    expect(summary.layers.find((row) => row.name === 'stage1_block1_conv2')).toEqual({
      name: 'stage1_block1_conv2', type: 'WrnGroupedConv2D', outputShape: [null, 32, 32, 512],
      params: 3 * 3 * 64 * 512, multiplyAdds: 32 * 32 * 3 * 3 * 64 * 512,
    });
    expect(summary.layers[0]).toEqual({ name: 'input', type: 'InputLayer', outputShape: [null, 32, 32, 3], params: 0, multiplyAdds: 0 });
    const text = formatLayerTable(summary.layers.slice(0, 3));
    expect(text.split('\n')[0]).toMatch(/^layer\s+type\s+output shape\s+params\s+mult-adds$/);
    expect(text).toContain('stem_conv  Conv2D');
    expect(text).toContain('1,728');
  });
});
