import { resolveModelConfig, type BuildModelOptions, type ModelConfig } from '../src/index.js';

/**
 * The named model with one block per stage and its channels divided by `divisor`: the same builder path as the
 * full model, small enough for the pure-JS cpu backend.
 */
export function shrunk(name: string, divisor: number, options: BuildModelOptions): ModelConfig {
  const config = resolveModelConfig(name, options);
  return {
    ...config,
    stemChannels: Math.max(1, config.stemChannels / divisor),
    stages: config.stages.map((stage) => ({
      ...stage,
      blocks: 1,
      outChannels: stage.outChannels / divisor,
      ...(stage.midChannels === undefined ? {} : { midChannels: stage.midChannels / divisor }),
    })),
  };
}
