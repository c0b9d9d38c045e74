import { describe, expect, it } from 'vitest';
import { planModel, resolveModelConfig } from '@wrn/architectures';
import { dropoutModelOptions } from '../src/dropout';

describe('dropout policies', () => {
  it('map to buildModel options', () => {
    expect(dropoutModelOptions({ kind: 'none' })).toEqual({});
    expect(dropoutModelOptions({ kind: 'constant', rate: 0.3 })).toEqual({ dropRate: 0.3 });
    expect(dropoutModelOptions({ kind: 'per-stage', rates: [0, 0.1, 0.3] })).toEqual({ dropRate: [0, 0.1, 0.3] });
    expect(dropoutModelOptions({ kind: 'stochastic-depth', dropPathRate: 0.5 })).toEqual({ dropPathRate: 0.5 });
    expect(dropoutModelOptions({ kind: 'stochastic-depth', dropPathRate: 0.2, dropRate: 0.1 })).toEqual({ dropRate: 0.1, dropPathRate: 0.2 });
  });

  it('reject rates outside [0, 1)', () => {
    expect(() => dropoutModelOptions({ kind: 'constant', rate: 1 })).toThrow(/rate/);
    expect(() => dropoutModelOptions({ kind: 'per-stage', rates: [] })).toThrow(/rates/);
  });

  it('stochastic depth follows the linear decay rule: 0 at the first block, the full rate at the last', () => {
    // resnet14: 6 blocks, so block i gets 0.5 * i / 5 and the first (rate 0) no drop-path layer at all
    const graph = planModel(resolveModelConfig('resnet14', dropoutModelOptions({ kind: 'stochastic-depth', dropPathRate: 0.5 })));
    const rates = graph.nodes.flatMap((node) => (node.kind === 'dropPath' ? [[node.name, node.rate]] : []));
    expect(rates).toEqual([
      ['stage1_block2_droppath', 0.1], ['stage2_block1_droppath', 0.2], ['stage2_block2_droppath', 0.3],
      ['stage3_block1_droppath', 0.4], ['stage3_block2_droppath', 0.5],
    ]);
  });
});
