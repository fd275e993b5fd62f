/** Shared helpers of the eval tests. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelCodec } from '../../src/eval/model-scorer.js';
import { type GlamConfig, parseConfig } from '../../src/model/config.js';
import { repoRoot } from '../paths.js';

export { repoRoot };

export function evalFixture(...parts: string[]): string {
  return join(repoRoot(), 'test', 'fixtures', 'eval', ...parts);
}

/**
 * The real evaluation files of ../shared/evalsets beside the repository (CI has them),
 * or, from a git worktree, beside the main checkout. Undefined when absent.
 */
export function sharedEvalsets(): string | undefined {
  const root = repoRoot();
  const candidates = [join(root, '..', 'shared', 'evalsets'), join(root, '..', '..', 'shared', 'evalsets')];
  return candidates.find((p) => existsSync(join(p, 'README.md')));
}

/** Bytes as ids 3..258 (0-2 special, 2 the end of a document). */
export const byteCodec: ModelCodec = {
  eosId: 2,
  encode: (s) => [...Buffer.from(s, 'utf8')].map((b) => b + 3),
  decode: (ids) => Buffer.from(ids.filter((i) => i >= 3).map((i) => i - 3)).toString('utf8'),
};

/** A tiny MoE config over the byte vocabulary (d_model 16, 2 layers, 4 experts), `over` on top. */
export function byteModelConfig(over: Record<string, unknown>): GlamConfig {
  return parseConfig({
    vocab_size: 260,
    d_model: 16,
    n_layers: 2,
    n_heads: 2,
    d_head: 8,
    d_ff: 32,
    n_experts: 4,
    ...over,
  });
}
