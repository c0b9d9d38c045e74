import { z } from 'zod';

/**
 * How dropout reaches the model. The policy is data in the training config; `dropoutModelOptions` turns it into
 * the options of @wrn/architectures' buildModel (`dropRate`, `dropPathRate`), so the builder stays the one
 * place that knows where the layers go.
 * - none: no dropout.
 * - constant: the WRN rule, one rate between the convs of every block (after the ReLU).
 * - per-stage: one rate per stage (group) of blocks.
 * - stochastic-depth: drop whole residual branches, the rate rising linearly from 0 at the first block to
 *   `dropPathRate` at the last (Huang et al. 2016, linear decay rule); optionally with constant dropout too.
 */
export const dropoutPolicySchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('none') }).strict(),
  z.object({ kind: z.literal('constant'), rate: z.number().min(0).lt(1) }).strict(),
  z.object({ kind: z.literal('per-stage'), rates: z.array(z.number().min(0).lt(1)).min(1) }).strict(),
  z
    .object({
      kind: z.literal('stochastic-depth'),
      dropPathRate: z.number().min(0).lt(1),
      dropRate: z.number().min(0).lt(1).default(0),
    })
    .strict(),
]);
export type DropoutPolicy = z.infer<typeof dropoutPolicySchema>;
export type DropoutPolicyInput = z.input<typeof dropoutPolicySchema>;

/** The buildModel options a policy maps to (fields absent mean "no dropout of that kind"). */
export interface DropoutModelOptions {
  dropRate?: number | number[];
  dropPathRate?: number;
}

export function dropoutModelOptions(policy: DropoutPolicyInput): DropoutModelOptions {
  const p = dropoutPolicySchema.parse(policy);
  switch (p.kind) {
    case 'none':
      return {};
    case 'constant':
      return { dropRate: p.rate };
    case 'per-stage':
      return { dropRate: [...p.rates] };
    case 'stochastic-depth':
      return p.dropRate > 0 ? { dropRate: p.dropRate, dropPathRate: p.dropPathRate } : { dropPathRate: p.dropPathRate };
  }
}
