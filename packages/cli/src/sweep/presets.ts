/**
 * The papers' tables as grids. Each is a full-length run of the paper's recipe (its epochs, its batch size) on
 * CIFAR-10; a grid file can start from one (`preset: wrn-widening`) and override its base or its axes, e.g. fewer
 * seeds or epochs (`base: { epochs: 20 }`, `axes: { seed: [1] }`).
 */
export interface GridPreset {
  name: string;
  /** Which table of which paper, and what it compares. */
  description: string;
  base: Record<string, unknown>;
  axes: Record<string, unknown[]>;
}

const SEEDS = [1, 2, 3, 4, 5];

export const GRID_PRESETS: readonly GridPreset[] = [
  {
    name: 'wrn-block-types',
    description:
      'WRN paper, table 2: block types B(M) at WRN-40-2 (depth 40, widening factor 2) on CIFAR-10: B(1,3,1), B(3,1), B(1,3), ' +
      'B(3,1,1), B(3,3), B(3,1,3). The paper trims the depth of some types to keep parameter counts close; a grid file ' +
      'can list other depths (model: [wrn-22-2-b3_1_3, ...])',
    base: { dataset: 'cifar10', recipe: 'wrn-cifar' },
    axes: {
      model: ['wrn-40-2-b1_3_1', 'wrn-40-2-b3_1', 'wrn-40-2-b1_3', 'wrn-40-2-b3_1_1', 'wrn-40-2', 'wrn-40-2-b3_1_3'],
      seed: SEEDS,
    },
  },
  {
    name: 'wrn-widening',
    description: 'WRN paper, table 4: depth against widening factor k on CIFAR-10 (mean/std preprocessing, no dropout)',
    base: { dataset: 'cifar10', recipe: 'wrn-cifar' },
    axes: {
      model: ['wrn-40-1', 'wrn-40-2', 'wrn-40-4', 'wrn-40-8', 'wrn-28-10', 'wrn-28-12', 'wrn-22-8', 'wrn-22-10', 'wrn-16-8', 'wrn-16-10'],
      seed: SEEDS,
    },
  },
  {
    name: 'wrn-dropout',
    description: 'WRN paper, table 6: dropout 0.3 between the convolutions of each block against none, WRN-16-4 and WRN-28-10 on CIFAR-10',
    base: { dataset: 'cifar10', recipe: 'wrn-cifar' },
    axes: {
      model: ['wrn-16-4', 'wrn-28-10'],
      dropout: [{ kind: 'none' }, { kind: 'constant', rate: 0.3 }],
      seed: SEEDS,
    },
  },
  {
    name: 'resnext-cardinality',
    description:
      'ResNeXt paper, table 3: cardinality C against bottleneck width d at equal complexity (1x64d, 2x40d, 4x24d, 8x14d, ' +
      '32x4d; same FLOPs and parameters to within a few per cent), as ResNeXt-29 on CIFAR-10 with the ResNeXt CIFAR recipe',
    base: { dataset: 'cifar10', recipe: 'resnext-cifar' },
    axes: {
      model: ['resnext29-1x64d', 'resnext29-2x40d', 'resnext29-4x24d', 'resnext29-8x14d', 'resnext29-32x4d'],
      seed: SEEDS,
    },
  },
];

export const GRID_PRESET_NAMES = GRID_PRESETS.map((p) => p.name) as [string, ...string[]];

export function gridPreset(name: string): GridPreset | undefined {
  return GRID_PRESETS.find((p) => p.name === name);
}
