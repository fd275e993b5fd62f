/** Shared helpers of the eval tests. */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (the tests run compiled from dist/test/eval). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'test'))) return dir;
    dir = resolve(dir, '..');
  }
  throw new Error('repository root not found above the test file');
}

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
