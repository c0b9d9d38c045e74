import { describe, expect, it } from 'vitest';
import {
  NetworkGraph,
  basicBlockSpec,
  bottleneckBlockSpec,
  planLayerTable,
  planMultiplyAdds,
  planParams,
  residualBlock,
  wrnBlockSpec,
  type ConvNode,
  type ResidualBlockSpec,
  type Tap,
} from '../src/index.js';

function block(spec: ResidualBlockSpec, inShape: [number, number, number] = [8, 8, 16]): { graph: NetworkGraph; out: Tap } {
  const graph = new NetworkGraph();
  const x = graph.input(inShape);
  return { graph, out: residualBlock(graph, x, spec, 'b') };
}

const names = (graph: NetworkGraph) => graph.nodes.slice(1).map((n) => n.name);
const conv = (graph: NetworkGraph, name: string) => graph.node(name) as ConvNode;

describe('residual blocks', () => {
  it('basic, original order, option A: conv-BN-ReLU-conv-BN, zero-padded subsampled shortcut, ReLU after the add', () => {
    const { graph, out } = block(basicBlockSpec({ outChannels: 32, strides: 2, order: 'original', shortcut: 'A' }));
    expect(names(graph)).toEqual(['b_conv1', 'b_bn1', 'b_relu1', 'b_conv2', 'b_bn2', 'b_shortcut_pad', 'b_add', 'b_out']);
    expect(out.shape).toEqual([4, 4, 32]);
    expect(conv(graph, 'b_conv1').strides).toBe(2);
    expect(graph.node('b_shortcut_pad').outputShape).toEqual([4, 4, 32]);
    expect(planParams(graph)).toBe(9 * 16 * 32 + 64 + 9 * 32 * 32 + 64);
  });

  it('basic, original order, option B: 1x1 projection + BN on the shortcut', () => {
    const { graph } = block(basicBlockSpec({ outChannels: 32, strides: 2, order: 'original', shortcut: 'B' }));
    expect(names(graph)).toContain('b_shortcut_conv');
    expect(graph.node('b_shortcut_bn').inputs).toEqual(['b_shortcut_conv']);
    expect(graph.node('b_shortcut_conv').inputs).toEqual(['input']);
    expect(planParams(graph)).toBe(9 * 16 * 32 + 64 + 9 * 32 * 32 + 64 + 16 * 32 + 64);
  });

  it('keeps the identity shortcut when the shape does not change', () => {
    const { graph } = block(basicBlockSpec({ outChannels: 16, strides: 1, order: 'original', shortcut: 'B' }));
    expect(graph.node('b_add').inputs).toEqual(['b_bn2', 'input']);
  });

  it('pre-activation: BN-ReLU-conv, the projection reads the pre-activated input, nothing after the add', () => {
    const { graph } = block(basicBlockSpec({ outChannels: 32, strides: 2, order: 'preact', shortcut: 'B' }));
    expect(names(graph)).toEqual(['b_bn1', 'b_relu1', 'b_conv1', 'b_bn2', 'b_relu2', 'b_conv2', 'b_shortcut_conv', 'b_add']);
    expect(graph.node('b_shortcut_conv').inputs).toEqual(['b_relu1']);
    expect(planParams(graph)).toBe(32 + 9 * 16 * 32 + 64 + 9 * 32 * 32 + 16 * 32);
  });

  it('pre-activation with option A pads the raw input', () => {
    const { graph } = block(basicBlockSpec({ outChannels: 32, strides: 2, order: 'preact', shortcut: 'A' }));
    expect(graph.node('b_shortcut_pad').inputs).toEqual(['input']);
  });

  it('bottleneck: stride on the 3x3 in v1.5, on the first 1x1 in v1; ResNeXt groups on the 3x3', () => {
    const v15 = block(bottleneckBlockSpec({ midChannels: 8, outChannels: 64, strides: 2, order: 'original', shortcut: 'B' })).graph;
    expect([1, 2, 3].map((i) => conv(v15, `b_conv${i}`).strides)).toEqual([1, 2, 1]);
    expect([1, 2, 3].map((i) => conv(v15, `b_conv${i}`).kernelSize)).toEqual([1, 3, 1]);
    const v1 = block(bottleneckBlockSpec({ midChannels: 8, outChannels: 64, strides: 2, strideOn: '1x1', order: 'original', shortcut: 'B' })).graph;
    expect([1, 2, 3].map((i) => conv(v1, `b_conv${i}`).strides)).toEqual([2, 1, 1]);
    // same parameters, fewer multiply-adds with the early stride
    expect(planParams(v1)).toBe(planParams(v15));
    expect(planMultiplyAdds(v1)).toBeLessThan(planMultiplyAdds(v15));

    const grouped = block(bottleneckBlockSpec({ midChannels: 32, outChannels: 64, groups: 8, strides: 1, order: 'original', shortcut: 'B' })).graph;
    expect(conv(grouped, 'b_conv2').groups).toBe(8);
    const table = planLayerTable(grouped);
    expect(table.find((r) => r.name === 'b_conv2')).toMatchObject({ type: 'WrnGroupedConv2D', params: 9 * (32 / 8) * 32 });
  });

  it('WRN B(3,1,3) with dropout: three convs, dropout after each inner ReLU, stride on the first 3x3', () => {
    const { graph, out } = block({ ...wrnBlockSpec({ kernels: [3, 1, 3], outChannels: 32, strides: 2, order: 'preact', shortcut: 'B' }), dropRate: 0.3 });
    expect(names(graph)).toEqual([
      'b_bn1', 'b_relu1', 'b_conv1', 'b_bn2', 'b_relu2', 'b_dropout1', 'b_conv2', 'b_bn3', 'b_relu3', 'b_dropout2', 'b_conv3',
      'b_shortcut_conv', 'b_add',
    ]);
    expect([1, 2, 3].map((i) => conv(graph, `b_conv${i}`).kernelSize)).toEqual([3, 1, 3]);
    expect(conv(graph, 'b_conv1').strides).toBe(2);
    expect(out.shape).toEqual([4, 4, 32]);
  });

  it('WRN B(1,3,1) strides on its 3x3; deepening factor l = number of convs', () => {
    const { graph } = block(wrnBlockSpec({ kernels: [1, 3, 1], outChannels: 16, strides: 2, order: 'preact', shortcut: 'B' }));
    expect([1, 2, 3].map((i) => conv(graph, `b_conv${i}`).strides)).toEqual([1, 2, 1]);
    const l4 = block(wrnBlockSpec({ kernels: [3, 3, 3, 3], outChannels: 16, strides: 1, order: 'preact', shortcut: 'B' })).graph;
    expect(l4.nodes.filter((n) => n.kind === 'conv')).toHaveLength(4);
    expect(planParams(l4)).toBe(4 * (32 + 9 * 16 * 16));
  });

  it('drop-path sits on the branch just before the addition', () => {
    const { graph } = block({ ...basicBlockSpec({ outChannels: 16, strides: 1, order: 'original', shortcut: 'A' }), dropPathRate: 0.2 });
    expect(graph.node('b_droppath').inputs).toEqual(['b_bn2']);
    expect(graph.node('b_add').inputs).toEqual(['b_droppath', 'input']);
  });

  it('zeroInitLastGamma zeroes the last BN of the branch only (a config asking for it in pre-activation is refused by its schema)', () => {
    const { graph } = block({ ...bottleneckBlockSpec({ midChannels: 8, outChannels: 32, strides: 1, order: 'original', shortcut: 'B' }), zeroInitLastGamma: true });
    const zeroed = graph.nodes.filter((n) => n.kind === 'batchNorm' && n.zeroGamma).map((n) => n.name);
    expect(zeroed).toEqual(['b_bn3']);
  });

  it('checks the shape rules: each node must fit the nodes feeding it', () => {
    expect(() => block({ ...basicBlockSpec({ outChannels: 8, strides: 1, order: 'original', shortcut: 'A' }) }))
      .toThrow('b_shortcut_pad: option A (zero-padding) shortcut cannot reduce 16 channels to 8');
    expect(() => block(bottleneckBlockSpec({ midChannels: 12, outChannels: 32, groups: 8, strides: 1, order: 'original', shortcut: 'B' })))
      .toThrow('b_conv2: 12 input and 12 output channels must both be multiples of groups=8');
  });
});

describe('NetworkGraph', () => {
  it('computes shapes with TF same padding (odd sizes round up) and refuses duplicate names', () => {
    const graph = new NetworkGraph();
    const x = graph.input([7, 5, 3]);
    expect(graph.conv(x, { filters: 4, kernelSize: 3, strides: 2 }, 'c').shape).toEqual([4, 3, 4]);
    expect(graph.maxPool(x, 3, 2, 'p').shape).toEqual([4, 3, 3]);
    expect(() => graph.relu(x, 'c')).toThrow("NetworkGraph: duplicate layer name 'c'");
    expect(() => graph.input([0, 4, 3], 'bad')).toThrow('input shape [0, 4, 3] axis 0 must be a positive integer, got 0');
  });
});
