import '@tensorflow/tfjs-backend-cpu';
import { memory, setBackend } from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildModel, countMultiplyAdds, countParams } from '../src/index.js';

beforeAll(async () => {
  await setBackend('cpu');
});

// Every CIFAR row of ../shared/papers.md, built as a tf.LayersModel and counted from its weights (no forward pass).
const CIFAR_ROWS: [string, number, number?][] = [
  ['resnet20', 269_722], ['resnet32', 464_154], ['resnet44', 658_586], ['resnet56', 853_018], ['resnet110', 1_727_962],
  ['resnet1202', 19_421_274],
  ['wrn-40-1', 563_930], ['wrn-40-2', 2_243_546], ['wrn-40-4', 8_949_210], ['wrn-40-8', 35_748_314],
  ['wrn-28-10', 36_479_194], ['wrn-28-12', 52_517_850], ['wrn-22-8', 17_158_106], ['wrn-22-10', 26_797_914],
  ['wrn-16-8', 10_961_370], ['wrn-16-10', 17_116_634], ['wrn-16-4', 2_748_890], ['wrn-28-10', 36_536_884, 100],
  ['resnext29-8x64d', 34_426_698], ['resnext29-16x64d', 68_155_210],
];

describe('every CIFAR model of papers.md built for real has the exact parameter count', () => {
  for (const [name, params, numClasses] of CIFAR_ROWS) {
    it(`${name}${numClasses ? ` (${numClasses} classes)` : ''}: ${params}`, () => {
      const before = memory().numTensors;
      const model = buildModel(name, numClasses ? { numClasses } : {});
      try {
        expect(countParams(model)).toBe(params);
        expect(countMultiplyAdds(model)).toBe(countMultiplyAdds(name, numClasses ? { numClasses } : {}));
      } finally {
        model.dispose();
      }
      expect(memory().numTensors).toBe(before);
    });
  }
});
